import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from retrainer.core.metrics import (
    Metric,
    compute,
    get_metric,
    improvement,
    is_better,
    make_metric,
    metric_names,
)
from retrainer.errors import ConfigError, DataError

DIRECTIONS = {
    "accuracy": (True, False),
    "balanced_accuracy": (True, False),
    "f1": (True, False),
    "precision": (True, False),
    "recall": (True, False),
    "roc_auc": (True, True),
    "average_precision": (True, True),
    "log_loss": (False, True),
    "brier": (False, True),
    "mae": (False, False),
    "mse": (False, False),
    "rmse": (False, False),
    "r2": (True, False),
    "mape": (False, False),
}

Y_BIN = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 0])
P_BIN = np.array([0, 1, 0, 0, 1, 1, 0, 1, 1, 0])
S_BIN = np.array([0.1, 0.9, 0.4, 0.2, 0.8, 0.6, 0.3, 0.7, 0.95, 0.05])

Y_MC = np.array([0, 1, 2, 2, 1, 0, 2, 1, 0, 2])
P_MC = np.array([0, 1, 2, 1, 1, 0, 2, 2, 0, 2])
S_MC = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.1, 0.8, 0.1],
        [0.1, 0.2, 0.7],
        [0.2, 0.5, 0.3],
        [0.3, 0.6, 0.1],
        [0.6, 0.3, 0.1],
        [0.1, 0.1, 0.8],
        [0.2, 0.3, 0.5],
        [0.5, 0.4, 0.1],
        [0.2, 0.2, 0.6],
    ]
)

Y_REG = np.array([3.0, -0.5, 2.0, 7.0, 4.2])
P_REG = np.array([2.5, 0.0, 2.0, 8.0, 4.0])


def test_builtin_names_are_the_documented_set():
    assert set(metric_names()) == set(DIRECTIONS)
    assert list(metric_names()) == sorted(metric_names())


@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_builtin_direction_and_proba(name):
    metric = get_metric(name)
    assert isinstance(metric, Metric)
    assert metric.name == name
    assert (metric.greater_is_better, metric.needs_proba) == DIRECTIONS[name]


@pytest.mark.parametrize("name", ["auc", "", "Accuracy"])
def test_unknown_metric_lists_known_names(name):
    with pytest.raises(ConfigError, match="unknown metric") as info:
        get_metric(name)
    assert "accuracy" in str(info.value) and "roc_auc" in str(info.value)


def test_a_misspelt_metric_is_named_with_its_likely_meaning():
    with pytest.raises(ConfigError) as info:
        get_metric("acuracy")
    assert str(info.value).startswith("unknown metric 'acuracy' (did you mean 'accuracy'?). ")
    assert "{name, function: module:fn, greater_is_better} under metrics:" in str(info.value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("accuracy", skm.accuracy_score(Y_BIN, P_BIN)),
        ("balanced_accuracy", skm.balanced_accuracy_score(Y_BIN, P_BIN)),
        ("f1", skm.f1_score(Y_BIN, P_BIN)),
        ("precision", skm.precision_score(Y_BIN, P_BIN)),
        ("recall", skm.recall_score(Y_BIN, P_BIN)),
        ("roc_auc", skm.roc_auc_score(Y_BIN, S_BIN)),
        ("average_precision", skm.average_precision_score(Y_BIN, S_BIN)),
        ("log_loss", skm.log_loss(Y_BIN, S_BIN)),
        ("brier", skm.brier_score_loss(Y_BIN, S_BIN)),
    ],
)
def test_binary_metrics_match_sklearn(name, expected):
    assert compute(get_metric(name), Y_BIN, P_BIN, S_BIN) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("accuracy", skm.accuracy_score(Y_MC, P_MC)),
        ("f1", skm.f1_score(Y_MC, P_MC, average="macro")),
        ("precision", skm.precision_score(Y_MC, P_MC, average="macro")),
        ("recall", skm.recall_score(Y_MC, P_MC, average="macro")),
        ("roc_auc", skm.roc_auc_score(Y_MC, S_MC, multi_class="ovr", average="macro")),
        ("log_loss", skm.log_loss(Y_MC, S_MC)),
        ("brier", np.mean(np.sum((S_MC - np.eye(3)[Y_MC]) ** 2, axis=1))),
        (
            "average_precision",
            skm.average_precision_score(np.eye(3)[Y_MC], S_MC, average="macro"),
        ),
    ],
)
def test_multiclass_metrics_match_sklearn_macro(name, expected):
    assert compute(get_metric(name), Y_MC, P_MC, S_MC) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mae", skm.mean_absolute_error(Y_REG, P_REG)),
        ("mse", skm.mean_squared_error(Y_REG, P_REG)),
        ("rmse", math.sqrt(skm.mean_squared_error(Y_REG, P_REG))),
        ("r2", skm.r2_score(Y_REG, P_REG)),
        ("mape", skm.mean_absolute_percentage_error(Y_REG, P_REG)),
    ],
)
def test_regression_metrics_match_sklearn(name, expected):
    assert compute(get_metric(name), Y_REG, P_REG) == pytest.approx(expected)


