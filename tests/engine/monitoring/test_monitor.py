"""The monitor use case on in-memory stores: drift, quality, performance, concept drift."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrainer.config import parse_config
from retrainer.core.clock import SimulatedClock
from retrainer.engine.monitoring.monitor import CONCEPT_STATE_KEY, last_change, run_monitor
from retrainer.engine.monitoring.results import ConceptDrift
from retrainer.engine.project import Project
from retrainer.engine.runs.run import execute_run
from retrainer.errors import ConfigError, ModelNotFoundError
from retrainer.testing import drifting_frame, in_memory_project
from tests.conftest import pipeline_config

T_TRAIN = datetime(2024, 1, 20, tzinfo=UTC)


def _frame(shift_after: str | None = None, flip_after: str | None = None) -> pd.DataFrame:
    return drifting_frame(24 * 40, seed=3, shift_after=shift_after, flip_after=flip_after)


def _project(tmp_path: Path, frame: pd.DataFrame, **monitor: Any) -> Project:
    project = in_memory_project(
        frame,
        root=tmp_path,
        monitor={"window": "3d", "performance": {"every": "1d", "min_samples": 10}, **monitor},
    )
    assert execute_run(project, clock=SimulatedClock(T_TRAIN)).promoted
    return project


def test_stable_window_has_no_drift(tmp_path: Path):
    project = _project(tmp_path, _frame())
    result = run_monitor(
        project, clock=SimulatedClock(datetime(2024, 1, 26, tzinfo=UTC)), report=False
    )
    assert result.drift is not None and not result.drift.drifted
    assert result.drift.drifted_columns == ()
    assert result.record.version == 1 and result.record.drifted is False
    assert [e.kind for e in project.store.list_events("toy")][-1] == "monitor.completed"


def test_shifted_feature_is_flagged_and_recorded(tmp_path: Path):
    project = _project(tmp_path, _frame(shift_after="2024-01-22"))
    result = run_monitor(
        project, clock=SimulatedClock(datetime(2024, 1, 26, tzinfo=UTC)), report=False
    )
    assert "x1" in result.drift.drifted_columns
    assert "x2" not in result.drift.drifted_columns
    assert result.drift.drifted  # 1 of 2 features: share 0.5 >= 0.5
    kinds = [e.kind for e in project.store.list_events("toy")]
    assert kinds[-2:] == ["monitor.completed", "drift.detected"]
    stored = project.store.list_monitor_results("toy")
    assert len(stored) == 1 and stored[0].summary["drift"]["n_drifted"] >= 1


def test_performance_per_window_and_insufficient_data(tmp_path: Path):
    project = _project(tmp_path, _frame(), performance={"every": "1d", "min_samples": 20})
    end = datetime(2024, 1, 26, 12, tzinfo=UTC)  # the last window holds 12 rows
    result = run_monitor(project, clock=SimulatedClock(end), report=False)
    statuses = [w.status for w in result.performance]
    assert statuses[-1] == "insufficient_data" and "ok" in statuses
    ok = next(w for w in result.performance if w.status == "ok")
    assert 0.5 < ok.value("accuracy") <= 1.0


def test_concept_drift_fires_on_flipped_labels_and_state_persists(tmp_path: Path):
    project = _project(tmp_path, _frame(flip_after="2024-01-23"), window="6d")
    first = run_monitor(
        project, clock=SimulatedClock(datetime(2024, 1, 26, tzinfo=UTC)), report=False
    )
    concept = first.summary.concept_drift
    assert concept.drift_detected and concept.detections[0] >= "2024-01-23"
    assert any(e.kind == "concept_drift.detected" for e in project.store.list_events("toy"))
    # an overlapping window feeds only the rows not seen before
    second = run_monitor(
        project, clock=SimulatedClock(datetime(2024, 1, 27, tzinfo=UTC)), report=False
    )
    assert second.summary.concept_drift.rows_fed == 24
    state, revision = project.store.get_state("toy", CONCEPT_STATE_KEY)
    assert revision == 2 and state["version"] == 1


def test_missing_feature_is_a_finding_not_a_crash(tmp_path: Path):
    frame = _frame()
    project = _project(tmp_path, frame)
    project.sources["toy"].fn = lambda s, e: frame.drop(columns="x2")  # type: ignore[attr-defined]
    result = run_monitor(
        project, clock=SimulatedClock(datetime(2024, 1, 26, tzinfo=UTC)), report=False
    )
    kinds = {f.kind for f in result.summary.findings}
    assert "column_removed" in kinds and "predict_skipped" in kinds
    assert result.performance == ()


def test_an_empty_window_is_recorded_as_having_no_rows_and_nothing_else(tmp_path: Path):
    """After the data ends: one finding naming the window, the source and the newest row
    before it; no drift verdict, no per-column findings (constant, removed...) that an empty
    window makes true."""
    project = _project(tmp_path, _frame())  # rows up to 2024-02-09 23:00
    result = run_monitor(
        project, clock=SimulatedClock(datetime(2025, 6, 1, tzinfo=UTC)), report=tmp_path / "r.html"
    )
    assert result.summary.rows == 0
    message = (
        "no rows in [2025-05-29 00:00 .. 2025-06-01 00:00) of callable:test "
        "(newest row before it: 2024-02-09 23:00)"
    )
    assert [(f.kind, f.message) for f in result.summary.findings] == [("empty_window", message)]
    assert result.drift is None and result.summary.drift is None
    assert result.record.drifted is None
    assert result.performance == () and result.summary.concept_drift is None
    event = project.store.list_events("toy")[-1]
    assert event.kind == "monitor.completed" and event.message == f"toy v1: {message}"
    assert result.report_path is not None and result.report_path.exists()


def test_a_window_without_labels_lists_the_target_as_the_target(tmp_path: Path):
    frame = _frame()
    frame["y"] = frame["y"].astype("Int64").mask(frame["ts"] >= pd.Timestamp("2024-01-23"))
    project = _project(tmp_path, frame)
    result = run_monitor(
        project, clock=SimulatedClock(datetime(2024, 1, 26, tzinfo=UTC)), report=False
    )
    assert result.drift is not None
    roles = {r.feature: r.role for r in result.drift.rows}
    assert roles["y"] == "target" and roles["x1"] == "feature"


def test_no_champion_before_the_first_promotion(tmp_path: Path):
    """A window ending before v1 was promoted is not judged against v1 (it did not serve)."""
    project = _project(tmp_path, _frame())  # v1 promoted at T_TRAIN
    with pytest.raises(
        ModelNotFoundError,
        match=(
            r"^no champion of toy at 2024-01-15 00:00: its first champion, v1, was promoted "
            r"at 2024-01-20 00:00; monitor a window ending at or after that$"
        ),
    ):
        run_monitor(project, clock=SimulatedClock(datetime(2024, 1, 15, tzinfo=UTC)), report=False)
    assert project.store.list_monitor_results("toy") == []


def test_a_window_ending_after_now_is_rejected(tmp_path: Path):
    """Rows and labels after now have not arrived: the window cannot end there."""
    project = _project(tmp_path, _frame())
    now = datetime(2024, 1, 26, tzinfo=UTC)
    with pytest.raises(
        ConfigError,
        match=(
            r"^the monitoring window of toy ends at 2024-01-28 00:00, after now "
            r"\(2024-01-26 00:00\); end it at or before now$"
        ),
    ):
        run_monitor(project, clock=SimulatedClock(now), end=now + timedelta(days=2), report=False)
    assert project.store.list_monitor_results("toy") == []
    # ending exactly now is fine
    assert run_monitor(project, clock=SimulatedClock(now), end=now, report=False).summary.rows


def test_no_champion_is_a_clear_error(tmp_path: Path):
    cfg = parse_config({"pipelines": [pipeline_config()]})
    project = Project.in_memory(cfg, tmp_path)
    with pytest.raises(ModelNotFoundError, match="no champion"):
        run_monitor(project, clock=SimulatedClock(T_TRAIN), report=False)


def test_logged_predictions_with_delayed_feedback(tmp_path: Path):
    project = _project(tmp_path, _frame(), data="log")
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-01-23", periods=72, freq="h")
    preds = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(72)],
            "timestamp": times,
            "pipeline": "toy",
            "model_version": 1,
            "prediction": rng.integers(0, 2, 72),
            "score": rng.random(72),
            "x1": rng.normal(size=72),
            "x2": rng.normal(size=72),
        }
    )
    logs = project.log_store()
    logs.append_predictions(preds)
    # labels of the first 48 rows arrive within the window, the rest after it
    arrival = [
        t + timedelta(hours=1) if i < 48 else pd.Timestamp("2024-02-10")
        for i, t in enumerate(times)
    ]
    logs.append_feedback(
        pd.DataFrame({"id": preds["id"], "timestamp": arrival, "outcome": preds["prediction"]})
    )
    result = run_monitor(
        project, clock=SimulatedClock(datetime(2024, 1, 26, tzinfo=UTC)), report=False
    )
    labelled = [w.n_labelled for w in result.performance]
    assert labelled == [24, 24, 0]
    assert [w.status for w in result.performance] == ["ok", "ok", "insufficient_data"]
    assert result.performance[0].value("accuracy") == 1.0  # outcome == prediction


def test_report_is_self_contained(tmp_path: Path):
    project = _project(tmp_path, _frame(shift_after="2024-01-22"))
    out = tmp_path / "r.html"
    result = run_monitor(
        project, clock=SimulatedClock(datetime(2024, 1, 26, tzinfo=UTC)), report=out
    )
    text = out.read_text()
    assert result.report_path == out.resolve()
    assert "Drift per column" in text and "x1" in text
    assert "<script src=" not in text  # plotly.js inlined, nothing fetched
    assert "Plotly" in text


def test_exact_ks_on_raw_samples_when_asked(tmp_path: Path):
    project = _project(
        tmp_path, _frame(shift_after="2024-01-22"), drift={"numeric_method": "ks_exact"}
    )
    result = run_monitor(
        project, clock=SimulatedClock(datetime(2024, 1, 26, tzinfo=UTC)), report=False
    )
    row = result.drift.row("x1")
    assert row.method == "ks_exact" and row.drifted
    assert result.drift.row("x2").method == "ks_exact"


def _since_change_project(tmp_path: Path, frame: pd.DataFrame) -> Project:
    project = in_memory_project(
        frame,
        root=tmp_path,
        window={"kind": "since_change", "min": "2d", "max": "10d"},
        monitor={"window": "6d", "performance": {"every": "1d", "min_samples": 10}},
    )
    first = execute_run(project, clock=SimulatedClock(T_TRAIN))
    assert first.promoted
    # no change detected yet: the window is the last max (10 days)
    assert first.version.snapshot.window_start == T_TRAIN - timedelta(days=10)
    return project


def test_since_change_window_starts_at_the_detected_change(tmp_path: Path):
    project = _since_change_project(tmp_path, _frame(flip_after="2024-01-23"))
    assert last_change(project.store, "toy") is None
    run_monitor(project, clock=SimulatedClock(datetime(2024, 1, 26, tzinfo=UTC)), report=False)
    change = last_change(project.store, "toy")
    assert change is not None and datetime(2024, 1, 23, tzinfo=UTC) <= change
    now = datetime(2024, 1, 28, tzinfo=UTC)
    assert change <= now - timedelta(days=2)  # so the window starts exactly at the change
    result = execute_run(project, clock=SimulatedClock(now))
    snapshot = project.store.get_snapshot(result.run.snapshot_id)
    assert snapshot.window_start == change
    assert snapshot.min_time >= change  # no row of the old concept
    # trained on the new concept, it beats the champion; the record of the change outlives
    # the version it was detected for (the new champion's detector starts afresh)
    assert result.promoted and project.store.get_alias("toy", "champion") == 2
    run_monitor(project, clock=SimulatedClock(datetime(2024, 1, 29, tzinfo=UTC)), report=False)
    assert last_change(project.store, "toy") == change


def test_since_change_window_keeps_the_shortest_span_after_a_recent_change(tmp_path: Path):
    project = _since_change_project(tmp_path, _frame(flip_after="2024-01-23"))
    run_monitor(project, clock=SimulatedClock(datetime(2024, 1, 26, tzinfo=UTC)), report=False)
    change = last_change(project.store, "toy")
    now = change + timedelta(hours=12)  # half a day after the change: too few rows since
    result = execute_run(project, clock=SimulatedClock(now))
    snapshot = project.store.get_snapshot(result.run.snapshot_id)
    assert snapshot.window_start == now - timedelta(days=2)


def test_a_late_label_is_fed_to_the_detector_when_it_arrives(tmp_path: Path):
    """From the log, rows are fed in the order their labels arrive: a label that arrives after
    a later row's was fed is still fed, and no row is fed twice."""
    project = _project(tmp_path, _frame(), data="log", window="8d")
    times = pd.date_range("2024-01-21", periods=48, freq="h")
    logs = project.log_store()
    logs.append_predictions(
        pd.DataFrame(
            {
                "id": [f"r{i}" for i in range(48)],
                "timestamp": times,
                "pipeline": "toy",
                "model_version": 1,
                "prediction": 1,
                "score": 0.9,
                "x1": 0.0,
                "x2": 0.0,
            }
        )
    )
    # the even rows are labelled within the hour, the odd ones two days late
    late = np.arange(48) % 2 == 1
    arrival = times + pd.to_timedelta(np.where(late, 48 * 60, 30), unit="min")
    logs.append_feedback(
        pd.DataFrame({"id": [f"r{i}" for i in range(48)], "timestamp": arrival, "outcome": 1})
    )

    def monitor(at: datetime) -> ConceptDrift:
        result = run_monitor(project, clock=SimulatedClock(at), report=False)
        assert result.summary.concept_drift is not None
        return result.summary.concept_drift

    first = monitor(datetime(2024, 1, 23, 6, tzinfo=UTC))  # the even rows, and odd ones to 04:00
    assert first.rows_fed == 24 + 3
    second = monitor(datetime(2024, 1, 25, tzinfo=UTC))  # every other late label
    assert second.rows_fed == 21
    assert second.rows_seen == 48
    assert monitor(datetime(2024, 1, 26, tzinfo=UTC)).rows_fed == 0


