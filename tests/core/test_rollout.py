"""The rollout state machine (core/rollout.py) and the rollout policies (core/deploy.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from retrainer.core.deploy import (
    CanaryPolicy,
    DeployContext,
    ShadowPolicy,
    build_policy,
    decide,
)
from retrainer.core.rollout import (
    ArmStats,
    Observations,
    RolloutState,
    VariantHealth,
    advance,
    bucket,
    check_guards,
    metric_values,
    output_drift,
    reconcile,
    route,
    start_rollout,
)
from retrainer.errors import ConfigError, DataError

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def _ab(**kw):
    return build_policy({"strategy": "ab", "metric": "accuracy", "min_effect": 0.01, **kw})


def _arms(n: int, p_champion: float, p_candidate: float) -> dict:
    return {
        "champion_metric": ArmStats.from_sums(n=n, total=p_champion * n, total_sq=p_champion * n),
        "candidate_metric": ArmStats.from_sums(
            n=n, total=p_candidate * n, total_sq=p_candidate * n
        ),
    }


def _healthy(n: int = 1000) -> dict:
    return {
        "champion": VariantHealth(requests=n, errors=0, p99_ms=5.0),
        "candidate": VariantHealth(requests=n, errors=0, p99_ms=5.0),
    }


# --- policies -------------------------------------------------------------------------------


def test_a_rollout_strategy_makes_the_candidate_the_challenger_when_a_champion_serves():
    policy = _ab()
    ctx = DeployContext(pipeline="p", version=3, blessed=True, champion=2, aliases={"champion": 2})
    decision = decide(policy, ctx)
    assert decision.rollout
    assert [(m.alias, m.version, m.expected) for m in decision.moves] == [("challenger", 3, None)]


def test_without_a_champion_a_rollout_strategy_replaces():
    decision = decide(_ab(), DeployContext(pipeline="p", version=1, blessed=True, champion=None))
    assert not decision.rollout
    assert [(m.alias, m.version) for m in decision.moves] == [("champion", 1)]


def test_a_candidate_that_is_not_blessed_starts_nothing():
    decision = decide(_ab(), DeployContext(pipeline="p", version=3, blessed=False, champion=2))
    assert decision.moves == () and not decision.rollout


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"strategy": "ab"}, "an ab rollout needs a metric"),
        ({"strategy": "ab", "metric": "roc_auc"}, "metric 'roc_auc' is not a mean"),
        ({"strategy": "ab", "metric": "accuracy"}, "tau is required when min_effect is 0"),
        ({"strategy": "canary", "steps": [0.5, 0.2]}, "steps must be increasing"),
        ({"strategy": "canary", "steps": [0.5, 1.5]}, r"rollout.steps\[1\]"),
        ({"strategy": "ab", "metric": "ctr", "tau": 0.01, "split": 0}, "rollout.split"),
        ({"strategy": "shadow", "guards": {"max_error": 1}}, "guards.max_error"),
        ({"strategy": "canary", "step_duration": "soon"}, "rollout.step_duration"),
    ],
)
def test_bad_rollout_configs_name_the_key(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_policy(spec)


def test_the_shadow_test_is_paired_and_a_loss_is_lower_is_better():
    shadow = ShadowPolicy.model_validate({"metric": "log_loss", "tau": 0.05})
    test = shadow.test()
    assert test is not None and test.paired and not test.higher_is_better


# --- routing ---------------------------------------------------------------------------------


def _state(**kw) -> RolloutState:
    base = {
        "pipeline": "p",
        "strategy": "ab",
        "candidate": 2,
        "champion": 1,
        "status": "running",
        "share": 0.5,
        "started_at": T0,
    }
    return RolloutState(**{**base, **kw})


@pytest.mark.parametrize("share", [0.05, 0.5, 0.9])
def test_the_split_is_within_binomial_bounds_and_sticky(share):
    state = _state(share=share)
    n = 20_000
    picks = [route(state, f"user-{i}") for i in range(n)]
    k = picks.count("challenger")
    sd = (n * share * (1 - share)) ** 0.5
    assert abs(k - n * share) < 3.3 * sd  # 99.9% two-sided
    assert all(route(state, f"user-{i}") == picks[i] for i in range(0, n, 97))


def test_routing_is_salted_by_rollout_and_off_when_not_running():
    keys = [f"k{i}" for i in range(2000)]
    a = [bucket(k, "p:v2") < 0.5 for k in keys]
    b = [bucket(k, "p:v3") < 0.5 for k in keys]
    assert 0.4 < np.mean(np.array(a) == np.array(b)) < 0.6  # independent splits
    assert {route(_state(status="watching"), k) for k in keys} == {"champion"}
    assert {route(None, k) for k in keys} == {"champion"}
    assert {route(_state(strategy="shadow", share=1.0), k) for k in keys} == {"shadow"}


# --- metrics and drift -----------------------------------------------------------------------


def test_metric_values_by_hand():
    assert metric_values("error_rate", predictions=["a", "b"], outcomes=["a", "a"]).tolist() == [
        0.0,
        1.0,
    ]
    assert metric_values("mae", predictions=[1.0, 3.0], outcomes=[2.0, 3.0]).tolist() == [1.0, 0.0]
    assert metric_values("mse", predictions=[1.0, 4.0], outcomes=[3.0, 3.0]).tolist() == [4.0, 1.0]
    loss = metric_values("log_loss", predictions=[1], outcomes=[1], scores=[0.5])
    assert loss[0] == pytest.approx(np.log(2))
    with pytest.raises(DataError, match="numeric outcomes"):
        metric_values("value", predictions=[1], outcomes=["yes"])
    with pytest.raises(DataError, match="0/1 outcomes"):
        metric_values("log_loss", predictions=[1], outcomes=[2], scores=[0.5])


def test_output_drift_tells_a_broken_model_from_a_healthy_one():
    rng = np.random.default_rng(1)
    champion = rng.beta(2, 5, 3000)
    assert output_drift(champion, rng.beta(2, 5, 3000)) < 0.05
    assert output_drift(champion, np.full(3000, 0.99)) > 0.9
    assert output_drift([], [1.0]) is None


# --- the state machine -----------------------------------------------------------------------


def test_an_ab_that_shows_the_candidate_better_promotes_then_watches_then_completes():
    policy = _ab(watch="2h")
    state = start_rollout(policy, pipeline="p", candidate=2, champion=1, now=T0)
    step = advance(policy, state, Observations(**_healthy(), **_arms(5000, 0.80, 0.85)), now=T0)
    assert step.action == "promote" and step.state.status == "watching"
    assert step.decision is not None and step.decision.low > 0
    later = advance(policy, step.state, Observations(**_healthy()), now=T0 + timedelta(hours=1))
    assert later.action == "none" and later.state.status == "watching"
    done = advance(policy, later.state, Observations(**_healthy()), now=T0 + timedelta(hours=3))
    assert done.action == "finish" and done.state.status == "promoted"
    assert advance(policy, done.state, Observations(), now=T0).action == "none"


def test_an_ab_that_shows_the_candidate_worse_rejects():
    policy = _ab()
    state = start_rollout(policy, pipeline="p", candidate=2, champion=1, now=T0)
    step = advance(policy, state, Observations(**_healthy(), **_arms(5000, 0.85, 0.80)), now=T0)
    assert step.action == "reject" and step.state.status == "rejected" and step.state.share == 0


def test_too_few_samples_continue_and_the_horizon_applies_on_inconclusive():
    policy = _ab(max_duration="1d", on_inconclusive="promote")
    state = start_rollout(policy, pipeline="p", candidate=2, champion=1, now=T0)
    step = advance(policy, state, Observations(**_healthy(), **_arms(50, 0.8, 0.9)), now=T0)
    assert step.action == "none" and step.state.status == "running"
    end = advance(policy, step.state, Observations(**_healthy(), **_arms(50, 0.8, 0.8)),
                  now=T0 + timedelta(days=1))  # fmt: skip
    assert end.action == "promote" and "on_inconclusive: promote" in end.reason
    keep = _ab(max_duration="1d")
    end = advance(keep, step.state, Observations(**_healthy(), **_arms(50, 0.8, 0.8)),
                  now=T0 + timedelta(days=1))  # fmt: skip
    assert end.action == "reject"


def test_the_running_evidence_survives_a_restart_as_json():
    policy = _ab()
    state = start_rollout(policy, pipeline="p", candidate=2, champion=1, now=T0)
    step = advance(policy, state, Observations(**_healthy(), **_arms(3000, 0.8, 0.81)), now=T0)
    assert step.state.test.looks == 1
    again = RolloutState.from_dict(step.state.to_dict())
    assert again == step.state


def test_the_confidence_sequence_only_narrows_across_ticks():
    policy = _ab(min_effect=0.0, tau=0.02)
    state = start_rollout(policy, pipeline="p", candidate=2, champion=1, now=T0)
    rng = np.random.default_rng(3)
    lows, highs = [], []
    a_tot = b_tot = 0.0
    for tick in range(1, 30):
        a_tot += rng.binomial(200, 0.8)
        b_tot += rng.binomial(200, 0.8)
        n = 200 * tick
        obs = Observations(
            **_healthy(),
            champion_metric=ArmStats.from_sums(n=n, total=a_tot, total_sq=a_tot),
            candidate_metric=ArmStats.from_sums(n=n, total=b_tot, total_sq=b_tot),
        )
        state = advance(policy, state, obs, now=T0 + timedelta(hours=tick)).state
        lows.append(state.test.low)
        highs.append(state.test.high)
    assert lows == sorted(lows) and highs == sorted(highs, reverse=True)


@pytest.mark.parametrize(
    ("health", "drift", "guard"),
    [
        (VariantHealth(requests=500, errors=50), None, "error_rate"),
        (VariantHealth(requests=500, errors=0, p99_ms=500.0), None, "p99_latency"),
        (VariantHealth(requests=500, errors=0), 2.0, "output_drift"),
    ],
)
def test_a_breached_guard_rolls_back_at_once(health, drift, guard):
    policy = _ab(guards={"max_p99_ms": 100})
    state = start_rollout(policy, pipeline="p", candidate=2, champion=1, now=T0)
    obs = Observations(candidate=health, output_drift=drift, output_rows=500,
                       **_arms(5000, 0.80, 0.90))  # fmt: skip
    step = advance(policy, state, obs, now=T0)
    assert step.action == "rollback" and step.state.status == "rolled_back"
    assert [g.name for g in step.guards if g.breached] == [guard]
    assert step.state.share == 0


def test_guards_wait_for_enough_requests():
    checks = check_guards(_ab().guard_limits(), Observations(
        candidate=VariantHealth(requests=10, errors=10)))  # fmt: skip
    assert checks == ()


def test_the_metric_floor_and_a_guard_after_promotion_roll_the_champion_back():
    policy = _ab(guards={"metric_floor": 0.7})
    state = _state(status="watching", promoted_at=T0)
    obs = Observations(candidate=VariantHealth(requests=500), **_arms(500, 0.8, 0.6))
    step = advance(policy, state, obs, now=T0 + timedelta(minutes=5))
    assert step.action == "rollback" and step.state.status == "rolled_back"
    assert "below the floor 0.7" in step.reason


def test_a_canary_walks_its_steps_then_promotes():
    policy = CanaryPolicy.model_validate(
        {"steps": [0.1, 0.5, 1.0], "step_duration": "1h", "step_requests": 100}
    )
    state = start_rollout(policy, pipeline="p", candidate=2, champion=1, now=T0)
    assert state.share == 0.1
    obs = Observations(candidate=VariantHealth(requests=150))
    assert advance(policy, state, obs, now=T0 + timedelta(minutes=30)).action == "none"
    s1 = advance(policy, state, obs, now=T0 + timedelta(hours=1))
    assert (s1.action, s1.state.share, s1.state.step) == ("step", 0.5, 1)
    starved = advance(policy, s1.state, obs, now=T0 + timedelta(hours=2))
    assert starved.action == "none"  # 150 requests < 2 steps x 100
    obs = Observations(candidate=VariantHealth(requests=400))
    s2 = advance(policy, s1.state, obs, now=T0 + timedelta(hours=2))
    assert (s2.action, s2.state.share) == ("step", 1.0)
    s3 = advance(policy, s2.state, obs, now=T0 + timedelta(hours=3))
    assert s3.action == "promote" and s3.state.status == "watching"


def test_reconcile_repairs_a_lost_state_write_and_cancels_a_manual_move():
    running = _state()
    assert reconcile(running, 1, now=T0).action == "none"
    assert reconcile(running, 2, now=T0).state.status == "watching"
    assert reconcile(running, 9, now=T0).state.status == "cancelled"
    watching = _state(status="watching", promoted_at=T0)
    assert reconcile(watching, 2, now=T0).action == "none"
    assert reconcile(watching, 1, now=T0).state.status == "rolled_back"
    assert reconcile(_state(status="rejected"), 1, now=T0).action == "none"
