"""Two-sample statistics for drift: distances (PSI, Jensen-Shannon, L-infinity, Wasserstein)
and tests (chi-square, Kolmogorov-Smirnov, binned or exact) with their p-values, and the
family-wise correction of many p-values (Holm, Bonferroni).

Each takes a reference and a current sample (raw values, or counts over the same bins) and
is pure: :mod:`retrainer.core.drift` applies them column by column against a profile.

Statistics
----------
Binned statistics take two count (or proportion) vectors over the same bins; the check feeds
them the reference :class:`~retrainer.core.profile.Profile`'s quantile bins (numeric) or the
union of categories (categorical). Raw-sample versions exist where users ask for them.

============================  ==========================================================  =====
function                      what it is                                                  range
============================  ==========================================================  =====
:func:`ks_binned`             two-sample Kolmogorov-Smirnov on binned counts: ``D`` and   [0,1]
                              its p-value (conservative: the CDFs are compared at the
                              bin edges only)
:func:`ks_exact`              :func:`scipy.stats.ks_2samp` on raw samples (exact p-value  [0,1]
                              up to 10,000 rows, asymptotic above)
:func:`chi_square`            chi-square test of homogeneity on the 2 x K table (both     >= 0
                              windows are samples), cells with an expected count below 5
                              pooled
:func:`psi`                   population stability index, empty bins set to 1e-4         >= 0
:func:`jensen_shannon`        Jensen-Shannon distance, base 2                             [0,1]
:func:`l_infinity`            largest absolute change of one bin's (category's) share     [0,1]
:func:`wasserstein`           Wasserstein-1 on raw samples divided by the reference's     >= 0
                              standard deviation (or IQR on request)
:func:`wasserstein_binned`    the same from bin counts (linear CDF inside each bin)       >= 0
============================  ==========================================================  =====
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from retrainer.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray
else:
    from retrainer.core._lazy_numpy import np

__all__ = [
    "StatResult",
    "adjust_p_values",
    "chi_square",
    "jensen_shannon",
    "ks_binned",
    "ks_exact",
    "l_infinity",
    "psi",
    "wasserstein",
    "wasserstein_binned",
]

Correction = Literal["holm", "bonferroni", "none"]

_PSI_EPS = 1e-4


def _scipy_stats() -> Any:
    # imported when a test runs: loading a config validates a DriftCheck, and the CLI's read
    # commands load the config without running any test
    from scipy import stats

    return stats


def _scipy_special() -> Any:
    from scipy import special

    return special


_KSTWO_MAX_N = 2000  # above it, Stephens' form of the asymptotic law (scipy's kstwo gets slow)


class StatResult(NamedTuple):
    """A test statistic and its p-value."""

    statistic: float
    p_value: float


# --- statistics -----------------------------------------------------------------------------


def _counts(values: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise DataError(f"{name} must be a 1-D vector of counts; got shape {arr.shape}")
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise DataError(f"{name} must be finite, non-negative counts; got {arr.tolist()[:10]}")
    if arr.sum() <= 0:
        raise DataError(f"{name} is empty (all counts are 0): nothing to compare")
    return arr


def _pair(reference: ArrayLike, current: ArrayLike) -> tuple[NDArray[np.float64], ...]:
    r = _counts(reference, "reference")
    c = _counts(current, "current")
    if r.shape != c.shape:
        raise DataError(
            f"reference and current need the same bins; got {r.size} and {c.size} counts"
        )
    return r, c


def psi(reference: ArrayLike, current: ArrayLike, *, eps: float = _PSI_EPS) -> float:
    """Population stability index ``sum((c - r) * ln(c / r))`` over bin shares.

    Shares of exactly 0 are replaced by ``eps`` (as Evidently does), so a bin empty on one
    side contributes a large but finite amount.

    Examples
    --------
    >>> round(psi([50, 50], [40, 60]), 5)
    0.04055
    >>> psi([1, 2, 3], [10, 20, 30])
    0.0
    """
    r, c = _pair(reference, current)
    p = r / r.sum()
    q = c / c.sum()
    p = np.where(p == 0, eps, p)
    q = np.where(q == 0, eps, q)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(reference: ArrayLike, current: ArrayLike) -> float:
    """Jensen-Shannon distance (square root of the divergence) in base 2: 0 same, 1 disjoint.

    Equal to ``scipy.spatial.distance.jensenshannon(reference, current, base=2)``.

    Examples
    --------
    >>> jensen_shannon([1, 0], [0, 1])
    1.0
    >>> round(jensen_shannon([50, 50], [40, 60]), 4)
    0.0854
    """
    r, c = _pair(reference, current)
    p = r / r.sum()
    q = c / c.sum()
    m = (p + q) / 2
    js = (_scipy_special().rel_entr(p, m).sum() + _scipy_special().rel_entr(q, m).sum()) / (
        2 * math.log(2)
    )
    return float(math.sqrt(max(float(js), 0.0)))


def l_infinity(reference: ArrayLike, current: ArrayLike) -> float:
    """Largest absolute difference between one bin's shares (Chebyshev distance).

    Examples
    --------
    >>> round(l_infinity([50, 30, 20], [40, 30, 30]), 3)
    0.1
    """
    r, c = _pair(reference, current)
    return float(np.max(np.abs(r / r.sum() - c / c.sum())))


def chi_square(
    reference: ArrayLike, current: ArrayLike, *, min_expected: float = 5.0
) -> StatResult:
    """Chi-square test of homogeneity of two count vectors (a 2 x K contingency table).

    Both windows are treated as samples (``scipy.stats.chi2_contingency`` without continuity
    correction), not the reference as the truth, so a small reference does not inflate the
    statistic. Bins empty in both windows are dropped; bins whose expected count is below
    ``min_expected`` in either row are pooled into one, where the chi-square approximation
    would otherwise fail (``min_expected=0`` pools nothing).

    Examples
    --------
    >>> res = chi_square([100, 100, 100], [100, 100, 160])
    >>> round(res.statistic, 3), round(res.p_value, 4)
    (8.462, 0.0145)
    """
    r, c = _pair(reference, current)
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    nr, nc = r.sum(), c.sum()
    total = nr + nc
    col = r + c
    small = np.minimum(col * nr / total, col * nc / total) < min_expected
    if small.any():
        r = np.append(r[~small], r[small].sum())
        c = np.append(c[~small], c[small].sum())
        col = r + c
    dof = r.size - 1
    if dof < 1:
        return StatResult(0.0, 1.0)
    er = col * nr / total
    ec = col * nc / total
    stat = float(np.sum((r - er) ** 2 / er) + np.sum((c - ec) ** 2 / ec))
    return StatResult(stat, float(_scipy_stats().chi2.sf(stat, dof)))


def _ks_p_value(d: float, n_ref: float, n_cur: float) -> float:
    """Two-sided asymptotic p-value of the two-sample KS statistic, as scipy's ``asymp``.

    Up to an effective size ``n*m/(n+m)`` of 2000 this is scipy's own ``kstwo.sf(d, round(en))``;
    above it, Stephens' approximation ``kstwobign.sf((sqrt(en) + 0.12 + 0.11/sqrt(en)) * d)``,
    within 1% of it and thousands of times faster at a million rows.
    """
    en = n_ref * n_cur / (n_ref + n_cur)
    if en <= _KSTWO_MAX_N:
        p = float(_scipy_stats().kstwo.sf(d, max(round(en), 1)))
    else:
        s = math.sqrt(en)
        p = float(_scipy_stats().kstwobign.sf((s + 0.12 + 0.11 / s) * d))
    return min(max(p, 0.0), 1.0)


def ks_binned(reference: ArrayLike, current: ArrayLike) -> StatResult:
    """Two-sample Kolmogorov-Smirnov test on counts over the same ordered bins.

    ``D`` is the largest difference of the two empirical CDFs at the bin edges, which is at
    most the raw samples' ``D``, so the test is conservative: it never flags more than the exact
    test on the same data. With one bin per distinct value it equals
    ``scipy.stats.ks_2samp(ref, cur, method="asymp")``.

    Examples
    --------
    >>> res = ks_binned([30, 40, 30], [10, 40, 50])
    >>> round(res.statistic, 3), round(res.p_value, 4)
    (0.2, 0.0314)
    """
    r, c = _pair(reference, current)
    nr, nc = float(r.sum()), float(c.sum())
    d = float(np.max(np.abs(np.cumsum(r) / nr - np.cumsum(c) / nc)))
    return StatResult(d, _ks_p_value(d, nr, nc))


def _finite_sample(values: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64).ravel()
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        raise DataError(f"{name} has no non-missing values: nothing to compare")
    return arr


def ks_exact(reference: ArrayLike, current: ArrayLike) -> StatResult:
    """Two-sample KS test on raw samples (NaN dropped): :func:`scipy.stats.ks_2samp`.

    scipy computes the exact p-value up to 10,000 rows per sample and the asymptotic one above.

    Examples
    --------
    >>> res = ks_exact([1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0, np.nan])
    >>> res.statistic, round(res.p_value, 4)
    (0.5, 0.7714)
    """
    r = _finite_sample(reference, "reference")
    c = _finite_sample(current, "current")
    with warnings.catch_warnings():
        # scipy warns when it falls back from the exact to the asymptotic p-value
        warnings.simplefilter("ignore", RuntimeWarning)
        res = _scipy_stats().ks_2samp(r, c, method="auto")
    return StatResult(float(res.statistic), float(res.pvalue))


def _scale(reference: NDArray[np.float64], scale: str) -> float:
    if scale == "std":
        return float(np.std(reference))
    if scale == "iqr":
        return float(_scipy_stats().iqr(reference))
    raise ConfigError(f"scale must be 'std' or 'iqr'; got {scale!r}")


def wasserstein(
    reference: ArrayLike, current: ArrayLike, *, scale: Literal["std", "iqr"] = "std"
) -> float:
    """Wasserstein-1 distance of raw samples divided by the reference's spread.

    ``scale="std"`` divides by the reference's standard deviation (as Evidently does, so its
    0.1 threshold carries over: 0.1 is a shift of a tenth of a standard deviation);
    ``scale="iqr"`` by its interquartile range, robust to outliers. A reference with zero
    spread gives the raw distance. NaN values are dropped; infinite values are not allowed.

    Examples
    --------
    >>> round(wasserstein([0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]), 4)  # 1 / std 1.118
    0.8944
    """
    r = _finite_sample(reference, "reference")
    c = _finite_sample(current, "current")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(c))):
        raise DataError("wasserstein needs finite values; drop or clip infinities first")
    w = float(_scipy_stats().wasserstein_distance(r, c))
    s = _scale(r, scale)
    return w / s if s > 0 else w


def _abs_linear_integral(
    d0: NDArray[np.float64], d1: NDArray[np.float64], width: NDArray[np.float64]
) -> float:
    """Sum over pieces of the integral of ``|d|`` for ``d`` linear from ``d0`` to ``d1``."""
    a0, a1 = np.abs(d0), np.abs(d1)
    same = d0 * d1 >= 0
    denom = np.where(same, 1.0, a0 + a1)
    crossing = (d0**2 + d1**2) / (2 * denom)
    return float(np.sum(width * np.where(same, (a0 + a1) / 2, crossing)))


def wasserstein_binned(
    boundaries: ArrayLike,
    reference: ArrayLike,
    current: ArrayLike,
    *,
    scale: float | None = None,
) -> float:
    """Approximate Wasserstein-1 distance from counts over bins with known boundaries.

    ``boundaries`` ``b0 < b1 < ... < bk`` delimit the bins ``(-inf, b0)``, ``[b0, b1]``,
    ``(b1, b2]``, ..., ``(bk, +inf)``, so there is one more count than boundaries. Inside each
    bin values are taken as spread uniformly (both CDFs linear); the outer bins' mass sits at
    ``b0`` and ``bk``, so values beyond the boundaries count as if they were on them (the
    result is then a lower bound). The result is divided by ``scale`` when given and > 0.

    Examples
    --------
    >>> wasserstein_binned([0.0, 1.0, 2.0], [0, 10, 0, 0], [0, 0, 10, 0])
    1.0
    >>> wasserstein_binned([0.0, 1.0, 2.0], [0, 10, 0, 0], [0, 0, 10, 0], scale=0.5)
    2.0
    """
    b = np.asarray(boundaries, dtype=np.float64)
    r, c = _pair(reference, current)
    if b.ndim != 1 or r.size != b.size + 1:
        raise DataError(f"{b.size} boundaries need {b.size + 1} counts per window; got {r.size}")
    if b.size < 2:
        return 0.0
    # CDFs at every boundary, the lower outer bin included: piece i runs from b_i to b_i+1
    d = (np.cumsum(r) / r.sum() - np.cumsum(c) / c.sum())[: b.size]
    w = _abs_linear_integral(d[:-1], d[1:], np.diff(b))
    if scale is not None and scale > 0:
        return w / scale
    return w


def adjust_p_values(p_values: ArrayLike, method: Correction = "holm") -> NDArray[np.float64]:
    """Adjust a family of p-values for multiple testing; NaN entries stay NaN, outside it.

    ``"holm"``: Holm's step-down method; ``"bonferroni"``: multiply by the family size;
    ``"none"``: unchanged. Adjusted values are capped at 1. Rejecting where the adjusted value
    is at most ``alpha`` keeps the probability of any false rejection under ``alpha``.

    Examples
    --------
    >>> adjust_p_values([0.01, 0.04, 0.03, 0.005]).round(3).tolist()
    [0.03, 0.06, 0.06, 0.02]
    >>> adjust_p_values([0.01, 0.04, 0.03, 0.005], "bonferroni").round(3).tolist()
    [0.04, 0.16, 0.12, 0.02]
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise DataError(f"p_values must be 1-D; got shape {p.shape}")
    valid = ~np.isnan(p)
    if np.any((p[valid] < 0) | (p[valid] > 1)):
        raise DataError(f"p-values must lie in [0, 1]; got {p[valid].tolist()}")
    out = p.copy()
    pv = p[valid]
    m = pv.size
    if method == "none" or m == 0:
        return out
    if method == "bonferroni":
        out[valid] = np.minimum(pv * m, 1.0)
    elif method == "holm":
        order = np.argsort(pv, kind="stable")
        stepped = np.maximum.accumulate((m - np.arange(m)) * pv[order])
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(stepped, 1.0)
        out[valid] = adjusted
    else:
        raise ConfigError(f"correction must be 'holm', 'bonferroni' or 'none'; got {method!r}")
    return out
