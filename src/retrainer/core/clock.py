"""The clock: the only way retrainer learns what time it is.

Production code takes a :class:`Clock`; the daemon passes a wall clock (see
``retrainer.adapters.clock.WallClock``), tests, the demo and the backtest pass a
:class:`SimulatedClock`. All times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from retrainer.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np


@runtime_checkable
class Clock(Protocol):
    """Tells the current time as an aware UTC datetime."""

    def now(self) -> datetime: ...


EARLIEST = datetime(1700, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
"""The times retrainer works at: ``EARLIEST <= t < LATEST``. Frames hold nanosecond
timestamps (1677-09-21 .. 2262-04-11), and windows, leases and schedules add and subtract
durations; inside this range none of that arithmetic can overflow."""


def check_time(value: datetime, name: str) -> datetime:
    """``value`` as aware UTC, or a ``ConfigError`` naming ``name``, the value and the range.

    Examples
    --------
    >>> check_time(datetime(1997, 3, 3), "--as-of").isoformat()
    '1997-03-03T00:00:00+00:00'
    >>> check_time(datetime(9999, 12, 31, 23), "--as-of")
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: --as-of: 9999-12-31T23:00:00 is out of range; expected a time from 1700-01-01T00:00:00Z to before 2200-01-01T00:00:00Z
    """  # noqa: E501
    try:
        utc = as_utc(value)
    except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ConfigError(
            f"{name}: {value.isoformat()} is out of range; expected a time from "
            f"{EARLIEST:%Y-%m-%dT%H:%M:%S}Z to before {LATEST:%Y-%m-%dT%H:%M:%S}Z"
        )
    return utc


def as_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; naive values are taken to be UTC.

    Examples
    --------
    >>> as_utc(datetime(2024, 1, 1, 12)).isoformat()
    '2024-01-01T12:00:00+00:00'
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utc_datetime64(value: datetime, unit: Literal["ns", "us"] = "ns") -> np.datetime64:
    """``value`` as the naive-UTC ``datetime64`` that frames hold; naive values are UTC.

    Examples
    --------
    >>> from datetime import timezone
    >>> str(utc_datetime64(datetime(2024, 1, 1, 13, tzinfo=timezone(timedelta(hours=1)))))
    '2024-01-01T12:00:00.000000000'
    >>> str(utc_datetime64(datetime(2024, 1, 1, 12), "us"))
    '2024-01-01T12:00:00.000000'
    """
    import numpy as np  # here: the CLI's read commands use this module and need no numpy

    return np.datetime64(as_utc(value).replace(tzinfo=None), unit)


class SimulatedClock:
    """A clock that only moves when told to.

    Parameters
    ----------
    start
        The initial time; naive datetimes are taken to be UTC.

    Examples
    --------
    >>> clock = SimulatedClock(datetime(1997, 6, 1))
    >>> clock.now().isoformat()
    '1997-06-01T00:00:00+00:00'
    >>> clock.advance(timedelta(days=1)).isoformat()
    '1997-06-02T00:00:00+00:00'
    """

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` and return the new time."""
        if delta < timedelta(0):
            raise ValueError(f"a clock cannot go backwards; got advance({delta!r})")
        self._now = self._now + delta
        return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to ``when`` (not earlier than now) and return it."""
        target = as_utc(when)
        if target < self._now:
            raise ValueError(
                f"a clock cannot go backwards: now is {self._now.isoformat()}, "
                f"got set({target.isoformat()})"
            )
        self._now = target
        return self._now