def test_concept_drift_on_the_logged_error_stream(tmp_path: Path):
    """With data: log the detector reads logged predictions against the feedback arrived:
    right until Jan 24, then wrong; unlabelled rows are not fed."""
    project = _project(tmp_path, _frame(), data="log", window="8d")
    times = pd.date_range("2024-01-20", periods=192, freq="h")
    prediction = np.arange(192) % 2
    preds = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(192)],
            "timestamp": times,
            "pipeline": "toy",
            "model_version": 1,
            "prediction": prediction,
            "score": prediction * 0.8 + 0.1,
            "x1": 0.0,
            "x2": 0.0,
        }
    )
    flip = times >= pd.Timestamp("2024-01-24")
    outcome = np.where(flip, 1 - prediction, prediction)
    labelled = times < pd.Timestamp("2024-01-27 12:00")  # the last 12 rows: no label yet
    logs = project.log_store()
    logs.append_predictions(preds)
    logs.append_feedback(
        pd.DataFrame(
            {
                "id": preds["id"][labelled],
                "timestamp": times[labelled] + timedelta(minutes=30),
                "outcome": outcome[labelled],
            }
        )
    )
    result = run_monitor(
        project, clock=SimulatedClock(datetime(2024, 1, 28, tzinfo=UTC)), report=False
    )
    concept = result.summary.concept_drift
    assert concept is not None
    assert concept.rows_fed == 180  # labelled rows since the champion's window ended
    assert concept.drift_detected
    assert "2024-01-24T00:00:00" <= concept.detections[0] < "2024-01-26T00:00:00"
    assert result.record.summary["concept_drift"] == concept.to_json()  # as stored
    assert last_change(project.store, "toy") is not None


