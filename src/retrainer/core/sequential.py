"""The sequential test that decides an A/B (or shadow) rollout, valid under continuous monitoring.

A rollout looks at its evidence on every controller tick. A fixed-horizon test (t or z) read
at every tick promotes a model no better than the champion far more often than its alpha;
this module uses the mixture sequential probability ratio test (mSPRT) of Johari, Pekelis and
Walsh ("Always valid inference: continuous monitoring of A/B tests", Operations Research 2022,
arXiv:1512.04922; Johari, Koomen, Pekelis and Walsh, "Peeking at A/B tests", KDD 2017), whose
p-value and confidence sequence stay valid whenever they are read.

The statistic
-------------
The effect is ``theta = mean(candidate) - mean(champion)`` of a per-prediction metric (a click,
a correct answer, a log loss, a business value). With ``n`` observations per arm, per-arm
variances ``s_A^2``, ``s_B^2`` and ``V = s_A^2 + s_B^2``, the paper's two-stream statistic for
``H0: theta = 0`` under a normal mixture ``theta ~ N(0, tau^2)`` is::

    Lambda_n = sqrt(V / (V + n tau^2)) * exp(n^2 tau^2 d^2 / (2 V (V + n tau^2)))

where ``d`` is the observed difference of means. For rates (0/1 outcomes) the paper plugs in
``V = p_A (1 - p_A) + p_B (1 - p_B)``; for other metrics the running variance of each arm
(divisor ``n``, so a 0/1 metric gets exactly ``p (1 - p)``). Arms of unequal size (a 90/10
split, feedback arriving unevenly) use the same formula written with the variance of ``d``,
``v = s_A^2 / n_A + s_B^2 / n_B`` (equal to ``V / n`` when the arms are equal)::

    Lambda = sqrt(v / (v + tau^2)) * exp(tau^2 d^2 / (2 v (v + tau^2)))

The **paired** variant (shadow: both models scored on the same rows) is the one-stream test on
the per-row differences ``d_i``, with ``v = var(d) / n``: the rows' shared difficulty cancels,
so it needs far fewer rows than a split.

The always-valid p-value is ``p_n = min(p_{n-1}, 1 / Lambda_n)`` and the confidence sequence
for ``theta`` is the running intersection of ``d +/- r`` with::

    r = sqrt(v (v + tau^2) / tau^2 * (2 log(1 / alpha) + log((v + tau^2) / v)))

(the set of ``theta0`` with ``Lambda(theta0) < 1 / alpha``). By Ville's inequality the chance
that the sequence ever excludes the true effect is at most ``alpha``, however often it is read.
Reading it at every tick instead of every observation only makes it more conservative.

The decision rule
-----------------
With the confidence sequence ``[low, high]`` for the *improvement* (``theta``, or ``-theta``
when ``higher_is_better=False``, as for a log loss), in this order:

1. ``continue`` while either arm has fewer than ``min_samples`` observations (the plug-in
   variance is unreliable on a few rows, so no look is taken before), or while the variance is
   0 (all outcomes equal: no evidence yet);
2. ``promote`` when ``low > 0``: the candidate is better, at level ``alpha``;
3. ``reject`` when ``high < min_effect``: the candidate cannot be better by the minimum effect
   (with ``min_effect = 0``: it is worse); waiting longer cannot make it a meaningful win;
4. ``inconclusive`` at the horizon (``max_samples`` in the smaller arm, or ``at_horizon`` passed
   by the caller when the maximum duration is over);
5. ``continue`` otherwise.

A model no better than the champion is promoted with probability at most ``alpha`` (about
``alpha / 2`` in practice: the sequence is two-sided). Promotion takes precedence: a candidate
shown better, even by less than ``min_effect``, is not worse than keeping the champion.

Choosing tau
------------
The paper recommends matching the mixing distribution to the effects one expects, fitted on
past experiments where there are some: the test is quickest for effects of the order of
``tau``. Without that history, the smallest effect worth detecting is that scale, so ``tau``
defaults to ``min_effect``; when ``min_effect`` is 0, ``tau`` must be given (in the metric's
units, e.g. ``0.01`` for one point of accuracy).

Everything here is pure: the controller keeps a :class:`SequentialState` (sufficient statistics
and the running p-value and sequence) as JSON between ticks and feeds it the new observations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from retrainer.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray
else:
    from retrainer.core._lazy_numpy import np

__all__ = [
    "ArmStats",
    "SequentialDecision",
    "SequentialState",
    "SequentialTest",
    "msprt_likelihood_ratio",
    "msprt_radius",
    "projected_decision",
]

Outcome = Literal["continue", "promote", "reject", "inconclusive"]

_STATE_VERSION = 1


def msprt_likelihood_ratio(
    difference: ArrayLike, variance: ArrayLike, *, tau: float
) -> NDArray[np.float64]:
    """The mSPRT mixture likelihood ratio ``Lambda`` of ``H0: theta = 0``, elementwise.

    Parameters
    ----------
    difference
        The observed difference of means (or mean of paired differences).
    variance
        The variance of ``difference`` (``s_A^2/n_A + s_B^2/n_B``, or ``var(d)/n`` paired);
        must be > 0.
    tau
        The standard deviation of the normal mixture over the effect.

    Examples
    --------
    Ten rows per arm, 3 and 6 successes, ``tau = 0.1``:
    ``V = 0.3 * 0.7 + 0.6 * 0.4 = 0.45``, variance of the difference ``0.045``:

    >>> round(float(msprt_likelihood_ratio(0.3, 0.045, tau=0.1)), 6)
    1.084895
    """
    d = np.asarray(difference, dtype=float)
    v = np.asarray(variance, dtype=float)
    t2 = tau * tau
    log_ratio = 0.5 * np.log(v / (v + t2)) + t2 * d * d / (2.0 * v * (v + t2))
    return np.asarray(np.exp(log_ratio), dtype=float)


def msprt_radius(variance: ArrayLike, *, tau: float, alpha: float) -> NDArray[np.float64]:
    """Half-width of the mSPRT confidence set ``{theta0: Lambda(theta0) < 1/alpha}``, elementwise.

    Examples
    --------
    >>> round(float(msprt_radius(0.045, tau=0.1, alpha=0.05)), 4)
    1.238
    """
    v = np.asarray(variance, dtype=float)
    t2 = tau * tau
    return np.asarray(
        np.sqrt(v * (v + t2) / t2 * (2.0 * math.log(1.0 / alpha) + np.log((v + t2) / v))),
        dtype=float,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ArmStats:
    """Sufficient statistics of one stream: count, mean and sum of squared deviations.

    Kept as mean and ``m2`` rather than raw sums (no cancellation on large values); merged
    with Chan's formula, so statistics from several ticks or workers add up.

    Examples
    --------
    >>> a = ArmStats.of([1, 0, 1, 1])
    >>> a.n, a.mean, a.variance
    (4, 0.75, 0.1875)
    >>> a.merge(ArmStats.from_sums(n=2, total=1.0, total_sq=1.0)).mean
    0.6666666666666666
    """

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 0:
            raise DataError(f"ArmStats.n must be an integer >= 0. Got {self.n!r}.")
        if not math.isfinite(self.mean) or not math.isfinite(self.m2) or self.m2 < 0:
            raise DataError(
                f"ArmStats.mean and m2 must be finite, m2 >= 0. Got mean={self.mean!r}, "
                f"m2={self.m2!r}."
            )
        if self.n == 0 and (self.mean != 0.0 or self.m2 != 0.0):
            raise DataError("ArmStats with n=0 must have mean=0 and m2=0.")

    @classmethod
    def of(cls, values: ArrayLike) -> ArmStats:
        """The statistics of raw values (0/1 outcomes, losses, amounts)."""
        x = np.asarray(values, dtype=float).ravel()
        if x.size == 0:
            return cls()
        if not np.all(np.isfinite(x)):
            raise DataError("values must be finite numbers; got NaN or infinity.")
        mean = float(x.mean())
        return cls(n=int(x.size), mean=mean, m2=float(np.sum((x - mean) ** 2)))

    @classmethod
    def from_sums(cls, *, n: int, total: float, total_sq: float) -> ArmStats:
        """From a count, a sum and a sum of squares (what a SQL aggregate gives)."""
        if n == 0:
            return cls()
        mean = total / n
        return cls(n=n, mean=mean, m2=max(0.0, total_sq - n * mean * mean))

    @property
    def variance(self) -> float:
        """Variance with divisor ``n`` (``p (1 - p)`` for 0/1 outcomes); 0 when empty."""
        return self.m2 / self.n if self.n else 0.0

    def merge(self, other: ArmStats) -> ArmStats:
        """The statistics of both samples together."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        m2 = self.m2 + other.m2 + delta * delta * self.n * other.n / n
        return ArmStats(n=n, mean=mean, m2=m2)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "m2": self.m2}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArmStats:
        try:
            return cls(n=int(data["n"]), mean=float(data["mean"]), m2=float(data["m2"]))
        except (KeyError, TypeError) as exc:
            raise DataError(f"ArmStats needs keys n, mean, m2. Got {dict(data)!r}.") from exc


