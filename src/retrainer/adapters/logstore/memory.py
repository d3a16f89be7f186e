"""The in-memory log store: the same segments as Arrow tables in this process."""

from __future__ import annotations

import bisect
from datetime import date, datetime

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from retrainer.adapters.logstore import arrowjoin
from retrainer.adapters.logstore.protocol import KINDS, Kind
from retrainer.adapters.logstore.query import DuckDBLogStore, _first_day, _last_day_before
from retrainer.adapters.logstore.segments import ipc_digest, union_by_name
from retrainer.errors import ConfigError


class InMemoryLogStore(DuckDBLogStore):
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
        key = ipc_digest(table)
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
        if kind not in KINDS:
            raise ConfigError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
        with self._write_lock:
            return sorted(d for (k, d), tables in self._segments.items() if k == kind and tables)

    def _table(self, kind: Kind, first: date | None, last: date | None) -> pa.Table | None:
        """The segments of ``kind`` on days in ``[first, last]`` as one table (None: none)."""
        with self._write_lock:
            days = self._days.get(kind, [])
            lo = 0 if first is None else bisect.bisect_left(days, first)
            hi = len(days) if last is None else bisect.bisect_right(days, last)
            tables = [t for d in days[lo:hi] for t in self._segments[(kind, d)]]
        return union_by_name(tables) if tables else None

    def _relation(
        self, cur: duckdb.DuckDBPyConnection, kind: Kind, first: date | None, last: date | None
    ) -> str | None:
        table = self._table(kind, first, last)
        if table is None:
            return None
        name = f"_{kind}"
        cur.register(name, table)
        return name

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
        # the day ranges joined_many gives its relations
        preds = (
            self._table("predictions", _first_day(start), _last_day_before(end))
            if pipelines
            else None
        )
        feedback = self._table("feedback", _first_day(since), until.date())
        if preds is None or feedback is None:
            return None
        out = arrowjoin.joined(
            preds,
            feedback,
            pipelines=pipelines,
            columns=columns,
            start=start,
            end=end,
            until=until,
            since=since,
            include_unlabelled=include_unlabelled,
        )
        return None if out is None else out.to_pandas()

    def _compact_day(self, kind: Kind, day: date) -> int:
        with self._write_lock:
            tables = self._segments.get((kind, day), [])
            if len(tables) <= 1:
                return 0
            merged = union_by_name(tables)
            order = pc.sort_indices(
                merged, sort_keys=[("timestamp", "ascending"), ("id", "ascending")]
            )
            self._segments[(kind, day)] = [merged.take(order)]
            return len(tables)
