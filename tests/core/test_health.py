"""A pipeline's health: which alerts stay open, and the level with its reasons."""

from datetime import UTC, datetime

from retrainer.core.health import MetricStatus, assess, open_alerts
from retrainer.core.types import Event

SEV = {
    "run.failed": "critical",
    "drift.detected": "warning",
    "blessing.rejected": "warning",
    "model.rolled_back": "warning",
    "rollout.rolled_back": "critical",
    "model.promoted": "info",
}


def ev(kind, day, **data):
    return Event(
        kind=kind,
        at=datetime(2024, 1, day, tzinfo=UTC),
        message=f"p: {kind}",
        pipeline="p",
        data=data,
    )


def test_a_failed_run_stays_open_until_a_run_succeeds():
    events = [ev("run.failed", 1)]
    assert [e.kind for e in open_alerts(events, SEV)] == ["run.failed"]
    assert open_alerts([*events, ev("run.succeeded", 2)], SEV) == []
    # a success before the failure does not close it
    assert len(open_alerts([ev("run.succeeded", 1), ev("run.failed", 2)], SEV)) == 1


def test_drift_closes_only_on_a_window_without_drift():
    drift = ev("drift.detected", 1)
    still = ev("monitor.completed", 2, drifted=True)
    assert len(open_alerts([drift, still], SEV)) == 1
    assert open_alerts([drift, still, ev("monitor.completed", 3, drifted=False)], SEV) == []
    # unknown verdict (too few rows) does not close it either
    assert len(open_alerts([drift, ev("monitor.completed", 3, drifted=None)], SEV)) == 1


def test_info_kinds_never_open_and_one_alert_per_kind_the_newest():
    events = [ev("model.promoted", 1), ev("run.failed", 2), ev("run.failed", 3)]
    found = open_alerts(events, SEV)
    assert [(e.kind, e.at.day) for e in found] == [("run.failed", 3)]


def test_levels_and_reasons():
    assert assess(champion=None).level == "red"
    failed = open_alerts([ev("run.failed", 1)], SEV)
    h = assess(champion=3, open_alerts=failed, severities=SEV)
    assert h.level == "red" and h.reasons == ("run.failed",)  # the message without "p: "
    drift = open_alerts([ev("drift.detected", 1)], SEV)
    assert assess(champion=3, open_alerts=drift, severities=SEV).level == "amber"
    ok = assess(
        champion=3,
        metric=MetricStatus(name="accuracy", now=0.79, at_promotion=0.80),
        drifted_columns=[],
    )
    assert ok.level == "green"
    assert ok.reasons == (
        "v3 serving",
        "accuracy 79.0% now, 80.0% at promotion",
        "no drift in the last window",
    )


def test_a_metric_past_a_trigger_threshold_is_red_and_a_clear_fall_amber():
    below = MetricStatus(name="ctr", now=0.018, below=0.0191, at_promotion=0.02)
    h = assess(champion=1, metric=below)
    assert h.level == "red"
    assert h.reasons[0] == "ctr 1.8% is below the trigger's 1.9%"
    # a loss: lower is better, a rise of more than 5% is amber
    loss = MetricStatus(
        name="rmse", now=1.2, at_promotion=1.0, greater_is_better=False, in_points=False
    )
    assert assess(champion=1, metric=loss).level == "amber"
    assert (
        assess(
            champion=1,
            metric=MetricStatus(
                name="rmse", now=1.02, at_promotion=1.0, greater_is_better=False, in_points=False
            ),
        ).level
        == "green"
    )


def test_drifted_columns_without_an_alert_are_amber():
    h = assess(champion=1, drifted_columns=["age", "income"])
    assert h.level == "amber" and h.reasons == ("drift in age, income",)
