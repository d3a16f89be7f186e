"""The log store port (predictions and their delayed feedback) and its adapters.

Every prediction a model serves is logged with its id, time, pipeline, model version, the
prediction, an optional score and the features it saw; feedback (a label, a click, a value)
arrives later under the same id. The monitor joins the two to measure a model online.

``ParquetLogStore`` keeps the logs as Parquet segments partitioned by day on any fsspec
filesystem and queries them with DuckDB::

    <root>/predictions/date=2024-01-01/<segment>.parquet
    <root>/feedback/date=2024-01-02/<segment>.parquet

``InMemoryLogStore`` keeps the same segments as Arrow tables in the process, for tests, doctests
and the backtest. Both answer every query with the same SQL, so they give the same rows with
the same dtypes; one contract suite (``tests/adapters/test_logstore.py``) runs against both.

Contract
--------
- **Appends are durable and atomic per segment.** ``append_*`` returns once the rows are on
  disk; each day of a batch is one segment, which is complete or absent after a crash (local
  disks: temporary name in the same folder, fsync, rename; object stores: one PUT). Readers
  never see a temporary file.
- **Appends are idempotent.** A segment is named after the hash of its content, so retrying a
  batch whose first attempt was written (the process died before it could tell) adds nothing;
  ``append_*`` returns an :class:`Appended`, which says how many of the rows were new.
- **Timestamps are naive UTC** (``datetime64[us]``): aware inputs are converted, naive inputs
  are taken to be UTC. Time ranges are ``[start, end)``; None means unbounded.
- **Delayed labels.** :meth:`LogStore.joined` only counts feedback that arrived at or before
  ``feedback_until``; for an id with several feedback rows, the latest one (largest timestamp)
  at or before ``feedback_until`` wins, and an exact tie is broken by the larger outcome, so the
  answer never depends on how the log happens to be stored (segment names, compaction).
- **Compaction is invisible.** :meth:`LogStore.compact` merges a day's segments into one;
  a reader sees every row exactly once before, during and after it (see
  :meth:`ParquetLogStore.compact` for how).

Examples
--------
>>> import pandas as pd
>>> from datetime import datetime
>>> store = InMemoryLogStore()
>>> store.append_predictions(pd.DataFrame({
...     "id": ["a", "b"], "timestamp": ["2024-01-01T10:00", "2024-01-01T11:00"],
...     "pipeline": "ctr", "model_version": 3, "prediction": [1, 0], "score": [0.9, 0.2],
... }))
2
>>> store.append_feedback(pd.DataFrame({
...     "id": ["a", "b"], "timestamp": ["2024-01-01T12:00", "2024-01-03T09:00"], "outcome": [1, 1],
... }))
2
>>> store.joined("ctr", datetime(2024, 1, 1), datetime(2024, 1, 2),
...              feedback_until=datetime(2024, 1, 2))[["id", "prediction", "outcome"]]
  id  prediction  outcome
0  a           1        1
"""

from __future__ import annotations

import bisect
import hashlib
import io
import itertools
import json
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

import duckdb
import fsspec.core
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from retrainer.adapters._atomic import write_local_atomically
from retrainer.errors import ConfigError, DataError, SourceError

__all__ = [
    "FEEDBACK_COLUMNS",
    "PREDICTION_COLUMNS",
    "Appended",
    "InMemoryLogStore",
    "LogStore",
    "ParquetLogStore",
    "read_log_file",
]

Kind = Literal["predictions", "feedback"]
_KINDS: tuple[Kind, ...] = ("predictions", "feedback")

PREDICTION_COLUMNS = ("id", "timestamp", "pipeline", "model_version", "prediction")
"""Columns every logged prediction has; ``score`` (float) is optional, other columns are kept."""

FEEDBACK_COLUMNS = ("id", "timestamp", "outcome")
"""Columns every feedback row has; ``pipeline`` is optional (null: any pipeline)."""

# Names the store itself gives meaning to: the joined frame adds `outcome` and
# `feedback_timestamp` to the prediction columns, and `date` is the partition column other
# tools (DuckDB, Spark) derive from the folder names when they read the log themselves.
_RESERVED: dict[Kind, tuple[str, ...]] = {
    "predictions": ("outcome", "feedback_timestamp", "date"),
    "feedback": ("feedback_timestamp", "date"),
}
_EMPTY_DTYPES: dict[str, str] = {
    "id": "str",
    "timestamp": "datetime64[us]",
    "pipeline": "str",
    "model_version": "int64",
    "prediction": "object",
    "score": "float64",
    "outcome": "object",
    "feedback_timestamp": "datetime64[us]",
}
_COMPACTED_PREFIX = "c-"
_REPLACES_KEY = b"retrainer.replaces"
# Row groups of this many rows let DuckDB read one big (compacted) segment with every core and
# skip the parts of a day outside a time range.
_ROW_GROUP = 32_768
_READ_ATTEMPTS = 3  # a compaction may delete files between listing and reading: list again
# read_log_file notes the file's own columns in the frame's attrs: a caller may add some (the
# pipeline `retrainer log predictions` is given), and an error should name what the file has
_FILE_COLUMNS = "retrainer.file_columns"


class Appended(int):
    """What ``append_*`` returns: the number of rows in the batch, and how many were new.

    It is the row count (an ``int``); ``new`` counts the rows this call stored. Appends are
    idempotent, so the rows of a batch (or of one of its days) appended before are not stored
    again: they are ``already_logged``.

    Examples
    --------
    >>> import pandas as pd
    >>> store = InMemoryLogStore()
    >>> batch = pd.DataFrame({"id": ["a", "b"], "timestamp": ["2024-01-01", "2024-01-02"],
    ...     "pipeline": "p", "model_version": 1, "prediction": [0, 1]})
    >>> first = store.append_predictions(batch)
    >>> again = store.append_predictions(batch)
    >>> first, first.new, again, again.new, again.already_logged
    (2, 2, 2, 0, 2)
    """

    new: int

    def __new__(cls, rows: int, *, new: int) -> Appended:
        self = super().__new__(cls, rows)
        self.new = new
        return self

    def __getnewargs_ex__(self) -> tuple[tuple[int], dict[str, int]]:
        return (int(self),), {"new": self.new}  # for pickle and copy

    @property
    def already_logged(self) -> int:
        """The rows of the batch that were in the log before this call."""
        return int(self) - self.new


