"""Sequential-test benchmark: is the rollout's mSPRT valid under peeking; how fast does it decide?

Simulates, with a fixed seed and vectorized over experiments, the evidence a rollout sees: one
tick per ``--tick`` observations per arm, a look at every tick, up to ``--horizon`` per arm.

(a) A/A tests: both arms draw 0/1 outcomes at the same rate (an accuracy of 0.8 and 0.3, a CTR
    of 0.02). A *false promotion* is an experiment in which the candidate was ever declared
    better; *any decision* counts the other side too (declared worse). The same draws are fed to
    a naive fixed-horizon two-sample z-test (unpooled, two-sided 5%) read at every tick and
    stopped at the first significant look: what peeking at a t/z-test does.
(b) Effects of +0.5, +1 and +2 points of accuracy over 0.80: an A/B split (50/50, each arm its
    own rows) and a shadow comparison (both models on the same rows, the paired test; the
    models disagree on 10% of rows). Power is the share promoted by the horizon; the samples
    are per arm (rows for the paired test), median over the experiments that decided.

(c) ``--replay``: real replays on elec2 (``replay_project_rollout`` of
    :mod:`retrainer.engine.backtest.rollout`: the daemon's policy objects and state
    machine): an A/B of a model retrained on the last 30 days against a stale champion
    (trained on the first 60 days), from several starts, and the A/A tests (the retrained
    model against itself, the stale one against itself), and a broken candidate (a constant
    answer) against the output-drift guard. The policy: a 50/50 A/B on accuracy, ``tau`` 0.05,
    a tick every hour of data time, a horizon of 21 days (about 500 rows per arm); alpha
    (0.05), min_samples (200) and the guards at their defaults (the output-drift guard: a
    Jensen-Shannon distance above 0.5, from the champion's outputs and from the candidate's
    own on its training rows, over 100 rows). The stale champion learns 1996-05-07 ..
    1996-07-06; the five starts are ``REPLAY_STARTS``.

Every simulated decision comes from :func:`retrainer.core.sequential.msprt_likelihood_ratio`
and :func:`~retrainer.core.sequential.msprt_radius` with the decision rule of
:class:`~retrainer.core.sequential.SequentialTest`; the first experiments of every scenario are
replayed through ``SequentialTest.update``/``decide`` tick by tick and must agree (checked).

Usage (from the repository root)::

    .venv/bin/python benchmarks/sequential.py              # 2,000 experiments per scenario
    .venv/bin/python benchmarks/sequential.py --sims 500 --json
    .venv/bin/python benchmarks/sequential.py --replay     # (c) only: the elec2 replays
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from retrainer.core.sequential import (  # noqa: E402
    ArmStats,
    SequentialTest,
    msprt_likelihood_ratio,
    msprt_radius,
)

SEED = 20240516
Z = 1.959963984540054  # two-sided 5%
CHECKED = 5  # experiments per scenario replayed through SequentialTest


@dataclass
class Outcomes:
    """Per experiment: 1 promote, -1 reject, 0 inconclusive; and the samples per arm then."""

    outcome: np.ndarray
    n: np.ndarray
    naive: np.ndarray  # naive z-test: 1 significant up, -1 down, 0 never


def _decide(test: SequentialTest, n: np.ndarray, d: np.ndarray, v: np.ndarray) -> tuple:
    """The decision rule of SequentialTest over (experiments, ticks) arrays."""
    look = (n >= test.min_samples) & (v > 0)
    safe_v = np.where(look, v, 1.0)
    r = msprt_radius(safe_v, tau=test.tau_, alpha=test.alpha)
    low = np.maximum.accumulate(np.where(look, d - r, -np.inf), axis=1)
    high = np.minimum.accumulate(np.where(look, d + r, np.inf), axis=1)
    # the p-value is not needed for the rule (0 leaves the sequence exactly when p <= alpha);
    # computed anyway as a consistency check of the two
    lam = np.where(look, msprt_likelihood_ratio(d, safe_v, tau=test.tau_), 0.0)
    p = np.minimum.accumulate(np.minimum(1.0, 1.0 / np.maximum(lam, 1e-300)), axis=1)
    promote = low > 0
    reject = high < test.min_effect
    assert np.array_equal(promote | (high < 0), p <= test.alpha) or test.min_effect > 0
    decided = promote | reject
    first = np.where(decided.any(axis=1), decided.argmax(axis=1), n.shape[1] - 1)
    rows = np.arange(n.shape[0])
    outcome = np.where(
        decided[rows, first], np.where(promote[rows, first], 1, -1), 0
    )  # promotion takes precedence at the same look
    return outcome, n[rows, first]


def _naive(n: np.ndarray, d: np.ndarray, v: np.ndarray, min_samples: int) -> np.ndarray:
    z = np.where((v > 0) & (n >= min_samples), d / np.sqrt(np.where(v > 0, v, 1.0)), 0.0)
    up, down = z > Z, z < -Z
    hit = up | down
    first = hit.argmax(axis=1)
    rows = np.arange(n.shape[0])
    return np.where(hit[rows, first], np.where(up[rows, first], 1, -1), 0)


def _check_with_the_class(
    test: SequentialTest, counts: np.ndarray, paired: bool, outcome: np.ndarray, n: np.ndarray
) -> None:
    """Replay a few experiments tick by tick through SequentialTest: same outcome, same tick."""
    tick = int(counts[0, 0].sum()) if paired else None
    for i in range(min(CHECKED, counts.shape[0])):
        state = test.start()
        got = ("inconclusive", counts.shape[1])
        for k in range(counts.shape[1]):
            if paired:
                n11, n10, n01, _ = (int(c) for c in counts[i, k])
                m = int(tick)  # type: ignore[arg-type]
                a = ArmStats.from_sums(n=m, total=n11 + n10, total_sq=n11 + n10)
                b = ArmStats.from_sums(n=m, total=n11 + n01, total_sq=n11 + n01)
                diff = ArmStats.from_sums(n=m, total=n01 - n10, total_sq=n01 + n10)
                state = test.update(state, champion=a, candidate=b, difference=diff)
            else:
                m, ca, cb = (int(c) for c in counts[i, k])
                state = test.update(
                    state,
                    champion=ArmStats.from_sums(n=m, total=ca, total_sq=ca),
                    candidate=ArmStats.from_sums(n=m, total=cb, total_sq=cb),
                )
            decision = test.decide(state)
            if decision.outcome in ("promote", "reject"):
                got = (decision.outcome, k + 1)
                break
        want = {1: "promote", -1: "reject", 0: "inconclusive"}[int(outcome[i])]
        got_n = state.champion.n
        if got[0] != want or (want != "inconclusive" and got_n != n[i]):
            raise AssertionError(
                f"experiment {i}: SequentialTest says {got[0]} at n={got_n}, "
                f"the vectorized rule {want} at n={n[i]}"
            )


def simulate_split(
    rng: np.random.Generator,
    test: SequentialTest,
    p_a: float,
    p_b: float,
    *,
    sims: int,
    tick: int,
    horizon: int,
    chunk: int = 250,
) -> Outcomes:
    """A/B split: each arm gets ``tick`` new 0/1 outcomes per tick."""
    ticks = horizon // tick
    outs, ns, naives = [], [], []
    for start in range(0, sims, chunk):
        m = min(chunk, sims - start)
        ca = rng.binomial(tick, p_a, size=(m, ticks))
        cb = rng.binomial(tick, p_b, size=(m, ticks))
        n = np.arange(1, ticks + 1, dtype=float)[None, :] * tick * np.ones((m, 1))
        ma, mb = np.cumsum(ca, axis=1) / n, np.cumsum(cb, axis=1) / n
        d = mb - ma
        v = (ma * (1 - ma) + mb * (1 - mb)) / n
        outcome, n_dec = _decide(test, n, d, v)
        if start == 0:
            counts = np.stack([np.full_like(ca, tick), ca, cb], axis=2)
            _check_with_the_class(test, counts, False, outcome, n_dec)
        outs.append(outcome)
        ns.append(n_dec)
        naives.append(_naive(n, d, v, test.min_samples))
    return Outcomes(np.concatenate(outs), np.concatenate(ns), np.concatenate(naives))


def simulate_paired(
    rng: np.random.Generator,
    test: SequentialTest,
    p: float,
    effect: float,
    disagree: float,
    *,
    sims: int,
    tick: int,
    horizon: int,
    chunk: int = 250,
) -> Outcomes:
    """Shadow: both models on the same rows; cells (both right, only champion, only
    candidate, both wrong) with the candidate right on ``effect`` more rows."""
    only_b, only_a = (disagree + effect) / 2, (disagree - effect) / 2
    probs = [p - only_a, only_a, only_b, 1 - p - only_b]
    ticks = horizon // tick
    outs, ns, naives = [], [], []
    for start in range(0, sims, chunk):
        m = min(chunk, sims - start)
        cells = rng.multinomial(tick, probs, size=(m, ticks))
        n = np.arange(1, ticks + 1, dtype=float)[None, :] * tick * np.ones((m, 1))
        plus = np.cumsum(cells[..., 2], axis=1)
        minus = np.cumsum(cells[..., 1], axis=1)
        d = (plus - minus) / n
        v = ((plus + minus) / n - d * d) / n
        outcome, n_dec = _decide(test, n, d, v)
        if start == 0:
            _check_with_the_class(test, cells, True, outcome, n_dec)
        outs.append(outcome)
        ns.append(n_dec)
        naives.append(_naive(n, d, v, test.min_samples))
    return Outcomes(np.concatenate(outs), np.concatenate(ns), np.concatenate(naives))


def _binom_upper(k: int, n: int) -> float:
    """Upper end of the 95% Wilson interval of a rate k/n (the simulation's own noise)."""
    z, phat = 1.96, k / n
    centre = phat + z * z / (2 * n)
    spread = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
    return (centre + spread) / (1 + z * z / n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000, help="experiments per scenario")
    parser.add_argument("--tick", type=int, default=100, help="observations per arm per tick")
    parser.add_argument("--horizon", type=int, default=200_000, help="observations per arm")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--min-samples", type=int, default=1000)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--replay", action="store_true", help="(c) only: the elec2 replays")
    args = parser.parse_args()
    if args.replay:
        return replay_elec2(as_json=args.json)
    rng = np.random.default_rng(SEED)
    t0 = time.perf_counter()
    result: dict[str, Any] = {"sims": args.sims, "tick": args.tick, "horizon": args.horizon}

    rows = []
    for label, p, tau, min_effect in (
        ("accuracy 0.80", 0.80, 0.01, 0.0),
        ("accuracy 0.30", 0.30, 0.01, 0.0),
        ("CTR 0.02", 0.02, 0.002, 0.0),
        ("accuracy 0.80, min_effect 0.5 pt", 0.80, 0.005, 0.005),
    ):
        test = SequentialTest(
            alpha=args.alpha, tau=tau, min_effect=min_effect, min_samples=args.min_samples
        )
        o = simulate_split(rng, test, p, p, sims=args.sims, tick=args.tick, horizon=args.horizon)
        rows.append(_row(f"A/A, {label}", "A/B split", 0.0, tau, o, None))

    base = 0.80
    for design in ("A/B split", "shadow, paired"):
        for effect in (0.005, 0.01, 0.02):
            paired = design.startswith("shadow")
            test = SequentialTest(
                alpha=args.alpha, tau=0.01, min_samples=args.min_samples, paired=paired
            )
            if paired:
                o = simulate_paired(
                    rng, test, base, effect, 0.10,
                    sims=args.sims, tick=args.tick, horizon=args.horizon,
                )  # fmt: skip
                var = 0.10 - effect**2
            else:
                o = simulate_split(
                    rng, test, base, base + effect,
                    sims=args.sims, tick=args.tick, horizon=args.horizon,
                )  # fmt: skip
                var = base * (1 - base) + (base + effect) * (1 - base - effect)
            # a fixed-horizon z-test's n per arm for 80% power, for scale
            fixed = math.ceil((Z + 0.8416) ** 2 * var / effect**2)
            rows.append(_row(f"+{effect * 100:g} pt over 0.80", design, effect, 0.01, o, fixed))
    result["rows"] = rows
    result["seconds"] = round(time.perf_counter() - t0, 1)

    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{args.sims} experiments per row, a look every {args.tick} per arm up to "
        f"{args.horizon:,} per arm, alpha={args.alpha}, min_samples={args.min_samples}\n"
    )
    print("| experiment | design | tau | promoted | rejected | inconclusive "
          "| n to decide, median (90th pct) | peeked z-test promoted "
          "| fixed-horizon n, 80% power |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        n = "-" if r["median_n"] is None else f"{r['median_n']:,.0f} ({r['p90_n']:,.0f})"
        promoted = f"{r['promoted']:.2%}"
        if r["effect"] == 0:  # a false promotion: show the simulation's own noise
            promoted += f" (<= {r['promoted_upper95']:.2%})"
        fixed = "-" if r["fixed_horizon_n_80"] is None else f"{r['fixed_horizon_n_80']:,}"
        print(
            f"| {r['experiment']} | {r['design']} | {r['tau']:g} | {promoted} | "
            f"{r['rejected']:.2%} | {r['inconclusive']:.2%} | {n} | "
            f"{r['naive_promoted']:.1%} | {fixed} |"
        )
    print(f"\n{result['seconds']} s")
    ok = all(r["promoted"] <= args.alpha for r in rows if r["effect"] == 0)
    print("A/A false promotions <= alpha: " + ("yes" if ok else "NO"))
    return 0


REPLAY_POLICY = {
    "strategy": "ab",
    "split": 0.5,
    "metric": "accuracy",
    "tau": 0.05,
    "max_duration": "21d",
    # the guards at their defaults: the output-drift guard must let a sound retrain through
    # and stop the broken candidate
}
REPLAY_STARTS = ("1997-03-03", "1997-06-02", "1997-09-01", "1998-01-05", "1998-06-01")


def replay_elec2(*, as_json: bool = False) -> int:
    """(c): the rollout replayed on elec2's recorded rows, a tick every hour of data time."""
    import tempfile
    from datetime import UTC, datetime, timedelta

    import pandas as pd

    from retrainer.engine.backtest.rollout import (
        TrainWindow,
        replay_project_rollout,
        replay_rollout,
    )
    from retrainer.engine.project import Project
    from retrainer.engine.scaffold import init_project

    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        init_project(Path(tmp))
        with Project.open(tmp) as project:
            pipe = project.pipeline()
            stale = TrainWindow(
                start=datetime(1996, 5, 7, tzinfo=UTC), end=datetime(1996, 7, 6, tzinfo=UTC)
            )
            for day in REPLAY_STARTS:
                start = datetime.fromisoformat(day).replace(tzinfo=UTC)
                end = start + timedelta(days=21)
                fresh = TrainWindow(start=start - timedelta(days=30), end=start)
                broken = {**REPLAY_POLICY, "guards": {}}
                for test, a, b, policy in (
                    ("A/B: retrained vs stale", stale, fresh, REPLAY_POLICY),
                    ("A/A: retrained vs itself", fresh, fresh, REPLAY_POLICY),
                    ("A/A: stale vs itself", stale, stale, REPLAY_POLICY),
                    ("broken candidate, guard on", fresh, "broken", broken),
                ):
                    w0 = time.perf_counter()
                    if b == "broken":
                        model = pipe.fit(pipe.labelled(pipe.source.load(a.start, a.end), "")[0])
                        result = replay_rollout(
                            pipe.source.load(start, end), policy,
                            champion=lambda r, m=model: pipe.predict(m, r),
                            candidate=lambda r: (  # a constant answer
                                [1] * len(r), [0.99] * len(r)
                            ),
                            time_column=pipe.time_column, target=pipe.config.target,
                            start=start, end=end, pipeline=pipe.name,
                        )  # fmt: skip
                    else:
                        result = replay_project_rollout(
                            project, start=start, end=end, champion=a, candidate=b, policy=policy
                        )
                    last = result.ticks[-1]
                    rows.append(
                        {
                            "start": day,
                            "test": test,
                            "outcome": result.outcome,
                            "days": None
                            if result.elapsed is None
                            else result.elapsed / pd.Timedelta(days=1),
                            "rows": dict(result.requests),
                            "accuracy": {
                                "champion": last.mean_champion,
                                "candidate": last.mean_candidate,
                            },
                            "low": last.low,
                            "high": last.high,
                            "reason": result.reason,
                            "seconds": round(time.perf_counter() - w0, 2),
                        }
                    )
    seconds = round(time.perf_counter() - t0, 1)
    if as_json:
        print(json.dumps({"policy": REPLAY_POLICY, "rows": rows, "seconds": seconds}, indent=2))
        return 0
    print(
        "elec2, the rollout replayed on the recorded rows (a tick every hour of data time, "
        f"21 days at most): {json.dumps(REPLAY_POLICY)}\n"
    )
    print("| start | test | outcome | after (days) | rows champion / candidate "
          "| accuracy champion / candidate | CS for the difference | s |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---:|---:|")

    def num(x: Any, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    for r in rows:
        acc = r["accuracy"]
        print(
            f"| {r['start']} | {r['test']} | {r['outcome']} | {num(r['days'], '.1f')} | "
            f"{r['rows']['champion']:,} / {r['rows']['candidate']:,} | "
            f"{num(acc['champion'], '.3f')} / {num(acc['candidate'], '.3f')} | "
            f"[{num(r['low'], '+.3f')}, {num(r['high'], '+.3f')}] | {r['seconds']:.1f} |"
        )
    print(f"\n{seconds} s")
    aa_quiet = all(r["outcome"] == "inconclusive" for r in rows if r["test"].startswith("A/A"))
    print("every A/A decides nothing: " + ("yes" if aa_quiet else "NO"))
    return 0


def _row(
    experiment: str, design: str, effect: float, tau: float, o: Outcomes, fixed: int | None
) -> dict[str, Any]:
    decided = o.outcome != 0
    promoted = int((o.outcome == 1).sum())
    sims = len(o.outcome)
    return {
        "experiment": experiment,
        "design": design,
        "effect": effect,
        "tau": tau,
        "promoted": promoted / sims,
        "promoted_upper95": _binom_upper(promoted, sims),
        "rejected": float((o.outcome == -1).mean()),
        "inconclusive": float((o.outcome == 0).mean()),
        "median_n": float(np.median(o.n[decided])) if decided.any() else None,
        "p90_n": float(np.percentile(o.n[decided], 90)) if decided.any() else None,
        "naive_promoted": float((o.naive == 1).mean()),
        "naive_any_decision": float((o.naive != 0).mean()),
        "fixed_horizon_n_80": fixed,
    }


if __name__ == "__main__":
    sys.exit(main())
