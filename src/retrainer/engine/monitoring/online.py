"""Online performance use cases: log predictions and feedback, measure a model over time.

``retrainer log predictions FILE`` / ``log feedback FILE`` call :func:`log_predictions` and
:func:`log_feedback`; the monitor and the metric triggers call :func:`online_performance`
and :func:`recent_performance`, which join the logged predictions with the feedback that has
arrived by ``now`` (delayed labels) and compute the metrics in :mod:`retrainer.core.performance`.

Examples
--------
>>> import pandas as pd
>>> from retrainer.adapters.logstore import InMemoryLogStore
>>> store = InMemoryLogStore()
>>> _ = store.append_predictions(pd.DataFrame({
...     "id": ["a", "b", "c"], "pipeline": "ads", "model_version": 1, "prediction": 0,
...     "timestamp": ["2024-01-01T09:00", "2024-01-01T10:00", "2024-01-02T09:00"]}))
>>> _ = store.append_feedback(pd.DataFrame({
...     "id": ["a", "c"], "outcome": [1, 0],
...     "timestamp": ["2024-01-01T09:01", "2024-01-02T09:05"]}))
>>> windows = online_performance(store, "ads", ["ctr"], start=datetime(2024, 1, 1),
...     end=datetime(2024, 1, 3), every="1d", now=datetime(2024, 1, 3))
>>> [(w.start.day, w.n_rows, w.n_labelled, w.value("ctr")) for w in windows]
[(1, 2, 1, 1.0), (2, 1, 1, 0.0)]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from retrainer.adapters.logstore import LogStore, read_log_file
from retrainer.core.metrics import Metric
from retrainer.core.performance import (
    WindowPerformance,
    evaluate_window,
    get_online_metric,
    is_rate_metric,
    performance_over_time,
)
from retrainer.core.windows import parse_duration
from retrainer.errors import ConfigError, DataError

__all__ = [
    "log_feedback",
    "log_predictions",
    "online_performance",
    "recent_performance",
]


def log_predictions(
    logstore: LogStore, path: str | os.PathLike[str], pipeline: str | None = None
) -> int:
    """Append the predictions in a CSV, Parquet or JSON-lines file to the log.

    Parameters
    ----------
    logstore
        Where to log them.
    path
        The file (see :func:`~retrainer.adapters.logstore.read_log_file`): columns ``id``,
        ``timestamp``, ``model_version``, ``prediction``, optionally ``pipeline``, ``score``
        and features.
    pipeline
        The pipeline the predictions belong to. Required when the file has no ``pipeline``
        column; when it has one, every row must name this pipeline.

    Returns
    -------
    int
        The number of predictions logged.

    Raises
    ------
    DataError
        The file cannot be parsed, lacks a column or holds bad values; the message names the
        file and the column.
    SourceError
        The file cannot be opened.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from retrainer.adapters.logstore import InMemoryLogStore
    >>> store = InMemoryLogStore()
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder, "predictions.csv")
    ...     _ = path.write_text("id,timestamp,model_version,prediction,score\\n"
    ...                         "a,2024-01-01T10:00:00Z,2,1,0.8\\n")
    ...     log_predictions(store, path, pipeline="ads")
    1
    """
    frame = read_log_file(path)
    origin = os.fspath(path)
    if pipeline is not None:
        if not isinstance(pipeline, str) or not pipeline:
            raise ConfigError(f"pipeline must be a non-empty string; got {pipeline!r}")
        if "pipeline" in frame.columns:
            others = sorted(set(frame["pipeline"].dropna().astype(str)) - {pipeline})
            if others or frame["pipeline"].isna().any():
                named = ", ".join(map(repr, others)) or "no pipeline (missing values)"
                raise DataError(
                    f"{origin}: the pipeline {pipeline!r} was given, but the file's 'pipeline' "
                    f"column also has rows for {named}; log each pipeline's rows separately "
                    "or drop the option"
                )
        else:
            frame = frame.assign(pipeline=pipeline)
    elif "pipeline" not in frame.columns:
        raise DataError(
            f"{origin}: the file has no 'pipeline' column; give the pipeline the predictions "
            "belong to (retrainer log predictions FILE --pipeline NAME)"
        )
    return logstore.append_predictions(frame, origin=origin)


def log_feedback(logstore: LogStore, path: str | os.PathLike[str]) -> int:
    """Append the feedback in a CSV, Parquet or JSON-lines file to the log.

    Parameters
    ----------
    logstore
        Where to log it.
    path
        The file: columns ``id``, ``timestamp`` (when the feedback arrived), ``outcome``,
        optionally ``pipeline``.

    Returns
    -------
    int
        The number of feedback rows logged.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from retrainer.adapters.logstore import InMemoryLogStore
    >>> store = InMemoryLogStore()
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder, "clicks.jsonl")
    ...     _ = path.write_text('{"id": "a", "timestamp": "2024-01-01T10:05:00Z", "outcome": 1}\\n')
    ...     log_feedback(store, path)
    1
    """
    frame = read_log_file(path)
    return logstore.append_feedback(frame, origin=os.fspath(path))


def _resolve(metrics: Sequence[Metric | str]) -> list[Metric]:
    if isinstance(metrics, (str, Metric)):
        metrics = [metrics]
    return [m if isinstance(m, Metric) else get_online_metric(m) for m in metrics]


def _joined_arrays(
    logstore: LogStore,
    pipeline: str,
    metrics: list[Metric],
    start: datetime,
    end: datetime,
    now: datetime,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Times, outcomes (NaN: not arrived), predictions and scores of the window's predictions."""
    needs_score = any(m.needs_proba for m in metrics)
    needs_prediction = not all(is_rate_metric(m) for m in metrics)
    columns = ["timestamp"]
    if needs_prediction:
        columns.append("prediction")
    if needs_score:
        columns.append("score")
    try:
        frame = logstore.joined(
            pipeline, start, end, feedback_until=now, columns=columns, include_unlabelled=True
        )
    except DataError as exc:
        if needs_score and "'score'" in str(exc):
            needy = ", ".join(m.name for m in metrics if m.needs_proba)
            raise ConfigError(
                f"metric(s) {needy} need the predicted probability, but the predictions "
                f"logged for pipeline {pipeline!r} between {start.isoformat()} and "
                f"{end.isoformat()} have no 'score' column; log a score with each prediction "
                "or use metrics on labels"
            ) from None
        raise
    times = frame["timestamp"].to_numpy(dtype="datetime64[us]")
    y_true = _values(frame["outcome"])
    y_pred = _values(frame["prediction"]) if needs_prediction else np.zeros(len(frame))
    y_score = frame["score"].to_numpy(dtype=float, na_value=np.nan) if needs_score else None
    return times, y_true, y_pred, y_score


