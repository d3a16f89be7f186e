"""Training windows and the holdout: which rows a run trains on and which it is judged on.

A window turns the current time into the time range a source should load
(:meth:`Window.bounds`) plus an optional cap on the number of rows (:attr:`Window.max_rows`,
the most recent ones). :func:`holdout_mask` then sets aside the most recent part of the loaded
rows, on which the candidate and the champion are scored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BeforeValidator, Field, PlainValidator, model_validator
from pydantic_core import PydanticCustomError

from retrainer.core._spec import Count, Registry, Spec
from retrainer.core.clock import as_utc
from retrainer.errors import ConfigError, DataError

if TYPE_CHECKING:  # numpy is imported by holdout_mask, not to read a configuration
    import numpy as np
    from numpy.typing import ArrayLike, NDArray

__all__ = [
    "WINDOWS",
    "FullHistory",
    "NewRows",
    "SinceChange",
    "SlidingWindow",
    "Window",
    "WindowSpec",
    "holdout_mask",
    "parse_duration",
    "window_from_spec",
]

_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", re.ASCII)
_DURATION_FORMS = (
    "an integer followed by a unit: w (weeks), d (days), h (hours), m (minutes) or "
    "s (seconds); units may be combined, largest first, e.g. '90d', '12h', '2w', '1d12h'"
)


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``"90d"``, ``"12h"``, ``"30m"``, ``"45s"``, ``"2w"``, ``"1d12h"``.

    Raises
    ------
    ConfigError
        If ``text`` is not such a duration; the message shows the accepted forms.

    Examples
    --------
    >>> parse_duration("1d12h")
    datetime.timedelta(days=1, seconds=43200)
    >>> parse_duration("2w").days
    14
    >>> parse_duration("1.5d")
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: invalid duration '1.5d': expected an integer followed by ...
    """
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or not any(match.groups()):
        raise ConfigError(f"invalid duration {text!r}: expected {_DURATION_FORMS}")
    weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    try:
        return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise ConfigError(
            f"invalid duration {text!r}: longer than the largest supported "
            f"({timedelta.max.days} days)"
        ) from None


@runtime_checkable
class Window(Protocol):
    """Which rows a run trains on, as of ``now``.

    Examples
    --------
    >>> isinstance(SlidingWindow(duration="90d"), Window)
    True
    """

    def bounds(self, now: datetime) -> tuple[datetime | None, datetime]:
        """``(start, end)``: ``start`` inclusive (None: from the beginning), ``end`` exclusive."""
        ...

    @property
    def max_rows(self) -> int | None:
        """Keep at most this many of the most recent rows (None: no cap)."""
        ...


def _span(value: object) -> timedelta:
    """``value`` (a :func:`parse_duration` string or a timedelta; checked) as a timedelta."""
    return parse_duration(value) if isinstance(value, str) else value  # type: ignore[return-value]


def _positive_span(value: Any) -> Any:
    if isinstance(value, str):
        try:
            span = parse_duration(value)
        except ConfigError as exc:
            raise PydanticCustomError("retrainer", str(exc)) from None
    elif isinstance(value, timedelta):
        span = value
    else:
        raise PydanticCustomError(
            "retrainer", "must be a duration string such as '90d' or a timedelta"
        )
    if span <= timedelta(0):
        raise PydanticCustomError("retrainer", "must be positive")
    return value


Duration = Annotated[str | timedelta, PlainValidator(_positive_span, json_schema_input_type=str)]
"""A positive duration: a :func:`parse_duration` string (``"90d"``) or a timedelta, as given."""


def _text(span: str | timedelta) -> str:
    return span.replace(" ", "") if isinstance(span, str) else str(span)


class FullHistory(Spec):
    """All rows up to now.

    Examples
    --------
    >>> FullHistory().bounds(datetime(2024, 3, 1))
    (None, datetime.datetime(2024, 3, 1, 0, 0, tzinfo=datetime.timezone.utc))
    >>> FullHistory().max_rows is None
    True
    >>> FullHistory().to_spec(), FullHistory().describe()
    ({'kind': 'full'}, 'all history')
    """

    kind: Literal["full"] = Field(default="full", repr=False)
    incremental: ClassVar[bool] = False

    def describe(self) -> str:
        """``all history``."""
        return "all history"

    def bounds(self, now: datetime) -> tuple[datetime | None, datetime]:
        """``(None, now)``; ``now`` as an aware UTC datetime (naive means UTC)."""
        return None, as_utc(now)

    @property
    def max_rows(self) -> int | None:
        """Always None: no cap."""
        return None


