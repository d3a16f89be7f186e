"""Model-quality metrics: what the blessing gate and the monitor compare models on.

A :class:`Metric` is a named function of ``(y_true, y_pred, y_score)`` with a direction. The
built-ins (:func:`get_metric`) wrap :mod:`sklearn.metrics` with one convention for every
classifier metric:

- **binary** problems (at most two labels among ``y_true`` and ``y_pred``): the positive class
  is ``1`` when the labels are 0/1 (or booleans), else the larger label, which is also the
  column ``predict_proba(X)[:, 1]`` scores; ``y_score`` is that column as a 1-D array (an
  ``(n, 2)`` matrix is accepted too);
- **multiclass** problems: precision, recall and F1 are macro averages; ``y_score`` is the
  ``(n, k)`` probability matrix whose columns follow the sorted labels, and ROC AUC and average
  precision are one-vs-rest macro averages over the classes present in ``y_true``.

:func:`compute` is the only way the rest of retrainer evaluates a metric: it returns NaN,
instead of raising or warning, whenever the metric is undefined on the data (an empty sample,
a single class for ROC AUC, fewer than two samples for R², ...).
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from retrainer.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray
else:
    from retrainer.core._lazy_numpy import np

__all__ = [
    "Metric",
    "MetricFn",
    "compute",
    "get_metric",
    "improvement",
    "in_points",
    "is_better",
    "make_metric",
    "metric_names",
]


def _skm() -> Any:
    # imported at first use: reading the registry or the config needs no scikit-learn (1.5 s)
    from sklearn import metrics

    return metrics


def _sk(name: str) -> Callable[..., Any]:
    """``sklearn.metrics.<name>``, looked up when called."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(_skm(), name)(*args, **kwargs)

    call.__name__ = name
    return call


