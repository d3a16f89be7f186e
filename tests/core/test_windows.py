from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from retrainer.core.windows import (
    FullHistory,
    SinceChange,
    SlidingWindow,
    Window,
    holdout_mask,
    parse_duration,
    window_from_spec,
)
from retrainer.errors import ConfigError, DataError

NOW = datetime(2024, 4, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        (" 7d ", timedelta(days=7)),
        ("0s", timedelta(0)),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "d", "90", "1.5d", "-1d", "12h1d", "1d1d", "3 days", "90D", "1y", 90, None, "१d"]
)
def test_parse_duration_rejects_other_forms(text):
    with pytest.raises(ConfigError, match="invalid duration") as info:
        parse_duration(text)
    assert repr(text) in str(info.value)
    assert "'1d12h'" in str(info.value)


def test_parse_duration_rejects_overflow():
    with pytest.raises(ConfigError, match="longer than the largest"):
        parse_duration("99999999999d")


def test_full_history():
    window = FullHistory()
    assert isinstance(window, Window)
    assert window.bounds(NOW) == (None, NOW)
    assert window.max_rows is None
    assert window.get_params() == {}


@pytest.mark.parametrize("duration", ["90d", timedelta(days=90)])
def test_sliding_window_by_duration(duration):
    window = SlidingWindow(duration=duration)
    assert isinstance(window, Window)
    assert window.bounds(NOW) == (NOW - timedelta(days=90), NOW)
    assert window.max_rows is None
    assert window.get_params() == {"duration": duration, "rows": None}


def test_sliding_window_by_rows():
    window = SlidingWindow(rows=10_000)
    assert window.bounds(NOW) == (None, NOW)
    assert window.max_rows == 10_000


def test_naive_now_is_taken_as_utc():
    start, end = SlidingWindow(duration="1d").bounds(datetime(2024, 4, 1))
    assert end == datetime(2024, 4, 1, tzinfo=UTC)
    assert start == datetime(2024, 3, 31, tzinfo=UTC)


def test_a_window_reaching_before_year_one_starts_at_the_beginning():
    assert SlidingWindow(duration=timedelta.max).bounds(NOW) == (None, NOW)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one of duration and rows"),
        ({"duration": "1d", "rows": 10}, "exactly one of duration and rows"),
        ({"rows": 0}, r"rows must be an integer >= 1; got 0"),
        ({"rows": True}, "rows must be an integer"),
        ({"rows": 10.0}, "rows must be an integer"),
        ({"duration": "ninety days"}, "invalid duration 'ninety days'"),
        ({"duration": "0d"}, "duration must be positive"),
        ({"duration": timedelta(seconds=-1)}, "duration must be positive"),
        ({"duration": 90}, "duration must be a duration string"),
    ],
)
def test_sliding_window_validates_on_first_use(kwargs, match):
    window = SlidingWindow(**kwargs)  # storing never raises
    assert window.get_params() == {"duration": None, "rows": None, **kwargs}
    with pytest.raises(ConfigError, match=match):
        window.bounds(NOW)
    with pytest.raises(ConfigError, match=match):
        _ = window.max_rows


@pytest.mark.parametrize(
    ("spec", "bounds", "max_rows"),
    [
        ({"kind": "full"}, (None, NOW), None),
        ({"kind": "sliding", "duration": "90d"}, (NOW - timedelta(days=90), NOW), None),
        ({"kind": "sliding", "rows": 10000}, (None, NOW), 10000),
    ],
)
def test_window_from_spec(spec, bounds, max_rows):
    window = window_from_spec(spec)
    assert window.bounds(NOW) == bounds
    assert window.max_rows == max_rows


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({}, "unknown window kind None"),
        ({"kind": "expanding"}, "unknown window kind 'expanding'; expected one of: full, sliding"),
        ({"kind": "full", "duration": "90d"}, "'full' window does not take 'duration'"),
        ({"kind": "sliding", "duration": "90d", "size": 3}, "does not take 'size'"),
        ({"kind": "sliding"}, "exactly one of duration and rows"),
        ({"kind": "sliding", "duration": "3 months"}, "invalid duration '3 months'"),
        ("full", "must be a mapping"),
        ({"kind": "since_change"}, "'since_change' window needs min"),
        ({"kind": "since_change", "min": "7d", "duration": "9d"}, "does not take 'duration'"),
        ({"kind": "since_change", "min": "30d", "max": "7d"}, r"max \('7d'\) must be at least"),
        ({"kind": "since_change", "min": "0d"}, "min must be positive"),
        ({"kind": "since_change", "min": "7d", "max": "a year"}, "invalid duration 'a year'"),
    ],
)
def test_window_from_spec_errors(spec, match):
    with pytest.raises(ConfigError, match=match):
        window_from_spec(spec)


