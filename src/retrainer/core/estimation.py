"""Performance estimated before the labels arrive: CBPE for binary classifiers, DLE for
regressors.

**CBPE** (confidence-based performance estimation). If ``p_i`` is the *calibrated*
probability that row ``i`` is positive, the expected confusion matrix of predictions
``yhat_i`` is ``TP = sum(p_i * yhat_i)``, ``FP = sum((1 - p_i) * yhat_i)``,
``FN = sum(p_i * (1 - yhat_i))``, ``TN = sum((1 - p_i) * (1 - yhat_i))``; accuracy and F1 are
read from it, and ROC AUC is the area under the expected ROC curve (expected TPR and FPR at
each score threshold, as NannyML computes it).

**DLE** (direct loss estimation): a loss model fitted on labelled reference rows predicts
each row's absolute and squared error; MAE is the mean predicted absolute error, RMSE the root
of the mean predicted squared error. The loss models themselves are fitted in the engine
(:mod:`retrainer.engine.monitoring.estimate`); this module takes their predictions.

**Sampling interval.** The estimate is of the *expected* metric; the realized metric on ``n``
rows scatters around it. The interval is where the realized metric falls 95% of the time if
the assumptions hold (no concept drift, calibrated probabilities / an unbiased loss model):

- accuracy: exact variance of a sum of independent Bernoullis, ``sum c_i (1 - c_i) / n**2``
  (``c_i`` the probability that row ``i`` is right), normal approximation;
- F1 and ROC AUC: the delta method on the same model (labels ``y ~ Bernoulli(p)``, the
  predictions and scores fixed): F1 as a ratio of independent Bernoulli sums, ROC AUC through
  its rank-sum form; normal approximation (no random draws: ``O(n log n)``);
- MAE: ``Var|e_i| = E[e_i^2] - E[|e_i|]^2`` from the two loss models; RMSE: the delta method
  with ``Var(e_i^2) = 2 E[e_i^2]^2`` (a normal error with that variance).

Unlike NannyML (three standard errors of the realized metric over reference chunks of the same
size) it needs no reference chunks and follows the chunk's own rows.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> p = rng.uniform(size=5000)  # calibrated: y is drawn from p
>>> y = (rng.uniform(size=p.size) < p).astype(int)
>>> est = estimate_classification(p, metrics=("accuracy", "f1", "roc_auc"))
>>> acc, truth = est["accuracy"], np.mean((p >= 0.5) == y)
>>> round(acc.value, 3), bool(acc.low < truth < acc.high)
(0.751, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "Estimate",
    "estimate_classification",
    "estimate_regression",
    "expected_accuracy",
    "expected_f1",
    "expected_roc_auc",
]

CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc")
REGRESSION_METRICS = ("mae", "rmse")
_Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True, kw_only=True)
class Estimate:
    """One estimated metric with its 95% sampling interval ``[low, high]``.

    ``value`` is None (with ``status="undefined"``) when the metric has no value on these rows
    (ROC AUC when every calibrated probability is 0 or 1 for one class only).

    Examples
    --------
    >>> Estimate(metric="accuracy", value=0.9, low=0.88, high=0.92, n=1000).to_dict()["high"]
    0.92
    """

    metric: str
    value: float | None
    low: float | None
    high: float | None
    n: int
    status: str = "ok"
    method: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON data (NaN-free)."""

        def f(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else float(x)

        return {
            "metric": self.metric,
            "value": f(self.value),
            "low": f(self.low),
            "high": f(self.high),
            "n": self.n,
            "status": self.status,
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Estimate:
        """Read back :meth:`to_dict`."""
        return cls(**data)


def _probs(p: ArrayLike) -> NDArray[np.float64]:
    out: NDArray[np.float64] = np.asarray(p, dtype=float).ravel()
    if out.size and out.min() >= 0.0 and out.max() <= 1.0:  # the usual case (NaN fails it): no copy
        return out
    if np.isnan(out).any():
        raise ValueError("calibrated probabilities must not be NaN")
    return np.clip(out, 0.0, 1.0)


def _labels(p: NDArray[np.float64], y_pred: ArrayLike | None, threshold: float) -> NDArray[Any]:
    if y_pred is None:
        return (p >= threshold).astype(float)
    yhat = np.asarray(y_pred).ravel()
    if yhat.shape != p.shape:
        raise ValueError(f"y_pred has {yhat.size} rows, the probabilities {p.size}")
    out: NDArray[Any] = np.equal(yhat, 1).astype(float)  # 1: predicted positive, else negative
    return out


def expected_accuracy(p: ArrayLike, y_pred: ArrayLike | None = None) -> float:
    """Expected accuracy of 0/1 predictions ``y_pred`` (default ``p >= 0.5``).

    Examples
    --------
    >>> round(expected_accuracy([0.9, 0.2, 0.6]), 4)  # predicted 1, 0, 1: right w.p. .9, .8, .6
    0.7667
    """
    pr = _probs(p)
    yhat = _labels(pr, y_pred, 0.5)
    return float(np.mean(np.where(yhat == 1, pr, 1 - pr))) if pr.size else math.nan


def expected_f1(p: ArrayLike, y_pred: ArrayLike | None = None) -> float:
    """F1 of the expected confusion matrix (NaN when nothing is predicted or expected positive).

    Examples
    --------
    >>> round(expected_f1([0.9, 0.2, 0.6]), 4)  # TP 1.5, FP 0.5, FN 0.2
    0.8108
    """
    pr = _probs(p)
    yhat = _labels(pr, y_pred, 0.5)
    tp = float(pr @ yhat)
    fp = float((1 - pr) @ yhat)
    fn = float(pr @ (1 - yhat))
    denom = 2 * tp + fp + fn
    return 2 * tp / denom if denom > 0 else math.nan


def _tie_ends(s_sorted: NDArray[np.float64]) -> NDArray[np.bool_]:
    """True at the last row of each run of equal values of a sorted array."""
    ends: NDArray[np.bool_] = np.empty(s_sorted.size, dtype=bool)
    np.not_equal(s_sorted[1:], s_sorted[:-1], out=ends[:-1])  # (np.r_ costs 10 us a call)
    ends[-1:] = True
    return ends


def expected_roc_auc(
    p: ArrayLike, score: ArrayLike | None = None, *, order: NDArray[np.intp] | None = None
) -> float:
    """Area under the expected ROC curve of ``score`` (default: ``p`` itself).

    At each distinct score threshold the expected true and false positives are the sums of
    ``p`` and ``1 - p`` over the rows at or above it (ties move together). ``order``: the
    ascending argsort of ``score``, when the caller has it.

    Examples
    --------
    >>> expected_roc_auc([0.0, 1.0, 0.0, 1.0])  # certain labels: the plain ROC AUC
    1.0
    >>> round(expected_roc_auc([0.9, 0.7, 0.4, 0.1]), 4)
    0.8383
    """
    pr = _probs(p)
    s = pr if score is None else np.asarray(score, dtype=float).ravel()
    pos, neg = pr.sum(), (1 - pr).sum()
    if pos <= 0 or neg <= 0:
        return math.nan
    desc = (np.argsort(s, kind="stable") if order is None else order)[::-1]
    tp = np.cumsum(pr[desc])
    fp = np.arange(1, pr.size + 1) - tp  # the cumulative sum of 1 - p
    # keep the last row of each tie group: a threshold admits all tied rows at once
    last = _tie_ends(s[desc])
    tpr = np.r_[0.0, tp[last] / pos]
    fpr = np.r_[0.0, fp[last] / neg]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _f1_se(predicted: float, a: float, b: float, var_a: float, var_b: float) -> tuple[float, float]:
    """Expected F1 and the delta-method standard error of the realized F1 when
    ``y ~ Bernoulli(p)``.

    ``F1 = 2A / (P + A + B)`` with ``P`` the predicted positives (fixed), ``A`` the positives
    among them and ``B`` the positives among the rest (independent sums of Bernoullis, of
    means ``a``, ``b`` and variances ``var_a``, ``var_b``).
    """
    d = predicted + a + b
    if d <= 0:
        return math.nan, math.nan
    da = 2 * (predicted + b) / d**2
    db = -2 * a / d**2
    return 2 * a / d, math.sqrt(max(da**2 * var_a + db**2 * var_b, 0.0))


def _sorted_auc_se(
    p: NDArray[np.float64], s: NDArray[np.float64], v: NDArray[np.float64], pos: float
) -> tuple[float, float]:
    """Expected ROC AUC and the delta-method standard error of the realized one, from ``p``,
    ``score`` and ``v = p (1 - p)`` in ascending score order (``pos``: the sum of ``p``).

    The curve and the rank sums run over tie groups (a threshold admits a whole group; tied
    rows share their average rank), so a score with few distinct values costs little.
    ``AUC = (S - m (m + 1) / 2) / (m (n - m))`` (rank-sum form) with ``S = sum r_i y_i`` and
    ``m = sum y_i``; the variance of ``(S, m)`` is exact, the ratio linearised at its mean.
    """
    n = p.size
    neg = n - pos
    if pos <= 0 or neg <= 0:
        return math.nan, math.nan
    ends = np.flatnonzero(_tie_ends(s))
    if ends.size == n:  # no ties (a continuous score): every row is its own group
        pg, vg = p, v
        rank = above = np.arange(1.0, n + 1)
    else:
        starts = np.empty_like(ends)
        starts[0], starts[1:] = 0, ends[:-1] + 1
        pg, vg = np.add.reduceat(p, starts), np.add.reduceat(v, starts)
        rank = (starts + ends) / 2 + 1
        above = (n - starts)[::-1].astype(float)  # rows at or above each descending threshold
    # expected ROC, thresholds descending; trapezoids from the origin (0, 0)
    tpr = np.cumsum(pg[::-1]) / pos
    fpr = (above - tpr * pos) / neg
    auc = float(fpr[0] * tpr[0] + np.diff(fpr) @ (tpr[1:] + tpr[:-1])) / 2
    rv = rank * vg
    big_s, var_s, var_m, cov = float(rank @ pg), float(rv @ rank), float(vg.sum()), float(rv.sum())
    denom = pos * neg
    g_s = 1 / denom
    numer = big_s - pos * (pos + 1) / 2
    g_m = (-(pos + 0.5) * denom - numer * (neg - pos)) / denom**2
    var = g_s**2 * var_s + g_m**2 * var_m + 2 * g_s * g_m * cov
    return auc, math.sqrt(max(var, 0.0))


def _threshold(key: NDArray[np.float64], s: NDArray[np.float64], yhat: NDArray[np.bool_]) -> int:
    """The number of rows before the predicted positives in ascending ``key`` order ``s``
    (``np.sort(key)``) when the predictions are a threshold on ``key`` (every row at or above
    some value positive, every row below negative, no tie across); else -1."""
    k = s.size - int(np.count_nonzero(yhat))
    if k in (0, s.size):
        return k
    if not s[k - 1] < s[k]:
        return -1
    # the rows at or above s[k] are exactly n - k: the threshold holds if yhat covers them all
    return k if int(np.count_nonzero(yhat & (key >= s[k]))) == s.size - k else -1


@dataclass(frozen=True, slots=True)
class _Sums:
    """What every metric reads: ``p`` and ``v = p (1 - p)`` (in ascending score order when
    ``s``, the sorted score, is set) and their sums over all rows and the predicted positives."""

    p: NDArray[np.float64]
    v: NDArray[np.float64]
    s: NDArray[np.float64] | None
    pos: float
    a: float
    predicted: float
    var_all: float
    var_a: float


def _sorted_sums(
    key: NDArray[np.float64], calibration: Any, y_pred: ArrayLike | None
) -> _Sums | None:
    """The sums from the rows sorted by ``key`` (the score, or ``p`` itself) with ``p`` a
    non-decreasing function of it: one value sort (SIMD, no permutation), the calibration
    map applied to the sorted scores (its binary search then hits its guess), and the
    predicted positives a suffix. None when ``y_pred`` is not a threshold on ``key``."""
    s = np.sort(key)
    pr = s if calibration is None else np.asarray(calibration(s), dtype=float).ravel()
    if pr.shape != s.shape:
        raise ValueError(f"the calibration returned {pr.size} values for {s.size} scores")
    if not (pr[0] >= 0.0 and pr[-1] <= 1.0):  # sorted: the ends bound it (NaN fails it)
        pr = _probs(pr)
    if y_pred is None:
        k = int(np.searchsorted(pr, 0.5, side="left"))  # p >= 0.5, a suffix of sorted p
    else:
        yhat = np.asarray(y_pred).ravel()
        if yhat.shape != key.shape:
            raise ValueError(f"y_pred has {yhat.size} rows, the probabilities {key.size}")
        k = _threshold(key, s, np.equal(yhat, 1))
        if k < 0:
            return None
    v = pr * (1 - pr)
    return _Sums(
        p=pr,
        v=v,
        s=s,
        pos=float(pr.sum()),
        a=float(pr[k:].sum()),
        predicted=float(s.size - k),
        var_all=float(v.sum()),
        var_a=float(v[k:].sum()),
    )


def _permuted_sums(
    pr: NDArray[np.float64], yhat: NDArray[Any], s: NDArray[np.float64] | None
) -> _Sums:
    """The sums in any row order: sorted by ``s`` through an argsort when ``s`` is set."""
    if s is not None:
        order = np.argsort(s)  # ties are summed as groups: their order does not matter
        pr, s, yhat = pr[order], s[order], yhat[order]
    v = pr * (1 - pr)  # the variance of each label; also of "row i is predicted right"
    return _Sums(
        p=pr,
        v=v,
        s=s,
        pos=float(pr.sum()),
        a=float(pr @ yhat),
        predicted=float(yhat.sum()),
        var_all=float(v.sum()),
        var_a=float(v @ yhat),
    )


def estimate_classification(
    p: ArrayLike | None = None,
    *,
    y_pred: ArrayLike | None = None,
    score: ArrayLike | None = None,
    calibration: Callable[[NDArray[np.float64]], ArrayLike] | None = None,
    metrics: Sequence[str] = CLASSIFICATION_METRICS,
) -> dict[str, Estimate]:
    """CBPE: each metric of ``metrics`` estimated from calibrated probabilities ``p``.

    ``y_pred`` are the model's 0/1 predictions (default ``p >= 0.5``); ``score`` ranks the rows
    for ROC AUC (default ``p``; isotonic calibration is monotone, so the raw score ranks them
    as the model does). Instead of ``p``, give ``score`` and ``calibration``, a
    non-decreasing map from score to probability (an isotonic fit): the same estimate,
    faster (one sort of the scores, no permutation, when ``y_pred`` is a threshold on the
    score as a classifier's predictions are). See the module docstring for the intervals.

    Examples
    --------
    >>> est = estimate_classification([0.9, 0.8, 0.1, 0.2] * 50, metrics=("accuracy",))
    >>> e = est["accuracy"]
    >>> round(e.value, 3), round(e.low, 3), round(e.high, 3), e.n
    (0.85, 0.801, 0.899, 200)
    >>> calibrate = lambda s: np.interp(s, [0.0, 1.0], [0.1, 0.9])  # a monotone map
    >>> score = np.linspace(0.0, 1.0, 101)
    >>> by_map = estimate_classification(score=score, calibration=calibrate)
    >>> by_p = estimate_classification(calibrate(score), score=score)
    >>> round(by_map["roc_auc"].value, 12) == round(by_p["roc_auc"].value, 12)
    True
    """
    unknown = sorted(set(metrics) - set(CLASSIFICATION_METRICS))
    if unknown:
        raise ValueError(
            f"CBPE estimates {', '.join(CLASSIFICATION_METRICS)}; got {', '.join(unknown)}"
        )
    if calibration is not None:
        if p is not None or score is None:
            raise ValueError("give calibrated probabilities p, or a score with its calibration")
        key = np.asarray(score, dtype=float).ravel()
    elif p is None:
        raise ValueError("calibrated probabilities p are needed (or a score and its calibration)")
    else:
        key = _probs(p) if score is None else np.asarray(score, dtype=float).ravel()
    n = key.size
    if n == 0:
        return {
            m: Estimate(metric=m, value=None, low=None, high=None, n=0, status="insufficient_data")
            for m in metrics
        }
    sums: _Sums | None = None
    if calibration is not None or (score is None and "roc_auc" in metrics):
        sums = _sorted_sums(key, calibration, y_pred)
    if sums is None:
        if calibration is not None:
            pr = _probs(np.asarray(calibration(key), dtype=float))
        else:
            assert p is not None  # checked above: p, or a score with its calibration
            pr = key if score is None else _probs(p)
            if pr.shape != key.shape:
                raise ValueError(f"score has {key.size} rows, the probabilities {pr.size}")
        ranked = key if "roc_auc" in metrics else None
        sums = _permuted_sums(pr, _labels(pr, y_pred, 0.5), ranked)
    # every metric from these sums over the rows (and, for ROC AUC, the sorted arrays)
    pos, a, predicted, var_all, var_a = sums.pos, sums.a, sums.predicted, sums.var_all, sums.var_a
    out: dict[str, Estimate] = {}
    for m in metrics:
        if m == "accuracy":
            # mean of p where predicted positive, of 1 - p elsewhere
            value = (n - pos - predicted + 2 * a) / n
            half = _Z95 * math.sqrt(var_all) / n
            out[m] = Estimate(
                metric=m,
                value=value,
                low=max(0.0, value - half),
                high=min(1.0, value + half),
                n=n,
                method="cbpe; exact binomial variance",
            )
            continue
        if m == "f1":
            value, se = _f1_se(predicted, a, pos - a, var_a, var_all - var_a)
        else:
            assert sums.s is not None
            value, se = _sorted_auc_se(sums.p, sums.s, sums.v, pos)
        ok = math.isfinite(value) and math.isfinite(se)
        low, high = max(0.0, value - _Z95 * se), min(1.0, value + _Z95 * se)
        out[m] = Estimate(
            metric=m,
            value=value if ok else None,
            low=low if ok else None,
            high=high if ok else None,
            n=n,
            status="ok" if ok else "undefined",
            method="cbpe; delta method",
        )
    return out


def estimate_regression(
    abs_error: ArrayLike,
    sq_error: ArrayLike,
    *,
    metrics: Sequence[str] = REGRESSION_METRICS,
) -> dict[str, Estimate]:
    """DLE: MAE and RMSE from the loss models' predicted absolute and squared errors per row.

    Examples
    --------
    >>> import numpy as np
    >>> sigma = np.full(10_000, 2.0)  # normal errors, sd 2: E|e| = 2 sqrt(2/pi), E e^2 = 4
    >>> est = estimate_regression(sigma * np.sqrt(2 / np.pi), sigma**2)
    >>> round(est["mae"].value, 3), round(est["rmse"].value, 3)
    (1.596, 2.0)
    >>> round(est["rmse"].high - est["rmse"].low, 3)
    0.055
    """
    unknown = sorted(set(metrics) - set(REGRESSION_METRICS))
    if unknown:
        raise ValueError(f"DLE estimates mae, rmse; got {', '.join(unknown)}")
    a = np.maximum(np.asarray(abs_error, dtype=float).ravel(), 0.0)
    q = np.maximum(np.asarray(sq_error, dtype=float).ravel(), 0.0)
    n = a.size
    out: dict[str, Estimate] = {}
    for m in metrics:
        if n == 0:
            out[m] = Estimate(
                metric=m, value=None, low=None, high=None, n=0, status="insufficient_data"
            )
            continue
        if m == "mae":
            value = float(a.mean())
            half = _Z95 * math.sqrt(float(np.sum(np.maximum(q - a**2, 0.0)))) / n
            low, high = max(0.0, value - half), value + half
            method = "dle; variance E[e^2] - E[|e|]^2"
        else:
            mse = float(q.mean())
            value = math.sqrt(mse)
            se_mse = math.sqrt(float(np.sum(2 * q**2))) / n
            half = _Z95 * se_mse / (2 * value) if value > 0 else 0.0
            low, high = max(0.0, value - half), value + half
            method = "dle; delta method, normal errors"
        out[m] = Estimate(metric=m, value=value, low=low, high=high, n=n, method=method)
    return out