def test_positive_class_is_the_larger_label():
    y_true = np.array(["no", "yes", "yes", "no"])
    y_pred = np.array(["yes", "yes", "no", "no"])
    assert compute(get_metric("precision"), y_true, y_pred) == pytest.approx(0.5)
    scores = np.array([0.2, 0.9, 0.8, 0.1])  # P(yes)
    assert compute(get_metric("roc_auc"), y_true, y_pred, scores) == 1.0


def test_binary_accepts_a_two_column_score_matrix():
    two_columns = np.column_stack([1 - S_BIN, S_BIN])
    for name in ("roc_auc", "log_loss", "brier", "average_precision"):
        metric = get_metric(name)
        assert compute(metric, Y_BIN, P_BIN, two_columns) == pytest.approx(
            compute(metric, Y_BIN, P_BIN, S_BIN)
        )


def test_multiclass_scores_with_a_class_absent_from_the_sample():
    y_true = np.array([0, 1, 0, 1])
    y_pred = np.array([0, 1, 1, 1])
    scores = np.array([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.3, 0.4, 0.3], [0.2, 0.6, 0.2]])
    assert compute(get_metric("roc_auc"), y_true, y_pred, scores) == 1.0
    assert compute(get_metric("log_loss"), y_true, y_pred, scores) == pytest.approx(
        -np.mean(np.log([0.8, 0.7, 0.3, 0.6]))
    )


@pytest.mark.parametrize(
    ("name", "y_true", "y_pred", "y_score"),
    [
        ("roc_auc", [1, 1, 1], [1, 1, 0], [0.9, 0.8, 0.4]),
        ("roc_auc", [0, 0], [0, 0], [0.1, 0.2]),
        ("average_precision", [0, 0, 0], [0, 0, 1], [0.1, 0.2, 0.7]),
        ("precision", [0, 1, 1], [0, 0, 0], None),
        ("f1", [0, 0], [0, 0], None),
        ("r2", [1.0], [1.0], None),
        ("mse", [1.0, np.nan], [1.0, 2.0], None),
        ("accuracy", [], [], None),
        ("roc_auc", [], [], []),
        ("rmse", [], [], None),
        ("roc_auc", [0, 1, 2], [0, 1, 2], [0.1, 0.5, 0.9]),
    ],
)
def test_undefined_metrics_give_nan_without_warnings(name, y_true, y_pred, y_score):
    # pytest turns warnings into errors, so this also checks that nothing leaks out
    assert math.isnan(compute(get_metric(name), y_true, y_pred, y_score))


def test_missing_scores_for_a_proba_metric_is_a_config_error():
    with pytest.raises(ConfigError, match="'roc_auc' needs predicted probabilities"):
        compute(get_metric("roc_auc"), [0, 1], [0, 1])


@pytest.mark.parametrize(
    ("y_true", "y_pred", "y_score"),
    [([0, 1, 1], [0, 1], [0.1, 0.2, 0.3]), ([0, 1], [0, 1], [0.1, 0.2, 0.3])],
)
def test_mismatched_lengths_are_a_data_error(y_true, y_pred, y_score):
    with pytest.raises(DataError, match="roc_auc"):
        compute(get_metric("roc_auc"), y_true, y_pred, y_score)


