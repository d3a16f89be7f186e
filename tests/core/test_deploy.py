"""The deployment decision: pure, registry-driven, never serving an unblessed candidate."""

from __future__ import annotations

from typing import ClassVar, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retrainer.core.deploy import (
    CHAMPION,
    DEPLOYMENT_POLICIES,
    AliasChange,
    DeployContext,
    DeployDecision,
    DeploymentPolicy,
    ReplacePolicy,
    build_policy,
    decide,
    policy_class,
)
from retrainer.errors import ConfigError


def ctx(version: int = 3, *, blessed: bool = True, champion: int | None = 2) -> DeployContext:
    return DeployContext(pipeline="churn", version=version, blessed=blessed, champion=champion)


def test_replace_moves_the_champion_expecting_the_compared_one():
    decision = decide(ReplacePolicy(), ctx())
    assert decision.strategy == "replace"
    assert decision.moves == (AliasChange(alias=CHAMPION, version=3, expected=2),)
    assert decision.deploys
    assert decision.reason == "blessed: v3 replaces the champion (v2)"
    assert decision.evidence == {"candidate": 3, "champion": 2}


def test_replace_without_a_champion_expects_none():
    [move] = decide(ReplacePolicy(), ctx(1, champion=None)).moves
    assert move.expected is None and move.version == 1


@given(
    version=st.integers(1, 10_000),
    champion=st.none() | st.integers(1, 10_000),
    strategy=st.sampled_from(list(DEPLOYMENT_POLICIES.values())),
)
def test_an_unblessed_candidate_never_moves_an_alias(version, champion, strategy):
    decision = decide(strategy(), ctx(version, blessed=False, champion=champion))
    assert decision.moves == () and not decision.deploys
    assert decision.reason.startswith("not blessed")


def test_the_decision_is_frozen():
    decision = decide(ReplacePolicy(), ctx())
    with pytest.raises(AttributeError):
        decision.reason = "x"  # type: ignore[misc]


@pytest.mark.parametrize("spec", [None, {}, {"strategy": "replace"}, ReplacePolicy()])
def test_build_policy_defaults_to_replace(spec):
    assert build_policy(spec) == ReplacePolicy()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"strategy": "rolling"}, "strategy must be one of 'replace'.*; got 'rolling'"),
        ({"strategy": "replace", "steps": 3}, "unknown key 'steps' (value 3) for strategy"),
        ("replace", "expected a mapping such as {strategy: replace}"),
    ],
)
def test_build_policy_names_the_problem(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_policy(spec)


def test_spec_round_trip_and_description():
    policy = ReplacePolicy()
    assert policy.get_params() == {}
    assert policy.to_spec() == {"strategy": "replace"}
    assert build_policy(policy.to_spec()) == policy
    assert policy.describe() == "replace: a blessed candidate becomes the champion at once"
    assert policy_class("replace") is ReplacePolicy


def test_every_registered_strategy_has_a_distinct_name_and_round_trips():
    names = [cls.model_fields["strategy"].default for cls in DEPLOYMENT_POLICIES.values()]
    assert len(names) == len(set(names))
    for cls in DEPLOYMENT_POLICIES.values():
        built = build_policy(cls.example)
        assert build_policy(built.to_spec()) == built
        assert built.to_spec() == cls.example


class _Challenger(DeploymentPolicy):
    """A strategy the way the serving issue will add one: a class with its own literal."""

    strategy: Literal["challenger"] = "challenger"
    alias: str = "challenger"
    summary: ClassVar[str] = "a blessed candidate becomes the challenger"

    def decide(self, ctx: DeployContext) -> DeployDecision:
        move = AliasChange(alias=self.alias, version=ctx.version, expected=None)
        return DeployDecision(strategy=self.strategy, moves=(move,), reason="to challenger")


def test_a_new_strategy_is_one_subclass():
    policy = _Challenger(alias="shadow")
    assert policy.to_spec() == {"strategy": "challenger", "alias": "shadow"}
    assert policy.describe() == (
        "challenger (alias=shadow): a blessed candidate becomes the challenger"
    )
    assert [m.alias for m in decide(policy, ctx()).moves] == ["shadow"]
    assert decide(policy, ctx(blessed=False)).moves == ()  # the invariant holds for it too
