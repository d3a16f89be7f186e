"""Cron schedules in a time zone: the one place that knows croniter and daylight saving.

:class:`CronSchedule` finds the slots of a five-field cron expression (or ``every
<duration>``) in an IANA time zone. Slots are wall-clock times: when clocks are set back, a
wall time that occurs twice is a slot once, at its first occurrence; when clocks are set
forward over a slot, the slot is the instant of the jump. Schedules whose slots fall at a
fixed period (hourly, daily, weekly in UTC; ``every 7d``) are found by arithmetic.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from retrainer.core.triggers.base import EPOCH
from retrainer.core.windows import parse_duration
from retrainer.errors import ConfigError, DataError

__all__ = ["CronSchedule"]

_DST_REACH = timedelta(hours=3)  # larger than any daylight-saving shift in the tz database
_CRON_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_MAX_SCAN = 10_000
MISSED_CAP = 1000
_MEMO_MAX = 256
_UTC_ZONES = frozenset(
    {
        "UTC",
        "Etc/UTC",
        "Etc/UCT",
        "UCT",
        "Etc/Universal",
        "Universal",
        "Etc/Zulu",
        "Zulu",
        "GMT",
        "Etc/GMT",
        "Etc/GMT0",
        "Etc/GMT+0",
        "Etc/GMT-0",
        "GMT0",
        "GMT+0",
        "GMT-0",
        "Etc/Greenwich",
        "Greenwich",
    }
)
_DAYS = MappingProxyType({"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6})
_SHORTCUTS = MappingProxyType(
    {
        "@daily": "0 0 * * *",
        "@midnight": "0 0 * * *",
        "@weekly": "0 0 * * 0",
        "@hourly": "0 * * * *",
    }
)


def _field(text: str, top: int) -> int | None:
    return int(text) if text.isdigit() and int(text) <= top else None


def _interval(cron: str) -> timedelta | None:
    """The interval of an ``every <duration>`` schedule (None for a cron expression)."""
    if not cron.startswith("every "):
        return None
    return parse_duration(cron.removeprefix("every ").strip())


def _offset(moment: datetime) -> timedelta:
    return moment.utcoffset() or timedelta(0)


def _wall(moment: datetime, tz: ZoneInfo) -> datetime:
    return moment.astimezone(tz).replace(tzinfo=None)


def _wall_to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant of a wall-clock slot in ``tz``.

    A wall time that occurs twice (clocks set back) is its first occurrence; one that never
    occurs (clocks set forward over it) is the instant of the jump. The mapping never
    decreases, so the latest slot before a time is found by walking back.
    """
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _wall(first, tz) == wall:
        return first
    other = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    lo_s = math.floor(min(first, other).timestamp())  # wall time before the gap
    hi_s = math.ceil(max(first, other).timestamp())  # wall time after it
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if _wall(datetime.fromtimestamp(mid, UTC), tz) >= wall:
            hi_s = mid
        else:
            lo_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