MetricFn = Callable[["NDArray[Any]", "NDArray[Any]", "NDArray[Any] | None"], float]
"""``fn(y_true, y_pred, y_score) -> float``; ``y_score`` is None unless the metric needs it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Metric:
    """A named model-quality metric with its direction.

    Parameters
    ----------
    name
        The name used in configuration, rules and evidence (``"accuracy"``).
    greater_is_better
        True for scores (accuracy, R²), False for losses (log loss, RMSE).
    needs_proba
        True when the metric reads predicted probabilities (``y_score``) rather than labels.
    fn
        ``fn(y_true, y_pred, y_score) -> float``. ``y_score`` is None unless ``needs_proba``;
        for binary problems it is the positive-class probability as a 1-D array, for multiclass
        problems the ``(n, k)`` probability matrix. Call it through :func:`compute`.

    Examples
    --------
    >>> m = get_metric("rmse")
    >>> m
    Metric(name='rmse', greater_is_better=False, needs_proba=False)
    >>> compute(m, [1.0, 2.0], [1.0, 4.0])
    1.4142135623730951
    """

    name: str
    greater_is_better: bool
    needs_proba: bool = False
    fn: MetricFn = field(repr=False)


# --- helpers for the built-ins ----------------------------------------------------------------


def _labels(y_true: NDArray[Any], y_pred: NDArray[Any]) -> NDArray[Any]:
    return np.unique(np.concatenate([y_true, y_pred]))


def _pos_label(labels: NDArray[Any]) -> Any:
    """1 for 0/1 (or boolean) labels, else the larger label."""
    values = labels.tolist()
    if all(isinstance(v, (bool, int, float, np.integer, np.floating)) for v in values) and set(
        values
    ) <= {0, 1}:
        return 1
    return values[-1]


def _binary_or_macro(fn: Any) -> MetricFn:
    """Wrap precision/recall/F1: binary with the positive label, else macro average."""

    def metric(y_true: NDArray[Any], y_pred: NDArray[Any], y_score: NDArray[Any] | None) -> float:
        labels = _labels(y_true, y_pred)
        if len(labels) <= 2:
            value = fn(
                y_true,
                y_pred,
                average="binary",
                pos_label=_pos_label(labels),
                zero_division=np.nan,
            )
        else:
            value = fn(y_true, y_pred, average="macro", zero_division=np.nan)
        return float(value)

    return metric


def _accuracy(y_true: NDArray[Any], y_pred: NDArray[Any], y_score: NDArray[Any] | None) -> float:
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    if yt.ndim == 1 and yp.shape == yt.shape and len(yt):  # labels: a plain mean, 30x faster
        return float(np.mean(yt == yp))
    return float(_skm().accuracy_score(y_true, y_pred))


def _balanced_accuracy(
    y_true: NDArray[Any], y_pred: NDArray[Any], y_score: NDArray[Any] | None
) -> float:
    with warnings.catch_warnings():
        # Predicted classes absent from y_true have no recall; sklearn leaves them out of the
        # mean (the score is still defined) and says so with a UserWarning.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(_skm().balanced_accuracy_score(y_true, y_pred))


class _Scores:
    """Probability scores read in the built-ins' convention (see the module docstring)."""

    def __init__(self, y_true: NDArray[Any], y_pred: NDArray[Any], y_score: NDArray[Any] | None):
        if y_score is None:  # compute() never lets this happen
            raise ValueError("y_score is required")
        scores = np.asarray(y_score, dtype=float)
        labels = _labels(y_true, y_pred)
        if scores.ndim == 2 and scores.shape[1] == 2:
            scores = scores[:, 1]
        self.binary = scores.ndim == 1
        if self.binary:
            if len(labels) > 2:
                raise ValueError("a 1-D y_score needs a binary problem")
            self.positive = y_true == _pos_label(labels)
            self.proba = scores
            return
        k = scores.shape[1]
        if len(labels) == k:
            classes = labels
        elif np.issubdtype(labels.dtype, np.integer) and labels.min() >= 0 and labels.max() < k:
            classes = np.arange(k)
        else:
            raise ValueError(f"cannot match the labels {labels!r} to {k} score columns")
        # one-hot truth, columns in the order of `classes`
        self.onehot = y_true[:, None] == classes[None, :]
        self.proba = scores

    def per_present_class(self, fn: Any) -> float:
        """Macro average of a binary score over the classes present in y_true (one-vs-rest)."""
        present = np.flatnonzero(self.onehot.any(axis=0))
        if len(present) < 2:
            return math.nan
        return float(np.mean([fn(self.onehot[:, j], self.proba[:, j]) for j in present]))


