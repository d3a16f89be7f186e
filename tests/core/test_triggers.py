import json
import math
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from retrainer.core.triggers import (
    AllOf,
    AnyOf,
    CodeChangeTrigger,
    ConceptDriftTrigger,
    Cooldown,
    CronSchedule,
    Decision,
    DriftTrigger,
    Guard,
    ManualTrigger,
    MaxRetrains,
    MetricNeed,
    MetricTrigger,
    MetricValue,
    MinNewRows,
    NewDataTrigger,
    ScheduleTrigger,
    Trigger,
    TriggerContext,
    apply_guards,
    build_guard,
    build_trigger,
    run_key,
)
from retrainer.errors import ConfigError, DataError

T0 = datetime(2024, 3, 1, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")


def ctx(now=T0, **kwargs):
    return TriggerContext(now=now, pipeline="p", **kwargs)


def simulate(trigger, start, end, step=timedelta(minutes=10), **context):
    """Evaluate every `step` from `start` to `end`, carrying the state; return the firings."""
    state, fired, now = {}, [], start
    while now <= end:
        decision = trigger.evaluate(ctx(now, state=state, **context))
        json.dumps(decision.evidence)  # evidence and state stay JSON-safe
        json.dumps(decision.state)
        state = decision.state
        if decision.fire:
            fired.append((now, decision))
        now += step
    return fired


def cron_slots(cron, start, end, tz=UTC):
    """Expected slots in (start, end], computed with croniter on aware datetimes (no DST)."""
    it = croniter(cron, start.astimezone(tz))
    out = []
    while (slot := it.get_next(datetime).astimezone(UTC)) <= end:
        out.append(slot)
    return out


# --- schedule ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cron", ["0 2 * * *", "0 */6 * * *", "15 3 * * MON", "0 0 1 * *"])
def test_schedule_over_a_month_every_10_minutes_fires_exactly_once_per_slot(cron):
    start, end = T0, T0 + timedelta(days=31)
    fired = simulate(ScheduleTrigger(cron), start, end)
    expected = cron_slots(cron, start, end)
    assert [d.slot for _, d in fired] == [s.isoformat() for s in expected]
    # each fires at the first evaluation at or after its slot
    for (at, _), slot in zip(fired, expected, strict=True):
        assert slot <= at < slot + timedelta(minutes=10)


def test_schedule_fires_once_after_three_days_of_downtime():
    trigger = ScheduleTrigger("0 2 * * *")
    first = trigger.evaluate(ctx(datetime(2024, 3, 1, 12, tzinfo=UTC)))
    assert not first.fire
    back = trigger.evaluate(ctx(datetime(2024, 3, 4, 12, tzinfo=UTC), state=first.state))
    assert back.fire
    assert back.slot == "2024-03-04T02:00:00+00:00"  # the latest missed slot
    assert back.evidence["missed_slots"] == 3
    assert "the latest of 3 missed slots" in back.reason
    again = trigger.evaluate(ctx(datetime(2024, 3, 4, 12, 10, tzinfo=UTC), state=back.state))
    assert not again.fire


def test_schedule_first_evaluation_only_arms_unless_catch_up():
    now = datetime(2024, 3, 1, 12, tzinfo=UTC)
    armed = ScheduleTrigger("0 2 * * *").evaluate(ctx(now))
    assert not armed.fire and armed.slot is None
    assert "armed" in armed.reason
    assert armed.changed  # the first evaluation is a change
    caught = ScheduleTrigger("0 2 * * *", catch_up=True).evaluate(ctx(now))
    assert caught.fire and caught.slot == "2024-03-01T02:00:00+00:00"
    later = ScheduleTrigger("0 2 * * *", catch_up=True).evaluate(
        ctx(now + timedelta(hours=1), state=caught.state)
    )
    assert not later.fire


def test_schedule_slot_at_the_first_evaluation_does_not_fire():
    at_slot = datetime(2024, 3, 1, 2, tzinfo=UTC)
    assert not ScheduleTrigger("0 2 * * *").evaluate(ctx(at_slot)).fire


def test_schedule_changed_only_at_first_evaluation():
    fired = simulate(ScheduleTrigger("0 * * * *"), T0, T0 + timedelta(hours=5))
    assert all(not d.changed for _, d in fired)


def test_schedule_clock_going_back_does_not_refire():
    trigger = ScheduleTrigger("0 2 * * *")
    d = trigger.evaluate(ctx(datetime(2024, 3, 2, 1, tzinfo=UTC)))
    d = trigger.evaluate(ctx(datetime(2024, 3, 2, 3, tzinfo=UTC), state=d.state))
    assert d.fire
    for now in (datetime(2024, 3, 1, 23, tzinfo=UTC), datetime(2024, 3, 2, 5, tzinfo=UTC)):
        d = trigger.evaluate(ctx(now, state=d.state))
        assert not d.fire
        assert d.state["last_slot"] == "2024-03-02T02:00:00+00:00"


def test_schedule_state_only_changes_when_a_slot_passes():
    trigger = ScheduleTrigger("0 2 * * *")
    states = [trigger.evaluate(ctx(T0)).state]
    for minutes in range(10, 24 * 60, 10):
        states.append(
            trigger.evaluate(ctx(T0 + timedelta(minutes=minutes), state=states[-1])).state
        )
    assert len({json.dumps(s, sort_keys=True) for s in states}) == 2  # armed, then 02:00


def test_schedule_change_rearms_and_does_not_fire_for_past_slots():
    d = ScheduleTrigger("0 2 * * MON").evaluate(ctx(datetime(2024, 3, 4, 1, tzinfo=UTC)))
    d = ScheduleTrigger("0 2 * * MON").evaluate(
        ctx(datetime(2024, 3, 4, 3, tzinfo=UTC), state=d.state)
    )
    assert d.fire
    # Thursday 10:00: switched to a daily 03:00 schedule; Thursday 03:00 passed before
    daily = ScheduleTrigger("0 3 * * *")
    d = daily.evaluate(ctx(datetime(2024, 3, 7, 10, tzinfo=UTC), state=d.state))
    assert not d.fire and "re-armed" in d.reason
    d = daily.evaluate(ctx(datetime(2024, 3, 8, 3, tzinfo=UTC), state=d.state))
    assert d.fire and d.slot == "2024-03-08T03:00:00+00:00"
    # a new time zone re-arms too
    paris = ScheduleTrigger("0 3 * * *", timezone="Europe/Paris")
    assert not paris.evaluate(ctx(datetime(2024, 3, 9, 3, tzinfo=UTC), state=d.state)).fire


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # spring forward in Paris (2024-03-31 02:00 CET -> 03:00 CEST): 02:30 never exists,
        # the slot is the jump, 03:00 CEST
        (
            datetime(2024, 3, 29, tzinfo=UTC),
            [
                "2024-03-29T01:30:00",
                "2024-03-30T01:30:00",
                "2024-03-31T01:00:00",
                "2024-04-01T00:30:00",
            ],
        ),
        # fall back (2024-10-27 03:00 CEST -> 02:00 CET): 02:30 happens twice, fires once
        (
            datetime(2024, 10, 25, tzinfo=UTC),
            [
                "2024-10-25T00:30:00",
                "2024-10-26T00:30:00",
                "2024-10-27T00:30:00",
                "2024-10-28T01:30:00",
            ],
        ),
    ],
)
def test_schedule_daily_across_dst_fires_once_a_day(start, expected):
    fired = simulate(
        ScheduleTrigger("30 2 * * *", timezone="Europe/Paris"),
        start - timedelta(minutes=10),
        start + timedelta(days=4) - timedelta(minutes=10),
    )
    assert [d.slot for _, d in fired] == [e + "+00:00" for e in expected]


