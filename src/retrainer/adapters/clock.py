"""The wall clock: the one place that reads the system time."""

from __future__ import annotations

from datetime import UTC, datetime


class WallClock:
    """The real time, as an aware UTC datetime.

    Examples
    --------
    >>> WallClock().now().tzinfo is not None
    True
    """

    def now(self) -> datetime:
        return datetime.now(UTC)