def _values(col: pd.Series) -> np.ndarray:
    """A column as numpy: floats (NaN for missing) when numeric, else objects (None/NaN)."""
    if pd.api.types.is_bool_dtype(col) or (
        pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_object_dtype(col)
    ):
        return col.to_numpy(dtype=float, na_value=np.nan)
    values = col.to_numpy(dtype=object, copy=True)
    values[col.isna().to_numpy()] = None
    return values


def _check_times(**values: Any) -> None:
    for name, value in values.items():
        if not isinstance(value, datetime):
            raise ConfigError(f"{name} must be a datetime; got {value!r}")


def online_performance(
    logstore: LogStore,
    pipeline: str,
    metrics: Sequence[Metric | str],
    *,
    start: datetime,
    end: datetime,
    every: str | timedelta,
    now: datetime,
    min_samples: int = 1,
    origin: datetime | None = None,
) -> tuple[WindowPerformance, ...]:
    """A pipeline's online metrics per window, from its predictions and the feedback so far.

    Predictions made in ``[start, end)`` are joined with the feedback logged at or before
    ``now`` (:meth:`~retrainer.adapters.logstore.LogStore.joined`); each falls in the window
    of its prediction time. Rows whose feedback has not arrived count in ``n_rows`` only, so
    the latest windows fill in as labels arrive, and a window with fewer than ``min_samples``
    labelled rows says ``insufficient_data`` instead of a number.

    Parameters
    ----------
    logstore
        The prediction and feedback log.
    pipeline
        The pipeline whose predictions to measure.
    metrics
        Metric objects or names: any built-in metric, or ``"ctr"``/``"rate"`` (the mean of the
        outcome). Metrics on probabilities read the logged ``score``.
    start, end
        The span of prediction times (naive means UTC).
    every
        The window length (``"1d"``, ``"6h"`` or a timedelta), aligned to midnight UTC unless
        ``origin`` is given.
    now
        The current time: feedback logged later does not count.
    min_samples
        The fewest labelled rows a metric needs to give a value.
    origin
        A point of the window grid (default: midnight UTC).

    Examples
    --------
    >>> import pandas as pd
    >>> from retrainer.adapters.logstore import InMemoryLogStore
    >>> store = InMemoryLogStore()
    >>> _ = store.append_predictions(pd.DataFrame({
    ...     "id": ["a", "b"], "pipeline": "p", "model_version": 1, "prediction": [1, 0],
    ...     "score": [0.9, 0.4], "timestamp": ["2024-01-01T09:00", "2024-01-01T10:00"]}))
    >>> _ = store.append_feedback(pd.DataFrame({"id": ["a", "b"], "outcome": [1, 1],
    ...     "timestamp": ["2024-01-01T12:00", "2024-01-05T00:00"]}))
    >>> [w] = online_performance(store, "p", ["accuracy", "log_loss"], start=datetime(2024, 1, 1),
    ...     end=datetime(2024, 1, 2), every="1d", now=datetime(2024, 1, 2))
    >>> w.n_labelled, w.value("accuracy"), round(w.value("log_loss"), 4)
    (1, 1.0, 0.1054)
    """
    _check_times(start=start, end=end, now=now)
    resolved = _resolve(metrics)
    times, y_true, y_pred, y_score = _joined_arrays(logstore, pipeline, resolved, start, end, now)
    return performance_over_time(
        times,
        y_true,
        y_pred,
        y_score,
        resolved,
        start=start,
        end=end,
        every=every,
        origin=origin,
        min_samples=min_samples,
    )