def test_schedule_weekly_keeps_local_time_across_dst():
    trigger = ScheduleTrigger("0 2 * * MON", timezone="Europe/Paris")
    fired = simulate(
        trigger,
        datetime(2024, 3, 10, tzinfo=UTC),
        datetime(2024, 4, 10, tzinfo=UTC),
        step=timedelta(hours=1),
    )
    local = [datetime.fromisoformat(d.slot).astimezone(PARIS) for _, d in fired]
    assert [x.strftime("%a %H:%M") for x in local] == ["Mon 02:00"] * 5
    assert [d.slot[11:16] for _, d in fired] == ["01:00", "01:00", "01:00", "00:00", "00:00"]
    assert fired[0][1].evidence["latest_slot_local"] == "2024-03-11T02:00:00+01:00"


def test_schedule_hourly_across_fall_back_skips_the_repeated_hour():
    fired = simulate(
        ScheduleTrigger("0 * * * *", timezone="Europe/Paris"),
        datetime(2024, 10, 26, 22, 30, tzinfo=UTC),
        datetime(2024, 10, 27, 3, 30, tzinfo=UTC),
    )
    hours = [d.slot[11:13] for _, d in fired]
    assert hours == ["23", "00", "02", "03"]  # 01:00 UTC is the second 02:00 in Paris


def test_schedule_new_york_dst():
    trigger = ScheduleTrigger("0 9 * * *", timezone="America/New_York")
    fired = simulate(
        trigger,
        datetime(2024, 3, 8, 12, tzinfo=UTC),
        datetime(2024, 3, 12, 12, tzinfo=UTC),
        step=timedelta(minutes=30),
    )
    assert [d.slot[11:16] for _, d in fired] == ["14:00", "14:00", "13:00", "13:00"]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2024, 3, 4, 9, tzinfo=UTC), "2024-03-11T01:00:00+00:00"),
        (datetime(2024, 3, 4, 1, tzinfo=UTC), "2024-03-11T01:00:00+00:00"),  # strictly after
        (datetime(2024, 3, 4, 0, 59, tzinfo=UTC), "2024-03-04T01:00:00+00:00"),
        (datetime(2024, 3, 26, tzinfo=UTC), "2024-04-01T00:00:00+00:00"),  # summer time
    ],
)
def test_schedule_next_fire(now, expected):
    trigger = ScheduleTrigger("0 2 * * MON", timezone="Europe/Paris")
    assert trigger.next_fire(now).isoformat() == expected


def test_schedule_next_fire_with_naive_time_taken_as_utc():
    assert ScheduleTrigger("@daily").next_fire(datetime(2024, 3, 4, 5)) == datetime(
        2024, 3, 5, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"cron": "0 2 * *"}, "five fields"),
        ({"cron": "61 * * * *"}, "not a valid cron"),
        ({"cron": "0 0 30 2 *"}, "not a valid cron"),
        ({"cron": "@fortnightly"}, "shortcuts"),
        ({"cron": "0 2 * * * 30"}, "five fields"),
        ({"cron": 2}, "cron must be a cron expression"),
        ({"cron": "0 2 * * *", "timezone": "Mars/Olympus"}, "IANA time zone.*'Mars/Olympus'"),
        ({"cron": "0 2 * * *", "timezone": None}, "timezone"),
        ({"cron": "0 2 * * *", "catch_up": "yes"}, "catch_up must be true or false"),
        ({"cron": "0 2 * * *", "name": ""}, "name must be a non-empty string"),
    ],
)
def test_schedule_validation(params, match):
    trigger = ScheduleTrigger(**params)  # stores as given
    with pytest.raises(ConfigError, match=match):
        trigger.evaluate(ctx())


# --- metric ------------------------------------------------------------------------------------

DAY = timedelta(days=1)
NOW = datetime(2024, 3, 4, 9, tzinfo=UTC)


def metric_ctx(trigger, value, n=5000, status="ok", now=NOW, **kwargs):
    [need] = trigger.needs().metrics
    return ctx(now, metrics={need: MetricValue(value=value, n=n, status=status)}, **kwargs)


def test_metric_needs():
    trigger = MetricTrigger("ctr", below=0.0191, over="1d", min_samples=1000)
    assert trigger.needs().metrics == (MetricNeed(metric="ctr", over=DAY, min_samples=1000),)
    assert trigger.name == "metric:ctr"


@pytest.mark.parametrize(
    ("params", "value", "fires"),
    [
        ({"below": 0.0191}, 0.0173, True),
        ({"below": 0.0191}, 0.0191, False),  # strict
        ({"below": 0.0191}, 0.0205, False),
        ({"above": 0.5}, 0.6, True),
        ({"above": 0.5}, 0.5, False),
        ({"below": 0.01, "above": 0.05}, 0.03, False),
        ({"below": 0.01, "above": 0.05}, 0.06, True),
        ({"below": 0.01, "above": 0.05}, 0.005, True),
    ],
)
def test_metric_absolute_thresholds(params, value, fires):
    trigger = MetricTrigger("ctr", **params)
    d = trigger.evaluate(metric_ctx(trigger, value))
    assert d.fire is fires
    assert d.active is fires
    assert d.state["status"] == ("breach" if fires else "ok")


def test_metric_reason_and_evidence():
    trigger = MetricTrigger("ctr", below=0.0191, over="1d", min_samples=1000)
    d = trigger.evaluate(metric_ctx(trigger, 0.0173, n=5120))
    assert d.reason == "ctr 0.0173 < 0.0191 over 1d (n=5120)"
    assert d.slot == "2024-03-04T00:00:00+00:00"
    assert d.evidence["value"] == 0.0173
    assert d.evidence["n"] == 5120
    assert d.evidence["window_start"] == "2024-03-03T09:00:00+00:00"
    assert d.evidence["conditions"] == [{"condition": "below", "threshold": 0.0191, "met": True}]
    json.dumps(d.evidence)


@pytest.mark.parametrize(
    ("measured", "status"),
    [
        (None, "insufficient_data"),
        (MetricValue(value=None, n=10, status="insufficient_data"), "insufficient_data"),
        (MetricValue(value=0.001, n=999, status="ok"), "insufficient_data"),  # < min_samples
        (MetricValue(value=None, n=5000, status="undefined"), "undefined"),
        (MetricValue(value=math.nan, n=5000, status="ok"), "undefined"),
        (MetricValue(value=None, n=5000, status="ok"), "insufficient_data"),
    ],
)
def test_metric_insufficient_data_never_fires(measured, status):
    trigger = MetricTrigger("ctr", below=0.0191, drop=0.001, min_samples=1000)
    [need] = trigger.needs().metrics
    metrics = {} if measured is None else {need: measured}
    d = trigger.evaluate(ctx(NOW, metrics=metrics, metric_at_promotion={"ctr": 0.02}))
    assert not d.fire and not d.active
    assert d.state["status"] == status
    json.dumps(d.evidence)


def test_metric_is_keyed_by_its_exact_need():
    trigger = MetricTrigger("ctr", below=0.0191, over="1d")
    other = MetricNeed(metric="ctr", over=timedelta(hours=12), min_samples=1)
    d = trigger.evaluate(ctx(NOW, metrics={other: MetricValue(value=0.001, n=50)}))
    assert not d.fire and d.reason == "ctr over 1d: not measured"


