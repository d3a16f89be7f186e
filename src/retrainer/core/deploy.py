"""The deployment decision: what a blessed candidate does to the serving aliases.

A deployment policy is a small configurable object (the ``deploy:`` key of a pipeline) with a
pure :meth:`~DeploymentPolicy.decide`: given a :class:`DeployContext` (the registered candidate,
its blessing, the champion it was compared with, the aliases now) it returns a
:class:`DeployDecision` (which alias moves to which version, expecting which current version,
and why). The engine's deploy step applies it; nothing here touches a store.

Today there is one strategy, ``replace`` (a blessed candidate becomes the champion at once).
A new strategy (shadow, canary, A/B test) is one :class:`DeploymentPolicy` subclass with its
own ``strategy`` literal, added to :data:`DEPLOYMENT_POLICIES`; the configuration schema,
:func:`build_policy` and :func:`policy_class` follow from that tuple.

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

import functools
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    TypeAdapter,
    ValidationError,
)

from retrainer.core.types import CHAMPION
from retrainer.errors import ConfigError

__all__ = [
    "CHAMPION",
    "DEPLOYMENT_POLICIES",
    "AliasChange",
    "DeployContext",
    "DeployDecision",
    "DeploySpec",
    "DeploymentPolicy",
    "ReplacePolicy",
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

    @property
    def deploys(self) -> bool:
        """Whether any alias moves."""
        return bool(self.moves)


class DeploymentPolicy(BaseModel):
    """Base of the deployment strategies: parameters are the model's fields, validated once.

    A subclass sets ``strategy: Literal["<name>"] = "<name>"`` (the key that selects it in
    ``deploy: {strategy: ...}``), declares its parameters as fields and implements
    :meth:`decide` (pure: the context in, a decision out). It is only asked about blessed
    candidates (see :func:`decide`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str
    summary: ClassVar[str] = ""
    """One line for :meth:`describe`, in words."""

    def decide(self, ctx: DeployContext) -> DeployDecision:
        raise NotImplementedError  # pragma: no cover

    def get_params(self) -> dict[str, Any]:
        """The parameters, as configured (the strategy's name left out)."""
        return self.model_dump(mode="json", exclude={"strategy"})

    def to_spec(self) -> dict[str, Any]:
        """The ``deploy:`` mapping that builds this policy back (:func:`build_policy`)."""
        return {"strategy": self.strategy, **self.get_params()}

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

    def decide(self, ctx: DeployContext) -> DeployDecision:
        was = f"v{ctx.champion}" if ctx.champion is not None else "none yet"
        return DeployDecision(
            strategy=self.strategy,
            moves=(AliasChange(alias=CHAMPION, version=ctx.version, expected=ctx.champion),),
            reason=f"blessed: v{ctx.version} replaces the champion ({was})",
            evidence={"candidate": ctx.version, "champion": ctx.champion},
        )


DEPLOYMENT_POLICIES: tuple[type[DeploymentPolicy], ...] = (ReplacePolicy,)
"""Every strategy, selected by its ``strategy`` field; a new one is added here."""

# the tagged union of the registry: validation with key paths, and the JSON schema
_UNION: Any = functools.reduce(operator.or_, DEPLOYMENT_POLICIES)
_SPEC: TypeAdapter[DeploymentPolicy] = TypeAdapter(
    Annotated[_UNION, Field(discriminator="strategy")]
)


def policy_class(strategy: str) -> type[DeploymentPolicy]:
    """The policy class registered under ``strategy``.

    Examples
    --------
    >>> policy_class("replace").__name__
    'ReplacePolicy'
    """
    for cls in DEPLOYMENT_POLICIES:
        if cls.model_fields["strategy"].default == strategy:
            return cls
    known = ", ".join(repr(c.model_fields["strategy"].default) for c in DEPLOYMENT_POLICIES)
    raise ConfigError(f"strategy must be one of {known}; got {strategy!r}")


def build_policy(spec: Mapping[str, Any] | DeploymentPolicy | None = None) -> DeploymentPolicy:
    """A policy from its ``deploy:`` mapping (None: the default, ``replace``).

    ``strategy`` defaults to ``replace``; an unknown strategy or key raises ``ConfigError``.

    Examples
    --------
    >>> build_policy(None)
    ReplacePolicy(strategy='replace')
    >>> build_policy({"strategy": "rolling"})
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: strategy must be one of 'replace'; got 'rolling'
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
    strategy = policy_class(str(data["strategy"])).model_fields["strategy"].default
    try:
        return _SPEC.validate_python(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(map(str, err["loc"][1:]))  # [0] is the strategy's tag
            if err["type"] == "extra_forbidden":
                problems.append(
                    f"unknown key {key!r} (value {err['input']!r}) for strategy "
                    f"{strategy!r}; remove it"
                )
            else:
                problems.append(f"{key}: {err['msg']}")
        raise ConfigError("; ".join(problems)) from None


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
