"""What the controller reads from a pipeline's source when no prediction log answers: the
rows labelled since the champion's training (a new-data trigger), and a metric trigger's
window measured from the source (the champion's predictions on the newly labelled rows), as
the backtest's replay measures it. :func:`metric_feed_notes` says which of the two a metric
trigger will read (``retrainer daemon``'s start-up checks).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from retrainer.core.performance import get_online_metric
from retrainer.core.triggers import MetricNeed
from retrainer.core.types import Snapshot
from retrainer.engine.pipeline import Pipeline


def labelled_rows_since(pipeline: Pipeline, trained: Snapshot | None, now: datetime) -> int:
    """Rows with a label that the champion did not learn: after the newest row it trained on
    (with delayed labels its window's end runs ahead of that row), all of them without one."""
    start = _trained_until(trained) if trained is not None else None
    frame = pipeline.source.load(start, now)
    target = pipeline.config.target
    if target not in frame.columns:
        return len(frame)
    return int(frame[target].notna().sum())


def _trained_until(trained: Snapshot) -> datetime | None:
    """The first time a champion did not learn from: after its newest row (with delayed labels
    its window's end runs ahead of that row)."""
    if trained.max_time is not None:
        return trained.max_time + timedelta(microseconds=1)
    return trained.window_end


def source_metric(
    pipeline: Pipeline, version: Any | None, model: Any, need: MetricNeed, now: datetime
) -> Any:
    """A metric trigger's window measured from the source: the champion's predictions on the
    rows of ``[now - over, now)`` whose label is there, none of which it trained on.

    What the backtest's replay logs (each batch served by the champion, each label fed back
    when it arrives), computed when no prediction log feeds the trigger; returns a
    :class:`~retrainer.core.performance.WindowPerformance` (no rows without a champion).
    """
    import numpy as np

    from retrainer.core.performance import evaluate_window

    metric = get_online_metric(need.metric)
    start = now - need.over
    target = pipeline.config.target
    frame = None
    if version is not None and model is not None:
        since = _trained_until(version.snapshot)
        frame = pipeline.source.load(max(start, since) if since is not None else start, now)
        frame = frame[frame[target].notna()] if target in frame.columns else None
    if frame is None or frame.empty:
        empty = np.empty(0)
        times = empty.astype("datetime64[us]")
        return evaluate_window(
            times, empty, empty, None, [metric], start=start, end=now, min_samples=need.min_samples
        )
    frame = frame.reset_index(drop=True)
    pred = pipeline.predict(model, frame)
    y = frame[target]
    # a nullable integer or boolean column: its labels as numbers (they are all there)
    y_true = y.to_numpy(dtype=float) if y.dtype.kind in "iub" else y.to_numpy()
    return evaluate_window(
        frame[pipeline.time_column].to_numpy(),
        y_true,
        pred.y_pred,
        pred.y_score if metric.needs_proba else None,
        [metric],
        start=start,
        end=now,
        min_samples=need.min_samples,
    )
