"""The monitor's concept-drift detector: the champion's per-row errors fed to a River detector.

Its state is kept in the metadata store between monitor runs; rows already fed are never fed
again (overlapping windows), rows inside the champion's own training window are never fed, and
a new champion starts a new detector. A new detector is first **warmed** on the champion's
errors since its training ended, up to the window (:func:`warm_from`): fed the window alone, a
detector started after a change sees a stream that is wrong throughout, and no change in it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from retrainer.adapters.detectors import ConceptDriftDetector
from retrainer.core.clock import as_utc, utc_datetime64
from retrainer.core.types import ModelVersion
from retrainer.engine.monitoring.results import ConceptDrift
from retrainer.engine.pipeline import Pipeline
from retrainer.engine.project import Project
from retrainer.engine.state import CONCEPT_STATE_KEY

__all__ = ["WARM_MAX", "errors_of", "feed_detector", "labels_of", "log_task", "warm_from"]

WARM_MAX = timedelta(days=90)
"""How far before the window a new detector is warmed at most (a champion trained long before
its first monitor run would otherwise make that run read all the history since)."""


def labels_of(y: pd.Series) -> np.ndarray:
    """A target column as an array whose missing labels are NaN (a nullable integer or
    boolean column's ``<NA>`` is not, for NumPy)."""
    if pd.api.types.is_extension_array_dtype(y.dtype) and y.dtype.kind in "iub":
        return y.to_numpy(dtype=float, na_value=np.nan)
    return y.to_numpy()


def errors_of(y_true: np.ndarray, y_pred: np.ndarray, task: str) -> np.ndarray:
    """Per-row error of the model: 0/1 misclassification, or the absolute error."""
    out = np.full(len(y_true), np.nan)
    known = pd.notna(y_true)
    if task == "classification":
        out[known] = (y_pred[known] != y_true[known]).astype(float)
    else:
        out[known] = np.abs(y_pred[known].astype(float) - y_true[known].astype(float))
    return out


def log_task(pipeline: Pipeline, outcomes: np.ndarray) -> str:
    """The task, for logged outcomes: unlabelled rows make an integer column float, so an
    automatic task is classification when every known outcome is a whole number or a label."""
    if pipeline.config.task != "auto":
        return pipeline.config.task
    known = pd.Series(outcomes).dropna()
    if pd.api.types.is_float_dtype(known) and not np.all(np.mod(known.to_numpy(), 1) == 0):
        return "regression"
    return "classification"


def _trained_until(mv: ModelVersion) -> datetime | None:
    return mv.snapshot.window_end or mv.snapshot.max_time


def warm_from(project: Project, pipeline: Pipeline, mv: ModelVersion, start: datetime) -> Any:
    """Where the rows to feed before the window ``[start, ...)`` begin, or None (nothing to
    feed before it): the end of ``mv``'s training for a new detector, the newest row fed for
    one that stopped before ``start`` (from a source; from the log, labels arrive in any
    order and the window's own rows are fed by arrival), never more than :data:`WARM_MAX`
    before ``start``."""
    cfg = pipeline.config.monitor.concept_drift
    stored = project.store.get_state(pipeline.name, CONCEPT_STATE_KEY)
    state = stored[0] if stored is not None else {}
    same = state.get("version") == mv.version and state.get("method") == cfg.method
    begin: datetime | None
    if same and "detector" in state:
        if pipeline.config.monitor.data == "log" or not state.get("fed_until"):
            return None
        begin = as_utc(pd.Timestamp(state["fed_until"]).to_pydatetime()) + timedelta(microseconds=1)
    else:
        begin = _trained_until(mv)
    if begin is None or begin >= start:
        return None
    return max(begin, start - WARM_MAX)


def feed_detector(
    project: Project,
    pipeline: Pipeline,
    mv: ModelVersion,
    times: np.ndarray,
    errors: np.ndarray,
    now: datetime,
    *,
    arrived: np.ndarray | None = None,
    arrived_until: datetime | None = None,
    window_start: datetime | None = None,
) -> ConceptDrift:
    """Feed the rows not fed before to the detector; persist its state (compare-and-set).

    From a source (``arrived`` None) the rows are fed in time order and the state remembers
    the newest row time fed. From the log, ``arrived`` holds each row's feedback time and the
    rows are fed in the order their labels arrived, the state remembering ``arrived_until``
    (the feedback read so far): a label arriving after later rows were fed is still fed.
    Rows before ``window_start`` warm a detector up (see :func:`warm_from`); the note counts
    them.
    """
    cfg = pipeline.config.monitor.concept_drift
    store = project.store
    stored = store.get_state(pipeline.name, CONCEPT_STATE_KEY)
    detector, fed_until, feedback_until, revision = None, None, None, None
    notes: list[str] = []
    newest_change = None  # the newest detection, whatever version it was made for
    if stored is not None:
        state, revision = stored
        newest_change = state.get("last_detection")
        same = state.get("version") == mv.version and state.get("method") == cfg.method
        if same:
            try:
                detector = ConceptDriftDetector.from_state(state["detector"])
                fed_until = pd.Timestamp(state["fed_until"]) if state.get("fed_until") else None
                feedback_until = (
                    pd.Timestamp(state["feedback_until"]) if state.get("feedback_until") else None
                )
            except (ValueError, KeyError) as exc:
                notes.append(f"detector state discarded ({exc}); started a new detector")
        else:
            notes.append(f"new detector for v{mv.version}")
    if detector is None:
        detector = ConceptDriftDetector(cfg.method, cfg.params)
    labelled = np.isfinite(errors)
    mask = labelled.copy()
    trained_until = _trained_until(mv)
    early = 0
    if trained_until is not None:
        # rows the model was trained or blessed on say nothing about concept drift
        after = times >= utc_datetime64(trained_until)
        early = int(np.count_nonzero(labelled & ~after))
        mask &= after
    if arrived is None:
        if fed_until is not None:
            mask &= times > utc_datetime64(fed_until)
        order = np.flatnonzero(mask)
    else:
        if feedback_until is not None:
            mask &= arrived > utc_datetime64(feedback_until)
        order = np.flatnonzero(mask)
        order = order[np.lexsort((times[order], arrived[order]))]  # by arrival, then row time
    new_times, new_errors = times[order], errors[order]
    hits = detector.update(new_errors)
    if len(new_times):
        newest = new_times.max()
        fed_until = pd.Timestamp(
            newest if fed_until is None else max(utc_datetime64(fed_until), newest)
        )
    if hits:
        newest_change = pd.Timestamp(new_times[hits[-1]]).isoformat()
    if arrived is not None and arrived_until is not None:
        feedback_until = pd.Timestamp(arrived_until)
    warmed = (
        int(np.count_nonzero(new_times < utc_datetime64(window_start)))
        if window_start is not None
        else 0
    )
    if warmed:
        notes.append(
            f"{warmed} labelled row(s) since v{mv.version}'s training and before the window "
            "fed first"
        )
    if not len(new_errors) and early and trained_until is not None:
        notes.append(
            f"0 rows fed: the {early} labelled row(s) are before the end of v{mv.version}'s "
            f"training window ({pd.Timestamp(trained_until).isoformat()}), and a model is not "
            "judged on the rows it learned from"
        )
    elif not len(new_errors) and int(np.count_nonzero(labelled)):
        notes.append("0 rows fed: every labelled row was fed by an earlier run")
    store.put_state(
        pipeline.name,
        CONCEPT_STATE_KEY,
        {
            "version": mv.version,
            "method": cfg.method,
            "fed_until": fed_until.isoformat() if fed_until is not None else None,
            "feedback_until": feedback_until.isoformat() if feedback_until is not None else None,
            "detector": detector.state(),
            "last_detection": newest_change,
        },
        at=now,
        expected_revision=revision,
    )
    return ConceptDrift(
        method=cfg.method,
        version=mv.version,
        rows_fed=len(new_errors),
        rows_seen=int(detector.n_seen_),
        detections=tuple(pd.Timestamp(new_times[i]).isoformat() for i in hits),
        drift_detected=bool(hits),
        error_rate=float(np.mean(new_errors)) if len(new_errors) else None,
        note="; ".join(notes),
    )
