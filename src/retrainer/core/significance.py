"""Paired tests of a candidate against the champion on the same holdout rows.

The blessing gate's significance rules (:mod:`retrainer.core.blessing_significance`) ask one
directional question: is the candidate's *improvement* ``d`` (positive = better, in the metric's
direction) above ``-margin``? ``margin=0`` asks "significantly better", ``margin>0`` asks
"significantly not worse than the champion minus the margin" (non-inferiority). Every test here
is one-sided at level ``alpha`` and returns a :class:`TestResult` with the point estimate, the
one-sided p-value and the two-sided ``1 - 2 alpha`` confidence interval of ``d`` (its lower
bound is the one-sided ``1 - alpha`` bound the decision reads):

- :func:`mcnemar`: accuracy (or error rate) from per-row correctness. ``margin=0``: McNemar's
  exact test, a binomial test on the discordant pairs; ``margin>0``: Tango's (1998) score test
  for a paired difference of proportions. The interval is Tango's score interval.
- :func:`delong`: ROC AUC of two scores of the same rows, DeLong et al. (1988) variance by the
  fast midrank algorithm of Sun & Xu (2014), O(n log n).
- :func:`paired_t`: a paired t-test on per-row improvements (champion's loss - candidate's
  loss): log loss, Brier score, MAE, MSE, whose value is a mean of per-row losses.
- :func:`paired_bootstrap`: a seeded paired bootstrap of any statistic of the rows (RMSE,
  F1, custom metrics): the same resampled rows score both models.

When the difference has zero variance (identical per-row losses, identical AUC components), the
difference is taken as known exactly: the p-value is 0 when ``d > -margin`` and 1 otherwise.

Examples
--------
>>> import numpy as np
>>> cand = np.array([True] * 30 + [False] * 5 + [True] * 60)
>>> champ = np.array([False] * 30 + [True] * 5 + [True] * 60)
>>> r = mcnemar(cand, champ)
>>> r.test, round(r.estimate, 4), f"{r.p_value:.2e}"
('McNemar exact', 0.2632, '1.12e-05')
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray
else:
    from retrainer.core._lazy_numpy import np

__all__ = [
    "HoldoutRows",
    "TestResult",
    "delong",
    "delong_components",
    "mcnemar",
    "paired_bootstrap",
    "paired_t",
    "tango_z",
]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class HoldoutRows:
    """One model's answers on each holdout row: what a paired test needs.

    Parameters
    ----------
    y_true
        The holdout's labels (or targets), 1-D.
    y_pred
        The model's predictions, 1-D, aligned with ``y_true``.
    y_score
        Predicted probabilities (1-D positive-class column, or ``(n, k)``), None without them.

    Examples
    --------
    >>> rows = HoldoutRows(y_true=np.array([0, 1]), y_pred=np.array([0, 0]))
    >>> len(rows)
    2
    """

    y_true: NDArray[Any]
    y_pred: NDArray[Any]
    y_score: NDArray[Any] | None = None

    def __len__(self) -> int:
        return len(self.y_true)


@dataclass(frozen=True, slots=True, kw_only=True)
class TestResult:
    """The outcome of one paired test of ``improvement > -margin``.

    ``low``/``high`` bound the two-sided ``1 - 2 alpha`` interval of the improvement; ``detail``
    says what the test counted (discordant pairs, rows, resamples).
    """

    __test__ = False  # not a pytest test class

    test: str
    estimate: float
    p_value: float
    low: float
    high: float
    n: int
    detail: str = ""


def _z(alpha: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1.0 - alpha))


def _deterministic(estimate: float, margin: float) -> float:
    return 0.0 if estimate > -margin else 1.0


# --- McNemar / Tango --------------------------------------------------------------------------


def tango_z(b: int, c: int, n: int, delta0: float) -> float:
    """Tango's score statistic for ``H0: (b - c) / n = delta0`` on paired binary outcomes.

    ``b`` counts rows where only the candidate is right, ``c`` rows where only the champion is;
    the variance uses the maximum-likelihood estimate of ``P(c)`` under the null (a quadratic's
    root). With ``delta0 = 0`` it is McNemar's ``(b - c) / sqrt(b + c)``.

    Examples
    --------
    >>> round(tango_z(30, 10, 200, 0.0), 6) == round(20 / math.sqrt(40), 6)
    True
    """
    a_ = 2.0 * n
    b_ = -b - c + (2.0 * n - b + c) * delta0
    c_ = -c * delta0 * (1.0 - delta0)
    q21 = (math.sqrt(max(b_ * b_ - 4.0 * a_ * c_, 0.0)) - b_) / (2.0 * a_)
    var = n * (2.0 * q21 + delta0 * (1.0 - delta0))
    diff = b - c - n * delta0
    if var <= 0.0:
        return math.copysign(math.inf, diff) if diff else 0.0
    return diff / math.sqrt(var)


def _tango_interval(b: int, c: int, n: int, z: float) -> tuple[float, float]:
    from scipy.optimize import brentq

    eps = 1e-12

    def solve(target: float) -> float:
        def f(d: float) -> float:  # decreasing in d
            return tango_z(b, c, n, d) - target

        lo, hi = -1.0 + eps, 1.0 - eps
        if f(lo) < 0:  # no difference is extreme enough: the bound is the range's end
            return lo
        if f(hi) > 0:
            return hi
        return float(brentq(f, lo, hi, xtol=1e-12))

    return solve(z), solve(-z)


def mcnemar(
    candidate_correct: ArrayLike,
    champion_correct: ArrayLike,
    *,
    margin: float = 0.0,
    alpha: float = 0.05,
) -> TestResult:
    """Test whether the candidate's accuracy exceeds the champion's minus ``margin``.

    ``margin=0``: McNemar's exact test, one-sided (``P(X >= b)``, ``X ~ Binomial(b + c, 1/2)``
    on the discordant pairs); ``margin>0``: Tango's score test (asymptotic normal), since the
    conditional binomial does not hold under a non-zero null difference. The interval is Tango's
    score interval in both cases.

    Examples
    --------
    >>> cand = np.array([1, 1, 1, 0, 1, 1, 1, 1], dtype=bool)
    >>> r = mcnemar(cand, np.array([0, 0, 1, 1, 1, 1, 1, 1], dtype=bool))
    >>> r.estimate, r.p_value, r.detail
    (0.125, 0.5, 'b=2, c=1 discordant of 8')
    >>> mcnemar(cand, cand).p_value  # no discordant pairs: nothing speaks for the candidate
    1.0
    """
    from scipy.stats import binom, norm

    cand = np.asarray(candidate_correct, dtype=bool)
    champ = np.asarray(champion_correct, dtype=bool)
    n = len(cand)
    b = int(np.count_nonzero(cand & ~champ))
    c = int(np.count_nonzero(~cand & champ))
    estimate = (b - c) / n if n else math.nan
    detail = f"b={b}, c={c} discordant of {n}"
    if margin == 0:
        test = "McNemar exact"
        p = float(binom.sf(b - 1, b + c, 0.5)) if b + c else 1.0
    else:
        test = "Tango score"
        p = float(norm.sf(tango_z(b, c, n, -margin)))
    low, high = _tango_interval(b, c, n, _z(alpha))
    return TestResult(
        test=test, estimate=estimate, p_value=min(p, 1.0), low=low, high=high, n=n, detail=detail
    )


# --- DeLong -----------------------------------------------------------------------------------


def delong_components(
    positive: ArrayLike, scores: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """AUCs and DeLong's structural components of ``k`` scores of the same rows.

    ``scores`` is ``(k, n)`` (or 1-D for one model). Returns ``(auc[k], v10[k, m], v01[k, l])``
    for the ``m`` positive and ``l`` negative rows, from midranks (Sun & Xu 2014): the placement
    of each positive among the negatives and of each negative among the positives, ties half.

    Examples
    --------
    >>> auc, v10, v01 = delong_components([1, 1, 0, 0], [0.9, 0.4, 0.4, 0.1])
    >>> auc.tolist(), v10.tolist(), v01.tolist()
    ([0.875], [[1.0, 0.75]], [[0.75, 1.0]])
    """
    from scipy.stats import rankdata

    pos = np.asarray(positive, dtype=bool)
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    x, y = s[:, pos], s[:, ~pos]
    m, n = x.shape[1], y.shape[1]
    tx = rankdata(x, axis=1)
    ty = rankdata(y, axis=1)
    tz = rankdata(np.concatenate([x, y], axis=1), axis=1)
    auc = tz[:, :m].sum(axis=1) / (m * n) - (m + 1.0) / (2.0 * n)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return auc, v10, v01


def delong(
    positive: ArrayLike,
    candidate_score: ArrayLike,
    champion_score: ArrayLike,
    *,
    margin: float = 0.0,
    alpha: float = 0.05,
) -> TestResult:
    """DeLong's test of ``AUC(candidate) - AUC(champion) > -margin`` on the same rows.

    ``positive`` marks the positive rows; both classes must be present (the caller checks).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.random(400) < 0.5
    >>> good, weak = y + rng.normal(0, 0.6, 400), y + rng.normal(0, 1.2, 400)
    >>> r = delong(y, good, weak)
    >>> r.test, r.estimate > 0, r.p_value < 0.01, r.low < r.estimate < r.high
    ('DeLong', True, True, True)
    """
    from scipy.stats import norm

    pos = np.asarray(positive, dtype=bool)
    auc, v10, v01 = delong_components(pos, np.vstack([candidate_score, champion_score]))
    m, n = v10.shape[1], v01.shape[1]
    s10, s01 = np.cov(v10), np.cov(v01)
    cov = s10 / m + s01 / n
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    estimate = float(auc[0] - auc[1])
    se = math.sqrt(max(var, 0.0))
    detail = f"{m} positive, {n} negative rows"
    if se <= 1e-15:
        p, low, high = _deterministic(estimate, margin), estimate, estimate
    else:
        p = float(norm.sf((estimate + margin) / se))
        half = _z(alpha) * se
        low, high = estimate - half, estimate + half
    return TestResult(
        test="DeLong", estimate=estimate, p_value=p, low=low, high=high, n=m + n, detail=detail
    )


# --- losses: paired t and paired bootstrap ----------------------------------------------------


def paired_t(improvement: ArrayLike, *, margin: float = 0.0, alpha: float = 0.05) -> TestResult:
    """A one-sided paired t-test of ``mean(improvement) > -margin``.

    ``improvement`` holds one value per row: the champion's loss minus the candidate's (for a
    metric that is a mean of per-row losses, its mean is the metric's improvement).

    Examples
    --------
    >>> r = paired_t([0.2, 0.1, 0.4, -0.1, 0.3])
    >>> r.test, round(r.estimate, 3), round(r.p_value, 4)
    ('paired t', 0.18, 0.0523)
    >>> round(paired_t([0.2, 0.1, 0.4, -0.1, 0.3], margin=0.05).p_value, 4)  # not worse by 0.05
    0.0278
    """
    from scipy.stats import t as student

    d = np.asarray(improvement, dtype=float)
    n = len(d)
    estimate = float(d.mean()) if n else math.nan
    if n < 2:
        return TestResult(
            test="paired t", estimate=estimate, p_value=math.nan, low=math.nan, high=math.nan,
            n=n, detail=f"{n} row(s): at least 2 are needed",
        )  # fmt: skip
    se = float(d.std(ddof=1)) / math.sqrt(n)
    detail = f"{n} rows, {n - 1} degrees of freedom"
    if se <= 1e-15 * max(1.0, abs(estimate)):
        p, low, high = _deterministic(estimate, margin), estimate, estimate
    else:
        p = float(student.sf((estimate + margin) / se, n - 1))
        half = float(student.ppf(1.0 - alpha, n - 1)) * se
        low, high = estimate - half, estimate + half
    return TestResult(
        test="paired t", estimate=estimate, p_value=p, low=low, high=high, n=n, detail=detail
    )


def paired_bootstrap(
    statistic: Callable[[NDArray[np.intp]], NDArray[np.float64]],
    n: int,
    *,
    margin: float = 0.0,
    alpha: float = 0.05,
    resamples: int = 2000,
    seed: int | None = 0,
    block_cells: int = 2_000_000,
) -> TestResult:
    """A seeded paired bootstrap of an improvement statistic of ``n`` rows.

    ``statistic(index)`` takes a ``(b, n)`` matrix of row indices (one resample per line) and
    returns the ``b`` improvements (candidate vs champion on the same resampled rows); the
    identity resample gives the estimate. The p-value is ``(1 + #{d* <= -margin}) / (B + 1)``
    and the interval the ``alpha`` and ``1 - alpha`` percentiles, so the decision agrees with
    the interval's lower bound. Resamples are drawn in blocks of about ``block_cells`` indices.

    Examples
    --------
    >>> d = np.array([0.2, 0.1, 0.4, -0.1, 0.3] * 20)
    >>> r = paired_bootstrap(lambda idx: d[idx].mean(axis=1), len(d), resamples=999)
    >>> r.test, round(r.estimate, 3), r.p_value, r.low > 0
    ('paired bootstrap', 0.18, 0.001, True)
    """
    estimate = float(statistic(np.arange(n)[None, :])[0])
    rng = np.random.default_rng(seed)
    block = max(1, min(resamples, block_cells // max(n, 1)))
    draws: list[NDArray[np.float64]] = []
    done = 0
    while done < resamples:
        size = min(block, resamples - done)
        draws.append(np.asarray(statistic(rng.integers(0, n, size=(size, n))), dtype=float))
        done += size
    boot = np.concatenate(draws)
    boot = boot[~np.isnan(boot)]
    kept = len(boot)
    detail = f"{n} rows, {kept} resamples, seed {seed}"
    if kept == 0:
        return TestResult(
            test="paired bootstrap", estimate=estimate, p_value=math.nan, low=math.nan,
            high=math.nan, n=n, detail=detail,
        )  # fmt: skip
    p = (1.0 + np.count_nonzero(boot <= -margin)) / (kept + 1.0)
    low, high = (float(v) for v in np.quantile(boot, [alpha, 1.0 - alpha]))
    return TestResult(
        test="paired bootstrap",
        estimate=estimate,
        p_value=float(p),
        low=low,
        high=high,
        n=n,
        detail=detail,
    )