def recent_performance(
    logstore: LogStore,
    pipeline: str,
    metrics: Sequence[Metric | str],
    *,
    last: str | timedelta,
    now: datetime,
    min_samples: int = 1,
) -> WindowPerformance:
    """A pipeline's online metrics over the predictions of the last ``last`` before ``now``.

    What a metric trigger reads: "CTR below 1.91% over the last day, at least 1000 samples"
    is ``recent_performance(store, pipeline, ["ctr"], last="1d", now=now, min_samples=1000)``
    and fires only when the result's status is ``"ok"`` and its value is below the threshold.

    Parameters
    ----------
    logstore, pipeline, metrics, now, min_samples
        As for :func:`online_performance`.
    last
        How far back from ``now`` (``"1d"`` or a timedelta).

    Examples
    --------
    >>> import pandas as pd
    >>> from retrainer.adapters.logstore import InMemoryLogStore
    >>> store = InMemoryLogStore()
    >>> _ = store.append_predictions(pd.DataFrame({
    ...     "id": [str(i) for i in range(4)], "pipeline": "ads", "model_version": 1,
    ...     "prediction": 0, "timestamp": pd.date_range("2024-01-01T20:00", periods=4, freq="h")}))
    >>> _ = store.append_feedback(pd.DataFrame({"id": ["0", "1", "2", "3"],
    ...     "outcome": [0, 0, 1, 0], "timestamp": "2024-01-02T00:30"}))
    >>> w = recent_performance(store, "ads", ["ctr"], last="1d", now=datetime(2024, 1, 2, 1))
    >>> w.value("ctr"), w.n_labelled
    (0.25, 4)
    >>> recent_performance(store, "ads", ["ctr"], last="1d", now=datetime(2024, 1, 2, 1),
    ...                    min_samples=1000).status
    'insufficient_data'
    """
    _check_times(now=now)
    span = parse_duration(last) if isinstance(last, str) else last
    if not isinstance(span, timedelta) or span <= timedelta(0):
        raise ConfigError(f"last must be a positive duration such as '1d'; got {last!r}")
    start = now - span
    resolved = _resolve(metrics)
    times, y_true, y_pred, y_score = _joined_arrays(logstore, pipeline, resolved, start, now, now)
    return evaluate_window(
        times, y_true, y_pred, y_score, resolved, start=start, end=now, min_samples=min_samples
    )


