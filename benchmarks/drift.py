"""Drift-check benchmark: retrainer vs Evidently vs NannyML vs the floor (issue 3).

Generates, with a fixed seed, a reference and a current frame of N rows (20 float columns,
5 categorical columns of 10 string levels; the current frame shifts 5 float columns, one of
them by only 0.05 standard deviations, and 1 categorical column), writes both to Parquet once,
then times every tool on the same frames, each in a fresh process:

- ``retrainer profile``: ``compute_profile(to_columns(reference))``, once per model version;
- ``retrainer check``: ``check_drift(profile, to_columns(current))``, the per-window cost;
- ``retrainer check, str columns``: the same with the categories as plain strings (``str``
  dtype), so the window is factorized in the check;
- ``evidently preset``: ``Report([DataDriftPreset()]).run(current, reference)`` (no reference
  cache: its whole run is its per-window cost);
- ``nannyml fit`` / ``nannyml calculate``: ``UnivariateDriftCalculator`` with its defaults
  (Jensen-Shannon, 10 chunks), fit on the reference, then ``calculate`` on the current frame;
- ``floor``: one pass over the current frame: the sum of every float column and a
  ``bincount`` of every category's codes.

Times are the median of ``--repeats`` runs (``--tool-repeats`` for Evidently and NannyML).
Peak memory is the resident-set high-water mark above the resident set just before the
first run (Linux ``/proc/self/status`` VmHWM, reset through ``/proc/self/clear_refs``), the
same measure for every tool; for retrainer the tracemalloc peak of numpy and Python
allocations is reported too. A column is flagged by Evidently when its statistic crosses the
preset's threshold, by NannyML when any current chunk raises an alert.

Usage (from the repository root; the third-party tools need ``bash benchmarks/setup.sh``)::

    .venv/bin/python benchmarks/drift.py                      # N = 10k, 100k, 1M
    .venv/bin/python benchmarks/drift.py --sizes 10000 100000 --json
    .venv/bin/python benchmarks/drift.py --skip evidently nannyml
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SEED = 20240301
FLOAT_COLS = [f"f{i:02d}" for i in range(20)]
CAT_COLS = [f"c{i}" for i in range(5)]
LEVELS = 10
SHIFTS = {
    "f00": "normal, mean +0.05 sd (small: only a test sees it)",
    "f01": "normal, mean +0.5 sd",
    "f02": "normal, sd x1.5",
    "f03": "lognormal, log-mean +0.2",
    "f04": "uniform(0, 1) -> uniform(0.1, 1.1)",
    "c0": "category shares: half the rows re-drawn uniformly",
}
EXPECTED = sorted(SHIFTS)
TOOLS = ("retrainer", "floor", "evidently", "nannyml")
THIRD_PARTY = ("evidently", "nannyml")


# --- data ---------------------------------------------------------------------------------


def _float_column(i: int, rng: np.random.Generator, n: int, shifted: bool) -> np.ndarray:
    if i == 0:
        return rng.normal(0.05 if shifted else 0.0, 1.0, n)
    if i == 1:
        return rng.normal(11.0 if shifted else 10.0, 2.0, n)
    if i == 2:
        return rng.normal(0.0, 1.5 if shifted else 1.0, n)
    if i == 3:
        return rng.lognormal(0.2 if shifted else 0.0, 0.5, n)
    if i == 4:
        lo = 0.1 if shifted else 0.0
        return rng.uniform(lo, lo + 1.0, n)
    kind = i % 5  # the unshifted columns cycle through a few shapes and scales
    if kind == 0:
        return rng.normal(i, 1.0 + i / 10, n)
    if kind == 1:
        return rng.lognormal(0.0, 1.0, n)
    if kind == 2:
        return rng.uniform(-i, i, n)
    if kind == 3:
        return rng.exponential(i / 4, n)
    return rng.gamma(2.0, 2.0, n)


def _shares(j: int) -> np.ndarray:
    w = 0.75 ** np.arange(LEVELS) * (1 + j / 10)
    return w / w.sum()


def make_frame(n: int, *, current: bool) -> pd.DataFrame:
    """The reference (``current=False``) or current frame of ``n`` rows, from a fixed seed."""
    rng = np.random.default_rng([SEED, n, int(current)])
    data: dict[str, Any] = {
        name: _float_column(i, rng, n, shifted=current) for i, name in enumerate(FLOAT_COLS)
    }
    for j, name in enumerate(CAT_COLS):
        p = _shares(j)
        if current and j == 0:
            p = 0.5 * p + 0.5 / LEVELS
        labels = [f"{name}_level{k}" for k in range(LEVELS)]
        codes = rng.choice(LEVELS, size=n, p=p).astype(np.int8)
        data[name] = pd.Categorical.from_codes(codes, categories=labels)
    return pd.DataFrame(data)


# --- measuring ----------------------------------------------------------------------------


def _status_kb(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


MEMORY_MODE = False  # set in the worker that measures memory (one run per tool, no timing)


def measure(fn: Callable[[], Any], repeats: int) -> tuple[Any, list[float], float | None]:
    """(first result, seconds per run, peak extra resident MB of the first run).

    The peak is measured only in memory mode: there glibc's mmap threshold is pinned
    (``MALLOC_MMAP_THRESHOLD_``) so freed large blocks go back to the system and cannot hide a
    later peak; timing runs go without it, so the pinning cannot slow them.
    """
    gc.collect()
    base = _status_kb("VmRSS")
    can_reset = MEMORY_MODE and _reset_peak()
    t0 = time.perf_counter()
    result = fn()
    seconds = [time.perf_counter() - t0]
    peak = (_status_kb("VmHWM") - base) / 1024 if can_reset else None
    if MEMORY_MODE:
        return result, seconds, peak
    for _ in range(repeats - 1):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t0)
    return result, seconds, peak


def traced_peak_mb(fn: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def entry(tool: str, seconds: list[float], peak: float | None, **extra: Any) -> dict[str, Any]:
    return {
        "tool": tool,
        "median_s": statistics.median(seconds),
        "seconds": seconds,
        "peak_extra_mb": peak,
        **extra,
    }


# --- workers (each runs in its own process) -----------------------------------------------


def work_retrainer(ref: pd.DataFrame, cur: pd.DataFrame, repeats: int) -> list[dict[str, Any]]:
    import scipy.special
    import scipy.stats  # noqa: F401  (core imports scipy at first use: load it before measuring)

    from retrainer.core.drift import check_drift
    from retrainer.core.profile import compute_profile
    from retrainer.engine.frames import to_columns

    out = []
    profile, secs, peak = measure(lambda: compute_profile(to_columns(ref)), repeats)
    out.append(entry("retrainer profile", secs, peak))

    def check() -> Any:
        return check_drift(profile, to_columns(cur))

    report, secs, peak = measure(check, repeats)
    out.append(
        entry(
            "retrainer check",
            secs,
            peak,
            traced_peak_mb=None if MEMORY_MODE else traced_peak_mb(check),
            flagged=sorted(report.drifted_columns),
            findings=[f.kind for f in report.findings],
        )
    )
    cur_str = cur.astype(dict.fromkeys(CAT_COLS, "str"))
    report, secs, peak = measure(lambda: check_drift(profile, to_columns(cur_str)), repeats)
    out.append(
        entry("retrainer check, str columns", secs, peak, flagged=sorted(report.drifted_columns))
    )
    return out


def work_floor(ref: pd.DataFrame, cur: pd.DataFrame, repeats: int) -> list[dict[str, Any]]:
    floats = [cur[c].to_numpy() for c in FLOAT_COLS]
    codes = [cur[c].cat.codes.to_numpy() for c in CAT_COLS]

    def floor() -> Any:
        return sum(float(x.sum()) for x in floats), [np.bincount(c) for c in codes]

    _, secs, peak = measure(floor, repeats)
    return [entry("floor", secs, peak)]


def _evidently_flagged(snapshot: Any) -> list[str]:
    flagged = []
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if not config.get("type", "").endswith("ValueDrift"):
            continue
        value, threshold = metric["value"], config["threshold"]
        is_p_value = "p_value" in config.get("method", "")
        if (value < threshold) if is_p_value else (value >= threshold):
            flagged.append(config["column"])
    return sorted(flagged)


def work_evidently(ref: pd.DataFrame, cur: pd.DataFrame, repeats: int) -> list[dict[str, Any]]:
    import evidently
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot, secs, peak = measure(
        lambda: Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref), repeats
    )
    return [
        entry(
            "evidently preset",
            secs,
            peak,
            flagged=_evidently_flagged(snapshot),
            version=evidently.__version__,
        )
    ]


def work_nannyml(ref: pd.DataFrame, cur: pd.DataFrame, repeats: int) -> list[dict[str, Any]]:
    import nannyml as nml

    columns = list(ref.columns)
    calc, secs, peak = measure(
        lambda: nml.UnivariateDriftCalculator(column_names=columns).fit(ref), repeats
    )
    out = [entry("nannyml fit", secs, peak, version=nml.__version__)]
    result, secs, peak = measure(lambda: calc.calculate(cur), repeats)
    frame = result.filter(period="analysis").to_df()
    flagged = sorted({c[0] for c in frame.columns if c[-1] == "alert" and frame[c].any()})
    out.append(entry("nannyml calculate", secs, peak, flagged=flagged, version=nml.__version__))
    return out


WORKERS = {
    "retrainer": work_retrainer,
    "floor": work_floor,
    "evidently": work_evidently,
    "nannyml": work_nannyml,
}


def run_worker(tool: str, ref_path: str, cur_path: str, repeats: int, memory: bool) -> None:
    global MEMORY_MODE
    MEMORY_MODE = memory
    with contextlib.redirect_stdout(sys.stderr):  # tools' chatter must not mix with the JSON
        ref = pd.read_parquet(ref_path)
        cur = pd.read_parquet(cur_path)
        results = WORKERS[tool](ref, cur, repeats)
    print(json.dumps(results))


# --- orchestration ------------------------------------------------------------------------


def _python_for(tool: str, bench_python: str) -> str:
    return bench_python if tool in THIRD_PARTY else sys.executable


def spawn(
    tool: str, python: str, ref: Path, cur: Path, repeats: int, *, memory: bool = False
) -> list[dict[str, Any]]:
    env = {
        **os.environ,
        "EVIDENTLY_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
        "NML_DISABLE_USAGE_LOGGING": "1",
        "PYTHONWARNINGS": "ignore",
    }
    cmd = [python, str(Path(__file__).resolve()), "--worker", tool]
    cmd += ["--ref", str(ref), "--cur", str(cur), "--repeats", str(repeats)]
    if memory:
        env["MALLOC_MMAP_THRESHOLD_"] = str(64 * 1024)
        cmd.append("--memory")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-5:]
        print(f"[{tool}] failed ({proc.returncode}):\n  " + "\n  ".join(tail), file=sys.stderr)
        return []
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_size(
    n: int, tools: list[str], repeats: int, tool_repeats: int, bench_python: str, tmp: Path
) -> dict[str, Any]:
    ref, cur = make_frame(n, current=False), make_frame(n, current=True)
    ref_path, cur_path = tmp / f"reference_{n}.parquet", tmp / f"current_{n}.parquet"
    ref.to_parquet(ref_path)
    cur.to_parquet(cur_path)
    frame_mb = float(cur.memory_usage(deep=True).sum()) / 2**20
    del ref, cur
    results: dict[str, Any] = {}
    for tool in tools:
        k = tool_repeats if tool in THIRD_PARTY else repeats
        print(f"  N={n:,}: {tool} ({k} timed runs + 1 for memory)", file=sys.stderr, flush=True)
        python = _python_for(tool, bench_python)
        for row in spawn(tool, python, ref_path, cur_path, k):
            results[row.pop("tool")] = row
        for row in spawn(tool, python, ref_path, cur_path, 1, memory=True):
            if row["tool"] in results:
                results[row["tool"]]["peak_extra_mb"] = row["peak_extra_mb"]
    return {"n": n, "frame_mb": frame_mb, "expected": EXPECTED, "tools": results}


def _fmt_s(x: float) -> str:
    return f"{x:.4f}" if x < 0.1 else f"{x:.3f}" if x < 10 else f"{x:.1f}"


def _flag_text(flagged: list[str] | None) -> str:
    if flagged is None:
        return ""
    missed = sorted(set(EXPECTED) - set(flagged))
    extra = sorted(set(flagged) - set(EXPECTED))
    if not missed and not extra:
        return f"{len(flagged)}, exactly the shifted ones"
    parts = [f"{len(flagged)}"]
    if missed:
        parts.append("missed " + ",".join(missed))
    if extra:
        parts.append("extra " + ",".join(extra))
    return "; ".join(parts)


def table(sizes: list[dict[str, Any]]) -> str:
    header = (
        "| N | tool | median s | x floor | x retrainer check | peak extra MB | flagged |\n"
        "|---|---|---:|---:|---:|---:|---|"
    )
    lines = [header]
    for size in sizes:
        tools = size["tools"]
        floor = tools.get("floor", {}).get("median_s")
        ours = tools.get("retrainer check", {}).get("median_s")
        for name, row in tools.items():
            t = row["median_s"]
            peak = row.get("peak_extra_mb")
            peak_text = "" if peak is None else f"{peak:.0f}"
            if row.get("traced_peak_mb") is not None:
                peak_text += f" ({row['traced_peak_mb']:.1f} traced)"
            cells = [
                f"{size['n']:,}",
                name,
                _fmt_s(t),
                f"{t / floor:.1f}" if floor else "",
                f"{t / ours:.1f}" if ours else "",
                peak_text,
                _flag_text(row.get("flagged")),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(sizes: list[dict[str, Any]]) -> list[str]:
    notes = []
    for size in sizes:
        n, tools = size["n"], size["tools"]
        ours = tools.get("retrainer check")
        if not ours:
            continue
        t = ours["median_s"]
        if "evidently preset" in tools and n >= 100_000:
            ratio = tools["evidently preset"]["median_s"] / t
            notes.append(f"N={n:,}: Evidently / retrainer check = {ratio:.0f}x (target >= 100x)")
        if "nannyml calculate" in tools and n >= 100_000:
            ratio = tools["nannyml calculate"]["median_s"] / t
            notes.append(f"N={n:,}: NannyML calculate / retrainer check = {ratio:.0f}x (>= 10x)")
        if "floor" in tools and n >= 1_000_000:
            ratio = t / tools["floor"]["median_s"]
            notes.append(f"N={n:,}: retrainer check / floor = {ratio:.1f}x (target <= 20x)")
            peak = ours.get("peak_extra_mb")
            if peak is not None:
                notes.append(
                    f"N={n:,}: retrainer check peak extra {peak:.0f} MB vs current frame "
                    f"{size['frame_mb']:.0f} MB (target <=)"
                )
        if n >= 100_000:
            notes.append(
                f"N={n:,}: retrainer flagged {_flag_text(ours.get('flagged'))} (target: exactly "
                f"the {len(EXPECTED)} shifted)"
            )
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=5, help="runs for retrainer, the floor")
    parser.add_argument("--tool-repeats", type=int, default=3, help="runs for Evidently/NannyML")
    parser.add_argument("--skip", nargs="*", default=[], choices=TOOLS)
    parser.add_argument(
        "--bench-python",
        default=str(ROOT / ".venv-bench" / "bin" / "python"),
        help="Python of the venv with Evidently and NannyML (benchmarks/setup.sh)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--save", type=Path, help="also write the JSON results to this file")
    parser.add_argument("--worker", choices=TOOLS, help=argparse.SUPPRESS)
    parser.add_argument("--ref", help=argparse.SUPPRESS)
    parser.add_argument("--cur", help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args.worker, args.ref, args.cur, args.repeats, args.memory)
        return 0
    tools = [t for t in TOOLS if t not in args.skip]
    missing = [t for t in tools if t in THIRD_PARTY and not Path(args.bench_python).exists()]
    if missing:
        print(
            f"{args.bench_python} not found: run `bash benchmarks/setup.sh` or pass "
            f"--skip {' '.join(missing)}",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="retrainer-drift-bench-") as tmp:
        sizes = [
            bench_size(n, tools, args.repeats, args.tool_repeats, args.bench_python, Path(tmp))
            for n in args.sizes
        ]
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "seed": SEED,
        "shifted": SHIFTS,
        "sizes": sizes,
        "targets": targets(sizes),
    }
    if args.save:
        args.save.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(table(sizes))
        print()
        print("\n".join(result["targets"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
