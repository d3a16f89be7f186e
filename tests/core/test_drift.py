"""Drift statistics against scipy and known values, and the drift check on messy windows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from scipy.spatial.distance import jensenshannon

from retrainer.core.drift import (
    DriftCheck,
    FeatureTest,
    adjust_p_values,
    check_drift,
    chi_square,
    jensen_shannon,
    ks_binned,
    ks_exact,
    l_infinity,
    psi,
    wasserstein,
    wasserstein_binned,
)
from retrainer.core.profile import Categorical, Columns, Finding, compute_profile
from retrainer.errors import ConfigError, DataError

counts = hnp.arrays(np.int64, 6, elements=st.integers(0, 1000)).filter(lambda a: a.sum() > 0)


def kinds(report) -> list[tuple[str, str | None]]:
    return [(f.kind, f.column) for f in report.findings]


# --- statistics ---------------------------------------------------------------------------


def test_psi_known_values():
    assert psi([50, 50], [40, 60]) == pytest.approx(-0.1 * math.log(0.8) + 0.1 * math.log(1.2))
    assert psi([1, 1, 1], [5, 5, 5]) == 0.0
    # an empty bin counts as a share of 1e-4, as Evidently does
    assert psi([10, 0], [5, 5]) == pytest.approx(
        (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    )


@settings(max_examples=50, deadline=None)
@given(r=counts, c=counts)
def test_jensen_shannon_equals_scipy_base_2(r, c):
    assert jensen_shannon(r, c) == pytest.approx(jensenshannon(r, c, base=2), abs=1e-7)


def test_jensen_shannon_bounds():
    assert jensen_shannon([3, 5, 0], [6, 10, 0]) == 0.0
    assert jensen_shannon([1, 0], [0, 1]) == 1.0


def test_l_infinity_is_the_largest_share_change():
    assert l_infinity([50, 30, 20], [40, 30, 30]) == pytest.approx(0.1)
    assert l_infinity([1, 0], [0, 1]) == 1.0


def test_chi_square_equals_scipy_contingency_test():
    table = np.array([[120, 80, 55, 45], [100, 110, 40, 50]])
    expected = stats.chi2_contingency(table, correction=False)
    res = chi_square(table[0], table[1])
    assert res.statistic == pytest.approx(expected.statistic)
    assert res.p_value == pytest.approx(expected.pvalue)
    # the same statistic as scipy.stats.chisquare over both rows' cells (K - 1 dof)
    gof = stats.chisquare(table.ravel(), expected.expected_freq.ravel(), ddof=table.shape[1])
    assert res.statistic == pytest.approx(gof.statistic)
    assert res.p_value == pytest.approx(gof.pvalue)


def test_chi_square_pools_cells_with_small_expected_counts():
    r, c = np.array([100, 100, 2, 1, 0]), np.array([90, 120, 0, 3, 0])
    pooled = np.array([[100, 100, 3], [90, 120, 3]])
    expected = stats.chi2_contingency(pooled, correction=False)
    res = chi_square(r, c)
    assert res.statistic == pytest.approx(expected.statistic)
    assert res.p_value == pytest.approx(expected.pvalue)
    unpooled = stats.chi2_contingency(np.array([r[:4], c[:4]]), correction=False)
    assert chi_square(r, c, min_expected=0).statistic == pytest.approx(unpooled.statistic)


def test_chi_square_of_one_category_is_no_evidence():
    assert chi_square([10, 0], [20, 0]) == (0.0, 1.0)


@pytest.mark.parametrize("n", [40, 300, 3000])
def test_ks_binned_with_a_bin_per_value_equals_scipy_asymptotic(n):
    rng = np.random.default_rng(n)
    a = rng.integers(0, 25, n)
    b = rng.integers(2, 27, n + 17)
    values = np.union1d(a, b)
    r = np.array([np.count_nonzero(a == v) for v in values])
    c = np.array([np.count_nonzero(b == v) for v in values])
    expected = stats.ks_2samp(a, b, method="asymp")
    res = ks_binned(r, c)
    assert res.statistic == pytest.approx(expected.statistic)
    # scipy's own formula up to n*m/(n+m) = 2000, Stephens' approximation (< 1%) above
    assert res.p_value == pytest.approx(expected.pvalue, rel=0.02, abs=1e-12)


def test_ks_binned_p_value_for_large_samples_is_close_to_scipy():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=200_000), rng.normal(0.006, 1, 200_000)
    edges = np.quantile(a, np.linspace(0, 1, 401)[1:-1])
    r = np.bincount(np.searchsorted(edges, a), minlength=400)
    c = np.bincount(np.searchsorted(edges, b), minlength=400)
    binned, exact = ks_binned(r, c), stats.ks_2samp(a, b, method="asymp")
    assert binned.statistic <= exact.statistic + 1e-12
    expected = stats.kstwo.sf(binned.statistic, round(1e5))
    assert binned.p_value == pytest.approx(expected, rel=0.01)


@settings(max_examples=40, deadline=None)
@given(
    a=hnp.arrays(np.float64, st.integers(5, 60), elements=st.floats(-50, 50)),
    b=hnp.arrays(np.float64, st.integers(5, 60), elements=st.floats(-50, 50)),
    n_bins=st.integers(2, 10),
)
def test_ks_binned_is_conservative(a, b, n_bins):
    edges = np.unique(np.quantile(a, np.linspace(0, 1, n_bins + 1)[1:-1]))
    r = np.bincount(np.searchsorted(edges, a), minlength=len(edges) + 1)
    c = np.bincount(np.searchsorted(edges, b), minlength=len(edges) + 1)
    exact = stats.ks_2samp(a, b, method="asymp")
    assert ks_binned(r, c).statistic <= exact.statistic + 1e-12


def test_ks_exact_equals_scipy():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=300), rng.normal(0.3, 1, 250)
    expected = stats.ks_2samp(a, b)
    res = ks_exact(np.append(a, np.nan), b)
    assert (res.statistic, res.p_value) == pytest.approx((expected.statistic, expected.pvalue))


def test_wasserstein_is_scipy_divided_by_the_reference_spread():
    rng = np.random.default_rng(7)
    a, b = rng.normal(2, 3, 500), rng.normal(3, 3, 400)
    w = stats.wasserstein_distance(a, b)
    assert wasserstein(a, b) == pytest.approx(w / np.std(a))
    assert wasserstein(a, b, scale="iqr") == pytest.approx(w / stats.iqr(a))
    assert wasserstein([1.0, 1.0], [2.0, 3.0]) == pytest.approx(1.5)  # zero spread: raw
    with pytest.raises(ConfigError, match="scale"):
        wasserstein(a, b, scale="mad")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="finite"):
        wasserstein([1.0, np.inf], [1.0])


def window_bins(x: np.ndarray, bounds) -> np.ndarray:
    """Counts over (-inf, b0), [b0, b1], (b1, b2], ..., (bk, +inf), written out."""
    below = np.count_nonzero(x < bounds[0])
    cum = [np.count_nonzero(x <= b) for b in bounds[1:]]
    return np.diff([0, below, *cum, len(x)])


def test_wasserstein_binned_approaches_scipy_with_fine_bins():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=20_000), rng.normal(0.3, 1.2, 20_000)
    bounds = np.quantile(a, np.linspace(0, 1, 201))
    r, c = window_bins(a, bounds), window_bins(b, bounds)
    exact = stats.wasserstein_distance(a, b)
    assert wasserstein_binned(bounds, r, c) == pytest.approx(exact, rel=0.05)
    assert wasserstein_binned(bounds, r, c, scale=2.0) == pytest.approx(exact / 2, rel=0.05)


def test_wasserstein_binned_checks_its_shapes():
    with pytest.raises(DataError, match="boundaries need"):
        wasserstein_binned([0.0, 1.0], [1, 2], [2, 1])
    assert wasserstein_binned([0.0], [1, 2], [2, 1]) == 0.0


@pytest.mark.parametrize(
    ("r", "c", "match"),
    [
        ([1, 2], [1, 2, 3], "same bins"),
        ([0, 0], [1, 1], "empty"),
        ([-1, 2], [1, 1], "non-negative"),
        ([np.nan, 2], [1, 1], "finite"),
        ([[1, 2]], [[1, 2]], "1-D"),
        ([], [], "non-negative"),
    ],
)
def test_statistics_reject_bad_counts(r, c, match):
    for fn in (psi, jensen_shannon, l_infinity, chi_square, ks_binned):
        with pytest.raises(DataError, match=match):
            fn(r, c)


def test_raw_sample_statistics_reject_empty_samples():
    with pytest.raises(DataError, match="no non-missing"):
        ks_exact([np.nan], [1.0])


# --- multiple testing ---------------------------------------------------------------------


def holm_reference(p: np.ndarray, alpha: float) -> set[int]:
    """Holm's step-down procedure, written out: reject while p_(i) <= alpha / (m - i)."""
    rejected: set[int] = set()
    for i, j in enumerate(np.argsort(p, kind="stable")):
        if p[j] > alpha / (len(p) - i):
            break
        rejected.add(int(j))
    return rejected


