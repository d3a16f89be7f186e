"""The statistics of a backtest: how retraining policies compare when history is replayed.

A backtest replays the same history through several retraining policies. Each policy yields a
per-batch series of a metric (accuracy per day, say), the rows of each batch, the number of
retrains and the training CPU seconds. This module turns those series into the figures a
report shows; it reads no files and no clock.

=============================  ==============================================================
function                       what it gives
=============================  ==============================================================
:func:`pooled`                 the metric over all rows of the batches (a row-weighted mean)
:func:`paired_bootstrap`       policy A minus policy B on the same batches, with a
                               percentile-bootstrap interval over batches (:class:`Difference`)
:func:`pareto_front`           the policies that no other is both cheaper and better than
:func:`degradation_curve`      how a frozen model's metric decays with its age, against the
                               always-retrained control (:class:`DegradationCurve`)
:func:`select_policy`          the policy to recommend, chosen on the first part of history
                               (:class:`Candidate` in, :class:`Selection` out)
:func:`recommend`              the backtest's rules around it: which policies may be chosen,
                               the reason, the always-retrained control
                               (:class:`PolicyFigures` in, :class:`Recommendation` out)
=============================  ==============================================================

Points
------
Differences are reported in metric *points*: one point is 0.01 of the metric, one accuracy
percentage point (an accuracy going from 0.80 to 0.81 gains one point). ``tolerance`` in
:func:`select_policy`, ``points`` in :meth:`DegradationCurve.age_at_loss` and
``per_metric_point`` in :class:`CostModel` all use that unit.

Why batches are the resampling unit
-----------------------------------
Rows of one batch share a day, a data distribution and a model, so they are not independent:
resampling rows would make every interval far too narrow. Batches are the independent-ish unit,
and both policies are scored on the same batches, so :func:`paired_bootstrap` resamples the
per-batch *differences*, which removes the day-to-day variation both policies share. The
statistic is weighted by rows, so it equals the difference of the pooled metrics whenever the
metric is a mean over rows (accuracy, log loss, MAE, MSE). Batches next to each other may
still be correlated; the interval is then somewhat too narrow, which is why a report should
read "within noise" as "not shown to differ", not as "equal".

Selecting on one part, reporting on the rest
--------------------------------------------
Picking the best of many policies on a history and then reporting its score on that same
history overstates it (the winner's curse). :func:`select_policy` is meant to see only the
first part of history; the report then shows every policy on the remaining part, where the
choice was not made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from retrainer.errors import ConfigError, DataError

__all__ = [
    "Candidate",
    "CostModel",
    "DegradationCurve",
    "Difference",
    "PolicyFigures",
    "Recommendation",
    "Selection",
    "degradation_curve",
    "exclusion",
    "paired_bootstrap",
    "pareto_front",
    "pooled",
    "recommend",
    "reference",
    "select_policy",
]

_CHUNK_ELEMENTS = 1 << 20
"""Bootstrap indices drawn at once (4 MiB of int32 indices, 8 MiB of gathered values): bounds
memory for long histories. Chunking does not change the draws: a seed gives the same interval."""
_EPS = 1e-12
"""Absolute slack for comparisons of metric differences against a threshold in points, so that
0.90 - 0.88 counts as 2 points despite floating-point rounding."""


# --- cost model ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CostModel:
    """What a retrain, a CPU second and a metric point are worth, in one currency.

    Parameters
    ----------
    per_retrain
        Cost of one retrain (deployment, review, risk), beyond its CPU time.
    per_cpu_second
        Cost of one second of training CPU time.
    per_metric_point
        Value of one metric point. A point is 0.01 of the metric: one accuracy percentage
        point, so an accuracy of 0.7795 is worth ``77.95 * per_metric_point``.

    Examples
    --------
    >>> cost = CostModel(per_retrain=0.1, per_cpu_second=0.5, per_metric_point=1.0)
    >>> cost.is_set
    True
    >>> round(cost.net_value(0.7795, retrains=21, cpu_s=1.2), 6)
    75.25
    >>> round(cost.net_value(0.35, retrains=0, cpu_s=0.0, greater_is_better=False), 6)
    -35.0
    >>> CostModel().is_set
    False
    """

    per_retrain: float = 0.0
    per_cpu_second: float = 0.0
    per_metric_point: float = 0.0

    def __post_init__(self) -> None:
        for name in ("per_retrain", "per_cpu_second", "per_metric_point"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"CostModel.{name} must be a finite number >= 0; got {value!r}")

    @property
    def is_set(self) -> bool:
        """True when any price is nonzero (an all-zero cost model prices nothing)."""
        return bool(self.per_retrain or self.per_cpu_second or self.per_metric_point)

    def net_value(
        self, metric: float, retrains: int, cpu_s: float, *, greater_is_better: bool = True
    ) -> float:
        """The value of the metric's points minus the cost of retrains and CPU time.

        ``sign * 100 * metric * per_metric_point - per_retrain * retrains -
        per_cpu_second * cpu_s``, where ``sign`` is -1 for a lower-is-better metric (each point
        of loss costs ``per_metric_point``). Only differences of net values between policies on
        the same history mean anything.
        """
        sign = 1.0 if greater_is_better else -1.0
        return float(
            sign * 100.0 * metric * self.per_metric_point
            - self.per_retrain * retrains
            - self.per_cpu_second * cpu_s
        )


# --- input helpers ---------------------------------------------------------------------------


def _vector(values: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise DataError(f"{name} must be a 1-D vector; got shape {arr.shape}")
    return arr


def _weights(weights: ArrayLike, n: int, name: str = "weights") -> NDArray[np.float64]:
    arr = _vector(weights, name)
    if arr.shape != (n,):
        raise DataError(f"{name} must have one entry per batch ({n}); got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise DataError(f"{name} must be finite and >= 0 (rows per batch); got {arr[:10]}")
    return arr


def _check_bootstrap(n_boot: int, confidence: float) -> None:
    if n_boot < 1:
        raise ConfigError(f"n_boot must be at least 1; got {n_boot}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be strictly between 0 and 1; got {confidence}")


def _boot_means(
    rng: np.random.Generator,
    x: NDArray[np.float64],
    w: NDArray[np.float64] | None,
    n_boot: int,
) -> NDArray[np.float64]:
    """``n_boot`` (weighted) means of ``x`` resampled with replacement, in bounded chunks."""
    n = x.shape[0]
    wx = x if w is None else w * x
    out = np.empty(n_boot, dtype=np.float64)
    rows = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n), dtype=np.int32)
        num = wx[idx].sum(axis=1)
        out[start:stop] = num / n if w is None else num / w[idx].sum(axis=1)
    return out


def _interval(boot: NDArray[np.float64], confidence: float) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates."""
    alpha = 1.0 - confidence
    low, high = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def _percent(confidence: float) -> str:
    return f"{confidence * 100:g}%"