class LogStore(Protocol):
    """Append-only log of predictions and their delayed feedback, queried by time range.

    See the module docstring for the contract every adapter keeps.
    """

    def append_predictions(self, frame: pd.DataFrame, *, origin: str | None = None) -> int:
        """Validate and store predictions; return the number of rows (an :class:`Appended`)."""
        ...

    def append_feedback(self, frame: pd.DataFrame, *, origin: str | None = None) -> int:
        """Validate and store feedback; return the number of rows (an :class:`Appended`)."""
        ...

    def predictions(
        self,
        pipeline: str,
        start: datetime | None,
        end: datetime | None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """The pipeline's predictions with ``start <= timestamp < end``, by time then id."""
        ...

    def feedback(
        self, start: datetime | None, end: datetime | None, *, pipeline: str | None = None
    ) -> pd.DataFrame:
        """Feedback rows with ``start <= timestamp < end``, by time then id."""
        ...

    def joined(
        self,
        pipeline: str,
        start: datetime | None,
        end: datetime | None,
        *,
        feedback_until: datetime,
        columns: Sequence[str] | None = None,
        include_unlabelled: bool = False,
    ) -> pd.DataFrame:
        """Predictions in ``[start, end)`` with the feedback that arrived by ``feedback_until``."""
        ...

    def joined_many(
        self,
        pipelines: Sequence[str],
        start: datetime | None,
        end: datetime | None,
        *,
        feedback_until: datetime,
        columns: Sequence[str] | None = None,
        include_unlabelled: bool = False,
    ) -> pd.DataFrame:
        """:meth:`joined` for several pipelines in one query, with a ``pipeline`` column."""
        ...

    def compact(self, day: date | str) -> int:
        """Merge the segments of one day into one; return how many segments were merged."""
        ...

    def days(self, kind: Kind = "predictions") -> list[date]:
        """The days that hold segments of ``kind``, sorted."""
        ...


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
    try:
        array = pa.array(col, from_pandas=True)
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


def _normalize(frame: pd.DataFrame, kind: Kind, origin: str) -> tuple[pa.Table, np.ndarray]:
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
        own = list(frame.attrs.get(_FILE_COLUMNS, names))
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
    for name in names:
        columns.setdefault(name, frame[name])

    ts = columns["timestamp"].to_numpy(dtype="datetime64[us]")
    order = None if bool(np.all(ts[1:] >= ts[:-1])) else np.argsort(ts, kind="stable")
    arrays = []
    for name, col in columns.items():
        array = _arrow(col, name, origin)
        arrays.append(array if order is None else array.take(order))
    table = pa.Table.from_arrays(arrays, names=list(columns))
    if order is not None:
        ts = ts[order]
    return table, ts.astype("datetime64[D]")


def _split_by_day(table: pa.Table, days: np.ndarray) -> Iterator[tuple[date, pa.Table]]:
    """The table's rows per UTC day (the table is sorted by time, so each day is one slice)."""
    if len(days) == 0:
        return
    cuts = [0, *(np.flatnonzero(days[1:] != days[:-1]) + 1).tolist(), len(days)]
    for a, b in itertools.pairwise(cuts):
        yield days[a].item(), table.slice(a, b - a)


# --- query helpers ---------------------------------------------------------------------------


def _naive_utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ConfigError(f"{name} must be a datetime (or None); got {value!r}")
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _check_range(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and start > end:
        raise ConfigError(
            f"the time range is empty the wrong way round: start {start.isoformat()} is after "
            f"end {end.isoformat()}"
        )


def _first_day(start: datetime | None) -> date | None:
    return None if start is None else start.date()


def _last_day_before(end: datetime | None) -> date | None:
    """The last day that can hold a time strictly before ``end``."""
    return None if end is None else (end - timedelta(microseconds=1)).date()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _check_pipeline(pipeline: str) -> None:
    if not isinstance(pipeline, str) or not pipeline:
        raise ConfigError(f"pipeline must be a non-empty string; got {pipeline!r}")


def _check_columns(columns: Sequence[str] | None) -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, str) or not all(isinstance(c, str) and c for c in columns):
        raise ConfigError(f"columns must be a list of column names; got {columns!r}")
    return list(dict.fromkeys(columns))


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=_EMPTY_DTYPES.get(c, "object")) for c in columns})


_CONNECTION_LOCK = threading.Lock()
_SHARED: duckdb.DuckDBPyConnection | None = None


def _shared_connection() -> duckdb.DuckDBPyConnection:
    """One in-process DuckDB database for every store; each query runs on its own cursor."""
    global _SHARED
    with _CONNECTION_LOCK:
        if _SHARED is None:
            _SHARED = _new_connection()
        return _SHARED


def _new_connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    # Aware timestamps (feature columns) must come back in UTC, not the machine's zone.
    con.execute("SET GLOBAL TimeZone = 'UTC'")
    return con