def test_a_source_whose_newest_labels_have_not_arrived(tmp_path: Path):
    """Rows of the last two days have features and no label yet (a nullable integer target):
    the drift check sees every row, performance counts only the labelled ones."""
    frame = _frame(shift_after="2024-01-24")
    waiting = frame["ts"] >= pd.Timestamp("2024-01-24")
    frame["y"] = frame["y"].astype("Int64").mask(waiting)
    project = _project(tmp_path, frame, performance={"every": "1d", "min_samples": 10})
    end = datetime(2024, 1, 26, tzinfo=UTC)
    result = run_monitor(project, clock=SimulatedClock(end), report=False)
    assert result.record.summary["rows"] == 72  # the 3-day window, labelled or not
    assert result.drift is not None and "x1" in result.drift.drifted_columns  # unlabelled rows
    by_day = {w.start.day: w for w in result.performance}
    assert by_day[23].n_labelled == 24 and by_day[23].status == "ok"
    assert by_day[24].n_rows == 24 and by_day[24].n_labelled == 0
    assert by_day[25].status == "insufficient_data"
    # the detector is fed the errors of the labelled rows only: Jan 23's 24, after the 72
    # labelled rows since the champion's training (Jan 20 to 23) that warm a new detector
    concept = result.record.summary["concept_drift"]
    assert concept is not None and concept["rows_fed"] == 72 + 24
    assert (
        "72 labelled row(s) since v1's training and before the window fed first"
        in (concept["note"])
    )