@pytest.mark.parametrize(
    ("params", "value", "fires"),
    [
        ({"drop": 0.1, "relative": True}, 0.0171, True),  # exactly 10% below 0.019
        ({"drop": 0.1, "relative": True}, 0.0172, False),
        ({"drop": 0.002}, 0.017, True),  # 0.002 below, absolute
        ({"drop": 0.002}, 0.0175, False),
        ({"rise": 0.05, "relative": True}, 0.01995, True),  # 5% above
        ({"rise": 0.05, "relative": True}, 0.0199, False),
        ({"drop": 0.1, "relative": True}, 0.025, False),  # went up
    ],
)
def test_metric_drop_and_rise_from_the_value_after_promotion(params, value, fires):
    trigger = MetricTrigger("ctr", **params)
    d = trigger.evaluate(metric_ctx(trigger, value, metric_at_promotion={"ctr": 0.019}))
    assert d.fire is fires, d.reason
    assert d.evidence["baseline"] == 0.019


def test_metric_relative_drop_reason():
    trigger = MetricTrigger("ctr", drop=0.1, relative=True)
    d = trigger.evaluate(metric_ctx(trigger, 0.015, n=5120, metric_at_promotion={"ctr": 0.019}))
    assert d.reason == (
        "ctr 0.015 is 21.1% below 0.019 after the last promotion (drop >= 10%) over 1d (n=5120)"
    )
    assert d.evidence["conditions"][0]["change"] == pytest.approx(0.2105, abs=1e-4)


def test_metric_rise_for_a_loss():
    trigger = MetricTrigger("rmse", rise=0.5)
    d = trigger.evaluate(metric_ctx(trigger, 2.6, metric_at_promotion={"rmse": 2.0}))
    assert d.fire
    assert d.reason.startswith("rmse 2.6 is 0.6 above 2 after the last promotion (rise >= 0.5)")


@pytest.mark.parametrize("baseline", [None, math.nan, 0.0])
def test_metric_drop_without_a_usable_baseline_does_not_fire(baseline):
    trigger = MetricTrigger("ctr", drop=0.1, relative=True)
    at_promotion = {} if baseline is None else {"ctr": baseline}
    d = trigger.evaluate(metric_ctx(trigger, 0.0001, metric_at_promotion=at_promotion))
    assert not d.fire
    assert d.evidence["conditions"][0]["met"] is False
    assert d.evidence["conditions"][0]["note"]
    json.dumps(d.evidence)


def test_metric_one_run_per_breach_per_window():
    trigger = MetricTrigger("ctr", below=0.0191, over="1d")
    [need] = trigger.needs().metrics
    breach = {need: MetricValue(value=0.015, n=5000)}
    fired = simulate(trigger, NOW, NOW + timedelta(days=3), step=timedelta(hours=1), metrics=breach)
    times = [at for at, _ in fired]
    assert times == [NOW, NOW + DAY, NOW + 2 * DAY, NOW + 3 * DAY]
    slots = [d.slot for _, d in fired]
    assert len(set(slots)) == len(slots)
    assert (
        "fired at"
        in trigger.evaluate(
            ctx(NOW + timedelta(hours=2), metrics=breach, state=fired[0][1].state)
        ).reason
    )


def test_metric_reevaluation_after_a_crash_gives_the_same_slot():
    trigger = MetricTrigger("ctr", below=0.0191, over="1d")
    first = trigger.evaluate(metric_ctx(trigger, 0.015))
    # the state was not saved: the next tick fires again, with the same slot (same run key)
    retry = trigger.evaluate(metric_ctx(trigger, 0.015, now=NOW + timedelta(minutes=10)))
    assert retry.fire and retry.slot == first.slot


def test_metric_waits_for_a_full_window_after_the_promotion():
    trigger = MetricTrigger("ctr", below=0.0191, over="1d")
    promoted = NOW - timedelta(hours=5)
    d = trigger.evaluate(metric_ctx(trigger, 0.015, last_promotion=promoted))
    assert not d.fire and d.active
    assert "waiting for a full 1d after the promotion" in d.reason
    d = trigger.evaluate(metric_ctx(trigger, 0.015, now=promoted + DAY, last_promotion=promoted))
    assert d.fire


def test_metric_changed_follows_status_transitions():
    trigger = MetricTrigger("ctr", below=0.0191)
    [need] = trigger.needs().metrics
    values = [0.02, 0.02, 0.015, 0.015, 0.02, None]
    state, changes = {}, []
    for i, v in enumerate(values):
        mv = MetricValue(value=v, n=5000 if v else 3, status="ok" if v else "insufficient_data")
        d = trigger.evaluate(ctx(NOW + i * timedelta(hours=1), metrics={need: mv}, state=state))
        state = d.state
        changes.append(d.changed)
    assert changes == [True, False, True, False, True, True]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({}, "needs a threshold"),
        ({"below": "1.91%"}, r"MetricTrigger.below must be a finite number.*'1.91%'"),
        ({"below": math.inf}, "below must be a finite number"),
        ({"below": 0.5, "above": 0.1}, "below must be less than above"),
        ({"drop": -0.1}, "drop must be > 0"),
        ({"rise": 0}, "rise must be > 0"),
        ({"below": 0.1, "relative": True}, "relative applies to drop and rise"),
        ({"below": 0.1, "over": "1 day"}, r"MetricTrigger.over: invalid duration '1 day'"),
        ({"below": 0.1, "over": "0s"}, "over must be a positive duration"),
        ({"below": 0.1, "over": timedelta(microseconds=5)}, "whole seconds"),
        ({"below": 0.1, "min_samples": 0}, "min_samples must be an integer >= 1"),
        ({"below": 0.1, "min_samples": True}, "min_samples"),
        ({"below": 0.1, "relative": 1}, "relative must be true or false"),
    ],
)
def test_metric_validation(params, match):
    trigger = MetricTrigger("ctr", **params)
    with pytest.raises(ConfigError, match=match):
        trigger.needs()


def test_metric_name_validation():
    with pytest.raises(ConfigError, match="metric must be a metric name"):
        MetricTrigger("", below=0.1).needs()


# --- drift -------------------------------------------------------------------------------------


def report(end, drifted=False, share=0.0, columns=()):
    return {
        "drifted": drifted,
        "share_drifted": share,
        "drifted_columns": list(columns),
        "window_end": end,
    }


def test_drift_fires_once_per_new_monitor_result():
    trigger = DriftTrigger()
    state, fired = {}, []
    results = [
        report("2024-03-01T00:00:00+00:00", drifted=True, share=0.6),
        report("2024-03-01T00:00:00+00:00", drifted=True, share=0.6),  # same result again
        report("2024-03-02T00:00:00+00:00", drifted=False, share=0.1),
        report("2024-03-03T00:00:00+00:00", drifted=True, share=0.7),
        report("2024-03-03T00:00:00+00:00", drifted=True, share=0.7),
    ]
    for i, r in enumerate(results):
        d = trigger.evaluate(ctx(T0 + i * timedelta(hours=6), drift=r, state=state))
        state = d.state
        json.dumps(d.evidence)
        if d.fire:
            fired.append(d.slot)
    assert fired == ["2024-03-01T00:00:00+00:00", "2024-03-03T00:00:00+00:00"]


@pytest.mark.parametrize(
    ("params", "r", "fires"),
    [
        ({}, report("2024-03-01", drifted=True, share=0.5), True),
        ({}, report("2024-03-01", drifted=False, share=0.4, columns=["x"]), False),
        ({"share": 0.3}, report("2024-03-01", drifted=False, share=0.4), True),
        ({"share": 0.7}, report("2024-03-01", drifted=True, share=0.5), False),  # stricter
        ({"share": 0.5}, report("2024-03-01", drifted=True, share=0.5), True),  # >=
        ({"features": ["price"]}, report("2024-03-01", columns=["price", "x"]), True),
        (
            {"features": ["price"]},
            report("2024-03-01", drifted=True, share=1, columns=["x"]),
            False,
        ),
        ({"share": 0.9, "features": ["y"]}, report("2024-03-01", share=0.2, columns=["y"]), True),
        ({}, None, False),
        ({}, {"drifted": True}, False),  # no window_end: not a monitor result
    ],
)
def test_drift_conditions(params, r, fires):
    d = DriftTrigger(**params).evaluate(ctx(drift=r))
    assert d.fire is fires, d.reason
    json.dumps(d.evidence)


