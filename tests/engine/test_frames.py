"""pandas DataFrames into Columns: dtypes, copies, and what is skipped or flagged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retrainer.core.drift import check_drift
from retrainer.core.profile import compute_profile
from retrainer.engine.frames import to_columns
from retrainer.errors import DataError


def findings(cols) -> list[tuple[str, str | None]]:
    return [(f.kind, f.column) for f in cols.findings]


def test_float_and_int_columns_are_views_of_the_frame():
    frame = pd.DataFrame({"f": np.arange(5.0), "i": np.arange(5), "g": np.ones(5)})
    cols = to_columns(frame)
    assert np.shares_memory(cols.numeric["f"], frame["f"].to_numpy())
    assert cols.numeric["i"].dtype == np.int64
    assert cols.dtypes == {"f": "float64", "i": "int64", "g": "float64"}


def test_nullable_numbers_become_float_with_nan():
    frame = pd.DataFrame({"i": pd.array([1, None, 3], dtype="Int64")})
    values = to_columns(frame).numeric["i"]
    assert values.dtype == np.float64 and np.isnan(values[1]) and values[2] == 3.0


def test_bool_columns_are_categorical_without_a_copy():
    frame = pd.DataFrame({"b": [True, False, True]})
    col = to_columns(frame).categorical["b"]
    assert col.labels == ("False", "True") and col.codes.tolist() == [1, 0, 1]
    assert np.shares_memory(col.codes, frame["b"].to_numpy())


def test_nullable_booleans_mark_missing_values():
    frame = pd.DataFrame({"b": pd.array([True, None, False], dtype="boolean")})
    assert to_columns(frame).categorical["b"].codes.tolist() == [1, -1, 0]


def test_category_codes_pass_through():
    frame = pd.DataFrame({"c": pd.Categorical(["x", None, "y", "x"], categories=["y", "x"])})
    col = to_columns(frame).categorical["c"]
    assert col.labels == ("y", "x") and col.codes.tolist() == [1, -1, 0, 1]
    assert np.shares_memory(col.codes, frame["c"].array.codes)


def test_strings_are_factorized_once():
    frame = pd.DataFrame(
        {
            "s": pd.array(["a", "b", None, "a"], dtype="str"),
            "o": pd.Series(["a", "b", None, "a"], dtype=object),
        }
    )
    cols = to_columns(frame)
    for name in ("s", "o"):
        assert cols.categorical[name].labels == ("a", "b")
        assert cols.categorical[name].codes.tolist() == [0, 1, -1, 0]
    assert cols.findings == ()


def test_object_columns_of_numbers_are_numeric():
    frame = pd.DataFrame({"o": pd.Series([1, 2.5, None], dtype=object)})
    cols = to_columns(frame)
    assert cols.numeric["o"].tolist()[:2] == [1.0, 2.5] and np.isnan(cols.numeric["o"][2])


def test_mixed_types_become_text_categories_with_a_finding():
    frame = pd.DataFrame({"m": pd.Series(["a", 1, "1", None, 2.5], dtype=object)})
    cols = to_columns(frame)
    col = cols.categorical["m"]
    assert col.labels == ("a", "1", "2.5")  # 1 and "1" are one category
    assert col.codes.tolist() == [0, 1, 1, -1, 2]
    assert findings(cols) == [("mixed_types", "m")]


def test_time_and_other_columns_are_skipped_with_a_finding():
    frame = pd.DataFrame(
        {
            "t": pd.date_range("2024-01-01", periods=3, tz="UTC"),
            "d": pd.to_timedelta([1, 2, 3], unit="s"),
            "p": pd.period_range("2024-01", periods=3, freq="M"),
            "z": np.array([1 + 1j, 2, 3]),
            "dates": pd.Series(pd.to_datetime(["2024-01-01"] * 3).date, dtype=object),
            "x": [1.0, 2.0, 3.0],
        }
    )
    cols = to_columns(frame)
    assert cols.names == ("x",)
    assert findings(cols) == [
        ("skipped_column", "t"),
        ("skipped_column", "d"),
        ("skipped_column", "p"),
        ("skipped_column", "z"),
        ("skipped_column", "dates"),
    ]
    assert set(compute_profile(cols).skipped) == {"t", "d", "p", "z", "dates"}


def test_forced_categorical_and_excluded_columns():
    frame = pd.DataFrame({"zip": [1010, 2020, 1010], "id": [1, 2, 3]})
    cols = to_columns(frame, categorical=["zip"], exclude=["id"])
    assert cols.names == ("zip",) and cols.categorical["zip"].labels == ("1010", "2020")
    with pytest.raises(DataError, match="not in the frame"):
        to_columns(frame, categorical=["nope"])


def test_duplicate_column_names_are_refused():
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(DataError, match="duplicate column names"):
        to_columns(frame)


def test_empty_frames_convert():
    cols = to_columns(pd.DataFrame({"x": pd.Series([], dtype=float)}))
    assert cols.n_rows == 0 and cols.names == ("x",)
    assert to_columns(pd.DataFrame(index=range(4))).n_rows == 4


def test_a_frame_round_trip_through_profile_and_check():
    rng = np.random.default_rng(0)
    n = 3000

    def frame(shift: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "price": rng.normal(10 + shift, 2, n),
                "city": pd.array(rng.choice(["Oslo", "Rome", "Lima"], n), dtype="str"),
                "member": rng.random(n) < 0.3 + shift / 10,
                "ts": pd.date_range("2024-01-01", periods=n, freq="min"),
            }
        )

    profile = compute_profile(to_columns(frame(0.0)))
    assert set(profile.features) == {"price", "city", "member"}
    report = check_drift(profile, to_columns(frame(1.0)))
    assert report.drifted_columns == ("price", "member")
    assert ("skipped_column", "ts") in [(f.kind, f.column) for f in report.findings]
    # a numeric column that arrives as text is a schema change, not a crash
    broken = frame(0.0).assign(price=lambda f: f["price"].astype(object).where(f.index > 0, "n/a"))
    report = check_drift(profile, to_columns(broken))
    assert ("mixed_types", "price") in [(f.kind, f.column) for f in report.findings]
    assert ("dtype_changed", "price") in [(f.kind, f.column) for f in report.findings]
    assert not report.row("price").tested