def test_a_new_detector_is_warmed_on_the_errors_since_the_champion_trained(tmp_path: Path):
    """The labels flip on Jan 22; the first monitor run, on Jan 27, reads Jan 25-27: fed that
    window alone, the detector sees a stream wrong throughout and no change in it."""
    project = _project(tmp_path, _frame(flip_after="2024-01-22"), window="2d")
    result = run_monitor(
        project, clock=SimulatedClock(datetime(2024, 1, 27, tzinfo=UTC)), report=False
    )
    concept = result.summary.concept_drift
    assert concept is not None and concept.drift_detected, concept
    assert concept.rows_fed == 7 * 24  # Jan 20 to 27: the rows since the champion trained
    assert "120 labelled row(s) since v1's training and before the window fed first" in (
        concept.note
    )
    assert concept.detections[0] >= "2024-01-22"


def test_a_detector_fed_no_row_of_the_training_window_says_so(tmp_path: Path):
    project = _project(tmp_path, _frame())  # v1 trained on the rows before Jan 20
    result = run_monitor(project, clock=SimulatedClock(T_TRAIN), end=T_TRAIN, report=False)
    concept = result.summary.concept_drift
    assert concept is not None and concept.rows_fed == 0
    assert concept.note.endswith(
        "0 rows fed: the 72 labelled row(s) are before the end of v1's training window "
        "(2024-01-20T00:00:00+00:00), and a model is not judged on the rows it learned from"
    )