def binary_auc(positive: NDArray[np.bool_], score: NDArray[Any]) -> float:
    """ROC AUC from ranks (Mann-Whitney U, ties counted half): sklearn's value, 50x faster.

    Examples
    --------
    >>> binary_auc(np.array([False, False, True, True]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _roc_auc(y_true: NDArray[Any], y_pred: NDArray[Any], y_score: NDArray[Any] | None) -> float:
    s = _Scores(y_true, y_pred, y_score)
    if s.binary:
        if s.positive.all() or not s.positive.any():
            return math.nan
        return binary_auc(np.asarray(s.positive, dtype=bool), s.proba)
    return s.per_present_class(_sk("roc_auc_score"))


def _average_precision(
    y_true: NDArray[Any], y_pred: NDArray[Any], y_score: NDArray[Any] | None
) -> float:
    s = _Scores(y_true, y_pred, y_score)
    if s.binary:
        if not s.positive.any():
            return math.nan
        return float(_skm().average_precision_score(s.positive, s.proba))
    return s.per_present_class(_sk("average_precision_score"))


_EPS = sys.float_info.epsilon  # numpy.finfo(float).eps


def _log_loss(y_true: NDArray[Any], y_pred: NDArray[Any], y_score: NDArray[Any] | None) -> float:
    s = _Scores(y_true, y_pred, y_score)
    if s.binary:
        p_true = np.where(s.positive, s.proba, 1.0 - s.proba)
    else:
        p_true = s.proba[s.onehot]
        if len(p_true) != len(y_true):
            raise ValueError("some labels have no score column")
    return float(-np.mean(np.log(np.clip(p_true, _EPS, 1.0))))


def _brier(y_true: NDArray[Any], y_pred: NDArray[Any], y_score: NDArray[Any] | None) -> float:
    s = _Scores(y_true, y_pred, y_score)
    if s.binary:
        return float(np.mean((s.proba - s.positive) ** 2))
    return float(np.mean(np.sum((s.proba - s.onehot) ** 2, axis=1)))


def _regression(fn: Any) -> MetricFn:
    def metric(y_true: NDArray[Any], y_pred: NDArray[Any], y_score: NDArray[Any] | None) -> float:
        return float(fn(y_true, y_pred))

    return metric


def _builtin(name: str, fn: MetricFn, *, greater: bool, proba: bool = False) -> Metric:
    return Metric(name=name, greater_is_better=greater, needs_proba=proba, fn=fn)


_BUILTINS: dict[str, Metric] = {
    m.name: m
    for m in (
        _builtin("accuracy", _accuracy, greater=True),
        _builtin("balanced_accuracy", _balanced_accuracy, greater=True),
        _builtin("f1", _binary_or_macro(_sk("f1_score")), greater=True),
        _builtin("precision", _binary_or_macro(_sk("precision_score")), greater=True),
        _builtin("recall", _binary_or_macro(_sk("recall_score")), greater=True),
        _builtin("roc_auc", _roc_auc, greater=True, proba=True),
        _builtin("average_precision", _average_precision, greater=True, proba=True),
        _builtin("log_loss", _log_loss, greater=False, proba=True),
        _builtin("brier", _brier, greater=False, proba=True),
        _builtin("mae", _regression(_sk("mean_absolute_error")), greater=False),
        _builtin("mse", _regression(_sk("mean_squared_error")), greater=False),
        _builtin("rmse", _regression(_sk("root_mean_squared_error")), greater=False),
        _builtin("r2", _regression(_sk("r2_score")), greater=True),
        _builtin("mape", _regression(_sk("mean_absolute_percentage_error")), greater=False),
    )
}


# Built-in and online metrics whose values are shares between 0 and 1 (or, for R², at most
# 1): a change of 0.01 is one "point" of them. The others (log loss, MAE, MSE, RMSE, MAPE)
# are in the units of the target or unbounded: a change is written in their units.
_IN_POINTS = frozenset(
    {
        "accuracy",
        "average_precision",
        "balanced_accuracy",
        "brier",
        "click_through_rate",
        "ctr",
        "f1",
        "precision",
        "r2",
        "rate",
        "recall",
        "roc_auc",
    }
)


# --- public API -------------------------------------------------------------------------------


def in_points(name: str) -> bool:
    """Whether a change of metric ``name`` reads in points (0.01 = one point): a share
    between 0 and 1 (accuracy, ROC AUC, F1, Brier score...) or R². Losses in the target's
    units or unbounded (MAE, RMSE, MSE, MAPE, log loss) and custom metrics do not: a change
    of them is written in their own units, or relative (%).

    Examples
    --------
    >>> in_points("accuracy"), in_points("mae"), in_points("log_loss")
    (True, False, False)
    """
    return name in _IN_POINTS


def metric_names() -> tuple[str, ...]:
    """The names of the built-in metrics, sorted.

    Examples
    --------
    >>> "roc_auc" in metric_names()
    True
    """
    return tuple(sorted(_BUILTINS))


def get_metric(name: str) -> Metric:
    """Return the built-in metric called ``name``.

    Raises
    ------
    ConfigError
        If ``name`` is not a built-in metric; the message lists the known names.

    Examples
    --------
    >>> get_metric("roc_auc")
    Metric(name='roc_auc', greater_is_better=True, needs_proba=True)
    >>> get_metric("auc")
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: unknown metric 'auc'. Known metrics: accuracy, ...
    """
    try:
        return _BUILTINS[name]
    except (KeyError, TypeError):
        from retrainer.core._spec import did_you_mean

        hint = did_you_mean(str(name), metric_names()).removeprefix("; ")
        raise ConfigError(
            f"unknown metric {name!r}{f' ({hint})' if hint else ''}. Known metrics: "
            f"{', '.join(metric_names())}; a metric of your own: {{name, function: "
            "module:fn, greater_is_better} under metrics:, or make_metric() in Python"
        ) from None


def make_metric(
    name: str, fn: MetricFn, *, greater_is_better: bool, needs_proba: bool = False
) -> Metric:
    """Wrap a user function as a :class:`Metric`.

    Parameters
    ----------
    name
        The metric's name in rules and evidence.
    fn
        ``fn(y_true, y_pred, y_score) -> float``; ``y_score`` is None unless ``needs_proba``.
    greater_is_better
        The metric's direction.
    needs_proba
        Whether ``fn`` reads predicted probabilities.

    Raises
    ------
    ConfigError
        If ``name`` is not a non-empty string, ``fn`` is not callable or a flag is not a bool.

    Examples
    --------
    >>> import numpy as np
    >>> max_error = make_metric(
    ...     "max_error",
    ...     lambda y, p, s: float(np.max(np.abs(y - p))),
    ...     greater_is_better=False,
    ... )
    >>> compute(max_error, [1.0, 2.0, 3.0], [1.0, 2.5, 5.0])
    2.0
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a metric name must be a non-empty string; got {name!r}")
    if not callable(fn):
        raise ConfigError(
            f"metric {name!r}: fn must be a callable fn(y_true, y_pred, y_score) -> float; "
            f"got {fn!r}"
        )
    for flag, value in (("greater_is_better", greater_is_better), ("needs_proba", needs_proba)):
        if not isinstance(value, bool):
            raise ConfigError(f"metric {name!r}: {flag} must be True or False; got {value!r}")
    return Metric(name=name, greater_is_better=greater_is_better, needs_proba=needs_proba, fn=fn)


