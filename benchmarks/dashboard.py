"""Dashboard benchmark: the pages at scale, timed server-side in process (issue 18, "Speed").

Builds (once, cached in ``--dir``; ``--rebuild`` starts again) a real retrainer project at
the issue's scale, then times the dashboard's pages against it.

The project (``<dir>/project``):

- ``retrainer.yaml`` with 100 pipelines (``p000`` ... ``p099``) reading one shared Parquet file
  (the elec2 example's data), each with a schedule trigger and a metric trigger, metrics, a
  ``monitor:`` section, and for every 20th pipeline (``p010``, ``p030``...) an ``ab`` rollout;
- its SQLite metadata store, created by ``Project.open`` (so the migrations run), holding
  100 pipelines x 50 model versions (blessed or rejected, with the gate's evidence, a snapshot
  and a reference profile each), their runs (plus failed ones) with step timings, the
  champion's alias history (promotions and some rollbacks), 60 daily monitor windows per
  pipeline (drift rows per feature, performance per day), a running A/B rollout for the
  rollout pipelines, and 1,000,000 events over 60 days (``trigger.evaluated`` ticks,
  ``trigger.fired``, ``run.*``, ``blessing.*``, ``model.promoted``/``model.rolled_back``,
  ``monitor.completed``, ``drift.detected``, ``alert.*``, ``rollout.*``);
- its Parquet log store with 1,000,000 logged predictions and their feedback (0-6 hours
  later), served by each pipeline's champion of the time, whose accuracy decays between
  retrains.

The record shapes come from the real engine: one real run (load, train, bless with the
fresh-process sanity check, register) and one real ``run_monitor`` of the first pipeline are
the templates; the rest is inserted with SQLAlchemy Core ``executemany`` in large
transactions (one row at a time through the store would take hours), and read back through
the store's API (``get_version``, ``list_runs``, ``alias_history``, ``list_monitor_results``,
``list_events``, ``get_state``) as a check. The history ends at the day the project was built
(midnight UTC): the figures of a cached project age with it.

The timing harness opens the project with ``Project.open``, builds the dashboard app in
process (``create_dashboard_app(project, authenticate=...)`` with an admin token; before the
dashboard exists, the server's ``create_app`` and ``/v1/status``), and times GET requests
with Starlette's ``TestClient`` (request to complete body, in this process: no network, no
browser): ``--warmup`` requests, then ``--repeat`` timed ones per page; the table gives the
median, p95 and max in milliseconds, the median CPU time of this process per request (steadier
than the wall time on a shared machine), the status and the body size. ``--profile URL`` prints
a cProfile profile of one request instead (retrainer's, SQLAlchemy's, Jinja's, DuckDB's and
pandas' functions by cumulative time, then the top functions by own time).

Usage (from the repository root)::

    .venv/bin/python benchmarks/dashboard.py                     # build once, then time
    .venv/bin/python benchmarks/dashboard.py --repeat 50 --json
    .venv/bin/python benchmarks/dashboard.py --profile /ui/pipelines/p005
    .venv/bin/python benchmarks/dashboard.py --dir /tmp/dash-small --pipelines 10 \\
        --events 50000 --predictions 50000 --rebuild            # a quick small one
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

SEED = 20240518
FEATURES = ["period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]
SEED_AS_OF = datetime(1997, 1, 6, tzinfo=UTC)  # the seed run's "now" on elec2's data
ROLLOUT_EVERY = 20  # p010, p030, p050...: an ab rollout configured, one running
BATCH = 20_000  # rows per executemany
MANIFEST = "manifest.json"
UNDECIDED = "the 95% confidence sequence [-0.01172, 0.1678] is not yet decisive"


@dataclass(frozen=True)
class Scale:
    pipelines: int = 100
    versions: int = 50  # per pipeline
    events: int = 1_000_000
    predictions: int = 1_000_000
    windows: int = 60  # monitor windows per pipeline, one a day
    days: int = 60  # the history's length


def is_rollout(i: int) -> bool:
    return i % ROLLOUT_EVERY == ROLLOUT_EVERY // 2


def log(message: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:6.1f} s] {message}", flush=True)


# --- the project's files -------------------------------------------------------------------


def pipeline_yaml(i: int) -> str:
    name = f"p{i:03d}"
    metric_trigger = (
        "{metric: accuracy, drop: 0.03, over: 3d}"
        if i % 2
        else "{metric: accuracy, below: 0.7, over: 1d}"
    )
    rollout = (
        """
    rollout:
      strategy: ab
      split: 0.5
      metric: accuracy
      min_effect: 0.02
      tau: 0.05
      min_samples: 100
      max_duration: 21d
      watch: 1d"""
        if is_rollout(i)
        else ""
    )
    return f"""
  - name: {name}
    source: {{kind: parquet, url: data/shared.parquet, time_column: timestamp}}
    target: up
    features: [{", ".join(FEATURES)}]
    model: {{estimator: "sklearn.linear_model:LogisticRegression", params: {{max_iter: 200}}}}
    metrics: [accuracy, roc_auc, log_loss]
    window: {{kind: sliding, duration: 60d}}
    blessing:
      holdout: 0.2
      rules:
        - {{metric: accuracy, min: 0.55}}
        - {{metric: accuracy, max_regression: 0.005}}
        - {{metric: log_loss, max_regression: 0.05, relative: true}}
      sanity: {{sample_rows: 200}}
    triggers:
      - schedule: "{i % 60} {i % 24} * * *"
      - {metric_trigger}
    monitor:
      window: 7d
      data: log
      performance: {{every: 1d, min_samples: 40}}{rollout}
