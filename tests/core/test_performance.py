"""Online performance over time windows: hand-computed windows and every edge case."""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrainer.core.metrics import get_metric, make_metric
from retrainer.core.performance import (
    MetricResult,
    WindowPerformance,
    evaluate_window,
    get_online_metric,
    is_rate_metric,
    make_rate_metric,
    performance_over_time,
)
from retrainer.errors import ConfigError, DataError

D1 = datetime(2024, 1, 1)
D2 = datetime(2024, 1, 2)
D4 = datetime(2024, 1, 4)


def ts(*values: str) -> np.ndarray:
    return np.array(values, dtype="datetime64[us]")


# Three days of a binary classifier, computed by hand below.
TIMES = ts(
    "2024-01-01T01:00",
    "2024-01-01T02:00",
    "2024-01-01T03:00",
    "2024-01-01T04:00",
    "2024-01-02T01:00",
    "2024-01-02T02:00",
    "2024-01-03T23:59:59.999999",
)
Y_TRUE = np.array([1, 0, 1, 1, 0, 1, 1])
Y_PRED = np.array([1, 0, 0, 1, 1, 1, 1])
Y_SCORE = np.array([0.9, 0.2, 0.4, 0.8, 0.7, 0.6, 0.9])


def test_daily_windows_match_hand_computed_values() -> None:
    windows = performance_over_time(
        TIMES,
        Y_TRUE,
        Y_PRED,
        Y_SCORE,
        ["accuracy", "precision", "recall", "log_loss", "roc_auc"],
        start=D1,
        end=D4,
        every="1d",
    )
    assert [w.start for w in windows] == [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    assert [w.end for w in windows] == [datetime(2024, 1, d, tzinfo=UTC) for d in (2, 3, 4)]
    day1, day2, day3 = windows
    # day 1: true 1,0,1,1  pred 1,0,0,1 -> 3/4 right; precision 2/2; recall 2/3
    assert day1.n_rows == day1.n_labelled == 4
    assert day1.value("accuracy") == 0.75
    assert day1.value("precision") == 1.0
    assert day1.value("recall") == pytest.approx(2 / 3)
    expected_ll = -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.8)) / 4
    assert day1.value("log_loss") == pytest.approx(expected_ll)
    assert day1.value("roc_auc") == 1.0  # every positive scored above the negative
    # day 2: true 0,1 pred 1,1 -> 1/2; precision 1/2; recall 1; AUC: 0.6 < 0.7 -> 0
    assert day2.value("accuracy") == 0.5
    assert day2.value("precision") == 0.5
    assert day2.value("recall") == 1.0
    assert day2.value("roc_auc") == 0.0
    # day 3: one positive only: AUC is undefined, accuracy is 1
    assert day3.value("accuracy") == 1.0
    assert day3.result("roc_auc") == MetricResult(
        name="roc_auc", value=None, n=1, status="undefined"
    )


def test_regression_metrics_per_window() -> None:
    times = ts("2024-01-01T00:00", "2024-01-01T12:00", "2024-01-02T00:00")
    y = np.array([1.0, 2.0, 10.0])
    p = np.array([2.0, 4.0, 10.0])
    day1, day2 = performance_over_time(
        times, y, p, None, ["mae", "rmse"], start=D1, end=datetime(2024, 1, 3), every="1d"
    )
    assert day1.value("mae") == 1.5  # (1 + 2) / 2
    assert day1.value("rmse") == pytest.approx(math.sqrt((1 + 4) / 2))
    assert day2.value("mae") == 0.0


def test_windows_with_too_few_rows_are_insufficient_not_numbers() -> None:
    windows = performance_over_time(
        TIMES, Y_TRUE, Y_PRED, Y_SCORE, ["accuracy"], start=D1, end=D4, every="1d", min_samples=3
    )
    assert [w.status for w in windows] == ["ok", "insufficient_data", "insufficient_data"]
    assert windows[1].metrics == (
        MetricResult(name="accuracy", value=None, n=2, status="insufficient_data"),
    )
    assert windows[1].value("accuracy") is None
    assert windows[0].min_samples == 3


def test_ctr_is_the_mean_outcome_of_labelled_rows() -> None:
    times = ts("2024-01-01T01:00", "2024-01-01T02:00", "2024-01-01T03:00", "2024-01-01T04:00")
    clicks = np.array([1.0, 0.0, np.nan, 0.0])  # one impression's feedback has not arrived
    w = evaluate_window(times, clicks, np.full(4, np.nan), None, ["ctr"], start=D1, end=D2)
    assert (w.n_rows, w.n_labelled) == (4, 3)
    assert w.result("ctr") == MetricResult(name="ctr", value=pytest.approx(1 / 3), n=3, status="ok")


