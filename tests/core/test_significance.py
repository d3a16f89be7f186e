"""The paired tests of the gate, each against a reference: scipy where it has the test, the
textbook formula (O(n^2) structural components, a numerical constrained MLE) where not.
statsmodels is not in the shared environment."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import minimize_scalar
from sklearn.metrics import roc_auc_score

from retrainer.core.significance import (
    delong,
    delong_components,
    mcnemar,
    paired_bootstrap,
    paired_t,
    tango_z,
)


def _paired_correct(seed: int, n: int, p_cand: float, p_champ: float):
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    return u < p_cand, (u + rng.normal(0, 0.3, n)) < p_champ


@pytest.mark.parametrize("seed", range(6))
def test_mcnemar_exact_is_scipys_one_sided_binomial_test(seed):
    cand, champ = _paired_correct(seed, 300, 0.8, 0.75)
    result = mcnemar(cand, champ)
    b = int(np.sum(cand & ~champ))
    c = int(np.sum(~cand & champ))
    expected = stats.binomtest(b, b + c, 0.5, alternative="greater").pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-12)
    assert result.estimate == pytest.approx((b - c) / 300)
    assert result.low <= result.estimate <= result.high


def test_mcnemar_without_discordant_pairs_has_nothing_to_say():
    same = np.array([True, False, True, True])
    result = mcnemar(same, same)
    assert result.p_value == 1.0 and result.estimate == 0.0
    assert "b=0, c=0" in result.detail
    # with a margin, identical models are (given enough rows) significantly not worse
    many = np.tile(same, 500)
    assert mcnemar(many, many, margin=0.01).p_value < 0.05


def test_tango_at_zero_is_mcnemars_z():
    for b, c in [(30, 10), (5, 9), (1, 0)]:
        assert tango_z(b, c, 200, 0.0) == pytest.approx((b - c) / math.sqrt(b + c))


@pytest.mark.parametrize(("b", "c", "n", "delta0"), [(30, 18, 400, -0.01), (12, 20, 250, -0.05),
                                                      (40, 10, 300, 0.03)])  # fmt: skip
def test_tango_uses_the_constrained_maximum_likelihood(b, c, n, delta0):
    # the multinomial likelihood of (b, c, rest) with p_b - p_c = delta0, maximised numerically
    def nll(q):
        pb = q + delta0
        rest = 1 - pb - q
        return -(b * math.log(pb) + c * math.log(q) + (n - b - c) * math.log(rest))

    lo = max(1e-9, -delta0 + 1e-9)
    hi = (1 - delta0) / 2 - 1e-9
    q = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12}).x
    z = (b - c - n * delta0) / math.sqrt(n * (2 * q + delta0 * (1 - delta0)))
    assert tango_z(b, c, n, delta0) == pytest.approx(z, rel=1e-5)


def test_tango_interval_bounds_are_where_the_test_turns():
    result = mcnemar(*_paired_correct(1, 500, 0.8, 0.72), alpha=0.05)
    z = stats.norm.ppf(0.95)
    b, c = (int(x) for x in result.detail.split(" discordant")[0].replace("b=", "").split(", c="))
    assert tango_z(b, c, 500, result.low) == pytest.approx(z, abs=1e-6)
    assert tango_z(b, c, 500, result.high) == pytest.approx(-z, abs=1e-6)


def _structural(positive, score):
    """DeLong's components by their definition: psi over every (positive, negative) pair."""
    x, y = score[positive], score[~positive]
    psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)


def test_delong_fast_components_match_the_textbook_definition():
    rng = np.random.default_rng(3)
    positive = rng.random(120) < 0.4
    scores = np.round(np.vstack([positive + rng.normal(0, 1, 120), rng.random(120)]), 1)  # ties
    auc, v10, v01 = delong_components(positive, scores)
    for k in range(2):
        a, t10, t01 = _structural(positive, scores[k])
        assert auc[k] == pytest.approx(a) == pytest.approx(roc_auc_score(positive, scores[k]))
        np.testing.assert_allclose(v10[k], t10)
        np.testing.assert_allclose(v01[k], t01)


