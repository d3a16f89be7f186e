"""Request rows checked against a served model's features: one place for JSON and columns.

The server (:mod:`retrainer.server`), ``retrainer predict FILE`` and the routing of a request
(:mod:`retrainer.engine.routing`) check rows here before any model sees them:

- :func:`feature_specs` is what each feature must hold, from the pipeline's features and the
  dtypes the served model was trained on (its snapshot's schema);
- :func:`rows_frame` checks JSON records (by column when every row has exactly the features,
  cell by cell only to name the problems), :func:`table_frame` an Arrow table (an Arrow IPC or
  Parquet body), and :func:`frame_of` either; a problem is a :class:`RowError` naming the row,
  the column and the value.

Examples
--------
>>> specs = feature_specs(["x1", "x2"], {"x1": "float64", "x2": "float64"})
>>> rows_frame(specs, [{"x1": 0.5, "x2": -1.0}]).shape
(1, 2)
>>> rows_frame(specs, [{"x1": "high", "x2": 1}])
Traceback (most recent call last):
...
retrainer.engine.rows.RowError: row 0: column 'x1' must be a number (float64); got 'high'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from retrainer.errors import DataError

__all__ = [
    "FeatureSpec",
    "Kind",
    "RowError",
    "feature_specs",
    "frame_of",
    "rows_frame",
    "table_frame",
]

Kind = Literal["float", "int", "bool", "text", "any"]

# --- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One feature a served model takes: its name, training dtype, and what a value may be."""

    name: str
    dtype: str
    kind: Kind
    nullable: bool


def _kind(dtype: str) -> tuple[Kind, bool]:
    d = dtype.lower()
    if d.startswith("float"):
        return "float", True
    if d.startswith(("int", "uint")):
        return "int", dtype[0] in "IU"  # pandas' Int64/UInt8... hold <NA>
    if d == "bool":
        return "bool", False
    if d == "boolean":
        return "bool", True
    if d in ("object", "str", "category") or d.startswith("string"):
        return "text", True
    return "any", True


def feature_specs(features: Sequence[str], schema: Mapping[str, str]) -> tuple[FeatureSpec, ...]:
    """The specs of ``features`` from a snapshot's schema (column -> dtype name).

    Examples
    --------
    >>> [(s.name, s.kind) for s in feature_specs(["a", "b"], {"a": "int64", "b": "object"})]
    [('a', 'int'), ('b', 'text')]
    """
    out = []
    for name in features:
        dtype = schema.get(name, "any")
        kind, nullable = _kind(dtype)
        out.append(FeatureSpec(name=name, dtype=dtype, kind=kind, nullable=nullable))
    return tuple(out)


class RowError(DataError):
    """Rows that do not fit the features: ``problems`` lists each (row, column, value, problem).

    The message names the first problem; the server answers 422 with all of them (the first 20).
    """

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        self.problems = problems
        first = problems[0]
        where = f"row {first['row']}: " if first.get("row") is not None else ""
        column = f"column {first['column']!r} " if first.get("column") is not None else ""
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(f"{where}{column}{first['problem']}{more}")


_MAX_PROBLEMS = 20


def _check(spec: FeatureSpec, value: Any) -> str | None:
    """Why ``value`` cannot be a value of ``spec`` (None: it can)."""
    if value is None:
        return None if spec.nullable else f"must not be null ({spec.dtype}); got null"
    kind = spec.kind
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number ({spec.dtype}); got {value!r}"
        return _out_of_range(spec, value)
    elif kind == "int":
        if isinstance(value, float) and value.is_integer():
            return _out_of_range(spec, value)
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer ({spec.dtype}); got {value!r}"
        return _out_of_range(spec, value)
    elif kind == "bool":
        if not isinstance(value, bool):
            return f"must be true or false ({spec.dtype}); got {value!r}"
    elif kind == "text" and not isinstance(value, str):
        return f"must be text ({spec.dtype}); got {value!r}"
    return None