class _DuckDBLogStore:
    """Everything but the storage: validation, SQL, day partitioning.

    Subclasses store one segment per (kind, day) batch and say which relation holds the
    segments of a range of days.
    """

    def __init__(self) -> None:
        self._write_lock = threading.Lock()

    # subclasses --------------------------------------------------------------------------

    def _connection(self) -> duckdb.DuckDBPyConnection:
        return _shared_connection()

    def _write_segment(self, kind: Kind, day: date, table: pa.Table) -> bool:
        """Store one day of a batch; False if that segment was stored before (a retry)."""
        raise NotImplementedError

    def _relation(
        self, cur: duckdb.DuckDBPyConnection, kind: Kind, first: date | None, last: date | None
    ) -> str | None:
        """SQL for the live segments of ``kind`` on days in ``[first, last]`` (None: no data)."""
        raise NotImplementedError

    def _compact_day(self, kind: Kind, day: date) -> int:
        raise NotImplementedError

    def days(self, kind: Kind = "predictions") -> list[date]:
        """The UTC days that hold segments of ``kind``, sorted."""
        raise NotImplementedError

    # appends -----------------------------------------------------------------------------

    def _append(self, kind: Kind, frame: pd.DataFrame, origin: str | None) -> Appended:
        table, days = _normalize(frame, kind, origin or f"{kind} batch")
        new = 0
        for day, part in _split_by_day(table, days):
            if self._write_segment(kind, day, part):
                new += part.num_rows
        return Appended(table.num_rows, new=new)

    def append_predictions(self, frame: pd.DataFrame, *, origin: str | None = None) -> Appended:
        """Validate a batch of predictions and store it; return the number of rows.

        The number is an :class:`Appended`: its ``new`` leaves out the rows already logged
        (a retried batch, or a day of it, is stored once).

        Parameters
        ----------
        frame
            Columns ``id`` (text; integers are stored as text), ``timestamp`` (datetimes or
            ISO 8601 strings; naive means UTC), ``pipeline`` (text), ``model_version``
            (integer), ``prediction`` (label or value), optionally ``score`` (float: the
            probability of the positive class), and any feature columns, stored as they are.
        origin
            How to name the batch in error messages (e.g. the file it was read from).

        Raises
        ------
        DataError
            A required column is missing or holds missing/ill-typed values, a timestamp cannot
            be parsed, a column name is reserved (``outcome``, ``feedback_timestamp``,
            ``date``) or a column cannot be stored; the message names the column and a row.

        Examples
        --------
        >>> import pandas as pd
        >>> store = InMemoryLogStore()
        >>> store.append_predictions(pd.DataFrame({"id": ["a"], "timestamp": ["2024-01-01"],
        ...     "pipeline": "p", "model_version": [1], "prediction": [0.5], "x": [2.0]}))
        1
        >>> store.append_predictions(pd.DataFrame({"id": ["a"], "timestamp": ["yesterday"],
        ...     "pipeline": "p", "model_version": [1], "prediction": [0.5]}))
        Traceback (most recent call last):
        ...
        retrainer.errors.DataError: predictions batch: column 'timestamp' has 1 value(s) that ...
        """
        return self._append("predictions", frame, origin)

    def append_feedback(self, frame: pd.DataFrame, *, origin: str | None = None) -> Appended:
        """Validate a batch of feedback and store it; return the number of rows.

        The number is an :class:`Appended`, as for :meth:`append_predictions`.

        Parameters
        ----------
        frame
            Columns ``id``, ``timestamp`` (when the feedback arrived), ``outcome`` (a label,
            a click 0/1, a value; never missing), optionally ``pipeline`` (missing or null:
            the feedback applies to that id in any pipeline); other columns are kept.
        origin
            How to name the batch in error messages.

        Raises
        ------
        DataError
            As for :meth:`append_predictions`.

        Examples
        --------
        >>> import pandas as pd
        >>> store = InMemoryLogStore()
        >>> store.append_feedback(pd.DataFrame({"id": ["a"], "timestamp": ["2024-01-02"],
        ...                                     "outcome": [1]}))
        1
        >>> store.append_feedback(pd.DataFrame({"id": ["a"], "timestamp": ["2024-01-02"]}))
        Traceback (most recent call last):
        ...
        retrainer.errors.DataError: feedback batch: missing required column(s) 'outcome'. ...
        """
        return self._append("feedback", frame, origin)

    # queries -----------------------------------------------------------------------------

    def _query(
        self,
        build: Any,
        relations: dict[str, tuple[Kind, date | None, date | None]],
        params: dict[str, Any],
        empty_columns: list[str],
        columns: list[str] | None,
    ) -> pd.DataFrame:
        """Run ``build(**relation_sql)`` with retries when files vanish under a compaction."""
        for attempt in range(_READ_ATTEMPTS):
            cur = self._connection().cursor()
            try:
                rels = {
                    name: self._relation(cur, kind, first, last)
                    for name, (kind, first, last) in relations.items()
                }
                sql = build(**rels)
                if sql is None:
                    return _empty(empty_columns)
                used = {k: v for k, v in params.items() if f"${k}" in sql}
                table = cur.sql(sql, params=used).to_arrow_table()
                return table.to_pandas()
            except duckdb.BinderException as exc:
                raise self._column_error(cur, rels, columns, exc) from None
            except (duckdb.IOException, FileNotFoundError) as exc:
                if attempt == _READ_ATTEMPTS - 1:
                    raise SourceError(f"{self!r}: cannot read the log: {exc}") from None
            except duckdb.Error as exc:
                raise SourceError(f"{self!r}: cannot read the log: {exc}") from None
            finally:
                cur.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def _column_error(
        self,
        cur: duckdb.DuckDBPyConnection,
        rels: dict[str, str | None],
        columns: list[str] | None,
        exc: Exception,
    ) -> Exception:
        rel = rels.get("p")
        if columns is None or rel is None:
            return SourceError(f"{self!r}: cannot read the log: {exc}")
        available = cur.sql(f"SELECT * FROM {rel} LIMIT 0").columns
        unknown = [c for c in columns if c not in available]
        return DataError(
            f"the logged predictions have no column(s) {', '.join(map(repr, unknown))}; "
            f"columns are: {', '.join(available)}"
        )

    def predictions(
        self,
        pipeline: str,
        start: datetime | None,
        end: datetime | None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """The pipeline's predictions with ``start <= timestamp < end``, by time then id.

        Only the day folders overlapping the range are read; within them DuckDB skips row
        groups outside the range.

        Parameters
        ----------
        pipeline
            The pipeline whose predictions to read.
        start, end
            The time range (naive means UTC; None: unbounded).
        columns
            The columns to return, in this order (default: all). Segments that lack a column
            give nulls for it.

        Raises
        ------
        DataError
            A requested column is in none of the segments of the range.

        Examples
        --------
        >>> import pandas as pd
        >>> from datetime import datetime
        >>> store = InMemoryLogStore()
        >>> _ = store.append_predictions(pd.DataFrame({"id": ["a", "b", "c"],
        ...     "timestamp": ["2024-01-01T10:00", "2024-01-02T10:00", "2024-01-03T10:00"],
        ...     "pipeline": "p", "model_version": 1, "prediction": [1, 0, 1]}))
        >>> store.predictions("p", datetime(2024, 1, 2), None, columns=["id", "prediction"])
          id  prediction
        0  b           0
        1  c           1
        """
        _check_pipeline(pipeline)
        cols = _check_columns(columns)
        lo, hi = _naive_utc(start, "start"), _naive_utc(end, "end")
        _check_range(lo, hi)
        select = "*" if cols is None else ", ".join(map(_quote, cols))
        where = _time_filter(lo, hi)

        def build(p: str | None) -> str | None:
            if p is None:
                return None
            return (
                f"SELECT {select} FROM {p} WHERE pipeline = $pipeline{where} "
                'ORDER BY "timestamp", id'
            )

        return self._query(
            build,
            {"p": ("predictions", _first_day(lo), _last_day_before(hi))},
            {"pipeline": pipeline, "start": lo, "end": hi},
            cols if cols is not None else list(PREDICTION_COLUMNS),
            cols,
        )

    def feedback(
        self, start: datetime | None, end: datetime | None, *, pipeline: str | None = None
    ) -> pd.DataFrame:
        """Feedback rows with ``start <= timestamp < end``, by time then id.

        Parameters
        ----------
        start, end
            The time range of arrival (naive means UTC; None: unbounded).
        pipeline
            Only feedback for this pipeline, or for any pipeline (null ``pipeline``).

        Examples
        --------
        >>> import pandas as pd
        >>> store = InMemoryLogStore()
        >>> _ = store.append_feedback(pd.DataFrame({"id": ["a", "b"], "outcome": [1, 0],
        ...     "timestamp": ["2024-01-02", "2024-01-01"]}))
        >>> store.feedback(None, None)[["id", "outcome"]]
          id  outcome
        0  b        0
        1  a        1
        """
        lo, hi = _naive_utc(start, "start"), _naive_utc(end, "end")
        _check_range(lo, hi)
        if pipeline is not None:
            _check_pipeline(pipeline)
        where = _time_filter(lo, hi)
        if pipeline is not None:
            where += " AND (pipeline IS NULL OR pipeline = $pipeline)"

        def build(f: str | None) -> str | None:
            if f is None:
                return None
            return f'SELECT * FROM {f} WHERE TRUE{where} ORDER BY "timestamp", id'

        return self._query(
            build,
            {"f": ("feedback", _first_day(lo), _last_day_before(hi))},
            {"pipeline": pipeline, "start": lo, "end": hi},
            ["id", "timestamp", "pipeline", "outcome"],
            None,
        )

    def joined(
        self,
        pipeline: str,
        start: datetime | None,
        end: datetime | None,
        *,
        feedback_until: datetime,
        columns: Sequence[str] | None = None,
        include_unlabelled: bool = False,
    ) -> pd.DataFrame:
        """Predictions in ``[start, end)`` with the feedback that arrived by ``feedback_until``.

        Each prediction is matched with the feedback rows of the same ``id`` (whose
        ``pipeline`` is this pipeline or null) with ``timestamp <= feedback_until``: this is
        how delayed labels are handled, feedback arriving later does not count yet. Of several
        such rows the latest wins (ties: the larger outcome). Feedback timestamped more than a
        day before the start of ``start``'s day is not read: feedback follows its prediction,
        and the day of grace absorbs clock skew between the services that log them.

        Parameters
        ----------
        pipeline
            The pipeline whose predictions to read.
        start, end
            The prediction time range (naive means UTC; None: unbounded).
        feedback_until
            Count only feedback with ``timestamp <= feedback_until`` (usually ``now``).
        columns
            The prediction columns to return (default: all); ``outcome`` and
            ``feedback_timestamp`` always follow them.
        include_unlabelled
            Also return predictions without feedback yet, with null ``outcome`` and
            ``feedback_timestamp`` (a left join); by default only labelled rows.

        Examples
        --------
        >>> import pandas as pd
        >>> from datetime import datetime
        >>> store = InMemoryLogStore()
        >>> _ = store.append_predictions(pd.DataFrame({"id": ["a", "b"], "pipeline": "p",
        ...     "timestamp": ["2024-01-01T10:00", "2024-01-01T11:00"], "model_version": 1,
        ...     "prediction": [1, 1]}))
        >>> _ = store.append_feedback(pd.DataFrame({"id": ["a", "a", "b"], "outcome": [1, 0, 1],
        ...     "timestamp": ["2024-01-01T12:00", "2024-01-01T13:00", "2024-01-02T09:00"]}))
        >>> store.joined("p", None, None, feedback_until=datetime(2024, 1, 1, 12, 30),
        ...              columns=["id"])
          id  outcome  feedback_timestamp
        0  a        1 2024-01-01 12:00:00
        >>> store.joined("p", None, None, feedback_until=datetime(2024, 1, 3),
        ...              columns=["id"])
          id  outcome  feedback_timestamp
        0  a        0 2024-01-01 13:00:00
        1  b        1 2024-01-02 09:00:00
        """
        _check_pipeline(pipeline)
        cols = _check_columns(columns)
        frame = self.joined_many(
            [pipeline],
            start,
            end,
            feedback_until=feedback_until,
            columns=cols,
            include_unlabelled=include_unlabelled,
        )
        if cols is not None and "pipeline" not in cols:
            frame = frame.drop(columns="pipeline")
        return frame

    def joined_many(
        self,
        pipelines: Sequence[str],
        start: datetime | None,
        end: datetime | None,
        *,
        feedback_until: datetime,
        columns: Sequence[str] | None = None,
        include_unlabelled: bool = False,
    ) -> pd.DataFrame:
        """:meth:`joined` for several pipelines in one query (a ``pipeline`` column tells them
        apart): what a controller tick reads for all its metric triggers at once.

        Examples
        --------
        >>> import pandas as pd
        >>> store = InMemoryLogStore()
        >>> _ = store.append_predictions(pd.DataFrame({"id": ["a", "b"], "pipeline": ["p", "q"],
        ...     "model_version": 1, "prediction": [1, 0], "timestamp": "2024-01-01T10:00"}))
        >>> _ = store.append_feedback(pd.DataFrame({"id": ["a", "b"], "outcome": [1, 1],
        ...     "timestamp": "2024-01-01T11:00"}))
        >>> out = store.joined_many(["p", "q"], None, None, feedback_until=datetime(2024, 1, 2),
        ...                         columns=["pipeline", "prediction"])
        >>> out[["pipeline", "prediction", "outcome"]].values.tolist()
        [['p', 1, 1], ['q', 0, 1]]
        """
        names = list(dict.fromkeys(pipelines))
        for name in names:
            _check_pipeline(name)
        cols = _check_columns(columns)
        if cols is not None and "pipeline" not in cols:
            cols = ["pipeline", *cols]
        lo, hi = _naive_utc(start, "start"), _naive_utc(end, "end")
        until = _naive_utc(feedback_until, "feedback_until")
        if until is None:
            raise ConfigError("feedback_until must be a datetime; got None")
        _check_range(lo, hi)
        since = None if lo is None else datetime.combine(lo.date(), datetime.min.time())
        since = None if since is None else since - timedelta(days=1)
        inner = ["id", "timestamp", *(c for c in cols or () if c not in ("id", "timestamp"))]
        p_select = "*" if cols is None else ", ".join(map(_quote, inner))
        out = "p.* EXCLUDE (_row)" if cols is None else ", ".join(f"p.{_quote(c)}" for c in cols)
        join = "LEFT JOIN" if include_unlabelled else "JOIN"
        f_where = ' AND "timestamp" >= $since' if since is not None else ""

        def build(p: str | None, f: str | None) -> str | None:
            if p is None or not names:
                return None
            preds = (
                f"SELECT {p_select}, row_number() OVER () AS _row FROM {p} "
                f"WHERE list_contains($pipelines, pipeline){_time_filter(lo, hi)}"
            )
            if f is None:
                fb = (
                    "SELECT NULL::VARCHAR AS id, NULL::VARCHAR AS fb_pipeline, NULL AS outcome, "
                    "NULL::TIMESTAMP AS feedback_timestamp WHERE FALSE"
                )
            else:
                fb = (
                    "SELECT id, pipeline AS fb_pipeline, outcome, "
                    '"timestamp" AS feedback_timestamp '
                    f'FROM {f} WHERE "timestamp" <= $until{f_where} '
                    "AND id IN (SELECT id FROM preds)"
                )
            return (
                f"WITH preds AS ({preds}), fb AS ({fb}) "
                f"SELECT {out}, fb.outcome, fb.feedback_timestamp "
                f"FROM preds AS p {join} fb ON p.id = fb.id "
                "AND (fb.fb_pipeline IS NULL OR fb.fb_pipeline = p.pipeline) "
                "QUALIFY row_number() OVER (PARTITION BY p._row "
                "ORDER BY fb.feedback_timestamp DESC NULLS LAST, fb.outcome DESC) = 1 "
                'ORDER BY p.pipeline, p."timestamp", p.id'
            )

        return self._query(
            build,
            {
                "p": ("predictions", _first_day(lo), _last_day_before(hi)),
                "f": ("feedback", _first_day(since), until.date()),
            },
            {"pipelines": names, "start": lo, "end": hi, "until": until, "since": since},
            [*(cols if cols is not None else PREDICTION_COLUMNS), "outcome", "feedback_timestamp"],
            cols,
        )

    def compact(self, day: date | str) -> int:
        """Merge the segments of one day (predictions and feedback) into one per kind.

        Safe while other processes append and read (readers never see a row twice or miss
        one); only one compaction of a given day may run at a time.

        Parameters
        ----------
        day
            The UTC day, as a date or ``"YYYY-MM-DD"``.

        Returns
        -------
        int
            How many segments were merged (0: the day had at most one segment per kind).

        Examples
        --------
        >>> import pandas as pd
        >>> store = InMemoryLogStore()
        >>> for i in range(3):
        ...     _ = store.append_feedback(pd.DataFrame({"id": [str(i)], "outcome": [1],
        ...                                             "timestamp": ["2024-01-01"]}))
        >>> store.compact("2024-01-01")
        3
        >>> len(store.feedback(None, None)), store.compact("2024-01-01")
        (3, 0)
        """
        the_day = _parse_day(day)
        return sum(self._compact_day(kind, the_day) for kind in _KINDS)


def _time_filter(lo: datetime | None, hi: datetime | None) -> str:
    where = ""
    if lo is not None:
        where += ' AND "timestamp" >= $start'
    if hi is not None:
        where += ' AND "timestamp" < $end'
    return where


def _parse_day(day: date | str) -> date:
    if isinstance(day, datetime):
        return day.date()
    if isinstance(day, date):
        return day
    try:
        return date.fromisoformat(day)
    except (TypeError, ValueError):
        raise ConfigError(f"a day must be a date or 'YYYY-MM-DD'; got {day!r}") from None


def _day_folder_name(day: date) -> str:
    return f"date={day.isoformat()}"


def _parse_day_folder(name: str) -> date | None:
    if not name.startswith("date="):
        return None
    try:
        return date.fromisoformat(name[5:])
    except ValueError:
        return None


def _in_range(day: date, first: date | None, last: date | None) -> bool:
    return (first is None or day >= first) and (last is None or day <= last)


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", row_group_size=_ROW_GROUP)
    return bytes(sink.getvalue().to_pybytes())


# --- Parquet on a filesystem -----------------------------------------------------------------


class ParquetLogStore(_DuckDBLogStore):
    """Prediction and feedback logs as day-partitioned Parquet segments, queried with DuckDB.

    Layout: ``<root>/<kind>/date=YYYY-MM-DD/<sha256 prefix>.parquet`` (kind is
    ``predictions`` or ``feedback``), one segment per appended batch and day, rows sorted by
    time; compacted segments are named ``c-<sha256 prefix>.parquet``. Any reader that skips
    files starting with ``.`` (temporary files) and honours compaction (see :meth:`compact`)
    can read the log; DuckDB, Spark and pyarrow see the ``date`` partition column.

    On a local disk a segment is written to a temporary file (``.<name>.<random>.tmp``) in
    its day folder, fsynced, renamed into place and the folder fsynced: after ``append_*``
    returns, the rows survive a crash, and a crash during the write leaves at most a temporary
    file, which readers ignore. On object stores (S3, GCS) a segment is one PUT, which is
    atomic there.

    Parameters
    ----------
    url
        The root: a local folder or an fsspec URL (``s3://bucket/logs``). Relative paths are
        resolved against the current directory once, here.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> from datetime import datetime
    >>> with tempfile.TemporaryDirectory() as root:
    ...     store = ParquetLogStore(root)
    ...     _ = store.append_predictions(pd.DataFrame({"id": ["a", "b"], "pipeline": "p",
    ...         "timestamp": ["2024-01-01T10:00", "2024-01-02T10:00"], "model_version": 1,
    ...         "prediction": [1, 0]}))
    ...     print(sorted(p.parent.name for p in Path(root).rglob("*.parquet")))
    ...     print(store.predictions("p", datetime(2024, 1, 2), None)["id"].tolist())
    ['date=2024-01-01', 'date=2024-01-02']
    ['b']
    """

    def __init__(self, url: str | os.PathLike[str]) -> None:
        super().__init__()
        text = os.fspath(url)
        protocol, _ = fsspec.core.split_protocol(text)
        if protocol is None:
            text = str(Path(text).expanduser().resolve())
        fs, root = fsspec.core.url_to_fs(text)
        self._fs: Any = fs
        self._root: str = root.rstrip("/") or "/"
        self._local = isinstance(fs, LocalFileSystem)
        self._own_connection: duckdb.DuckDBPyConnection | None = None
        self._replaces_cache: dict[str, frozenset[str]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._fs.unstrip_protocol(self._root)!r})"

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._local:
            return _shared_connection()
        with self._write_lock:
            if self._own_connection is None:
                con = _new_connection()
                con.register_filesystem(self._fs)
                self._own_connection = con
            return self._own_connection

    # layout ------------------------------------------------------------------------------

    def _folder(self, kind: Kind, day: date | None = None) -> str:
        base = f"{self._root.rstrip('/')}/{kind}"
        return base if day is None else f"{base}/{_day_folder_name(day)}"

    def _ls(self, folder: str) -> list[str]:
        """Names (not paths) in ``folder``; empty if it does not exist."""
        try:
            if self._local:
                return [p.name for p in Path(folder).iterdir()]
            return [p.rstrip("/").rsplit("/", 1)[-1] for p in self._fs.ls(folder, detail=False)]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def days(self, kind: Kind = "predictions") -> list[date]:
        """The days that hold segments of ``kind``, sorted.

        Examples
        --------
        >>> ParquetLogStore("memory://docs/logstore-days").days()
        []
        """
        if kind not in _KINDS:
            raise ConfigError(f"kind must be one of {', '.join(_KINDS)}; got {kind!r}")
        found = (_parse_day_folder(n) for n in self._ls(self._folder(kind)))
        return sorted(d for d in found if d is not None and self._segments(kind, d)[0])

    def _replaces(self, path: str) -> frozenset[str]:
        """The segment names a compacted segment replaces (cached: segments are immutable)."""
        cached = self._replaces_cache.get(path)
        if cached is not None:
            return cached
        if self._local:
            meta = pq.read_metadata(path).metadata or {}
        else:
            with self._fs.open(path, "rb") as f:
                meta = pq.read_metadata(f).metadata or {}
        names = frozenset(json.loads(meta.get(_REPLACES_KEY, b"[]")))
        self._replaces_cache[path] = names
        return names

    def _segments(self, kind: Kind, day: date) -> tuple[list[str], set[str]]:
        """``(live, replaced)``: live segment names of a day, and the names compactions replaced.

        Temporary files (leading dot) and anything that is not ``.parquet`` are ignored; a
        segment named in a compacted segment's list is replaced, whether it still exists
        (a compaction that died before deleting it) or reappears (a retried append).
        """
        folder = self._folder(kind, day)
        names = [n for n in self._ls(folder) if n.endswith(".parquet") and not n.startswith(".")]
        replaced: set[str] = set()
        for name in names:
            if name.startswith(_COMPACTED_PREFIX):
                replaced |= self._replaces(f"{folder}/{name}")
        return sorted(n for n in names if n not in replaced), replaced

    def _url(self, path: str) -> str:
        return path if self._local else str(self._fs.unstrip_protocol(path))

    def _relation(
        self, cur: duckdb.DuckDBPyConnection, kind: Kind, first: date | None, last: date | None
    ) -> str | None:
        files: list[str] = []
        for name in sorted(self._ls(self._folder(kind))):
            day = _parse_day_folder(name)
            if day is None or not _in_range(day, first, last):
                continue
            live, _ = self._segments(kind, day)
            files.extend(self._url(f"{self._folder(kind, day)}/{n}") for n in live)
        if not files:
            return None
        listed = ", ".join(_literal(f) for f in files)
        return f"read_parquet([{listed}], union_by_name = true, hive_partitioning = false)"

    # writes ------------------------------------------------------------------------------

    def _put(self, folder: str, name: str, data: bytes) -> None:
        path = f"{folder}/{name}"
        if self._local:
            write_local_atomically(folder, f"{folder}/.{name}.{uuid.uuid4().hex}.tmp", path, data)
        else:
            self._fs.makedirs(folder, exist_ok=True)
            self._fs.pipe_file(path, data)

    def _write_segment(self, kind: Kind, day: date, table: pa.Table) -> bool:
        data = _parquet_bytes(table)
        name = hashlib.sha256(data).hexdigest()[:32] + ".parquet"
        folder = self._folder(kind, day)
        if self._fs.exists(f"{folder}/{name}") or name in self._segments(kind, day)[1]:
            return False  # the same batch, retried: already stored (or compacted, and replaced)
        self._put(folder, name, data)
        return True

    def _compact_day(self, kind: Kind, day: date) -> int:
        """Merge a day's live segments: write the merged one, then delete what it replaces.

        The merged segment lists, in its Parquet metadata, every segment name it replaces
        (including those its predecessors replaced). Readers skip listed names, so:

        - before the merged segment exists, readers see the old segments;
        - once it exists, they see it and skip the old ones, even those not deleted yet
          (or never, if the compaction dies here: the next one deletes them);
        - a reader that listed the old segments and finds one deleted lists again.

        A manifest would do the same but every append would have to update it (a
        read-modify-write race between appending processes); this way appends stay lock-free
        and only the compactor writes metadata. Two compactions of one day at the same time
        could each replace a different set and duplicate rows: run one compactor (the
        controller's maintenance step, under its lease).
        """
        folder = self._folder(kind, day)
        live, replaced = self._segments(kind, day)
        leftovers = sorted(replaced & set(self._ls(folder)))
        if len(live) <= 1:
            self._delete(folder, leftovers)
            return 0
        cur = self._connection().cursor()
        try:
            files = ", ".join(_literal(self._url(f"{folder}/{n}")) for n in live)
            merged = cur.sql(
                f"SELECT * FROM read_parquet([{files}], union_by_name = true, "
                'hive_partitioning = false) ORDER BY "timestamp", id'
            ).to_arrow_table()
        finally:
            cur.close()
        replaces = sorted(set(live) | replaced)
        merged = merged.replace_schema_metadata(
            {_REPLACES_KEY: json.dumps(replaces).encode("utf-8")}
        )
        data = _parquet_bytes(merged)
        name = _COMPACTED_PREFIX + hashlib.sha256(data).hexdigest()[:32] + ".parquet"
        self._put(folder, name, data)
        self._delete(folder, sorted(set(replaces) & set(self._ls(folder))))
        return len(live)

    def _delete(self, folder: str, names: Sequence[str]) -> None:
        for name in names:
            try:
                if self._local:
                    Path(folder, name).unlink()
                else:
                    self._fs.rm_file(f"{folder}/{name}")
            except FileNotFoundError:
                pass


