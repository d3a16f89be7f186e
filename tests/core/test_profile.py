"""Reference profiles: the columnar input, computing, JSON round trips and merging."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from retrainer.core.profile import (
    Categorical,
    CategoricalProfile,
    Columns,
    Finding,
    NumericProfile,
    Profile,
    compute_profile,
    merge,
)
from retrainer.errors import DataError


def numeric(x, n_bins=20, **kw) -> NumericProfile:
    f = compute_profile(Columns(numeric={"x": np.asarray(x)}), n_bins=n_bins, **kw).features["x"]
    assert isinstance(f, NumericProfile)
    return f


# --- Columns ------------------------------------------------------------------------------


def test_columns_infer_rows_and_normalize_inputs():
    cols = Columns(numeric={"a": [1.0, 2.0]}, categorical={"c": ([0, -1], ["x"])})
    assert cols.n_rows == 2
    assert isinstance(cols.numeric["a"], np.ndarray)
    assert cols.categorical["c"].labels == ("x",)
    assert cols.dtypes == {"a": "float64", "c": "category"}
    assert cols.names == ("a", "c")


def test_columns_keep_arrays_without_copies():
    x = np.arange(5.0)
    assert Columns(numeric={"x": x}).numeric["x"] is x


def test_columns_without_columns_need_n_rows():
    assert Columns().n_rows == 0
    assert Columns(n_rows=7).n_rows == 7


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"numeric": {"a": [1.0, 2.0], "b": [1.0]}}, "same length"),
        ({"numeric": {"a": [1.0]}, "categorical": {"a": ([0], ["x"])}}, "both"),
        ({"numeric": {"a": ["x", "y"]}}, "must hold numbers"),
        ({"numeric": {"a": [[1.0, 2.0]]}}, "1-D"),
        ({"categorical": {"c": ([0.5], ["x"])}}, "integer codes"),
        ({"categorical": {"c": ([0, 1], ["x", "x"])}}, "duplicate labels"),
        ({"categorical": {"c": [0, 1, 2]}}, r"\(codes, labels\) pair"),
        ({"numeric": {"a": [1.0, 2.0]}, "n_rows": 3}, "n_rows=3"),
    ],
)
def test_columns_reject_bad_input(kwargs, match):
    with pytest.raises(DataError, match=match):
        Columns(**kwargs)


# --- numeric profiles ---------------------------------------------------------------------


def test_quantile_bins_hold_equal_shares_of_a_continuous_column():
    x = np.random.default_rng(0).normal(size=10_000)
    f = numeric(x, n_bins=20)
    assert len(f.edges) == 19 and len(f.counts) == 20
    assert np.all(np.diff(f.edges) > 0)
    assert sum(f.counts) == 10_000
    assert max(abs(c - 500) for c in f.counts) <= 1
    assert f.min == x.min() and f.max == x.max()
    assert f.mean == pytest.approx(x.mean()) and f.std == pytest.approx(x.std())


def test_counts_match_searchsorted_on_the_same_edges():
    x = np.random.default_rng(1).exponential(size=5_000)
    f = numeric(x, n_bins=7)
    expected = np.bincount(np.searchsorted(f.edges, x, side="left"), minlength=7)
    assert f.counts == tuple(expected.tolist())


def test_discrete_columns_get_one_bin_per_value_below_the_max():
    f = numeric([0, 0, 0, 1, 1, 2] * 10, n_bins=20)
    assert f.edges == (0.0, 1.0)
    assert f.counts == (30, 20, 10)
    assert f.dtype == "int64"


def test_missing_and_infinite_values_are_counted_apart():
    f = numeric([1.0, 2.0, np.nan, np.inf, -np.inf, 3.0, np.nan], n_bins=2)
    assert (f.n, f.n_missing, f.n_neg_inf, f.n_pos_inf) == (7, 2, 1, 1)
    assert sum(f.counts) == 5 and f.n_finite == 3
    assert (f.min, f.max, f.mean) == (1.0, 3.0, 2.0)


def test_all_missing_and_constant_columns_have_defined_profiles():
    empty = numeric([np.nan] * 4)
    assert empty.edges == () and empty.counts == (0,) and empty.min is None
    assert empty.mean is None and empty.std is None
    const = numeric([5.0] * 4)
    assert const.edges == () and const.counts == (4,)
    assert (const.min, const.max, const.std) == (5.0, 5.0, 0.0)


def test_bool_arrays_are_numbers_too():
    f = numeric(np.array([True, False, True, True]))
    assert f.edges == (0.0,) and f.counts == (1, 3) and f.dtype == "bool"


@pytest.mark.parametrize("n_bins", [1, 0, 2.5, True, "10"])
def test_n_bins_must_be_an_integer_of_at_least_two(n_bins):
    with pytest.raises(DataError, match="n_bins"):
        compute_profile(Columns(numeric={"x": [1.0]}), n_bins=n_bins)


# --- categorical profiles -----------------------------------------------------------------


def test_category_counts_and_missing():
    cols = Columns(categorical={"c": Categorical(np.array([0, 2, 2, -1, 2]), ["a", "b", "c"])})
    f = compute_profile(cols).features["c"]
    assert f == CategoricalProfile(
        dtype="category", n=5, n_missing=1, labels=("a", "b", "c"), counts=(1, 0, 3)
    )


@pytest.mark.parametrize(("codes", "match"), [([0, 2], "only 2 labels"), ([0, -2], "below -1")])
def test_codes_out_of_range_are_data_errors(codes, match):
    cols = Columns(categorical={"c": Categorical(np.array(codes), ["a", "b"])})
    with pytest.raises(DataError, match=match):
        compute_profile(cols)


def test_empty_window_profiles_to_empty_counts():
    cols = Columns(
        numeric={"x": np.array([], dtype=float)},
        categorical={"c": Categorical(np.array([], dtype=np.int8), ["a"])},
    )
    p = compute_profile(cols)
    assert p.n_rows == 0
    assert p.features["x"].counts == (0,)
    assert p.features["c"].counts == (0,)


def test_skipped_columns_are_recorded():
    finding = Finding(kind="skipped_column", column="ts", message="datetime", value="datetime64")
    p = compute_profile(Columns(numeric={"x": [1.0]}, findings=(finding,)))
    assert p.skipped == {"ts": "datetime"}


# --- serialization ------------------------------------------------------------------------


def test_to_dict_is_json_and_round_trips():
    rng = np.random.default_rng(2)
    cols = Columns(
        numeric={"x": rng.normal(size=100), "nan": np.full(100, np.nan)},
        categorical={"c": Categorical(rng.integers(-1, 3, 100), ["a", "b", "c"])},
    )
    p = compute_profile(cols)
    text = json.dumps(p.to_dict(), allow_nan=False)
    assert Profile.from_dict(json.loads(text)) == p


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"format": "other"}, "not a retrainer profile"),
        ([], "not a retrainer profile"),
        ({"format": "retrainer.profile", "version": 99}, "version 99"),
        ({"format": "retrainer.profile", "version": 1}, "malformed"),
        (
            {"format": "retrainer.profile", "version": 1, "n_rows": 1, "features": {"x": {}}},
            "malformed",
        ),
        (
            {
                "format": "retrainer.profile",
                "version": 1,
                "n_rows": 1,
                "features": {"x": {"kind": "text"}},
            },
            "unknown kind",
        ),
    ],
)
def test_from_dict_rejects_what_it_cannot_read(data, match):
    with pytest.raises(DataError, match=match):
        Profile.from_dict(data)


# --- merging ------------------------------------------------------------------------------

finite_or_not = st.floats(
    min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, width=64
) | st.sampled_from([np.nan, np.inf, -np.inf])


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(np.float64, st.integers(2, 200), elements=finite_or_not),
    split=st.floats(0, 1),
    n_bins=st.integers(2, 12),
)
def test_merge_of_halves_with_shared_edges_equals_the_whole(x, split, n_bins):
    cut = int(split * len(x))
    whole = compute_profile(Columns(numeric={"x": x}), n_bins=n_bins)
    parts = [
        compute_profile(Columns(numeric={"x": part}), n_bins=n_bins, edges_from=whole)
        for part in (x[:cut], x[cut:])
    ]
    merged = merge(*parts)
    m, w = merged.features["x"], whole.features["x"]
    assert isinstance(m, NumericProfile) and isinstance(w, NumericProfile)
    assert merged.n_rows == whole.n_rows
    assert (m.edges, m.counts, m.n, m.n_missing) == (w.edges, w.counts, w.n, w.n_missing)
    assert (m.n_neg_inf, m.n_pos_inf, m.min, m.max) == (w.n_neg_inf, w.n_pos_inf, w.min, w.max)
    if w.mean is None:
        assert m.mean is None
    else:
        assert m.mean == pytest.approx(w.mean, rel=1e-9, abs=1e-6)
        assert m.std == pytest.approx(w.std, rel=1e-6, abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    codes=hnp.arrays(np.int64, st.integers(0, 100), elements=st.integers(-1, 3)),
    split=st.floats(0, 1),
)
def test_merge_of_categorical_halves_equals_the_whole(codes, split):
    labels = ["a", "b", "c", "d"]
    cut = int(split * len(codes))
    whole = compute_profile(Columns(categorical={"c": Categorical(codes, labels)}))
    merged = merge(
        *(
            compute_profile(Columns(categorical={"c": Categorical(part, labels)}))
            for part in (codes[:cut], codes[cut:])
        )
    )
    assert merged.features == whole.features


def test_merge_with_different_edges_re_bins_approximately():
    x = np.random.default_rng(3).normal(size=20_000)
    whole = numeric(x, n_bins=10)
    merged = merge(
        compute_profile(Columns(numeric={"x": x[:10_000]}), n_bins=10),
        compute_profile(Columns(numeric={"x": x[10_000:]}), n_bins=10),
    ).features["x"]
    assert isinstance(merged, NumericProfile)
    assert sum(merged.counts) == 20_000 and len(merged.edges) == 9
    assert np.allclose(merged.edges, whole.edges, atol=0.03)
    assert max(abs(a - b) for a, b in zip(merged.counts, whole.counts, strict=True)) < 60
    assert (merged.min, merged.max) == (whole.min, whole.max)


def test_merge_keeps_infinities_in_the_outer_bins_when_re_binning():
    a = numeric([1.0, 2.0, 3.0, -np.inf], n_bins=2)
    b = numeric([10.0, 20.0, 30.0, np.inf, np.inf], n_bins=3)
    pa = Profile(n_rows=4, features={"x": a})
    pb = Profile(n_rows=5, features={"x": b})
    m = merge(pa, pb).features["x"]
    assert isinstance(m, NumericProfile)
    assert sum(m.counts) == 9 and (m.n_neg_inf, m.n_pos_inf) == (1, 2)
    assert m.counts[0] >= 1 and m.counts[-1] >= 2


def test_merge_takes_the_other_side_when_one_has_only_missing_values():
    a = Profile(n_rows=3, features={"x": numeric([np.nan] * 3)})
    b = Profile(n_rows=4, features={"x": numeric([1.0, 2.0, 3.0, 4.0], n_bins=2)})
    m = merge(a, b).features["x"]
    assert m.edges == b.features["x"].edges and m.counts == b.features["x"].counts
    assert (m.n, m.n_missing) == (7, 3)


def test_merge_counts_a_column_absent_from_one_side_as_missing():
    a = compute_profile(Columns(numeric={"x": [1.0, 2.0]}, categorical={"c": ([0, 0], ["a"])}))
    b = compute_profile(Columns(numeric={"x": [3.0]}))
    m = merge(a, b)
    assert list(m.features) == ["x", "c"]
    assert (m.features["c"].n, m.features["c"].n_missing) == (3, 1)
    m2 = merge(b, a)
    assert (m2.features["c"].n, m2.features["c"].n_missing) == (3, 1)


def test_merge_unions_category_labels():
    a = compute_profile(Columns(categorical={"c": ([0, 1], ["a", "b"])}))
    b = compute_profile(Columns(categorical={"c": ([0, 1, 1], ["b", "z"])}))
    c = merge(a, b).features["c"]
    assert (c.labels, c.counts) == (("a", "b", "z"), (1, 2, 2))


def test_merge_refuses_a_column_of_two_kinds():
    a = compute_profile(Columns(numeric={"x": [1.0]}))
    b = compute_profile(Columns(categorical={"x": ([0], ["a"])}))
    with pytest.raises(DataError, match="numeric in the first and categorical"):
        merge(a, b)


def test_finding_to_dict_drops_non_finite_values():
    f = Finding(kind="non_finite", column="x", message="m", value=math.inf)
    assert f.to_dict()["value"] is None
    assert Finding.from_dict(Finding(kind="k", column=None, message="m").to_dict()).kind == "k"
