"""Prediction-log benchmark: append throughput and a one-day joined query (issue 3, item 5).

Generates, with a fixed seed, N logged predictions (default 1M) spread evenly over ``--days``
days (default 10), each with an id, a time, the pipeline, a model version, a 0/1 prediction,
a score, 5 float features and 1 string feature, plus one feedback row (a 0/1 click) per
prediction arriving 0-6 hours after it. Then, on a fresh ``ParquetLogStore`` in a temporary
folder (and on ``InMemoryLogStore`` for comparison):

- ``append predictions``: the predictions in batches of ``--batch`` rows (validation,
  Parquet encoding, fsync, rename); rows per second;
- ``append feedback``: the same for the feedback;
- ``joined 1 day``: ``joined(pipeline, day, day + 1, feedback_until=...)`` for one day in the
  middle (N / days predictions joined with the feedback that has arrived), median of
  ``--repeats`` runs;
- ``online_performance 1 day``: hourly ctr, accuracy and roc_auc for the same day, from the log
  (the join plus the metrics), median;
- ``compact 1 day`` and the joined query again on the compacted day.

Usage (from the repository root)::

    .venv/bin/python benchmarks/logstore.py
    .venv/bin/python benchmarks/logstore.py --rows 100000 --batch 1000 --json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from retrainer.adapters.logstore import InMemoryLogStore, LogStore, ParquetLogStore
from retrainer.engine.monitoring.online import online_performance

SEED = 20240305
START = datetime(2024, 1, 1)


def make_logs(rows: int, days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(SEED)
    span_us = days * 24 * 3600 * 10**6
    offsets = np.sort(rng.integers(0, span_us, rows))
    times = pd.Timestamp(START) + pd.to_timedelta(offsets, unit="us")
    score = rng.random(rows)
    ids = np.char.add("req-", np.arange(rows).astype(str))
    predictions = pd.DataFrame(
        {
            "id": pd.array(ids, dtype="str"),
            "timestamp": times,
            "pipeline": "ads",
            "model_version": 7,
            "prediction": (score > 0.5).astype(np.int64),
            "score": score,
            **{f"f{i}": rng.normal(size=rows) for i in range(5)},
            "country": pd.array(rng.choice(["de", "fr", "nl", "us", "uk"], rows), dtype="str"),
        }
    )
    delay = pd.to_timedelta(rng.integers(0, 6 * 3600 * 10**6, rows), unit="us")
    feedback = pd.DataFrame(
        {
            "id": predictions["id"],
            "timestamp": times + delay,
            "outcome": (rng.random(rows) < score * 0.1).astype(np.int64),
        }
    ).sort_values("timestamp", kind="stable", ignore_index=True)
    return predictions, feedback


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t, out = timed(fn)
        times.append(t)
    return statistics.median(times), out


def append_all(store: LogStore, frame: pd.DataFrame, batch: int, kind: str) -> float:
    append = store.append_predictions if kind == "predictions" else store.append_feedback

    def run() -> None:
        for lo in range(0, len(frame), batch):
            append(frame.iloc[lo : lo + batch])

    seconds, _ = timed(run)
    return seconds


def bench_store(
    name: str, store: LogStore, predictions: pd.DataFrame, feedback: pd.DataFrame, args: Any
) -> dict[str, Any]:
    day = START + timedelta(days=args.days // 2)
    until = day + timedelta(days=1, hours=6)
    result: dict[str, Any] = {"store": name}
    t = append_all(store, predictions, args.batch, "predictions")
    result["append_predictions_s"] = t
    result["append_predictions_rows_per_s"] = len(predictions) / t
    t = append_all(store, feedback, args.batch, "feedback")
    result["append_feedback_s"] = t
    result["append_feedback_rows_per_s"] = len(feedback) / t

    def join() -> pd.DataFrame:
        return store.joined("ads", day, day + timedelta(days=1), feedback_until=until)

    t, frame = median_time(join, args.repeats)
    result["joined_1_day_s"] = t
    result["joined_1_day_rows"] = len(frame)

    def perf() -> Any:
        return online_performance(
            store,
            "ads",
            ["ctr", "accuracy", "roc_auc"],
            start=day,
            end=day + timedelta(days=1),
            every="1h",
            now=until,
            min_samples=100,
        )

    t, windows = median_time(perf, args.repeats)
    result["online_performance_1_day_s"] = t
    result["online_performance_windows"] = len(windows)
    t, merged = timed(lambda: store.compact(day.date()))
    result["compact_1_day_s"] = t
    result["compact_segments"] = merged
    t, frame2 = median_time(join, args.repeats)
    result["joined_1_day_compacted_s"] = t
    assert len(frame2) == len(frame)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    predictions, feedback = make_logs(args.rows, args.days)
    results = []
    with tempfile.TemporaryDirectory() as root:
        results.append(bench_store("parquet", ParquetLogStore(root), predictions, feedback, args))
    if not args.skip_memory:
        results.append(bench_store("memory", InMemoryLogStore(), predictions, feedback, args))
    meta = {
        "rows": args.rows,
        "days": args.days,
        "batch": args.batch,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
    }
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return
    print(
        f"{args.rows:,} predictions + {args.rows:,} feedback rows over {args.days} days, "
        f"batches of {args.batch:,}"
    )
    keys = [k for k in results[0] if k != "store"]
    print(f"{'':34}" + "".join(f"{r['store']:>14}" for r in results))
    for key in keys:
        cells = []
        for r in results:
            v = r[key]
            cells.append(f"{v:>14,.0f}" if "rows" in key or isinstance(v, int) else f"{v:>14.3f}")
        print(f"{key:34}" + "".join(cells))


if __name__ == "__main__":
    main()