def _out_of_range(spec: FeatureSpec, value: int | float) -> str | None:
    """Why a number does not fit ``spec``'s dtype: NaN, infinite (JSON's NaN/Infinity or
    1e999) or too large (None: it fits). Such values would make the model fail, not the row."""
    try:
        as_float = float(value)
    except OverflowError:  # an int beyond any float
        as_float = math.inf
    if math.isnan(as_float):
        return f"must be a number ({spec.dtype}); got NaN (send null for a missing value)"
    if spec.kind == "int":
        try:
            info = np.iinfo(np.dtype(spec.dtype.lower()))
        except TypeError:
            return None
        if math.isinf(as_float) or not info.min <= int(value) <= info.max:
            return f"is out of range for {spec.dtype} ({info.min}..{info.max}); got {value!r}"
        return None
    try:
        limit = float(np.finfo(np.dtype(spec.dtype.lower())).max)
    except TypeError:
        limit = math.inf
    if math.isinf(as_float) or abs(as_float) > limit:
        return f"must be a finite number that fits {spec.dtype}; got {value!r}"
    return None


def rows_frame(features: Sequence[FeatureSpec], rows: Sequence[Any]) -> pd.DataFrame:
    """The rows (JSON objects) as a frame of the features, in training dtypes.

    Raises :class:`RowError` for a row that is not an object, a missing or extra column, or a
    value of the wrong type, naming the row, the column and the value.

    Rows that all have exactly the features' keys are checked by column (a set of the value
    types per column, the numbers' range with numpy); only when that finds something off are
    the cells checked one by one, which names the problems (the same ones either way).
    """
    frame = _uniform_frame(features, rows)
    if frame is not None:
        return frame
    names = [f.name for f in features]
    known = set(names)
    problems: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            problems.append(
                {
                    "row": i,
                    "column": None,
                    "value": row,
                    "problem": f"must be an object; got {row!r}",
                }
            )
            continue
        for spec in features:
            if spec.name not in row:
                problems.append(
                    {"row": i, "column": spec.name, "value": None, "problem": "is missing"}
                )
            elif (why := _check(spec, row[spec.name])) is not None:
                problems.append(
                    {"row": i, "column": spec.name, "value": row[spec.name], "problem": why}
                )
        for extra in [k for k in row if k not in known]:
            problems.append(
                {
                    "row": i,
                    "column": extra,
                    "value": row[extra],
                    "problem": f"is not a feature of this pipeline (features: {', '.join(names)})",
                }
            )
        if len(problems) >= _MAX_PROBLEMS:
            break
    if problems:
        raise RowError(problems[:_MAX_PROBLEMS])
    dtypes = {f.dtype for f in features}
    if len(dtypes) == 1 and all(f.kind == "float" for f in features):
        # the usual case (numeric features): one 2-D block, about 10x faster than per column
        block = np.array(
            [[math.nan if row[n] is None else row[n] for n in names] for row in rows],
            dtype=features[0].dtype,
        )
        return pd.DataFrame(block, columns=names)
    return _frame(
        names, {spec.name: _column(spec, [row[spec.name] for row in rows]) for spec in features}
    )


def _frame(names: list[str], columns: dict[str, Any]) -> pd.DataFrame:
    """The frame of ``columns``: numpy columns of one dtype as one 2-D block (~10x faster to
    build than from a dict of columns, the usual case of numeric features)."""
    arrays = list(columns.values())
    if (
        arrays
        and all(isinstance(a, np.ndarray) and a.ndim == 1 for a in arrays)
        and len({a.dtype for a in arrays}) == 1
    ):
        return pd.DataFrame(np.vstack(arrays).T, columns=pd.Index(names), copy=False)
    return pd.DataFrame(columns, columns=names)


def _column(spec: FeatureSpec, values: Sequence[Any]) -> Any:
    """Valid values of ``spec`` (None: missing) as a column in its training dtype."""
    if spec.kind == "float":
        return np.array([math.nan if v is None else v for v in values], dtype=spec.dtype)
    if spec.kind in ("int", "bool"):
        return (
            pd.array(values, dtype=spec.dtype)  # type: ignore[call-overload]
            if spec.nullable
            else np.array(values, dtype=spec.dtype)
        )
    try:  # the training dtype: object, str, string, category...
        return pd.Series(values, dtype=spec.dtype if spec.kind == "text" else object)
    except (TypeError, ValueError):
        return pd.Series(values, dtype=object)


_PLAIN: dict[str, frozenset[type]] = {
    "float": frozenset({float, int}),
    "int": frozenset({int}),  # 1.0 is a valid int too, but rare: the per-cell check takes it
    "bool": frozenset({bool}),
    "text": frozenset({str}),
}


