"""The cron schedule trigger."""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any, ClassVar

from pydantic import Field, PlainValidator, PrivateAttr, WithJsonSchema

from retrainer.core._spec import DefaultName, Flag, TimeZone, tail_error
from retrainer.core.clock import as_utc
from retrainer.core.triggers.base import (
    Decision,
    Needs,
    TriggerContext,
    TriggerSpec,
    _decision,
    _iso,
    _state_time,
)
from retrainer.core.triggers.cron import MISSED_CAP, CronSchedule

__all__ = ["ScheduleTrigger"]


def _cron(value: object) -> str:
    if not isinstance(value, str):
        raise tail_error(f" must be a cron expression such as '0 2 * * MON'; got {value!r}")
    problem = CronSchedule.problem(value)
    if problem:
        raise tail_error(f" {value!r} is not a valid cron: {problem}")
    return " ".join(value.split())


Cron = Annotated[
    str,
    PlainValidator(_cron),
    WithJsonSchema(
        {
            "type": "string",
            "description": "A five-field cron expression (minute hour day-of-month month "
            "day-of-week), a shortcut such as '@daily', or 'every <duration>'.",
            "examples": ["0 2 * * MON", "@daily", "every 7d"],
        }
    ),
]

_NAMED = MappingProxyType(
    {
        "0 0 * * *": "daily",
        "@daily": "daily",
        "0 0 * * MON": "weekly",
        "@weekly": "weekly",
        "0 0 1 * *": "monthly",
        "@monthly": "monthly",
    }
)


