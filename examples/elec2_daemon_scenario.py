"""A scripted scenario on the elec2 example: the daemon retrains by itself.

Simulated time runs from 1997-02-03 for N days. Every midnight the previous day's rows
arrive (a new Parquet file in the project's data folder) and the serving model's predictions
on them are logged with their labels as feedback. The controller ticks every 2 hours with two
triggers: a cron schedule (Mondays 02:00) and a metric trigger (accuracy of the last day
below 0.75, at least 40 labelled rows), behind a 1-day cooldown. Every decision lands in the
event log: `retrainer events -c DIR --json` shows the triggers with their evidence, the runs,
the blessing verdicts and the promotions.

    python examples/elec2_daemon_scenario.py DIR [--days 21]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import yaml

from retrainer import Project, SimulatedClock
from retrainer.engine.control.controller import Controller
from retrainer.engine.runs.run import execute_run
from retrainer.engine.scaffold import init_project
from retrainer.engine.state import CHAMPION

START = datetime(1997, 2, 3, tzinfo=UTC)


def setup(target: Path) -> pd.DataFrame:
    """The elec2 project, its source turned into a folder that grows day by day."""
    if target.exists():
        shutil.rmtree(target)
    init_project(target, "elec2")
    full = pd.read_parquet(target / "data" / "elec2.parquet")
    (target / "data" / "elec2.parquet").unlink()
    arrived = target / "data" / "arrived"
    arrived.mkdir()
    full[full["timestamp"] < START.replace(tzinfo=None)].to_parquet(arrived / "history.parquet")
    cfg = yaml.safe_load((target / "retrainer.yaml").read_text())
    p = cfg["pipelines"][0]
    p["source"]["url"] = "data/arrived"
    p["window"] = {"kind": "sliding", "duration": "30d"}
    p["blessing"]["sanity"] = {"enabled": False}
    p["triggers"] = [
        {"schedule": "0 2 * * MON", "name": "weekly"},
        {
            "metric": "accuracy",
            "below": 0.75,
            "over": "1d",
            "min_samples": 40,
            "name": "accuracy-drop",
        },
    ]
    p["guards"] = [{"cooldown": "1d"}]
    cfg["controller"] = {"executor": {"kind": "inline"}}
    (target / "retrainer.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return full


def arrive_and_serve(project: Project, full: pd.DataFrame, day: datetime) -> None:
    """Rows of ``day`` arrive; the champion's predictions on them are logged with labels."""
    lo, hi = day.replace(tzinfo=None), (day + timedelta(days=1)).replace(tzinfo=None)
    rows = full[(full["timestamp"] >= lo) & (full["timestamp"] < hi)]
    if rows.empty:
        return
    rows.to_parquet(project.root / "data" / "arrived" / f"{day:%Y-%m-%d}.parquet")
    pipeline = project.pipeline()
    version = project.store.get_alias(pipeline.name, CHAMPION)
    if version is None:
        return
    from retrainer.adapters.serialization import load_model

    mv = project.store.get_version(pipeline.name, version)
    model = load_model(project.artifacts.get(mv.artifact_sha256), mv.artifact_format)
    pred = pipeline.predict(model, rows)
    ids = [f"{pipeline.name}-{t:%Y%m%d%H%M}" for t in rows["timestamp"]]
    logs = project.log_store()
    logs.append_predictions(
        pd.DataFrame(
            {
                "id": ids,
                "timestamp": rows["timestamp"].to_numpy(),
                "pipeline": pipeline.name,
                "model_version": version,
                "prediction": pred.y_pred,
                "score": pred.y_score,
                **{c: rows[c].to_numpy() for c in pipeline.feature_columns},
            }
        )
    )
    logs.append_feedback(
        pd.DataFrame(
            {
                "id": ids,
                "timestamp": (rows["timestamp"] + pd.Timedelta(minutes=30)).to_numpy(),
                "outcome": rows["up"].to_numpy(),
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dir", type=Path)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--tick-hours", type=float, default=2.0)
    args = parser.parse_args(argv)
    full = setup(args.dir)
    clock = SimulatedClock(START)
    with Project.open(args.dir) as project:
        first = execute_run(project, clock=clock)
        print(
            f"{clock.now():%Y-%m-%d %H:%M} first model v{first.version.version} "
            f"({'promoted' if first.promoted else first.verdict.reason})"
        )
        controller = Controller(project, clock=clock)
        end = START + timedelta(days=args.days)
        seen = max((e.id or 0 for e in project.store.list_events(limit=1)), default=0)
        day = START - timedelta(days=1)
        while clock.now() < end:
            today = clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
            if today > day:  # midnight: yesterday's rows arrive, with their labels
                day = today
                arrive_and_serve(project, full, today - timedelta(days=1))
            controller.tick()
            for e in project.store.list_events(limit=200):
                if (e.id or 0) > seen and not e.kind.startswith("alert."):
                    seen = e.id or 0
                    if e.kind in (
                        "trigger.fired",
                        "blessing.passed",
                        "blessing.rejected",
                        "model.promoted",
                        "run.failed",
                    ):
                        print(f"{e.at:%Y-%m-%d %H:%M} {e.kind:<18} {e.message}")
            clock.advance(timedelta(hours=args.tick_hours))
    print(f"done: retrainer events -c {args.dir} --json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
