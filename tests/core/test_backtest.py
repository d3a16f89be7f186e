"""Backtest statistics: pooled metrics, paired bootstrap, Pareto front, degradation, selection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retrainer.core.backtest import (
    Candidate,
    CostModel,
    DegradationCurve,
    Difference,
    Selection,
    degradation_curve,
    paired_bootstrap,
    pareto_front,
    pooled,
    select_policy,
)
from retrainer.errors import ConfigError, DataError

NAN = math.nan


# --- cost model ------------------------------------------------------------------------------


def test_cost_model_is_set_and_net_value():
    assert not CostModel().is_set
    assert CostModel(per_cpu_second=0.01).is_set
    cost = CostModel(per_retrain=2.0, per_cpu_second=0.5, per_metric_point=10.0)
    # 0.8 accuracy = 80 points worth 800, minus 3 retrains (6) and 4 CPU s (2)
    assert cost.net_value(0.8, 3, 4.0) == pytest.approx(792.0)
    # a loss of 0.3 = 30 points costs 300
    assert cost.net_value(0.3, 3, 4.0, greater_is_better=False) == pytest.approx(-308.0)


@pytest.mark.parametrize("field", ["per_retrain", "per_cpu_second", "per_metric_point"])
def test_cost_model_rejects_negative_or_nan_prices(field):
    with pytest.raises(ConfigError, match=field):
        CostModel(**{field: -1.0})
    with pytest.raises(ConfigError, match=field):
        CostModel(**{field: NAN})


# --- pooled ----------------------------------------------------------------------------------


def test_pooled_equals_accuracy_over_the_pooled_rows():
    batches = [
        (np.array([1, 0, 1, 1]), np.array([1, 0, 0, 1])),  # 3/4
        (np.array([0, 0, 1, 1, 1, 0, 1, 0, 1, 1]), np.array([0, 1, 1, 1, 1, 0, 0, 0, 1, 1])),
        (np.array([1, 1]), np.array([0, 0])),  # 0/2
    ]
    per_batch = [float(np.mean(t == p)) for t, p in batches]
    rows = [len(t) for t, _ in batches]
    y_true = np.concatenate([t for t, _ in batches])
    y_pred = np.concatenate([p for _, p in batches])
    # an empty batch: NaN accuracy and 0 rows; a batch with 0 weight is left out as well
    values = [*per_batch, NAN, 0.123]
    weights = [*rows, 0, 0]
    assert pooled(values, weights) == pytest.approx(float(np.mean(y_true == y_pred)))
    assert pooled(values, weights) != pytest.approx(float(np.mean(per_batch)))  # not unweighted


def test_pooled_is_nan_when_nothing_is_left():
    assert math.isnan(pooled([NAN, 0.5], [10, 0]))
    assert math.isnan(pooled([], []))


def test_pooled_rejects_bad_weights():
    with pytest.raises(DataError):
        pooled([0.5, 0.6], [1.0])
    with pytest.raises(DataError):
        pooled([0.5, 0.6], [1.0, -1.0])
    with pytest.raises(DataError):
        pooled([0.5, 0.6], [1.0, NAN])


# --- paired bootstrap ------------------------------------------------------------------------


def _series(n: int = 60, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    day = rng.normal(0.8, 0.03, n)  # day-to-day variation both policies share
    rows = rng.integers(50, 500, n).astype(float)
    return day, day + rng.normal(0.0, 0.01, n), rows


def test_identical_series_differ_by_zero_and_not_significantly():
    a, _, rows = _series()
    d = paired_bootstrap(a, a.copy(), rows)
    assert d.mean == 0.0
    assert d.low == 0.0 and d.high == 0.0
    assert not d.significant
    assert d.n_batches == 60
    assert "within noise" in d.describe("A", "B")


def test_clearly_better_series_is_significant_and_covers_the_true_mean():
    b, _, rows = _series()
    rng = np.random.default_rng(11)
    a = b + 0.02 + rng.normal(0.0, 0.005, b.shape[0])  # true gain: 2 points
    d = paired_bootstrap(a, b, rows)
    assert d.significant
    assert d.low > 0
    assert d.low <= 0.02 <= d.high
    assert d.low <= d.mean <= d.high
    assert d.describe("A", "B").startswith("A beats B by ")
    flipped = paired_bootstrap(b, a, rows)
    assert flipped.mean == pytest.approx(-d.mean)
    assert flipped.describe("B", "A").startswith("B is worse than A by ")


def test_paired_bootstrap_mean_by_hand():
    a = [0.80, 0.90, 0.70]
    b = [0.75, 0.80, 0.75]
    rows = [100, 300, 100]
    # (0.05 * 100 + 0.10 * 300 - 0.05 * 100) / 500
    assert paired_bootstrap(a, b, rows).mean == pytest.approx(0.06)


def test_paired_bootstrap_is_reproducible_for_a_seed():
    a, b, rows = _series()
    assert paired_bootstrap(a, b, rows, seed=5) == paired_bootstrap(a, b, rows, seed=5)
    other = paired_bootstrap(a, b, rows, seed=6)
    assert other.mean == paired_bootstrap(a, b, rows, seed=5).mean
    assert (other.low, other.high) != (
        paired_bootstrap(a, b, rows, seed=5).low,
        paired_bootstrap(a, b, rows, seed=5).high,
    )


@pytest.mark.parametrize("n", [40, 3000])  # 3000 batches: several chunks of draws
def test_paired_bootstrap_is_the_percentile_bootstrap_over_batches(n):
    # A plain (n_boot, n) resampling with the same generator: pins the scheme, so that recorded
    # backtest reports stay reproducible, and checks that chunking changes nothing.
    a, b, rows = _series(n)
    n_boot = 400
    d = paired_bootstrap(a, b, rows, n_boot=n_boot, confidence=0.9, seed=2)
    rng = np.random.Generator(np.random.PCG64(2))
    idx = rng.integers(0, n, size=(n_boot, n), dtype=np.int32)
    diff = a - b
    stats = (diff[idx] * rows[idx]).sum(axis=1) / rows[idx].sum(axis=1)
    low, high = np.quantile(stats, [0.05, 0.95])
    assert d.low == pytest.approx(low, abs=1e-12)
    assert d.high == pytest.approx(high, abs=1e-12)


def test_paired_bootstrap_drops_nan_and_zero_weight_batches():
    a, b, rows = _series(30)
    a_nan, b_nan, rows_0 = a.copy(), b.copy(), rows.copy()
    a_nan[3] = NAN
    b_nan[7] = NAN
    rows_0[12] = 0
    keep = np.ones(30, dtype=bool)
    keep[[3, 7, 12]] = False
    d = paired_bootstrap(a_nan, b_nan, rows_0)
    assert d.n_batches == 27
    assert not math.isnan(d.mean)
    assert d == paired_bootstrap(a[keep], b[keep], rows[keep])


def test_paired_bootstrap_with_fewer_than_two_batches():
    one = paired_bootstrap([0.9, NAN], [0.8, 0.7], [10, 10])
    assert one.mean == pytest.approx(0.1)
    assert math.isnan(one.low) and math.isnan(one.high)
    assert one.n_batches == 1
    assert not one.significant
    assert "too few batches" in one.describe("A", "B")
    none = paired_bootstrap([NAN], [0.8], [10])
    assert none.n_batches == 0 and math.isnan(none.mean) and not none.significant
    assert "no batch" in none.describe("A", "B")


def test_wider_interval_at_higher_confidence():
    a, b, rows = _series()
    narrow = paired_bootstrap(a, b, rows, confidence=0.5)
    wide = paired_bootstrap(a, b, rows, confidence=0.99)
    assert wide.high - wide.low > narrow.high - narrow.low


def test_paired_bootstrap_rejects_bad_arguments():
    with pytest.raises(DataError):
        paired_bootstrap([0.1, 0.2], [0.1], [1, 1])
    with pytest.raises(ConfigError):
        paired_bootstrap([0.1, 0.2], [0.1, 0.3], [1, 1], confidence=1.0)
    with pytest.raises(ConfigError):
        paired_bootstrap([0.1, 0.2], [0.1, 0.3], [1, 1], n_boot=0)


def test_describe_texts():
    better = Difference(mean=0.0123, low=0.008, high=0.0166, confidence=0.95, n_batches=9)
    assert better.describe("A", "B") == "A beats B by 1.23 points (95% CI 0.80 to 1.66)"
    assert better.describe("A", "B", points=False) == "A beats B by 0.0123 (95% CI 0.008 to 0.0166)"
    # the same difference of a loss: A's loss is higher, so A is worse
    assert (
        better.describe("A", "B", greater_is_better=False)
        == "A is worse than B by 1.23 points (95% CI 0.80 to 1.66)"
    )
    worse = Difference(mean=-0.0123, low=-0.0166, high=-0.008, confidence=0.9, n_batches=9)
    assert worse.significant
    assert worse.describe("A", "B") == "A is worse than B by 1.23 points (90% CI 0.80 to 1.66)"
    noise = Difference(mean=0.0007, low=-0.002, high=0.0035, confidence=0.95, n_batches=9)
    assert not noise.significant
    assert noise.describe("A", "B") == "A and B are within noise (-0.20 to 0.35 points, 95% CI)"


# --- Pareto front ----------------------------------------------------------------------------


def test_pareto_front_hand_built():
    costs = [1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 0.5, 2.0, 5.0]
    scores = [0.70, 0.80, 0.80, 0.75, NAN, 0.90, 0.60, 0.78, 0.90]
    # 3 is dominated by 1 and 2; 4 has no score; 7 loses to 1 at the same cost; 8 scores no
    # better than 5 and costs more; the tied 1 and 2 are both on the front
    assert pareto_front(costs, scores) == [6, 0, 1, 2, 5]


def test_pareto_front_lower_is_better():
    assert pareto_front([1.0, 2.0, 3.0], [0.5, 0.6, 0.3], greater_is_better=False) == [0, 2]
    assert pareto_front([1.0, 2.0, 3.0], [0.5, 0.6, 0.3]) == [0, 1]
    costs = [1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 0.5, 2.0, 5.0]
    losses = [0.30, 0.20, 0.20, 0.25, NAN, 0.10, 0.40, 0.22, 0.10]
    assert pareto_front(costs, losses, greater_is_better=False) == [6, 0, 1, 2, 5]


def test_pareto_front_edge_cases():
    assert pareto_front([], []) == []
    assert pareto_front([1.0, 2.0], [NAN, NAN]) == []
    assert pareto_front([NAN, 2.0], [0.9, 0.5]) == [1]
    assert pareto_front([3.0, 3.0, 3.0], [0.5, 0.5, 0.5]) == [0, 1, 2]
    with pytest.raises(DataError):
        pareto_front([1.0], [0.5, 0.6])


def _brute_front(costs: np.ndarray, scores: np.ndarray) -> list[int]:
    front = []
    for i in range(len(costs)):
        if math.isnan(scores[i]):
            continue
        dominated = any(
            costs[j] <= costs[i]
            and scores[j] >= scores[i]
            and (costs[j] < costs[i] or scores[j] > scores[i])
            for j in range(len(costs))
            if not math.isnan(scores[j])
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (costs[i], i))


def test_pareto_front_matches_brute_force_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 15))
        costs = rng.integers(0, 5, n).astype(float)  # few values: many ties
        scores = rng.integers(0, 5, n).astype(float)
        scores[rng.random(n) < 0.15] = NAN
        assert pareto_front(costs, scores) == _brute_front(costs, scores)


# --- degradation -----------------------------------------------------------------------------


def _flat(values_by_model: dict[str, list[float]], rows: int = 100):
    ids, ages, values = [], [], []
    for model, series in values_by_model.items():
        for age, value in enumerate(series):
            ids.append(model)
            ages.append(age)
            values.append(value)
    return ids, ages, values, [rows] * len(ids)


def test_linear_decay_curve():
    series = {f"m{m}": [0.9 - 0.01 * age for age in range(10)] for m in range(5)}
    curve = degradation_curve(*_flat(series))
    assert curve.ages == tuple(range(10))
    assert curve.mean == pytest.approx([0.9 - 0.01 * age for age in range(10)])
    assert curve.n_models == (5,) * 10
    assert curve.control == pytest.approx(0.9)
    # every model agrees: the bootstrap interval collapses onto the mean
    assert curve.low == pytest.approx(curve.mean)
    assert curve.high == pytest.approx(curve.mean)
    assert curve.age_at_loss(2.0) == 2
    assert curve.age_at_loss(1.0) == 1
    assert curve.age_at_loss(9.0) == 9  # the last age: nothing after it to persist into
    assert curve.age_at_loss(20.0) is None


def test_flat_curve_never_loses():
    series = {f"m{m}": [0.9 + 0.001 * m] * 8 for m in range(4)}
    curve = degradation_curve(*_flat(series))
    assert curve.age_at_loss(0.5) is None


def test_age_at_loss_needs_the_loss_to_persist():
    # age 2 dips 2 points, age 3 recovers, from age 4 the loss stays
    shape = [0.90, 0.90, 0.88, 0.895, 0.87, 0.87]
    series = {f"m{m}": list(shape) for m in range(3)}
    curve = degradation_curve(*_flat(series))
    assert curve.age_at_loss(2.0) == 4
    # against an explicit control the dip at age 2 is not enough either
    assert degradation_curve(*_flat(series), control=0.9).age_at_loss(2.0) == 4
    # against a higher control age 3 (2.1 points down) keeps the loss of age 2
    assert degradation_curve(*_flat(series), control=0.916).age_at_loss(2.0) == 2


def test_age_at_loss_for_a_loss_metric():
    series = {f"m{m}": [0.30 + 0.01 * age for age in range(6)] for m in range(3)}
    curve = degradation_curve(*_flat(series))
    assert curve.age_at_loss(2.0, greater_is_better=False) == 2
    assert curve.age_at_loss(2.0) is None  # read as a score, it only improves


def test_age_at_loss_reads_the_mean_not_the_bounds():
    curve = DegradationCurve(
        ages=(0, 1, 2),
        mean=(0.90, 0.89, 0.89),
        low=(0.80, 0.80, 0.80),
        high=(0.95, 0.95, 0.95),
        n_models=(3, 3, 3),
        control=0.90,
    )
    assert curve.age_at_loss(1.0) == 1
    assert curve.age_at_loss(1.5) is None
    nan_control = DegradationCurve((0, 1), (0.9, 0.5), (0.9, 0.5), (0.9, 0.5), (3, 3), NAN)
    assert nan_control.age_at_loss(1.0) is None


def test_models_weigh_equally_whatever_their_rows_or_batches():
    ids = ["big", "a", "b", "c"] * 2
    ages = [0] * 4 + [1] * 4
    values = [0.9, 0.9, 0.9, 0.9, 0.5, 0.9, 0.9, 0.9]
    rows = [10_000, 10, 10, 10] * 2
    # "big" was also scored many more times at age 1 (e.g. on replayed batches)
    ids += ["big"] * 5
    ages += [1] * 5
    values += [0.5] * 5
    rows += [10_000] * 5
    curve = degradation_curve(ids, ages, values, rows)
    assert curve.n_models == (4, 4)
    assert curve.mean[1] == pytest.approx((0.5 + 3 * 0.9) / 4)


def test_a_model_scored_twice_at_one_age_counts_once_pooled_by_rows():
    ids = ["a", "b", "c", "a"]
    ages = [0, 0, 0, 0]
    values = [0.6, 0.9, 0.9, 0.9]
    rows = [100, 10, 10, 300]
    curve = degradation_curve(ids, ages, values, rows)
    assert curve.n_models == (3,)
    # a: (0.6 * 100 + 0.9 * 300) / 400 = 0.825
    assert curve.mean[0] == pytest.approx((0.825 + 0.9 + 0.9) / 3)


def test_a_long_lived_model_does_not_dominate_the_curve():
    # "old" is scored at 10 ages, the others at 2; at ages 0 and 1 it counts once like them
    series = {"old": [0.5] * 10, "x": [0.9, 0.9], "y": [0.9, 0.9], "z": [0.9, 0.9]}
    curve = degradation_curve(*_flat(series))
    assert curve.ages == (0, 1)
    assert curve.mean == pytest.approx([0.8, 0.8])


def test_ages_with_fewer_than_three_models_are_dropped():
    series = {"a": [0.9] * 6, "b": [0.9] * 6, "c": [0.9] * 4, "d": [0.9] * 2}
    curve = degradation_curve(*_flat(series))
    assert curve.ages == (0, 1, 2, 3)
    assert curve.n_models == (4, 4, 3, 3)


def test_degradation_drops_nan_zero_rows_and_old_ages():
    ids, ages, values, rows = _flat({f"m{m}": [0.9, 0.8, 0.7, 0.6] for m in range(3)})
    ids.append("m9")
    ages.append(0)
    values.append(NAN)
    rows.append(100)
    ids.append("m8")
    ages.append(0)
    values.append(0.1)
    rows.append(0)
    curve = degradation_curve(ids, ages, values, rows, max_age=2)
    assert curve.ages == (0, 1, 2)
    assert curve.n_models == (3, 3, 3)
    assert curve.mean == pytest.approx([0.9, 0.8, 0.7])


def test_degradation_interval_and_reproducibility():
    rng = np.random.default_rng(4)
    n_models, n_ages = 40, 12
    ids = np.repeat(np.arange(n_models), n_ages)
    ages = np.tile(np.arange(n_ages), n_models)
    values = 0.9 - 0.005 * ages + rng.normal(0.0, 0.02, ids.size)
    rows = rng.integers(10, 100, ids.size)
    curve = degradation_curve(ids, ages, values, rows, seed=1)
    assert curve == degradation_curve(ids, ages, values, rows, seed=1)
    assert curve != degradation_curve(ids, ages, values, rows, seed=2)
    for mean, low, high in zip(curve.mean, curve.low, curve.high, strict=True):
        assert low < mean < high
    # mean over models at each age, unweighted by rows
    expected = [values[ages == age].mean() for age in range(n_ages)]
    assert curve.mean == pytest.approx(expected)
    assert curve.control == pytest.approx(expected[0])


def test_degradation_empty_and_invalid_input():
    empty = degradation_curve([], [], [], [])
    assert empty.ages == () and math.isnan(empty.control)
    assert degradation_curve([], [], [], [], control=0.8).control == 0.8
    with pytest.raises(DataError):
        degradation_curve([1, 2], [0, -1], [0.9, 0.9], [1, 1])
    with pytest.raises(DataError):
        degradation_curve([1, 2], [0, 0.5], [0.9, 0.9], [1, 1])
    with pytest.raises(DataError):
        degradation_curve([1, 2], [0, 1], [0.9, 0.9, 0.9], [1, 1, 1])


# --- selection -------------------------------------------------------------------------------


def test_tolerance_picks_the_cheapest_within_tolerance_not_just_outside():
    candidates = [
        Candidate("daily", 0.7795, 849, 2.5),
        Candidate("edge", 0.7745, 300, 1.0),  # exactly 0.5 points below the best
        Candidate("outside", 0.7744, 10, 0.1),  # 0.51 points below: cheaper but not eligible
    ]
    sel = select_policy(candidates)
    assert sel == Selection(sel.name, sel.reason, "tolerance")
    assert sel.name == "edge"
    assert "daily" in sel.reason and "77.95%" in sel.reason and "77.45%" in sel.reason
    assert select_policy(candidates, tolerance=0.6).name == "outside"
    assert select_policy(candidates, tolerance=0.0).name == "daily"


def test_cpu_seconds_within_cpu_tolerance_count_as_the_same_cost():
    candidates = [
        Candidate("trigger", 0.7892, 18, 0.1297),  # the fewest CPU seconds, by timer noise
        Candidate("monthly", 0.7897, 15, 0.1302),  # the best, and the fewest retrains
        Candidate("weekly", 0.7830, 61, 0.40),
    ]
    sel = select_policy(candidates)
    assert sel.name == "monthly"
    assert sel.reason.startswith("best policy on the selection part")
    assert select_policy(candidates, cpu_tolerance=0.0).name == "trigger"
    # the margin is relative to the fewest: 0.16 is within 25% of 0.13, 0.17 is not
    cheaper = [Candidate("a", 0.80, 30, 0.13), Candidate("b", 0.80, 10, 0.16)]
    sel = select_policy(cheaper)
    assert sel.name == "b"
    assert "CPU seconds within 25% of the fewest (0.13) count as the same cost" in sel.reason
    assert "(also: a)" in sel.reason
    assert select_policy([cheaper[0], Candidate("b", 0.80, 10, 0.17)]).name == "a"
    with pytest.raises(ConfigError, match="cpu_tolerance must be a finite fraction"):
        select_policy(candidates, cpu_tolerance=-0.1)


def test_tolerance_ties():
    tied_cpu = [Candidate("b", 0.80, 5, 1.0), Candidate("a", 0.799, 3, 1.0)]
    assert select_policy(tied_cpu).name == "a"  # fewer retrains, before the better score
    tied_retrains = [Candidate("a", 0.799, 3, 1.0), Candidate("b", 0.80, 3, 1.0)]
    assert select_policy(tied_retrains).name == "b"  # better score
    all_tied = [Candidate("b", 0.80, 3, 1.0), Candidate("a", 0.80, 3, 1.0)]
    assert select_policy(all_tied).name == "a"  # name


def test_tolerance_for_a_loss():
    candidates = [
        Candidate("daily", 0.300, 100, 9.0),
        Candidate("weekly", 0.304, 15, 2.0),
        Candidate("never", 0.320, 0, 0.0),
    ]
    assert select_policy(candidates, greater_is_better=False).name == "weekly"
    assert select_policy(candidates, greater_is_better=False, tolerance=0.1).name == "daily"
    # read as a score, "never" would be the best and cheapest
    assert select_policy(candidates).name == "never"


def test_best_is_chosen_when_nothing_cheaper_is_close():
    sel = select_policy([Candidate("daily", 0.90, 100, 5.0), Candidate("never", 0.70, 0, 0.0)])
    assert sel.name == "daily"
    assert sel.reason.startswith("best policy on the selection part")


def test_cost_rule():
    candidates = [
        Candidate("daily", 0.7795, 849, 2.5),
        Candidate("drift", 0.7760, 21, 1.2),
        Candidate("never", 0.7010, 0, 0.0),
    ]
    # a point is worth 1; a retrain costs 0.01: daily 77.95 - 8.49, drift 77.60 - 0.21
    sel = select_policy(candidates, cost=CostModel(per_retrain=0.01, per_metric_point=1.0))
    assert (sel.name, sel.rule) == ("drift", "cost")
    assert "77.39" in sel.reason and "net value" in sel.reason
    # retrains are free and points dear: the best score wins even outside any tolerance
    sel = select_policy(candidates, cost=CostModel(per_metric_point=1.0))
    assert sel.name == "daily"
    # retrains cost more than the points are worth: never retrain
    sel = select_policy(candidates, cost=CostModel(per_retrain=1.0, per_metric_point=1.0))
    assert sel.name == "never"
    # an all-zero cost model prices nothing: the tolerance rule applies
    assert select_policy(candidates, cost=CostModel()).rule == "tolerance"


def test_cost_rule_ties_go_to_the_better_score():
    cost = CostModel(per_retrain=1.0, per_metric_point=1.0)
    # 80 - 0 == 81 - 1
    candidates = [Candidate("cheap", 0.80, 0, 0.0), Candidate("good", 0.81, 1, 0.0)]
    assert select_policy(candidates, cost=cost).name == "good"


def test_nan_scores_are_never_chosen():
    candidates = [Candidate("broken", NAN, 0, 0.0), Candidate("daily", 0.8, 100, 5.0)]
    assert select_policy(candidates).name == "daily"
    cost = CostModel(per_retrain=1.0, per_metric_point=1.0)
    assert select_policy(candidates, cost=cost).name == "daily"


def test_selection_errors():
    with pytest.raises(ValueError, match="no candidate"):
        select_policy([])
    with pytest.raises(ValueError, match="finite score"):
        select_policy([Candidate("a", NAN, 0, 0.0), Candidate("b", NAN, 1, 1.0)])
    with pytest.raises(ValueError):
        Candidate("a", 0.5, -1, 0.0)
    with pytest.raises(ValueError):
        Candidate("a", 0.5, 0, NAN)