def _uniform_frame(features: Sequence[FeatureSpec], rows: Sequence[Any]) -> pd.DataFrame | None:
    """:func:`rows_frame` by column when every row is a dict of exactly the features and every
    value plainly fits; None when something may not (the per-cell check then names it)."""
    names = [f.name for f in features]
    if not rows or not names or type(rows[0]) is not dict:
        return None
    keys = rows[0].keys()
    if keys != set(names) or not all(type(r) is dict and r.keys() == keys for r in rows):
        return None
    cells = list(map(itemgetter(*names), rows))
    columns = list(zip(*cells, strict=True)) if len(names) > 1 else [tuple(cells)]
    out: dict[str, Any] = {}
    for spec, values in zip(features, columns, strict=True):
        column = _plain_column(spec, values)
        if column is None:
            return None
        out[spec.name] = column
    return _frame(names, out)


def _plain_column(spec: FeatureSpec, values: Sequence[Any]) -> Any:
    """``values`` as :func:`_column` makes them, if each one plainly fits ``spec`` (checked
    with one set of types and numpy); else None."""
    types = set(map(type, values))
    nulls = type(None) in types
    if nulls:
        if not spec.nullable:
            return None
        types.discard(type(None))
    allowed = _PLAIN.get(spec.kind)
    if allowed is not None and not types <= allowed:
        return None
    if spec.kind == "float":
        try:
            dtype = np.dtype(spec.dtype)
            numbers = np.array(
                [math.nan if v is None else v for v in values] if nulls else values,
                dtype=np.float64,
            )
        except (TypeError, OverflowError):  # a dtype numpy lacks; an int beyond any float
            return None
        finite = np.isfinite(numbers)
        if not finite.all() and (
            not nulls or not (finite | np.array([v is None for v in values])).all()
        ):
            return None  # NaN or infinite values: the per-cell check names them
        if dtype != np.float64:
            try:
                limit = float(np.finfo(dtype).max)
            except ValueError:
                return None
            if np.abs(numbers[finite]).max(initial=0.0) > limit:
                return None
        return numbers.astype(dtype, copy=False)
    if spec.kind == "int":
        try:
            info = np.iinfo(np.dtype(spec.dtype.lower()))
        except (TypeError, ValueError):
            return None
        ints = [v for v in values if v is not None] if nulls else values
        if ints and (min(ints) < info.min or max(ints) > info.max):
            return None
    return _column(spec, list(values))


# --- columnar bodies (Arrow IPC, Parquet) ----------------------------------------------------


def frame_of(features: Sequence[FeatureSpec], rows: Sequence[Any] | pa.Table) -> pd.DataFrame:
    """The checked frame of JSON records (:func:`rows_frame`) or of an Arrow table
    (:func:`table_frame`)."""
    if isinstance(rows, pa.Table):
        return table_frame(features, rows)
    return rows_frame(features, rows)


