"""The in-memory store's JSON copies: the fast path for flat dicts gives the round trip's value."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from retrainer.adapters.metadata._records import json_dict, json_dicts, json_value

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)


def round_trip(value: dict[str, Any]) -> dict[str, Any]:
    """The reference: what ``json_value`` (an encode and a decode) gives."""
    result: dict[str, Any] = json_value(dict(value), "x")
    return result


def same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) and [
        type(v) for v in a.values()
    ] == [type(v) for v in b.values()]


@given(st.dictionaries(st.text(max_size=6), scalars, max_size=8))
def test_a_flat_dict_copies_as_the_round_trip_does(value: dict[str, Any]) -> None:
    copy = json_dict(value, "x")
    assert same(copy, round_trip(value))
    assert list(copy) == list(value)
    assert copy is not value


@given(
    st.dictionaries(
        st.text(max_size=6),
        st.one_of(
            scalars,
            st.lists(scalars, max_size=3),
            st.dictionaries(st.text(max_size=3), scalars, max_size=3),
        ),
        max_size=6,
    ),
    st.dictionaries(st.text(max_size=6), scalars, max_size=6),
)
def test_several_fields_copy_as_each_alone(nested: dict[str, Any], flat: dict[str, Any]) -> None:
    got = json_dicts({"A.nested": nested, "A.flat": flat})
    assert same(got["A.nested"], round_trip(nested))
    assert same(got["A.flat"], round_trip(flat))


def test_other_scalars_take_the_round_trip() -> None:
    value = {"n": np.int64(3), "f": np.float64(0.5), "nan": np.float64("nan"), "t": (1, 2)}
    assert json_dict(value, "x") == {"n": 3, "f": 0.5, "nan": None, "t": [1, 2]}
    assert type(json_dict(value, "x")["n"]) is int
    assert json_dict({"inf": math.inf, "ok": 1.5}, "x") == {"inf": None, "ok": 1.5}
    assert json_dict({1: "a"}, "x") == {"1": "a"}  # JSON's keys are strings


@pytest.mark.parametrize("bad", [{"k": b"bytes"}, {"k": {1, 2}}, {"k": object()}])
def test_a_value_json_cannot_hold_is_refused_naming_the_field(bad: dict[Any, Any]) -> None:
    with pytest.raises(TypeError, match=r"Run\.params must hold only JSON values"):
        json_dicts({"Run.metrics": {"a": 1.0}, "Run.params": bad})


def test_metrics_to_json_nulls_non_finite_values_and_keeps_order():
    """The SQL rows' metrics: NaN and infinities are null (JSON has neither), order kept."""
    from retrainer.adapters.metadata._records import metrics_from_json, metrics_to_json

    metrics = {"b": float("nan"), "a": float("-inf"), "c": 0.5, "d": np.float64(np.inf)}
    encoded = metrics_to_json(metrics)
    assert encoded == {"b": None, "a": None, "c": 0.5, "d": None}
    assert list(encoded) == ["b", "a", "c", "d"]
    decoded = metrics_from_json(encoded)
    assert decoded["c"] == 0.5 and all(decoded[k] != decoded[k] for k in ("a", "b", "d"))
