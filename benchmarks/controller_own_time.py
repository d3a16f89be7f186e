"""The controller's own time in a replay: what ``run_policy`` spends outside the work it
shares with the bare loop of ``benchmarks/policies.py``.

The overhead benchmark (``policies.py --skip-policies``) compares whole runs, and on a shared
machine single rounds move by tens of percent, more than the controller's own few seconds.
This script times, in both the bare loop and ``run_policy``, the shared steps
(``Pipeline.fit``, ``Pipeline.score``, ``Pipeline.check_classes``, ``Gate.evaluate`` and the
serving predictions) and reports each run's time outside them; the difference between the two
is what the controller adds (the store records and events, the snapshot, validation, the
trigger decision, serializing the model), measured without the noise of the shared work.
The two alternate which runs first in a round.

    .venv/bin/python benchmarks/controller_own_time.py              # 3 rounds, daily · last 7d
    PYTHONPATH=/path/to/other/checkout/src .venv/bin/python benchmarks/controller_own_time.py

(the second form measures another version of the code with this script, for a comparison).
"""

from __future__ import annotations

import argparse
import collections
import functools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import policies as P  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--policy", default=P.OVERHEAD_POLICIES[0], help="an elec2 grid policy")
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_limits

    import retrainer
    from retrainer.core.blessing import Gate
    from retrainer.engine.backtest import expand_policies, load_replay
    from retrainer.engine.backtest.replay import run_policy
    from retrainer.engine.pipeline import Pipeline

    shared: collections.Counter[str] = collections.Counter()
    scoring = [0]  # > 0 inside Pipeline.score: its predictions are counted there

    def timed(owner: Any, name: str, serve_only: bool = False) -> None:
        inner = getattr(owner, name)

        @functools.wraps(inner)
        def wrapper(*a: Any, **k: Any) -> Any:
            if serve_only and scoring[0]:
                return inner(*a, **k)
            if name == "score":
                scoring[0] += 1
            t = time.perf_counter()
            try:
                return inner(*a, **k)
            finally:
                shared[name] += time.perf_counter() - t
                if name == "score":
                    scoring[0] -= 1

        setattr(owner, name, wrapper)

    for name in ("fit", "score", "check_classes"):
        timed(Pipeline, name)
    timed(Pipeline, "predict", serve_only=True)
    timed(Gate, "evaluate")

    cfg = P.with_delay(P.BACKTESTS["elec2"], 0)
    replay, _, _ = load_replay(cfg, P.BACKTESTS["elec2"])
    policy = {p["name"]: p for p in expand_policies(cfg, replay)}[args.policy]
    print(f"# {retrainer.__file__}; elec2, {args.policy}, {replay.n_batches} batches")
    print("| round | bare s | bare own s | controller s | controller own s | added s | ms/batch |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    added = []
    with threadpool_limits(1):
        for r in range(args.rounds):
            row = {}
            runs = [("bare", P.bare_loop), ("controller", run_policy)]
            for kind, run in runs if r % 2 == 0 else runs[::-1]:  # the order alternates
                shared.clear()
                t = time.perf_counter()
                run(replay, policy)
                total = time.perf_counter() - t
                row[kind] = (total, total - sum(shared.values()))
            added.append(row["controller"][1] - row["bare"][1])
            print(
                f"| {r + 1} | {row['bare'][0]:.2f} | {row['bare'][1]:.2f} | "
                f"{row['controller'][0]:.2f} | {row['controller'][1]:.2f} | {added[-1]:.2f} | "
                f"{1000 * added[-1] / replay.n_batches:.2f} |",
                flush=True,
            )
    med = statistics.median(added)
    print(f"\nmedian added: {med:.2f} s, {1000 * med / replay.n_batches:.2f} ms per batch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