class SlidingWindow(Spec):
    """The most recent rows: either a time span or a row count.

    Parameters
    ----------
    duration
        Time span before ``now``, as a :func:`parse_duration` string or a ``timedelta``.
    rows
        Keep only the ``rows`` most recent rows (the time range is the full history).

    Exactly one of ``duration`` and ``rows`` must be given; this is checked on first use.

    Examples
    --------
    >>> w = SlidingWindow(duration="90d")
    >>> start, end = w.bounds(datetime(2024, 4, 1))
    >>> start.isoformat(), end.isoformat()
    ('2024-01-02T00:00:00+00:00', '2024-04-01T00:00:00+00:00')
    >>> SlidingWindow(rows=10_000).max_rows
    10000
    >>> SlidingWindow(duration="90d", rows=100).max_rows
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: SlidingWindow takes exactly one of duration and rows; ...
    >>> w.to_spec(), w.describe(), SlidingWindow(rows=500).describe()
    ({'kind': 'sliding', 'duration': '90d'}, 'last 90d', 'last 500 rows')
    """

    kind: Literal["sliding"] = Field(default="sliding", repr=False)
    duration: Duration | None = None
    rows: Count | None = None
    incremental: ClassVar[bool] = False

    @model_validator(mode="after")
    def _one_of(self) -> SlidingWindow:
        if (self.duration is None) == (self.rows is None):
            raise ValueError(
                "SlidingWindow takes exactly one of duration and rows; got "
                f"duration={self.duration!r}, rows={self.rows!r}. Use e.g. duration='90d' "
                "or rows=10000"
            )
        return self

    def describe(self) -> str:
        """``last 90d`` or ``last 10000 rows``."""
        if self.rows is not None:
            return f"last {self.rows} rows"
        return f"last {_text(self.duration)}" if self.duration is not None else "?"

    def _validate(self) -> timedelta | None:
        """Check the parameters; return the duration as a timedelta (None for a row window)."""
        self.check_params()
        return None if self.duration is None else _span(self.duration)

    def bounds(self, now: datetime) -> tuple[datetime | None, datetime]:
        """``(now - duration, now)``, or ``(None, now)`` for a row-count window.

        A span reaching before year 1 starts at the beginning (None).
        """
        span = self._validate()
        end = as_utc(now)
        if span is None:
            return None, end
        try:
            return end - span, end
        except OverflowError:
            return None, end

    @property
    def max_rows(self) -> int | None:
        """``rows`` for a row-count window, else None."""
        self._validate()
        return self.rows


class NewRows(FullHistory):
    """Only the rows since the champion's training window ended: an online learner's window.

    Its bounds are the full history; the run narrows them to start where the champion's
    snapshot ended, and updates a copy of the champion (``partial_fit``) instead of fitting
    a new model. Without a champion the first model is fitted on the full history.

    Examples
    --------
    >>> NewRows().incremental, FullHistory().incremental
    (True, False)
    >>> NewRows().describe()
    'new rows (online)'
    """

    kind: Literal["new"] = Field(default="new", repr=False)  # type: ignore[assignment]
    incremental: ClassVar[bool] = True

    def describe(self) -> str:
        """``new rows (online)``."""
        return "new rows (online)"