def test_holm_known_values():
    assert adjust_p_values([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx(
        [0.03, 0.06, 0.06, 0.02]
    )
    assert adjust_p_values([0.5, 0.9], "bonferroni").tolist() == [1.0, 1.0]
    assert adjust_p_values([0.2, 0.01], "none").tolist() == [0.2, 0.01]


@settings(max_examples=100, deadline=None)
@given(
    p=hnp.arrays(np.float64, st.integers(1, 30), elements=st.floats(0, 1)),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_holm_matches_the_step_down_procedure_and_sits_between(p, alpha):
    holm = adjust_p_values(p, "holm")
    bonf = adjust_p_values(p, "bonferroni")
    assert np.all(holm >= p - 1e-15) and np.all(holm <= bonf + 1e-15) and np.all(holm <= 1)
    assert {int(i) for i in np.flatnonzero(holm <= alpha)} == holm_reference(p, alpha)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(holm[order]) >= 0)


def test_adjust_p_values_leaves_nan_out_of_the_family():
    out = adjust_p_values([0.01, np.nan, 0.02])
    assert math.isnan(out[1]) and out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.02)


def test_adjust_p_values_rejects_bad_input():
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        adjust_p_values([1.5])
    with pytest.raises(DataError, match="1-D"):
        adjust_p_values([[0.1]])
    with pytest.raises(ConfigError, match="holm"):
        adjust_p_values([0.1], "fdr")  # type: ignore[arg-type]


# --- the check ----------------------------------------------------------------------------


def normal_columns(n: int, shift: float = 0.0, *, seed: int, k: int = 3) -> Columns:
    rng = np.random.default_rng(seed)
    return Columns(numeric={f"x{i}": rng.normal(shift if i == 0 else 0, 1, n) for i in range(k)})


samples = hnp.arrays(
    np.float64,
    st.integers(30, 300),
    elements=st.floats(-1e6, 1e6) | st.just(np.nan),
)


@settings(max_examples=40, deadline=None)
@given(x=samples, codes=st.lists(st.integers(-1, 4), min_size=300, max_size=300))
def test_a_window_against_itself_never_drifts(x, codes):
    cols = Columns(
        numeric={"x": x},
        categorical={"c": Categorical(np.asarray(codes[: len(x)]), list("abcde"))},
    )
    profile = compute_profile(cols)
    for method in ("ks", "chi2", "psi", "jensenshannon", "wasserstein"):
        report = check_drift(profile, cols, DriftCheck(numeric_method=method))
        assert not report.drifted and report.drifted_columns == ()
        for row in report.rows:
            assert row.statistic is None or row.statistic == pytest.approx(0, abs=1e-12)
            assert row.p_value is None or row.p_value == pytest.approx(1)
            assert row.distance is None or row.distance == pytest.approx(0, abs=1e-7)
        assert {f.kind for f in report.findings} <= {"constant_column", "too_few_rows"}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shift=st.floats(0.5, 3), n=st.integers(300, 2000))
