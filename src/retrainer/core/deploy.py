"""The deployment decision: what a blessed candidate does to the serving aliases.

A deployment policy is a small configurable object (the ``deploy:`` key of a pipeline) with a
pure :meth:`~DeploymentPolicy.decide`: given a :class:`DeployContext` (the registered candidate,
its blessing, the champion it was compared with, the aliases now) it returns a
:class:`DeployDecision` (which alias moves to which version, expecting which current version,
and why). The engine's deploy step applies it; nothing here touches a store.

The strategies: ``replace`` (a blessed candidate becomes the champion at once, the default),
and the rollouts on live traffic, ``shadow``, ``canary`` and ``ab``: while a champion serves,
a blessed candidate gets the ``challenger`` alias and a rollout starts, whose state machine
(:mod:`retrainer.core.rollout`) the controller advances on its ticks with a sequential test
and guards. Without a champion there is nothing to compare with, and a rollout strategy
replaces too. A new strategy is one :class:`DeploymentPolicy` subclass with its own
``strategy`` literal, added to the registry :data:`DEPLOYMENT_POLICIES`; the configuration
schema, :func:`build_policy` and :func:`policy_class` follow from it. Policies are
:class:`~retrainer.core._spec.Spec` objects, declared as the other configurable families are.

Whatever the policy, :func:`decide` never serves a candidate that was not blessed.

Examples
--------
>>> policy = build_policy({"strategy": "replace"})
>>> decision = decide(policy, DeployContext(pipeline="churn", version=3, blessed=True,
...                                         champion=2, run_id=7))
>>> [(m.alias, m.version, m.expected) for m in decision.moves]
[('champion', 3, 2)]
>>> decide(policy, DeployContext(pipeline="churn", version=4, blessed=False,
...                              champion=3, run_id=8)).moves
()
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)

from retrainer.core._spec import (
    Count,
    Duration,
    MetricName,
    NonNegative,
    Number,
    OptionalCount,
    OptionalNumber,
    PositiveNumber,
    Registry,
    Share,
    Spec,
)
from retrainer.core.rollout import (
    CHALLENGER,
    ROLLOUT_METRICS,
    GuardLimits,
    check_rollout_metric,
)
from retrainer.core.sequential import SequentialTest
from retrainer.core.types import CHAMPION
from retrainer.errors import ConfigError

__all__ = [
    "CHAMPION",
    "DEPLOYMENT_POLICIES",
    "ABPolicy",
    "AliasChange",
    "CanaryPolicy",
    "DeployContext",
    "DeployDecision",
    "DeploySpec",
    "DeploymentPolicy",
    "Guards",
    "ReplacePolicy",
    "RolloutPolicy",
    "ShadowPolicy",
    "build_policy",
    "decide",
    "policy_class",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeployContext:
    """What a deployment policy decides on: one registered candidate and the aliases now.

    Parameters
    ----------
    pipeline
        The pipeline's name.
    version
        The candidate's registered version.
    blessed
        Whether the gate blessed it.
    champion
        The champion the candidate was compared with (None: there was none). An alias move
        is a compare-and-set against it, so a champion changed by someone else meanwhile is
        not overwritten.
    run_id
        The run that trained the candidate.
    aliases
        Every alias of the pipeline and its version, as read before deciding.
    """

    pipeline: str
    version: int
    blessed: bool
    champion: int | None
    run_id: int | None = None
    aliases: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class AliasChange:
    """Point ``alias`` at ``version``, provided it still points at ``expected``."""

    alias: str
    version: int
    expected: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeployDecision:
    """What to do with a candidate: the alias moves (in order), why, and on what evidence.

    No moves means the candidate stays registered and serves nobody.
    """

    strategy: str
    moves: tuple[AliasChange, ...]
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    rollout: bool = False
    """Whether the moves start a rollout (the candidate became the ``challenger``)."""

    @property
    def deploys(self) -> bool:
        """Whether any alias moves."""
        return bool(self.moves)


class DeploymentPolicy(Spec):
    """Base of the deployment strategies: a :class:`~retrainer.core._spec.Spec`.

    A subclass sets ``strategy: Literal["<name>"] = "<name>"`` (the key that selects it in
    ``deploy: {strategy: ...}``), declares its parameters as fields and implements
    :meth:`decide` (pure: the context in, a decision out). It is only asked about blessed
    candidates (see :func:`decide`).
    """

    model_config = ConfigDict(frozen=True)
    kind_key: ClassVar[str] = "strategy"

    strategy: str
    summary: ClassVar[str] = ""
    """One line for :meth:`describe`, in words."""

    def decide(self, ctx: DeployContext) -> DeployDecision:
        raise NotImplementedError  # pragma: no cover

    def to_spec(self) -> dict[str, Any]:
        """The ``deploy:`` mapping that builds this policy back (:func:`build_policy`)."""
        return {"strategy": self.strategy, **super().to_spec()}

    def describe(self) -> str:
        """A human line: the strategy and what it does."""
        params = ", ".join(f"{k}={v}" for k, v in self.get_params().items())
        return f"{self.strategy}{f' ({params})' if params else ''}: {self.summary}"


class ReplacePolicy(DeploymentPolicy):
    """A blessed candidate replaces the champion at once.

    Examples
    --------
    >>> ReplacePolicy().describe()
    'replace: a blessed candidate becomes the champion at once'
    >>> ReplacePolicy().decide(DeployContext(pipeline="p", version=1, blessed=True,
    ...                                      champion=None)).reason
    'blessed: v1 replaces the champion (none yet)'
    """

    strategy: Literal["replace"] = "replace"
    summary: ClassVar[str] = "a blessed candidate becomes the champion at once"
    example: ClassVar[Mapping[str, Any] | None] = {"strategy": "replace"}

    def decide(self, ctx: DeployContext) -> DeployDecision:
        was = f"v{ctx.champion}" if ctx.champion is not None else "none yet"
        return DeployDecision(
            strategy=self.strategy,
            moves=(AliasChange(alias=CHAMPION, version=ctx.version, expected=ctx.champion),),
            reason=f"blessed: v{ctx.version} replaces the champion ({was})",
            evidence={"candidate": ctx.version, "champion": ctx.champion},
        )


def _duration_as_given(value: Any) -> Any:
    TypeAdapter(Duration).validate_python(value)  # raises with the duration's message
    return value


# checked as a duration, kept as written: a config read and written back is the one read
KeptDuration = Annotated[
    str | timedelta,
    PlainValidator(_duration_as_given),
    WithJsonSchema({"type": "string", "examples": ["1h", "7d"]}),
]


class Guards(BaseModel):
    """The guards of a rollout (``guards:`` of a ``shadow``, ``canary`` or ``ab`` strategy).

    Any breach ends the rollout at once: traffic back to the champion, or after the promotion
    (during ``watch``) the previous champion back; an alert goes out. ``null`` turns a guard
    off.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_error_rate: OptionalNumber = Field(
        0.05, description="Share of the candidate's requests that fail (0.05 = 5%)."
    )
    max_p99_ms: PositiveNumber = Field(
        None, description="p99 latency of the candidate's requests, in milliseconds."
    )
    max_output_drift: OptionalNumber = Field(
        0.5,
        description="Jensen-Shannon distance (0 same, 1 disjoint) of the candidate's outputs "
        "from the champion's on the same traffic: catches a broken model before any label "
        "arrives.",
    )
    metric_floor: OptionalNumber = Field(
        None,
        description="The rollout's metric on the candidate's labelled predictions must stay "
        "above this (below, for a loss).",
    )
    min_requests: Count = Field(
        100, description="Requests (rows for the metric) before the guards judge."
    )


