"""The dashboard's data: overview rows, the pipeline page, events and backtests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from retrainer.core.clock import SimulatedClock
from retrainer.core.rollout import ROLLOUT_KEY, RolloutState
from retrainer.core.types import Event
from retrainer.engine.dashboard import backtests, events_page, overview, pipeline_page, run_page
from retrainer.engine.monitoring.recent import KEEP, recent, remember
from retrainer.engine.runs.run import execute_run
from retrainer.errors import ModelNotFoundError
from retrainer.testing import in_memory_project

NOW = datetime(2024, 1, 20, tzinfo=UTC)


def day(d: int) -> datetime:
    return datetime(2024, 1, d, tzinfo=UTC)


@pytest.fixture
def project():
    p = in_memory_project(
        clock=SimulatedClock(NOW),
        monitor={"performance": {"every": "1d", "min_samples": 10}},
        triggers=[{"schedule": "0 2 * * 1"}, {"metric": "accuracy", "below": 0.6, "over": "1d"}],
    )
    for d in (5, 8, 11):
        execute_run(p, clock=SimulatedClock(day(d)))
    yield p
    p.close()


def brief(project, values, drifted_columns=()):
    for i, v in enumerate(values):
        start = day(12) + timedelta(days=i)
        brief_at(
            project,
            start,
            v,
            drift={
                "end": (start + timedelta(days=1)).isoformat(),
                "drifted": bool(drifted_columns),
                "columns": list(drifted_columns),
                "share": 0.5 if drifted_columns else 0.0,
            },
        )


def brief_at(project, start, value, drift=None):
    remember(
        project.store,
        "toy",
        at=start + timedelta(days=1),
        performance=[
            {
                "start": start.isoformat(),
                "end": (start + timedelta(days=1)).isoformat(),
                "n_rows": 100,
                "n_labelled": 95,
                "status": "ok",
                "metrics": [{"name": "accuracy", "value": value, "n": 95, "status": "ok"}],
            }
        ],
        drift=drift,
    )


def test_overview_row_reads_the_champion_metric_drift_and_next_fire(project):
    brief(project, [0.9, 0.85, 0.88])
    [row] = overview(project)
    assert row.champion == 3
    assert row.metric.name == "accuracy"  # the metric trigger's metric
    assert row.metric.now == 0.88 and row.metric.below == 0.6
    assert [v for _, v in row.spark] == [0.9, 0.85, 0.88]
    assert row.drift["drifted"] is False
    assert row.next_fire == "2024-01-22T02:00:00+00:00"  # Monday 2 a.m. after NOW
    assert row.last_run.id == 3
    assert row.health.level in ("green", "amber")
    assert "v3 serving" in row.health.reasons or row.health.level == "amber"


def test_overview_turns_red_on_a_breached_threshold_and_an_open_failure(project):
    brief(project, [0.9, 0.5])
    [row] = overview(project)
    assert row.health.level == "red"
    assert row.health.reasons[0].startswith("accuracy 50.0% is below the trigger's 60.0%")
    project.store.append_event(
        Event(kind="run.failed", at=NOW, message="toy: run 9 failed: boom", pipeline="toy")
    )
    brief(project, [0.9])
    [row] = overview(project)
    assert row.health.level == "red" and row.health.reasons[0] == "run 9 failed: boom"
    assert [a.kind for a in row.alerts] == ["run.failed"]


def test_the_monitor_brief_keeps_the_newest_windows_and_replaces_a_window_by_start(project):
    brief(project, [0.5] * (KEEP + 5))
    kept = recent(project.store, "toy")
    assert len(kept["windows"]) == KEEP and len(kept["drift"]) == KEEP
    assert kept["windows"][0]["start"] == (day(12) + timedelta(days=5)).isoformat()
    # the newest window again, with more labels: replaced, not added
    brief_at(project, day(12) + timedelta(days=KEEP + 4), 0.7)
    kept = recent(project.store, "toy")
    assert len(kept["windows"]) == KEEP
    assert kept["windows"][-1]["metrics"] == {"accuracy": 0.7}
    # the oldest kept window is replaced by the newer figure for its start; nothing is added
    assert len(kept["windows"]) == KEEP


def test_overview_paginates(project):
    assert overview(project, offset=1, limit=10) == []
    assert len(overview(project, offset=0, limit=1)) == 1


def test_pipeline_page_lists_paginate_by_cursor_and_page(project):
    for d in (12, 13, 14):
        execute_run(project, clock=SimulatedClock(day(d)))
    first = pipeline_page(project, "toy", page_size=2)
    assert [r["id"] for r in first["runs"]["items"]] == [6, 5]
    assert first["runs"]["next_before"] == 5
    older = pipeline_page(project, "toy", page_size=2, runs_before=5)
    assert [r["id"] for r in older["runs"]["items"]] == [4, 3]
    assert first["versions"]["pages"] == 3 and first["versions"]["total"] == 6
    assert [v["version"] for v in first["versions"]["items"]] == [6, 5]
    last = pipeline_page(project, "toy", page_size=2, versions_page=99)  # clamped
    assert last["versions"]["page"] == 3
    assert [v["version"] for v in last["versions"]["items"]] == [2, 1]


def test_pipeline_page_runs_carry_the_gates_evidence_and_the_champion_history(project):
    page = pipeline_page(project, "toy")
    run = page["runs"]["items"][0]
    assert run["blessing"]["evidence"], "the gate's evidence table of the candidate"
    assert [m["version"] for m in page["champion_history"]] == [3, 2, 1]
    assert page["metric"]["thresholds"][0]["below"] == 0.6


def test_metric_series_comes_from_the_log_with_markers(project):
    logs = project.log_store()
    times = pd.date_range("2024-01-12", periods=48, freq="h")
    ids = [f"id{i}" for i in range(48)]
    logs.append_predictions(
        pd.DataFrame(
            {"id": ids, "pipeline": "toy", "model_version": 3, "prediction": 1, "timestamp": times}
        )
    )
    logs.append_feedback(
        pd.DataFrame(
            {
                "id": ids,
                "outcome": [1 if i % 4 else 0 for i in range(48)],
                "timestamp": times + pd.Timedelta("1h"),
            }
        )
    )
    project.store.append_event(
        Event(
            kind="model.promoted",
            at=datetime(2024, 1, 12, 5, tzinfo=UTC),
            message="toy v3 promoted",
            pipeline="toy",
            version=3,
        )
    )
    metric = pipeline_page(project, "toy")["metric"]
    assert metric["source"] == "log"
    values = [p["value"] for p in metric["points"]]
    assert values == [0.75, 0.75]  # one of four outcomes is 0, prediction always 1
    assert [m["label"] for m in metric["markers"]] == ["promoted"]


def test_drift_grid_from_monitor_windows(project):
    from retrainer.engine.monitoring.monitor import run_monitor

    run_monitor(project, "toy", clock=SimulatedClock(NOW), end=NOW, report=False)
    grid = pipeline_page(project, "toy")["drift"]
    assert grid["windows"] and {"x1", "x2"} <= set(grid["features"])
    assert all(len(row) == len(grid["windows"]) for row in grid["cells"])
    assert grid["verdicts"][0]["n_tested"] >= 2
    # the monitor folded its run into the brief the overview reads
    assert recent(project.store, "toy")["drift"]


def test_rollout_view_has_the_looks_and_an_expected_decision(project):
    state = RolloutState(
        pipeline="toy",
        strategy="ab",
        candidate=3,
        champion=2,
        status="running",
        share=0.5,
        started_at=day(12),
    )
    project.store.put_state("toy", ROLLOUT_KEY, state.to_dict(), at=day(12))
    for i, (n, low, high) in enumerate([(100, -0.1, 0.2), (300, -0.02, 0.12)]):
        test = {
            "n_champion": n,
            "n_candidate": n + 5,
            "difference": 0.05,
            "low": low,
            "high": high,
            "mean_champion": 0.7,
            "mean_candidate": 0.75,
        }
        project.store.append_event(
            Event(
                kind="rollout.evaluated",
                at=day(13 + i),
                message="toy: look",
                pipeline="toy",
                version=3,
                data={"share": 0.5, "test": test},
            )
        )
    rollout = pipeline_page(project, "toy", now=day(14))["rollout"]
    assert [x["n"] for x in rollout["looks"]] == [100, 300]
    expected = rollout["expected"]
    assert expected["at"] is not None and expected["why"].startswith("about 2024-01-")


def test_run_page_and_unknown_pipeline(project):
    page = run_page(project, "toy", 3)
    assert page["version"]["version"] == 3 and page["version"]["blessing"]["evidence"]
    assert {e["kind"] for e in page["events"]} >= {"run.started", "run.succeeded"}
    with pytest.raises(ModelNotFoundError):
        pipeline_page(project, "nope")
    with pytest.raises(ModelNotFoundError):
        run_page(project, "nope", 1)


def test_events_page_cursor_and_filters(project):
    everything = events_page(project, limit=1000)["items"]
    first = events_page(project, limit=5)
    assert [e["id"] for e in first["items"]] == [e["id"] for e in everything[:5]]
    second = events_page(project, limit=5, before=first["next_before"])
    assert [e["id"] for e in second["items"]] == [e["id"] for e in everything[5:10]]
    promoted = events_page(project, kinds=["model.promoted"], limit=50)["items"]
    assert promoted and {e["kind"] for e in promoted} == {"model.promoted"}
    assert events_page(project, until=day(6), limit=1000)["items"][0]["at"] < day(7).isoformat()


def test_backtests_are_found_under_the_project_folder(tmp_path):
    from retrainer.testing import write_project

    root = write_project(tmp_path)
    out = tmp_path / "bt" / "run1"
    out.mkdir(parents=True)
    (out / "results.json").write_text(
        json.dumps(
            {"title": "churn backtest", "policies": [{}, {}], "recommended": {"name": "weekly"}}
        )
    )
    (out / "report.html").write_text("<html></html>")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.json").write_text('{"not": "a backtest"}')
    from retrainer.engine.project import Project

    with Project.open(root) as project:
        found = backtests(project)
    assert [(b["id"], b["title"], b["policies"], b["recommended"], b["report"]) for b in found] == [
        ("bt/run1", "churn backtest", 2, "weekly", True)
    ]
