"""A rollout's state machine: what the controller does with a blessed candidate on live traffic.

A rollout strategy (``shadow``, ``canary``, ``ab``; configured in :mod:`retrainer.core.deploy`)
starts when a blessed candidate arrives while a champion serves: the candidate gets the
``challenger`` alias and a :class:`RolloutState` is stored (the metadata store's state of the
pipeline, key ``rollout``), which every server worker reads to route its traffic. On each tick
the controller gathers :class:`Observations` since the rollout started (the serving health of
each variant, the per-prediction metric of each arm from the prediction and feedback log, the
drift of the candidate's outputs against the champion's) and calls :func:`advance`, which
returns the next state and the :class:`RolloutStep` to apply. Everything here is pure.

The states
----------
``running``
    Traffic is shared (``share`` of it goes to the candidate; for ``shadow``, ``share`` is the
    sampled copy the candidate scores, answering nobody). Each tick, in this order:

    1. a breached **guard** (error rate, p99 latency, drift of the candidate's outputs against
       the champion's on the same traffic, the online metric below a floor) ends it at once:
       ``rolled_back`` (traffic back to the champion);
    2. the **sequential test** (:class:`~retrainer.core.sequential.SequentialTest`; re-read
       with all the evidence since the start, its p-value and confidence sequence kept as
       running minimum and intersection, so it stays valid however often it is read) decides:
       ``promote`` -> the candidate becomes the champion and the rollout is ``watching``;
       ``reject`` -> ``rejected`` (candidate retired, champion stays); at the maximum
       duration ``inconclusive`` -> the configured ``on_inconclusive``;
    3. a ``canary`` moves to its next traffic step once the current one has lasted
       ``step_duration`` and the candidate answered ``step_requests`` requests; after its last
       step it promotes.
``watching``
    The candidate is the champion; for ``watch`` after the promotion its guards are still
    checked (error rate, latency, metric floor): a breach rolls the champion back to the
    previous one (``rolled_back``), otherwise the rollout ends ``promoted``.

Terminal states (``promoted``, ``rejected``, ``rolled_back``, ``cancelled``) stay stored as the
pipeline's last rollout; servers route everything to the champion. A rollout whose champion
was moved by someone else (a manual promote or rollback) is ``cancelled``
(:func:`reconcile`), and a crash between an alias move and the state's write is repaired by
the same function on the next tick.

Examples
--------
>>> from datetime import UTC, datetime, timedelta
>>> from retrainer.core.deploy import build_policy
>>> policy = build_policy({"strategy": "ab", "metric": "accuracy", "min_effect": 0.01,
...                        "min_samples": 100})
>>> t0 = datetime(2024, 5, 1, tzinfo=UTC)
>>> state = start_rollout(policy, pipeline="churn", candidate=3, champion=2, now=t0)
>>> state.status, state.share
('running', 0.5)
>>> obs = Observations(
...     champion=VariantHealth(requests=5000, errors=0),
...     candidate=VariantHealth(requests=5000, errors=0),
...     champion_metric=ArmStats.from_sums(n=4000, total=3200, total_sq=3200),
...     candidate_metric=ArmStats.from_sums(n=4000, total=3400, total_sq=3400),
... )
>>> step = advance(policy, state, obs, now=t0 + timedelta(hours=6))
>>> step.action, step.state.status
('promote', 'watching')
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from retrainer.core.sequential import ArmStats, SequentialDecision, SequentialState, SequentialTest
from retrainer.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray

# numpy is imported where it is used: the config reads this module (its metric names), and
# `retrainer status` must not pay for numpy

__all__ = [
    "ACTIVE",
    "CHALLENGER",
    "ROLLOUT_KEY",
    "ROLLOUT_METRICS",
    "TERMINAL",
    "ArmStats",
    "GuardCheck",
    "Observations",
    "RolloutParams",
    "RolloutState",
    "RolloutStep",
    "VariantHealth",
    "advance",
    "bucket",
    "metric_values",
    "output_drift",
    "profile_drift",
    "reconcile",
    "route",
    "start_rollout",
]

CHALLENGER = "challenger"
"""The alias of the candidate a rollout serves beside the champion."""
ROLLOUT_KEY = "rollout"
"""The key of a pipeline's rollout in the metadata store's state."""

Status = Literal["running", "watching", "promoted", "rejected", "rolled_back", "cancelled"]
Action = Literal["none", "step", "promote", "reject", "rollback", "finish", "cancel"]
ACTIVE: frozenset[str] = frozenset({"running", "watching"})
TERMINAL: frozenset[str] = frozenset({"promoted", "rejected", "rolled_back", "cancelled"})

# Per-prediction metrics the test can average: (higher is better, what a row needs).
ROLLOUT_METRICS: Mapping[str, tuple[bool, str]] = {
    "accuracy": (True, "a prediction and its outcome"),
    "error_rate": (False, "a prediction and its outcome"),
    "log_loss": (False, "a binary score and a 0/1 outcome"),
    "ctr": (True, "a 0/1 outcome (click) per prediction"),
    "click_through_rate": (True, "a 0/1 outcome (click) per prediction"),
    "rate": (True, "a 0/1 outcome per prediction"),
    "value": (True, "a numeric outcome (a business value) per prediction"),
    "mae": (False, "a numeric prediction and outcome"),
    "mse": (False, "a numeric prediction and outcome"),
}
"""The metrics a rollout's sequential test can decide on: each is a mean of per-prediction
values, so each arm's mean and variance are plain averages (a ranking metric such as ROC AUC
or F1 is not a per-row mean and is refused)."""

_LOG_EPS = 1e-15


def check_rollout_metric(name: str) -> str:
    """``name`` if a rollout can test it, else ConfigError listing the ones it can.

    >>> check_rollout_metric("roc_auc")
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: metric 'roc_auc' is not a mean of per-prediction values, so a \
rollout's sequential test cannot use it; use one of accuracy, error_rate, log_loss, ctr, \
click_through_rate, rate, value, mae, mse
    """
    if name not in ROLLOUT_METRICS:
        raise ConfigError(
            f"metric {name!r} is not a mean of per-prediction values, so a rollout's sequential "
            f"test cannot use it; use one of {', '.join(ROLLOUT_METRICS)}"
        )
    return name


def metric_values(
    metric: str,
    *,
    predictions: ArrayLike,
    outcomes: ArrayLike,
    scores: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """The per-prediction values of ``metric`` whose mean the rollout's test compares.

    Examples
    --------
    >>> metric_values("accuracy", predictions=[1, 0, 1], outcomes=[1, 1, 1]).tolist()
    [1.0, 0.0, 1.0]
    >>> [round(float(v), 3) for v in metric_values("log_loss", predictions=[1, 0], outcomes=[1, 0],
    ...                                     scores=[0.9, 0.2])]
    [0.105, 0.223]
    >>> metric_values("ctr", predictions=["a", "b"], outcomes=[0, 1]).tolist()
    [0.0, 1.0]
    """
    import numpy as np

    check_rollout_metric(metric)
    y = np.asarray(outcomes, dtype=object).ravel()
    p = np.asarray(predictions, dtype=object).ravel()
    if metric in ("accuracy", "error_rate"):
        correct = np.array([_same(a, b) for a, b in zip(p, y, strict=True)], dtype=float)
        return correct if metric == "accuracy" else 1.0 - correct
    if metric in ("ctr", "click_through_rate", "rate", "value"):
        return _numbers(y, "outcome")
    if metric == "log_loss":
        if scores is None:
            raise DataError("log_loss needs the score (probability of the positive class)")
        s = np.clip(_numbers(np.asarray(scores, dtype=object).ravel(), "score"), _LOG_EPS, 1)
        s = np.minimum(s, 1 - _LOG_EPS)
        yy = _numbers(y, "outcome")
        if not np.isin(yy, (0.0, 1.0)).all():
            raise DataError("log_loss in a rollout needs 0/1 outcomes (a binary pipeline)")
        return np.asarray(-(yy * np.log(s) + (1 - yy) * np.log(1 - s)), dtype=float)
    err = _numbers(p, "prediction") - _numbers(y, "outcome")
    return np.asarray(np.abs(err) if metric == "mae" else err**2, dtype=float)


def _same(a: Any, b: Any) -> bool:
    import numpy as np

    if isinstance(a, int | float | np.number) and isinstance(b, int | float | np.number):
        return bool(float(a) == float(b))
    return str(a) == str(b)


def _numbers(values: NDArray[Any], what: str) -> NDArray[np.float64]:
    import numpy as np

    try:
        out = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        bad = next(v for v in values if not _is_number(v))
        raise DataError(f"the rollout's metric needs numeric {what}s; got {bad!r}") from None
    return out


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def output_drift(champion: ArrayLike, candidate: ArrayLike, *, bins: int = 10) -> float | None:
    """How far the candidate's outputs are from the champion's on the same traffic: the
    Jensen-Shannon distance (base 2: 0 the same, 1 disjoint) of their histograms.

    Probabilities (every value in [0, 1]) are binned on ``bins`` equal-width bins of [0, 1]:
    two sound models of one problem put their scores in the same regions even when one is
    sharper, while a broken one (a constant, a flipped sign) moves them elsewhere. Quantile
    bins (PSI's usual choice) would call a narrow distribution shifted by 0.01 a major drift.
    Other numbers are binned at the champion's deciles; labels are counted per value. ``None``
    when either side is empty.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> champion = rng.beta(1, 12, 2000)              # mostly low scores
    >>> sharper = rng.beta(1, 25, 2000)               # a sound model, more confident
    >>> round(output_drift(champion, sharper), 2), round(output_drift(champion, 1 - champion), 2)
    (0.25, 1.0)
    >>> round(output_drift(["a"] * 50 + ["b"] * 50, ["a"] * 90 + ["b"] * 10), 3)
    0.383
    """
    import numpy as np

    from retrainer.core.stats import jensen_shannon

    a = np.asarray(champion, dtype=object).ravel()
    b = np.asarray(candidate, dtype=object).ravel()
    if a.size == 0 or b.size == 0:
        return None
    numeric = all(_is_number(v) and not isinstance(v, bool | str) for v in (a[0], b[0]))
    if numeric:
        fa, fb = a.astype(float), b.astype(float)
        if min(fa.min(), fb.min()) >= 0.0 and max(fa.max(), fb.max()) <= 1.0:
            edges = np.linspace(0.0, 1.0, bins + 1)[1:-1]
        else:
            edges = np.unique(np.quantile(fa, np.linspace(0, 1, bins + 1)[1:-1]))
        ca = np.bincount(np.searchsorted(edges, fa, side="right"), minlength=edges.size + 1)
        cb = np.bincount(np.searchsorted(edges, fb, side="right"), minlength=edges.size + 1)
    else:
        labels = sorted({str(v) for v in a} | {str(v) for v in b})
        index = {v: i for i, v in enumerate(labels)}
        ca = np.bincount([index[str(v)] for v in a], minlength=len(labels))
        cb = np.bincount([index[str(v)] for v in b], minlength=len(labels))
    return float(jensen_shannon(ca, cb))


def profile_drift(profile: Mapping[str, Any] | None, outputs: ArrayLike) -> float | None:
    """The Jensen-Shannon distance of ``outputs`` from a column profile (``NumericProfile`` or
    ``CategoricalProfile`` as a dict: the model's outputs on its training rows).

    Examples
    --------
    >>> profile = {"kind": "numeric", "edges": [0.25, 0.5, 0.75], "counts": [40, 10, 10, 40]}
    >>> round(profile_drift(profile, [0.1] * 4 + [0.3, 0.6] + [0.9] * 4), 3)
    0.0
    >>> round(profile_drift(profile, [0.9] * 10), 3)
    0.629
    >>> profile_drift(None, [0.1]) is None
    True
    """
    import numpy as np

    from retrainer.core.stats import jensen_shannon

    values = np.asarray(outputs, dtype=object).ravel()
    if not profile or values.size == 0:
        return None
    counts = np.asarray(profile.get("counts") or [], dtype=float)
    if counts.sum() <= 0:
        return None
    if profile.get("kind") == "numeric":
        try:
            live = values.astype(float)
        except (TypeError, ValueError):
            return None
        edges = np.asarray(profile.get("edges") or [], dtype=float)
        got = np.bincount(np.searchsorted(edges, live, side="left"), minlength=edges.size + 1)
    else:
        labels = [str(v) for v in profile.get("labels") or []]
        index = {v: i for i, v in enumerate(labels)}
        other = len(labels)  # a label the training outputs never had
        got = np.bincount([index.get(str(v), other) for v in values], minlength=other + 1)
        counts = np.append(counts, 0.0)
    if got.size != counts.size:
        return None
    return float(jensen_shannon(counts, got))


def bucket(key: str, salt: str) -> float:
    """A request key's place in [0, 1): the same key and salt always give the same place.

    Salted with the rollout (pipeline and candidate), so a user is not always in the first
    share of every test.

    >>> bucket("user-42", "churn:v3") == bucket("user-42", "churn:v3")
    True
    >>> 0 <= bucket("user-42", "churn:v3") < 1
    True
    """
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def route(state: RolloutState | None, key: str) -> Literal["champion", "challenger", "shadow"]:
    """Which variant answers a request with ``key`` (a user id, or a random id when none).

    ``shadow``: the champion answers and the candidate scores a copy of the request.

    >>> from datetime import UTC, datetime
    >>> state = RolloutState(pipeline="p", strategy="ab", candidate=2, champion=1,
    ...                      status="running", share=0.5,
    ...                      started_at=datetime(2024, 1, 1, tzinfo=UTC))
    >>> sorted({route(state, f"user-{i}") for i in range(100)})
    ['challenger', 'champion']
    >>> route(state, "user-7") == route(state, "user-7")
    True
    """
    if state is None or state.status != "running" or state.share <= 0:
        return "champion"
    inside = bucket(key, f"{state.pipeline}:v{state.candidate}") < state.share
    if not inside:
        return "champion"
    return "shadow" if state.strategy == "shadow" else "challenger"


# --- state and observations -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutState:
    """A pipeline's rollout as stored (JSON via :meth:`to_dict`) and read by every server.

    ``share`` is the candidate's part of the traffic (``shadow``: the sampled copy it scores);
    ``test`` the sequential test's running evidence; ``evidence`` what the last tick saw and
    decided (guards and test), for the management API and the dashboard.
    """

    pipeline: str
    strategy: str
    candidate: int
    champion: int
    status: Status
    share: float
    started_at: datetime
    step: int = 0
    step_started_at: datetime | None = None
    promoted_at: datetime | None = None
    ended_at: datetime | None = None
    run_id: int | None = None
    reason: str = ""
    test: SequentialState = field(default_factory=SequentialState)
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Whether the rollout still routes or watches (not ended)."""
        return self.status in ACTIVE

    def to_dict(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.isoformat()

        return {
            "pipeline": self.pipeline,
            "strategy": self.strategy,
            "candidate": self.candidate,
            "champion": self.champion,
            "status": self.status,
            "share": self.share,
            "started_at": iso(self.started_at),
            "step": self.step,
            "step_started_at": iso(self.step_started_at),
            "promoted_at": iso(self.promoted_at),
            "ended_at": iso(self.ended_at),
            "run_id": self.run_id,
            "reason": self.reason,
            "test": self.test.to_dict(),
            "evidence": _json_safe(self.evidence),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutState:
        """The state :meth:`to_dict` wrote.

        >>> from datetime import UTC, datetime
        >>> s = RolloutState(pipeline="p", strategy="ab", candidate=2, champion=1,
        ...                  status="running", share=0.5,
        ...                  started_at=datetime(2024, 1, 1, tzinfo=UTC))
        >>> RolloutState.from_dict(s.to_dict()) == s
        True
        """

        def when(key: str) -> datetime | None:
            value = data.get(key)
            return None if value is None else datetime.fromisoformat(value)

        started = when("started_at")
        if started is None:
            raise DataError(f"rollout state without started_at: {dict(data)!r}")
        return cls(
            pipeline=str(data["pipeline"]),
            strategy=str(data["strategy"]),
            candidate=int(data["candidate"]),
            champion=int(data["champion"]),
            status=data["status"],
            share=float(data["share"]),
            started_at=started,
            step=int(data.get("step", 0)),
            step_started_at=when("step_started_at"),
            promoted_at=when("promoted_at"),
            ended_at=when("ended_at"),
            run_id=data.get("run_id"),
            reason=str(data.get("reason", "")),
            test=SequentialState.from_dict(data["test"]),
            evidence=dict(data.get("evidence") or {}),
        )


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and type(value).__module__ == "numpy":  # a numpy scalar
        return _json_safe(value.item())
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class VariantHealth:
    """How one variant served since the rollout started (summed over every server worker)."""

    requests: int = 0
    errors: int = 0
    p99_ms: float | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Observations:
    """What the controller saw since the rollout started (the watch phase: since promotion).

    ``champion_metric``/``candidate_metric`` are each arm's per-prediction metric values
    (labelled predictions only); ``difference`` the per-row differences for a paired
    (``shadow``) test; ``output_drift`` the distance of the candidate's outputs from the
    champion's on the same traffic (:func:`output_drift`), over ``output_rows`` candidate rows,
    and ``reference_drift`` their distance from the candidate's own outputs on its training
    rows.
    """

    champion: VariantHealth = field(default_factory=VariantHealth)
    candidate: VariantHealth = field(default_factory=VariantHealth)
    champion_metric: ArmStats = field(default_factory=ArmStats)
    candidate_metric: ArmStats = field(default_factory=ArmStats)
    difference: ArmStats | None = None
    output_drift: float | None = None
    output_rows: int = 0
    reference_drift: float | None = None
    """The distance of the candidate's live outputs from its own on its training rows (its
    version's profile); None when unknown."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardCheck:
    """One guard's reading: its value, its limit, and whether it is breached."""

    name: str
    value: float | None
    limit: float
    breached: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "limit": self.limit,
            "breached": self.breached,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutStep:
    """What one tick decided: the next state, the action to apply and why."""

    state: RolloutState
    action: Action
    reason: str
    guards: tuple[GuardCheck, ...] = ()
    decision: SequentialDecision | None = None
    recovered: bool = False
    """The alias already moved (a crash after the move, before the state write): only the
    state is left to write."""

    @property
    def changed(self) -> bool:
        """Whether anything moves (an alias, the traffic share or the status)."""
        return self.action != "none"


class RolloutParams(Protocol):
    """The parameters :func:`advance` reads (the rollout policies of ``core.deploy``)."""

    @property
    def strategy(self) -> str: ...

    def test(self) -> SequentialTest | None: ...
    def guard_limits(self) -> GuardLimits: ...
    def initial_share(self) -> float: ...
    def next_share(self, step: int) -> float | None: ...
    def step_rule(self) -> tuple[timedelta, int] | None: ...
    def max_duration_(self) -> timedelta: ...
    def watch_(self) -> timedelta: ...
    @property
    def on_inconclusive(self) -> str: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardLimits:
    """The guards' limits (None: that guard is off) and the requests before they judge."""

    max_error_rate: float | None = 0.05
    max_p99_ms: float | None = None
    max_output_drift: float | None = 0.5
    metric_floor: float | None = None
    metric: str | None = None
    min_requests: int = 100


# --- the transitions ------------------------------------------------------------------------


def start_rollout(
    policy: RolloutParams,
    *,
    pipeline: str,
    candidate: int,
    champion: int,
    now: datetime,
    run_id: int | None = None,
) -> RolloutState:
    """The state of a rollout that starts now: ``running`` at the policy's first share."""
    test = policy.test()
    return RolloutState(
        pipeline=pipeline,
        strategy=policy.strategy,
        candidate=candidate,
        champion=champion,
        status="running",
        share=policy.initial_share(),
        started_at=now,
        step_started_at=now,
        run_id=run_id,
        reason=f"v{candidate} blessed: {policy.strategy} rollout against v{champion} starts",
        test=test.start() if test is not None else SequentialState(),
    )


def check_guards(
    limits: GuardLimits, obs: Observations, *, watching: bool = False
) -> tuple[GuardCheck, ...]:
    """Read each guard that is on and has enough requests to judge.

    Examples
    --------
    >>> checks = check_guards(GuardLimits(), Observations(
    ...     candidate=VariantHealth(requests=400, errors=40)))
    >>> [(c.name, c.breached) for c in checks]
    [('error_rate', True)]
    >>> checks[0].reason
    'error rate 10.00% over 400 requests > max_error_rate 5.00%'
    """
    out: list[GuardCheck] = []
    c = obs.candidate
    enough = c.requests >= limits.min_requests
    if limits.max_error_rate is not None and enough and c.error_rate is not None:
        rate = c.error_rate
        bad = rate > limits.max_error_rate
        out.append(
            GuardCheck(
                name="error_rate",
                value=rate,
                limit=limits.max_error_rate,
                breached=bad,
                reason=f"error rate {rate:.2%} over {c.requests} requests "
                f"{'>' if bad else '<='} max_error_rate {limits.max_error_rate:.2%}",
            )
        )
    if limits.max_p99_ms is not None and enough and c.p99_ms is not None:
        bad = c.p99_ms > limits.max_p99_ms
        out.append(
            GuardCheck(
                name="p99_latency",
                value=c.p99_ms,
                limit=limits.max_p99_ms,
                breached=bad,
                reason=f"p99 latency {c.p99_ms:.1f} ms {'>' if bad else '<='} "
                f"max_p99_ms {limits.max_p99_ms:g}",
            )
        )
    if (
        limits.max_output_drift is not None
        and not watching
        and obs.output_drift is not None
        and obs.output_rows >= limits.min_requests
    ):
        # far from the champion's outputs AND from its own on its training rows: a retrain
        # after real drift is far from a stale champion, but close to itself
        limit = limits.max_output_drift
        own = obs.reference_drift
        value = obs.output_drift if own is None else min(obs.output_drift, own)
        bad = value > limit
        mine = "" if own is None else f" and {own:.3f} from its own on its training rows"
        out.append(
            GuardCheck(
                name="output_drift",
                value=value,
                limit=limit,
                breached=bad,
                reason=f"the candidate's outputs over {obs.output_rows} rows are "
                f"{obs.output_drift:.3f} from the champion's on the same traffic{mine} "
                f"(Jensen-Shannon) {'>' if bad else '<='} max_output_drift {limit:g}",
            )
        )
    m = obs.candidate_metric
    if limits.metric_floor is not None and m.n >= limits.min_requests:
        higher, _ = ROLLOUT_METRICS.get(limits.metric or "", (True, ""))
        bad = m.mean < limits.metric_floor if higher else m.mean > limits.metric_floor
        word = ("below" if higher else "above") if bad else "within"
        out.append(
            GuardCheck(
                name="metric_floor",
                value=m.mean,
                limit=limits.metric_floor,
                breached=bad,
                reason=f"{limits.metric} {m.mean:.4g} over {m.n} labelled predictions, {word} "
                f"the floor {limits.metric_floor:g}",
            )
        )
    return tuple(out)


def _evidence(
    guards: Sequence[GuardCheck], decision: SequentialDecision | None, obs: Observations
) -> dict[str, Any]:
    return {
        "guards": [g.to_dict() for g in guards],
        "test": None if decision is None else decision.to_dict(),
        "requests": {"champion": obs.champion.requests, "challenger": obs.candidate.requests},
        "errors": {"champion": obs.champion.errors, "challenger": obs.candidate.errors},
        "output_drift": obs.output_drift,
    }


_ENDS: Mapping[str, tuple[Status, float | None]] = {
    "promote": ("watching", 1.0),
    "finish": ("promoted", None),
    "reject": ("rejected", 0.0),
    "rollback": ("rolled_back", 0.0),
    "cancel": ("cancelled", 0.0),
}


def _step(
    state: RolloutState,
    action: Action,
    why: str,
    *,
    now: datetime,
    reason: str | None = None,
    guards: tuple[GuardCheck, ...] = (),
    decision: SequentialDecision | None = None,
    recovered: bool = False,
    **changes: Any,
) -> RolloutStep:
    """The step ``action`` from ``state``: its status, share and times set as the action says
    (``promote`` -> watching at the whole traffic, an end -> its status, no traffic)."""
    if action in _ENDS:
        status, share = _ENDS[action]
        changes["status"] = status
        if share is not None:
            changes["share"] = share
        if action == "promote":
            changes["promoted_at"] = now
        else:
            changes["ended_at"] = now
    if reason is not None:
        changes["reason"] = reason
    return RolloutStep(
        state=replace(state, **changes),
        action=action,
        reason=why,
        guards=guards,
        decision=decision,
        recovered=recovered,
    )


def advance(
    policy: RolloutParams, state: RolloutState, obs: Observations, *, now: datetime
) -> RolloutStep:
    """One tick of the rollout ``state`` on the observations ``obs`` (see the module docstring).

    A state that has ended is returned unchanged with action ``none``.
    """
    if state.status not in ACTIVE:
        return RolloutStep(state=state, action="none", reason=f"rollout {state.status}")
    limits = policy.guard_limits()
    watching = state.status == "watching"
    guards = check_guards(limits, obs, watching=watching)
    breached = "; ".join(g.reason for g in guards if g.breached)
    if watching:
        ev = _evidence(guards, None, obs)
        if breached:
            return _step(
                state, "rollback", breached, now=now, guards=guards, evidence=ev,
                reason=f"guard breached after promotion: {breached}; v{state.champion} is "
                "champion again",
            )  # fmt: skip
        if now - (state.promoted_at or now) >= policy.watch_():
            return _step(
                state, "finish", "watch period over, no guard breached", now=now,
                guards=guards, evidence=ev,
                reason=f"v{state.candidate} kept its guards for the watch period",
            )  # fmt: skip
        return _step(state, "none", "watching", now=now, guards=guards, evidence=ev)
    if breached:
        return _step(
            state, "rollback", breached, now=now, guards=guards,
            evidence=_evidence(guards, None, obs),
            reason=f"guard breached: {breached}; traffic back to v{state.champion}",
        )  # fmt: skip

    test = policy.test()
    decision: SequentialDecision | None = None
    new_test = state.test
    at_horizon = now - state.started_at >= policy.max_duration_()
    if test is not None:
        # the arms are re-read in full each tick; the running p-value and sequence carry over
        fresh = SequentialState(
            champion=obs.champion_metric,
            candidate=obs.candidate_metric,
            difference=(obs.difference or ArmStats()) if test.paired else None,
            p_value=state.test.p_value,
            low=state.test.low,
            high=state.test.high,
            looks=state.test.looks,
        )
        new_test = test.update(
            fresh,
            champion=ArmStats(),
            candidate=ArmStats(),
            difference=ArmStats() if test.paired else None,
        )
        decision = test.decide(new_test, at_horizon=at_horizon)
    base = replace(state, test=new_test, evidence=_evidence(guards, decision, obs))

    def step(action: Action, why: str, **changes: Any) -> RolloutStep:
        return _step(base, action, why, now=now, guards=guards, decision=decision, **changes)

    outcome: str = decision.outcome if decision is not None else "continue"
    why = decision.reason if decision is not None else ""
    if outcome == "inconclusive" or (at_horizon and test is None):
        outcome = policy.on_inconclusive
        why = (
            f"inconclusive at the horizon ({why}); on_inconclusive: {outcome}"
            if test is not None
            else f"maximum duration reached without a test; on_inconclusive: {outcome}"
        )
    if outcome == "promote" and policy.strategy == "canary" and not at_horizon:
        outcome = "continue"  # a canary shown better still walks its steps
    if outcome in ("promote", "reject"):
        verb = "promoted" if outcome == "promote" else "rejected"
        action: Action = "promote" if outcome == "promote" else "reject"
        return step(action, why, reason=f"v{state.candidate} {verb}: {why}")

    rule = policy.step_rule()
    if rule is not None:
        duration, requests = rule
        since = state.step_started_at or state.started_at
        if now - since >= duration and obs.candidate.requests >= requests * (state.step + 1):
            share = policy.next_share(state.step)
            if share is None:  # the last step is done
                why = (
                    f"canary: {state.step + 1} step(s) passed their guards "
                    f"(last at {state.share:.0%} of traffic)"
                )
                return step("promote", why, reason=f"v{state.candidate} promoted: {why}")
            why = f"canary step {state.step + 2}: {state.share:.0%} -> {share:.0%} of traffic"
            return step(
                "step", why, reason=why, step=state.step + 1, share=share, step_started_at=now
            )
    return step("none", why or "running")


def reconcile(state: RolloutState, champion: int | None, *, now: datetime) -> RolloutStep:
    """Bring a stored rollout in line with where the champion alias points now.

    - ``running`` while the champion is already the candidate: a promotion whose state write
      was lost (a crash between the two): it is ``watching``.
    - ``watching`` while the champion is the previous one again: a rollback whose state write
      was lost: ``rolled_back``.
    - an active rollout whose champion is neither: someone moved it (a manual promote or
      rollback): ``cancelled``.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> t = datetime(2024, 1, 1, tzinfo=UTC)
    >>> s = RolloutState(pipeline="p", strategy="ab", candidate=2, champion=1,
    ...                  status="running", share=0.5, started_at=t)
    >>> reconcile(s, 1, now=t).action, reconcile(s, 2, now=t).state.status
    ('none', 'watching')
    >>> reconcile(s, 7, now=t).state.reason
    'the champion was moved to v7 outside the rollout: cancelled'
    """
    if state.status not in ACTIVE:
        return RolloutStep(state=state, action="none", reason=f"rollout {state.status}")
    serving = state.candidate if state.status == "watching" else state.champion
    if champion == serving:
        return RolloutStep(state=state, action="none", reason="in line")
    if state.status == "running" and champion == state.candidate:
        return _step(state, "promote", "the champion already is the candidate", now=now,
                     reason=f"v{state.candidate} promoted (recovered)", recovered=True)  # fmt: skip
    if state.status == "watching" and champion == state.champion:
        return _step(state, "rollback", "the champion already is the previous one", now=now,
                     reason=f"v{state.champion} is champion again (recovered)",
                     recovered=True)  # fmt: skip
    moved = "nowhere" if champion is None else f"v{champion}"
    why = f"the champion was moved to {moved} outside the rollout: cancelled"
    return _step(state, "cancel", f"champion moved to {moved}", now=now, reason=why)
