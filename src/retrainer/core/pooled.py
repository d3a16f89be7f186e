"""A pooled metric and its bootstrap over batches: one definition for the table and the intervals.

A backtest reports each policy's metric *pooled* over all the rows of a part of history (ROC
AUC over every held-out row, not a mean of daily AUCs), and recommends on it. Its intervals
must be about that same figure: :func:`pooled_difference` resamples whole batches (the rows of
a batch share a day and a model, so they are not independent) and recomputes the pooled metric
of each policy on every resample, so the point estimate of the difference is exactly the
difference of the pooled metrics the table shows.

Recomputing a metric over all rows a thousand times would be slow, so each metric is reduced
once to per-batch sufficient statistics (:func:`batch_statistic`): sums of a per-row loss for
mean metrics (accuracy, log loss, Brier, MAE, MSE, MAPE; RMSE as the root of the pooled MSE),
true/false positives for binary F1, precision and recall, and for binary ROC AUC the matrix of
(positive of batch *b*, negative of batch *c*) pairs ranked right. Other metrics are recomputed
on the resampled rows (fewer resamples: ``generic_boot``).

Units
-----
:func:`in_points` says whether a metric's differences are written in *points* (0.01 of a rate
or score in [0, 1] that grows with quality: accuracy, ROC AUC, F1...). A loss or error (log
loss, MAE, RMSE...) or R² is written in its own units, with a relative % beside it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from retrainer.core.metrics import compute, get_metric

__all__ = [
    "RATE_METRICS",
    "BatchStatistic",
    "batch_statistic",
    "in_points",
    "pooled_difference",
]

RATE_METRICS = frozenset(
    {"accuracy", "balanced_accuracy", "f1", "precision", "recall", "roc_auc", "average_precision"}
)
"""Metrics that are rates or scores in [0, 1], higher is better: their differences are points."""

_MEAN_METRICS = frozenset({"accuracy", "log_loss", "brier", "mae", "mse", "mape"})
_MAX_PAIR_BATCHES = 3000
"""Beyond this many batches the AUC pair matrix (8 bytes per pair of batches) is too large."""
_CHUNK_ELEMENTS = 1 << 20


def in_points(metric: str) -> bool:
    """True when differences of ``metric`` are written in points (0.01 of a rate in [0, 1]).

    Examples
    --------
    >>> in_points("accuracy"), in_points("roc_auc"), in_points("mae"), in_points("log_loss")
    (True, True, False, False)
    """
    return metric in RATE_METRICS


@dataclass(frozen=True, slots=True)
class BatchStatistic:
    """A pooled metric, evaluated for any multiplicity of batches (one row per resample).

    ``value(counts)`` takes a ``(resamples, batches)`` matrix of how many times each batch is
    drawn and returns the pooled metric of each resample; ``counts`` of ones give the pooled
    metric over all rows.
    """

    n_batches: int
    fn: Callable[[NDArray[np.float64]], NDArray[np.float64]] = field(repr=False)
    exact: bool = True
    """False for a metric recomputed on resampled rows (slow: fewer resamples)."""

    def value(self, counts: NDArray[np.float64]) -> NDArray[np.float64]:
        """The pooled metric of each row of ``counts``."""
        return self.fn(np.atleast_2d(np.asarray(counts, dtype=np.float64)))

    @property
    def pooled(self) -> float:
        """The metric over all rows (each batch once)."""
        return float(self.value(np.ones((1, self.n_batches)))[0])


def _divide(num: NDArray[np.float64], den: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return np.where(den > 0, out, np.nan)


def _positive_label(labels: NDArray[Any]) -> Any:
    values = labels.tolist()
    if set(values) <= {0, 1}:  # True == 1 and False == 0 too
        return 1
    return values[-1]


def _binary(
    y_true: NDArray[Any], y_pred: NDArray[Any], y_score: NDArray[Any] | None
) -> tuple[NDArray[np.bool_], NDArray[np.float64] | None] | None:
    """(positive truth, positive score) for a binary problem, read as the built-ins read it."""
    labels = np.unique(np.concatenate([np.asarray(y_true), np.asarray(y_pred)]))
    if len(labels) > 2:
        return None
    positive = np.asarray(y_true) == _positive_label(labels)
    if y_score is None:
        return positive, None
    score = np.asarray(y_score, dtype=np.float64)
    if score.ndim == 2 and score.shape[1] == 2:
        score = score[:, 1]
    if score.ndim != 1:
        return None
    return positive, score


def _sums(per_row: NDArray[np.float64], batch: NDArray[np.intp], n_batches: int) -> Any:
    return np.bincount(batch, weights=per_row, minlength=n_batches)


def _auc_pairs(
    positive: NDArray[np.bool_], score: NDArray[np.float64], batch: NDArray[np.intp], n: int
) -> NDArray[np.float64]:
    """``C[b, c]``: pairs (positive of batch b, negative of batch c) ranked right, ties half."""
    pos_score, pos_batch = score[positive], batch[positive]
    pairs = np.zeros((n, n), dtype=np.float64)
    neg_batch, neg_score = batch[~positive], score[~positive]
    order = np.lexsort((neg_score, neg_batch))  # by batch, then score
    neg_batch, neg_score = neg_batch[order], neg_score[order]
    bounds = np.searchsorted(neg_batch, np.arange(n + 1))
    for c in np.flatnonzero(np.diff(bounds)):
        negatives = neg_score[bounds[c] : bounds[c + 1]]
        below = np.searchsorted(negatives, pos_score, side="left")
        tied = np.searchsorted(negatives, pos_score, side="right") - below
        pairs[:, c] = np.bincount(pos_batch, weights=below + 0.5 * tied, minlength=n)
    return pairs


def batch_statistic(
    metric: str,
    y_true: NDArray[Any],
    y_pred: NDArray[Any],
    y_score: NDArray[Any] | None,
    rows: NDArray[Any],
) -> BatchStatistic:
    """The pooled ``metric`` of a policy's predictions, ready to be resampled by batch.

    ``rows`` holds the rows of each batch, in order; ``y_true``, ``y_pred`` and ``y_score`` the
    batches' rows one after another.

    Examples
    --------
    >>> y = np.array([0, 1, 1, 0, 1, 0])
    >>> s = np.array([0.2, 0.9, 0.4, 0.5, 0.8, 0.1])
    >>> stat = batch_statistic("roc_auc", y, (s > 0.5).astype(int), s, np.array([3, 3]))
    >>> round(stat.pooled, 4)  # the AUC of all six rows, not the mean of the two batches'
    0.8889
    >>> stat.value(np.array([[2.0, 0.0]]))  # batch 0 drawn twice
    array([1.])
    """
    m = get_metric(metric)
    counts = np.asarray(rows, dtype=np.int64)
    n = int(counts.shape[0])
    batch = np.repeat(np.arange(n), counts)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if m.needs_proba and y_score is None:
        return BatchStatistic(n, lambda c: np.full(c.shape[0], np.nan))
    binary = _binary(y_true, y_pred, y_score)
    weights = counts.astype(np.float64)

    if metric == "rmse" or metric in _MEAN_METRICS:
        # a mean over rows: the batch's metric times its rows sums the per-row loss exactly
        name = "mse" if metric == "rmse" else metric
        starts = np.concatenate(([0], np.cumsum(counts)))
        per_batch = np.array(
            [
                compute(
                    get_metric(name),
                    y_true[a:z],
                    y_pred[a:z],
                    None if y_score is None else y_score[a:z],
                )
                if z > a
                else 0.0
                for a, z in itertools.pairwise(starts)
            ]
        )
        totals = np.where(weights > 0, per_batch * weights, 0.0)
        root = metric == "rmse"

        def mean(c: NDArray[np.float64]) -> NDArray[np.float64]:
            out = _divide(c @ totals, c @ weights)
            return np.sqrt(out) if root else out

        return BatchStatistic(n, mean)

    if binary is not None and metric in ("f1", "precision", "recall"):
        positive = binary[0]
        predicted = y_pred == _positive_label(np.unique(np.concatenate([y_true, y_pred])))
        tp = _sums((positive & predicted).astype(np.float64), batch, n)
        fp = _sums((~positive & predicted).astype(np.float64), batch, n)
        fn = _sums((positive & ~predicted).astype(np.float64), batch, n)

        def counts_metric(c: NDArray[np.float64]) -> NDArray[np.float64]:
            t, p, f = c @ tp, c @ fp, c @ fn
            if metric == "precision":
                return _divide(t, t + p)
            if metric == "recall":
                return _divide(t, t + f)
            return _divide(2 * t, 2 * t + p + f)

        return BatchStatistic(n, counts_metric)

    if (
        metric == "roc_auc"
        and binary is not None
        and binary[1] is not None
        and n <= (_MAX_PAIR_BATCHES)
    ):
        positive, score = binary[0], binary[1]
        pairs = _auc_pairs(positive, score, batch, n)
        n_pos = _sums(positive.astype(np.float64), batch, n)
        n_neg = weights - n_pos

        def auc(c: NDArray[np.float64]) -> NDArray[np.float64]:
            return _divide(((c @ pairs) * c).sum(axis=1), (c @ n_pos) * (c @ n_neg))

        return BatchStatistic(n, auc)

    starts = np.concatenate(([0], np.cumsum(counts)))

    def generic(c: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.empty(c.shape[0])
        for r in range(c.shape[0]):
            times = c[r].astype(np.int64)
            drawn = [np.arange(starts[b], starts[b + 1]) for b in np.repeat(np.arange(n), times)]
            idx = np.concatenate(drawn) if drawn else np.empty(0, dtype=np.int64)
            out[r] = compute(m, y_true[idx], y_pred[idx], None if y_score is None else y_score[idx])
        return out

    return BatchStatistic(n, generic, exact=False)


@dataclass(frozen=True, slots=True)
class PooledDifference:
    """``a - b`` of two pooled metrics, with its interval over batch resamples."""

    mean: float
    low: float
    high: float
    a: float
    b: float
    n_batches: int


def pooled_difference(
    a: BatchStatistic,
    b: BatchStatistic,
    *,
    n_boot: int = 1000,
    generic_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> PooledDifference:
    """Pooled ``a`` minus pooled ``b``, with a percentile interval over batch resamples.

    Both are recomputed on the same resamples (paired), so what the two policies share (an
    easy day) cancels. ``mean`` is exactly ``a.pooled - b.pooled``. With fewer than two
    batches the bounds are NaN.

    Examples
    --------
    >>> y = np.array([1, 0, 1, 0] * 5)
    >>> good = batch_statistic("accuracy", y, y, None, np.array([4] * 5))
    >>> bad = batch_statistic("accuracy", y, np.array([1, 1, 1, 0] * 5), None, np.array([4] * 5))
    >>> d = pooled_difference(good, bad)
    >>> d.mean, d.low, d.high
    (0.25, 0.25, 0.25)
    """
    if a.n_batches != b.n_batches:
        raise ValueError(f"a and b must cover the same batches; got {a.n_batches}, {b.n_batches}")
    n = a.n_batches
    va, vb = a.pooled, b.pooled
    mean = va - vb
    if n < 2 or math.isnan(mean):
        return PooledDifference(mean, math.nan, math.nan, va, vb, n)
    boots = n_boot if a.exact and b.exact else min(n_boot, generic_boot)
    rng = np.random.Generator(np.random.PCG64(seed))
    out = np.empty(boots)
    step = max(1, _CHUNK_ELEMENTS // max(n, 1) // 8)
    for start in range(0, boots, step):
        stop = min(boots, start + step)
        idx = rng.integers(0, n, size=(stop - start, n))
        flat = (np.arange(stop - start)[:, None] * n + idx).ravel()
        drawn = np.bincount(flat, minlength=(stop - start) * n).reshape(stop - start, n)
        counts: NDArray[np.float64] = drawn.astype(np.float64)
        out[start:stop] = np.subtract(a.value(counts), b.value(counts))
    alpha = 1.0 - confidence
    finite = out[np.isfinite(out)]
    if finite.size == 0:
        return PooledDifference(mean, math.nan, math.nan, va, vb, n)
    low, high = np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0])
    return PooledDifference(mean, float(low), float(high), va, vb, n)