def test_logged_predictions_awaiting_feedback_are_pending_not_missing(tmp_path: Path):
    """A 0/1 target read from the log with some feedback not arrived: no dtype_changed,
    missing_rate or unseen_category ('0.0', '1.0') findings on the target."""
    frame = _frame()
    project = _project(tmp_path, frame, data="log", window="3d")
    rows = frame[(frame["ts"] >= "2024-01-23") & (frame["ts"] < "2024-01-26")]
    ids = [f"r{i}" for i in range(len(rows))]
    logs = project.log_store()
    logs.append_predictions(
        pd.DataFrame(
            {
                "id": ids,
                "timestamp": rows["ts"].to_numpy(),
                "pipeline": "toy",
                "model_version": 1,
                "prediction": rows["y"].to_numpy(),
                "score": 0.5,
                "x1": rows["x1"].to_numpy(),
                "x2": rows["x2"].to_numpy(),
            }
        )
    )
    arrived = rows["ts"] < pd.Timestamp("2024-01-25")  # the last day: no feedback yet
    logs.append_feedback(
        pd.DataFrame(
            {
                "id": np.array(ids)[arrived.to_numpy()],
                "timestamp": rows["ts"][arrived].to_numpy() + np.timedelta64(30, "m"),
                "outcome": rows["y"][arrived].to_numpy(),
            }
        )
    )
    result = run_monitor(
        project, clock=SimulatedClock(datetime(2024, 1, 26, tzinfo=UTC)), report=False
    )
    on_target = [(f.kind, f.message) for f in result.summary.findings if f.column == "y"]
    assert on_target == []
    row = result.drift.row("y")
    assert row.tested and row.n_cur == 48 and row.kind == "categorical"


@pytest.mark.parametrize(("window", "flagged"), [("auto", False), ("same", True)])
def test_drift_checks_read_whole_weeks_so_a_weekday_is_not_drift(
    tmp_path: Path, window: str, flagged: bool
):
    """A daily window holds one weekday: against a profile of whole weeks, a weekday feature
    drifts every day, unless the check reads whole weeks (the default)."""
    frame = _frame()
    frame["dow"] = frame["ts"].dt.day_of_week  # a weekday code, checked as a category
    drift = {
        "window": window,
        "categorical": ["dow"],
        "features": {"dow": {"method": "jensenshannon"}},
        "min_samples": 20,
    }
    project = in_memory_project(
        frame,
        root=tmp_path,
        features=["x1", "x2", "dow"],
        window={"kind": "sliding", "duration": "28d"},  # 3 weeks trained on, 1 held out
        monitor={"window": "1d", "drift": drift},
    )
    assert execute_run(project, clock=SimulatedClock(datetime(2024, 1, 29, tzinfo=UTC))).promoted
    result = run_monitor(
        project, clock=SimulatedClock(datetime(2024, 2, 6, tzinfo=UTC)), report=False
    )
    assert result.summary.rows == 24  # the monitor's window; the drift check reads a week
    assert result.drift.n_cur == (24 if window == "same" else 7 * 24)
    assert ("dow" in result.drift.drifted_columns) is flagged