"""


def write_project(folder: Path, scale: Scale) -> None:
    import retrainer.examples

    (folder / "data").mkdir(parents=True)
    elec2 = Path(retrainer.examples.__file__).parent / "elec2" / "data" / "elec2.parquet"
    shutil.copyfile(elec2, folder / "data" / "shared.parquet")
    text = (
        "# retrainer.yaml written by benchmarks/dashboard.py: 100 pipelines on one shared file\n"
        "storage:\n"
        "  db_url: sqlite:///.retrainer/retrainer.db\n"
        "  artifacts_url: .retrainer/artifacts\n"
        "  logs_url: .retrainer/logs\n"
        "pipelines:" + "".join(pipeline_yaml(i) for i in range(scale.pipelines))
    )
    (folder / "retrainer.yaml").write_text(text, encoding="utf-8")


# --- templates from the real engine --------------------------------------------------------


def seed_templates(folder: Path) -> dict[str, Any]:
    """One real run and one real monitor window of p000: the shapes every row copies."""
    import sqlalchemy as sa

    from retrainer.adapters.metadata.sql import schema
    from retrainer.core.clock import SimulatedClock
    from retrainer.engine.monitoring.monitor import run_monitor
    from retrainer.engine.project import Project
    from retrainer.engine.runs.run import execute_run

    with Project.open(folder) as project:
        project.git = ("0" * 40, False)
        first = project.config.pipelines[0].name
        result = execute_run(project, first, clock=SimulatedClock(SEED_AS_OF))
        if not result.ok or result.version is None:
            raise SystemExit(f"the seed run failed: {result.run.error}")
        # the monitor reads the log (monitor.data: log): log a week of the champion's answers
        log_seed_week(project, first, result.version.version)
        run_monitor(
            project, first, clock=SimulatedClock(SEED_AS_OF + timedelta(days=7)), report=False
        )
        hashes = {
            p.name: project.pipeline(p.name).definition_hash for p in project.config.pipelines
        }
    engine = sa.create_engine(db_url(folder))
    with engine.connect() as conn:

        def one(table: sa.Table) -> dict[str, Any]:
            return dict(
                conn.execute(sa.select(table).order_by(table.c.id)).mappings().first() or {}
            )

        templates = {
            "snapshot": one(schema.snapshots),
            "run": one(schema.runs),
            "version": one(schema.model_versions),
            "monitor": one(schema.monitor_results),
            "hashes": hashes,
        }
    engine.dispose()
    return templates


def log_seed_week(project: Any, pipeline: str, version: int) -> None:
    import pandas as pd

    frame = pd.read_parquet(project.root / "data" / "shared.parquet")
    week = frame[
        (frame["timestamp"] >= SEED_AS_OF.replace(tzinfo=None))
        & (frame["timestamp"] < (SEED_AS_OF + timedelta(days=7)).replace(tzinfo=None))
    ].reset_index(drop=True)
    model = project.load_version(project.store.get_version(pipeline, version))
    ids = [f"seed-{i}" for i in range(len(week))]
    logs = project.log_store()
    logs.append_predictions(
        pd.DataFrame(
            {
                "id": ids,
                "timestamp": week["timestamp"],
                "pipeline": pipeline,
                "model_version": version,
                "prediction": model.predict(week[FEATURES]),
                "score": model.predict_proba(week[FEATURES])[:, 1],
                **{f: week[f] for f in FEATURES},
            }
        )
    )
    logs.append_feedback(
        pd.DataFrame(
            {
                "id": ids,
                "timestamp": week["timestamp"] + pd.Timedelta(hours=1),
                "outcome": week["up"],
            }
        )
    )


def db_url(folder: Path) -> str:
    return f"sqlite:///{folder / '.retrainer' / 'retrainer.db'}"


# --- the history ---------------------------------------------------------------------------


def naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


@dataclass
class History:
    """What the generator decided, per pipeline, that later steps (logs) need."""

    champion_times: dict[str, list[datetime]]  # when the champion moved
    champion_versions: dict[str, list[int]]  # to which version


def jitter_metrics(rng: np.random.Generator, base: dict[str, Any], scale: float) -> dict[str, Any]:
    out = {}
    for k, v in base.items():
        out[k] = float(v) + float(rng.normal(0, scale)) if isinstance(v, (int, float)) else v
    return out


def build_metadata(
    folder: Path, scale: Scale, templates: dict[str, Any], end: datetime, started: float
) -> History:
    """Every row of the metadata store, inserted in large transactions."""
    import sqlalchemy as sa

    from retrainer.adapters.metadata.sql import schema

    rng = np.random.default_rng(SEED)
    start = end - timedelta(days=scale.days)
    engine = sa.create_engine(db_url(folder))
    names = [f"p{i:03d}" for i in range(scale.pipelines)]
    with engine.begin() as conn:
        for table in (
            schema.events,
            schema.monitor_results,
            schema.alias_moves,
            schema.model_versions,
            schema.runs,
            schema.snapshots,
            schema.pipeline_state,
        ):
            conn.execute(table.delete())
        existing = {r[0] for r in conn.execute(sa.select(schema.pipelines.c.name))}
        rows = [
            {
                "name": n,
                "definition_hash": templates["hashes"][n],
                "created_at": naive(start),
                "updated_at": naive(start),
            }
            for n in names
            if n not in existing
        ]
        if rows:
            conn.execute(schema.pipelines.insert(), rows)

    snap_t, run_t, ver_t, mon_t = (templates[k] for k in ("snapshot", "run", "version", "monitor"))
    ver_t = {k: v for k, v in ver_t.items() if k != "id"}
    snapshots: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    versions: list[dict[str, Any]] = []
    moves: list[dict[str, Any]] = []
    sparse: list[dict[str, Any]] = []  # every event but the trigger.evaluated ticks
    states: list[tuple[str, str, dict[str, Any], datetime]] = []
    history = History({}, {})
    run_id = snap_id = 0
    span = end - start
    base_metrics = dict(ver_t["metrics"])

    def event(
        kind: str,
        at: datetime,
        message: str,
        pipeline: str | None,
        data: dict[str, Any],
        *,
        run: int | None = None,
        version: int | None = None,
    ) -> None:
        sparse.append(
            {
                "kind": kind,
                "at": naive(at),
                "message": message,
                "pipeline": pipeline,
                "run_id": run,
                "version": version,
                "data": data,
            }
        )

    for p_index, name in enumerate(names):
        n_runs = scale.versions + scale.versions // 10  # some failed runs besides
        # run times: evenly over the history with jitter, the first in its first hours
        last_slot = 0.95 if is_rollout(p_index) else 0.995  # an A/B test 3 days old
        slots = np.linspace(0.01, last_slot, n_runs) + rng.uniform(-0.004, 0.004, n_runs)
        failed_at = set(
            rng.choice(np.arange(1, n_runs - 1), n_runs - scale.versions, replace=False).tolist()
        )
        champion: int | None = None
        previous_champions: list[int] = []
        times: list[datetime] = []
        moved_to: list[int] = []
        number = 0
        for k in range(n_runs):
            at = start + span * float(slots[k])
            at = at.replace(microsecond=0)
            run_id += 1
            cause = "manual" if k == 0 else ("schedule" if k % 3 else "metric")
            cron = f"{p_index % 60} {p_index % 24} * * *"
            n_rows = int(rng.integers(200, 900))
            if cause == "schedule":
                evidence = {
                    "reason": f"schedule '{cron}' (UTC): slot {iso(at)} is due",
                    "cron": cron,
                    "now": iso(at),
                    "latest_slot": iso(at),
                }
            elif cause == "metric":
                value = float(rng.uniform(0.6, 0.69))
                evidence = {
                    "reason": f"accuracy {value:.4g} below 0.7 over 1d (n={n_rows})",
                    "metric": "accuracy",
                    "over": "1d",
                    "value": value,
                    "n": n_rows,
                    "status": "ok",
                    "baseline": 0.78,
                    "conditions": [
                        {"kind": "below", "threshold": 0.7, "value": value, "met": True}
                    ],
                }
            else:
                evidence = {"reason": "manual request by benchmark", "by": "benchmark"}
            key = f"{name}/{cause}/{iso(at)}"
            trigger_data = {
                "trigger": cause,
                "fired_by": cause,
                "slot": iso(at),
                "fire": True,
                "reason": evidence["reason"],
                "evidence": evidence,
            }
            if cause != "manual":
                event("trigger.fired", at, f"{name}: {evidence['reason']}", name, trigger_data)
            event(
                "run.queued",
                at,
                f"run {run_id} of {name} queued by {cause}",
                name,
                {"key": key, "trigger": cause, "slot": iso(at)},
                run=run_id,
            )
            t_run = at + timedelta(seconds=2)
            event(
                "run.started",
                t_run,
                f"run {run_id} of {name} started ({cause})",
                name,
                {"cause": cause, "evidence": evidence, "attempt": 1},
                run=run_id,
            )
            timings = {
                step: round(float(v) * float(rng.uniform(0.7, 1.5)), 6)
                for step, v in run_t["timings"].items()
            }
            finished = t_run + timedelta(
                seconds=sum(v for s, v in timings.items() if s != "train_cpu")
            )
            run_row = {
                **run_t,
                "id": run_id,
                "key": key,
                "pipeline": name,
                "cause": cause,
                "created_at": naive(at),
                "evidence": evidence,
                "started_at": naive(t_run),
                "finished_at": naive(finished),
                "timings": timings,
                "owner": None,
                "lease_expires_at": None,
                "epoch": 1,
                "attempts": 1,
            }
            if k in failed_at:
                error = "DataError: column 'nswprice' has 48 value(s) that are not numbers"
                runs.append(
                    {
                        **run_row,
                        "status": "failed",
                        "error": error,
                        "version": None,
                        "outcome": None,
                        "snapshot_id": None,
                        "metrics": {},
                    }
                )
                event(
                    "run.failed",
                    finished,
                    f"run {run_id} of {name} failed: {error}",
                    name,
                    {"error": error, "attempt": 1},
                    run=run_id,
                )
                continue
            snap_id += 1
            number += 1
            window_start = at - timedelta(days=60)
            snapshots.append(
                {
                    **snap_t,
                    "id": snap_id,
                    "pipeline": name,
                    "window_start": naive(window_start),
                    "window_end": naive(at),
                    "min_time": naive(window_start),
                    "max_time": naive(at - timedelta(minutes=30)),
                    "row_count": int(rng.integers(2500, 2900)),
                    "fingerprint": f"{snap_id:064x}",
                    "created_at": naive(at),
                }
            )
            metrics = jitter_metrics(rng, base_metrics, 0.02)
            rollout_pipeline = is_rollout(p_index)
            last = k == n_runs - 1
            blessed = number == 1 or (rollout_pipeline and last) or rng.random() < 0.75
            evidence_rows = copy.deepcopy(ver_t["blessing_evidence"])
            if isinstance(evidence_rows, list):
                for row in evidence_rows:
                    if isinstance(row, dict) and isinstance(row.get("candidate"), (int, float)):
                        row["candidate"] = float(row["candidate"]) + float(rng.normal(0, 0.01))
                    if isinstance(row, dict) and champion is not None and "champion" in row:
                        row["champion"] = float(
                            base_metrics.get(row.get("metric", "accuracy"), 0.7) or 0.7
                        )
                    if isinstance(row, dict) and "passed" in row and not blessed:
                        row["passed"] = bool(rng.random() < 0.5)
            reason = (
                ver_t["blessing_reason"]
                if blessed
                else "1 of 3 checks failed: accuracy regressed 0.0112 vs the champion (max 0.005)"
            )
            versions.append(
                {
                    **ver_t,
                    "pipeline": name,
                    "version": number,
                    "created_at": naive(finished),
                    "run_id": run_id,
                    "metrics": metrics,
                    "snapshot_id": snap_id,
                    "blessed": blessed,
                    "blessing_reason": reason,
                    "blessing_champion_version": champion,
                    "blessing_evidence": evidence_rows,
                }
            )
            verdict = "blessed" if blessed else "rejected"
            event(
                "blessing.passed" if blessed else "blessing.rejected",
                finished,
                f"{name}: candidate from run {run_id} {verdict}: {reason}",
                name,
                {
                    "passed": blessed,
                    "reason": reason,
                    "champion_version": champion,
                    "metrics": metrics,
                },
                run=run_id,
                version=number,
            )
            if blessed and rollout_pipeline and last:
                # the newest candidate is in an A/B test against the champion
                outcome = "registered"
                moves.append(
                    {
                        "pipeline": name,
                        "alias": "challenger",
                        "version": number,
                        "previous": None,
                        "at": naive(finished),
                        "reason": f"rollout of v{number}",
                        "actor": "retrainer daemon",
                    }
                )
                event(
                    "model.promoted",
                    finished,
                    f"{name} v{number} promoted to challenger",
                    name,
                    {"alias": "challenger", "previous": None, "policy": "ab"},
                    run=run_id,
                    version=number,
                )
                policy = {
                    "strategy": "ab",
                    "metric": "accuracy",
                    "min_effect": 0.02,
                    "tau": 0.05,
                    "min_samples": 100,
                    "max_duration": "21d",
                    "watch": "1d",
                    "split": 0.5,
                }
                event(
                    "rollout.started",
                    finished,
                    f"{name}: ab rollout of v{number} against v{champion} started (50% of traffic)",
                    name,
                    {"policy": policy, "champion": champion, "share": 0.5},
                    run=run_id,
                    version=number,
                )
                states.append(
                    (
                        name,
                        "rollout",
                        rollout_state(name, number, champion or 1, finished, run_id, end),
                        finished,
                    )
                )
                t = finished + timedelta(hours=6)
                looks = 0
                while t < end:
                    looks += 1
                    event(
                        "rollout.evaluated",
                        t,
                        f"{name}: ab rollout of v{number}: {UNDECIDED}",
                        name,
                        rollout_evidence(champion or 1, looks),
                        version=number,
                    )
                    t += timedelta(hours=6)
            elif blessed:
                outcome = "promoted"
                moves.append(
                    {
                        "pipeline": name,
                        "alias": "champion",
                        "version": number,
                        "previous": champion,
                        "at": naive(finished),
                        "reason": f"run {run_id} blessed",
                        "actor": "retrainer daemon",
                    }
                )
                event(
                    "model.promoted",
                    finished,
                    f"{name} v{number} promoted to champion",
                    name,
                    {"alias": "champion", "previous": champion, "policy": "replace"},
                    run=run_id,
                    version=number,
                )
                if champion is not None:
                    previous_champions.append(champion)
                champion = number
                times.append(finished)
                moved_to.append(number)
                # about one promotion in 8 is rolled back a few hours later
                back = finished + timedelta(hours=int(rng.integers(2, 12)))
                if previous_champions and back < end and rng.random() < 0.12:
                    target = previous_champions[-1]
                    moves.append(
                        {
                            "pipeline": name,
                            "alias": "champion",
                            "version": target,
                            "previous": champion,
                            "at": naive(back),
                            "reason": "rollback: online accuracy fell",
                            "actor": "admin",
                        }
                    )
                    event(
                        "model.rolled_back",
                        back,
                        f"{name} champion rolled back from v{champion} to v{target}",
                        name,
                        {"alias": "champion", "previous": champion},
                        version=target,
                    )
                    champion = target
                    times.append(back)
                    moved_to.append(target)
            else:
                outcome = "not_blessed"
            runs.append(
                {
                    **run_row,
                    "status": "succeeded",
                    "error": None,
                    "version": number,
                    "outcome": outcome,
                    "snapshot_id": snap_id,
                    "metrics": metrics,
                }
            )
            event(
                "run.succeeded",
                finished,
                f"run {run_id} of {name} succeeded: v{number} {outcome.replace('_', ' ')}",
                name,
                {"outcome": outcome, "timings": timings},
                run=run_id,
                version=number,
            )
        history.champion_times[name] = times
        history.champion_versions[name] = moved_to

    # monitor windows: one a day, ending at midnight, on the champion of the time
    monitors: list[dict[str, Any]] = []
    summary_t = mon_t["summary"]
    for name in names:
        times, moved = history.champion_times[name], history.champion_versions[name]
        for w in range(scale.windows):
            w_end = end - timedelta(days=scale.windows - w)
            w_start = w_end - timedelta(days=7)
            idx = (
                int(
                    np.searchsorted(
                        np.array([naive(t) for t in times], dtype="datetime64[us]"),
                        np.datetime64(naive(w_end)),
                        side="right",
                    )
                )
                - 1
            )
            if idx < 0:
                continue
            version = moved[idx]
            summary, drifted_cols = monitor_summary(summary_t, rng, w_start, w_end, version)
            drifted = bool(summary["drift"]["drifted"])
            at = w_end + timedelta(minutes=5)
            monitors.append(
                {
                    "pipeline": name,
                    "version": version,
                    "window_start": naive(w_start),
                    "window_end": naive(w_end),
                    "created_at": naive(at),
                    "drifted": drifted,
                    "summary": summary,
                }
            )
            event(
                "monitor.completed",
                at,
                f"{name} v{version}: {len(drifted_cols)} of {len(FEATURES)} features drifted",
                name,
                {
                    "window_start": iso(w_start),
                    "window_end": iso(w_end),
                    "drifted": drifted,
                    "drifted_columns": drifted_cols,
                    "concept_drift": False,
                },
                version=version,
            )
            if drifted_cols:
                event(
                    "drift.detected",
                    at,
                    f"{name}: {len(drifted_cols)} of {len(FEATURES)} features drifted "
                    f"({', '.join(drifted_cols)})",
                    name,
                    {"share": len(drifted_cols) / len(FEATURES), "columns": drifted_cols},
                    version=version,
                )
                sent = rng.random() < 0.3
                event(
                    "alert.sent" if sent else "alert.suppressed",
                    at + timedelta(seconds=1),
                    f"drift.detected alert for {name} {'sent' if sent else 'suppressed'} via log",
                    name,
                    {
                        "status": "sent" if sent else "deduplicated",
                        "notifier": "log",
                        "alert_kind": "drift.detected",
                        "severity": "warning",
                        "dedupe_key": f"drift.detected|{name}",
                        "attempts": 1,
                    },
                    version=version,
                )
    log(
        f"{len(runs):,} runs, {len(versions):,} versions, {len(moves):,} alias moves, "
        f"{len(monitors):,} monitor windows, {len(sparse):,} events besides the ticks",
        started,
    )

    with engine.begin() as conn:
        for table, rows in (
            (schema.snapshots, snapshots),
            (schema.runs, runs),
            (schema.model_versions, versions),
            (schema.alias_moves, moves),
            (schema.monitor_results, monitors),
        ):
            for chunk in chunks(rows, BATCH):
                conn.execute(table.insert(), chunk)
    log("runs, versions, aliases and monitor windows inserted", started)
    insert_events(engine, sparse, names, scale, start, end, rng, started)
    engine.dispose()

    from retrainer.engine.project import Project

    with Project.open(folder) as project:
        for name, key, value, at in states:
            project.store.put_state(name, key, value, at=at)
        remember_windows(project.store, monitors)
    log("rollout states and the monitor's brief stored", started)
    return history


def remember_windows(store: Any, monitors: list[dict[str, Any]]) -> None:
    """The monitor's brief in each pipeline's state, as ``run_monitor`` folds it in (when this
    retrainer keeps one: the overview reads it instead of the windows' summaries)."""
    try:
        from retrainer.engine.monitoring.recent import remember
    except ImportError:
        return
    for m in monitors:
        drift = m["summary"]["drift"]
        remember(
            store,
            m["pipeline"],
            at=m["created_at"].replace(tzinfo=UTC),
            performance=m["summary"]["performance"],
            drift={
                "end": iso(m["window_end"].replace(tzinfo=UTC)),
                "drifted": drift["drifted"],
                "columns": drift["drifted_columns"],
                "share": drift["share_drifted"],
            },
        )


def chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def monitor_summary(
    template: dict[str, Any],
    rng: np.random.Generator,
    w_start: datetime,
    w_end: datetime,
    version: int,
) -> tuple[dict[str, Any], list[str]]:
    """The seed window's summary with this window's times and fresh figures."""
    summary = copy.deepcopy(template)
    summary["window"] = {"start": iso(w_start), "end": iso(w_end)}
    if "version" in summary:
        summary["version"] = version
    drifted: list[str] = []
    drift = summary["drift"]
    for row in drift["rows"]:
        p = float(rng.beta(0.5, 1.5)) if row["role"] == "feature" else float(rng.uniform(0, 1))
        row["statistic"] = float(rng.uniform(0.01, 0.3))
        row["p_value"] = p
        row["adjusted_p_value"] = min(1.0, p * len(FEATURES))
        row["distance"] = float(rng.uniform(0.0, 0.4))
        row["drifted"] = row["adjusted_p_value"] < row["threshold"]
        if row["drifted"] and row["role"] == "feature":
            drifted.append(row["feature"])
    drift["drifted_columns"] = list(drifted)
    drift["n_drifted"] = len(drifted)
    drift["share_drifted"] = len(drifted) / len(FEATURES)
    drift["drifted"] = drift["share_drifted"] >= drift["drift_share"]
    days = []
    for d in range(7):
        day = copy.deepcopy(summary["performance"][d % len(summary["performance"])])
        day["start"] = iso(w_start + timedelta(days=d))
        day["end"] = iso(w_start + timedelta(days=d + 1))
        day["n_rows"] = day["n_labelled"] = int(rng.integers(120, 220))
        for m in day["metrics"]:
            if m["value"] is not None and m["name"] != "log_loss":
                m["value"] = float(np.clip(m["value"] + rng.normal(0, 0.03), 0, 1))
            m["n"] = day["n_labelled"]
        days.append(day)
    summary["performance"] = days
    return summary, drifted


def rollout_state(
    name: str, candidate: int, champion: int, started_at: datetime, run_id: int, end: datetime
) -> dict[str, Any]:
    return {
        "pipeline": name,
        "strategy": "ab",
        "candidate": candidate,
        "champion": champion,
        "status": "running",
        "share": 0.5,
        "started_at": iso(started_at),
        "step": 0,
        "step_started_at": iso(started_at),
        "promoted_at": None,
        "ended_at": None,
        "run_id": run_id,
        "reason": UNDECIDED,
        "test": {
            "version": 1,
            "champion": {"n": 452, "mean": 0.615, "m2": 107.1},
            "candidate": {"n": 436, "mean": 0.704, "m2": 90.8},
            "difference": None,
            "p_value": 0.11,
            "low": -0.01172,
            "high": 0.1678,
            "looks": 12,
        },
        "evidence": rollout_evidence(champion, 12),
    }


def rollout_evidence(champion: int, looks: int) -> dict[str, Any]:
    n = 40 * looks
    return {
        "status": "running",
        "share": 0.5,
        "champion": champion,
        "guards": [
            {
                "name": "error_rate",
                "value": 0.0,
                "limit": 0.05,
                "breached": False,
                "reason": f"error rate 0.00% over {n} requests <= max_error_rate 5.00%",
            },
            {
                "name": "output_drift",
                "value": 0.18,
                "limit": 0.5,
                "breached": False,
                "reason": f"the candidate's outputs over {n} rows are 0.873 from the champion's "
                "on the same traffic and 0.180 from its own on its training rows "
                "(Jensen-Shannon) <= max_output_drift 0.5",
            },
        ],
        "test": {
            "outcome": "continue",
            "rule": "continue",
            "reason": UNDECIDED,
            "n_champion": n,
            "n_candidate": n,
            "mean_champion": 0.615,
            "mean_candidate": 0.704,
            "difference": 0.089,
            "low": -0.0117,
            "high": 0.1678,
            "p_value": 0.11,
            "alpha": 0.05,
            "min_effect": 0.02,
            "tau": 0.05,
            "paired": False,
            "higher_is_better": True,
        },
        "requests": {"champion": n, "challenger": n},
        "errors": {"champion": 0, "challenger": 0},
        "output_drift": 0.87,
    }


def insert_events(
    engine: Any,
    sparse: list[dict[str, Any]],
    names: list[str],
    scale: Scale,
    start: datetime,
    end: datetime,
    rng: np.random.Generator,
    started: float,
) -> None:
    """The sparse events and the trigger.evaluated ticks that fill the trail up to
    ``scale.events``, in time order (the store orders by id), a day at a time."""
    from retrainer.adapters.metadata.sql import schema

    ticks_total = max(0, scale.events - len(sparse))
    per = [
        ticks_total // len(names) + (1 if i < ticks_total % len(names) else 0)
        for i in range(len(names))
    ]
    span_s = (end - start).total_seconds()
    sparse.sort(key=lambda e: e["at"])
    inserted = 0
    s_i = 0
    day = start
    next_id = 1
    while day < end:
        day_end = day + timedelta(days=1)
        rows = []
        while s_i < len(sparse) and sparse[s_i]["at"] < naive(day_end):
            rows.append(sparse[s_i])
            s_i += 1
        lo, hi = (day - start).total_seconds(), (day_end - start).total_seconds()
        for p, name in enumerate(names):
            n = per[p]
            if not n:
                continue
            step = span_s / n
            offset = (p * 7.3) % step  # each pipeline ticks on its own phase
            first = max(0, int(np.ceil((lo - offset) / step)))
            k = first
            while k < n and offset + k * step < hi:
                at = start + timedelta(seconds=offset + k * step)
                trig = k % 2
                if trig == 0:
                    cron = f"{p % 60} {p % 24} * * *"
                    reason = f"schedule '{cron}' (UTC): armed; next slot {iso(day_end)}"
                    data = {
                        "trigger": "schedule",
                        "fired_by": None,
                        "slot": None,
                        "fire": False,
                        "reason": reason,
                        "evidence": {
                            "cron": cron,
                            "timezone": "UTC",
                            "now": iso(at),
                            "next_slot": iso(day_end),
                        },
                    }
                else:
                    value = 0.72 + 0.05 * float(np.sin(k / 50.0))
                    n_rows = 150 + (k % 500)
                    reason = f"accuracy {value:.4g} over 1d (n={n_rows}): no threshold crossed"
                    data = {
                        "trigger": "metric",
                        "fired_by": None,
                        "slot": None,
                        "fire": False,
                        "reason": reason,
                        "evidence": {
                            "metric": "accuracy",
                            "over": "1d",
                            "window_start": iso(at - timedelta(days=1)),
                            "window_end": iso(at),
                            "min_samples": 100,
                            "value": value,
                            "n": n_rows,
                            "status": "ok",
                            "baseline": 0.78,
                            "conditions": [
                                {"kind": "below", "threshold": 0.7, "value": value, "met": False}
                            ],
                        },
                    }
                rows.append(
                    {
                        "kind": "trigger.evaluated",
                        "at": naive(at),
                        "message": f"{name}: {reason}",
                        "pipeline": name,
                        "run_id": None,
                        "version": None,
                        "data": data,
                    }
                )
                k += 1
        rows.sort(key=lambda e: e["at"])
        for row in rows:
            row["id"] = next_id
            next_id += 1
        with engine.begin() as conn:
            for chunk in chunks(rows, BATCH):
                conn.execute(schema.events.insert(), chunk)
        inserted += len(rows)
        day = day_end
        if (day - start).days % 10 == 0:
            log(f"events: {inserted:,}", started)
    if s_i < len(sparse):  # none expected: everything happens before ``end``
        rest = sparse[s_i:]
        for row in rest:
            row["id"] = next_id
            next_id += 1
        with engine.begin() as conn:
            conn.execute(schema.events.insert(), rest)
        inserted += len(rest)
    log(f"events: {inserted:,} in all", started)


# --- the prediction and feedback log -------------------------------------------------------


def build_logs(folder: Path, scale: Scale, history: History, end: datetime, started: float) -> None:
    import pandas as pd

    from retrainer.adapters.logstore import ParquetLogStore

    rng = np.random.default_rng(SEED + 1)
    store = ParquetLogStore(folder / ".retrainer" / "logs")
    start = end - timedelta(days=scale.days)
    names = np.array([f"p{i:03d}" for i in range(scale.pipelines)])
    per_day = scale.predictions // scale.days
    done = 0
    for d in range(scale.days):
        n = per_day if d < scale.days - 1 else scale.predictions - done
        day0 = np.datetime64(naive(start + timedelta(days=d)), "us")
        offsets = np.sort(rng.integers(0, 86_400 * 10**6, n)).astype("timedelta64[us]")
        ts = day0 + offsets
        pipe_idx = rng.integers(0, scale.pipelines, n)
        version = np.ones(n, dtype=np.int64)
        hours_since = np.zeros(n)
        for p in range(scale.pipelines):
            mask = pipe_idx == p
            if not mask.any():
                continue
            times = np.array(
                [naive(t) for t in history.champion_times[names[p]]], dtype="datetime64[us]"
            )
            moved = np.array(history.champion_versions[names[p]], dtype=np.int64)
            idx = np.searchsorted(times, ts[mask], side="right") - 1
            version[mask] = np.where(idx >= 0, moved[np.clip(idx, 0, None)], 1)
            since = np.where(
                idx >= 0,
                (ts[mask] - times[np.clip(idx, 0, None)]).astype("timedelta64[s]").astype(np.int64),
                0,
            )
            hours_since[mask] = since / 3600
        score = rng.random(n)
        prediction = (score > 0.5).astype(np.int64)
        accuracy = np.clip(0.86 - 0.0015 * hours_since, 0.55, 0.9)
        right = rng.random(n) < accuracy
        outcome = np.where(right, prediction, 1 - prediction)
        ids = np.char.add(f"d{d}-", np.arange(n).astype(str))
        predictions = pd.DataFrame(
            {
                "id": pd.array(ids, dtype="str"),
                "timestamp": ts,
                "pipeline": pd.array(names[pipe_idx], dtype="str"),
                "model_version": version,
                "prediction": prediction,
                "score": score,
                **{f: rng.normal(size=n) for f in FEATURES[:3]},
            }
        )
        delay = rng.integers(0, 6 * 3600 * 10**6, n).astype("timedelta64[us]")
        feedback = pd.DataFrame(
            {
                "id": predictions["id"],
                "timestamp": ts + delay,
                "pipeline": predictions["pipeline"],
                "outcome": outcome,
            }
        ).sort_values("timestamp", kind="stable", ignore_index=True)
        store.append_predictions(predictions)
        store.append_feedback(feedback)
        done += n
        if d % 10 == 9:
            log(f"logged predictions: {done:,} (+ feedback)", started)


# --- build, check ---------------------------------------------------------------------------


def build(root: Path, scale: Scale) -> dict[str, Any]:
    started = time.perf_counter()
    if root.exists():
        shutil.rmtree(root)
    folder = root / "project"
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    log(f"writing {folder}", started)
    write_project(folder, scale)
    templates = seed_templates(folder)
    log("seed run and monitor window done (the templates)", started)
    # the seed's log rows are of 1997: the generated log replaces them
    shutil.rmtree(folder / ".retrainer" / "logs", ignore_errors=True)
    history = build_metadata(folder, scale, templates, end, started)
    build_logs(folder, scale, history, end, started)
    seconds = time.perf_counter() - started
    manifest = {
        "scale": scale.__dict__,
        "end": iso(end),
        "built_seconds": round(seconds, 1),
        "built_at": iso(datetime.now(UTC)),
    }
    check(folder, scale)
    log("read back through the store: ok", started)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def check(folder: Path, scale: Scale) -> None:
    """Read a few rows back through the store's API: the rows are valid records."""
    from retrainer.core.rollout import RolloutState
    from retrainer.engine.monitoring.results import MonitorSummary
    from retrainer.engine.project import Project

    with Project.open(folder) as project:
        store = project.store
        name = f"p{scale.pipelines // 2:03d}"
        versions = store.list_versions(name, profiles=False)
        assert len(versions) == scale.versions, len(versions)
        store.get_version(name, scale.versions // 2)
        assert store.get_alias(name, "champion") is not None
        assert store.alias_history(name, "champion")
        assert store.list_runs(name, limit=10)
        results = store.list_monitor_results(name, limit=3)
        assert len(results) == 3
        MonitorSummary.from_json(results[-1].summary)
        events = store.list_events(name, limit=20)
        assert len(events) == 20
        assert len(store.list_events(limit=5)) == 5
        state = store.get_state(f"p{ROLLOUT_EVERY // 2:03d}", "rollout")
        assert state is not None
        RolloutState.from_dict(state[0])
        frame = project.log_store().predictions(name, None, None)
        assert len(frame) > 0


def ensure_built(root: Path, scale: Scale, rebuild: bool) -> dict[str, Any]:
    manifest = root / MANIFEST
    if manifest.exists() and not rebuild:
        data: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8"))
        if data["scale"] == scale.__dict__:
            return data
        print(f"{root} holds another scale ({data['scale']}); rebuilding", flush=True)
    return build(root, scale)


# --- timing ---------------------------------------------------------------------------------


class AdminToken:
    def allows(self, scope: str) -> bool:
        return True


def make_app(project: Any, page_size: int | None = None) -> tuple[Any, bool]:
    """The dashboard app (``page_size``: the overview's rows a page; default the config's)."""
    from retrainer.config import DashboardConfig
    from retrainer.server.dashboard import create_dashboard_app

    settings = None if page_size is None else DashboardConfig(page_size=page_size)
    return create_dashboard_app(
        project, authenticate=lambda secret: AdminToken(), settings=settings
    ), True


def pages(dashboard: bool, scale: Scale) -> dict[str, str]:
    if not dashboard:
        return {"/v1/status (no dashboard yet)": "/v1/status"}
    rollout = f"p{ROLLOUT_EVERY // 2:03d}"
    plain = f"p{min(scale.pipelines - 1, 5):03d}"
    return {
        "overview `/ui`": "/ui",
        "overview, page 2": "/ui?page=2",
        f"pipeline `/ui/pipelines/{plain}`": f"/ui/pipelines/{plain}",
        f"pipeline with a rollout `/ui/pipelines/{rollout}`": f"/ui/pipelines/{rollout}",
        "events `/ui/events`": "/ui/events",
        f"events of {plain}, kind run.succeeded": f"/ui/events?pipeline={plain}&kind=run.succeeded",
    }


def time_pages(
    folder: Path, scale: Scale, repeat: int, warmup: int, page_size: int | None = None
) -> tuple[list[dict[str, Any]], bool]:
    from fastapi.testclient import TestClient

    from retrainer.engine.project import Project

    headers = {"Authorization": "Bearer benchmark"}
    with Project.open(folder) as project:
        app, dashboard = make_app(project, page_size)
        with TestClient(app, follow_redirects=False) as client:
            out = []
            for label, url in pages(dashboard, scale).items():
                for _ in range(warmup):
                    client.get(url, headers=headers)
                times, cpu = [], []
                status = size = 0
                for _ in range(repeat):
                    c0, t0 = time.process_time(), time.perf_counter()
                    response = client.get(url, headers=headers)
                    body = response.content
                    times.append((time.perf_counter() - t0) * 1000)
                    cpu.append((time.process_time() - c0) * 1000)
                    status, size = response.status_code, len(body)
                times.sort()
                out.append(
                    {
                        "page": label,
                        "url": url,
                        "status": status,
                        "kb": round(size / 1024, 1),
                        "median_ms": round(statistics.median(times), 1),
                        "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 1),
                        "max_ms": round(times[-1], 1),
                        "cpu_median_ms": round(statistics.median(cpu), 1),
                    }
                )
    return out, dashboard


def profile(folder: Path, url: str, top: int) -> None:
    """cProfile of one request of ``url``, every frame of it in one thread.

    FastAPI runs sync endpoints in worker threads, which a profiler started here would not
    see: for this request they run inline on the event loop's thread, where the profiler is
    switched on around the app.
    """
    import cProfile
    import pstats

    import anyio.to_thread
    from fastapi.testclient import TestClient

    from retrainer.engine.project import Project

    async def inline(func: Any, *args: Any, **kwargs: Any) -> Any:
        return func(*args)

    prof = cProfile.Profile()
    headers = {"Authorization": "Bearer benchmark"}
    with Project.open(folder) as project:
        app, _ = make_app(project)
        active = False

        async def profiled(scope: Any, receive: Any, send: Any) -> None:
            if not (active and scope["type"] == "http"):
                await app(scope, receive, send)
                return
            prof.enable()
            try:
                await app(scope, receive, send)
            finally:
                prof.disable()

        with TestClient(profiled, follow_redirects=False) as client:
            client.get(url, headers=headers)  # warm
            original = anyio.to_thread.run_sync
            anyio.to_thread.run_sync = inline  # type: ignore[assignment]
            active = True
            t0 = time.perf_counter()
            response = client.get(url, headers=headers)
            elapsed = (time.perf_counter() - t0) * 1000
            active = False
            anyio.to_thread.run_sync = original
    print(f"GET {url}: {response.status_code}, {elapsed:.0f} ms under the profiler\n")
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(r"retrainer|sqlalchemy|jinja|duckdb|pandas", top)
    stats.sort_stats("tottime").print_stats(top // 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "retrainer-dashboard-bench",
        help="where the project is built and cached (default: %(default)s)",
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="build the project again even if --dir holds one"
    )
    parser.add_argument(
        "--build-only", action="store_true", help="build (or check the cache) and stop"
    )
    parser.add_argument(
        "--repeat", type=int, default=20, help="timed requests per page (default: %(default)s)"
    )
    parser.add_argument(
        "--page-size",
        type=int,
        default=None,
        help="the overview's pipelines a page (default: ui.page_size, 50)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=3,
        help="untimed requests per page first (default: %(default)s)",
    )
    parser.add_argument(
        "--profile",
        metavar="URL",
        help="profile one request of URL (cProfile) instead of timing",
    )
    parser.add_argument(
        "--top", type=int, default=50, help="functions listed by --profile (default: %(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    defaults = Scale()
    for field_name in ("pipelines", "versions", "events", "predictions", "windows", "days"):
        per = "; per pipeline" if field_name in ("versions", "windows") else ""
        parser.add_argument(
            f"--{field_name}",
            type=int,
            default=getattr(defaults, field_name),
            help=f"scale (default: %(default)s{per})",
        )
    args = parser.parse_args()
    scale = Scale(
        **{
            k: getattr(args, k)
            for k in ("pipelines", "versions", "events", "predictions", "windows", "days")
        }
    )
    manifest = ensure_built(args.dir, scale, args.rebuild)
    folder = args.dir / "project"
    if args.build_only:
        return
    if args.profile:
        profile(folder, args.profile, args.top)
        return
    rows, dashboard = time_pages(folder, scale, args.repeat, args.warmup, args.page_size)
    print(
        f"\n{scale.pipelines} pipelines, {scale.pipelines * scale.versions:,} versions, "
        f"{scale.events:,} events, {scale.predictions:,} logged predictions (built in "
        f"{manifest['built_seconds']:.0f} s, history up to {manifest['end'][:10]}); {args.repeat} "
        f"requests per page after {args.warmup}; Python {platform.python_version()}, "
        f"{os.cpu_count()} cores\n"
    )
    print("| page | median ms | p95 ms | max ms | median CPU ms | status | body KB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['page']} | {r['median_ms']:.0f} | {r['p95_ms']:.0f} | {r['max_ms']:.0f} "
            f"| {r['cpu_median_ms']:.0f} | {r['status']} | {r['kb']:.0f} |"
        )
    if args.json:
        print(json.dumps({"scale": scale.__dict__, "manifest": manifest, "pages": rows}, indent=1))
    if not dashboard:
        print(
            "\n(no retrainer.server.dashboard yet: timed the server's /v1/status instead)",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