class RolloutPolicy(DeploymentPolicy):
    """Base of the strategies that try a blessed candidate on live traffic before it replaces
    the champion: the candidate becomes the ``challenger`` and a rollout starts
    (:mod:`retrainer.core.rollout`). Without a champion the candidate replaces at once."""

    metric: MetricName | None = Field(
        None,
        description="The per-prediction metric the sequential test decides on (accuracy, "
        "error_rate, log_loss, ctr, rate, value, mae, mse); none: no test (canary only).",
    )
    alpha: Number = Field(
        0.05,
        description="The test's level: at most this chance of "
        "promoting a candidate no better than the champion.",
    )
    min_effect: NonNegative = Field(
        0.0, description="The smallest improvement worth serving, in the metric's units."
    )
    tau: PositiveNumber = Field(
        None, description="The mixture's scale in the metric's units (default: min_effect)."
    )
    min_samples: Count = Field(200, description="Labelled predictions per arm before a look.")
    max_samples: OptionalCount = Field(None, description="Horizon in labelled predictions.")
    max_duration: KeptDuration = Field("7d", description="Horizon in time from the start.")
    on_inconclusive: Literal["reject", "promote"] = Field(
        "reject", description="What an undecided test does at the horizon."
    )
    watch: KeptDuration = Field(
        "1h", description="How long the guards still watch the candidate once promoted."
    )
    guards: Guards = Field(default_factory=Guards)

    @model_validator(mode="after")
    def _consistent(self) -> RolloutPolicy:
        try:
            self._check()
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def _check(self) -> None:
        if self.metric is not None:
            check_rollout_metric(self.metric)
        self.test()

    def to_spec(self) -> dict[str, Any]:
        # a guard turned off (null) must stay off when the spec is read back: exclude_none
        # would drop it and its default (on) would return
        spec = super().to_spec()
        defaults = {k: f.default for k, f in Guards.model_fields.items()}
        off = {
            k: None for k, v in dict(self.guards).items() if v is None and defaults[k] is not None
        }
        if off:
            spec["guards"] = {**spec.get("guards", {}), **off}
        return spec

    def describe(self) -> str:
        given = {k: v for k, v in self.to_spec().items() if k != "strategy"}
        params = ", ".join(f"{k}={v}" for k, v in given.items())
        return f"{self.strategy}{f' ({params})' if params else ''}: {self.summary}"

    def test(self) -> SequentialTest | None:
        """The sequential test (None without a ``metric``)."""
        if self.metric is None:
            return None
        check_rollout_metric(self.metric)
        higher, _ = ROLLOUT_METRICS[self.metric]
        return SequentialTest(
            alpha=float(self.alpha),
            min_effect=float(self.min_effect),
            tau=None if self.tau is None else float(self.tau),
            min_samples=int(self.min_samples),
            max_samples=self.max_samples,
            higher_is_better=higher,
            paired=self.strategy == "shadow",
        )

    def guard_limits(self) -> GuardLimits:
        g = self.guards if isinstance(self.guards, Guards) else Guards(**dict(self.guards))
        return GuardLimits(
            max_error_rate=g.max_error_rate,
            max_p99_ms=g.max_p99_ms,
            max_output_drift=g.max_output_drift,
            metric_floor=g.metric_floor,
            metric=self.metric,
            min_requests=int(g.min_requests),
        )

    def initial_share(self) -> float:
        raise NotImplementedError  # pragma: no cover

    def next_share(self, step: int) -> float | None:
        return None

    def step_rule(self) -> tuple[timedelta, int] | None:
        return None

    def max_duration_(self) -> timedelta:
        return _span(self.max_duration)

    def watch_(self) -> timedelta:
        return _span(self.watch)

    def decide(self, ctx: DeployContext) -> DeployDecision:
        if ctx.champion is None:
            return DeployDecision(
                strategy=self.strategy,
                moves=(AliasChange(alias=CHAMPION, version=ctx.version, expected=None),),
                reason=f"blessed: v{ctx.version} becomes the champion (none yet, so no "
                f"{self.strategy} rollout)",
                evidence={"candidate": ctx.version, "champion": None},
            )
        return DeployDecision(
            strategy=self.strategy,
            moves=(
                AliasChange(
                    alias=CHALLENGER, version=ctx.version, expected=ctx.aliases.get(CHALLENGER)
                ),
            ),
            reason=f"blessed: v{ctx.version} is the challenger; a {self.strategy} rollout "
            f"against v{ctx.champion} decides",
            evidence={"candidate": ctx.version, "champion": ctx.champion},
            rollout=True,
        )