def test_drift_reason_names_columns_and_naive_window_end_is_utc():
    d = DriftTrigger(features=["price", "region"]).evaluate(
        ctx(drift=report("2024-03-01T06:00:00", columns=["region"]))
    )
    assert d.fire
    assert d.slot == "2024-03-01T06:00:00+00:00"
    assert (
        d.reason == "drift in the monitor window ending 2024-03-01T06:00:00+00:00: drifted: region"
    )


def test_drift_result_before_the_last_promotion_is_ignored():
    d = DriftTrigger().evaluate(
        ctx(
            drift=report("2024-03-01T00:00:00", drifted=True, share=0.9),
            last_promotion=T0 + timedelta(hours=1),
        )
    )
    assert not d.fire and not d.active and d.state["status"] == "stale"


def test_drift_bad_window_end_is_a_data_error():
    with pytest.raises(DataError, match="window_end"):
        DriftTrigger().evaluate(ctx(drift=report("yesterday", drifted=True)))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"share": 0}, r"share must be in \(0, 1\]"),
        ({"share": 1.5}, "share must be in"),
        ({"share": "half"}, "share must be a finite number"),
        ({"features": "price"}, "features must be a list of names"),
        ({"features": ["price", ""]}, "non-empty strings"),
        ({"features": ["a", "a"]}, "twice"),
    ],
)
def test_drift_validation(params, match):
    with pytest.raises(ConfigError, match=match):
        DriftTrigger(**params).needs()


# --- concept drift -----------------------------------------------------------------------------


def test_concept_drift_fires_once_per_new_detection():
    trigger = ConceptDriftTrigger()
    results = [
        {"drift_detected": False, "detections": []},
        {"drift_detected": True, "detections": ["2024-03-01T05:00:00"], "method": "adwin"},
        {"drift_detected": True, "detections": ["2024-03-01T05:00:00"]},  # the same again
        {"drift_detected": False, "detections": []},
        {"drift_detected": True, "detections": ["2024-03-02T01:00:00", "2024-03-02T03:00:00"]},
    ]
    state, fired = {}, []
    for i, r in enumerate(results):
        d = trigger.evaluate(ctx(T0 + i * timedelta(hours=12), concept_drift=r, state=state))
        state = d.state
        if d.fire:
            fired.append((d.slot, d.reason))
    assert fired == [
        (
            "2024-03-01T05:00:00+00:00",
            "concept drift detected at 2024-03-01T05:00:00+00:00 (adwin)",
        ),
        (
            "2024-03-02T03:00:00+00:00",
            "concept drift detected at 2024-03-02T03:00:00+00:00; 2 new detections",
        ),
    ]


def test_concept_drift_before_the_last_promotion_is_ignored():
    r = {"drift_detected": True, "detections": ["2024-03-01T05:00:00+00:00"]}
    d = ConceptDriftTrigger().evaluate(
        ctx(concept_drift=r, last_promotion=datetime(2024, 3, 1, 6, tzinfo=UTC))
    )
    assert not d.fire and not d.active
    assert d.reason == "concept drift: the detections predate the last promotion"
    assert not ConceptDriftTrigger().evaluate(ctx()).fire


# --- new data ----------------------------------------------------------------------------------

TRAINED = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("params", "since", "training_rows", "fires", "threshold"),
    [
        ({"rows": 10_000}, 9_999, 50_000, False, 10_000),
        ({"rows": 10_000}, 10_000, 50_000, True, 10_000),
        ({"fraction": 0.1}, 5_000, 50_000, True, 5_000),
        ({"fraction": 0.1}, 4_999, 50_000, False, 5_000),
        ({"rows": 10_000, "fraction": 0.1}, 6_000, 50_000, True, 5_000),  # the smaller
        ({"rows": 1_000, "fraction": 0.1}, 1_500, 50_000, True, 1_000),
        ({"fraction": 0.1}, 5_000, None, False, None),  # training rows unknown
        ({"rows": 10}, None, 50_000, False, None),  # new rows unknown
    ],
)
def test_new_data_thresholds(params, since, training_rows, fires, threshold):
    d = NewDataTrigger(**params).evaluate(
        ctx(last_training=TRAINED, rows_since_training=since, training_rows=training_rows)
    )
    assert d.fire is fires, d.reason
    assert d.evidence.get("threshold") == threshold


def test_new_data_fires_once_per_batch_and_resets_with_a_new_training():
    trigger = NewDataTrigger(rows=100)
    state, slots = {}, []
    for since, trained in [
        (50, TRAINED),
        (120, TRAINED),
        (150, TRAINED),
        (210, TRAINED),
        (30, T0 + DAY),
        (110, T0 + DAY),
    ]:
        d = trigger.evaluate(ctx(last_training=trained, rows_since_training=since, state=state))
        state = d.state
        if d.fire:
            slots.append(d.slot)
    assert slots == [
        "2024-03-01T00:00:00+00:00#1",
        "2024-03-01T00:00:00+00:00#2",
        "2024-03-02T00:00:00+00:00#1",
    ]


def test_new_data_validation():
    with pytest.raises(ConfigError, match="needs rows or fraction"):
        NewDataTrigger().needs()
    with pytest.raises(ConfigError, match="rows must be an integer >= 1"):
        NewDataTrigger(rows=0).needs()
    with pytest.raises(ConfigError, match="fraction must be > 0"):
        NewDataTrigger(fraction=-1).needs()


# --- code change -------------------------------------------------------------------------------


def code(h, c=None):
    return {"pipeline_hash": h, "git_commit": c}


@pytest.mark.parametrize(
    ("params", "current", "champion", "fires", "slot"),
    [
        ({}, code("a", "c1"), code("a", "c1"), False, None),
        ({}, code("b", "c1"), code("a", "c1"), True, "b@c1"),
        ({}, code("a", "c2"), code("a", "c1"), True, "a@c2"),
        ({}, code("a", None), code("a", "c1"), False, None),  # unknown commit: not compared
        ({"watch": ["pipeline_hash"]}, code("a", "c2"), code("a", "c1"), False, None),
        ({"watch": ["pipeline_hash"]}, code("b", "c2"), code("a", "c1"), True, "b"),
        ({}, code("a", "c1"), None, True, "a@c1"),  # no champion: train the first model
        ({}, code(None, None), code("a", "c1"), False, None),
    ],
)
def test_code_change(params, current, champion, fires, slot):
    d = CodeChangeTrigger(**params).evaluate(ctx(code=current, champion_code=champion))
    assert d.fire is fires, d.reason
    assert d.slot == slot


def test_code_change_fires_once_per_code_version():
    trigger = CodeChangeTrigger()
    d1 = trigger.evaluate(ctx(code=code("b", "c1"), champion_code=code("a", "c1")))
    d2 = trigger.evaluate(ctx(code=code("b", "c1"), champion_code=code("a", "c1"), state=d1.state))
    assert d1.fire and not d2.fire and d2.active
    assert d2.reason.endswith("(acted on already)")
    d3 = trigger.evaluate(ctx(code=code("c", "c1"), champion_code=code("a", "c1"), state=d2.state))
    assert d3.fire and d3.slot == "c@c1"


def test_code_change_without_champion_fires_once():
    trigger = CodeChangeTrigger()
    d1 = trigger.evaluate(ctx(code=code("a")))
    d2 = trigger.evaluate(ctx(code=code("a"), state=d1.state))
    assert d1.fire and d1.reason == "no champion yet: train the first model"
    assert not d2.fire