def days(*offsets):
    return np.datetime64("2024-01-01") + np.array(offsets, dtype="timedelta64[D]")


@pytest.mark.parametrize(
    ("times", "fraction", "expected"),
    [
        (days(0, 1, 2, 3, 4, 5, 6, 7, 8, 9), 0.2, [0] * 8 + [1] * 2),
        (days(0, 1, 2, 3), 0.01, [0, 0, 0, 1]),
        (days(0, 1, 2, 3), 0.99, [0, 1, 1, 1]),
        (days(0, 1, 1, 1), 0.25, [0, 1, 1, 1]),
        (days(0, 0, 0, 1), 0.9, [0, 0, 0, 1]),
        (days(3, 0, 2, 1), 0.5, [1, 0, 1, 0]),
        (days(0, 1, 2, 3), 0.5, [0, 0, 1, 1]),
        (np.array([5, 1, 3]), 0.34, [1, 0, 0]),
    ],
)
def test_holdout_mask(times, fraction, expected):
    mask = holdout_mask(times, fraction)
    assert mask.dtype == np.bool_
    assert mask.tolist() == [bool(v) for v in expected]


@pytest.mark.parametrize("times", [days(), days(0), days(4, 4, 4)])
def test_holdout_mask_needs_two_distinct_times(times):
    with pytest.raises(DataError, match=r"the window is too small to hold out 0\.2"):
        holdout_mask(times, 0.2)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, float("nan"), True, "0.2", None])
def test_holdout_fraction_must_be_strictly_between_0_and_1(fraction):
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        holdout_mask(days(0, 1, 2), fraction)


@pytest.mark.parametrize(
    ("times", "match"),
    [
        (np.array(["2024-01-01", "NaT"], dtype="datetime64[s]"), "missing values"),
        (np.array([1.0, np.nan]), "missing values"),
        (np.array(["a", "b"]), "must be datetime64"),
        (days(0, 1, 2, 3).reshape(2, 2), "1-D"),
    ],
)
def test_holdout_mask_rejects_unusable_times(times, match):
    with pytest.raises(DataError, match=match):
        holdout_mask(times, 0.5)


fractions = st.floats(min_value=0.01, max_value=0.99)


@given(offsets=st.lists(st.integers(0, 20), min_size=2, max_size=200), fraction=fractions)
def test_holdout_mask_never_splits_a_timestamp(offsets, fraction):
    times = days(*offsets)
    if len(set(offsets)) < 2:
        with pytest.raises(DataError):
            holdout_mask(times, fraction)
        return
    mask = holdout_mask(times, fraction)
    assert mask.any() and not mask.all()
    assert times[mask].min() > times[~mask].max()


@given(
    offsets=st.lists(st.integers(0, 10**6), min_size=2, max_size=300, unique=True),
    fraction=fractions,
)
def test_holdout_share_is_close_to_the_fraction_on_distinct_times(offsets, fraction):
    mask = holdout_mask(days(*offsets), fraction)
    assert abs(mask.mean() - fraction) <= 1 / len(offsets) + 1e-12


DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("change", "start"),
    [
        (NOW - 20 * DAY, NOW - 20 * DAY),  # inside [now - max, now - min]: at the change
        (NOW - 2 * DAY, NOW - 7 * DAY),  # just after a change: still the shortest window
        (NOW - 400 * DAY, NOW - 90 * DAY),  # an old change: capped at max
        (None, NOW - 90 * DAY),  # no change detected yet: the last max
        (NOW + DAY, NOW - 7 * DAY),  # a change "in the future" (clock skew): the shortest
    ],
)
def test_since_change_starts_at_the_change_within_min_and_max(change, start):
    window = window_from_spec({"kind": "since_change", "min": "7d", "max": "90d"})
    assert isinstance(window, SinceChange) and window.follows_change
    assert window.bounds(NOW, change_at=change) == (start, NOW)
    assert window.max_rows is None


def test_since_change_without_max_has_no_cap():
    window = SinceChange(min=timedelta(days=7))
    assert window.bounds(NOW) == (None, NOW)  # no change known: the full history
    assert window.bounds(NOW, change_at=NOW - 4000 * DAY) == (NOW - 4000 * DAY, NOW)


def test_since_change_takes_naive_times_as_utc():
    window = SinceChange(min="1d")
    naive = datetime(2024, 3, 1)
    assert window.bounds(NOW.replace(tzinfo=None), change_at=naive) == (
        naive.replace(tzinfo=UTC),
        NOW,
    )


def test_since_change_validates_on_first_use():
    with pytest.raises(ConfigError, match=r"SinceChange\.min must be a duration"):
        SinceChange(min=7).bounds(NOW)  # type: ignore[arg-type]
