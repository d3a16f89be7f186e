"""The delayed-label join of :meth:`~DuckDBLogStore.joined_many` in Arrow, for in-memory logs.

A backtest replays every batch through the controller, and a metric trigger reads the log at
each tick: DuckDB answers that small query in ~5 ms of planning and scanning, this in a
fraction. It gives the rows and types the SQL gives, or None when a column has a type whose
trip through DuckDB it does not reproduce (the SQL then answers); tests compare the two.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Types DuckDB reads from Arrow and writes back unchanged, but text (always written as string)
_PLAIN = (
    pa.types.is_integer,
    pa.types.is_floating,
    pa.types.is_boolean,
    pa.types.is_string,
    pa.types.is_large_string,
)


def _plain(t: pa.DataType) -> bool:
    if pa.types.is_timestamp(t):
        return t.tz is None and t.unit == "us"
    return any(check(t) for check in _PLAIN)


def _text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _as_duckdb_gives(table: pa.Table) -> pa.Table:
    schema = pa.schema(
        [pa.field(f.name, pa.string()) if _text(f.type) else f for f in table.schema]
    )
    return table.cast(schema)


def _codes(*arrays: pa.ChunkedArray | pa.Array) -> list[np.ndarray]:
    """Integer codes of text values shared across ``arrays`` (-1 for null)."""
    chunks = [a.cast(pa.large_string()) for a in arrays]
    merged = pa.chunked_array(
        [c for a in chunks for c in (a.chunks if isinstance(a, pa.ChunkedArray) else [a])],
        type=pa.large_string(),
    )
    encoded = pc.dictionary_encode(merged).combine_chunks()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    out, at = [], 0
    for a in arrays:
        out.append(codes[at : at + len(a)])
        at += len(a)
    return out


def joined(
    preds: pa.Table,
    feedback: pa.Table,
    *,
    pipelines: list[str],
    columns: list[str] | None,
    start: datetime | None,
    end: datetime | None,
    until: datetime,
    since: datetime | None,
    include_unlabelled: bool,
) -> pa.Table | None:
    """Predictions of ``pipelines`` in ``[start, end)`` with their latest feedback by ``until``.

    The arguments are those :meth:`joined_many` gives its SQL; None: ask the SQL.

    Examples
    --------
    >>> p = pa.table({"id": ["a", "b"], "pipeline": ["p", "p"],
    ...               "timestamp": pa.array([1, 2], pa.timestamp("us"))})
    >>> f = pa.table({"id": ["a", "a"], "pipeline": pa.nulls(2, pa.string()),
    ...               "outcome": [0, 1], "timestamp": pa.array([5, 6], pa.timestamp("us"))})
    >>> out = joined(p, f, pipelines=["p"], columns=["id"], start=None, end=None,
    ...              until=datetime(2000, 1, 1), since=None, include_unlabelled=True)
    >>> out.column("outcome").to_pylist()
    [1, None]
    """
    names = preds.column_names
    wanted = names if columns is None else columns
    if any(c not in names for c in wanted) or "_row" in names:
        return None  # the SQL names the unknown column
    needed = {"id", "pipeline", "outcome", "timestamp"}
    if not needed - {"outcome"} <= set(names) or not needed <= set(feedback.column_names):
        return None
    types = [preds.schema.field(c).type for c in {*wanted, "id", "pipeline", "timestamp"}]
    types += [feedback.schema.field(c).type for c in needed]
    if not all(_plain(t) for t in types):
        return None
    if not all(
        _text(t.schema.field(c).type) for t in (preds, feedback) for c in ("id", "pipeline")
    ):
        return None

    ts = preds.column("timestamp")
    keep = pc.is_in(preds.column("pipeline"), value_set=pa.array(pipelines, pa.large_string()))
    if start is not None:
        keep = pc.and_(keep, pc.greater_equal(ts, pa.scalar(start, pa.timestamp("us"))))
    if end is not None:
        keep = pc.and_(keep, pc.less(ts, pa.scalar(end, pa.timestamp("us"))))
    p = preds.filter(keep)
    fts = feedback.column("timestamp")
    fkeep = pc.less_equal(fts, pa.scalar(until, pa.timestamp("us")))
    if since is not None:
        fkeep = pc.and_(fkeep, pc.greater_equal(fts, pa.scalar(since, pa.timestamp("us"))))
    fkeep = pc.and_(
        fkeep, pc.is_in(feedback.column("id"), value_set=p.column("id").cast(pa.large_string()))
    )
    f = feedback.filter(fkeep)
    # the feedback rows by priority: the latest first, of equal times the larger outcome
    f = f.take(
        pc.sort_indices(f, sort_keys=[("timestamp", "descending"), ("outcome", "descending")])
    )

    n = p.num_rows
    p_id, f_id = _codes(p.column("id"), f.column("id"))
    p_pipe, f_pipe = _codes(p.column("pipeline"), f.column("pipeline"))
    # every (prediction, feedback) pair with the same id: ranges of the feedback sorted by id
    by_id = np.argsort(f_id, kind="stable")  # stable: the priority order within an id
    sorted_ids = f_id[by_id]
    lo = np.searchsorted(sorted_ids, p_id, "left")
    counts = np.searchsorted(sorted_ids, p_id, "right") - lo
    pair_p = np.repeat(np.arange(n), counts)
    offsets = np.arange(len(pair_p)) - np.repeat(np.cumsum(counts) - counts, counts)
    pair_f = by_id[np.repeat(lo, counts) + offsets]
    ok = (f_pipe[pair_f] == -1) | (f_pipe[pair_f] == p_pipe[pair_p])
    pair_p, pair_f = pair_p[ok], pair_f[ok]
    best = np.full(n, -1, dtype=np.int64)
    # pairs of one prediction keep the priority order: its best is its first pair
    first = np.unique(pair_p, return_index=True)[1]
    best[pair_p[first]] = pair_f[first]

    if not include_unlabelled:
        p = p.filter(pa.array(best >= 0))
        best = best[best >= 0]
    at = pa.array(best, mask=best < 0)
    out = p.select(wanted)
    out = out.append_column("outcome", f.column("outcome").take(at))
    out = out.append_column("feedback_timestamp", f.column("timestamp").take(at))
    order = pc.sort_indices(
        p, sort_keys=[("pipeline", "ascending"), ("timestamp", "ascending"), ("id", "ascending")]
    )
    return _as_duckdb_gives(out.take(order))