def test_shifted_samples_drift(seed, shift, n):
    profile = compute_profile(normal_columns(n, seed=seed, k=1))
    report = check_drift(profile, normal_columns(n, shift, seed=seed + 1, k=1))
    assert report.drifted_columns == ("x0",)
    assert report.row("x0").adjusted_p_value < 0.01


def test_a_small_shift_is_caught_by_the_test_and_missed_by_distance_thresholds():
    """The design target: 0.05 standard deviations on one column of 100,000 rows."""
    profile = compute_profile(normal_columns(100_000, seed=0))
    current = normal_columns(100_000, 0.05, seed=1)
    report = check_drift(profile, current)
    assert report.drifted_columns == ("x0",)
    assert report.row("x0").adjusted_p_value < 1e-8
    for method in ("wasserstein", "jensenshannon", "psi"):
        distance = check_drift(profile, current, DriftCheck(numeric_method=method))
        assert distance.drifted_columns == (), method


def test_holm_and_bonferroni_in_the_check():
    # three columns with p-values near 0.004, 0.006, 0.3: Holm keeps two, Bonferroni one
    rng = np.random.default_rng(11)
    ref = Columns(numeric={c: rng.normal(size=4000) for c in "abc"})
    profile = compute_profile(ref)
    cur_data = {"a": rng.normal(0.066, 1, 4000), "b": rng.normal(0.062, 1, 4000)}
    cur = Columns(numeric={**cur_data, "c": rng.normal(size=4000)})
    loose = check_drift(profile, cur, DriftCheck(alpha=0.05, correction="none"))
    holm = check_drift(profile, cur, DriftCheck(alpha=0.05))
    bonf = check_drift(profile, cur, DriftCheck(alpha=0.05, correction="bonferroni"))
    p = np.array([loose.row(c).p_value for c in "abc"])
    assert [holm.row(c).adjusted_p_value for c in "abc"] == pytest.approx(
        adjust_p_values(p).tolist()
    )
    assert [bonf.row(c).adjusted_p_value for c in "abc"] == pytest.approx(
        np.minimum(p * 3, 1).tolist()
    )
    assert set(bonf.drifted_columns) <= set(holm.drifted_columns) <= set(loose.drifted_columns)


