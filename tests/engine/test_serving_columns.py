"""Checking rows by column (JSON records, Arrow tables) gives what the per-cell check gives."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrainer.engine.serving import RowError, feature_specs, new_ids, rows_frame, table_frame

SCHEMA = {
    "f": "float64",
    "g": "float32",
    "i": "int64",
    "n": "Int64",
    "s": "int8",
    "b": "bool",
    "t": "object",
}
SPECS = feature_specs(list(SCHEMA), SCHEMA)

GOOD: dict[str, st.SearchStrategy[Any]] = {
    "f": st.none() | st.integers(-1000, 1000) | st.floats(allow_nan=False, allow_infinity=False),
    "g": st.none() | st.floats(width=32, allow_nan=False, allow_infinity=False),
    "i": st.integers(-(2**63), 2**63 - 1),
    "n": st.none() | st.integers(-1000, 1000),
    "s": st.integers(-128, 127),
    "b": st.booleans(),
    "t": st.text(max_size=3),
}
ANY = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.floats(min_value=-1e300, max_value=1e300)
    | st.text(max_size=3)
    | st.just([1])
)


@st.composite
def records(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Rows that fit; or the same with one bad value; or with bad values, missing and extra
    keys here and there."""
    n = draw(st.integers(1, 25))
    mode = draw(st.sampled_from(["clean", "one", "noisy"]))
    rows = []
    for _ in range(n):
        row = {}
        for name, good in GOOD.items():
            row[name] = (
                draw(ANY) if mode == "noisy" and not draw(st.integers(0, 19)) else draw(good)
            )
        change = draw(st.integers(0, 40)) if mode == "noisy" else -1
        if change == 0:
            del row[draw(st.sampled_from(list(SCHEMA)))]
        elif change == 1:
            row["zz"] = draw(ANY)
        rows.append(row)
    if mode == "one":
        rows[draw(st.integers(0, n - 1))][draw(st.sampled_from(list(SCHEMA)))] = draw(ANY)
    return rows


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return "frame", call()
    except RowError as exc:
        return "problems", repr(exc.problems)  # repr: NaN equals NaN


def assert_same(a: tuple[str, Any], b: tuple[str, Any]) -> None:
    assert a[0] == b[0], (a, b)
    if a[0] == "frame":
        pd.testing.assert_frame_equal(a[1], b[1])
    else:
        assert a[1] == b[1]


def per_cell(rows: list[dict[str, Any]]) -> list[Mapping[str, Any]]:
    """The same rows, not dicts: rows_frame checks them cell by cell."""
    return [MappingProxyType(r) for r in rows]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_json_rows_checked_by_column_give_the_per_cell_frame_or_problems(rows):
    assert_same(
        outcome(lambda: rows_frame(SPECS, rows)), outcome(lambda: rows_frame(SPECS, per_cell(rows)))
    )


# an Arrow column per feature: values of the column's type, sometimes the wrong type
ARROW_COLUMNS: dict[str, list[st.SearchStrategy[Any]]] = {
    "f": [st.none() | st.floats(), st.none() | st.integers(-1000, 1000), st.text(max_size=2)],
    "g": [st.none() | st.floats(allow_nan=False), st.booleans()],
    "i": [
        st.integers(-(2**63), 2**63 - 1),
        st.none() | st.integers(-(2**63), 2**63 - 1),
        st.sampled_from([1.0, -2.0, 1.5, float("nan"), 1e20]),
    ],
    "n": [st.none() | st.integers(-1000, 1000)],
    "s": [st.integers(-1000, 1000), st.integers(-128, 127)],
    "b": [st.booleans(), st.none() | st.booleans(), st.integers(0, 1)],
    "t": [st.text(max_size=3), st.none() | st.text(max_size=3), st.integers(0, 9)],
}


@st.composite
def tables(draw: st.DrawFn) -> dict[str, list[Any]]:
    n = draw(st.integers(1, 25))
    noisy = draw(st.booleans())  # else every column of a type and values that fit
    return {
        name: draw(
            st.lists(
                draw(st.sampled_from(choices)) if noisy else GOOD[name], min_size=n, max_size=n
            )
        )
        for name, choices in ARROW_COLUMNS.items()
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_an_arrow_table_checked_by_column_gives_the_frame_or_problems_of_its_rows(columns):
    table = pa.table(columns)
    rows = table.to_pylist()
    assert_same(
        outcome(lambda: table_frame(SPECS, table)),
        outcome(lambda: rows_frame(SPECS, per_cell(rows))),
    )


def test_arrow_missing_extra_and_repeated_columns_are_named():
    specs = feature_specs(["a", "b"], {"a": "float64", "b": "float64"})
    with pytest.raises(RowError) as err:
        table_frame(specs, pa.table({"a": [1.0], "c": [2.0]}))
    assert [(p["row"], p["column"], p["problem"][:10]) for p in err.value.problems] == [
        (None, "b", "is missing"),
        (None, "c", "is not a f"),
    ]
    twice = pa.Table.from_arrays(
        [pa.array([1.0]), pa.array([2.0]), pa.array([3.0])], ["a", "b", "a"]
    )
    with pytest.raises(RowError, match="column 'a' is given twice"):
        table_frame(specs, twice)


def test_an_arrow_category_column_is_read_as_its_values():
    specs = feature_specs(["c"], {"c": "category"})
    table = pa.Table.from_pandas(pd.DataFrame({"c": pd.Categorical(["x", "y", "x"])}))
    frame = table_frame(specs, table)
    assert frame["c"].tolist() == ["x", "y", "x"]
    assert frame["c"].dtype == "category"


def test_problems_name_the_first_cells_in_row_order():
    specs = feature_specs(["a", "b"], {"a": "float64", "b": "int64"})
    table = pa.table({"a": ["x"] * 30, "b": [1.5] * 30})
    with pytest.raises(RowError) as err:
        table_frame(specs, table)
    got = [(p["row"], p["column"]) for p in err.value.problems]
    assert got == [(r, c) for r in range(10) for c in ("a", "b")]


def test_ids_are_unique_across_and_within_calls():
    ids = [i for _ in range(200) for i in new_ids(50)]
    assert len(set(ids)) == len(ids) == 10_000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert np.unique([i[:24] for i in ids]).size == 200