def test_delong_variance_is_the_structural_components_formula():
    rng = np.random.default_rng(5)
    positive = rng.random(60) < 0.5
    a = positive + rng.normal(0, 0.8, 60)
    b = positive + rng.normal(0, 1.5, 60)
    _, x10, x01 = _structural(positive, a)
    _, y10, y01 = _structural(positive, b)
    m, n = len(x10), len(x01)
    s10 = np.cov(np.vstack([x10, y10]))
    s01 = np.cov(np.vstack([x01, y01]))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    diff = roc_auc_score(positive, a) - roc_auc_score(positive, b)
    result = delong(positive, a, b, alpha=0.05)
    assert result.estimate == pytest.approx(diff)
    assert result.p_value == pytest.approx(stats.norm.sf(diff / math.sqrt(var)))
    half = stats.norm.ppf(0.95) * math.sqrt(var)
    assert (result.low, result.high) == pytest.approx((diff - half, diff + half))
    margin = delong(positive, a, b, margin=0.02)
    assert margin.p_value == pytest.approx(stats.norm.sf((diff + 0.02) / math.sqrt(var)))


def test_delong_holds_its_level_under_the_null():
    rng = np.random.default_rng(11)
    rejected = 0
    reps = 400
    for _ in range(reps):
        positive = rng.random(200) < 0.5
        signal = positive * 1.0
        # two models of the same quality, correlated through a shared part of their noise
        shared = rng.normal(0, 0.7, 200)
        a = signal + shared + rng.normal(0, 0.7, 200)
        b = signal + shared + rng.normal(0, 0.7, 200)
        rejected += delong(positive, a, b, alpha=0.05).p_value < 0.05
    assert 0.025 <= rejected / reps <= 0.085  # 0.05 +- about 3 binomial standard errors


def test_delong_with_constant_scores_is_a_known_zero_difference():
    positive = np.array([True, False] * 10)
    flat = np.full(20, 0.5)
    result = delong(positive, flat, flat)
    assert result.estimate == 0 and result.p_value == 1.0  # not better
    assert delong(positive, flat, flat, margin=0.01).p_value == 0.0  # but surely not worse


@pytest.mark.parametrize("margin", [0.0, 0.05])
def test_paired_t_is_scipys(margin):
    rng = np.random.default_rng(2)
    champion_loss = rng.exponential(1.0, 500)
    candidate_loss = champion_loss * rng.normal(0.97, 0.1, 500)
    result = paired_t(champion_loss - candidate_loss, margin=margin, alpha=0.05)
    shifted = champion_loss - candidate_loss + margin
    reference = stats.ttest_rel(shifted, np.zeros(500), alternative="greater")
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    ci = stats.ttest_1samp(champion_loss - candidate_loss, 0).confidence_interval(0.9)
    assert (result.low, result.high) == pytest.approx((ci.low, ci.high))


def test_paired_t_edge_cases():
    assert math.isnan(paired_t([0.1]).p_value)
    same = paired_t(np.zeros(50))
    assert same.p_value == 1.0 and same.low == same.high == 0.0
    assert paired_t(np.zeros(50), margin=0.01).p_value == 0.0


def test_paired_bootstrap_agrees_with_scipys_bootstrap_and_the_t_test():
    rng = np.random.default_rng(4)
    d = rng.normal(0.05, 1.0, 2000)
    result = paired_bootstrap(lambda idx: d[idx].mean(axis=1), len(d), resamples=4000, seed=1)
    reference = stats.bootstrap(
        (d,), np.mean, n_resamples=4000, confidence_level=0.9, method="percentile",
        random_state=np.random.default_rng(9),
    )  # fmt: skip
    assert result.low == pytest.approx(reference.confidence_interval.low, abs=0.01)
    assert result.high == pytest.approx(reference.confidence_interval.high, abs=0.01)
    assert result.p_value == pytest.approx(paired_t(d).p_value, abs=0.02)
    again = paired_bootstrap(lambda idx: d[idx].mean(axis=1), len(d), resamples=4000, seed=1)
    assert again == result  # seeded: the verdict is reproducible


def test_paired_bootstrap_blocks_do_not_change_the_draws_count():
    d = np.arange(10.0)
    small = paired_bootstrap(lambda idx: d[idx].mean(axis=1), 10, resamples=101, block_cells=30)
    assert "101 resamples" in small.detail
