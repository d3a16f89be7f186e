"""Controller benchmark: idle-pipeline tick cost and manual-retrain overhead (issue 4).

Two measurements, each in a fresh temporary folder, with fixed seeds:

``tick``
    ``Controller.tick()`` on a project opened with ``Project.open`` from a written
    ``retrainer.yaml`` (SQLite metadata store, local artifact folder, Parquet prediction log,
    all in the temporary folder) with 1, 10 and 100 pipelines that share one small Parquet
    source (hourly rows over 60 days; a logistic regression on two features). Each pipeline
    has two triggers that do not fire:

    - ``{"schedule": "0 2 * * MON"}``, evaluated on Tuesday to Wednesday (armed, not due);
    - ``{"metric": "ctr", "below": 0.0191, "over": "1d", "min_samples": 1000}``, read from the
      prediction log: even-numbered pipelines have 1,500 labelled predictions in the last day
      at a click rate of about 3% (measured, above the threshold), odd-numbered ones 300
      (insufficient data).

    Every pipeline first gets a champion (one ``execute_run`` each, sanity check off), as in
    a running deployment, so a tick reads every pipeline's states (manual requests, rollout,
    trigger) and champion in a few batched queries, queries the log, evaluates both triggers
    and writes the state back when it changed. After ``--warmup`` ticks (the first one arms
    the schedules), the median, the 90th percentile and the minimum of ``--ticks`` ticks are
    reported, the simulated clock moving 1 minute between ticks. Every measured tick is
    checked to queue nothing and fire nothing.

    ``--pg-pipelines`` runs the same on PostgreSQL (``--pg-url``, default
    ``$RETRAINER_TEST_PG_URL``, which ``source .ci/postgres.sh; pg_start`` sets): each count
    gets a database of its own on that server, created for the run and dropped after it.

``run``
    A manual retrain of the bundled elec2 example
    (``retrainer.engine.scaffold.init_project(dir, "elec2")``) as of 1997-03-03 on its 60-day
    sliding window: ``execute_run`` with the blessing's fresh-process sanity check disabled,
    and (in a second project folder) enabled, against a bare fit + score of the same model
    (``make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))``) on the same
    training rows and holdout rows, with the same three metrics (accuracy, roc_auc, log_loss)
    computed by scikit-learn. The window is loaded once, before timing, for the bare fit. One
    warm-up of each (which also gives each project its champion, so every timed run scores
    the champion too, as a real retrain does), then ``--repeats`` rounds, each timing the
    three one after the other; the overhead is the difference of the medians. The run's own
    step timings (``Run.timings``) are reported as medians too.

``--profile`` adds cProfile listings (top functions by cumulative and by own time, with call
counts) of a few ticks at the largest pipeline count and of one run of each kind.

Usage (from the repository root)::

    .venv/bin/python benchmarks/controller.py
    .venv/bin/python benchmarks/controller.py --pipelines 1 10 --ticks 10 --repeats 3 --json
    .venv/bin/python benchmarks/controller.py --profile
    source .ci/postgres.sh; pg_start
    .venv/bin/python benchmarks/controller.py --skip-run --pipelines 100 1000 --pg-pipelines 1000
    pg_stop
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import logging
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from retrainer.core.clock import SimulatedClock
from retrainer.core.windows import holdout_mask
from retrainer.engine.control.controller import Controller
from retrainer.engine.project import Project
from retrainer.engine.runs.run import execute_run
from retrainer.engine.scaffold import init_project

SEED = 20240304
DATA_START = datetime(2024, 1, 1)
DATA_DAYS = 60
# a Tuesday: the weekly Monday 02:00 schedule is neither due nor about to be
TICK_START = datetime(2024, 2, 27, 12, 0, tzinfo=UTC)
TRIGGERS: list[dict[str, Any]] = [
    {"schedule": "0 2 * * MON"},
    {"metric": "ctr", "below": 0.0191, "over": "1d", "min_samples": 1000},
]
LOGGED_OK = 1500  # labelled predictions in the last day: measured (ctr ~3% > 1.91%)
LOGGED_FEW = 300  # fewer than min_samples: insufficient data
TICK_TARGET_S = 0.5  # 100 pipelines on SQLite
PG_TARGET_S = 2.0  # 1,000 pipelines on PostgreSQL (issue 19)
RUN_TARGET_S = 0.5

ELEC2_AS_OF = datetime(1997, 3, 3, tzinfo=UTC)


# --- tick ------------------------------------------------------------------------------------


def make_source_frame() -> pd.DataFrame:
    rng = np.random.default_rng(SEED)
    n = 24 * DATA_DAYS
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    y = ((x1 + 0.5 * x2 + rng.normal(scale=0.5, size=n)) > 0).astype(int)
    return pd.DataFrame(
        {"ts": pd.date_range(DATA_START, periods=n, freq="h"), "x1": x1, "x2": x2, "y": y}
    )


def pipeline_spec(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "source": {"kind": "parquet", "url": "data.parquet", "time_column": "ts"},
        "target": "y",
        "features": ["x1", "x2"],
        "model": {
            "estimator": "sklearn.linear_model:LogisticRegression",
            "params": {"max_iter": 200},
        },
        "metrics": ["accuracy", "roc_auc"],
        "window": {"kind": "sliding", "duration": "30d"},
        "blessing": {
            "holdout": 0.25,
            "rules": [{"metric": "accuracy", "min": 0.5}],
            "sanity": {"enabled": False},
        },
        "triggers": TRIGGERS,
    }


def write_tick_project(
    root: Path, n_pipelines: int, db_url: str | None = None
) -> tuple[Path, list[str]]:
    root.mkdir(parents=True, exist_ok=True)
    make_source_frame().to_parquet(root / "data.parquet")
    names = [f"p{i:03d}" for i in range(n_pipelines)]
    config = {
        "storage": {
            "db_url": db_url or f"sqlite:///{root / 'meta' / 'retrainer.db'}",
            "artifacts_url": str(root / "artifacts"),
            "logs_url": str(root / "logs"),
            "reports_dir": str(root / "reports"),
        },
        "controller": {"executor": {"kind": "inline"}},
        "pipelines": [pipeline_spec(n) for n in names],
    }
    (root / "meta").mkdir(exist_ok=True)
    (root / "retrainer.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root / "retrainer.yaml", names


def log_serving(project: Project, names: list[str]) -> None:
    """One batch of predictions and one of feedback for all pipelines, in the day before."""
    rng = np.random.default_rng(SEED + 1)
    first = (TICK_START - timedelta(hours=20)).replace(tzinfo=None)
    last = (TICK_START - timedelta(hours=1)).replace(tzinfo=None)
    preds, feedback = [], []
    for i, name in enumerate(names):
        n = LOGGED_OK if i % 2 == 0 else LOGGED_FEW
        times = pd.date_range(first, last, periods=n)
        ids = [f"{name}-{k}" for k in range(n)]
        preds.append(
            pd.DataFrame(
                {
                    "id": ids,
                    "timestamp": times,
                    "pipeline": name,
                    "model_version": 1,
                    "prediction": 1,
                    "score": rng.random(n),
                }
            )
        )
        feedback.append(
            pd.DataFrame(
                {
                    "id": ids,
                    "timestamp": times + pd.Timedelta("5min"),
                    "outcome": (rng.random(n) < 0.03).astype(int),
                }
            )
        )
    logs = project.log_store()
    logs.append_predictions(pd.concat(preds, ignore_index=True))
    logs.append_feedback(pd.concat(feedback, ignore_index=True))


@contextlib.contextmanager
def pg_database(base_url: str | None) -> Any:
    """A fresh database on the server of ``base_url`` (its URL), dropped on exit; None without
    a URL (the SQLite file in the project folder)."""
    if base_url is None:
        yield None
        return
    from retrainer.testing import postgres_database

    with postgres_database(base_url, "rt_bench") as url:
        yield url


def bench_ticks(
    n_pipelines: int,
    *,
    warmup: int,
    ticks: int,
    profile_ticks: int,
    log: Any,
    pg_url: str | None = None,
) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="rt-bench-tick-") as tmp,
        pg_database(pg_url) as db_url,
    ):
        config_path, names = write_tick_project(Path(tmp) / "proj", n_pipelines, db_url)
        project = Project.open(config_path)
        try:
            t0 = time.perf_counter()
            champ_clock = SimulatedClock(TICK_START - timedelta(days=2))
            for name in names:
                result = execute_run(project, name, clock=champ_clock)
                if not result.promoted:
                    raise RuntimeError(f"setup: {name} got no champion: {result.run.error}")
            log_serving(project, names)
            log(
                f"  {n_pipelines} pipelines: setup (champions, log) {time.perf_counter() - t0:.1f}s"
            )

            clock = SimulatedClock(TICK_START)
            controller = Controller(project, clock=clock)
            for _ in range(warmup):
                controller.tick()
                clock.advance(timedelta(minutes=1))
            seconds: list[float] = []
            events = 0
            statuses: dict[str, int] = {}
            for _ in range(ticks):
                t = time.perf_counter()
                report = controller.tick()
                seconds.append(time.perf_counter() - t)
                clock.advance(timedelta(minutes=1))
                if report.queued or report.started or any(d.fire for d in report.decisions):
                    raise RuntimeError("a measured tick fired a trigger; the benchmark is wrong")
                if len(report.decisions) != n_pipelines:
                    raise RuntimeError(
                        f"{len(report.decisions)} decisions for {n_pipelines} pipelines"
                    )
                events += len(report.events)
            for d in report.decisions:  # the last tick's metric-trigger statuses
                for child in d.evidence.get("children", []):
                    ev = child.get("evidence", {})
                    if ev.get("metric") == "ctr":
                        key = str(ev.get("status"))
                        statuses[key] = statuses.get(key, 0) + 1
            profile_text = None
            if profile_ticks:
                prof = cProfile.Profile()
                prof.enable()
                for _ in range(profile_ticks):
                    controller.tick()
                    clock.advance(timedelta(minutes=1))
                prof.disable()
                profile_text = profile_listing(
                    prof, f"{profile_ticks} ticks, {n_pipelines} pipelines"
                )
        finally:
            project.close()
    med = statistics.median(seconds)
    return {
        "store": "postgresql" if pg_url else "sqlite",
        "pipelines": n_pipelines,
        "ticks": ticks,
        "median_ms": med * 1000,
        "p90_ms": float(np.percentile(seconds, 90)) * 1000,
        "min_ms": min(seconds) * 1000,
        "ticks_per_s": 1 / med,
        "ms_per_pipeline": med * 1000 / n_pipelines,
        "events_per_tick": events / ticks,
        "ctr_status": statuses,
        "cprofile": profile_text,
    }


# --- run overhead ----------------------------------------------------------------------------


def elec2_project(root: Path, *, sanity: bool) -> Project:
    init_project(root, "elec2")
    cfg_path = root / "retrainer.yaml"
    data = yaml.safe_load(cfg_path.read_text())
    data["pipelines"][0]["blessing"].setdefault("sanity", {})["enabled"] = sanity
    cfg_path.write_text(yaml.safe_dump(data, sort_keys=False))
    return Project.open(cfg_path)


def bare_fit_score(train: pd.DataFrame, holdout: pd.DataFrame, features: list[str], target: str):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=1.0, class_weight=None, max_iter=1000)
    )
    model.fit(train[features], train[target])
    X, y = holdout[features], holdout[target].to_numpy()
    pred = model.predict(X)
    score = model.predict_proba(X)[:, 1]
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "roc_auc": float(roc_auc_score(y, score)),
        "log_loss": float(log_loss(y, score)),
    }


def bench_run(*, repeats: int, profile: bool, log: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rt-bench-run-") as tmp:
        off = elec2_project(Path(tmp) / "sanity-off", sanity=False)
        on = elec2_project(Path(tmp) / "sanity-on", sanity=True)
        clock = SimulatedClock(ELEC2_AS_OF)
        try:
            pipe = off.pipeline()
            frame, start, end = pipe.load(clock.now())
            mask = holdout_mask(frame[pipe.time_column].to_numpy(), pipe.config.blessing.holdout)
            train, holdout = frame.loc[~mask], frame.loc[mask]
            features, target = pipe.feature_columns, pipe.config.target

            def run_off() -> dict[str, Any]:
                r = execute_run(off, clock=clock)
                if not r.ok:
                    raise RuntimeError(f"run failed: {r.run.error}")
                return dict(r.run.timings)

            def run_on() -> dict[str, Any]:
                r = execute_run(on, clock=clock)
                if not r.ok:
                    raise RuntimeError(f"run failed: {r.run.error}")
                sanity = [e for e in r.verdict.evidence if e.rule == "sanity"]  # type: ignore[union-attr]
                if not sanity or not sanity[0].passed:
                    raise RuntimeError(f"the sanity check did not pass: {sanity}")
                return dict(r.run.timings)

            bare_metrics = bare_fit_score(train, holdout, features, target)  # warm-up
            first_off = execute_run(off, clock=clock)
            run_on()
            ours = first_off.version.metrics if first_off.version else {}
            for k, v in bare_metrics.items():
                if not np.isclose(ours.get(k, np.nan), v, rtol=1e-9, atol=1e-12):
                    raise RuntimeError(f"bare {k}={v} differs from the run's {ours.get(k)}")

            times: dict[str, list[float]] = {"bare": [], "off": [], "on": []}
            steps: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
            for i in range(repeats):
                t = time.perf_counter()
                bare_fit_score(train, holdout, features, target)
                times["bare"].append(time.perf_counter() - t)
                t = time.perf_counter()
                steps["off"].append(run_off())
                times["off"].append(time.perf_counter() - t)
                t = time.perf_counter()
                steps["on"].append(run_on())
                times["on"].append(time.perf_counter() - t)
                log(
                    f"  repeat {i + 1}/{repeats}: bare {times['bare'][-1]:.3f}s, "
                    f"run {times['off'][-1]:.3f}s, run+sanity {times['on'][-1]:.3f}s"
                )
            profiles = {}
            if profile:
                for label, fn in (("off", run_off), ("on", run_on)):
                    prof = cProfile.Profile()
                    prof.enable()
                    fn()
                    prof.disable()
                    profiles[label] = profile_listing(
                        prof,
                        f"one execute_run, sanity {'enabled' if label == 'on' else 'disabled'}",
                    )
        finally:
            off.close()
            on.close()
    bare = statistics.median(times["bare"])
    out: dict[str, Any] = {
        "rows": {"window": len(frame), "train": len(train), "holdout": len(holdout)},
        "window": [start.isoformat() if start else None, end.isoformat()],
        "repeats": repeats,
        "bare_s": bare,
        "bare_all_s": times["bare"],
    }
    for label in ("off", "on"):
        med = statistics.median(times[label])
        keys = sorted({k for s in steps[label] for k in s})
        out[f"run_{label}_s"] = med
        out[f"run_{label}_all_s"] = times[label]
        out[f"overhead_{label}_s"] = med - bare
        out[f"steps_{label}_s"] = {
            k: statistics.median(float(s.get(k, 0.0)) for s in steps[label]) for k in keys
        }
        out[f"cprofile_{label}"] = profiles.get(label)
    return out


# --- reporting -------------------------------------------------------------------------------


def profile_listing(prof: cProfile.Profile, title: str, top: int = 30) -> str:
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.strip_dirs()
    buf.write(f"=== {title}: by cumulative time ===\n")
    stats.sort_stats("cumulative").print_stats(top)
    buf.write(f"=== {title}: by own time ===\n")
    stats.sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def print_tables(ticks: list[dict[str, Any]], run: dict[str, Any] | None) -> None:
    if ticks:
        print(
            "| store | pipelines | median ms/tick | p90 ms | min ms | ticks/s | ms/pipeline "
            "| events/tick |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in ticks:
            print(
                f"| {r['store']} | {r['pipelines']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | "
                f"{r['min_ms']:.1f} | {r['ticks_per_s']:.1f} | {r['ms_per_pipeline']:.2f} | "
                f"{r['events_per_tick']:.1f} |"
            )
        print()
    if run:
        bare = run["bare_s"]
        off, on = run["run_off_s"], run["run_on_s"]
        print(f"| measure (median of {run['repeats']}) | seconds | overhead over bare fit+score |")
        print("|---|---:|---:|")
        print(f"| bare fit + score | {bare:.3f} | |")
        print(f"| execute_run, sanity disabled | {off:.3f} | {run['overhead_off_s']:+.3f} |")
        print(f"| execute_run, sanity enabled | {on:.3f} | {run['overhead_on_s']:+.3f} |")
        print()
        keys = sorted(set(run["steps_off_s"]) | set(run["steps_on_s"]))
        print("| run step (Run.timings, median s) | " + " | ".join(keys) + " |")
        print("|---|" + "---:|" * len(keys))
        for label in ("off", "on"):
            got = run[f"steps_{label}_s"]
            vals = " | ".join(f"{got[k]:.3f}" if k in got else "-" for k in keys)
            print(f"| sanity {'enabled' if label == 'on' else 'disabled'} | {vals} |")
        print()


def verdicts(ticks: list[dict[str, Any]], run: dict[str, Any] | None) -> list[str]:
    out = []
    for store, n, target in (("sqlite", 100, TICK_TARGET_S), ("postgresql", 1000, PG_TARGET_S)):
        for r in ticks:
            if r["store"] == store and r["pipelines"] == n:
                s = r["median_ms"] / 1000
                out.append(
                    f"{n}-pipeline tick on {store} under {target} s: "
                    f"{'met' if s < target else 'MISSED'} ({s:.3f} s)"
                )
    if run:
        for label, what in (("off", "sanity disabled"), ("on", "sanity enabled")):
            o = run[f"overhead_{label}_s"]
            out.append(
                f"run overhead under {RUN_TARGET_S} s, {what}: "
                f"{'met' if o < RUN_TARGET_S else 'MISSED'} ({o:.3f} s)"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pipelines", type=int, nargs="*", default=[1, 10, 100])
    ap.add_argument(
        "--pg-pipelines",
        type=int,
        nargs="*",
        default=[],
        help="pipeline counts to measure on PostgreSQL too (needs --pg-url)",
    )
    ap.add_argument(
        "--pg-url",
        default=os.environ.get("RETRAINER_TEST_PG_URL"),
        help="a PostgreSQL server's SQLAlchemy URL (default: $RETRAINER_TEST_PG_URL)",
    )
    ap.add_argument("--warmup", type=int, default=3, help="ticks before measuring")
    ap.add_argument("--ticks", type=int, default=20, help="measured ticks per pipeline count")
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds of the run benchmark")
    ap.add_argument("--skip-ticks", action="store_true")
    ap.add_argument("--skip-run", action="store_true")
    ap.add_argument("--profile", action="store_true", help="add cProfile listings")
    ap.add_argument(
        "--profile-ticks", type=int, default=5, help="ticks profiled at the largest count"
    )
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = ap.parse_args(argv)

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.pg_pipelines and not args.pg_url:
        ap.error("--pg-pipelines needs --pg-url or RETRAINER_TEST_PG_URL")
    ticks: list[dict[str, Any]] = []
    if not args.skip_ticks:
        cases = [(n, None) for n in args.pipelines] + [(n, args.pg_url) for n in args.pg_pipelines]
        biggest = max((n for n, _ in cases), default=0)
        for n, pg_url in cases:
            log(f"tick benchmark, {n} pipeline(s), {'postgresql' if pg_url else 'sqlite'}")
            ticks.append(
                bench_ticks(
                    n,
                    warmup=args.warmup,
                    ticks=args.ticks,
                    profile_ticks=args.profile_ticks if args.profile and n == biggest else 0,
                    log=log,
                    pg_url=pg_url,
                )
            )
    run = None
    if not args.skip_run:
        log("run benchmark (elec2 as of 1997-03-03)")
        run = bench_run(repeats=args.repeats, profile=args.profile, log=log)

    result: dict[str, Any] = {
        "machine": machine(),
        "ticks": ticks,
        "run": run,
        "verdicts": verdicts(ticks, run),
    }
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    m = result["machine"]
    print(f"# controller benchmark: Python {m['python']}, {m['cpus']} CPUs, {m['platform']}\n")
    print_tables(ticks, run)
    for line in result["verdicts"]:
        print(f"- {line}")
    if args.profile:
        for r in ticks:
            if r["cprofile"]:
                print("\n" + r["cprofile"])
        if run:
            for label in ("off", "on"):
                if run.get(f"cprofile_{label}"):
                    print("\n" + run[f"cprofile_{label}"])
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
