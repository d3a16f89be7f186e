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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrainer.adapters.detectors import ConceptDriftDetector
from retrainer.core.clock import Clock, as_utc, check_time, utc_datetime64
from retrainer.core.drift import DriftCheck, DriftReport
from retrainer.core.performance import WindowPerformance, get_online_metric, performance_over_time
from retrainer.core.profile import CategoricalProfile, Finding, NumericProfile, Profile
from retrainer.core.types import Event, ModelVersion, MonitorRecord
from retrainer.core.windows import parse_duration
from retrainer.engine.monitoring.online import online_performance
from retrainer.engine.monitoring.results import (
    CategoricalHistogram,
    ConceptDrift,
    Histogram,
    MonitorSummary,
    MonitorWindow,
    NumericHistogram,
)
from retrainer.engine.pipeline import Pipeline
from retrainer.engine.project import Project
from retrainer.engine.runs.profiles import (
    PREDICTION_COLUMN,
    model_output,
    output_of,
    window_columns,
)
from retrainer.engine.state import CHAMPION, CONCEPT_STATE_KEY
from retrainer.engine.state import last_change as last_change  # where callers found it
from retrainer.errors import ConfigError, ModelNotFoundError


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
    project: Project, pipeline: Pipeline, start: datetime, end: datetime
) -> tuple[pd.DataFrame, str]:
    """The window's rows: features (and target when known), sorted by time."""
    mcfg = pipeline.config.monitor
    if mcfg.data == "source":
        return pipeline.source.load(start, end), pipeline.time_column
    logs = project.log_store()
    frame = logs.joined(pipeline.name, start, end, feedback_until=end, include_unlabelled=True)
    frame = frame.rename(columns={"outcome": pipeline.config.target})
    return frame, "timestamp"


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


def _labels(y: pd.Series) -> np.ndarray:
    """A target column as an array whose missing labels are NaN (a nullable integer or
    boolean column's ``<NA>`` is not, for NumPy)."""
    if pd.api.types.is_extension_array_dtype(y.dtype) and y.dtype.kind in "iub":
        return y.to_numpy(dtype=float, na_value=np.nan)
    return y.to_numpy()


def _errors(y_true: np.ndarray, y_pred: np.ndarray, task: str) -> np.ndarray:
    """Per-row error of the model: 0/1 misclassification, or the absolute error."""
    out = np.full(len(y_true), np.nan)
    known = pd.notna(y_true)
    if task == "classification":
        out[known] = (y_pred[known] != y_true[known]).astype(float)
    else:
        out[known] = np.abs(y_pred[known].astype(float) - y_true[known].astype(float))
    return out


def _log_task(pipeline: Pipeline, outcomes: np.ndarray) -> str:
    """The task, for logged outcomes: unlabelled rows make an integer column float, so an
    automatic task is classification when every known outcome is a whole number or a label."""
    if pipeline.config.task != "auto":
        return pipeline.config.task
    known = pd.Series(outcomes).dropna()
    if pd.api.types.is_float_dtype(known) and not np.all(np.mod(known.to_numpy(), 1) == 0):
        return "regression"
    return "classification"


def _concept_drift(
    project: Project,
    pipeline: Pipeline,
    mv: ModelVersion,
    times: np.ndarray,
    errors: np.ndarray,
    now: datetime,
    *,
    arrived: np.ndarray | None = None,
    arrived_until: datetime | None = None,
) -> ConceptDrift:
    """Feed the rows not fed before to the detector; persist its state (compare-and-set).

    From a source (``arrived`` None) the rows are fed in time order and the state remembers
    the newest row time fed. From the log, ``arrived`` holds each row's feedback time and the
    rows are fed in the order their labels arrived, the state remembering ``arrived_until``
    (the feedback read so far): a label arriving after later rows were fed is still fed.
    """
    cfg = pipeline.config.monitor.concept_drift
    store = project.store
    stored = store.get_state(pipeline.name, CONCEPT_STATE_KEY)
    detector, fed_until, feedback_until, revision, note = None, None, None, None, ""
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
                note = f"detector state discarded ({exc}); started a new detector"
        else:
            note = f"new detector for v{mv.version}"
    if detector is None:
        detector = ConceptDriftDetector(cfg.method, cfg.params)
    mask = np.isfinite(errors)
    trained_until = mv.snapshot.window_end or mv.snapshot.max_time
    if trained_until is not None:
        # rows the model was trained or blessed on say nothing about concept drift
        mask &= times >= utc_datetime64(trained_until)
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
        note=note,
    )


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
    snap = mv.snapshot
    if snap.min_time is None or snap.max_time is None:
        return None
    # the rows the version trained on lie between its oldest and newest row (rows of its
    # window whose label came later, or cut by a window of the last N rows, do not)
    frame = pipeline.source.load(snap.min_time, snap.max_time + timedelta(microseconds=1))
    frame, _ = pipeline.labelled(frame, "of the reference")
    if len(frame) > snap.rows:  # rows added to the source since
        frame = frame.iloc[-snap.rows :].reset_index(drop=True)
    if frame.empty:
        return None
    from retrainer.core.windows import holdout_mask

    train = frame.loc[
        ~holdout_mask(frame[pipeline.time_column].to_numpy(), pipeline.config.blessing.holdout)
    ]
    return window_columns(pipeline, train, model_output(pipeline, model, train))