def test_code_change_validation():
    with pytest.raises(ConfigError, match="watch may only hold pipeline_hash, git_commit"):
        CodeChangeTrigger(watch=["branch"]).needs()
    with pytest.raises(ConfigError, match="at least one"):
        CodeChangeTrigger(watch=[]).needs()


# --- manual ------------------------------------------------------------------------------------


def test_manual_fires_once_per_request_in_order():
    trigger = ManualTrigger()
    requests = [
        {"id": "r1", "at": T0},
        {"id": "r2", "at": "2024-03-01T01:00:00+00:00", "reason": "hotfix"},
    ]
    d1 = trigger.evaluate(ctx(manual_requests=requests))
    d2 = trigger.evaluate(ctx(manual_requests=requests, state=d1.state))
    d3 = trigger.evaluate(ctx(manual_requests=requests, state=d2.state))
    assert (d1.fire, d1.slot, d2.fire, d2.slot, d3.fire) == (True, "r1", True, "r2", False)
    assert d1.evidence["request"] == {"id": "r1", "at": "2024-03-01T00:00:00+00:00"}
    assert d2.reason == "manual request r2 at 2024-03-01T01:00:00+00:00: hotfix"
    json.dumps(d1.evidence)
    assert [d.changed for d in (d1, d2, d3)] == [True, True, False]


def test_manual_remembers_only_recent_requests():
    state = {}
    for i in range(150):
        state = ManualTrigger().evaluate(ctx(manual_requests=[{"id": i}], state=state)).state
    assert len(state["handled"]) == 100 and state["handled"][-1] == "149"


def test_manual_request_without_id_is_a_data_error():
    with pytest.raises(DataError, match="needs an 'id'"):
        ManualTrigger().evaluate(ctx(manual_requests=[{"at": T0}]))


# --- combinators -------------------------------------------------------------------------------


def test_any_of_fires_when_a_child_fires_and_keeps_child_states():
    trigger = AnyOf(ManualTrigger(), DriftTrigger())
    r = report("2024-03-01T00:00:00+00:00", drifted=True, share=0.9)
    d1 = trigger.evaluate(ctx(drift=r, manual_requests=[{"id": "r1"}]))
    assert d1.fire and d1.slot == "manual:r1"
    assert "also firing: drift" in d1.reason
    assert set(d1.state["children"]) == {"manual", "drift"}
    d2 = trigger.evaluate(ctx(drift=r, manual_requests=[{"id": "r1"}], state=d1.state))
    assert not d2.fire and d2.active  # the drift is still there, acted on already
    assert [c["trigger"] for c in d2.evidence["children"]] == ["manual", "drift"]
    json.dumps(d2.evidence)


def test_all_of_schedule_and_new_data():
    trigger = AllOf(ScheduleTrigger("0 2 * * *"), NewDataTrigger(rows=100))
    assert trigger.name == "all(schedule,new_data)"
    state, fired = {}, []
    rows = {1: 50, 2: 150, 3: 160, 4: 20}  # new rows seen on day d
    for day in range(0, 5):
        for hour in range(24):
            now = T0 + timedelta(days=day, hours=hour)
            d = trigger.evaluate(
                ctx(now, state=state, last_training=T0, rows_since_training=rows.get(day, 0))
            )
            state = d.state
            if d.fire:
                fired.append(d.slot)
    # day 1: not enough rows at 02:00, and the slot is not carried over; day 2: the rows
    # arrived at midnight (new_data's own firing, acted on then), 02:00 finds them there
    assert fired == ["schedule:2024-03-03T02:00:00+00:00", "schedule:2024-03-04T02:00:00+00:00"]


def test_combinator_needs_and_nesting():
    m1 = MetricTrigger("ctr", below=0.01)
    m2 = MetricTrigger("ctr", drop=0.1, relative=True, name="ctr_drop")
    nested = AnyOf(AllOf(m1, DriftTrigger()), m2)
    assert nested.needs().metrics == (m1.needs().metrics[0],)  # one need, shared
    [need] = nested.needs().metrics
    d = nested.evaluate(
        ctx(
            metrics={need: MetricValue(value=0.005, n=100)},
            drift=report("2024-03-01", drifted=True, share=1.0),
        )
    )
    assert d.fire and d.slot.startswith("all(metric:ctr,drift):metric:ctr:")
    assert isinstance(nested, Trigger)


def test_combinator_validation():
    with pytest.raises(ConfigError, match="two triggers named 'schedule'"):
        AnyOf(ScheduleTrigger("0 1 * * *"), ScheduleTrigger("0 2 * * *")).needs()
    with pytest.raises(ConfigError, match="at least one trigger"):
        AllOf().needs()
    with pytest.raises(ConfigError, match="takes triggers"):
        AnyOf("schedule").needs()
    with pytest.raises(ConfigError, match="below must be"):
        AnyOf(MetricTrigger("ctr", below="x")).needs()


# --- guards ------------------------------------------------------------------------------------

FIRED = Decision(fire=True, trigger="drift", slot="s1", reason="drift!", active=True)


def test_cooldown_holds_back_and_keeps_the_previous_state():
    previous = {"last_window_end": "2024-02-28T00:00:00+00:00", "status": "no_drift"}
    c = ctx(NOW, last_training=NOW - timedelta(hours=2), state=previous)
    held = Cooldown("6h").check(
        c, replace(FIRED, state={"last_window_end": "new", "status": "drifted"})
    )
    assert not held.fire and held.slot is None and held.active
    assert held.reason == "cooldown: last training 2h ago < 6h (held back: drift!)"
    assert held.state == {
        "last_window_end": "2024-02-28T00:00:00+00:00",
        "status": "blocked:cooldown",
    }
    assert held.changed
    assert held.evidence["held_back"] == {"slot": "s1", "reason": "drift!"}
    assert held.evidence["guards"][0]["passed"] is False
    again = Cooldown("6h").check(replace(c, state=held.state), FIRED)
    assert not again.changed  # still blocked: no new event


def test_cooldown_uses_the_latest_of_training_and_runs():
    c = ctx(
        NOW,
        last_training=NOW - DAY,
        recent_runs=[NOW - timedelta(hours=30), NOW - timedelta(minutes=90)],
    )
    held = Cooldown("6h").check(c, FIRED)
    assert held.reason.startswith("cooldown: last run 1h30m ago < 6h")
    passed = Cooldown("1h").check(c, FIRED)
    assert passed.fire and passed.evidence["guards"][0]["passed"]
    assert Cooldown("1h").check(ctx(NOW), FIRED).fire  # nothing yet


def test_guards_leave_non_firing_decisions_alone():
    quiet = Decision(fire=False, trigger="drift", slot=None, reason="no drift")
    c = ctx(NOW, last_training=NOW, recent_runs=[NOW] * 5, rows_since_training=0)
    for guard in (Cooldown("6h"), MaxRetrains(count=1, per="1d"), MinNewRows(10)):
        assert guard.check(c, quiet) is quiet


def test_max_retrains():
    runs = [NOW - timedelta(hours=h) for h in (1, 5, 23, 25)]
    guard = MaxRetrains(count=3, per="1d")
    held = guard.check(ctx(NOW, recent_runs=runs), FIRED)
    assert not held.fire
    assert held.reason.startswith("max_retrains: 3 runs in the last 1d (limit 3)")
    assert guard.check(ctx(NOW, recent_runs=runs[1:]), FIRED).fire
    assert guard.lookback() == DAY