def _span(value: Any) -> timedelta:
    from retrainer.core.windows import parse_duration

    return value if isinstance(value, timedelta) else parse_duration(str(value))


class ShadowPolicy(RolloutPolicy):
    """The candidate scores a sampled copy of the traffic and answers nobody; once the labels
    arrive a paired test on the same rows decides.

    Examples
    --------
    >>> ShadowPolicy(metric="accuracy", min_effect=0.01).describe()  # doctest: +ELLIPSIS
    'shadow (metric=accuracy, min_effect=0.01): the candidate scores a copy of the traffic...'
    """

    strategy: Literal["shadow"] = "shadow"
    summary: ClassVar[str] = (
        "the candidate scores a copy of the traffic, answering nobody; a paired sequential "
        "test on the same rows decides"
    )
    example: ClassVar[Mapping[str, Any] | None] = {
        "strategy": "shadow",
        "metric": "accuracy",
        "min_effect": 0.01,
    }
    sample: Share = Field(1.0, description="Share of the requests the candidate scores too.")

    def initial_share(self) -> float:
        return float(self.sample if self.sample is not None else 1.0)


class CanaryPolicy(RolloutPolicy):
    """Steps of traffic share, each held for a minimum time and number of requests with its
    guards checked; after the last the candidate is promoted. A ``metric`` adds the sequential
    test, which can reject the candidate on the way.

    Examples
    --------
    >>> CanaryPolicy(steps=[0.1, 0.5, 1.0]).next_share(0), CanaryPolicy().initial_share()
    (0.5, 0.05)
    """

    strategy: Literal["canary"] = "canary"
    summary: ClassVar[str] = "steps of traffic share with guards at each step, then the champion"
    example: ClassVar[Mapping[str, Any] | None] = {
        "strategy": "canary",
        "steps": [0.05, 0.25, 0.5, 1.0],
        "step_duration": "1h",
    }
    steps: list[Share] = Field(
        default_factory=lambda: [0.05, 0.25, 0.5, 1.0],  # type: ignore[arg-type]
        description="The candidate's traffic share at each step, increasing.",
    )
    step_duration: KeptDuration = Field("1h", description="Minimum time per step.")
    step_requests: Count = Field(100, description="Minimum candidate requests per step.")

    def _check(self) -> None:
        super()._check()
        shares = [float(s or 0) for s in self.steps]
        if not shares or any(b <= a for a, b in itertools.pairwise(shares)):
            raise ConfigError(f"steps must be increasing shares in (0, 1]; got {self.steps!r}")

    def initial_share(self) -> float:
        return float(self.steps[0] or 0)

    def next_share(self, step: int) -> float | None:
        return float(self.steps[step + 1] or 0) if step + 1 < len(self.steps) else None

    def step_rule(self) -> tuple[timedelta, int] | None:
        return _span(self.step_duration), int(self.step_requests)