def run_monitor(
    project: Project,
    pipeline_name: str | None = None,
    *,
    clock: Clock,
    start: datetime | None = None,
    end: datetime | None = None,
    report: bool | Path = True,
) -> MonitorResult:
    """Check one window and record it; see the module docstring for what is checked.

    ``report`` is True for the default path under ``storage.reports_dir``, a path, or False.

    Examples
    --------
    A champion trained on ten days of data, then a window in which ``x`` moved:

    >>> import tempfile
    >>> from datetime import UTC
    >>> from retrainer.adapters.sources import CallableSource
    >>> from retrainer.config import parse_config
    >>> from retrainer.core.clock import SimulatedClock
    >>> from retrainer.engine.runs.run import execute_run
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=24 * 16)
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
    ...     project, clock=SimulatedClock(datetime(2024, 1, 16, tzinfo=UTC)), report=False)
    >>> result.summary.rows, result.drift.drifted_columns
    (72, ('x', '__prediction__'))
    >>> result.record.summary["window"]  # stored as JSON: summary.to_json()
    {'start': '2024-01-13T00:00:00+00:00', 'end': '2024-01-16T00:00:00+00:00'}
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
    frame, time_col = _current_frame(project, pipeline, start, end)
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
            pred = pipeline.predict(model, frame)  # once: drift, performance, concept drift
            output = output_of(pred, frame.index)
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
    elif mv.profile is None:
        findings.append(
            Finding(
                kind="no_profile",
                column=None,
                message=f"v{mv.version} has no reference profile; retrain to monitor drift",
            )
        )
    else:
        profile = Profile.from_dict(mv.profile)
        columns = window_columns(pipeline, frame, output)
        check = DriftCheck(
            **mcfg.drift.check_params(),
            prediction=PREDICTION_COLUMN if output is not None else None,
            target=target if target in frame.columns else None,  # labelled or not
        )
        drift = check.check(profile, columns, reference=_raw_reference(pipeline, model, mv))
        histograms = _histograms(profile, frame, columns)

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
            y_true = frame[target].to_numpy()
            errors = _errors(y_true, frame["prediction"].to_numpy(), _log_task(pipeline, y_true))
            concept = _concept_drift(
                project,
                pipeline,
                mv,
                frame[time_col].to_numpy(),
                errors,
                now,
                arrived=frame["feedback_timestamp"].to_numpy(),
                arrived_until=end,
            )
    elif has_target and pred is not None:
        times = frame[time_col].to_numpy()
        y_true = _labels(frame[target])  # rows whose label has not arrived: NaN
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
            errors = _errors(y_true, pred.y_pred, pipeline.task(frame))
            concept = _concept_drift(project, pipeline, mv, times, errors, now)
    elif not has_target:
        findings.append(
            Finding(
                kind="no_labels",
                column=target,
                message="the window has no labels: performance and concept drift not computed",
            )
        )
    summary = MonitorSummary(
        pipeline=pipeline.name,
        version=mv.version,
        window=MonitorWindow(start=start.isoformat(), end=end.isoformat()),
        rows=len(frame),
        data=mcfg.data,
        drift=drift,
        findings=(*findings, *(drift.findings if drift else ())),
        performance=performance,
        concept_drift=concept,
        histograms=histograms,
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
                message=(
                    f"{pipeline.name}: {drift.n_drifted} of {drift.n_tested} features drifted "
                    f"({', '.join(drift.drifted_columns)})"
                ),
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
