"""The monitor: one window of drift, data quality, online performance and concept drift.

:func:`run_monitor` checks the window ``[start, end)`` (by default the configured
``monitor.window`` ending now; it may not end after now) against the serving model, the
champion at ``end`` (an error when there was none then, even if there is one now):

1. **drift and quality**: the window's features, target and the model's output against the
   reference profile stored with the model version (no reference data is re-read);
2. **performance**: the pipeline's metrics (or ``monitor.performance.metrics``) per
   ``monitor.performance.every``, from the source's labels (``data: source``) or from the
   logged predictions joined with the feedback that has arrived by ``end`` (``data: log``);
   windows with fewer than ``min_samples`` labelled rows report "insufficient data";
3. **concept drift**: a River detector on the model's per-row errors; its state is kept in the
   metadata store between runs, rows already fed are never fed again (overlapping windows),
   rows inside the model's own training window are never fed, and a new champion starts a
   new detector.

A window without rows (after the data ends, or a gap) is recorded with one ``empty_window``
finding and nothing else: no drift verdict, no per-column findings. The controller relies on
it: the window counts as monitored, and the drift trigger reads it as "no column tested".

The figures are stored as a :class:`~retrainer.core.types.MonitorRecord` with a
``monitor.completed`` event (one transaction), plus ``drift.detected`` and
``concept_drift.detected`` events when they fire, and written to a self-contained HTML report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrainer.core.clock import Clock, as_utc, check_time
from retrainer.core.drift import DriftCheck, DriftReport
from retrainer.core.performance import WindowPerformance, get_online_metric, performance_over_time
from retrainer.core.profile import CategoricalProfile, Finding, NumericProfile, Profile
from retrainer.core.types import Event, ModelVersion, MonitorRecord
from retrainer.core.windows import parse_duration
from retrainer.engine.monitoring.checks import (
    check_window,
    drift_start,
    drift_text,
    logged_target,
    window_rows,
)
from retrainer.engine.monitoring.concept import (
    errors_of,
    feed_detector,
    labels_of,
    log_task,
    warm_from,
)
from retrainer.engine.monitoring.online import online_performance
from retrainer.engine.monitoring.recent import remember
from retrainer.engine.monitoring.results import (
    CategoricalHistogram,
    ConceptDrift,
    Histogram,
    MonitorSummary,
    MonitorWindow,
    NumericHistogram,
)
from retrainer.engine.pipeline import Pipeline, Prediction
from retrainer.engine.project import Project
from retrainer.engine.runs.profiles import (
    PREDICTION_COLUMN,
    model_output,
    output_of,
    window_columns,
)
from retrainer.engine.state import CHAMPION
from retrainer.engine.state import CONCEPT_STATE_KEY as CONCEPT_STATE_KEY  # where tests found it
from retrainer.engine.state import last_change as last_change  # where callers found it
from retrainer.errors import ConfigError, ModelNotFoundError

WARM_ROWS = 50_000
"""The most rows before the window a new concept-drift detector is warmed on (the newest)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorResult:
    """What one monitor run found: its summary (stored as ``record.summary``, in JSON), the
    record, and the report's path."""

    record: MonitorRecord
    summary: MonitorSummary
    report_path: Path | None = None

    @property
    def drift(self) -> DriftReport | None:
        """The drift check (None: an empty window, or a model without a profile)."""
        return self.summary.drift

    @property
    def performance(self) -> tuple[WindowPerformance, ...]:
        """The metrics per ``monitor.performance.every`` window (empty: no labels)."""
        return self.summary.performance


def _serving_version(project: Project, pipeline: str, at: datetime) -> ModelVersion:
    """The champion at ``at``: the model that served the window ending then (not today's
    champion, which may have been promoted after it)."""
    version = project.store.alias_at(pipeline, CHAMPION, at)
    if version is not None:
        return project.store.get_version(pipeline, version)
    moves = project.store.alias_history(pipeline, CHAMPION)
    promotions = [m for m in moves if m.version is not None]
    if not promotions:
        raise ModelNotFoundError(
            f"{pipeline} has no champion to monitor; train one first with 'retrainer run'"
        )
    first = min(promotions, key=lambda m: m.at)  # by time: a replay may add older moves
    if at < first.at:
        raise ModelNotFoundError(
            f"no champion of {pipeline} at {at:%Y-%m-%d %H:%M}: its first champion, "
            f"v{first.version}, was promoted at {first.at:%Y-%m-%d %H:%M}; monitor a window "
            "ending at or after that"
        )
    cleared = next(m for m in reversed(moves) if m.at <= at)
    raise ModelNotFoundError(
        f"no champion of {pipeline} at {at:%Y-%m-%d %H:%M}: the alias was cleared at "
        f"{cleared.at:%Y-%m-%d %H:%M} ({cleared.reason or 'no reason given'})"
    )