def _ipc_digest(table: pa.Table) -> str:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


def _union_by_name(tables: list[pa.Table]) -> pa.Table:
    """Concatenate tables whose columns may differ, with DuckDB's ``union_by_name`` rules.

    Arrow's permissive concatenation agrees with DuckDB on what matters in logs (missing
    columns become nulls, integers widen to floats); where Arrow gives up (a column that is an
    integer in one batch and text in another), DuckDB settles it, as it does for Parquet.
    """
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    cur = _shared_connection().cursor()
    try:
        names = [f"_t{i}" for i in range(len(tables))]
        for name, table in zip(names, tables, strict=True):
            cur.register(name, table)
        sql = " UNION ALL BY NAME ".join(f"SELECT * FROM {n}" for n in names)
        return cur.sql(sql).to_arrow_table()
    finally:
        cur.close()


class InMemoryLogStore(_DuckDBLogStore):
    """The log store in this process's memory: the same contract and SQL as the Parquet store.

    Segments are Arrow tables, one per appended batch and day, gone with the process. Tests,
    doctests, the demo and the backtest use it.

    Examples
    --------
    >>> import pandas as pd
    >>> from datetime import datetime
    >>> store = InMemoryLogStore()
    >>> batch = pd.DataFrame({"id": ["a"], "timestamp": [datetime(2024, 1, 1)],
    ...     "pipeline": "p", "model_version": 1, "prediction": [0]})
    >>> store.append_predictions(batch), store.append_predictions(batch)  # a retry
    (1, 1)
    >>> len(store.predictions("p", None, None))
    1
    """

    def __init__(self) -> None:
        super().__init__()
        self._segments: dict[tuple[Kind, date], list[pa.Table]] = {}
        self._keys: dict[tuple[Kind, date], set[str]] = {}
        # the days of each kind, sorted: a query takes its range by bisection instead of
        # sorting every segment (a replay queries the log at each of its batches)
        self._days: dict[Kind, list[date]] = {}

    def __repr__(self) -> str:
        rows = sum(t.num_rows for tables in self._segments.values() for t in tables)
        return f"{type(self).__name__}(<{rows} rows>)"

    def _write_segment(self, kind: Kind, day: date, table: pa.Table) -> bool:
        key = _ipc_digest(table)
        with self._write_lock:
            keys = self._keys.setdefault((kind, day), set())
            if key in keys:
                return False
            keys.add(key)
            if (kind, day) not in self._segments:
                bisect.insort(self._days.setdefault(kind, []), day)
            self._segments.setdefault((kind, day), []).append(table)
            return True

    def days(self, kind: Kind = "predictions") -> list[date]:
        """The days that hold segments of ``kind``, sorted.

        Examples
        --------
        >>> import pandas as pd
        >>> store = InMemoryLogStore()
        >>> _ = store.append_feedback(pd.DataFrame({"id": ["a", "b"], "outcome": [1, 0],
        ...     "timestamp": ["2024-01-02T23:00", "2024-01-03T01:00+02:00"]}))
        >>> store.days("feedback"), store.days("predictions")
        ([datetime.date(2024, 1, 2)], [])
        """
        if kind not in _KINDS:
            raise ConfigError(f"kind must be one of {', '.join(_KINDS)}; got {kind!r}")
        with self._write_lock:
            return sorted(d for (k, d), tables in self._segments.items() if k == kind and tables)

    def _relation(
        self, cur: duckdb.DuckDBPyConnection, kind: Kind, first: date | None, last: date | None
    ) -> str | None:
        with self._write_lock:
            days = self._days.get(kind, [])
            lo = 0 if first is None else bisect.bisect_left(days, first)
            hi = len(days) if last is None else bisect.bisect_right(days, last)
            tables = [t for d in days[lo:hi] for t in self._segments[(kind, d)]]
        if not tables:
            return None
        name = f"_{kind}"
        cur.register(name, _union_by_name(tables))
        return name

    def _compact_day(self, kind: Kind, day: date) -> int:
        with self._write_lock:
            tables = self._segments.get((kind, day), [])
            if len(tables) <= 1:
                return 0
            merged = _union_by_name(tables)
            order = pc.sort_indices(
                merged, sort_keys=[("timestamp", "ascending"), ("id", "ascending")]
            )
            self._segments[(kind, day)] = [merged.take(order)]
            return len(tables)


