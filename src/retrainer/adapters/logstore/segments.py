"""Day segments: folder names, content-addressed Parquet bytes, and merging for compaction."""

from __future__ import annotations

import hashlib
from datetime import date, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from retrainer.adapters.logstore.connection import shared_connection
from retrainer.errors import ConfigError

COMPACTED_PREFIX = "c-"
REPLACES_KEY = b"retrainer.replaces"
# Row groups of this many rows let DuckDB read one big (compacted) segment with every core and
# skip the parts of a day outside a time range.
_ROW_GROUP = 32_768


def parse_day(day: date | str) -> date:
    if isinstance(day, datetime):
        return day.date()
    if isinstance(day, date):
        return day
    try:
        return date.fromisoformat(day)
    except (TypeError, ValueError):
        raise ConfigError(f"a day must be a date or 'YYYY-MM-DD'; got {day!r}") from None


def day_folder_name(day: date) -> str:
    return f"date={day.isoformat()}"


def parse_day_folder(name: str) -> date | None:
    if not name.startswith("date="):
        return None
    try:
        return date.fromisoformat(name[5:])
    except ValueError:
        return None


def in_range(day: date, first: date | None, last: date | None) -> bool:
    return (first is None or day >= first) and (last is None or day <= last)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", row_group_size=_ROW_GROUP)
    return bytes(sink.getvalue().to_pybytes())


def ipc_digest(table: pa.Table) -> str:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


def union_by_name(tables: list[pa.Table]) -> pa.Table:
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
    cur = shared_connection().cursor()
    try:
        names = [f"_t{i}" for i in range(len(tables))]
        for name, table in zip(names, tables, strict=True):
            cur.register(name, table)
        sql = " UNION ALL BY NAME ".join(f"SELECT * FROM {n}" for n in names)
        return cur.sql(sql).to_arrow_table()
    finally:
        cur.close()