def test_report_rows_and_verdict():
    profile = compute_profile(normal_columns(2000, seed=2, k=4))
    report = check_drift(profile, normal_columns(2000, 1.0, seed=3, k=4))
    assert [r.feature for r in report.rows] == ["x0", "x1", "x2", "x3"]
    row = report.row("x0")
    assert (row.kind, row.role, row.method, row.threshold) == ("numeric", "feature", "ks", 0.01)
    assert (row.n_ref, row.n_cur, row.drifted) == (2000, 2000, True)
    assert (report.n_drifted, report.n_tested, report.share_drifted) == (1, 4, 0.25)
    assert not report.drifted
    assert check_drift(
        profile, normal_columns(2000, 1.0, seed=3, k=4), DriftCheck(drift_share=0.25)
    ).drifted
    with pytest.raises(KeyError):
        report.row("nope")


def test_report_to_dict_is_json():
    cols = normal_columns(100, seed=4)
    profile = compute_profile(cols)
    odd = Columns(numeric={"x0": np.full(100, np.nan), "x1": cols.numeric["x1"]})
    data = check_drift(profile, odd).to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text)["rows"][0]["statistic"] is None
    assert {"drifted", "share_drifted", "rows", "findings", "drifted_columns"} <= set(data)


def test_prediction_and_target_columns_are_reported_apart():
    rng = np.random.default_rng(5)
    ref = Columns(
        numeric={"x": rng.normal(size=3000), "score": rng.uniform(size=3000)},
        categorical={"y": (rng.integers(0, 2, 3000), ["0", "1"])},
    )
    cur = Columns(
        numeric={"x": rng.normal(size=3000), "score": rng.uniform(0.2, 1.2, 3000)},
        categorical={"y": (rng.integers(0, 2, 3000), ["0", "1"])},
    )
    report = check_drift(compute_profile(ref), cur, DriftCheck(prediction="score", target="y"))
    assert report.prediction_drifted is True and report.target_drifted is False
    assert report.row("score").role == "prediction" and report.row("y").role == "target"
    assert (report.n_tested, report.n_drifted, report.drifted) == (1, 0, False)
    assert report.drifted_columns == ("score",)
    plain = check_drift(compute_profile(ref), cur)
    assert plain.prediction_drifted is None and plain.n_tested == 3