def test_user_metric_sees_no_scores_unless_it_needs_them():
    seen = []

    def fn(y_true, y_pred, y_score):
        seen.append(y_score)
        return float(np.sum(y_true == y_pred))

    assert compute(make_metric("hits", fn, greater_is_better=True), [1, 2], [1, 3], [0.5, 0.5]) == 1
    assert seen == [None]


def _warns_undefined(y_true, y_pred, y_score):
    warnings.warn("not defined here", UndefinedMetricWarning, stacklevel=1)
    return 1.0


def _raises_value_error(y_true, y_pred, y_score):
    raise ValueError("cannot score this")


def _divides_by_zero(y_true, y_pred, y_score):
    return float(np.mean(y_true[y_true > 100]))


@pytest.mark.parametrize("fn", [_warns_undefined, _raises_value_error, _divides_by_zero])
def test_user_metric_that_cannot_score_gives_nan(fn):
    metric = make_metric("custom", fn, greater_is_better=True)
    assert math.isnan(compute(metric, np.array([1.0, 2.0]), np.array([1.0, 2.0])))


def test_user_metric_bug_is_not_hidden():
    def broken(y_true, y_pred, y_score):
        raise TypeError("bug")

    with pytest.raises(TypeError, match="bug"):
        compute(make_metric("broken", broken, greater_is_better=True), [1], [1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "", "fn": _warns_undefined, "greater_is_better": True}, "non-empty"),
        ({"name": "x", "fn": 3, "greater_is_better": True}, "callable"),
        ({"name": "x", "fn": _warns_undefined, "greater_is_better": "yes"}, "greater_is_better"),
        (
            {"name": "x", "fn": _warns_undefined, "greater_is_better": True, "needs_proba": 1},
            "needs_proba",
        ),
    ],
)
def test_make_metric_validates(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_metric(**kwargs)


@pytest.mark.parametrize(
    ("name", "a", "b", "expected"),
    [
        ("accuracy", 0.9, 0.8, True),
        ("accuracy", 0.8, 0.9, False),
        ("accuracy", 0.8, 0.8, False),
        ("rmse", 0.8, 0.9, True),
        ("rmse", 0.9, 0.8, False),
        ("accuracy", math.nan, 0.8, False),
        ("accuracy", 0.8, math.nan, False),
    ],
)
def test_is_better(name, a, b, expected):
    assert is_better(get_metric(name), a, b) is expected


@pytest.mark.parametrize(
    ("name", "candidate", "champion", "relative", "expected"),
    [
        ("accuracy", 0.9, 0.8, False, 0.1),
        ("accuracy", 0.9, 0.8, True, 0.125),
        ("rmse", 0.9, 1.0, False, 0.1),
        ("rmse", 1.1, 1.0, True, -0.1),
        ("r2", 0.5, -0.5, True, 2.0),
    ],
)
def test_improvement(name, candidate, champion, relative, expected):
    assert improvement(get_metric(name), candidate, champion, relative=relative) == pytest.approx(
        expected
    )


@pytest.mark.parametrize(("candidate", "champion"), [(0.5, 0.0), (0.5, math.nan), (math.nan, 0.5)])
def test_relative_improvement_is_nan_without_a_usable_champion(candidate, champion):
    assert math.isnan(improvement(get_metric("mae"), candidate, champion, relative=True))


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(a=finite, b=finite, greater=st.booleans())
def test_improvement_is_antisymmetric(a, b, greater):
    metric = make_metric("m", _warns_undefined, greater_is_better=greater)
    assert improvement(metric, a, b, relative=False) == -improvement(metric, b, a, relative=False)
    forward = improvement(metric, a, b, relative=True)
    backward = improvement(metric, b, a, relative=True)
    if not (math.isnan(forward) or math.isnan(backward)):
        assert np.sign(forward) == -np.sign(backward)


@given(a=finite, b=finite, greater=st.booleans())
def test_is_better_agrees_with_improvement(a, b, greater):
    metric = make_metric("m", _warns_undefined, greater_is_better=greater)
    assert is_better(metric, a, b) == (improvement(metric, a, b, relative=False) > 0)