class ScheduleTrigger(TriggerSpec):
    """Fire on a cron schedule, in a time zone (or every fixed interval: ``every 7d``).

    Each evaluation looks for cron slots in ``(latest slot at the previous evaluation, now]``;
    if there are any it fires once, for the latest. So a trigger evaluated every few minutes
    fires once per slot, and after downtime it fires once for the latest missed slot, not once
    per missed slot (the evidence counts the missed ones). The first evaluation only arms the
    trigger: slots at or before it do not fire, unless ``catch_up=True``, which fires once for
    the latest slot before it. A change of ``cron`` or ``timezone`` arms it again (the state
    records both), so a new schedule never fires for slots that passed before it was set. The
    state only changes when a slot passes.

    Slots are wall-clock times in ``timezone``. When clocks are set back, a wall time that
    occurs twice is a slot once, at its first occurrence (so an hourly schedule skips the
    repeated hour); when clocks are set forward over a slot, it fires at the moment of the
    jump (``30 2 * * *`` in Europe/Paris fires at 03:00 CEST on the last Sunday of March).

    Parameters
    ----------
    cron
        A five-field cron expression (minute hour day-of-month month day-of-week, e.g.
        ``"0 2 * * MON"``), a shortcut such as ``"@daily"``, or ``"every <duration>"``
        (``"every 210d"``: slots at whole multiples of the duration since 1970-01-01 UTC,
        for cadences cron cannot say; ``timezone`` does not apply to them).
    timezone
        An IANA time zone name (``"Europe/Paris"``).
    catch_up
        Whether the first evaluation fires for the latest slot before it.
    name
        Defaults to ``"schedule"``.

    Examples
    --------
    >>> from datetime import UTC
    >>> trigger = ScheduleTrigger("0 2 * * MON", timezone="Europe/Paris")
    >>> first = trigger.evaluate(
    ...     TriggerContext(now=datetime(2024, 3, 1, tzinfo=UTC), pipeline="ctr"))
    >>> first.fire
    False
    >>> later = trigger.evaluate(TriggerContext(
    ...     now=datetime(2024, 3, 4, 9, tzinfo=UTC), pipeline="ctr", state=first.state))
    >>> later.fire, later.slot
    (True, '2024-03-04T01:00:00+00:00')
    >>> later.reason
    "schedule '0 2 * * MON' (Europe/Paris): slot 2024-03-04T02:00:00+01:00 is due"
    >>> trigger.next_fire(datetime(2024, 3, 4, 9, tzinfo=UTC)).isoformat()
    '2024-03-11T01:00:00+00:00'
    """

    kind: ClassVar[str] = "schedule"
    example = {"schedule": "0 2 * * MON", "timezone": "Europe/Paris"}
    layout = "flat"

    cron: Cron
    timezone: TimeZone = "UTC"
    catch_up: Flag = False
    name: DefaultName = Field(None, validate_default=True)

    # one per cron and zone: it remembers the slots it found
    _schedule_memo: CronSchedule | None = PrivateAttr(default=None)

    def _schedule(self) -> CronSchedule:
        """The validated schedule (one per cron and zone: it remembers the slots it found)."""
        values = self.checked()
        known: CronSchedule | None = self._private("_schedule_memo")
        if known is None or (known.cron, known.tz) != (values["cron"], values["timezone"]):
            known = CronSchedule(values["cron"], values["timezone"])
            self._remember("_schedule_memo", known)
        return known

    def needs(self) -> Needs:
        """The clock only (its cadence, for the backtest)."""
        return Needs(cadence=self._schedule().cadence())

    def describe(self) -> str:
        """``daily``, ``weekly``, ``monthly`` or the cron (and its zone if not UTC).

        Examples
        --------
        >>> ScheduleTrigger("0 0 * * *").describe()
        'daily'
        >>> ScheduleTrigger("0 2 * * MON", timezone="Europe/Paris").describe()
        '0 2 * * MON (Europe/Paris)'
        """
        text = _NAMED.get(str(self.cron), str(self.cron))
        return text if self.timezone == "UTC" else f"{text} ({self.timezone})"

    def next_fire(self, now: datetime) -> datetime:
        """The first slot strictly after ``now`` (aware UTC), for ``retrainer status``."""
        return self._schedule().next_after(as_utc(now))

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Fire once if a slot fell in ``(last slot seen, now]``; see the class."""
        schedule = self._schedule()
        cron, tz = schedule.cron, schedule.tz
        now = as_utc(ctx.now)
        seen = _state_time(ctx.state, "last_slot")
        rearm = seen is not None and (
            ctx.state.get("cron") != cron or ctx.state.get("timezone") != self.timezone
        )
        arming = seen is None or rearm
        latest, upcoming = schedule.bounds(now)
        label = f"schedule {self.cron!r} ({self.timezone})"
        evidence: dict[str, Any] = {
            "cron": self.cron,
            "timezone": self.timezone,
            "now": _iso(now),
            "latest_slot": _iso(latest),
            "latest_slot_local": latest.astimezone(tz).isoformat(),
            "next_slot": _iso(upcoming),
            "next_slot_local": upcoming.astimezone(tz).isoformat(),
            "last_slot_seen": None if arming or seen is None else _iso(seen),
        }
        if arming or seen is None:
            due = self.catch_up
            last_seen = latest
        else:
            due = latest > seen
            last_seen = max(latest, seen)  # a clock set back does not re-open old slots
        # the state only changes when a slot passes (or the schedule changes)
        state: dict[str, Any] = {
            "cron": cron,
            "timezone": self.timezone,
            "last_slot": _iso(last_seen),
        }
        local_next = upcoming.astimezone(tz).isoformat()
        if due:
            reason = f"{label}: slot {latest.astimezone(tz).isoformat()} is due"
            if arming or seen is None:
                reason += " (catch_up when armed)"
            else:
                missed = schedule.count(seen, now, latest)
                evidence["missed_slots"] = missed
                if missed > 1:
                    more = "+" if missed >= MISSED_CAP else ""
                    reason += f" (the latest of {missed}{more} missed slots)"
        elif rearm:
            reason = f"{label}: re-armed after a schedule change; next slot {local_next}"
        elif arming:
            reason = f"{label}: armed; next slot {local_next}"
        else:
            reason = f"{label}: next slot {local_next}"
        return _decision(
            ctx,
            self.name,
            fire=due,
            active=due,
            slot=_iso(latest),
            reason=reason,
            evidence=evidence,
            state=state,
            status="scheduled",
            watching=True,
        )