# --- user files ------------------------------------------------------------------------------

_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zip")
_TEXT_COLUMNS = {"id": "str", "pipeline": "str"}


def _format_of(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix in _COMPRESSIONS:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    for suffix, fmt in _FORMATS.items():
        if name.endswith(suffix):
            return fmt
    raise DataError(
        f"{path}: cannot tell the format from the file name; expected one of "
        f"{', '.join(_FORMATS)} (CSV and JSON lines may be compressed: "
        f"{', '.join(_COMPRESSIONS)})"
    )


def read_log_file(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a file of predictions or feedback that a user wants to log.

    The format follows the extension: ``.csv``, ``.tsv``, ``.parquet``/``.pq``,
    ``.jsonl``/``.ndjson`` (one JSON object per line) or ``.json`` (an array of objects);
    text formats may be compressed (``.csv.gz``...). ``id`` and ``pipeline`` are read as
    text, so ids such as ``007`` keep their zeros; timestamps are parsed when the batch is
    appended (ISO 8601 strings). The path may be an fsspec URL.

    Raises
    ------
    SourceError
        The file does not exist or cannot be opened.
    DataError
        The extension is not one of the above, or the content cannot be parsed as that format.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder, "feedback.csv")
    ...     _ = path.write_text("id,timestamp,outcome\\n007,2024-01-02T10:00:00Z,1\\n")
    ...     read_log_file(path)
        id             timestamp  outcome
    0  007  2024-01-02T10:00:00Z        1
    """
    text = os.fspath(path)
    fmt = _format_of(text)
    try:
        opened = fsspec.open(text, "rb", compression="infer")
        handle = opened.open()
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise SourceError(f"{text}: cannot open the file: {exc}") from None
    frame = _read(handle, fmt, text)
    frame.attrs[_FILE_COLUMNS] = tuple(frame.columns)
    return frame


def _read(handle: Any, fmt: str, text: str) -> pd.DataFrame:
    """The frame in an opened file of format ``fmt``; errors name the file."""
    try:
        with handle as f:
            if fmt in ("csv", "tsv"):
                return pd.read_csv(f, sep="," if fmt == "csv" else "\t", dtype=_TEXT_COLUMNS)
            if fmt == "parquet":
                return pd.read_parquet(f)
            with io.TextIOWrapper(f, encoding="utf-8") as text_file:
                frame = pd.read_json(
                    text_file,
                    lines=fmt == "jsonl",
                    orient="records",
                    dtype=False,
                    precise_float=True,
                )
            for name in _TEXT_COLUMNS:
                if name in frame.columns and pd.api.types.is_integer_dtype(frame[name]):
                    frame[name] = frame[name].astype("str")
            return frame
    except pd.errors.EmptyDataError:
        raise DataError(f"{text}: the file is empty; expected a header row") from None
    except (ValueError, OSError, pa.ArrowException, UnicodeDecodeError) as exc:
        raise DataError(f"{text}: cannot read it as {fmt}: {exc}") from None


def open_log_store(url: str) -> LogStore:
    """``memory://`` gives an :class:`InMemoryLogStore`; anything else a :class:`ParquetLogStore`.

    Examples
    --------
    >>> type(open_log_store("memory://")).__name__
    'InMemoryLogStore'
    """
    if url.rstrip("/") == "memory:":
        return InMemoryLogStore()
    return ParquetLogStore(url)