def _load(project: Project, mv: ModelVersion) -> Any:
    return project.load_version(mv)


def _current_frame(
    project: Project,
    pipeline: Pipeline,
    start: datetime,
    end: datetime,
    profile: Profile | None = None,
    *,
    feedback_until: datetime | None = None,
) -> tuple[pd.DataFrame, str]:
    """The window's rows: features (and target when known), sorted by time. From the log, the
    target keeps its training dtype (see :func:`~.checks.logged_target`)."""
    mcfg = pipeline.config.monitor
    if mcfg.data == "source":
        return pipeline.source.load(start, end), pipeline.time_column
    logs = project.log_store()
    target = pipeline.config.target
    frame = logs.joined(
        pipeline.name, start, end, feedback_until=feedback_until or end, include_unlabelled=True
    )
    frame = frame.rename(columns={"outcome": target})
    if target in frame.columns:
        frame[target] = logged_target(frame[target], profile, target)
    return frame, "timestamp"


def _warm_errors(
    project: Project,
    pipeline: Pipeline,
    model: Any,
    begin: datetime,
    start: datetime,
    end: datetime,
    task: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Row times, errors and (from the log) feedback times of the champion on the rows of
    ``[begin, start)``: what a new detector is fed before the window."""
    frame, time_col = _current_frame(project, pipeline, begin, start, feedback_until=end)
    target = pipeline.config.target
    if target in frame.columns:
        frame = frame[frame[target].notna()].reset_index(drop=True)
    if frame.empty or target not in frame.columns:
        return np.empty(0, dtype="datetime64[us]"), np.empty(0), None
    frame = frame.iloc[-WARM_ROWS:]
    y_true = labels_of(frame[target])
    if pipeline.config.monitor.data == "log":
        errors = errors_of(y_true, frame["prediction"].to_numpy(), task)
        return frame[time_col].to_numpy(), errors, frame["feedback_timestamp"].to_numpy()
    if any(c not in frame.columns for c in pipeline.feature_columns):
        return np.empty(0, dtype="datetime64[us]"), np.empty(0), None
    errors = errors_of(y_true, pipeline.predict(model, frame).y_pred, task)
    return frame[time_col].to_numpy(), errors, None


def _no_rows(pipeline: Pipeline, mv: ModelVersion, start: datetime, end: datetime) -> str:
    """What an empty window says: its bounds, where it was read from and, from a source, the
    newest row before it (read from the newest row the model trained on: a bounded read)."""
    where = f"[{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M})"
    if pipeline.config.monitor.data == "log":
        return f"no rows in {where} of the prediction log of {pipeline.name}"
    text = f"no rows in {where} of {pipeline.source.description}"
    since = mv.snapshot.max_time
    if since is None or since >= start:
        return text  # a gap in the data, not necessarily its end: nothing cheap to add
    before = pipeline.source.load(since, start)
    newest = since
    if pipeline.time_column in before.columns and len(before):
        newest = as_utc(pd.Timestamp(before[pipeline.time_column].max()).to_pydatetime())
    return f"{text} (newest row before it: {newest:%Y-%m-%d %H:%M})"


def _histograms(profile: Profile, frame: pd.DataFrame, columns: Any) -> dict[str, Histogram]:
    """Reference vs current shares on the profile's bins (for the report)."""
    out: dict[str, Histogram] = {}
    for name, fp in profile.features.items():
        if isinstance(fp, NumericProfile) and name in columns.numeric:
            values = np.asarray(columns.numeric[name], dtype=float)
            values = values[~np.isnan(values)]
            edges = np.asarray(fp.edges, dtype=float)
            cur = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(fp.counts))
            out[name] = NumericHistogram(
                edges=tuple(float(e) for e in edges),
                reference=tuple(int(c) for c in fp.counts),
                current=tuple(int(c) for c in cur[: len(fp.counts)]),
            )
        elif isinstance(fp, CategoricalProfile) and name in columns.categorical:
            col = columns.categorical[name]
            codes = np.asarray(col.codes)
            cur_counts = np.bincount(codes[codes >= 0], minlength=len(col.labels))
            current = {str(lbl): int(n) for lbl, n in zip(col.labels, cur_counts, strict=False)}
            labels = list(dict.fromkeys([*map(str, fp.labels), *current]))
            ref = dict(zip(map(str, fp.labels), fp.counts, strict=True))
            out[name] = CategoricalHistogram(
                labels=tuple(labels),
                reference=tuple(int(ref.get(lbl, 0)) for lbl in labels),
                current=tuple(int(current.get(lbl, 0)) for lbl in labels),
            )
    return out