@pytest.mark.parametrize(
    ("last_training", "since", "fires", "reason"),
    [
        (None, None, True, "min_new_rows: no model trained yet"),
        (TRAINED, None, False, "min_new_rows: rows since the last training unknown"),
        (TRAINED, 999, False, "min_new_rows: 999 new rows since the last training < 1000"),
        (TRAINED, 1000, True, "min_new_rows: 1000 new rows since the last training >= 1000"),
    ],
)
def test_min_new_rows(last_training, since, fires, reason):
    d = MinNewRows(1000).check(
        ctx(NOW, last_training=last_training, rows_since_training=since), FIRED
    )
    assert d.fire is fires
    assert d.evidence["guards"][-1]["reason"] == reason


def test_apply_guards_stops_at_the_first_that_holds_back():
    c = ctx(
        NOW, last_training=TRAINED, rows_since_training=10, recent_runs=[NOW - timedelta(hours=1)]
    )
    d = apply_guards(c, FIRED, [MinNewRows(5), Cooldown("6h"), MaxRetrains(count=1, per="1d")])
    assert not d.fire
    assert [g["guard"] for g in d.evidence["guards"]] == ["min_new_rows", "cooldown"]
    assert d.state["status"] == "blocked:cooldown"


def test_held_back_schedule_fires_when_the_guard_allows_it():
    trigger, guard = ScheduleTrigger("0 2 * * *"), Cooldown("6h")
    trained = datetime(2024, 3, 2, 0, 30, tzinfo=UTC)
    state, fired = {}, []
    for i in range(0, 24 * 6 + 1):
        now = T0 + timedelta(days=1) + i * timedelta(minutes=10)
        c = ctx(now, state=state, last_training=trained)
        d = apply_guards(c, trigger.evaluate(c), [guard])
        state = d.state
        if d.fire:
            fired.append((now, d.slot))
    # 02:00 is held back by the 00:30 training; it fires once the cooldown is over
    assert fired == [(datetime(2024, 3, 2, 6, 30, tzinfo=UTC), "2024-03-02T02:00:00+00:00")]


@pytest.mark.parametrize(
    ("guard", "match"),
    [
        (Cooldown("six hours"), "Cooldown.period: invalid duration"),
        (Cooldown(6), "Cooldown.period must be a duration"),
        (MaxRetrains(count=0, per="1d"), "MaxRetrains.count must be an integer >= 1"),
        (MaxRetrains(count=2, per="-1d"), "MaxRetrains.per: invalid duration"),
        (MinNewRows(rows=2.5), "MinNewRows.rows must be an integer >= 1"),
    ],
)
def test_guard_validation(guard, match):
    with pytest.raises(ConfigError, match=match):
        guard.check(ctx(NOW), FIRED)


@settings(max_examples=150, deadline=None)
@given(
    minute=st.integers(0, 59),
    hour=st.one_of(st.just("*"), st.integers(0, 23).map(str)),
    day=st.sampled_from(["*", "0", "3", "7", "MON", "sun", "Fri"]),
    zone=st.sampled_from(["UTC", "Etc/UTC", "GMT"]),
    seconds=st.integers(0, 2_000_000_000),
)
def test_fixed_period_crons_give_croniters_slots(minute, hour, day, zone, seconds):
    """The arithmetic path for hourly, daily and weekly UTC crons finds croniter's slots."""
    cron = f"{minute} {hour} * * {day}"
    schedule = CronSchedule(cron, ZoneInfo(zone))
    now = datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=seconds % 7)
    fixed = schedule.fixed_period
    if hour == "*" and day != "*":
        assert fixed is None  # hourly on one day of the week: croniter's
        return
    assert fixed is not None
    it = croniter(cron, now.replace(tzinfo=None) + timedelta(microseconds=1))
    assert schedule.latest(now) == it.get_prev(datetime).replace(tzinfo=UTC)
    step = schedule.slots_after(now)
    it = croniter(cron, now.replace(tzinfo=None))
    for _ in range(3):
        assert step() == it.get_next(datetime).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "zone"),
    [
        ("0 2 * * *", "Europe/Paris"),  # clocks change
        ("0 2 1 * *", "UTC"),  # monthly
        ("0 2 * 6 *", "UTC"),  # June only
        ("*/5 * * * *", "UTC"),
        ("0 2,14 * * *", "UTC"),
        ("0 2 * * MON-FRI", "UTC"),
        ("@monthly", "UTC"),
    ],
)
def test_calendar_crons_are_left_to_croniter(cron, zone):
    assert CronSchedule(cron, ZoneInfo(zone)).fixed_period is None


def test_guards_satisfy_the_protocol():
    for guard in (Cooldown("1h"), MaxRetrains(count=1, per="1d"), MinNewRows(1)):
        assert isinstance(guard, Guard)


@settings(max_examples=60, deadline=None)
@given(
    period_minutes=st.integers(min_value=1, max_value=600),
    gaps=st.lists(st.integers(min_value=1, max_value=240), min_size=1, max_size=60),
    trigger_kind=st.sampled_from(["schedule", "manual", "metric"]),
)
def test_a_trigger_with_a_cooldown_never_fires_twice_inside_it(period_minutes, gaps, trigger_kind):
    period = timedelta(minutes=period_minutes)
    trigger = {
        "schedule": ScheduleTrigger("*/7 * * * *"),
        "manual": ManualTrigger(),
        "metric": MetricTrigger("ctr", below=0.5, over="15m"),
    }[trigger_kind]
    needs = trigger.needs().metrics
    metrics = {n: MetricValue(value=0.1, n=100) for n in needs}
    guard = Cooldown(f"{period_minutes}m")
    now, state, runs = T0, {}, []
    for i, gap in enumerate(gaps):
        now += timedelta(minutes=gap)
        c = ctx(
            now, state=state, recent_runs=tuple(runs), metrics=metrics, manual_requests=[{"id": i}]
        )
        d = apply_guards(c, trigger.evaluate(c), [guard])
        state = d.state
        if d.fire:
            assert all(now - r >= period for r in runs)
            runs.append(now)


@settings(max_examples=60, deadline=None)
@given(gaps=st.lists(st.integers(min_value=1, max_value=3 * 24 * 60), min_size=1, max_size=40))
def test_schedule_never_fires_twice_for_a_slot_and_fires_for_the_latest_due(gaps):
    trigger = ScheduleTrigger("0 */4 * * *", timezone="Europe/Paris")
    now = datetime(2024, 10, 25, tzinfo=UTC)
    state = trigger.evaluate(ctx(now)).state
    slots = []
    for gap in gaps:
        before, now = now, now + timedelta(minutes=gap)
        d = trigger.evaluate(ctx(now, state=state))
        state = d.state
        due = cron_slots("0 */4 * * *", before, now, tz=PARIS)
        assert d.fire is bool(due)
        if d.fire:
            slots.append(datetime.fromisoformat(d.slot))
            assert slots[-1] <= now and slots[-1] > before
    assert slots == sorted(set(slots))


# --- watching: the trigger judged its signal ----------------------------------------------------

ACC_1D = MetricNeed(metric="accuracy", over=timedelta(days=1), min_samples=10)