def test_a_rate_of_boolean_and_value_outcomes() -> None:
    times = ts("2024-01-01T01:00", "2024-01-01T02:00")
    w = evaluate_window(times, np.array([True, False]), [0, 0], None, ["rate"], start=D1, end=D2)
    assert w.value("rate") == 0.5
    revenue = make_rate_metric("revenue_per_impression")
    w = evaluate_window(times, [0.25, 1.75], [0, 0], None, [revenue], start=D1, end=D2)
    assert w.value("revenue_per_impression") == 1.0


def test_missing_predictions_and_scores_leave_only_the_metrics_that_read_them() -> None:
    times = ts(*[f"2024-01-01T0{i}:00" for i in range(5)])
    y_true = np.array([1, 0, 1, 0, 1], dtype=float)
    y_pred = np.array([1, 0, np.nan, 0, 1])
    y_score = np.array([0.9, 0.1, 0.8, np.nan, 0.7])
    w = evaluate_window(
        times, y_true, y_pred, y_score, ["accuracy", "roc_auc", "ctr"], start=D1, end=D2
    )
    assert w.result("accuracy").n == 4 and w.value("accuracy") == 1.0
    assert w.result("roc_auc").n == 3  # rows with a prediction and a score
    assert w.result("ctr").n == 5 and w.value("ctr") == 0.6


def test_string_labels_with_missing_outcomes() -> None:
    times = ts("2024-01-01T01:00", "2024-01-01T02:00", "2024-01-01T03:00")
    y_true = np.array(["cat", None, "dog"], dtype=object)
    y_pred = np.array(["cat", "dog", "cat"], dtype=object)
    w = evaluate_window(times, y_true, y_pred, None, ["accuracy"], start=D1, end=D2)
    assert (w.n_labelled, w.value("accuracy")) == (2, 0.5)
    w = evaluate_window(times, y_true, y_pred, None, ["ctr"], start=D1, end=D2)
    assert w.result("ctr").status == "undefined"  # the mean of labels is not a number


def test_empty_input_gives_empty_windows() -> None:
    empty = np.array([], dtype="datetime64[us]")
    windows = performance_over_time(
        empty, [], [], [], ["accuracy", "roc_auc"], start=D1, end=datetime(2024, 1, 3), every="1d"
    )
    assert len(windows) == 2
    for w in windows:
        assert (w.n_rows, w.n_labelled, w.status) == (0, 0, "insufficient_data")
        assert all(m.value is None and m.status == "insufficient_data" for m in w.metrics)
    assert performance_over_time(empty, [], [], None, ["ctr"], start=D1, end=D1, every="1d") == ()


def test_rows_outside_start_end_are_ignored_and_windows_are_clipped() -> None:
    start = datetime(2024, 1, 1, 2)
    end = datetime(2024, 1, 2, 1, 30)
    windows = performance_over_time(
        TIMES, Y_TRUE, Y_PRED, None, ["accuracy"], start=start, end=end, every="1d"
    )
    assert [(w.start.hour, w.end.day, w.end.hour, w.end.minute) for w in windows] == [
        (2, 2, 0, 0),
        (0, 2, 1, 30),
    ]
    assert [w.n_rows for w in windows] == [3, 1]


def test_origin_moves_the_grid() -> None:
    windows = performance_over_time(
        TIMES,
        Y_TRUE,
        Y_PRED,
        None,
        ["accuracy"],
        start=datetime(2024, 1, 1, 2, 30),
        end=datetime(2024, 1, 2, 2, 30),
        every=timedelta(hours=12),
        origin=datetime(2000, 1, 1, 2, 30),
    )
    assert [w.start.hour for w in windows] == [2, 14]
    assert [w.n_rows for w in windows] == [2, 2]


def test_aware_bounds_are_converted_to_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    w = evaluate_window(
        TIMES,
        Y_TRUE,
        Y_PRED,
        None,
        ["accuracy"],
        start=datetime(2024, 1, 1, 2, tzinfo=plus2),
        end=datetime(2024, 1, 1, 5, 30, tzinfo=plus2),
    )
    assert w.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert w.n_rows == 3  # 01:00, 02:00, 03:00 UTC


def test_to_dict_is_json_ready() -> None:
    [w] = performance_over_time(
        TIMES[:1],
        Y_TRUE[:1],
        Y_PRED[:1],
        Y_SCORE[:1],
        ["accuracy", "roc_auc"],
        start=D1,
        end=D2,
        every="1d",
    )
    data = w.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data == {
        "start": "2024-01-01T00:00:00+00:00",
        "end": "2024-01-02T00:00:00+00:00",
        "n_rows": 1,
        "n_labelled": 1,
        "min_samples": 1,
        "status": "ok",
        "metrics": [
            {"name": "accuracy", "value": 1.0, "n": 1, "status": "ok"},
            {"name": "roc_auc", "value": None, "n": 1, "status": "undefined"},
        ],
    }


def test_results_are_frozen_and_unknown_names_are_key_errors() -> None:
    w = evaluate_window(TIMES, Y_TRUE, Y_PRED, None, ["accuracy"], start=D1, end=D2)
    with pytest.raises(AttributeError):
        w.status = "ok"  # type: ignore[misc]
    with pytest.raises(KeyError, match="no metric 'ctr' in this window; computed: accuracy"):
        w.value("ctr")
    assert isinstance(w, WindowPerformance)