class CronSchedule:
    """The slots of one cron expression in one time zone.

    Parameters
    ----------
    cron
        A five-field cron expression, a shortcut such as ``"@daily"`` or ``"every
        <duration>"`` (slots at whole multiples of the duration since 1970-01-01 UTC; the
        zone does not apply). Check it first with :meth:`problem`.
    tz
        The zone of the wall-clock slots.

    The schedule remembers the last two consecutive slots it found and the slots after a
    few recent times (a controller evaluates it every tick between two slots): that memory
    belongs to this object, so two schedules never share it.

    Examples
    --------
    >>> paris = CronSchedule("30 2 * * *", ZoneInfo("Europe/Paris"))
    >>> paris.next_after(datetime(2024, 3, 30, 12, tzinfo=UTC)).isoformat()  # clocks jump
    '2024-03-31T01:00:00+00:00'
    >>> paris.latest(datetime(2024, 3, 31, 9, tzinfo=UTC)).isoformat()
    '2024-03-31T01:00:00+00:00'
    >>> CronSchedule("0 2 * * MON", ZoneInfo("UTC")).fixed_period  # 1970-01-05 was a Monday
    (datetime.timedelta(days=7), datetime.timedelta(days=4, seconds=7200))
    >>> CronSchedule.problem("0 2 * *")
    'five fields are expected: minute hour day-of-month month day-of-week'
    """

    def __init__(self, cron: str, tz: ZoneInfo) -> None:
        self.cron = " ".join(cron.split())
        self.tz = tz
        self.fixed_period = self._fixed_period()
        self._prototype: Any = None
        self._bounds: tuple[datetime, datetime] | None = None
        self._next: dict[datetime, datetime] = {}

    @staticmethod
    def problem(cron: str) -> str | None:
        """Why ``cron`` is not a usable expression (None when it is)."""
        cron = " ".join(cron.split())
        if cron.startswith("every "):
            try:
                _interval(cron)
            except ConfigError as exc:
                return f"'every' needs a duration such as 'every 7d': {exc}"
            return None
        if cron.startswith("@"):
            if cron in _CRON_ALIASES:
                return None
            return f"the shortcuts are {', '.join(_CRON_ALIASES)}"
        if len(cron.split()) != 5:
            return "five fields are expected: minute hour day-of-month month day-of-week"
        try:
            if not croniter.is_valid(cron):
                return "croniter cannot parse it"
            croniter(cron, datetime(2000, 1, 1)).get_next(datetime)
        except Exception as exc:  # croniter raises several types for impossible expressions
            return str(exc)
        return None

    def _fixed_period(self) -> tuple[timedelta, timedelta] | None:
        """``(period, offset)`` when the slots are ``1970-01-01 UTC + offset + k * period``
        for every integer k, so they are found by arithmetic instead of croniter.

        That holds for ``every <duration>`` (offset 0), and for a cron expression in a zone
        without offset changes (UTC) that fixes the minute and the day of month and month
        are ``*``: hourly (``M * * * *``), daily (``M H * * *``) and weekly on one day
        (``M H * * MON``); the shortcuts ``@hourly``, ``@daily`` and ``@weekly`` too.
        Anything else is None (croniter walks the calendar).
        """
        cron, tz = self.cron, self.tz
        step = _interval(cron)
        if step is not None:
            return step, timedelta(0)
        if tz.key not in _UTC_ZONES:
            return None
        fields = _SHORTCUTS.get(cron, cron).split()
        if len(fields) != 5 or fields[2:4] != ["*", "*"]:
            return None
        minute, hour, dow = _field(fields[0], 59), fields[1], fields[4].upper()
        if minute is None:
            return None
        if hour == "*":
            return (timedelta(hours=1), timedelta(minutes=minute)) if dow == "*" else None
        hours = _field(hour, 23)
        if hours is None:
            return None
        at = timedelta(hours=hours, minutes=minute)
        if dow == "*":
            return timedelta(days=1), at
        day = _DAYS.get(dow, _field(dow, 7))
        if day is None:
            return None
        # 1970-01-01 was a Thursday (day 4; Sunday is 0 and 7)
        return timedelta(days=7), timedelta(days=(day - 4) % 7) + at

    def _croniter_at(self, start: datetime) -> Any:
        """A croniter positioned at ``start`` (parsing is most of croniter's cost: done once)."""
        if self._prototype is None:
            self._prototype = croniter(self.cron, datetime(2000, 1, 1))
        it = copy.copy(self._prototype)
        it.set_current(start, force=True)
        return it

    def latest(self, now: datetime) -> datetime:
        """The latest slot at or before ``now`` (aware)."""
        if self.fixed_period is not None:  # slots every ``step`` from 1970-01-01 UTC + offset
            step, offset = self.fixed_period
            return EPOCH + offset + step * ((now - EPOCH - offset) // step)
        tz = self.tz
        local = now.astimezone(tz)
        # after clocks were set back, slots up to one shift later on the wall have passed already
        margin = max(timedelta(0), _offset((now - _DST_REACH).astimezone(tz)) - _offset(local))
        it = self._croniter_at(local.replace(tzinfo=None) + margin + timedelta(microseconds=1))
        for _ in range(_MAX_SCAN):
            slot = _wall_to_utc(it.get_prev(datetime), tz)
            if slot <= now:
                return slot
        raise DataError(  # pragma: no cover
            f"no slot of cron {self.cron!r} found before {now.isoformat()}"
        )

    def slots_after(self, since: datetime) -> Callable[[], datetime]:
        """A function returning the slots strictly after ``since``, in order, one per call."""
        if self.fixed_period is not None:
            interval, offset = self.fixed_period
            k = (since - EPOCH - offset) // interval

            def every() -> datetime:
                nonlocal k
                k += 1
                return EPOCH + offset + interval * k

            return every
        tz = self.tz
        local = since.astimezone(tz)
        margin = max(timedelta(0), _offset(local) - _offset((since + _DST_REACH).astimezone(tz)))
        it = self._croniter_at(local.replace(tzinfo=None) - margin)
        last = since

        def step() -> datetime:
            nonlocal last
            for _ in range(_MAX_SCAN):
                slot = _wall_to_utc(it.get_next(datetime), tz)
                if slot > last:
                    last = slot
                    return slot
            raise DataError(  # pragma: no cover
                f"no slot of cron {self.cron!r} after {last.isoformat()}"
            )

        return step

    def next_after(self, since: datetime) -> datetime:
        """The first slot strictly after ``since`` (remembered: the slot after one tick's
        ``now`` is not searched again when the next tick counts the slots since it)."""
        known = self._next.get(since)
        if known is None:
            if len(self._next) >= _MEMO_MAX:
                self._next.clear()
            known = self._next[since] = self.slots_after(since)()
        return known

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """(the latest slot at or before ``now``, the first slot after it).

        Two consecutive slots bound every ``now`` until the second one passes, so a schedule
        evaluated several times between its slots (or at each of them) searches for them once.
        """
        known = self._bounds
        if known is not None and known[0] <= now < known[1]:
            return known
        # ``now`` at the next slot of the last bounds: the latest slot is that one
        latest = known[1] if known is not None and now == known[1] else self.latest(now)
        self._bounds = (latest, self.next_after(now))
        return self._bounds

    def count(self, since: datetime, now: datetime, latest: datetime) -> int:
        """The slots in ``(since, now]`` (at most 1000); ``latest`` is :meth:`latest` of now."""
        if self.next_after(since) == latest:  # the one slot since: the usual case
            return 1
        step = self.slots_after(since)
        n = 0
        while n < MISSED_CAP and step() <= now:
            n += 1
        return n

    def cadence(self) -> timedelta:
        """The time between two slots: the fixed period, or the first gap after 2000-01-01."""
        if self.fixed_period is not None:
            return self.fixed_period[0]
        step = self.slots_after(datetime(2000, 1, 1, tzinfo=UTC))
        first = step()
        return step() - first