def _raw_reference(pipeline: Pipeline, model: Any, mv: ModelVersion) -> Any:
    """The training rows themselves, only when a column asks for ``ks_exact`` (raw samples)."""
    drift = pipeline.config.monitor.drift
    methods = {drift.numeric_method, *(f.get("method") for f in drift.features.values())}
    if "ks_exact" not in methods:
        return None
    from retrainer.engine.monitoring.estimate import trained_rows

    found = trained_rows(pipeline, mv)
    if found is None:
        return None
    frame, holdout = found
    train = frame.loc[~holdout]
    return window_columns(pipeline, train, model_output(pipeline, model, train))


def run_monitor(
    project: Project,
    pipeline_name: str | None = None,
    *,
    clock: Clock,
    start: datetime | None = None,
    end: datetime | None = None,
    report: bool | Path = True,
    estimate: bool = True,
) -> MonitorResult:
    """Check one window and record it; see the module docstring for what is checked.

    ``report`` is True for the default path under ``storage.reports_dir``, a path, or False.
    ``estimate=False`` leaves out the performance estimated before the labels (CBPE/DLE: a
    calibration or loss model fitted on the champion's holdout), which the controller asks
    for only where a trigger or the dashboard reads it.

    Examples
    --------
    A champion trained on ten days of data, then a window in which ``x`` moved (the drift
    check reads the whole week that ends with the 3-day window):

    >>> import tempfile
    >>> from datetime import UTC
    >>> from retrainer.adapters.sources import CallableSource
    >>> from retrainer.config import parse_config
    >>> from retrainer.core.clock import SimulatedClock
    >>> from retrainer.engine.runs.run import execute_run
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=24 * 21)
    >>> frame = pd.DataFrame({"ts": pd.date_range("2024-01-01", periods=len(x), freq="h"),
    ...                       "x": x, "y": (x > 0).astype(int)})
    >>> frame.loc[frame["ts"] >= "2024-01-13", "x"] += 2.0
    >>> config = parse_config({"pipelines": [{
    ...     "name": "toy", "target": "y", "features": ["x"], "metrics": ["accuracy"],
    ...     "source": {"kind": "parquet", "url": "unused.parquet", "time_column": "ts"},
    ...     "model": {"estimator": "sklearn.linear_model:LogisticRegression"},
    ...     "blessing": {"holdout": 0.25, "rules": [{"metric": "accuracy", "min": 0.6}],
    ...                  "sanity": {"enabled": False}},
    ...     "monitor": {"window": "3d"}}]})
    >>> source = CallableSource(lambda start, end: frame, time_column="ts", name="toy")
    >>> project = Project.in_memory(config, Path(tempfile.mkdtemp()), sources={"toy": source})
    >>> execute_run(project, clock=SimulatedClock(datetime(2024, 1, 11, tzinfo=UTC))).promoted
    True
    >>> result = run_monitor(
    ...     project, clock=SimulatedClock(datetime(2024, 1, 20, tzinfo=UTC)), report=False)
    >>> result.summary.rows, result.drift.drifted_columns
    (72, ('x', '__prediction__'))
    >>> window = result.record.summary["window"]  # stored as JSON: summary.to_json()
    >>> window["start"], window["drift_start"], window["end"]
    ('2024-01-17T00:00:00+00:00', '2024-01-13T00:00:00+00:00', '2024-01-20T00:00:00+00:00')
    """
    pipeline = project.pipeline(pipeline_name)
    mcfg = pipeline.config.monitor
    now = check_time(clock.now(), "--as-of")
    end = check_time(end, "--end") if end is not None else now
    if end > now:
        raise ConfigError(
            f"the monitoring window of {pipeline.name} ends at {end:%Y-%m-%d %H:%M}, after now "
            f"({now:%Y-%m-%d %H:%M}); end it at or before now"
        )
    start = check_time(start, "--start") if start is not None else end - parse_duration(mcfg.window)
    if start >= end:
        raise ConfigError(
            f"the monitoring window is empty: start {start:%Y-%m-%d %H:%M} is not before end "
            f"{end:%Y-%m-%d %H:%M}"
        )
    mv = _serving_version(project, pipeline.name, end)
    model = _load(project, mv)
    profile = Profile.from_dict(mv.profile) if mv.profile is not None else None
    # the drift check reads whole periods (whole weeks): a window of 8 days counts a weekday
    # twice, and a weekday feature drifts against any profile of whole weeks
    checked_from = drift_start(start, end, mcfg.drift.window)
    wide, time_col = _current_frame(project, pipeline, min(start, checked_from), end, profile)
    in_window = window_rows(wide, time_col, start)
    in_check = window_rows(wide, time_col, checked_from)
    frame = wide.loc[in_window]
    findings: list[Finding] = []
    target = pipeline.config.target
    has_target = target in frame.columns and bool(frame[target].notna().any())

    empty = frame.empty  # one finding, no checks: an empty window has no columns to judge
    if empty:
        findings.append(
            Finding(
                kind="empty_window",
                column=None,
                message=_no_rows(pipeline, mv, start, end),
                value=0,
            )
        )
    missing = [c for c in pipeline.feature_columns if c not in frame.columns]
    output = pred = None
    if missing and not empty:
        findings.append(
            Finding(
                kind="predict_skipped",
                column=None,
                message=(
                    f"feature column(s) {', '.join(repr(c) for c in missing)} missing from the "
                    "window: the model's output, performance and concept drift not computed"
                ),
            )
        )
    elif not empty:
        try:
            # once: drift, performance, concept drift
            every = pipeline.predict(model, wide)
            output = output_of(every, wide.index)
            pred = Prediction(
                y_pred=every.y_pred[in_window],
                y_score=every.y_score[in_window] if every.y_score is not None else None,
            )
        except Exception as exc:
            findings.append(
                Finding(
                    kind="predict_failed",
                    column=PREDICTION_COLUMN,
                    message=f"the model could not predict on the window: {exc}",
                )
            )
    drift: DriftReport | None = None
    histograms: dict[str, Histogram] = {}
    if empty:
        pass
    elif profile is None:
        findings.append(
            Finding(
                kind="no_profile",
                column=None,
                message=f"v{mv.version} has no reference profile; retrain to monitor drift",
            )
        )
    else:
        check = DriftCheck(
            **mcfg.drift.check_params(),
            prediction=PREDICTION_COLUMN if output is not None else None,
            target=target if target in frame.columns else None,  # labelled or not
        )
        checked = wide.loc[in_check]
        drift, columns = check_window(
            pipeline,
            check,
            profile,
            checked,
            output.loc[in_check] if output is not None else None,
            reference=_raw_reference(pipeline, model, mv),
        )
        histograms = _histograms(profile, checked, columns)

    metric_names = mcfg.performance.metrics or pipeline.config.metric_names()
    metrics = [pipeline.metrics.get(m) or get_online_metric(m) for m in metric_names]
    performance: tuple[WindowPerformance, ...] = ()
    concept: ConceptDrift | None = None
    if empty:
        pass
    elif mcfg.data == "log":
        performance = online_performance(
            project.log_store(),
            pipeline.name,
            metrics,
            start=start,
            end=end,
            every=mcfg.performance.every,
            now=end,
            min_samples=mcfg.performance.min_samples,
        )
        if mcfg.concept_drift.enabled and has_target and "prediction" in frame.columns:
            # the error stream of what production served: logged predictions against the
            # feedback arrived by the window's end (rows still unlabelled are not fed)
            y_true = labels_of(frame[target])
            task = log_task(pipeline, y_true)
            times = frame[time_col].to_numpy()
            errors = errors_of(y_true, frame["prediction"].to_numpy(), task)
            arrived = frame["feedback_timestamp"].to_numpy()
            begin = warm_from(project, pipeline, mv, start)
            if begin is not None:
                w_times, w_errors, w_arrived = _warm_errors(
                    project, pipeline, model, begin, start, end, task
                )
                if w_arrived is not None:
                    times = np.concatenate([w_times, times])
                    errors = np.concatenate([w_errors, errors])
                    arrived = np.concatenate([w_arrived, arrived])
            concept = feed_detector(
                project,
                pipeline,
                mv,
                times,
                errors,
                now,
                arrived=arrived,
                arrived_until=end,
                window_start=start,
            )
    elif has_target and pred is not None:
        times = frame[time_col].to_numpy()
        y_true = labels_of(frame[target])  # rows whose label has not arrived: NaN
        performance = performance_over_time(
            times,
            y_true,
            pred.y_pred,
            pred.y_score,
            metrics,
            start=start,
            end=end,
            every=mcfg.performance.every,
            min_samples=mcfg.performance.min_samples,
        )
        if mcfg.concept_drift.enabled:
            task = pipeline.task(frame)
            errors = errors_of(y_true, pred.y_pred, task)
            begin = warm_from(project, pipeline, mv, start)
            if begin is not None:
                w_times, w_errors, _ = _warm_errors(
                    project, pipeline, model, begin, start, end, task
                )
                times = np.concatenate([w_times.astype(times.dtype), times])
                errors = np.concatenate([w_errors, errors])
            concept = feed_detector(project, pipeline, mv, times, errors, now, window_start=start)
    elif not has_target:
        findings.append(
            Finding(
                kind="no_labels",
                column=target,
                message="the window has no labels: performance and concept drift not computed",
            )
        )
    estimated = None
    if estimate and pred is not None:  # rows, the features, and a model that predicted
        from retrainer.engine.monitoring.estimate import try_estimate

        estimated = try_estimate(pipeline, model, mv, frame, list(metric_names), findings)
    summary = MonitorSummary(
        pipeline=pipeline.name,
        version=mv.version,
        window=MonitorWindow(
            start=start.isoformat(),
            end=end.isoformat(),
            drift_start=checked_from.isoformat() if checked_from != start and drift else None,
        ),
        rows=len(frame),
        data=mcfg.data,
        drift=drift,
        findings=(*findings, *(drift.findings if drift else ())),
        performance=performance,
        concept_drift=concept,
        histograms=histograms,
        estimated=estimated,
    )
    drifted = drift.drifted if drift is not None else None
    record = project.store.add_monitor_result(
        MonitorRecord(
            pipeline=pipeline.name,
            version=mv.version,
            window_start=start,
            window_end=end,
            created_at=now,
            drifted=drifted,
            summary=summary.to_json(),
        ),
        event=Event(
            kind="monitor.completed",
            at=now,
            message=(
                f"{pipeline.name} v{mv.version}: {findings[0].message}"
                if empty
                else _headline(pipeline.name, mv.version, len(frame), drift, concept)
            ),
            pipeline=pipeline.name,
            version=mv.version,
            data={
                "window_start": start.isoformat(),
                "window_end": end.isoformat(),
                "drifted": drifted,
                "drifted_columns": list(drift.drifted_columns) if drift else [],
                "concept_drift": bool(concept and concept.drift_detected),
            },
        ),
    )
    if drift is not None and drift.drifted:
        project.store.append_event(
            Event(
                kind="drift.detected",
                at=now,
                message=f"{pipeline.name}: {drift_text(drift)}",
                pipeline=pipeline.name,
                version=mv.version,
                data={"share": drift.share_drifted, "columns": list(drift.drifted_columns)},
            )
        )
    if concept and concept.drift_detected:
        project.store.append_event(
            Event(
                kind="concept_drift.detected",
                at=now,
                message=(
                    f"{pipeline.name}: {concept.method} detected a change in the error "
                    f"stream of v{mv.version} at {concept.detections[0]}"
                ),
                pipeline=pipeline.name,
                version=mv.version,
                data=concept.to_json(),
            )
        )
    remember(
        project.store,
        pipeline.name,
        at=now,
        performance=[w.to_dict() for w in performance],
        drift=None
        if drift is None
        else {
            "end": end.isoformat(),
            "drifted": drift.drifted,
            "columns": list(drift.drifted_columns),
            "share": drift.share_drifted,
        },
    )
    path = None
    if report:
        from retrainer.engine.monitoring.report import write_monitor_report

        target_path = (
            Path(report)
            if isinstance(report, Path)
            else project.reports_dir / f"monitor-{pipeline.name}-{end:%Y%m%dT%H%M%S}.html"
        )
        history = project.store.list_monitor_results(pipeline.name, until=end, limit=200)
        earlier = [MonitorSummary.from_json(h.summary) for h in history]
        path = write_monitor_report(summary, earlier, target_path)
    return MonitorResult(record=record, summary=summary, report_path=path)


def _headline(
    pipeline: str,
    version: int,
    rows: int,
    drift: DriftReport | None,
    concept: ConceptDrift | None,
) -> str:
    parts = [f"{pipeline} v{version}: {rows} rows"]
    if drift is not None:
        parts.append(
            f"{drift.n_drifted}/{drift.n_tested} features drifted"
            + (" (dataset drift)" if drift.drifted else "")
        )
    if concept is not None and concept.drift_detected:
        parts.append("concept drift")
    return "; ".join(parts)
