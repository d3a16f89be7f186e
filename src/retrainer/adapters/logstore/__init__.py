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

The package: ``protocol`` (the port and :class:`Appended`), ``schema`` (validation of the rows
into Arrow), ``query`` (the DuckDB SQL both adapters share), ``segments`` (day folders,
segment bytes, compaction merges), ``parquet`` and ``memory`` (the two adapters) and ``files``
(reading a user's CSV/Parquet/JSON file).

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

from retrainer.adapters.logstore.files import read_log_file
from retrainer.adapters.logstore.memory import InMemoryLogStore
from retrainer.adapters.logstore.parquet import ParquetLogStore
from retrainer.adapters.logstore.protocol import (
    FEEDBACK_COLUMNS,
    PREDICTION_COLUMNS,
    Appended,
    Kind,
    LogStore,
)

__all__ = [
    "FEEDBACK_COLUMNS",
    "PREDICTION_COLUMNS",
    "Appended",
    "InMemoryLogStore",
    "Kind",
    "LogStore",
    "ParquetLogStore",
    "open_log_store",
    "read_log_file",
]


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