def _opt(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _unopt(x: Any, default: float) -> float:
    return default if x is None else float(x)


@dataclass(frozen=True, slots=True, kw_only=True)
class SequentialState:
    """What a running test remembers between ticks: the data so far and the running evidence.

    ``low``/``high`` bound the *improvement* (the effect in the better direction), running
    intersection over the looks taken; ``p_value`` is the running minimum. Stored as JSON with
    :meth:`to_dict`, read back with :meth:`from_dict`.

    Examples
    --------
    >>> state = SequentialState()
    >>> SequentialState.from_dict(state.to_dict()) == state
    True
    """

    champion: ArmStats = field(default_factory=ArmStats)
    candidate: ArmStats = field(default_factory=ArmStats)
    difference: ArmStats | None = None  # per-row differences, paired tests only
    p_value: float = 1.0
    low: float = -math.inf
    high: float = math.inf
    looks: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (no infinities: an unbounded side is ``None``)."""
        return {
            "version": _STATE_VERSION,
            "champion": self.champion.to_dict(),
            "candidate": self.candidate.to_dict(),
            "difference": None if self.difference is None else self.difference.to_dict(),
            "p_value": self.p_value,
            "low": _opt(self.low),
            "high": _opt(self.high),
            "looks": self.looks,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SequentialState:
        """The state :meth:`to_dict` wrote."""
        if data.get("version") != _STATE_VERSION:
            raise DataError(
                f"sequential test state version must be {_STATE_VERSION}. "
                f"Got {data.get('version')!r}."
            )
        diff = data.get("difference")
        return cls(
            champion=ArmStats.from_dict(data["champion"]),
            candidate=ArmStats.from_dict(data["candidate"]),
            difference=None if diff is None else ArmStats.from_dict(diff),
            p_value=float(data["p_value"]),
            low=_unopt(data.get("low"), -math.inf),
            high=_unopt(data.get("high"), math.inf),
            looks=int(data["looks"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SequentialDecision:
    """What the test decided at one look, with its evidence (JSON-safe via :meth:`to_dict`).

    ``difference``, ``low`` and ``high`` are in raw units, candidate minus champion (for a
    lower-is-better metric a promotion has ``high < 0``); ``low``/``high`` are ``None`` until
    the first look. ``rule`` names the rule that decided; ``reason`` says it in a sentence.
    """

    outcome: Outcome
    rule: str
    reason: str
    n_champion: int
    n_candidate: int
    mean_champion: float | None
    mean_candidate: float | None
    difference: float | None
    low: float | None
    high: float | None
    p_value: float
    alpha: float
    min_effect: float
    tau: float
    paired: bool
    higher_is_better: bool

    @property
    def decided(self) -> bool:
        """True once the rollout should end (anything but ``continue``)."""
        return self.outcome != "continue"

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "rule": self.rule,
            "reason": self.reason,
            "n_champion": self.n_champion,
            "n_candidate": self.n_candidate,
            "mean_champion": self.mean_champion,
            "mean_candidate": self.mean_candidate,
            "difference": self.difference,
            "low": self.low,
            "high": self.high,
            "p_value": self.p_value,
            "alpha": self.alpha,
            "min_effect": self.min_effect,
            "tau": self.tau,
            "paired": self.paired,
            "higher_is_better": self.higher_is_better,
        }


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number. Got {value!r}.")
    return float(value)


def _count(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}. Got {value!r}.")


@dataclass(frozen=True, slots=True, kw_only=True)
class SequentialTest:
    """The mSPRT for the difference of a metric's means between candidate and champion.

    Parameters
    ----------
    alpha
        Level: the chance of ever promoting a candidate no better than the champion is at most
        ``alpha``, however often the test is read.
    min_effect
        Smallest improvement worth serving, in the metric's units (``0.005`` = half a point of
        accuracy). The test rejects once the candidate cannot be better by that much.
    tau
        Standard deviation of the mixture over the effect, in the metric's units; defaults to
        ``min_effect`` (required when ``min_effect`` is 0).
    min_samples
        Observations per arm (rows when paired) before the first look.
    max_samples
        Horizon: ``inconclusive`` once the smaller arm has this many observations (``None``:
        only the caller's ``at_horizon`` ends the test).
    higher_is_better
        ``False`` for losses: the improvement is then ``champion - candidate``.
    paired
        Both models scored on the same rows (shadow): the test runs on per-row differences.

    Examples
    --------
    An A/B on accuracy: one point better on 20,000 rows per arm.

    >>> test = SequentialTest(alpha=0.05, min_effect=0.005, tau=0.01, min_samples=1000)
    >>> state = test.update(
    ...     test.start(),
    ...     champion=ArmStats.from_sums(n=20000, total=16000, total_sq=16000),
    ...     candidate=ArmStats.from_sums(n=20000, total=16400, total_sq=16400),
    ... )
    >>> decision = test.decide(state)
    >>> decision.outcome, decision.rule
    ('promote', 'better')
    >>> 0 < decision.low < 0.02 < decision.high
    True

    The state survives a restart as JSON:

    >>> import json
    >>> SequentialState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    True
    """

    alpha: float = 0.05
    min_effect: float = 0.0
    tau: float | None = None
    min_samples: int = 100
    max_samples: int | None = None
    higher_is_better: bool = True
    paired: bool = False

    def __post_init__(self) -> None:
        alpha = _number("alpha", self.alpha)
        if not 0.0 < alpha < 1.0:
            raise ConfigError(f"alpha must be a number in (0, 1), e.g. 0.05. Got {self.alpha!r}.")
        if _number("min_effect", self.min_effect) < 0:
            raise ConfigError(
                f"min_effect must be >= 0, in the metric's units. Got {self.min_effect!r}."
            )
        if self.tau is None:
            if self.min_effect == 0:
                raise ConfigError(
                    "tau is required when min_effect is 0: set tau to the effect size the test "
                    "should detect quickest, in the metric's units (e.g. 0.01 for one point of "
                    "accuracy), or set min_effect."
                )
        elif _number("tau", self.tau) <= 0:
            raise ConfigError(f"tau must be a number > 0. Got {self.tau!r}.")
        _count("min_samples", self.min_samples, minimum=2)
        if self.max_samples is not None:
            _count("max_samples", self.max_samples, minimum=self.min_samples)
        for name in ("higher_is_better", "paired"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false. Got {getattr(self, name)!r}.")

    @property
    def tau_(self) -> float:
        """The mixture's standard deviation in use (``tau``, else ``min_effect``)."""
        return float(self.tau) if self.tau is not None else float(self.min_effect)

    def start(self) -> SequentialState:
        """The state of a test that has seen nothing."""
        return SequentialState(difference=ArmStats() if self.paired else None)

    def update(
        self,
        state: SequentialState,
        *,
        champion: ArmStats,
        candidate: ArmStats,
        difference: ArmStats | None = None,
    ) -> SequentialState:
        """Add the new observations' statistics and take one look (fold in the evidence).

        ``difference`` (the per-row ``candidate - champion`` statistics) is required when the
        test is paired and refused otherwise. Statistics from several batches may be merged
        first with :meth:`ArmStats.merge`: fewer looks only make the test more conservative.
        """
        if self.paired:
            if difference is None:
                raise ConfigError(
                    "difference is required for a paired test: the statistics of the per-row "
                    "differences candidate - champion (see update_values)."
                )
            if not champion.n == candidate.n == difference.n:
                raise DataError(
                    "a paired test needs as many champion, candidate and difference rows. "
                    f"Got {champion.n}, {candidate.n}, {difference.n}."
                )
        elif difference is not None:
            raise ConfigError("difference is only for a paired test (paired=True).")
        if self.paired != (state.difference is not None):
            raise DataError(
                f"the state is {'not ' if state.difference is None else ''}paired but the test "
                f"is {'' if self.paired else 'not '}paired: start it with this test's start()."
            )
        merged_difference = None
        if state.difference is not None and difference is not None:
            merged_difference = state.difference.merge(difference)
        merged = SequentialState(
            champion=state.champion.merge(champion),
            candidate=state.candidate.merge(candidate),
            difference=merged_difference,
            p_value=state.p_value,
            low=state.low,
            high=state.high,
            looks=state.looks,
        )
        look = self._look(merged)
        if look is None:
            return merged
        d, v = look
        p = min(merged.p_value, 1.0 / float(msprt_likelihood_ratio(d, v, tau=self.tau_)))
        r = float(msprt_radius(v, tau=self.tau_, alpha=self.alpha))
        return SequentialState(
            champion=merged.champion,
            candidate=merged.candidate,
            difference=merged.difference,
            p_value=min(1.0, p),
            low=max(merged.low, d - r),
            high=min(merged.high, d + r),
            looks=merged.looks + 1,
        )

    def update_values(
        self, state: SequentialState, *, champion: ArrayLike, candidate: ArrayLike
    ) -> SequentialState:
        """:meth:`update` from raw per-observation values (paired: row-aligned arrays).

        Examples
        --------
        >>> test = SequentialTest(tau=0.1, min_samples=2, paired=True)
        >>> state = test.update_values(test.start(), champion=[1, 0, 1], candidate=[1, 1, 1])
        >>> state.difference.n, round(state.difference.mean, 4), state.looks
        (3, 0.3333, 1)
        """
        a = np.asarray(champion, dtype=float).ravel()
        b = np.asarray(candidate, dtype=float).ravel()
        if not self.paired:
            return self.update(state, champion=ArmStats.of(a), candidate=ArmStats.of(b))
        if a.shape != b.shape:
            raise DataError(
                f"a paired test needs row-aligned champion and candidate values. "
                f"Got {a.size} and {b.size}."
            )
        return self.update(
            state,
            champion=ArmStats.of(a),
            candidate=ArmStats.of(b),
            difference=ArmStats.of(b - a),
        )

    def _look(self, state: SequentialState) -> tuple[float, float] | None:
        """``(improvement, its variance)`` when a look may be taken, else ``None``."""
        a, b = state.champion, state.candidate
        if min(a.n, b.n) < self.min_samples:
            return None
        if state.difference is not None:
            diff = state.difference.mean
            v = state.difference.variance / state.difference.n
        else:
            diff = b.mean - a.mean
            v = a.variance / a.n + b.variance / b.n
        if not v > 0:
            return None
        return (diff if self.higher_is_better else -diff), v

    def decide(self, state: SequentialState, *, at_horizon: bool = False) -> SequentialDecision:
        """The outcome of the evidence in ``state`` (see the module's rule), with its evidence.

        ``at_horizon`` is the caller's maximum duration: when true, a test that has not
        decided is ``inconclusive``.
        """
        a, b = state.champion, state.candidate
        sign = 1.0 if self.higher_is_better else -1.0
        low, high = (state.low, state.high) if sign > 0 else (-state.high, -state.low)
        level = f"{1 - self.alpha:.0%}"
        better = "above" if sign > 0 else "below"
        cs = f"[{low:.4g}, {high:.4g}]"
        n = min(a.n, b.n)
        horizon = at_horizon or (self.max_samples is not None and n >= self.max_samples)
        if n < self.min_samples and not horizon:
            outcome: Outcome = "continue"
            rule, reason = (
                "min_samples",
                f"{n} observations in the smaller arm, fewer than min_samples={self.min_samples}",
            )
        elif state.looks == 0:
            outcome, rule = ("inconclusive", "horizon") if horizon else ("continue", "no_variance")
            reason = (
                f"{n} observations in the smaller arm, no look taken yet (fewer than "
                f"min_samples={self.min_samples} or all outcomes equal)"
            )
        elif state.low > 0:
            outcome, rule = "promote", "better"
            reason = (
                f"the {level} confidence sequence for candidate - champion, {cs}, lies "
                f"entirely {better} 0"
            )
        elif state.high < self.min_effect:
            outcome = "reject"
            if self.min_effect > 0:
                rule = "below_min_effect"
                reason = (
                    f"the {level} confidence sequence for candidate - champion, {cs}, rules out "
                    f"an improvement of min_effect={self.min_effect:g}"
                )
            else:
                rule = "worse"
                reason = (
                    f"the {level} confidence sequence for candidate - champion, {cs}, lies "
                    f"entirely {'below' if sign > 0 else 'above'} 0"
                )
        elif horizon:
            outcome, rule = "inconclusive", "horizon"
            reason = (
                f"horizon reached ({n} observations in the smaller arm) with the {level} "
                f"confidence sequence {cs} containing 0"
                if low <= 0 <= high
                else f"horizon reached ({n} observations in the smaller arm), confidence "
                f"sequence {cs}"
            )
        else:
            outcome, rule = "continue", "continue"
            reason = f"the {level} confidence sequence {cs} is not yet decisive"
        if state.difference is not None and state.difference.n:
            diff: float | None = state.difference.mean
        elif a.n and b.n:
            diff = b.mean - a.mean
        else:
            diff = None
        return SequentialDecision(
            outcome=outcome,
            rule=rule,
            reason=reason,
            n_champion=a.n,
            n_candidate=b.n,
            mean_champion=a.mean if a.n else None,
            mean_candidate=b.mean if b.n else None,
            difference=diff,
            low=_opt(low),
            high=_opt(high),
            p_value=state.p_value,
            alpha=self.alpha,
            min_effect=self.min_effect,
            tau=self.tau_,
            paired=self.paired,
            higher_is_better=self.higher_is_better,
        )


def projected_decision(
    looks: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    deadline: datetime | None = None,
    max_samples: int | None = None,
) -> tuple[datetime | None, str]:
    """When a running test is expected to decide, and why: a projection, not a promise.

    ``looks`` are the test's looks so far, oldest first, each with ``at`` (a datetime), ``n``
    (labelled predictions of the smaller arm), ``low``/``high`` (the confidence sequence) and
    ``difference``. A confidence sequence narrows about as ``1/sqrt(n)``, so at the current
    difference it excludes zero after about ``n * (half_width / |difference|) ** 2`` pairs;
    the pairs arrive at the rate seen between the first and the last look. The test ends by
    ``deadline`` (its ``max_duration``) or ``max_samples`` whatever the data say.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> day = lambda d: datetime(2024, 1, d, tzinfo=UTC)
    >>> looks = [{"at": day(1), "n": 100, "low": -0.05, "high": 0.09, "difference": 0.02},
    ...          {"at": day(2), "n": 200, "low": -0.01, "high": 0.05, "difference": 0.02}]
    >>> at, why = projected_decision(looks, now=day(2), deadline=day(8))
    >>> at.isoformat(), why[:17]
    ('2024-01-04T12:00:00+00:00', 'about 2024-01-04 ')
    """
    limit = (
        (deadline, f"by {deadline:%Y-%m-%d %H:%M} at the latest (max_duration)")
        if deadline is not None
        else (None, "")
    )
    seen = [x for x in looks if x.get("low") is not None and x.get("high") is not None]
    if not seen:
        if deadline is None:
            return None, "after the first look (min_samples labelled predictions per variant)"
        return limit[0], "no look yet; " + limit[1]
    first, last = seen[0], seen[-1]
    span = (last["at"] - first["at"]).total_seconds()
    rate = (last["n"] - first["n"]) / span if span > 0 else 0.0
    half = (last["high"] - last["low"]) / 2.0
    diff = abs(last.get("difference") or 0.0)
    candidates: list[tuple[datetime | None, str]] = []
    if deadline is not None:
        candidates.append(limit)
    if rate > 0 and max_samples is not None and max_samples > last["n"]:
        at = now + timedelta(seconds=(max_samples - last["n"]) / rate)
        candidates.append((at, f"about {at:%Y-%m-%d %H:%M}, at max_samples {max_samples}"))
    if rate > 0 and diff > 0:
        needed = last["n"] * (half / diff) ** 2
        at = now + timedelta(seconds=max(needed - last["n"], 0.0) / rate)
        candidates.append(
            (
                at,
                f"about {at:%Y-%m-%d %H:%M}: at {rate * 86400:,.0f} labelled pairs a day, the "
                f"interval excludes 0 after about {needed:,.0f} of them if the difference "
                f"stays {last.get('difference'):+.4g}",
            )
        )
    dated = [c for c in candidates if c[0] is not None]
    if not dated:
        return None, "no labelled pairs arrive: no decision is in sight"
    return min(dated, key=lambda c: c[0])  # type: ignore[arg-type,return-value]