@pytest.mark.parametrize(
    ("trigger", "context", "watching"),
    [
        (ScheduleTrigger("0 2 * * *"), {}, True),
        (MetricTrigger("accuracy", below=0.9, over="1d", min_samples=10), {}, False),
        (
            MetricTrigger("accuracy", below=0.9, over="1d", min_samples=10),
            {"metrics": {ACC_1D: MetricValue(value=None, n=0, status="insufficient_data")}},
            False,
        ),
        (
            MetricTrigger("accuracy", below=0.9, over="1d", min_samples=10),
            {"metrics": {ACC_1D: MetricValue(value=0.95, n=5, status="ok")}},
            False,  # fewer rows than min_samples
        ),
        (
            MetricTrigger("accuracy", below=0.9, over="1d", min_samples=10),
            {"metrics": {ACC_1D: MetricValue(value=0.95, n=50, status="ok")}},
            True,  # judged, and nothing crossed
        ),
        (
            MetricTrigger("accuracy", below=0.9, over="1d", min_samples=10),
            {"metrics": {ACC_1D: MetricValue(value=0.5, n=50, status="ok")}},
            True,  # fires
        ),
        (DriftTrigger(), {}, False),
        (DriftTrigger(), {"drift": {"window_end": "2024-02-29T00:00:00", "drifted": False}}, True),
        (
            DriftTrigger(),
            {"drift": {"window_end": "2024-02-29T00:00:00", "drifted": False, "n_tested": 0}},
            False,  # an empty window: no column tested
        ),
        (
            DriftTrigger(),
            {"drift": {"window_end": "2024-02-29T00:00:00", "drifted": False, "n_tested": 6}},
            True,
        ),
        (ConceptDriftTrigger(), {}, False),
        (ConceptDriftTrigger(), {"concept_drift": {"detections": [], "rows_seen": 0}}, False),
        (ConceptDriftTrigger(), {"concept_drift": {"detections": [], "rows_seen": 40}}, True),
        (NewDataTrigger(rows=100), {}, False),
        (NewDataTrigger(rows=100), {"rows_since_training": 10}, True),
        (CodeChangeTrigger(), {"code": {"pipeline_hash": "a"}}, False),
        (ManualTrigger(), {"manual_requests": [{"id": "r1"}]}, False),
    ],
)
def test_watching_says_whether_the_trigger_judged_its_signal(trigger, context, watching):
    assert trigger.evaluate(ctx(**context)).watching is watching


def test_concept_drift_says_whether_its_detector_has_seen_errors():
    blind = ConceptDriftTrigger().evaluate(ctx(concept_drift={"detections": [], "rows_seen": 0}))
    seeing = ConceptDriftTrigger().evaluate(ctx(concept_drift={"detections": [], "rows_seen": 7}))
    assert blind.reason.startswith("concept drift: no error seen yet")
    assert seeing.reason == "concept drift: no detection in 7 errors"
    assert seeing.evidence["rows_seen"] == 7


def test_any_watches_when_one_child_does_all_only_when_every_child_does():
    children = (ScheduleTrigger("0 2 * * *"), ConceptDriftTrigger())
    assert AnyOf(*children).evaluate(ctx()).watching
    assert not AllOf(*children).evaluate(ctx()).watching
    seen = ctx(concept_drift={"detections": [], "rows_seen": 3})
    assert AllOf(*children).evaluate(seen).watching


def test_a_guard_holding_a_firing_back_keeps_watching():
    fired = ScheduleTrigger("0 2 * * *").evaluate(
        ctx(
            T0 + timedelta(hours=3),
            state={
                "last_slot": "2024-02-29T02:00:00+00:00",
                "cron": "0 2 * * *",
                "timezone": "UTC",
            },
        )
    )
    assert fired.fire and fired.watching
    held = apply_guards(
        ctx(T0 + timedelta(hours=3), last_training=T0 + timedelta(hours=2)),
        fired,
        [Cooldown("1d")],
    )
    assert not held.fire and held.watching


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"schedule": "0 2 * * MON", "timezone": "Europe/Paris"},
            ScheduleTrigger("0 2 * * MON", timezone="Europe/Paris"),
        ),
        (
            {"metric": "ctr", "below": 0.0191, "over": "1d", "min_samples": 1000},
            MetricTrigger("ctr", below=0.0191, over="1d", min_samples=1000),
        ),
        ({"drift": {"share": 0.5}}, DriftTrigger(share=0.5)),
        ({"drift": None, "name": "d"}, DriftTrigger(name="d")),
        ({"concept_drift": {}}, ConceptDriftTrigger()),
        ({"new_data": {"rows": 10000}}, NewDataTrigger(rows=10000)),
        ({"code_change": {}}, CodeChangeTrigger()),
        ({"manual": {}}, ManualTrigger()),
        (
            {
                "any": [
                    {"schedule": "@daily"},
                    {"all": [{"drift": {}}, {"new_data": {"fraction": 0.2}}]},
                ]
            },
            AnyOf(ScheduleTrigger("@daily"), AllOf(DriftTrigger(), NewDataTrigger(fraction=0.2))),
        ),
    ],
)
def test_build_trigger(spec, expected):
    trigger = build_trigger(spec)
    assert trigger == expected
    assert isinstance(trigger, Trigger)
    assert build_trigger(trigger.to_spec()) == trigger
    assert trigger.to_spec() == build_trigger(trigger.to_spec()).to_spec()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("schedule", "must be a mapping"),
        ({"cron": "0 2 * * *"}, "exactly one of the keys schedule, metric"),
        ({"schedule": "@daily", "metric": "ctr"}, "found 'schedule', 'metric'"),
        (
            {"schedule": "@daily", "tz": "UTC"},
            "a schedule trigger has unknown key.*'tz'; it takes schedule, timezone, catch_up, name",
        ),
        (
            {"drift": {"threshold": 0.5}},
            r"trigger.drift has unknown key\(s\) 'threshold'; it takes share, features",
        ),
        ({"drift": 0.5}, "drift must be a mapping"),
        ({"concept_drift": {"method": "adwin"}}, "it takes no keys"),
        (
            {"metric": "ctr", "below": "1.91%"},
            r"trigger: MetricTrigger.below must be a finite number or None; got '1.91%'",
        ),
        ({"any": {"schedule": "@daily"}}, "trigger.any must be a list of triggers"),
        (
            {"any": [{"schedule": "@daily"}, {"drift": {"x": 1}}]},
            r"trigger.any\[1\].drift has unknown key",
        ),
        (
            {"all": [{"schedule": "@daily"}, {"schedule": "@hourly"}]},
            "two triggers named 'schedule'",
        ),
        ({"schedule": "every day"}, "not a valid cron"),
    ],
)
def test_build_trigger_errors(spec, match):
    with pytest.raises(ConfigError, match=match):
        build_trigger(spec)


def test_build_trigger_error_names_where():
    with pytest.raises(ConfigError, match=r"^triggers\[2\]: a metric trigger has unknown key"):
        build_trigger({"metric": "ctr", "treshold": 1}, where="triggers[2]")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"cooldown": "6h"}, Cooldown("6h")),
        ({"max_retrains": {"count": 3, "per": "1d"}}, MaxRetrains(count=3, per="1d")),
        ({"min_new_rows": 1000}, MinNewRows(1000)),
    ],
)
def test_build_guard(spec, expected):
    guard = build_guard(spec)
    assert guard == expected
    assert guard.to_spec() == spec
    assert build_guard(guard.to_spec()) == guard


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"cooldown": "6h", "min_new_rows": 5}, "one key"),
        ({"cool_down": "6h"}, "unknown guard 'cool_down'; expected one of cooldown"),
        ({"max_retrains": {"count": 3}}, "missing 'per'"),
        ({"max_retrains": {"count": 3, "per": "1d", "burst": 2}}, "unknown key.*'burst'"),
        ({"max_retrains": 3}, "must be a mapping"),
        ({"min_new_rows": "many"}, "MinNewRows.rows must be an integer >= 1; got 'many'"),
    ],
)
def test_build_guard_errors(spec, match):
    with pytest.raises(ConfigError, match=match):
        build_guard(spec)


def test_timedelta_parameters_round_trip():
    trigger = MetricTrigger("ctr", below=0.1, over=timedelta(hours=36))
    assert trigger.to_spec()["over"] == "1d12h"
    assert build_trigger(trigger.to_spec()) == trigger
    assert build_guard(Cooldown(timedelta(minutes=90)).to_spec()) == Cooldown("1h30m")


