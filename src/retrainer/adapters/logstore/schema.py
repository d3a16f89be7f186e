"""What a logged prediction or feedback row must look like: validation into Arrow tables.

Errors name the file (or ``origin``), the column and the first bad row.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date

import numpy as np
import pandas as pd
import pyarrow as pa

from retrainer.adapters.logstore.protocol import FEEDBACK_COLUMNS, PREDICTION_COLUMNS, Kind
from retrainer.errors import DataError

# Names the store itself gives meaning to: the joined frame adds `outcome` and
# `feedback_timestamp` to the prediction columns, and `date` is the partition column other
# tools (DuckDB, Spark) derive from the folder names when they read the log themselves.
_RESERVED: dict[Kind, tuple[str, ...]] = {
    "predictions": ("outcome", "feedback_timestamp", "date"),
    "feedback": ("feedback_timestamp", "date"),
}
EMPTY_DTYPES: dict[str, str] = {
    "id": "str",
    "timestamp": "datetime64[us]",
    "pipeline": "str",
    "model_version": "int64",
    "prediction": "object",
    "score": "float64",
    "outcome": "object",
    "feedback_timestamp": "datetime64[us]",
}

# read_log_file notes the file's own columns in the frame's attrs: a caller may add some (the
# pipeline `retrainer log predictions` is given), and an error should name what the file has
FILE_COLUMNS = "retrainer.file_columns"


_Arrays = dict[str, pa.Array | pa.ChunkedArray]
_STR = pd.Series([], dtype="str").dtype  # pandas' default text dtype

# --- validation ------------------------------------------------------------------------------


def _first_row(mask: pd.Series | np.ndarray) -> int:
    return int(np.flatnonzero(np.asarray(mask))[0])


def _missing_error(origin: str, name: str, missing: pd.Series, what: str) -> DataError:
    return DataError(
        f"{origin}: column {name!r} has {int(missing.sum())} missing value(s) (first at row "
        f"{_first_row(missing)}, counting from 0); {what}"
    )


def _example(col: pd.Series, mask: pd.Series) -> str:
    i = _first_row(mask)
    value = col.iloc[i]
    if isinstance(value, np.generic):
        value = value.item()
    return f"{value!r} at row {i}"


def _ids(col: pd.Series, origin: str) -> pd.Series:
    missing = col.isna()
    if missing.any():
        raise _missing_error(origin, "id", missing, "every row needs an id")
    inferred = pd.api.types.infer_dtype(col, skipna=True)
    if inferred not in ("string", "integer", "empty"):
        raise DataError(
            f"{origin}: column 'id' must hold text (or integers, which are stored as text); got "
            f"dtype {col.dtype} ({inferred}), e.g. {_example(col, col.notna())}. Read ids as "
            "text, e.g. "
            "pd.read_csv(path, dtype={'id': str})"
        )
    return col.astype("str")


def _timestamps(col: pd.Series, name: str, origin: str) -> pd.Series:
    """Naive UTC ``datetime64[us]``; strings must be ISO 8601, naive values count as UTC."""
    if pd.api.types.is_datetime64_any_dtype(col):
        ts = col
        if getattr(ts.dt, "tz", None) is not None:
            ts = ts.dt.tz_convert(UTC).dt.tz_localize(None)
    elif pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        raise DataError(
            f"{origin}: column {name!r} holds numbers (dtype {col.dtype}), which are ambiguous "
            "as times (seconds? milliseconds?). Give ISO 8601 strings such as "
            "'2024-01-01T12:00:00Z' or datetimes, e.g. pd.to_datetime(col, unit='s', utc=True)"
        )
    else:
        try:
            ts = pd.to_datetime(col, utc=True, format="ISO8601", errors="coerce")
        except (TypeError, ValueError, OverflowError) as exc:
            raise DataError(
                f"{origin}: column {name!r} (dtype {col.dtype}) cannot be read as timestamps: {exc}"
            ) from None
        bad = ts.isna() & col.notna()
        if bad.any():
            raise DataError(
                f"{origin}: column {name!r} has {int(bad.sum())} value(s) that are not ISO 8601 "
                f"timestamps, e.g. {_example(col, bad)}; expected e.g. '2024-01-01T12:00:00Z'"
            )
        ts = ts.dt.tz_localize(None)
    missing = ts.isna()
    if missing.any():
        raise _missing_error(origin, name, missing, "every row needs a time")
    try:
        return ts.astype("datetime64[us]")
    except (ValueError, OverflowError) as exc:  # pragma: no cover - beyond year 294247
        raise DataError(f"{origin}: column {name!r} is out of range: {exc}") from None


def _texts(col: pd.Series, name: str, origin: str, *, nullable: bool) -> pd.Series:
    missing = col.isna()
    if missing.all() and nullable:
        return pd.Series(pd.array([None] * len(col), dtype="str"), index=col.index)
    if missing.any() and not nullable:
        raise _missing_error(origin, name, missing, f"every row needs a {name}")
    inferred = pd.api.types.infer_dtype(col, skipna=True)
    if inferred not in ("string", "empty"):
        raise DataError(
            f"{origin}: column {name!r} must hold text; got dtype {col.dtype} ({inferred}), "
            f"e.g. {_example(col, col.notna())}"
        )
    return col.astype("str")


def _model_versions(col: pd.Series, origin: str) -> pd.Series:
    missing = col.isna()
    if missing.any():
        raise _missing_error(origin, "model_version", missing, "every prediction needs one")
    if pd.api.types.is_integer_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return col.astype("int64")
    if pd.api.types.is_float_dtype(col):
        fractional = col != np.floor(col)
        if not fractional.any():
            return col.astype("int64")
        bad = fractional
    else:
        bad = pd.Series(True, index=col.index)
    raise DataError(
        f"{origin}: column 'model_version' must hold integers (the registry's version "
        f"numbers); got dtype {col.dtype}, e.g. {_example(col, bad)}"
    )


def _scores(col: pd.Series, origin: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return col.astype("float64")
    numbers = pd.to_numeric(col, errors="coerce")
    bad = numbers.isna() & col.notna()
    if pd.api.types.is_bool_dtype(col) or bad.any():
        mask = bad if bad.any() else col.notna()
        raise DataError(
            f"{origin}: column 'score' must hold numbers (the predicted probability of the "
            f"positive class, or a score); got dtype {col.dtype}, e.g. {_example(col, mask)}"
        )
    return numbers.astype("float64")


def _arrow(col: pd.Series, name: str, origin: str) -> pa.Array | pa.ChunkedArray:
    # pa.array of a numpy-backed Series costs ~20 us, of its ndarray ~4 us: the same array
    values = col.to_numpy() if isinstance(col.dtype, np.dtype) else col
    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            f"{origin}: column {name!r} (dtype {col.dtype}) cannot be stored: {exc}. Give each "
            "column a single type"
        ) from None
    if pa.types.is_dictionary(array.type):
        # Categoricals are stored as their values, so every reader (and every adapter) sees
        # the same plain type.
        array = array.cast(array.type.value_type)
    return array


def normalize(frame: pd.DataFrame, kind: Kind, origin: str) -> tuple[pa.Table, np.ndarray]:
    """Check a batch and turn it into an Arrow table sorted by time, plus its UTC days."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{origin}: expected a pandas DataFrame; got {type(frame).__name__}")
    names = list(frame.columns)
    bad_names = [n for n in names if not isinstance(n, str) or not n]
    if bad_names:
        raise DataError(f"{origin}: column names must be non-empty strings; got {bad_names!r}")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise DataError(f"{origin}: duplicate column name(s): {', '.join(duplicated)}")
    required = PREDICTION_COLUMNS if kind == "predictions" else FEEDBACK_COLUMNS
    absent = [n for n in required if n not in names]
    if absent:
        own = list(frame.attrs.get(FILE_COLUMNS, names))
        if not set(own) <= set(names):  # the frame was changed since: its columns tell
            own = names
        # the columns the caller added are not asked of the file
        needs = [n for n in required if n in own or n not in names]
        raise DataError(
            f"{origin}: missing required column(s) {', '.join(map(repr, absent))}. A "
            f"{kind[:-1] if kind == 'predictions' else kind} row needs {', '.join(needs)}; "
            f"got columns: {', '.join(own) or '(none)'}"
        )
    reserved = [n for n in _RESERVED[kind] if n in names]
    if reserved:
        raise DataError(
            f"{origin}: column name(s) {', '.join(map(repr, reserved))} are reserved in the "
            f"{kind} log ({', '.join(_RESERVED[kind])}); rename them"
        )
    if len(frame) == 0:
        return pa.table({}), np.array([], dtype="datetime64[D]")
    arrays = _well_typed(frame, kind, origin)
    if arrays is None:
        arrays = _coerced(frame, kind, origin)
    ts = arrays["timestamp"].to_numpy()
    order = None if bool(np.all(ts[1:] >= ts[:-1])) else np.argsort(ts, kind="stable")
    table = pa.Table.from_arrays(
        [a if order is None else a.take(order) for a in arrays.values()], names=list(arrays)
    )
    if order is not None:
        ts = ts[order]
    return table, ts.astype("datetime64[D]")