class ABPolicy(RolloutPolicy):
    """A split of the traffic, sticky by request key, decided by the sequential test.

    Examples
    --------
    >>> ABPolicy(metric="ctr", min_effect=0.001).test().higher_is_better
    True
    """

    strategy: Literal["ab"] = "ab"
    summary: ClassVar[str] = (
        "a sticky split of the traffic; a sequential test decides promote or reject"
    )
    example: ClassVar[Mapping[str, Any] | None] = {
        "strategy": "ab",
        "split": 0.5,
        "metric": "accuracy",
        "min_effect": 0.01,
    }
    split: Share = Field(0.5, description="The candidate's share of the traffic.")

    def _check(self) -> None:
        super()._check()
        if self.metric is None:
            raise ConfigError(
                "an ab rollout needs a metric for its sequential test, e.g. "
                "metric: accuracy (or ctr for clicks)"
            )

    def initial_share(self) -> float:
        return float(self.split if self.split is not None else 0.5)


_UNION: Any = Annotated[
    ReplacePolicy | ShadowPolicy | CanaryPolicy | ABPolicy, Field(discriminator="strategy")
]

DEPLOYMENT_POLICIES: Registry[DeploymentPolicy] = Registry("deployment policy", _UNION)
"""Strategy -> policy class; a new strategy is added to the union above."""


def policy_class(strategy: str) -> type[DeploymentPolicy]:
    """The policy class registered under ``strategy``.

    Examples
    --------
    >>> policy_class("replace").__name__
    'ReplacePolicy'
    """
    if strategy in DEPLOYMENT_POLICIES:
        return DEPLOYMENT_POLICIES[strategy]
    known = ", ".join(map(repr, DEPLOYMENT_POLICIES))
    raise ConfigError(f"strategy must be one of {known}; got {strategy!r}")


def build_policy(spec: Mapping[str, Any] | DeploymentPolicy | None = None) -> DeploymentPolicy:
    """A policy from its ``deploy:`` mapping (None: the default, ``replace``).

    ``strategy`` defaults to ``replace``; an unknown strategy or key raises ``ConfigError``.

    Examples
    --------
    >>> build_policy(None)
    ReplacePolicy(strategy='replace')
    >>> build_policy({"strategy": "rolling"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: strategy must be one of 'replace'...; got 'rolling'
    >>> build_policy({"steps": 3})
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: unknown key 'steps' (value 3) for strategy 'replace'; remove it
    """
    if spec is None:
        return ReplacePolicy()
    if isinstance(spec, DeploymentPolicy):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(f"expected a mapping such as {{strategy: replace}}; got {spec!r}")
    data = {"strategy": "replace", **spec}
    cls = policy_class(str(data["strategy"]))
    strategy = cls.spec_kind()
    unknown = [
        f"unknown key {key!r} (value {value!r}) for strategy {strategy!r}; remove it"
        for key, value in data.items()
        if key not in cls.model_fields
    ]
    if unknown:
        raise ConfigError("; ".join(unknown), unknown)
    return DEPLOYMENT_POLICIES.build(strategy, data, "rollout")


DeploySpec = Annotated[
    DeploymentPolicy,
    PlainValidator(build_policy, json_schema_input_type=_UNION),
    PlainSerializer(lambda policy: policy.to_spec(), return_type=dict[str, Any]),
]
"""The type of a ``deploy:`` configuration value (a Pydantic field): a mapping in, a policy
out, the strategies' JSON schema."""


def decide(policy: DeploymentPolicy, ctx: DeployContext) -> DeployDecision:
    """The policy's decision for ``ctx``; a candidate that is not blessed never moves an alias.

    Examples
    --------
    >>> decide(ReplacePolicy(), DeployContext(pipeline="p", version=2, blessed=False,
    ...                                       champion=1)).reason
    'not blessed: v2 is registered and serves nobody'
    """
    if not ctx.blessed:
        return DeployDecision(
            strategy=policy.strategy,
            moves=(),
            reason=f"not blessed: v{ctx.version} is registered and serves nobody",
            evidence={"candidate": ctx.version, "champion": ctx.champion},
        )
    return policy.decide(ctx)