# --- pooled metric ---------------------------------------------------------------------------


def pooled(values: ArrayLike, weights: ArrayLike) -> float:
    """The weighted mean of per-batch values, leaving out NaN values and zero weights.

    With per-batch accuracy (log loss, MAE, MSE) as ``values`` and rows per batch as
    ``weights`` this is the metric over all the batches' rows pooled together. NaN when no
    batch is left.

    Examples
    --------
    >>> pooled([0.9, 0.8, float("nan")], [100, 300, 50])
    0.825
    >>> pooled([0.9], [0])
    nan
    """
    v = _vector(values, "values")
    w = _weights(weights, v.shape[0])
    keep = ~np.isnan(v) & (w > 0)
    if not keep.any():
        return math.nan
    return float(np.dot(v[keep], w[keep]) / w[keep].sum())


# --- paired comparison -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Difference:
    """A difference of a metric between two policies, with its bootstrap interval.

    Parameters
    ----------
    mean
        The row-weighted mean of ``a - b`` over the batches both policies were scored on.
    low, high
        The percentile-bootstrap interval of ``mean`` (NaN with fewer than two batches).
    confidence
        The interval's confidence level (0.95).
    n_batches
        The batches compared.

    Examples
    --------
    >>> d = Difference(mean=0.0123, low=0.0080, high=0.0166, confidence=0.95, n_batches=60)
    >>> d.significant
    True
    >>> d.describe("weekly", "never")
    'weekly beats never by 1.23 points (95% CI 0.80 to 1.66)'
    >>> d.describe("weekly", "never", points=False)
    'weekly beats never by 0.0123 (95% CI 0.008 to 0.0166)'
    >>> Difference(0.0005, -0.002, 0.0035, 0.95, 60).describe("weekly", "never")
    'weekly and never are within noise (-0.20 to 0.35 points, 95% CI)'
    """

    mean: float
    low: float
    high: float
    confidence: float
    n_batches: int

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0 (False when there is no interval)."""
        return bool(self.low > 0 or self.high < 0)

    def describe(
        self,
        a: str,
        b: str,
        *,
        points: bool = True,
        greater_is_better: bool = True,
        relative_to: float | None = None,
    ) -> str:
        """One sentence on how policy ``a`` compares with policy ``b``.

        ``points=True`` reports in metric points (the difference times 100: for rates in
        [0, 1] only), else in the metric's own units, followed by the difference relative to
        ``relative_to`` (``b``'s value) when given. The difference is ``a - b``; with
        ``greater_is_better=False`` (a loss) a negative difference means ``a`` beats ``b``.

        Examples
        --------
        >>> d = Difference(mean=0.02, low=0.01, high=0.03, confidence=0.9, n_batches=30)
        >>> d.describe("A", "B", greater_is_better=False)
        'A is worse than B by 2.00 points (90% CI 1.00 to 3.00)'
        >>> Difference(0.02, math.nan, math.nan, 0.95, 1).describe("A", "B")
        'A - B = 2.00 points on 1 batch (too few batches for an interval)'
        >>> Difference(-16.69, -20.41, -13.06, 0.95, 90).describe(
        ...     "A", "never", points=False, greater_is_better=False, relative_to=135.2)
        'A beats never by 16.69 (12.3%) (95% CI 13.06 to 20.41)'
        """
        scale, unit = (100.0, " points") if points else (1.0, "")

        def fmt(x: float) -> str:
            return f"{x * scale:.2f}" if points else f"{x:.4g}"

        rel = ""
        if not points and relative_to is not None and math.isfinite(relative_to) and relative_to:
            rel = f" ({abs(self.mean) / abs(relative_to):.1%})"

        if self.n_batches == 0 or math.isnan(self.mean):
            return f"{a} and {b} have no batch in common to compare"
        if math.isnan(self.low) or math.isnan(self.high):
            plural = "" if self.n_batches == 1 else "es"
            return (
                f"{a} - {b} = {fmt(self.mean)}{unit} on {self.n_batches} batch{plural}"
                " (too few batches for an interval)"
            )
        # gain: how much better a is than b, in the metric's direction
        if greater_is_better:
            gain, low, high = self.mean, self.low, self.high
        else:
            gain, low, high = -self.mean, -self.high, -self.low
        level = _percent(self.confidence)
        if low > 0:
            return f"{a} beats {b} by {fmt(gain)}{unit}{rel} ({level} CI {fmt(low)} to {fmt(high)})"
        if high < 0:
            return (
                f"{a} is worse than {b} by {fmt(-gain)}{unit}{rel}"
                f" ({level} CI {fmt(-high)} to {fmt(-low)})"
            )
        return f"{a} and {b} are within noise ({fmt(low)} to {fmt(high)}{unit}, {level} CI)"


def paired_bootstrap(
    a: ArrayLike,
    b: ArrayLike,
    weights: ArrayLike,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Difference:
    """The row-weighted mean difference ``a - b`` of two policies on the same batches.

    ``a`` and ``b`` hold one metric value per batch, for the same batches in the same order;
    ``weights`` holds the batches' rows. Batches where either value is NaN, or whose weight is
    0, are left out. The interval is the percentile bootstrap: the batches are resampled with
    replacement ``n_boot`` times (``numpy.random.Generator(PCG64(seed))``, so a seed gives the
    same interval every time) and the weighted mean difference recomputed on each resample.
    With fewer than two batches the bounds are NaN and the difference is not significant.

    Examples
    --------
    >>> a = [0.80, 0.82, 0.79, 0.85, 0.81, 0.83]
    >>> b = [0.78, 0.80, 0.78, 0.82, 0.80, 0.80]
    >>> d = paired_bootstrap(a, b, [100, 120, 90, 110, 100, 100])
    >>> round(d.mean, 4), d.n_batches, d.significant
    (0.0203, 6, True)
    >>> d.describe("A", "B")
    'A beats B by 2.03 points (95% CI 1.37 to 2.66)'
    """
    _check_bootstrap(n_boot, confidence)
    x = _vector(a, "a")
    y = _vector(b, "b")
    if x.shape != y.shape:
        raise DataError(f"a and b must cover the same batches; got {x.shape[0]} and {y.shape[0]}")
    w = _weights(weights, x.shape[0])
    keep = ~np.isnan(x) & ~np.isnan(y) & (w > 0)
    d, w = (x - y)[keep], w[keep]
    n = int(d.shape[0])
    if n == 0:
        return Difference(math.nan, math.nan, math.nan, confidence, 0)
    mean = float(np.dot(d, w) / w.sum())
    if n < 2:
        return Difference(mean, math.nan, math.nan, confidence, n)
    rng = np.random.Generator(np.random.PCG64(seed))
    low, high = _interval(_boot_means(rng, d, w, n_boot), confidence)
    return Difference(mean, low, high, confidence, n)


# --- Pareto front ----------------------------------------------------------------------------


def pareto_front(
    costs: ArrayLike, scores: ArrayLike, *, greater_is_better: bool = True
) -> list[int]:
    """Indices of the points that no other point dominates, by cost ascending.

    A point dominates another when it costs no more and scores no worse, and is strictly
    better on one of the two (lower cost; higher score, or lower when ``greater_is_better`` is
    False). Points with equal cost and score are all on the front, in index order. Points with
    a NaN score or cost are never on it. Sorting makes it O(n log n).

    Examples
    --------
    >>> pareto_front([1.0, 2.0, 2.5, 3.0], [0.70, 0.80, 0.75, 0.85])
    [0, 1, 3]
    >>> pareto_front([1.0, 2.0, 3.0], [0.5, 0.4, 0.3], greater_is_better=False)
    [0, 1, 2]
    """
    c = _vector(costs, "costs")
    s = _vector(scores, "scores")
    if c.shape != s.shape:
        raise DataError(f"costs and scores must have the same length; got {c.shape} and {s.shape}")
    valid = np.flatnonzero(~np.isnan(c) & ~np.isnan(s))
    if valid.size == 0:
        return []
    good = s[valid] if greater_is_better else -s[valid]  # higher is better from here on
    cost = c[valid]
    order = np.lexsort((-good, cost))  # cost ascending, then best score first; stable
    cost, good, idx = cost[order], good[order], valid[order]
    new_group = np.empty(cost.shape[0], dtype=bool)
    new_group[0] = True
    new_group[1:] = cost[1:] != cost[:-1]
    group = np.cumsum(new_group) - 1
    group_best = good[new_group]  # the first of each equal-cost group has its best score
    before = np.empty_like(group_best)  # best score at any strictly lower cost
    before[0] = -np.inf
    before[1:] = np.maximum.accumulate(group_best)[:-1]
    first = group == 0
    on_front = (good == group_best[group]) & ((group_best[group] > before[group]) | first)
    return [int(i) for i in idx[on_front]]


# --- degradation -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DegradationCurve:
    """A frozen model's metric by age, over models, against the always-retrained control.

    Parameters
    ----------
    ages
        The ages kept (batches since training; 0 is the first batch after training), ascending.
    mean
        At each age, the mean over models of their metric at that age.
    low, high
        The percentile-bootstrap interval of ``mean`` (models resampled).
    n_models
        The models scored at each age (at least 3).
    control
        The metric of an always-retrained model: by default the mean at age 0.

    Examples
    --------
    >>> curve = DegradationCurve(
    ...     ages=(0, 1, 2, 3, 4), mean=(0.90, 0.885, 0.895, 0.87, 0.86),
    ...     low=(0.89, 0.87, 0.88, 0.86, 0.85), high=(0.91, 0.90, 0.91, 0.88, 0.87),
    ...     n_models=(5, 5, 4, 4, 3), control=0.90)
    >>> curve.age_at_loss(1.0)  # age 1 lost 1.5 points, but age 2 only 0.5
    3
    >>> curve.age_at_loss(5.0) is None
    True
    """

    ages: tuple[int, ...]
    mean: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    n_models: tuple[int, ...]
    control: float

    def age_at_loss(self, points: float, *, greater_is_better: bool = True) -> int | None:
        """The first age from which the mean has lost ``points`` points against the control.

        The loss must persist: the answer is the first age ``a`` such that the mean at ``a``
        and at the next age kept (if there is one) are both worse than ``control`` by at least
        ``points / 100`` in metric units. Reads the mean, not the interval. None when that
        never happens (or the control is NaN).
        """
        if math.isnan(self.control):
            return None
        threshold = points / 100.0
        means = np.asarray(self.mean, dtype=np.float64)
        loss = self.control - means if greater_is_better else means - self.control
        lost = loss >= threshold - _EPS  # NaN compares False
        persists = lost.copy()
        persists[:-1] &= lost[1:]
        hits = np.flatnonzero(persists)
        return int(self.ages[hits[0]]) if hits.size else None


def degradation_curve(
    model_ids: ArrayLike,
    ages: ArrayLike,
    values: ArrayLike,
    weights: ArrayLike,
    *,
    control: float | None = None,
    max_age: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> DegradationCurve:
    """How the metric of a model that is never retrained decays with its age.

    The inputs are flat, one entry per (frozen model, batch it was scored on): the model's id,
    its age at that batch in batches since training (0 is the first batch after training), its
    metric on the batch and the batch's rows. Entries with a NaN value or 0 rows are left
    out, and so are ages above ``max_age``. A model's value at an age is its metric on that
    batch (were a model scored twice at one age, the row-weighted mean of the two).

    The mean at an age weighs every model scored at that age equally, so that a model scored on
    many batches does not dominate; its interval is the percentile bootstrap over those models
    (``numpy.random.Generator(PCG64(seed))``, ages drawn in ascending order). Ages with fewer
    than 3 models are dropped. ``control`` defaults to the mean at age 0 over every model
    scored at age 0: a model trained just before each batch is the always-retrained control
    (NaN when no model was).

    Examples
    --------
    >>> ids = [m for m in range(4) for _ in range(3)]
    >>> ages = [0, 1, 2] * 4
    >>> values = [0.9 - 0.01 * a + 0.001 * m for m, a in zip(ids, ages)]
    >>> curve = degradation_curve(ids, ages, values, [100] * 12)
    >>> curve.ages, [round(m, 4) for m in curve.mean], curve.n_models
    ((0, 1, 2), [0.9015, 0.8915, 0.8815], (4, 4, 4))
    >>> curve.age_at_loss(2.0)
    2
    """
    _check_bootstrap(n_boot, confidence)
    ids = np.asarray(model_ids)
    age = np.asarray(ages)
    v = _vector(values, "values")
    n = v.shape[0]
    if ids.shape != (n,) or age.shape != (n,):
        raise DataError(
            "model_ids, ages, values and weights must be 1-D with one entry each; got shapes "
            f"{ids.shape}, {age.shape}, {v.shape}"
        )
    w = _weights(weights, n)
    if n and not np.issubdtype(age.dtype, np.integer):
        as_float = age.astype(np.float64)
        if not np.all(np.isfinite(as_float)) or np.any(as_float != np.round(as_float)):
            raise DataError("ages must be whole numbers of batches")
    age = age.astype(np.int64)
    if np.any(age < 0):
        raise DataError(f"ages must be >= 0 (0 is the first batch after training); got {age.min()}")

    keep = ~np.isnan(v) & (w > 0)
    if max_age is not None:
        keep &= age <= max_age
    ids, age, v, w = ids[keep], age[keep], v[keep], w[keep]
    if v.shape[0] == 0:
        return DegradationCurve((), (), (), (), (), math.nan if control is None else control)

    _, model = np.unique(ids, return_inverse=True)
    age_values, age_index = np.unique(age, return_inverse=True)
    n_models = int(model.max()) + 1
    # one value per (age, model) pair; pairs come out sorted by age, then model
    pairs, pair_index = np.unique(age_index * n_models + model, return_inverse=True)
    value = np.bincount(pair_index, weights=w * v) / np.bincount(pair_index, weights=w)
    pair_age = pairs // n_models
    counts = np.bincount(pair_age, minlength=age_values.shape[0])
    sums = np.bincount(pair_age, weights=value, minlength=age_values.shape[0])
    if control is None:
        control = float(sums[0] / counts[0]) if age_values[0] == 0 else math.nan

    starts = np.concatenate(([0], np.cumsum(counts)))
    rng = np.random.Generator(np.random.PCG64(seed))
    kept_ages: list[int] = []
    means: list[float] = []
    lows: list[float] = []
    highs: list[float] = []
    kept_counts: list[int] = []
    for i in np.flatnonzero(counts >= 3):
        models_at_age = value[starts[i] : starts[i + 1]]
        low, high = _interval(_boot_means(rng, models_at_age, None, n_boot), confidence)
        kept_ages.append(int(age_values[i]))
        means.append(float(sums[i] / counts[i]))
        lows.append(low)
        highs.append(high)
        kept_counts.append(int(counts[i]))
    return DegradationCurve(
        tuple(kept_ages), tuple(means), tuple(lows), tuple(highs), tuple(kept_counts), control
    )


# --- selection -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """A policy's figures on the selection part of history.

    Parameters
    ----------
    name
        The policy's name.
    score
        The primary metric on the selection part (pooled over its rows); NaN if undefined.
    retrains
        The retrains it made on the selection part.
    cpu_s
        The training CPU seconds it spent on the selection part.
    """

    name: str
    score: float
    retrains: int
    cpu_s: float

    def __post_init__(self) -> None:
        if self.retrains < 0:
            raise DataError(f"candidate {self.name!r}: retrains must be >= 0; got {self.retrains}")
        if not math.isfinite(self.cpu_s) or self.cpu_s < 0:
            raise DataError(
                f"candidate {self.name!r}: cpu_s must be finite and >= 0; got {self.cpu_s}"
            )


@dataclass(frozen=True, slots=True)
class Selection:
    """The recommended policy, why, and which rule chose it (``"cost"`` or ``"tolerance"``)."""

    name: str
    reason: str
    rule: str


def _score_text(score: float, greater_is_better: bool) -> str:
    """77.95% for a score in [0, 1] that grows with quality, else four significant digits."""
    if greater_is_better and 0.0 <= score <= 1.0:
        return f"{score * 100:.2f}%"
    return f"{score:.4g}"


def _cpu_text(cpu_s: float) -> str:
    return f"{cpu_s:.3g}" if cpu_s < 100 else f"{cpu_s:,.0f}"


def select_policy(
    candidates: Sequence[Candidate],
    *,
    greater_is_better: bool = True,
    tolerance: float = 0.5,
    cost: CostModel | None = None,
    cpu_tolerance: float = 0.25,
) -> Selection:
    """Choose a policy from its figures on the selection part of history.

    With a :class:`CostModel` that prices anything (``rule="cost"``): the candidate with the
    highest :meth:`CostModel.net_value`; ties go to the better score, then fewer CPU seconds,
    then the name. Otherwise (``rule="tolerance"``): among the candidates whose score is within
    ``tolerance`` points (``tolerance / 100`` in metric units) of the best score, the cheapest.
    Measured CPU seconds move from run to run, so those within ``cpu_tolerance`` (a fraction:
    0.25 is 25%) of the fewest count as the same cost; among them the fewest retrains win
    (a count, not a measurement), then the better score, then the name. The recommendation
    does not then flip between two policies whose CPU seconds differ by timer noise.
    Candidates whose score is NaN (or infinite) are never chosen.

    Raises
    ------
    DataError
        (a ``ValueError``) when there is no candidate, or none has a finite score.

    Examples
    --------
    >>> cands = [Candidate("daily", 0.7795, 849, 2.5), Candidate("drift", 0.7760, 21, 1.2),
    ...          Candidate("never", 0.7010, 0, 0.0)]
    >>> sel = select_policy(cands)
    >>> sel.name, sel.rule
    ('drift', 'tolerance')
    >>> import textwrap
    >>> print(textwrap.fill(sel.reason, 88))
    cheapest policy within 0.5 points of the best on the selection part (best: daily at
    77.95%; this: 77.60% with 1.2 CPU s and 21 retrains against 2.5 CPU s and 849)
    >>> select_policy(cands, cost=CostModel(per_retrain=0.01, per_metric_point=1.0)).name
    'drift'
    """
    if not candidates:
        raise DataError("no candidate policies to select from")
    finite = [c for c in candidates if math.isfinite(c.score)]
    if not finite:
        names = ", ".join(c.name for c in candidates)
        raise DataError(
            f"no candidate has a finite score on the selection part ({names}); was the "
            "selection part empty, or every batch unscored?"
        )
    sign = 1.0 if greater_is_better else -1.0

    if cost is not None and cost.is_set:

        def net(c: Candidate) -> float:
            return cost.net_value(c.score, c.retrains, c.cpu_s, greater_is_better=greater_is_better)

        ranked = sorted(finite, key=lambda c: (-net(c), -sign * c.score, c.cpu_s, c.name))
        best = ranked[0]
        value_part = sign * 100.0 * best.score * cost.per_metric_point
        reason = (
            f"highest net value on the selection part: {net(best):.2f} = "
            f"{value_part:.2f} for {_score_text(best.score, greater_is_better)} - "
            f"{cost.per_retrain * best.retrains:.2f} for {best.retrains} retrains - "
            f"{cost.per_cpu_second * best.cpu_s:.2f} for {_cpu_text(best.cpu_s)} CPU s"
        )
        if len(ranked) > 1:
            reason += f" (next: {ranked[1].name} at {net(ranked[1]):.2f})"
        return Selection(best.name, reason, "cost")

    if not math.isfinite(tolerance) or tolerance < 0:
        raise ConfigError(f"tolerance must be a finite number of points >= 0; got {tolerance}")
    if not math.isfinite(cpu_tolerance) or cpu_tolerance < 0:
        raise ConfigError(f"cpu_tolerance must be a finite fraction >= 0; got {cpu_tolerance}")
    top = min(finite, key=lambda c: (-sign * c.score, c.cpu_s, c.retrains, c.name))
    eligible = [c for c in finite if sign * (top.score - c.score) <= tolerance / 100.0 + _EPS]
    fewest = min(c.cpu_s for c in eligible)
    cheapest = [c for c in eligible if c.cpu_s <= fewest * (1.0 + cpu_tolerance) + _EPS]
    chosen = min(cheapest, key=lambda c: (c.retrains, -sign * c.score, c.cpu_s, c.name))
    within = f"{tolerance:g} points"
    this = (
        f"{_score_text(chosen.score, greater_is_better)} with {_cpu_text(chosen.cpu_s)} CPU s "
        f"and {chosen.retrains} retrains"
    )
    if chosen is top:
        reason = (
            f"best policy on the selection part, and none within {within} of it is cheaper ({this})"
        )
    else:
        reason = (
            f"cheapest policy within {within} of the best on the selection part (best: "
            f"{top.name} at {_score_text(top.score, greater_is_better)}; this: {this} against "
            f"{_cpu_text(top.cpu_s)} CPU s and {top.retrains})"
        )
    if chosen.cpu_s > fewest + _EPS:
        others = sorted(c.name for c in cheapest if c is not chosen)
        reason += (
            f"; CPU seconds within {cpu_tolerance:.0%} of the fewest ({_cpu_text(fewest)}) count "
            f"as the same cost, and among them it comes first by retrains, then score (also: "
            f"{', '.join(others)})"
        )
    return Selection(chosen.name, reason, "tolerance")


# --- the backtest's recommendation ------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyFigures:
    """What the recommendation rules read of one replayed policy.

    Scores are the primary metric pooled over the part's rows (NaN when undefined); the
    ``*_selection`` figures count the selection part only.
    """

    name: str
    has_triggers: bool
    """False for a baseline: a policy that never retrains."""
    online: bool
    """True for a policy that learns from the new rows only (window kind ``new``)."""
    score: float
    """On the whole replay."""
    score_selection: float
    retrains: int
    retrains_selection: int
    cpu_s_selection: float
    watched_selection: int
    """Selection batches at which the policy's trigger judged its signal."""
    folds: tuple[float, ...] = ()
    """The score on each consecutive fold of the selection part (robust selection)."""
    score_held_out: float = math.nan
    retrains_held_out: int = 0
    cpu_s_held_out: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Recommendation:
    """The recommended policy, why, each policy's exclusion, and the always-retrain control."""

    name: str
    rule: str
    reason: str
    excluded: tuple[str | None, ...]
    """Per policy, in order: ``"untested"`` or None (it could be chosen)."""
    oracle: str
    """The always-retrain reference: of the batch policies that retrain most often (online
    ones aside), the best on the held-out part (the best window retrained every batch)."""
    regrets: tuple[float | None, ...] = ()
    """Per policy, its regret over the selection folds (None: not a candidate or no folds)."""
    best: str | None = None
    """The candidate with the least regret over the folds (None without folds)."""


def exclusion(
    figures: PolicyFigures, *, selection_batches: int, recommend_baselines: bool = False
) -> str | None:
    """Why ``figures`` may not be recommended: ``"untested"`` or None.

    A policy without triggers (never retraining) is a candidate like any other: "don't
    retrain" is a valid answer, and the cheapest. A policy whose trigger neither fired nor
    judged its signal on at least half the selection part is untested (a metric or
    concept-drift trigger whose look-back held no label yet under the delay): what was
    measured there is its first model, not the policy. A trigger that watched and did not
    fire was tested: it judged that nothing called for a retrain. ``recommend_baselines``
    lifts that exclusion.

    Examples
    --------
    >>> f = PolicyFigures(name="drift", has_triggers=True, online=False, score=0.8,
    ...     score_selection=0.8, retrains=0, retrains_selection=0, cpu_s_selection=0.0,
    ...     watched_selection=2)
    >>> exclusion(f, selection_batches=10), exclusion(f, selection_batches=4)
    ('untested', None)
    """
    if recommend_baselines or not figures.has_triggers:
        return None
    if figures.retrains_selection == 0 and 2 * figures.watched_selection < selection_batches:
        return "untested"
    return None


def recommend(
    policies: Sequence[PolicyFigures],
    *,
    selection_batches: int,
    greater_is_better: bool = True,
    tolerance: float = 0.5,
    cost: CostModel | None = None,
    cpu_tolerance: float = 0.25,
    recommend_baselines: bool = False,
    points: bool = True,
    criterion: str = "mean",
) -> Recommendation:
    """The policy a backtest recommends, chosen on the selection part only.

    The policies that :func:`exclusion` lets through compete (all of them when none is left).
    With a :class:`CostModel` that prices anything, or without fold scores, the choice is
    :func:`select_policy`'s on the whole selection part. Otherwise (``rule="folds"``) it is
    :func:`~retrainer.core.selection.select_on_folds`'s: the cheapest policy whose ``criterion``
    regret over the folds is within ``tolerance`` (points, or % for a loss when ``points`` is
    False) of the least. The reason says when "don't retrain" is the answer, and when the
    chosen trigger never fired on the selection part.

    Examples
    --------
    >>> def figures(name, score, retrains, triggers=True):
    ...     return PolicyFigures(name=name, has_triggers=triggers, online=False, score=score,
    ...         score_selection=score, retrains=retrains, retrains_selection=retrains,
    ...         cpu_s_selection=retrains * 0.1, watched_selection=0, folds=(score, score),
    ...         score_held_out=score, retrains_held_out=retrains)
    >>> rec = recommend([figures("never", 0.7, 0, triggers=False), figures("daily", 0.8, 9),
    ...     figures("weekly", 0.799, 2)], selection_batches=10)
    >>> rec.name, rec.rule, rec.excluded, rec.oracle
    ('weekly', 'folds', (None, None, None), 'daily')
    >>> rec = recommend([figures("never", 0.798, 0, triggers=False), figures("daily", 0.8, 9)],
    ...     selection_batches=10)
    >>> rec.name, rec.reason.split(":")[0]
    ('never', "don't retrain")
    """
    from retrainer.core.selection import FoldCandidate, select_on_folds

    excluded = tuple(
        exclusion(p, selection_batches=selection_batches, recommend_baselines=recommend_baselines)
        for p in policies
    )
    eligible = [p for p, why in zip(policies, excluded, strict=True) if why is None] or list(
        policies
    )
    priced = cost is not None and cost.is_set
    regrets: tuple[float | None, ...] = ()
    best: str | None = None
    if not priced and all(len(p.folds) >= 2 for p in eligible):
        folds = select_on_folds(
            [
                FoldCandidate(
                    name=p.name,
                    folds=p.folds,
                    retrains=p.retrains_selection,
                    cpu_s=p.cpu_s_selection,
                    reacts=p.has_triggers,
                )
                for p in eligible
            ],
            greater_is_better=greater_is_better,
            points=points,
            tolerance=tolerance,
            cpu_tolerance=cpu_tolerance,
            criterion=criterion,
        )
        selection = Selection(folds.name, folds.reason, "folds")
        regrets = tuple(folds.regrets.get(p.name) for p in policies)
        best = folds.best
    else:
        selection = select_policy(
            [
                Candidate(
                    name=p.name,
                    score=p.score_selection,
                    retrains=p.retrains_selection,
                    cpu_s=p.cpu_s_selection,
                )
                for p in eligible
            ],
            greater_is_better=greater_is_better,
            tolerance=tolerance,
            cost=cost if priced else None,
            cpu_tolerance=cpu_tolerance,
        )
    chosen = next(p for p in policies if p.name == selection.name)
    reason = selection.reason
    if not chosen.has_triggers:
        reason = f"don't retrain: {reason}"
    elif chosen.retrains_selection == 0:
        reason += (
            f"; its trigger watched {chosen.watched_selection} of the {selection_batches} "
            "selection batches and never fired there, so its score there is its first model's"
        )
    return Recommendation(
        name=chosen.name,
        rule=selection.rule,
        reason=reason,
        excluded=excluded,
        oracle=reference(policies, greater_is_better=greater_is_better),
        regrets=regrets,
        best=best,
    )


def reference(policies: Sequence[PolicyFigures], *, greater_is_better: bool = True) -> str:
    """The always-retrain reference: the best (held out) of the batch policies retraining most.

    Online learners aside, the policies with the most held-out retrains retrain at every
    batch; of them, the one with the best held-out score: the best window retrained every
    batch (one fixed window can be the worst policy of a grid). Ties and NaN scores fall back
    to the whole replay's score, then the name.

    Examples
    --------
    >>> def f(name, retrains, held_out):
    ...     return PolicyFigures(name=name, has_triggers=True, online=False, score=held_out,
    ...         score_selection=held_out, retrains=retrains, retrains_selection=0,
    ...         cpu_s_selection=0.0, watched_selection=0, score_held_out=held_out,
    ...         retrains_held_out=retrains)
    >>> reference([f("daily 7d", 90, 0.70), f("daily 30d", 90, 0.75), f("weekly", 13, 0.8)])
    'daily 30d'
    """
    sign = 1.0 if greater_is_better else -1.0
    batch = [p for p in policies if not p.online] or list(policies)
    most = max((p.retrains_held_out, p.retrains) for p in batch)
    every = [p for p in batch if (p.retrains_held_out, p.retrains) == most]

    def key(p: PolicyFigures) -> tuple[float, float, str]:
        held = sign * p.score_held_out if math.isfinite(p.score_held_out) else -math.inf
        whole = sign * p.score if math.isfinite(p.score) else -math.inf
        return (-held, -whole, p.name)

    return min(every, key=key).name
