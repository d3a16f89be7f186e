"""Answering a request during a rollout: who answers, the fallback, the shadow off the path.

:meth:`ModelHolder.pick <retrainer.engine.serving.ModelHolder.pick>` says which variant a
request key gets (:func:`retrainer.core.rollout.route`); this module does the rest, for the
server and for tests:

- :func:`answer` validates the rows against the champion's features (the API's contract),
  lets the chosen model predict, and counts the request in the holder's
  :class:`~retrainer.engine.rollout.ServingStats`. A ``challenger`` that raises is counted as
  an error of the candidate (the rollout's error-rate guard reads it) and the champion answers
  instead: the user never pays for a broken candidate.
- :class:`ShadowScorer` scores the ``shadow`` copies in a background thread after the champion
  answered, through a bounded queue: when it is behind, a copy is dropped and counted, never
  waited for. Each shadow row is logged with variant ``shadow``, its own ``id`` and
  ``shadow_of``, the id of the champion's prediction of the same row (how
  :func:`retrainer.engine.rollout.observe` pairs them for the test).

Examples
--------
>>> from datetime import UTC, datetime
>>> from retrainer.core.clock import SimulatedClock
>>> from retrainer.engine.runs.run import execute_run
>>> from retrainer.engine.serving import ModelHolder
>>> from retrainer.testing import in_memory_project
>>> project = in_memory_project()
>>> _ = execute_run(project, clock=SimulatedClock(datetime(2024, 1, 11, tzinfo=UTC)))
>>> holder = ModelHolder(project)
>>> _ = holder.refresh()
>>> result = answer(holder, "toy", [{"x1": 0.5, "x2": -1.0}], "user-1")
>>> result.served.variant, result.shadow, len(result.answers)
('champion', None, 1)
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from retrainer.core.types import CHAMPION
from retrainer.engine.serving import (
    Predicted,
    RowError,
    ServedModel,
    frame_of,
    log_records,
    new_ids,
    predict_arrays,
)
from retrainer.errors import RetrainerError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from retrainer.engine.serving import ModelHolder

__all__ = ["Answer", "ModelFailedError", "ShadowScorer", "answer"]

_log = logging.getLogger(__name__)


class ModelFailedError(RetrainerError, RuntimeError):
    """The champion raised while predicting valid rows (``served``: which one; the cause is
    chained). The server answers 500."""

    def __init__(self, served: ServedModel, exc: Exception) -> None:
        self.served = served
        super().__init__(f"{served.pipeline} v{served.version}: {type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class Answer:
    """What :func:`answer` did: the model that ``served`` the answers (``predicted``, as
    arrays), the validated ``frame``, the ``shadow`` to score a copy with (None: none), and
    the candidate that raised and was replaced by the champion (``failed``; None: none did)."""

    served: ServedModel
    predicted: Predicted
    frame: pd.DataFrame
    shadow: ServedModel | None = None
    failed: ServedModel | None = None

    @property
    def answers(self) -> list[dict[str, Any]]:
        """One dict per row (:meth:`Predicted.answers`)."""
        return self.predicted.answers()


def answer(
    holder: ModelHolder,
    pipeline: str,
    rows: Sequence[Any] | pa.Table,
    key: str,
    *,
    started: float | None = None,
) -> Answer:
    """Answer ``rows`` of ``pipeline`` for the request ``key`` (see the module docstring).

    Raises ModelNotFoundError (no champion loaded), :class:`RowError` (rows that do not fit
    the champion's features, or missing values it cannot take) or :class:`ModelFailedError`
    (the champion raised; counted as its error). ``rows`` are JSON records or an Arrow table
    (a columnar body, checked by column: :func:`~retrainer.engine.serving.table_frame`).
    ``started`` (``time.perf_counter()``) is
    when the request began: the latency counted runs from it.
    """
    t0 = time.perf_counter() if started is None else started
    first, shadow = holder.pick(pipeline, key)
    champion = first if first.variant == CHAMPION else holder.get(pipeline)
    frame = frame_of(champion.features, rows)
    failed = None
    if first is not champion:
        try:
            X = frame if first.features == champion.features else frame_of(first.features, rows)
            predicted = predict_arrays(first, X)
        except Exception as exc:
            holder.record(first, ok=False, seconds=time.perf_counter() - t0)
            _log.warning(
                "%s v%d (%s) failed, the champion v%d answers: %s: %s",
                pipeline,
                first.version,
                first.variant,
                champion.version,
                type(exc).__name__,
                exc,
            )
            failed = first
        else:
            holder.record(first, ok=True, seconds=time.perf_counter() - t0)
            return Answer(first, predicted, frame)
    try:
        predicted = predict_arrays(champion, frame)
    except RowError:  # the rows' fault (missing values), not the model's
        raise
    except Exception as exc:
        holder.record(champion, ok=False, seconds=time.perf_counter() - t0)
        raise ModelFailedError(champion, exc) from exc
    holder.record(champion, ok=True, seconds=time.perf_counter() - t0)
    return Answer(champion, predicted, frame, shadow=shadow, failed=failed)


@dataclass(frozen=True, slots=True)
class _Job:
    shadow: ServedModel
    champion: ServedModel
    rows: Sequence[Mapping[str, Any]] | pa.Table
    frame: pd.DataFrame
    ids: Sequence[str]
    request_key: str | None
    now: datetime


class ShadowScorer:
    """Scores shadow copies in one background thread, off the request path.

    Parameters
    ----------
    holder
        Counts each shadow prediction (ok or failed) in its stats.
    log
        Takes the shadow's log rows; returns False when the log refused them (full).
    max_jobs
        Requests waiting to be scored; a copy that finds the queue full is dropped and counted
        in :attr:`dropped` (the user's answer never waits for a shadow).
    on_scored, on_failed
        Called with the shadow model (and the number of rows) after each scored or failed copy
        (metrics).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from retrainer.core.clock import SimulatedClock
    >>> from retrainer.engine.runs.run import execute_run
    >>> from retrainer.engine.serving import ModelHolder
    >>> from retrainer.testing import in_memory_project
    >>> project = in_memory_project()
    >>> _ = execute_run(project, clock=SimulatedClock(datetime(2024, 1, 11, tzinfo=UTC)))
    >>> holder = ModelHolder(project)
    >>> _ = holder.refresh()
    >>> champion = holder.get("toy")
    >>> logged = []
    >>> scorer = ShadowScorer(holder, log=lambda rows: logged.extend(rows) or True)
    >>> rows = [{"x1": 0.5, "x2": -1.0}]
    >>> frame = frame_of(champion.features, rows)
    >>> scorer.submit(champion, champion, rows, frame, ["a1"], request_key=None,
    ...               now=datetime(2024, 1, 12))
    True
    >>> scorer.close()
    >>> [(r["shadow_of"], r["variant"]) for r in logged], scorer.scored
    ([('a1', 'champion')], 1)
    """

    def __init__(
        self,
        holder: ModelHolder,
        *,
        log: Callable[[list[dict[str, Any]]], bool],
        max_jobs: int = 1000,
        on_scored: Callable[[ServedModel, int], None] | None = None,
        on_failed: Callable[[ServedModel], None] | None = None,
    ) -> None:
        self.holder = holder
        self._log = log
        self._on_scored = on_scored
        self._on_failed = on_failed
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=max_jobs)
        self.dropped = 0
        """Copies not scored because the queue was full."""
        self.scored = 0
        self.failed = 0
        """Copies whose shadow raised (counted as its errors in the stats too)."""
        self.unlogged = 0
        """Scored copies whose rows the log refused (its queue full)."""
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="retrainer-shadow", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Copies waiting to be scored."""
        return self._queue.qsize()

    def submit(
        self,
        shadow: ServedModel,
        champion: ServedModel,
        rows: Sequence[Mapping[str, Any]] | pa.Table,
        frame: pd.DataFrame,
        ids: Sequence[str],
        *,
        request_key: str | None,
        now: datetime,
    ) -> bool:
        """Queue a copy of the rows ``champion`` answered with ``ids``; False: dropped."""
        if self._closed:
            self.dropped += 1
            return False
        try:
            self._queue.put_nowait(_Job(shadow, champion, rows, frame, ids, request_key, now))
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                self._score(job)
            except Exception:  # never let one copy stop the thread
                _log.exception("scoring a shadow copy failed")

    def _score(self, job: _Job) -> None:
        shadow = job.shadow
        t0 = time.perf_counter()
        try:
            X = (
                job.frame
                if shadow.features == job.champion.features
                else frame_of(shadow.features, job.rows)
            )
            predicted = predict_arrays(shadow, X)
        except Exception as exc:
            self.failed += 1
            self.holder.record(shadow, ok=False, seconds=time.perf_counter() - t0)
            if self._on_failed is not None:
                self._on_failed(shadow)
            _log.warning(
                "%s v%d (shadow) failed: %s: %s",
                shadow.pipeline,
                shadow.version,
                type(exc).__name__,
                exc,
            )
            return
        self.holder.record(shadow, ok=True, seconds=time.perf_counter() - t0)
        rows = log_records(
            shadow,
            X,
            predicted,
            new_ids(len(predicted)),
            now=job.now,
            request_key=job.request_key,
            shadow_of=job.ids,
        )
        self.scored += 1
        if not self._log(rows):
            self.unlogged += 1
        if self._on_scored is not None:
            self._on_scored(shadow, len(predicted))

    def close(self) -> None:
        """Score what waits, then stop the thread (a graceful stop loses no queued copy)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
