"""A bounded, batched background writer in front of a log store (what a server logs through).

Requests hand rows to :meth:`BatchWriter.submit` and go on; a thread appends what waits every
``flush_interval`` seconds (or as soon as ``flush_rows`` wait) as one batch, so a worker writes
one Parquet segment per flush and day instead of one per request, and never two workers the
same file (segments are named by their content). :meth:`BatchWriter.close` flushes what is
left: a graceful stop loses nothing, a kill -9 at most one interval's rows.

Back-pressure: the queue holds ``max_rows``; a submit that finds it full waits up to ``wait``
seconds for a flush to make room, then refuses the rows (``submit`` returns False and
``rejected_rows`` counts them) so that the caller can answer an error instead of serving an
answer that is not logged. A failed append keeps its rows queued and is retried at the next
flush (appends are idempotent: a batch written before the failure is not written twice).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = ["BatchWriter"]

_log = logging.getLogger(__name__)


class BatchWriter:
    """Queue rows (mappings) and append them to a log in batches from a background thread.

    Parameters
    ----------
    append
        What stores one batch, e.g. ``store.append_predictions``; it gets a DataFrame.
    flush_interval
        Seconds between flushes.
    flush_rows
        A flush starts early once this many rows wait.
    max_rows
        The most rows the queue holds.
    wait
        Seconds a submit to a full queue waits for room before it is refused.
    name
        Names the thread and the log messages (``"predictions"``).

    Examples
    --------
    >>> from retrainer.adapters.logstore import InMemoryLogStore
    >>> store = InMemoryLogStore()
    >>> writer = BatchWriter(store.append_predictions, flush_interval=60)
    >>> writer.submit([{"id": "a", "timestamp": "2024-01-01T10:00", "pipeline": "p",
    ...                 "model_version": 1, "prediction": 1}])
    True
    >>> writer.close()  # flushes
    >>> writer.written_rows, len(store.predictions("p", None, None))
    (1, 1)
    """

    def __init__(
        self,
        append: Callable[[pd.DataFrame], Any],
        *,
        flush_interval: float = 1.0,
        flush_rows: int = 10_000,
        max_rows: int = 100_000,
        wait: float = 0.5,
        name: str = "log",
    ) -> None:
        self._append = append
        self.flush_interval = flush_interval
        self.flush_rows = flush_rows
        self.max_rows = max_rows
        self.wait = wait
        self.name = name
        self._rows: deque[Mapping[str, Any]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._flush_lock = threading.Lock()  # one append at a time (thread or close)
        self.written_rows = 0
        self.rejected_rows = 0
        self.failed_flushes = 0
        self._thread = threading.Thread(target=self._loop, name=f"retrainer-{name}-writer")
        self._thread.daemon = True
        self._thread.start()

    @property
    def depth(self) -> int:
        """Rows waiting to be written."""
        return len(self._rows)

    def submit(self, rows: Sequence[Mapping[str, Any]]) -> bool:
        """Queue ``rows``; False (nothing queued) when the queue stayed full for ``wait`` s."""
        if not rows:
            return True
        with self._cond:
            if self._closing:
                raise RuntimeError(f"the {self.name} writer is closed")
            if len(self._rows) + len(rows) > self.max_rows:
                self._cond.notify_all()  # flush now
                self._cond.wait_for(
                    lambda: len(self._rows) + len(rows) <= self.max_rows or self._closing,
                    timeout=self.wait,
                )
                if len(self._rows) + len(rows) > self.max_rows or self._closing:
                    self.rejected_rows += len(rows)
                    return False
            self._rows.extend(rows)
            if len(self._rows) >= self.flush_rows:
                self._cond.notify_all()
        return True

    def flush(self) -> int:
        """Append what waits now (in this thread); return the rows written."""
        with self._flush_lock:
            with self._cond:
                batch = list(self._rows)
            if not batch:
                return 0
            try:
                self._append(pd.DataFrame.from_records(batch))
            except Exception:
                self.failed_flushes += 1
                _log.exception("writing %d %s rows failed; retrying later", len(batch), self.name)
                return 0
            with self._cond:
                for _ in range(len(batch)):
                    self._rows.popleft()
                self.written_rows += len(batch)
                self._cond.notify_all()  # submits waiting for room
            return len(batch)

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._closing and len(self._rows) < self.flush_rows:
                    self._cond.wait(timeout=self.flush_interval)
                if self._closing:
                    return
            self.flush()

    def close(self) -> None:
        """Stop the thread and write every queued row (retried a few times on failure)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        for _ in range(3):
            self.flush()
            if not self._rows:
                return
        _log.error("%d %s rows could not be written at close", len(self._rows), self.name)