def _well_typed(frame: pd.DataFrame, kind: Kind, origin: str) -> _Arrays | None:
    """The columns as stored when the required ones already have their stored types, else None.

    A replay or a server appends well-typed batches (the backtest 849 x 2 of them); checking
    the dtypes and Arrow null counts costs a fraction of :func:`_coerced`, which then only
    runs for batches that need converting or that fail (its errors name the row). Whatever
    this accepts, :func:`_coerced` turns into the same Arrow arrays.
    """
    columns: dict[str, pd.Series] = dict(frame.items())  # type: ignore[arg-type]  # checked: str names
    ts = columns["timestamp"]
    if not (isinstance(ts.dtype, np.dtype) and ts.dtype.kind == "M"):
        return None  # strings, aware times: parsed and converted by _timestamps
    out: _Arrays = {}
    try:
        out["id"] = _text_array(columns["id"], nullable=False)
        values = ts.to_numpy()
        micros = values.astype("datetime64[us]")
        if micros.dtype != values.dtype and not bool(np.all(micros == values)):
            return None  # finer than microseconds (or NaT)
        out["timestamp"] = _no_nulls(pa.array(micros, from_pandas=True))
        if kind == "predictions":
            out["pipeline"] = _text_array(columns["pipeline"], nullable=False)
            version = columns["model_version"]
            if not (isinstance(version.dtype, np.dtype) and version.dtype.kind == "i"):
                return None
            out["model_version"] = pa.array(version.to_numpy().astype(np.int64))
            out["prediction"] = _arrow(columns["prediction"], "prediction", origin)
            if "score" in columns:
                score = columns["score"]
                if score.dtype != np.float64:
                    return None
                out["score"] = _arrow(score, "score", origin)
        else:
            pipeline = columns.get("pipeline")
            out["pipeline"] = (
                pa.nulls(len(frame), pa.large_string())
                if pipeline is None
                else _text_array(pipeline, nullable=True)
            )
            outcome = columns["outcome"]
            if not (
                (isinstance(outcome.dtype, np.dtype) and outcome.dtype.kind in "biuf")
                or isinstance(outcome.dtype, pd.StringDtype)
            ):
                return None  # objects: pandas and Arrow disagree on what is missing
            out["outcome"] = _no_nulls(_arrow(outcome, "outcome", origin))
    except (
        _NotWellTyped,
        DataError,
        pa.ArrowInvalid,
        pa.ArrowTypeError,
        pa.ArrowNotImplementedError,
    ):
        # a bad column: _coerced decides, and names the first problem in its own order
        return None
    for name, col in columns.items():
        if name not in out:
            out[name] = _arrow(col, name, origin)
    return out