def test_min_distance_requires_an_effect_size():
    profile = compute_profile(normal_columns(100_000, seed=6, k=1))
    current = normal_columns(100_000, 0.05, seed=7, k=1)
    assert check_drift(profile, current).drifted_columns == ("x0",)
    assert check_drift(profile, current, DriftCheck(min_distance=0.05)).drifted_columns == ()


def test_per_feature_methods_and_thresholds():
    profile = compute_profile(normal_columns(3000, seed=8))
    current = normal_columns(3000, 0.3, seed=9)
    check = DriftCheck(
        features={
            "x0": {"method": "psi", "threshold": 0.01},
            "x1": FeatureTest(method="wasserstein"),
            "x2": {"method": "jensenshannon"},
        },
        thresholds={"wasserstein": 0.2},
    )
    report = check_drift(profile, current, check)
    x0, x1, x2 = (report.row(c) for c in ("x0", "x1", "x2"))
    assert (x0.method, x0.threshold, x0.p_value, x0.drifted) == ("psi", 0.01, None, True)
    assert (x1.method, x1.threshold) == ("wasserstein", 0.2)
    assert (x2.method, x2.threshold) == ("jensenshannon", 0.1)
    assert x0.statistic == pytest.approx(psi(*_bins(profile, current, "x0")))


def _bins(profile, current, name):
    f = profile.features[name]
    cur = window_bins(current.numeric[name], [f.min, *f.edges, f.max])
    return np.array([0, *f.counts, 0]), cur


def test_categorical_methods_and_wasserstein_on_bins():
    rng = np.random.default_rng(10)
    labels = list("abcd")
    ref = Columns(categorical={"c": (rng.choice(4, 5000, p=[0.4, 0.3, 0.2, 0.1]), labels)})
    cur = Columns(categorical={"c": (rng.choice(4, 5000, p=[0.25, 0.25, 0.25, 0.25]), labels)})
    profile = compute_profile(ref)
    for method in ("chi2", "psi", "jensenshannon", "linf"):
        report = check_drift(profile, cur, DriftCheck(categorical_method=method))
        assert report.drifted_columns == ("c",), method
    linf = check_drift(profile, cur, DriftCheck(categorical_method="linf")).row("c")
    assert linf.statistic == pytest.approx(
        l_infinity(profile.features["c"].counts, np.bincount(cur.categorical["c"].codes))
    )


def test_ks_exact_uses_the_raw_reference():
    ref, cur = normal_columns(400, seed=12, k=1), normal_columns(300, 0.4, seed=13, k=1)
    check = DriftCheck(numeric_method="ks_exact")
    report = check_drift(compute_profile(ref), cur, check, reference=ref)
    expected = stats.ks_2samp(ref.numeric["x0"], cur.numeric["x0"])
    assert report.row("x0").statistic == pytest.approx(expected.statistic)
    assert report.row("x0").p_value == pytest.approx(expected.pvalue)
    with pytest.raises(ConfigError, match="needs the raw reference"):
        check_drift(compute_profile(ref), cur, check)


# --- bad inputs: each gives a defined result and a finding ---------------------------------


def test_empty_window():
    profile = compute_profile(normal_columns(100, seed=14))
    empty = Columns(numeric={f"x{i}": np.array([]) for i in range(3)})
    report = check_drift(profile, empty)
    assert kinds(report) == [("empty_window", None)]
    assert not report.drifted and report.n_tested == 0 and report.share_drifted == 0.0
    assert all(not r.tested and "not tested" in r.note for r in report.rows)


def test_missing_values_are_left_out_of_the_test_and_reported():
    rng = np.random.default_rng(15)
    ref = Columns(numeric={"x": rng.normal(size=1000)})
    x = rng.normal(size=1000)
    x[:300] = np.nan
    report = check_drift(compute_profile(ref), Columns(numeric={"x": x}))
    assert kinds(report) == [("missing_rate", "x")]
    assert report.findings[0].value == pytest.approx(0.3)
    assert report.row("x").n_cur == 700 and not report.row("x").drifted


