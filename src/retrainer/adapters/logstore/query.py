"""Everything a log store does but storing segments: validation, DuckDB SQL, day partitioning.

Both adapters subclass :class:`DuckDBLogStore` and only say where the segments of a day are,
so they answer every query with the same SQL and give the same rows with the same dtypes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from retrainer.adapters.logstore.connection import shared_connection
from retrainer.adapters.logstore.protocol import KINDS, PREDICTION_COLUMNS, Appended, Kind
from retrainer.adapters.logstore.schema import EMPTY_DTYPES, normalize, split_by_day
from retrainer.adapters.logstore.segments import parse_day
from retrainer.errors import ConfigError, DataError, SourceError

_READ_ATTEMPTS = 3  # a compaction may delete files between listing and reading: list again


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


def literal(text: str) -> str:
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
    return pd.DataFrame({c: pd.Series([], dtype=EMPTY_DTYPES.get(c, "object")) for c in columns})


class DuckDBLogStore:
    """Everything but the storage: validation, SQL, day partitioning.

    Subclasses store one segment per (kind, day) batch and say which relation holds the
    segments of a range of days.
    """

    def __init__(self) -> None:
        self._write_lock = threading.Lock()

    # subclasses --------------------------------------------------------------------------

    def _connection(self) -> duckdb.DuckDBPyConnection:
        return shared_connection()

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

    def _joined_arrow(
        self,
        pipelines: list[str],
        columns: list[str] | None,
        start: datetime | None,
        end: datetime | None,
        *,
        until: datetime,
        since: datetime | None,
        include_unlabelled: bool,
    ) -> pd.DataFrame | None:
        """What :meth:`joined_many` returns, computed without SQL; None: run the SQL."""
        return None

    def days(self, kind: Kind = "predictions") -> list[date]:
        """The UTC days that hold segments of ``kind``, sorted."""
        raise NotImplementedError

    # appends -----------------------------------------------------------------------------

    def _append(self, kind: Kind, frame: pd.DataFrame, origin: str | None) -> Appended:
        table, days = normalize(frame, kind, origin or f"{kind} batch")
        new = 0
        for day, part in split_by_day(table, days):
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
        >>> from retrainer.adapters.logstore import InMemoryLogStore
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
        >>> from retrainer.adapters.logstore import InMemoryLogStore
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
        >>> from retrainer.adapters.logstore import InMemoryLogStore
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
        >>> from retrainer.adapters.logstore import InMemoryLogStore
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
        >>> from retrainer.adapters.logstore import InMemoryLogStore
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
        >>> from retrainer.adapters.logstore import InMemoryLogStore
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

        fast = self._joined_arrow(
            names, cols, lo, hi, until=until, since=since, include_unlabelled=include_unlabelled
        )
        if fast is not None:
            return fast

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
        >>> from retrainer.adapters.logstore import InMemoryLogStore
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
        the_day = parse_day(day)
        return sum(self._compact_day(kind, the_day) for kind in KINDS)


def _time_filter(lo: datetime | None, hi: datetime | None) -> str:
    where = ""
    if lo is not None:
        where += ' AND "timestamp" >= $start'
    if hi is not None:
        where += ' AND "timestamp" < $end'
    return where