def compute(
    metric: Metric,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    y_score: ArrayLike | None = None,
) -> float:
    """Evaluate ``metric``, returning NaN when it is undefined on the data.

    "Undefined" covers empty input, input the metric cannot score (a single class for ROC AUC,
    fewer than two samples for R², NaN in the targets...), and anything ``fn`` reports with a
    ``ValueError``, an arithmetic error, scikit-learn's ``UndefinedMetricWarning`` or a
    ``RuntimeWarning``: those are silenced and give NaN.

    Parameters
    ----------
    metric
        The metric to evaluate.
    y_true, y_pred
        True and predicted labels (or values), 1-D, same length.
    y_score
        Predicted probabilities; required when ``metric.needs_proba``, ignored otherwise.

    Raises
    ------
    ConfigError
        If the metric needs probabilities and ``y_score`` is None.
    DataError
        If the inputs are not 1-D or their lengths differ (a caller bug, not undefined data).

    Examples
    --------
    >>> compute(get_metric("accuracy"), [0, 1, 1, 0], [0, 1, 0, 0])
    0.75
    >>> compute(get_metric("roc_auc"), [0, 1, 1, 0], [0, 1, 1, 0], [0.1, 0.8, 0.6, 0.3])
    1.0
    >>> compute(get_metric("roc_auc"), [1, 1], [1, 1], [0.8, 0.6])
    nan
    >>> compute(get_metric("accuracy"), [], [])
    nan
    """
    true = np.asarray(y_true)
    pred = np.asarray(y_pred)
    if true.ndim != 1 or pred.ndim != 1 or len(true) != len(pred):
        raise DataError(
            f"metric {metric.name!r}: y_true and y_pred must be 1-D arrays of the same length; "
            f"got shapes {true.shape} and {pred.shape}"
        )
    score: NDArray[Any] | None = None
    if metric.needs_proba:
        if y_score is None:
            raise ConfigError(
                f"metric {metric.name!r} needs predicted probabilities (y_score) but none were "
                "given; use a model with predict_proba or a metric on labels"
            )
        score = np.asarray(y_score)
        if score.ndim not in (1, 2) or len(score) != len(true):
            raise DataError(
                f"metric {metric.name!r}: y_score must be 1-D or (n, k) with n={len(true)} "
                f"rows like y_true; got shape {score.shape}"
            )
    if len(true) == 0:
        return math.nan
    from sklearn.exceptions import UndefinedMetricWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedMetricWarning)
        warnings.simplefilter("error", RuntimeWarning)
        try:
            return float(metric.fn(true, pred, score))
        except (ValueError, ArithmeticError, UndefinedMetricWarning, RuntimeWarning):
            return math.nan