def test_missing_rate_tolerance_and_all_missing():
    rng = np.random.default_rng(16)
    x = rng.normal(size=1000)
    x[:100] = np.nan
    profile = compute_profile(Columns(numeric={"x": x}))
    y = rng.normal(size=1000)
    y[:120] = np.nan  # 12% vs 10%: within the 5-point tolerance
    assert kinds(check_drift(profile, Columns(numeric={"y": y, "x": y}))) == [("column_added", "y")]
    report = check_drift(profile, Columns(numeric={"x": np.full(1000, np.nan)}))
    assert kinds(report) == [("missing_rate", "x"), ("too_few_rows", "x")]
    assert "all 1000 values are missing" in report.findings[0].message


def test_infinite_and_out_of_range_values():
    rng = np.random.default_rng(17)
    profile = compute_profile(Columns(numeric={"x": rng.uniform(0, 1, 2000)}))
    x = rng.uniform(0, 1, 2000)
    x[:3] = np.inf
    x[3:50] = 5.0
    report = check_drift(profile, Columns(numeric={"x": x}))
    found = {f.kind: f for f in report.findings}
    assert found["non_finite"].value == 3
    assert found["out_of_range"].value == pytest.approx(47 / 2000, abs=2e-3)
    assert report.row("x").tested


def test_constant_columns():
    rng = np.random.default_rng(18)
    profile = compute_profile(Columns(numeric={"x": rng.normal(size=500), "k": np.ones(500)}))
    report = check_drift(
        profile, Columns(numeric={"x": np.full(500, 2.0), "k": rng.normal(size=500)})
    )
    messages = {f.column: f.message for f in report.findings if f.kind == "constant_column"}
    assert "all 500 non-missing values equal 2" in messages["x"]
    assert "constant in the reference" in messages["k"]
    assert report.drifted_columns == ("x", "k")


def test_a_constant_reference_still_sees_values_below_it():
    profile = compute_profile(Columns(numeric={"k": np.ones(500)}))
    report = check_drift(profile, Columns(numeric={"k": np.zeros(500)}))
    assert report.drifted_columns == ("k",)


def test_unseen_categories_are_compared_on_the_union():
    rng = np.random.default_rng(19)
    ref = Columns(categorical={"c": (rng.integers(0, 3, 2000), ["a", "b", "c"])})
    codes = rng.integers(0, 4, 2000)
    cur = Columns(categorical={"c": (codes, ["c", "a", "b", "new"])})  # other label order
    report = check_drift(compute_profile(ref), cur)
    assert kinds(report) == [("unseen_category", "c")]
    assert report.findings[0].value == pytest.approx(np.mean(codes == 3))
    assert "'new'" in report.findings[0].message
    assert report.drifted_columns == ("c",)
    same = Columns(categorical={"c": (rng.integers(0, 3, 2000), ["c", "a", "b"])})
    assert check_drift(compute_profile(ref), same).drifted_columns == ()


def test_constant_categorical_window():
    ref = Columns(categorical={"c": (np.arange(100) % 2, ["a", "b"])})
    report = check_drift(
        compute_profile(ref), Columns(categorical={"c": (np.zeros(100, int), ["a", "b"])})
    )
    assert ("constant_column", "c") in kinds(report)


def test_schema_changes():
    rng = np.random.default_rng(20)
    ref = Columns(
        numeric={
            "a": rng.normal(size=500),
            "gone": rng.normal(size=500),
            "n": rng.integers(0, 9, 500),
        },
        categorical={"kind": (rng.integers(0, 2, 500), ["p", "q"])},
    )
    cur = Columns(
        numeric={
            "a": rng.normal(size=500),
            "new": rng.normal(size=500),
            "n": rng.integers(0, 9, 500).astype(float),
        },
        categorical={"kind": (rng.integers(0, 2, 500), ["p", "q"])},
        dtypes={"kind": "object"},
    )
    report = check_drift(compute_profile(ref), cur)
    assert sorted(kinds(report)) == [
        ("column_added", "new"),
        ("column_removed", "gone"),
        ("dtype_changed", "n"),
    ]
    assert report.row("n").tested  # int -> float is reported and still compared
    numbers_became_text = Columns(
        numeric={"a": rng.normal(size=500)},
        categorical={"n": (rng.integers(0, 9, 500), list("012345678"))},
    )
    changed = check_drift(compute_profile(ref), numbers_became_text)
    assert ("dtype_changed", "n") in kinds(changed)
    assert not changed.row("n").tested and changed.row("n").note == "not tested: type changed"