def test_the_estimate_follows_a_covariate_shift_and_misses_a_concept_drift(tmp_path: Path):
    """CBPE on the window: under a covariate shift (P(y|x) fixed) the estimate is near the
    realized accuracy; after the label flips (concept drift) it stays high while the realized
    accuracy collapses: the failure the docs warn about."""
    at = datetime(2024, 1, 27, tzinfo=UTC)
    frame = _frame()
    rng = np.random.default_rng(7)
    late = frame["ts"] >= pd.Timestamp("2024-01-21")
    # x1 moves and the label follows it by the same rule (drifting_frame's shift leaves the
    # label behind: that is a concept drift)
    frame.loc[late, "x1"] += 1.0
    noise = rng.normal(scale=0.5, size=int(late.sum()))
    relabel = frame.loc[late, "x1"] + 0.5 * frame.loc[late, "x2"] + noise > 0
    frame.loc[late, "y"] = relabel.astype(int)
    shifted = _project(tmp_path / "a", frame, window="6d")
    result = run_monitor(shifted, clock=SimulatedClock(at), report=tmp_path / "a.html")
    est = result.summary.estimated
    assert est is not None and est.method == "cbpe" and est.rows == 144
    accuracy = est.get("accuracy")
    assert accuracy is not None and accuracy.value is not None
    assert abs(accuracy.value - est.realized["accuracy"]) < 0.08
    assert accuracy.low < accuracy.value < accuracy.high
    assert "Estimated performance" in (tmp_path / "a.html").read_text()
    stored = shifted.store.list_monitor_results("toy", limit=1)[0].summary["estimated"]
    assert stored["estimates"][0]["metric"] == "accuracy"

    flipped = _project(tmp_path / "b", _frame(flip_after="2024-01-21"), window="6d")
    est = run_monitor(flipped, clock=SimulatedClock(at), report=False).summary.estimated
    assert est is not None
    accuracy = est.get("accuracy")
    assert accuracy is not None and accuracy.value is not None and accuracy.high is not None
    assert est.realized["accuracy"] < 0.5 < accuracy.value
    assert est.realized["accuracy"] < accuracy.low - 0.2


def test_dle_estimates_a_regressor_on_unlabelled_rows(tmp_path: Path):
    rng = np.random.default_rng(5)
    n = 24 * 40
    x1 = rng.normal(size=n)
    frame = pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=n, freq="h"),
            "x1": x1,
            "x2": rng.normal(size=n),
            "y": 2 * x1 + rng.normal(scale=0.5 + np.abs(x1), size=n),
        }
    )
    frame.loc[frame["ts"] >= "2024-01-24", "y"] = np.nan  # labels not arrived yet
    project = in_memory_project(
        frame,
        root=tmp_path,
        task="regression",
        features=["x1", "x2"],
        metrics=["mae", "rmse"],
        model={"estimator": "sklearn.linear_model:LinearRegression"},
        blessing={
            "holdout": 0.3,
            "rules": [{"metric": "mae", "max": 10}],
            "sanity": {"enabled": False},
        },
        monitor={"window": "6d", "performance": {"every": "1d", "min_samples": 10}},
    )
    assert execute_run(project, clock=SimulatedClock(T_TRAIN)).promoted
    est = run_monitor(
        project, clock=SimulatedClock(datetime(2024, 1, 27, tzinfo=UTC)), report=False
    ).summary.estimated
    assert est is not None and est.method == "dle"
    assert est.unlabelled == 72 and est.rows == 144
    mae = est.get("mae")
    assert mae is not None and mae.value is not None
    # the true MAE of the right model: E|N(0, 0.5 + |x1|)| averaged over x1 is about 1.2
    assert 0.9 < mae.value < 1.5 and mae.low < mae.value < mae.high