def recent_performance_many(
    logstore: LogStore,
    needs: Sequence[tuple[str, str, str | timedelta, int]],
    *,
    now: datetime,
) -> dict[tuple[str, str, timedelta, int], WindowPerformance]:
    """:func:`recent_performance` for many (pipeline, metric, last, min_samples) at once.

    One log query per distinct ``last`` (not one per pipeline): what a controller tick with
    many metric triggers pays. Keys of the result use ``last`` as a timedelta.

    Examples
    --------
    >>> import pandas as pd
    >>> from retrainer.adapters.logstore import InMemoryLogStore
    >>> store = InMemoryLogStore()
    >>> _ = store.append_predictions(pd.DataFrame({
    ...     "id": ["a", "b", "c"], "pipeline": ["ads", "ads", "mail"], "model_version": 1,
    ...     "prediction": 0, "timestamp": "2024-01-01T20:00"}))
    >>> _ = store.append_feedback(pd.DataFrame({"id": ["a", "b", "c"], "outcome": [1, 0, 1],
    ...     "timestamp": "2024-01-01T21:00"}))
    >>> out = recent_performance_many(store, [("ads", "ctr", "1d", 1), ("mail", "ctr", "1d", 1)],
    ...                               now=datetime(2024, 1, 2))
    >>> [(k[0], w.value("ctr")) for k, w in out.items()]
    [('ads', 0.5), ('mail', 1.0)]
    """
    _check_times(now=now)
    by_span: dict[timedelta, list[tuple[str, Metric, int]]] = {}
    for pipeline, metric, last, min_samples in needs:
        span = parse_duration(last) if isinstance(last, str) else last
        by_span.setdefault(span, []).append((pipeline, _resolve([metric])[0], min_samples))
    out: dict[tuple[str, str, timedelta, int], WindowPerformance] = {}
    for span, items in by_span.items():
        start = now - span
        metrics = [m for _, m, _ in items]
        columns = ["pipeline", "timestamp"]
        if not all(is_rate_metric(m) for m in metrics):
            columns.append("prediction")
        if any(m.needs_proba for m in metrics):
            columns.append("score")
        frame = logstore.joined_many(
            sorted({p for p, _, _ in items}),
            start,
            now,
            feedback_until=now,
            columns=columns,
            include_unlabelled=True,
        )
        groups = frame.groupby("pipeline", sort=False).indices if len(frame) else {}
        # the columns as numpy once, then a numpy index per pipeline: a pandas take per
        # pipeline on the log's (pyarrow) columns cost ~0.6 ms each, 0.6 s a tick at 1,000
        times = frame["timestamp"].to_numpy(dtype="datetime64[us]")
        outcomes = _values(frame["outcome"])
        preds = _values(frame["prediction"]) if "prediction" in frame else np.zeros(len(frame))
        scores = frame["score"].to_numpy(dtype=float, na_value=np.nan) if "score" in frame else None
        for name, resolved, min_samples in items:
            at = groups.get(name, np.arange(0))
            out[(name, resolved.name, span, min_samples)] = evaluate_window(
                times[at],
                outcomes[at],
                preds[at],
                scores[at] if scores is not None and resolved.needs_proba else None,
                [resolved],
                start=start,
                end=now,
                min_samples=min_samples,
            )
    return out