class SinceChange(Spec):
    """The rows since the newest detected concept change, at least ``min`` and at most ``max``.

    After a concept-drift detector flags a change in the error stream, the rows before it
    describe the old concept: a model trained on them learns a mixture. This window starts at
    the change, but never less than ``min`` before now (right after a detection there is
    little new data) nor more than ``max`` (no cap: None). With no change detected yet it is
    the last ``max`` (the full history without ``max``).

    The change time comes from the pipeline's concept-drift monitor (the newest detection it
    has recorded, whatever model was serving); the run passes it to :meth:`bounds`.

    Parameters
    ----------
    min
        The shortest window, as a :func:`parse_duration` string or a ``timedelta``.
    max
        The longest window, and the window while no change is known (None: no cap).

    Examples
    --------
    >>> w = SinceChange(min="7d", max="90d")
    >>> now = datetime(2024, 4, 1)
    >>> [b.date().isoformat() for b in w.bounds(now, change_at=datetime(2024, 3, 1))]
    ['2024-03-01', '2024-04-01']
    >>> w.bounds(now, change_at=datetime(2024, 3, 30))[0].date()  # at least 7 days
    datetime.date(2024, 3, 25)
    >>> w.bounds(now, change_at=datetime(2023, 6, 1))[0].date()  # at most 90 days
    datetime.date(2024, 1, 2)
    >>> w.bounds(now)[0].date()  # no change detected yet: the last 90 days
    datetime.date(2024, 1, 2)
    >>> w.describe()
    'since the change (at least 7d, at most 90d)'
    """

    kind: Literal["since_change"] = Field(default="since_change", repr=False)
    min: Duration
    max: Duration | None = None
    incremental: ClassVar[bool] = False
    follows_change: ClassVar[bool] = True

    @model_validator(mode="after")
    def _order(self) -> SinceChange:
        if self.max is not None and _span(self.max) < _span(self.min):
            raise ValueError(
                f"SinceChange.max ({self.max!r}) must be at least SinceChange.min ({self.min!r})"
            )
        return self

    def describe(self) -> str:
        """``since the change (at least 7d, at most 90d)``."""
        cap = f", at most {_text(self.max)}" if self.max is not None else ""
        return f"since the change (at least {_text(self.min)}{cap})"

    def _validate(self) -> tuple[timedelta, timedelta | None]:
        """Check the parameters; return ``(min, max)`` as timedeltas."""
        self.check_params()
        return _span(self.min), None if self.max is None else _span(self.max)

    def bounds(
        self, now: datetime, change_at: datetime | None = None
    ) -> tuple[datetime | None, datetime]:
        """``(start, now)``: start at ``change_at``, within ``[now - max, now - min]``."""
        shortest, longest = self._validate()
        end = as_utc(now)

        def before(span: timedelta) -> datetime | None:
            try:
                return end - span
            except OverflowError:
                return None

        latest, earliest = before(shortest), None if longest is None else before(longest)
        if change_at is None:
            return earliest, end
        start = as_utc(change_at)
        if latest is not None and start > latest:
            start = latest
        if earliest is not None and start < earliest:
            start = earliest
        return start, end

    @property
    def max_rows(self) -> int | None:
        """Always None: the window is a time range."""
        return None


WindowSpec = Annotated[
    FullHistory | SlidingWindow | NewRows | SinceChange, Field(discriminator="kind")
]
"""A window as ``retrainer.yaml`` writes it: ``{"kind": "sliding", "duration": "90d"}``."""

WINDOWS: Registry[FullHistory | SlidingWindow | NewRows | SinceChange] = Registry(
    "window", WindowSpec
)
"""The window kinds: the one list of them."""


def _key_problem(spec: object) -> str | None:
    """What is wrong with a window mapping's kind and keys (None: nothing)."""
    if not isinstance(spec, Mapping):
        return f"a window must be a mapping such as {{'kind': 'full'}}; got {spec!r}"
    kind = spec.get("kind")
    if not isinstance(kind, str) or kind not in WINDOWS:
        return f"unknown window kind {kind!r}; expected one of: {', '.join(WINDOWS.kinds)}"
    keys = WINDOWS.keys(kind)
    extra = [key for key in spec if key not in keys]
    if extra:
        owners = sorted({k for k in WINDOWS.kinds for key in extra if key in WINDOWS.keys(k)})
        whose = (
            f" (keys that belong to a {' or '.join(map(repr, owners))} window)" if owners else ""
        )
        return (
            f"a {kind!r} window does not take {', '.join(repr(k) for k in extra)}{whose}; "
            f"it takes {', '.join(keys)}. Got {dict(spec)!r}"
        )
    if kind == "since_change" and "min" not in spec:
        return (
            "a 'since_change' window needs min, the shortest window (e.g. min: 7d); max "
            "(optional) caps it and is the window while no change has been detected. "
            f"Got {dict(spec)!r}"
        )
    return None