def test_repr_and_params():
    assert repr(MinNewRows(5)) == "MinNewRows(rows=5)"
    assert (
        repr(AnyOf(ManualTrigger()))
        == "AnyOf(ManualTrigger(name='manual', remember=100), name='any(manual)')"
    )
    assert ScheduleTrigger("@daily").get_params() == {
        "cron": "@daily",
        "timezone": "UTC",
        "catch_up": False,
        "name": "schedule",
    }
    assert ScheduleTrigger("@daily") != ScheduleTrigger("@hourly")
    assert ScheduleTrigger("@daily") != ManualTrigger()


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
durations = st.sampled_from(["1d", "6h", "30m", "1d12h", "2w", "45s"])
leaf_specs = st.one_of(
    st.builds(
        lambda cron, tz, catch_up: {"schedule": cron, "timezone": tz, "catch_up": catch_up},
        st.sampled_from(["0 2 * * MON", "@daily", "*/15 * * * *", "0 0 1 * *"]),
        st.sampled_from(["UTC", "Europe/Paris", "America/New_York"]),
        st.booleans(),
    ),
    st.builds(
        lambda metric, below, drop, relative, over, n: {
            "metric": metric,
            "below": below,
            "drop": drop,
            "relative": relative and drop is not None,
            "over": over,
            "min_samples": n,
        },
        st.sampled_from(["ctr", "accuracy", "rmse"]),
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
        st.none() | st.floats(min_value=1e-6, max_value=10),
        st.booleans(),
        durations,
        st.integers(min_value=1, max_value=10**6),
    ),
    st.builds(
        lambda share, features: {"drift": {"share": share, "features": features}},
        st.none() | st.floats(min_value=0.01, max_value=1),
        st.lists(names, max_size=3, unique=True),
    ),
    st.just({"concept_drift": {}}),
    st.builds(
        lambda rows, fraction: {"new_data": {"rows": rows, "fraction": fraction}},
        st.integers(min_value=1, max_value=10**9),
        st.none() | st.floats(min_value=0.001, max_value=5),
    ),
    st.sampled_from(
        [{"code_change": {}}, {"code_change": {"watch": ["git_commit"]}}, {"manual": {}}]
    ),
)


def _named(specs):
    return [{**s, "name": f"t{i}"} for i, s in enumerate(specs)]


trigger_specs = st.recursive(
    leaf_specs,
    lambda children: st.builds(
        lambda kind, items: {kind: _named(items)},
        st.sampled_from(["any", "all"]),
        st.lists(children, min_size=1, max_size=3),
    ),
    max_leaves=6,
)


@settings(max_examples=100, deadline=None)
@given(spec=trigger_specs)
def test_spec_round_trips(spec):
    trigger = build_trigger(spec)
    written = trigger.to_spec()
    json.dumps(written)
    again = build_trigger(written)
    assert again == trigger
    assert again.to_spec() == written


@settings(max_examples=50, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=100),
    per=durations,
    rows=st.integers(min_value=1, max_value=10**9),
    which=st.sampled_from(["cooldown", "max_retrains", "min_new_rows"]),
)
def test_guard_spec_round_trips(count, per, rows, which):
    spec = {
        "cooldown": {"cooldown": per},
        "max_retrains": {"max_retrains": {"count": count, "per": per}},
        "min_new_rows": {"min_new_rows": rows},
    }[which]
    guard = build_guard(spec)
    assert guard.to_spec() == spec
    assert build_guard(guard.to_spec()) == guard


# --- run keys ----------------------------------------------------------------------------------

parts = st.text(min_size=1, max_size=300)


@settings(max_examples=200, deadline=None)
@given(a=st.tuples(parts, parts, parts), b=st.tuples(parts, parts, parts))
def test_run_key_is_stable_and_injective(a, b):
    assert run_key(*a) == run_key(*a)
    assert len(run_key(*a)) <= 200
    if a != b:
        assert run_key(*a) != run_key(*b)


@settings(max_examples=100, deadline=None)
@given(slot_a=parts, slot_b=parts)
def test_run_key_different_slots_give_different_keys(slot_a, slot_b):
    if slot_a != slot_b:
        assert run_key("p", "schedule", slot_a) != run_key("p", "schedule", slot_b)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("ads", "schedule", "2024-03-04T01:00:00+00:00"),
            "ads/schedule/2024-03-04T01:00:00+00:00",
        ),
        (("a/b", "c", "d"), "a%2Fb/c/d"),
        (("a", "b/c", "d"), "a/b%2Fc/d"),
        (("a", "b", "100%~"), "a/b/100%25%7E"),
        (
            ("p", "code_change", "x" * 300),
            # pinned: a key must not change between versions, or restarts would duplicate runs
            "p/code_change/" + "x" * 169 + "~eded2253440cb0d6",
        ),
    ],
)
def test_run_key_values(args, expected):
    assert run_key(*args) == expected


def test_run_key_is_the_same_in_another_process():
    args = ("ctr", "any(drift,manual)", "manual:" + "r" * 250)
    code = "from retrainer.core.triggers import run_key; import sys; print(run_key(*sys.argv[1:]))"
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == run_key(*args)


@pytest.mark.parametrize("bad", [("", "t", "s"), ("p", None, "s"), ("p", "t", "")])
def test_run_key_rejects_empty_parts(bad):
    with pytest.raises(ConfigError, match="must be a non-empty string"):
        run_key(*bad)


@pytest.mark.parametrize(
    ("cron", "timezone"),
    [("0 0 * * *", "UTC"), ("30 2 * * *", "Europe/Paris"), ("0 * * * *", "Europe/Paris")],
)
def test_schedule_slot_caches_change_no_decision(cron: str, timezone: str) -> None:
    # the slots found are remembered (ticks between two slots, or at the next one, do not
    # search for them again): the decisions are those of a schedule that remembers nothing,
    # across both DST changes. The memory is the trigger's own (no module-level cache).
    trigger = ScheduleTrigger(cron, timezone=timezone)

    def forget() -> None:
        trigger.__dict__.pop("_schedule_memo", None)

    forget()
    for start in (datetime(2024, 3, 30, tzinfo=UTC), datetime(2024, 10, 26, tzinfo=UTC)):
        cached: dict = {}
        fresh: dict = {}
        for k in range(0, 4 * 24 * 2):  # every 30 minutes, then at every slot found
            now = start + timedelta(minutes=30 * k)
            a = trigger.evaluate(TriggerContext(now=now, pipeline="p", state=cached))
            forget()
            b = trigger.evaluate(TriggerContext(now=now, pipeline="p", state=fresh))
            assert a == b
            cached, fresh = dict(a.state), dict(b.state)
            # and a tick exactly at the next slot, then at the same instant again
            at = datetime.fromisoformat(a.evidence["next_slot"])
            for _ in range(2):
                c = trigger.evaluate(TriggerContext(now=at, pipeline="p", state=cached))
                forget()
                d = trigger.evaluate(TriggerContext(now=at, pipeline="p", state=fresh))
                assert c == d


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ({"metric": "accuracy", "drop": 0.02, "over": "3d"}, "accuracy drops 2 pts over 3d"),
        ({"metric": "mae", "rise": 0.02, "over": "3d"}, "mae rises 0.02 over 3d"),
        ({"metric": "rmse", "rise": 2.5}, "rmse rises 2.5 over 1d"),
        ({"metric": "mae", "rise": 0.1, "relative": True}, "mae rises 10% over 1d"),
    ],
)
def test_a_metric_trigger_describes_a_change_in_points_only_for_shares(spec, text):
    # "mae rises 2 pts" read as 2 percentage points of a rate: MAE is in the target's units
    from retrainer.core.triggers import build_trigger

    assert build_trigger(spec).describe() == text