def test_findings_of_the_conversion_are_repeated():
    mixed = Finding(kind="mixed_types", column="c", message="mixed", value="mixed")
    cols = Columns(categorical={"c": (np.zeros(50, int), ["1"])}, findings=(mixed,))
    report = check_drift(compute_profile(cols), cols)
    assert kinds(report)[0] == ("mixed_types", "c")


def test_too_few_rows_are_not_tested():
    profile = compute_profile(normal_columns(1000, seed=21, k=1))
    report = check_drift(profile, normal_columns(10, 5.0, seed=22, k=1))
    assert kinds(report) == [("out_of_range", "x0"), ("too_few_rows", "x0")]
    assert not report.row("x0").tested and not report.drifted
    assert check_drift(
        profile, normal_columns(10, 5.0, seed=22, k=1), DriftCheck(min_samples=5)
    ).drifted


def test_a_reference_without_finite_values_cannot_be_compared():
    profile = compute_profile(Columns(numeric={"x": np.full(50, np.nan)}))
    report = check_drift(profile, Columns(numeric={"x": np.ones(50)}))
    assert not report.row("x").tested
    assert ("too_few_rows", "x") in kinds(report)


def test_invalid_codes_in_the_window_are_data_errors():
    profile = compute_profile(Columns(categorical={"c": ([0, 1], ["a", "b"])}))
    with pytest.raises(DataError, match="only 2 labels"):
        check_drift(profile, Columns(categorical={"c": ([0, 5], ["a", "b"])}))
    with pytest.raises(DataError, match="below -1"):
        check_drift(profile, Columns(categorical={"c": ([0, -3], ["a", "b"])}))


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"numeric_method": "t-test"}, "numeric_method"),
        ({"categorical_method": "ks"}, "categorical_method"),
        ({"alpha": 0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": True}, "alpha"),
        ({"drift_share": 0}, "drift_share"),
        ({"correction": "fdr"}, "correction"),
        ({"min_samples": 0}, "min_samples"),
        ({"min_distance": -1}, "min_distance"),
        ({"missing_tolerance": 2}, "missing_tolerance"),
        ({"range_tolerance": "x"}, "range_tolerance"),
        ({"thresholds": {"ks": 0.1}}, "distance methods"),
        ({"thresholds": {"psi": -1}}, "thresholds"),
        ({"features": ["x0"]}, "features"),
        ({"features": {"x0": {"threshold": 0.1}}}, "needs a method"),
        ({"features": {"x0": {"method": "ks", "alpha": 0.1}}}, "features"),
        ({"features": {"x0": {"method": "magic"}}}, "method must be one of"),
        ({"features": {"x0": {"method": "psi", "threshold": 0}}}, "threshold"),
        ({"features": {"x0": {"method": "linf"}}}, "does not apply to numeric"),
        ({"prediction": 3}, "prediction"),
        ({"target": ["y"]}, "target"),
    ],
)
def test_invalid_configuration_is_a_config_error(kwargs, match):
    profile = compute_profile(normal_columns(50, seed=24))
    check = DriftCheck(**kwargs)  # stored as given; validated on first use
    with pytest.raises(ConfigError, match=match):
        check.check(profile, normal_columns(50, seed=25))


def test_get_params_round_trips():
    check = DriftCheck(alpha=0.05, features={"x": {"method": "psi"}}, prediction=["p"])
    assert DriftCheck(**check.get_params()).get_params() == check.get_params()
    assert repr(check).startswith("DriftCheck(numeric_method='ks', categorical_method='chi2'")