def _json_value(value: Any) -> Any:
    """A cell's value as a problem can name it in JSON (times, bytes, decimals as text)."""
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def table_frame(features: Sequence[FeatureSpec], table: pa.Table) -> pd.DataFrame:
    """An Arrow table (a columnar request body) as a frame of the features, in training
    dtypes, checked by column: a missing, extra or repeated column, and each column's type
    against its feature's kind (numbers for float, integers for int, booleans, text), with
    nulls, NaN, infinite and out-of-range numbers found with Arrow and numpy.

    Raises :class:`RowError` with the same problems :func:`rows_frame` names for the same
    rows as JSON (row, column, value): only the cells found wrong are read one by one.

    Examples
    --------
    >>> import pyarrow as pa
    >>> specs = feature_specs(["a", "b"], {"a": "float64", "b": "int64"})
    >>> table_frame(specs, pa.table({"a": [0.5, None], "b": [1, 2]})).dtypes.tolist()
    [dtype('float64'), dtype('int64')]
    >>> table_frame(specs, pa.table({"a": [0.5, 1.0], "b": [1.5, 2.0]}))
    Traceback (most recent call last):
    ...
    retrainer.engine.rows.RowError: row 0: column 'b' must be an integer (int64); got 1.5
    """
    names = [f.name for f in features]
    known = set(names)
    given = table.column_names
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    for name in given:
        if name in seen:
            problems.append(
                {"row": None, "column": name, "value": None, "problem": "is given twice"}
            )
        seen.add(name)
    problems += [
        {"row": None, "column": name, "value": None, "problem": "is missing"}
        for name in names
        if name not in seen
    ]
    problems += [
        {
            "row": None,
            "column": name,
            "value": None,
            "problem": f"is not a feature of this pipeline (features: {', '.join(names)})",
        }
        for name in dict.fromkeys(given)
        if name not in known
    ]
    if problems:
        raise RowError(problems[:_MAX_PROBLEMS])
    columns: dict[str, Any] = {}
    for spec in features:
        column = table.column(spec.name)
        if pa.types.is_dictionary(column.type):  # e.g. a pandas category: its values
            column = column.cast(column.type.value_type)
        suspects = _suspects(spec, column)
        found = 0
        for i in suspects.tolist():
            value = column[i].as_py()
            why = _check(spec, value)
            if why is not None:
                problems.append(
                    {"row": i, "column": spec.name, "value": _json_value(value), "problem": why}
                )
                found += 1
                if found >= _MAX_PROBLEMS:
                    break
        if not problems:
            columns[spec.name] = _arrow_column(spec, column)
    if problems:
        order = {name: j for j, name in enumerate(names)}
        problems.sort(key=lambda p: (p["row"], order[p["column"]]))
        raise RowError(problems[:_MAX_PROBLEMS])
    return _frame(names, columns)


def _suspects(spec: FeatureSpec, column: pa.ChunkedArray) -> np.ndarray:
    """Rows of ``column`` that may not fit ``spec`` (a superset of the bad ones: each is
    checked with :func:`_check`), found by column."""
    t = column.type
    nulls = column.is_null().to_numpy(zero_copy_only=False)
    bad = np.zeros(len(column), dtype=bool) if spec.nullable else nulls.copy()
    kind = spec.kind
    if kind == "any" or pa.types.is_null(t):
        return np.flatnonzero(bad)
    numeric = pa.types.is_floating(t) or pa.types.is_integer(t)
    fits = {
        "float": numeric,
        "int": numeric,
        "bool": pa.types.is_boolean(t),
        "text": pa.types.is_string(t) or pa.types.is_large_string(t),
    }[kind]
    if not fits:  # every value is of the wrong type
        return np.flatnonzero(bad | ~nulls)
    if (kind == "float" and pa.types.is_integer(t)) or kind in ("bool", "text"):
        return np.flatnonzero(bad)  # any integer fits a float's range
    if kind == "int":
        try:
            info = np.iinfo(np.dtype(spec.dtype.lower()))
        except TypeError:
            return np.flatnonzero(bad)
        if pa.types.is_integer(t):
            low, high = pc.min_max(column).values()
            if low.is_valid and (low.as_py() < info.min or high.as_py() > info.max):
                out = [v is not None and not info.min <= v <= info.max for v in column.to_pylist()]
                bad |= np.array(out, dtype=bool)
            return np.flatnonzero(bad)
    values = column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)  # null: NaN
    ok = np.isfinite(values)
    inside = np.where(ok, values, 0.0)
    if kind == "int":
        ok &= (np.floor(inside) == inside) & (inside >= info.min) & (inside <= info.max)
    else:
        try:
            limit = float(np.finfo(np.dtype(spec.dtype.lower())).max)
        except TypeError:
            limit = math.inf
        ok &= np.abs(inside) <= limit
    return np.flatnonzero(bad | (~nulls & ~ok))


def _arrow_column(spec: FeatureSpec, column: pa.ChunkedArray) -> Any:
    """A checked Arrow column as :func:`_column` makes the same values."""
    if spec.kind == "float":
        if pa.types.is_null(column.type):
            return np.full(len(column), math.nan, dtype=spec.dtype)
        values = column.to_numpy(zero_copy_only=False)
        if values.dtype == object:  # integers with nulls
            values = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
        return values.astype(spec.dtype, copy=False)
    if spec.kind in ("int", "bool") and not spec.nullable and column.null_count == 0:
        return column.to_numpy(zero_copy_only=False).astype(spec.dtype, copy=False)
    return _column(spec, column.to_pylist())