def is_better(metric: Metric, a: float, b: float) -> bool:
    """True when value ``a`` is strictly better than ``b`` for ``metric``.

    Any comparison involving NaN is False.

    Examples
    --------
    >>> is_better(get_metric("accuracy"), 0.9, 0.8)
    True
    >>> is_better(get_metric("log_loss"), 0.9, 0.8)
    False
    """
    return a > b if metric.greater_is_better else a < b


def improvement(metric: Metric, candidate: float, champion: float, *, relative: bool) -> float:
    """How much better ``candidate`` is than ``champion``: positive means better.

    The raw improvement is ``candidate - champion`` for a greater-is-better metric and
    ``champion - candidate`` otherwise; ``relative=True`` divides it by ``|champion|`` and gives
    NaN when the champion is 0. NaN in, NaN out.

    Examples
    --------
    >>> round(improvement(get_metric("accuracy"), 0.82, 0.80, relative=False), 6)
    0.02
    >>> round(improvement(get_metric("rmse"), 1.1, 1.0, relative=True), 6)
    -0.1
    >>> improvement(get_metric("rmse"), 1.1, 0.0, relative=True)
    nan
    """
    raw = candidate - champion if metric.greater_is_better else champion - candidate
    if not relative:
        return float(raw)
    if math.isnan(champion) or champion == 0:
        return math.nan
    return float(raw / abs(champion))


REGRESSION_METRICS = ("mae", "mape", "mse", "r2", "rmse")
"""The built-in metrics of a regression; the other built-in metrics score classes (or their
probabilities), and rates (``ctr``) and custom metrics fit either task."""


def metric_task(name: str) -> Literal["classification", "regression"] | None:
    """The task a built-in metric scores, or None for a rate, a custom or an unknown name.

    Examples
    --------
    >>> metric_task("accuracy"), metric_task("rmse"), metric_task("ctr")
    ('classification', 'regression', None)
    """
    if name in REGRESSION_METRICS:
        return "regression"
    return "classification" if name in metric_names() else None


def metric_task_problem(name: Any, task: str, where: str, why: str = "") -> str | None:
    """The problem with metric ``name`` at ``where`` in a ``task`` pipeline, or None: a
    classification metric of a regression (accuracy would be stored as 0.0) or the reverse.
    ``why`` says where the task came from (an inferred task names its target)."""
    if not isinstance(name, str) or task not in ("classification", "regression"):
        return None
    kind = metric_task(name)
    if kind is None or kind == task:
        return None
    if task == "regression":
        fits = ", ".join(REGRESSION_METRICS)
    else:
        fits = ", ".join(m for m in metric_names() if m not in REGRESSION_METRICS)
    other = "classification" if task == "regression" else "regression"
    return (
        f"{where}: {name!r} is a {kind} metric, but the pipeline's task is {task}{why}; "
        f"use one of {fits}, or set task: {other}"
    )