def _check_keys(value: Any) -> Any:
    if isinstance(value, Spec):
        return value
    problem = _key_problem(value)
    if problem:
        raise ValueError(problem)
    return value


ConfiguredWindow = Annotated[WindowSpec, BeforeValidator(_check_keys)]
"""A :data:`WindowSpec` whose kind and keys are checked first, with the messages of
:func:`window_from_spec`: the type of ``window`` in ``retrainer.yaml``."""


def window_from_spec(spec: Mapping[str, object]) -> Window:
    """Build a window from its configuration mapping, validating it.

    Accepted: ``{"kind": "full"}``, ``{"kind": "sliding", "duration": "90d"}``,
    ``{"kind": "sliding", "rows": 10000}``, ``{"kind": "new"}`` (online learning),
    ``{"kind": "since_change", "min": "7d", "max": "90d"}`` (since the detected concept change).

    Raises
    ------
    ConfigError
        For an unknown kind, keys that do not belong to the kind, or bad values.

    Examples
    --------
    >>> window_from_spec({"kind": "sliding", "duration": "90d"})
    SlidingWindow(duration='90d', rows=None)
    >>> window_from_spec({"kind": "full"})
    FullHistory()
    >>> window_from_spec({"kind": "expanding"})
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: unknown window kind 'expanding'; expected one of: full, ...
    """
    problem = _key_problem(spec)
    if problem:
        raise ConfigError(problem)
    return WINDOWS.build(str(spec["kind"]), spec)


def holdout_mask(times: ArrayLike, fraction: float) -> NDArray[np.bool_]:
    """Mark the most recent ``fraction`` of rows (by time) as the holdout.

    The cut is a time: every row at or after it is holdout, so rows sharing a timestamp are
    never split. The cut is the distinct time whose holdout size is closest to
    ``fraction * len(times)`` (ties: the larger holdout), keeping at least one row on each side.

    Parameters
    ----------
    times
        Row times, 1-D ``datetime64`` (numbers are accepted too: only the order matters).
    fraction
        Share of rows to hold out, strictly between 0 and 1.

    Raises
    ------
    ConfigError
        If ``fraction`` is not strictly between 0 and 1.
    DataError
        If ``times`` is not 1-D, holds NaT/NaN, or has fewer than two distinct times (the
        window is too small to hold out anything).

    Examples
    --------
    >>> import numpy as np
    >>> times = np.array(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-03"],
    ...                  dtype="datetime64[D]")
    >>> holdout_mask(times, 0.25)
    array([False, False,  True,  True])
    >>> holdout_mask(times[2:], 0.5)
    Traceback (most recent call last):
    ...
    retrainer.errors.DataError: the window is too small to hold out 0.5 of it: ...
    """
    import numpy as np

    if (
        not isinstance(fraction, int | float)
        or isinstance(fraction, bool)
        or not (0 < fraction < 1)
        or math.isnan(fraction)
    ):
        raise ConfigError(
            f"holdout fraction must be a number strictly between 0 and 1; got {fraction!r}"
        )
    values = np.asarray(times)
    if values.ndim != 1:
        raise DataError(f"times must be a 1-D array; got shape {values.shape}")
    if values.dtype.kind not in "Mmiuf":
        raise DataError(
            f"times must be datetime64 values; got dtype {values.dtype}. Convert them with "
            "np.asarray(times, dtype='datetime64[ns]')"
        )
    if (values.dtype.kind in "Mm" and np.isnat(values).any()) or (
        values.dtype.kind == "f" and np.isnan(values).any()
    ):
        raise DataError("times contain missing values (NaT/NaN); drop or fill those rows first")
    distinct, counts = np.unique(values, return_counts=True)
    if len(distinct) < 2:
        raise DataError(
            f"the window is too small to hold out {fraction:g} of it: it has {len(values)} "
            f"row(s) at {len(distinct)} distinct time(s), and the holdout needs rows later than "
            "the training rows. Widen the window or wait for more data"
        )
    # at_or_after[j]: rows with time >= distinct[j]; cutting at j = 0 would leave no training rows
    at_or_after = np.cumsum(counts[::-1])[::-1]
    j = 1 + int(np.argmin(np.abs(at_or_after[1:] - fraction * len(values))))
    mask: NDArray[np.bool_] = values >= distinct[j]
    return mask