def test_custom_metric_objects_are_accepted() -> None:
    errors = make_metric("errors", lambda y, p, s: float(np.sum(y != p)), greater_is_better=False)
    w = evaluate_window(TIMES, Y_TRUE, Y_PRED, None, [errors, get_metric("f1")], start=D1, end=D2)
    assert w.value("errors") == 1.0
    assert w.value("f1") == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"metrics": ["auc"]}, ConfigError, "unknown metric 'auc'.*ctr"),
        ({"metrics": []}, ConfigError, "at least one metric"),
        ({"metrics": ["ctr", "ctr"]}, ConfigError, "listed twice: ctr"),
        (
            {"metrics": ["roc_auc"], "y_score": None},
            ConfigError,
            "roc_auc need predicted probabilities",
        ),
        ({"min_samples": 0}, ConfigError, "min_samples must be an integer >= 1"),
        ({"min_samples": 2.5}, ConfigError, "min_samples"),
        ({"y_true": [1, 0]}, DataError, "y_true has 2 rows but times has 7"),
        ({"times": [1, 2, 3, 4, 5, 6, 7]}, DataError, "times must be a 1-D datetime64 array"),
        ({"y_pred": np.ones((7, 2))}, DataError, "y_pred must be a 1-D array"),
        ({"start": D2, "end": D1}, ConfigError, "is after end"),
        ({"start": "2024-01-01"}, ConfigError, "start must be a datetime"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    args: dict[str, object] = {
        "times": TIMES,
        "y_true": Y_TRUE,
        "y_pred": Y_PRED,
        "y_score": Y_SCORE,
        "metrics": ["accuracy"],
        "start": D1,
        "end": D4,
    }
    args.update(kwargs)
    with pytest.raises(error, match=message):
        evaluate_window(**args)  # type: ignore[arg-type]


def test_nat_times_are_refused() -> None:
    times = TIMES.copy()
    times[2] = np.datetime64("NaT")
    with pytest.raises(DataError, match=r"times has 1 missing value\(s\) \(NaT\)"):
        evaluate_window(times, Y_TRUE, Y_PRED, None, ["accuracy"], start=D1, end=D4)


@pytest.mark.parametrize(
    ("every", "message"),
    [
        ("0d", "positive duration"),
        ("1.5d", "invalid duration"),
        (timedelta(seconds=-1), "positive"),
    ],
)
def test_bad_every(every: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        performance_over_time(
            TIMES,
            Y_TRUE,
            Y_PRED,
            None,
            ["accuracy"],
            start=D1,
            end=D4,
            every=every,  # type: ignore[arg-type]
        )


def test_too_many_windows_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="too many"):
        performance_over_time(
            TIMES,
            Y_TRUE,
            Y_PRED,
            None,
            ["accuracy"],
            start=D1,
            end=datetime(2025, 1, 1),
            every="1m",
        )


def test_online_metric_names() -> None:
    assert is_rate_metric(get_online_metric("click_through_rate"))
    assert get_online_metric("accuracy") is get_metric("accuracy")
    assert not make_rate_metric("complaints", greater_is_better=False).greater_is_better
    with pytest.raises(ConfigError, match="non-empty string"):
        make_rate_metric("")
    with pytest.raises(ConfigError, match="True or False"):
        make_rate_metric("x", greater_is_better=1)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=5 * 24 * 3600 - 1), max_size=60),
    every_hours=st.sampled_from([1, 6, 24, 30]),
    seed=st.integers(0, 2**16),
)
def test_windows_partition_the_rows_and_agree_with_evaluate_window(
    offsets: list[int], every_hours: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    n = len(offsets)
    times = np.datetime64("2024-01-01T00:00", "us") + np.array(offsets, dtype="timedelta64[s]")
    y_true = rng.integers(0, 2, n).astype(float)
    y_true[rng.random(n) < 0.2] = np.nan
    y_pred = rng.integers(0, 2, n)
    start, end = datetime(2024, 1, 1, 3), datetime(2024, 1, 5, 17)
    windows = performance_over_time(
        times,
        y_true,
        y_pred,
        None,
        ["accuracy", "ctr"],
        start=start,
        end=end,
        every=timedelta(hours=every_hours),
        min_samples=2,
    )
    inside = (times >= np.datetime64(start)) & (times < np.datetime64(end))
    assert sum(w.n_rows for w in windows) == int(inside.sum())
    assert windows[0].start == start.replace(tzinfo=UTC)
    assert windows[-1].end == end.replace(tzinfo=UTC)
    for before, after in itertools.pairwise(windows):
        assert before.end == after.start
    for w in windows:
        alone = evaluate_window(
            times,
            y_true,
            y_pred,
            None,
            ["accuracy", "ctr"],
            start=w.start,
            end=w.end,
            min_samples=2,
        )
        assert alone == w
