"""The ``every <duration>`` form of the schedule trigger."""

from datetime import UTC, datetime, timedelta

import pytest

from retrainer.core.triggers import ScheduleTrigger, TriggerContext, build_trigger
from retrainer.errors import ConfigError


def _ctx(now: datetime, state: dict) -> TriggerContext:
    return TriggerContext(now=now, pipeline="p", state=state)


def test_every_fires_once_per_interval_slot_after_arming() -> None:
    trigger = build_trigger({"schedule": "every 3d"})
    now = datetime(2024, 1, 1, tzinfo=UTC)
    state: dict = {}
    fired = []
    for day in range(12):
        decision = trigger.evaluate(_ctx(now + timedelta(days=day), state))
        state = dict(decision.state)
        if decision.fire:
            fired.append(day)
    # slots are multiples of 3 days since 1970-01-01; 2024-01-01 is day 19723 = 3 * 6574 + 1
    assert fired == [2, 5, 8, 11]


def test_every_next_fire_and_round_trip() -> None:
    trigger = ScheduleTrigger("every 7d")
    nxt = trigger.next_fire(datetime(2024, 1, 1, 12, tzinfo=UTC))
    assert nxt > datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert (nxt - datetime(1970, 1, 1, tzinfo=UTC)) % timedelta(days=7) == timedelta(0)
    assert build_trigger(trigger.to_spec()) == trigger


def test_every_needs_a_duration() -> None:
    with pytest.raises(ConfigError, match="every 7d"):
        build_trigger({"schedule": "every soon"}).needs()
