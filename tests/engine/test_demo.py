"""`history_project`: the elec2 example with a short daemon history, for tests and dashboards."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import yaml

from retrainer.engine.demo import MARKER, history_project
from retrainer.engine.project import Project


def test_a_history_project_has_runs_versions_monitor_results_events_and_a_log(tmp_path: Path):
    days = 10
    target = history_project(tmp_path / "history", days=days)
    assert target == tmp_path / "history" and (target / MARKER).exists()
    assert not (target / "backtest").exists()  # no backtest was run
    [spec] = yaml.safe_load((target / "retrainer.yaml").read_text())["pipelines"]
    assert spec["triggers"][0] == {"schedule": "0 0 * * 1"} and "monitor" in spec
    start, end = datetime(1997, 10, 8, tzinfo=UTC), datetime(1997, 10, 18, tzinfo=UTC)
    with Project.open(target) as project:
        store = project.store
        runs = store.list_runs("elec2", limit=None)
        # the first champion, the Monday schedule (10-13), the metric trigger (10-16)
        assert len(runs) >= 3 and all(r.status == "succeeded" for r in runs)
        assert {r.cause for r in runs} >= {"manual", "schedule", "metric:accuracy"}
        assert len(store.list_versions("elec2")) == len(runs)
        assert store.get_alias("elec2", "champion") is not None
        kinds = Counter(e.kind for e in store.list_events(limit=None))
        assert kinds["trigger.fired"] >= 2 and kinds["model.promoted"] >= 1
        assert kinds["blessing.passed"] + kinds["blessing.rejected"] == len(runs)
        # monitored daily from the first day with a champion (the second tick) on
        results = store.list_monitor_results("elec2", limit=None)
        assert len(results) == days - 1 == kinds["monitor.completed"]
        assert {r.window_end for r in results} == {
            datetime(1997, 10, d, tzinfo=UTC) for d in range(9, 18)
        }
        for record in results:
            drift = record.summary["drift"]
            features = {row["feature"] for row in drift["rows"] if row["role"] == "feature"}
            assert features == set(spec["features"])
            assert [w["status"] for w in record.summary["performance"]].count("ok") >= 1
        # the served predictions, one per row of the days served, and their labels
        logs = project.log_store()
        predictions = logs.predictions("elec2", start, end)
        assert len(predictions) == 48 * days
        assert set(predictions["model_version"]) <= {
            v.version for v in store.list_versions("elec2")
        }
        joined = logs.joined("elec2", start, end, feedback_until=end)
        assert len(joined) == 48 * days and joined["outcome"].notna().all()


def test_the_demos_daemon_phase_counts_what_it_monitored_and_logged(tmp_path: Path):
    from retrainer.engine.demo import prepare_demo_dir, run_daemon_demo

    target = tmp_path / "demo"
    prepare_demo_dir(target)  # the example's retrainer.yaml: no trigger, a monitor section
    summary = run_daemon_demo(target, days=3)
    assert (summary.runs, summary.versions) == (1, 1)  # the first champion only
    assert summary.monitored == 2  # daily, from the second day (the first had no champion)
    assert summary.logged == summary.labelled == 3 * 48  # every half hour served, and labelled
