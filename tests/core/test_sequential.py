"""The mSPRT that decides a rollout: the paper's formula by hand, validity under peeking,
the decision rule, and a state that survives a restart."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from retrainer.core.sequential import (
    ArmStats,
    SequentialState,
    SequentialTest,
    msprt_likelihood_ratio,
    msprt_radius,
)


def _bernoulli(n: int, ones: int) -> ArmStats:
    return ArmStats.of([1.0] * ones + [0.0] * (n - ones))


# -- the formula, by hand ---------------------------------------------------------------------


def test_hand_computed_case_matches_the_papers_two_stream_formula() -> None:
    # 10 rows per arm, 3 vs 6 successes, tau = 0.1. Johari et al.'s two-stream statistic with
    # the Bernoulli plug-in V = 0.3*0.7 + 0.6*0.4 = 0.45, n = 10, n tau^2 = 0.1:
    # Lambda = sqrt(0.45 / 0.55) * exp(10^2 * 0.01 * 0.3^2 / (2 * 0.45 * 0.55))
    #        = 0.9045340 * exp(0.09 / 0.495) = 0.9045340 * 1.1994... = 1.08489...
    lam = math.sqrt(0.45 / 0.55) * math.exp(0.09 / 0.495)
    assert lam == pytest.approx(1.0848948, abs=1e-6)
    # confidence radius: sqrt(v (v + tau^2) / tau^2 * (2 ln 20 + ln((v + tau^2) / v))), v = 0.045
    radius = math.sqrt(0.045 * 0.055 / 0.01 * (2 * math.log(20) + math.log(0.055 / 0.045)))
    assert radius == pytest.approx(1.23799, abs=1e-4)

    test = SequentialTest(tau=0.1, min_samples=10)
    state = test.update(test.start(), champion=_bernoulli(10, 3), candidate=_bernoulli(10, 6))
    assert state.looks == 1
    assert state.p_value == pytest.approx(1 / lam, rel=1e-12)
    assert state.low == pytest.approx(0.3 - radius, rel=1e-12)
    assert state.high == pytest.approx(0.3 + radius, rel=1e-12)
    decision = test.decide(state)
    assert decision.outcome == "continue"
    assert decision.difference == pytest.approx(0.3)


def test_hand_computed_case_that_promotes() -> None:
    # 100 rows per arm, 30 vs 60 successes, tau = 0.1: V = 0.45, n tau^2 = 1
    # Lambda = sqrt(0.45 / 1.45) * exp(100^2 * 0.01 * 0.09 / (2 * 0.45 * 1.45)) = 551.0...
    lam = math.sqrt(0.45 / 1.45) * math.exp(9 / 1.305)
    assert lam == pytest.approx(551.0, abs=1.0)
    test = SequentialTest(tau=0.1, min_samples=100)
    state = test.update(test.start(), champion=_bernoulli(100, 30), candidate=_bernoulli(100, 60))
    assert state.p_value == pytest.approx(1 / lam, rel=1e-12)
    decision = test.decide(state)
    assert (decision.outcome, decision.rule) == ("promote", "better")
    assert decision.p_value < 0.05 and decision.low is not None and decision.low > 0


def test_unequal_arms_reduce_to_the_papers_formula_when_equal() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 500), rng.normal(0.1, 2, 500)
    d, big_v = b.mean() - a.mean(), a.var() + b.var()
    n, tau = 500, 0.3
    paper = math.sqrt(big_v / (big_v + n * tau**2)) * math.exp(
        n**2 * tau**2 * d**2 / (2 * big_v * (big_v + n * tau**2))
    )
    assert float(msprt_likelihood_ratio(d, big_v / n, tau=tau)) == pytest.approx(paper, rel=1e-9)


def test_confidence_radius_is_where_the_ratio_crosses_one_over_alpha() -> None:
    v, tau, alpha = 0.002, 0.05, 0.05
    r = float(msprt_radius(v, tau=tau, alpha=alpha))
    assert float(msprt_likelihood_ratio(r, v, tau=tau)) == pytest.approx(1 / alpha, rel=1e-9)


# -- validity under continuous monitoring -----------------------------------------------------


def _run(test: SequentialTest, a: np.ndarray, b: np.ndarray, step: int) -> list[SequentialState]:
    state, states = test.start(), []
    for i in range(0, len(a), step):
        state = test.update_values(state, champion=a[i : i + step], candidate=b[i : i + step])
        states.append(state)
    return states


def test_p_value_and_confidence_sequence_are_monotone() -> None:
    rng = np.random.default_rng(1)
    test = SequentialTest(tau=0.05, min_samples=20)
    states = _run(test, rng.binomial(1, 0.5, 5000), rng.binomial(1, 0.52, 5000), 50)
    p = [s.p_value for s in states]
    low = [s.low for s in states]
    high = [s.high for s in states]
    assert all(x >= y for x, y in itertools.pairwise(p))
    assert all(x <= y for x, y in itertools.pairwise(low))
    assert all(x >= y for x, y in itertools.pairwise(high))
    assert p[-1] < p[0]  # the evidence moved


def test_confidence_sequence_covers_the_true_effect_at_every_look() -> None:
    # 300 seeded experiments, 40 looks each: the running sequence must keep the true effect at
    # every look in at least 1 - alpha of them; a fixed 95% interval read at every look does not.
    rng = np.random.default_rng(2)
    effect, alpha, sims, looks, step = 0.2, 0.05, 300, 40, 25
    test = SequentialTest(alpha=alpha, tau=0.2, min_samples=25)
    missed_seq = missed_naive = 0
    for _ in range(sims):
        a = rng.normal(0.0, 1.0, looks * step)
        b = rng.normal(effect, 1.0, looks * step)
        states = _run(test, a, b, step)
        missed_seq += any(not s.low <= effect <= s.high for s in states)
        naive_miss = False
        for k in range(1, looks + 1):
            n = k * step
            d = b[:n].mean() - a[:n].mean()
            se = math.sqrt(a[:n].var() / n + b[:n].var() / n)
            naive_miss |= abs(d - effect) > 1.96 * se
        missed_naive += naive_miss
    assert missed_seq / sims <= alpha  # in fact far below: the bound is conservative
    assert missed_naive / sims > 2 * alpha  # the simulation is sharp enough to see peeking


def test_paired_test_is_sharper_than_unpaired_on_the_same_rows() -> None:
    rng = np.random.default_rng(3)
    difficulty = rng.normal(0.0, 1.0, 2000)  # shared by both models: cancels when paired
    champion = difficulty + rng.normal(0.0, 0.1, 2000)
    candidate = difficulty + 0.05 + rng.normal(0.0, 0.1, 2000)
    paired = SequentialTest(tau=0.05, min_samples=50, paired=True)
    unpaired = SequentialTest(tau=0.05, min_samples=50)
    sp = paired.update_values(paired.start(), champion=champion, candidate=candidate)
    su = unpaired.update_values(unpaired.start(), champion=champion, candidate=candidate)
    assert sp.high - sp.low < (su.high - su.low) / 5
    assert paired.decide(sp).outcome == "promote"
    assert unpaired.decide(su).outcome == "continue"
    assert sp.low <= 0.05 <= sp.high


# -- the decision rule ------------------------------------------------------------------------


def test_lower_is_better_promotes_a_lower_loss() -> None:
    rng = np.random.default_rng(4)
    test = SequentialTest(tau=0.05, min_samples=100, higher_is_better=False)
    state = test.update_values(
        test.start(), champion=rng.normal(0.60, 0.2, 4000), candidate=rng.normal(0.55, 0.2, 4000)
    )
    decision = test.decide(state)
    assert decision.outcome == "promote"
    assert decision.difference is not None and decision.difference < 0
    assert decision.high is not None and decision.high < 0  # raw units: candidate - champion
    assert "below 0" in decision.reason


def test_worse_candidate_is_rejected() -> None:
    rng = np.random.default_rng(5)
    test = SequentialTest(tau=0.05, min_samples=100)
    state = test.update_values(
        test.start(), champion=rng.binomial(1, 0.8, 4000), candidate=rng.binomial(1, 0.7, 4000)
    )
    decision = test.decide(state)
    assert (decision.outcome, decision.rule) == ("reject", "worse")


def test_equal_models_are_rejected_once_min_effect_is_ruled_out() -> None:
    rng = np.random.default_rng(6)
    test = SequentialTest(min_effect=0.02, min_samples=100)  # tau defaults to min_effect
    assert test.tau_ == 0.02
    state = test.update_values(
        test.start(), champion=rng.binomial(1, 0.8, 40000), candidate=rng.binomial(1, 0.8, 40000)
    )
    decision = test.decide(state)
    assert (decision.outcome, decision.rule) == ("reject", "below_min_effect")
    assert decision.high is not None and decision.high < 0.02


def test_horizon_is_inconclusive() -> None:
    rng = np.random.default_rng(7)
    test = SequentialTest(tau=0.01, min_samples=100, max_samples=500)
    state = test.update_values(
        test.start(), champion=rng.binomial(1, 0.5, 500), candidate=rng.binomial(1, 0.5, 500)
    )
    assert (test.decide(state).outcome, test.decide(state).rule) == ("inconclusive", "horizon")
    open_ended = SequentialTest(tau=0.01, min_samples=100)
    assert open_ended.decide(state).outcome == "continue"
    assert open_ended.decide(state, at_horizon=True).outcome == "inconclusive"


def test_min_samples_not_reached_continues_and_takes_no_look() -> None:
    test = SequentialTest(tau=0.1, min_samples=100)
    state = test.update(test.start(), champion=_bernoulli(99, 0), candidate=_bernoulli(500, 500))
    assert state.looks == 0 and state.p_value == 1.0
    decision = test.decide(state)
    assert (decision.outcome, decision.rule) == ("continue", "min_samples")
    assert decision.low is None and decision.high is None


def test_one_empty_arm_continues() -> None:
    test = SequentialTest(tau=0.1, min_samples=10)
    state = test.update(test.start(), champion=ArmStats(), candidate=_bernoulli(50, 20))
    decision = test.decide(state)
    assert (decision.outcome, decision.rule) == ("continue", "min_samples")
    assert decision.mean_champion is None and decision.difference is None
    assert test.decide(state, at_horizon=True).outcome == "inconclusive"


def test_zero_variance_is_no_evidence() -> None:
    # early CTR: no click in either arm, or every row the same
    test = SequentialTest(tau=0.01, min_samples=100)
    state = test.update(test.start(), champion=_bernoulli(1000, 0), candidate=_bernoulli(1000, 0))
    decision = test.decide(state)
    assert (decision.outcome, decision.rule) == ("continue", "no_variance")
    assert state.p_value == 1.0 and state.looks == 0
    assert test.decide(state, at_horizon=True).outcome == "inconclusive"
    paired = SequentialTest(tau=0.01, min_samples=10, paired=True)
    same = paired.update_values(paired.start(), champion=[0.3] * 50, candidate=[0.3] * 50)
    assert paired.decide(same).rule == "no_variance"


# -- state: JSON and resume -------------------------------------------------------------------


def test_state_and_decision_round_trip_through_strict_json() -> None:
    rng = np.random.default_rng(8)
    for paired in (False, True):
        test = SequentialTest(tau=0.05, min_samples=10, paired=paired)
        for state in [test.start(), *_run(test, rng.random(300), rng.random(300), 100)]:
            text = json.dumps(state.to_dict(), allow_nan=False)
            assert SequentialState.from_dict(json.loads(text)) == state
            json.dumps(test.decide(state).to_dict(), allow_nan=False)


def test_resume_after_a_restart_is_the_same_as_running_on() -> None:
    rng = np.random.default_rng(9)
    a, b = rng.binomial(1, 0.3, 3000), rng.binomial(1, 0.33, 3000)
    test = SequentialTest(tau=0.02, min_samples=200)
    straight = _run(test, a, b, 300)
    state = test.start()
    for i, expected in zip(range(0, 3000, 300), straight, strict=True):
        state = SequentialState.from_dict(json.loads(json.dumps(state.to_dict())))  # a restart
        state = test.update_values(state, champion=a[i : i + 300], candidate=b[i : i + 300])
        assert state == expected
        assert test.decide(state) == test.decide(expected)


def test_chunks_and_all_at_once_give_the_same_statistics() -> None:
    rng = np.random.default_rng(10)
    a, b = rng.normal(3.0, 2.0, 5000), rng.normal(3.1, 2.0, 5000)
    test = SequentialTest(tau=0.1, min_samples=100)
    chunked = _run(test, a, b, 250)[-1]
    once = test.update_values(test.start(), champion=a, candidate=b)
    for got, want in ((chunked.champion, once.champion), (chunked.candidate, once.candidate)):
        assert got.n == want.n
        assert got.mean == pytest.approx(want.mean, rel=1e-12)
        assert got.m2 == pytest.approx(want.m2, rel=1e-9)
    # the last look is the same; earlier looks can only lower the running p-value
    assert chunked.p_value <= once.p_value
    assert chunked.low >= once.low - 1e-12 and chunked.high <= once.high + 1e-12
    assert chunked.looks == 20 and once.looks == 1


def test_arm_stats_merge_and_sums_agree_with_raw_values() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(100.0, 5.0, 1000)
    whole = ArmStats.of(x)
    merged = ArmStats.of(x[:300]).merge(ArmStats()).merge(ArmStats.of(x[300:]))
    sums = ArmStats.from_sums(n=1000, total=float(x.sum()), total_sq=float((x**2).sum()))
    for other in (merged, sums):
        assert other.n == 1000
        assert other.mean == pytest.approx(whole.mean, rel=1e-12)
        assert other.variance == pytest.approx(float(x.var()), rel=1e-6)
    assert ArmStats.of([]) == ArmStats()


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"alpha": 0.0, "tau": 0.1}, "alpha"),
        ({"alpha": 1.5, "tau": 0.1}, "alpha"),
        ({"alpha": "0.05", "tau": 0.1}, "alpha"),
        ({"min_effect": -0.01}, "min_effect"),
        ({"min_effect": math.nan, "tau": 0.1}, "min_effect"),
        ({}, "tau"),
        ({"tau": 0.0}, "tau"),
        ({"tau": -1.0}, "tau"),
        ({"tau": math.inf}, "tau"),
        ({"tau": 0.1, "min_samples": 1}, "min_samples"),
        ({"tau": 0.1, "min_samples": 10.5}, "min_samples"),
        ({"tau": 0.1, "min_samples": 100, "max_samples": 50}, "max_samples"),
        ({"tau": 0.1, "paired": "yes"}, "paired"),
        ({"tau": 0.1, "higher_is_better": 1}, "higher_is_better"),
    ],
)
def test_bad_parameters_are_value_errors_naming_the_parameter(
    kwargs: dict[str, object], name: str
) -> None:
    with pytest.raises(ValueError, match=name):
        SequentialTest(**kwargs)  # type: ignore[arg-type]


def test_paired_and_unpaired_inputs_are_checked() -> None:
    paired = SequentialTest(tau=0.1, paired=True)
    unpaired = SequentialTest(tau=0.1)
    arm = _bernoulli(10, 5)
    with pytest.raises(ValueError, match="difference is required"):
        paired.update(paired.start(), champion=arm, candidate=arm)
    with pytest.raises(ValueError, match="only for a paired test"):
        unpaired.update(unpaired.start(), champion=arm, candidate=arm, difference=arm)
    with pytest.raises(ValueError, match="row-aligned"):
        paired.update_values(paired.start(), champion=[1, 0], candidate=[1])
    with pytest.raises(ValueError, match="paired"):
        unpaired.update(paired.start(), champion=arm, candidate=arm)
    with pytest.raises(ValueError, match="finite"):
        unpaired.update_values(unpaired.start(), champion=[1.0, math.nan], candidate=[1.0])
    with pytest.raises(ValueError, match="version"):
        SequentialState.from_dict({"version": 99})
    with pytest.raises(ValueError, match="m2"):
        ArmStats(n=3, mean=0.5, m2=-1.0)