class _NotWellTyped(Exception):
    pass


def _no_nulls(array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    if array.null_count:
        raise _NotWellTyped
    return array


def _text_array(col: pd.Series, *, nullable: bool) -> pa.Array | pa.ChunkedArray:
    """Text already in pandas' ``str`` dtype, which :func:`_texts` would not change."""
    if col.dtype != _STR:
        raise _NotWellTyped
    array = pa.array(col, from_pandas=True)
    if (array.null_count and not nullable) or not pa.types.is_large_string(array.type):
        raise _NotWellTyped
    return array


def _coerced(frame: pd.DataFrame, kind: Kind, origin: str) -> _Arrays:
    """Every column checked, converted to its stored type and to Arrow; errors name the row."""
    frame = frame.reset_index(drop=True)
    columns: dict[str, pd.Series] = {
        "id": _ids(frame["id"], origin),
        "timestamp": _timestamps(frame["timestamp"], "timestamp", origin),
    }
    if kind == "predictions":
        columns["pipeline"] = _texts(frame["pipeline"], "pipeline", origin, nullable=False)
        columns["model_version"] = _model_versions(frame["model_version"], origin)
        columns["prediction"] = frame["prediction"]
        if "score" in frame.columns:
            columns["score"] = _scores(frame["score"], origin)
    else:
        pipeline = frame["pipeline"] if "pipeline" in frame.columns else None
        columns["pipeline"] = _texts(
            pd.Series([None] * len(frame), dtype=object) if pipeline is None else pipeline,
            "pipeline",
            origin,
            nullable=True,
        )
        missing = frame["outcome"].isna()
        if missing.any():
            raise _missing_error(
                origin, "outcome", missing, "a feedback row without an outcome is not feedback"
            )
        columns["outcome"] = frame["outcome"]
    for name in frame.columns:
        columns.setdefault(name, frame[name])
    return {name: _arrow(col, name, origin) for name, col in columns.items()}


def split_by_day(table: pa.Table, days: np.ndarray) -> Iterator[tuple[date, pa.Table]]:
    """The table's rows per UTC day (the table is sorted by time, so each day is one slice)."""
    if len(days) == 0:
        return
    cuts = [0, *(np.flatnonzero(days[1:] != days[:-1]) + 1).tolist(), len(days)]
    for a, b in itertools.pairwise(cuts):
        yield days[a].item(), table.slice(a, b - a)
