"""One pipeline's page: its metric over time, drift, trigger evaluations, runs, versions and
rollout, as JSON-ready data.

Every list is a page: triggers and runs by cursor (``before``: the oldest id shown), versions
by page number (newest first). The metric over time is computed from the prediction and
feedback log by window (:func:`~retrainer.engine.monitoring.online.online_performance`), or
taken from the monitor's brief when the pipeline logs nothing.

Examples
--------
>>> from retrainer.testing import in_memory_project
>>> page = pipeline_page(in_memory_project(), "toy")
>>> page["row"].champion, page["runs"]["items"], page["metric"]["points"]
(None, [], [])
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from retrainer.core.clock import as_utc
from retrainer.core.types import CHAMPION
from retrainer.core.windows import parse_duration
from retrainer.engine.dashboard.overview import (
    headline_metric,
    metric_thresholds,
    next_fire,
    pipeline_row,
)
from retrainer.engine.project import Project
from retrainer.engine.runs.views import alias_move_view, event_view, run_view, version_view
from retrainer.errors import ModelNotFoundError

__all__ = ["MARKERS", "pipeline_page", "run_page", "threshold_lines"]

MARKERS: dict[str, str] = {
    "run.succeeded": "retrain",
    "blessing.passed": "blessed",
    "blessing.rejected": "rejected",
    "model.promoted": "promoted",
    "model.rolled_back": "rolled back",
}
"""The events drawn on the metric chart, with their legend names."""

WINDOWS = 90
"""How many metric windows the chart spans (ending at the newest logged prediction)."""


def _known(project: Project, pipeline: str) -> Any:
    for cfg in project.config.pipelines:
        if cfg.name == pipeline:
            return cfg
    raise ModelNotFoundError(f"no pipeline {pipeline!r} in this project")


def _naive(at: datetime) -> datetime:
    return as_utc(at).replace(tzinfo=None)


def threshold_lines(
    thresholds: list[dict[str, Any]], at_promotion: float | None
) -> list[dict[str, Any]]:
    """Where each metric trigger fires, as values to draw: ``below``/``above`` as they are,
    ``drop``/``rise`` from the champion's figure at promotion (the trigger's baseline).

    >>> threshold_lines([{"name": "m", "below": 0.6, "above": None, "drop": 0.1,
    ...                   "rise": None, "relative": True}], 0.8)
    [{'label': 'm: below 0.6', 'value': 0.6}, {'label': 'm: drop 10% from 0.8', 'value': 0.72}]
    """
    out = []
    for t in thresholds:
        for key in ("below", "above"):
            if t[key] is not None:
                out.append({"label": f"{t['name']}: {key} {t[key]:g}", "value": t[key]})
        for key, sign in (("drop", -1), ("rise", 1)):
            if t[key] is None or at_promotion is None:
                continue
            change = t[key] * abs(at_promotion) if t["relative"] else t[key]
            amount = f"{t[key]:.0%}" if t["relative"] else f"{t[key]:g}"
            out.append(
                {
                    "label": f"{t['name']}: {key} {amount} from {at_promotion:.4g}",
                    "value": round(at_promotion + sign * change, 12),
                }
            )
    return out


def metric_series(
    project: Project, cfg: Any, now: datetime, at_promotion: float | None = None
) -> dict[str, Any]:
    """The headline metric per window from the log (or the monitor's brief), the thresholds
    of the metric triggers (and where they fire, from ``at_promotion``: the champion's
    figure) and the events to mark on it."""
    from retrainer.engine.monitoring.online import online_performance
    from retrainer.engine.monitoring.recent import recent

    name, greater = headline_metric(cfg)
    every = cfg.monitor.performance.every
    step = parse_duration(every)
    points: list[dict[str, Any]] = []
    source = "log"
    logs = project.log_store()
    days = logs.days("predictions")
    if days:
        last = min(_naive(now), datetime.combine(days[-1], datetime.min.time()) + timedelta(1))
        start = last - WINDOWS * step
        windows = online_performance(
            logs,
            cfg.name,
            [name],
            start=start,
            end=last,
            every=every,
            now=_naive(now),
            min_samples=cfg.monitor.performance.min_samples,
        )
        points = [
            {
                "start": as_utc(w.start).isoformat(),
                "end": as_utc(w.end).isoformat(),
                "n": w.n_rows,
                "labelled": w.n_labelled,
                "value": w.value(name),
            }
            for w in windows
            if w.n_rows
        ]
    if not points:
        source = "monitor"
        points = [
            {
                "start": w["start"],
                "end": w["end"],
                "n": w["n"],
                "labelled": w["labelled"],
                "value": w["metrics"].get(name),
            }
            for w in recent(project.store, cfg.name)["windows"]
        ]
    thresholds = [t for t in metric_thresholds(cfg) if t["metric"] == name]
    markers = []
    if points:
        # only the events in the span drawn: a promotion made today on a replayed history
        # would stretch the axis over the years in between
        since = as_utc(datetime.fromisoformat(points[0]["start"]))
        until = as_utc(datetime.fromisoformat(points[-1]["end"]))
        found = project.store.list_events(
            cfg.name, since=since, until=until, kinds=list(MARKERS), limit=500
        )
        markers = [
            {
                "at": e.at.isoformat(),
                "kind": e.kind,
                "label": MARKERS[e.kind],
                "version": e.version,
                "message": e.message,
            }
            for e in found
        ]
    return {
        "name": name,
        "greater_is_better": greater,
        "every": every,
        "source": source,
        "points": points,
        "thresholds": thresholds,
        "lines": threshold_lines(thresholds, at_promotion),
        "markers": markers,
    }


def _drift_label(row: dict[str, Any]) -> str:
    """A drift row's name as people read it: the model's output and the target say so."""
    role = row.get("role")
    if role == "prediction":
        return "model output"
    return f"{row['feature']} (target)" if role == "target" else str(row["feature"])


def drift_grid(project: Project, pipeline: str, windows: int = 30) -> dict[str, Any]:
    """Feature x monitor window: the Jensen-Shannon distance (an effect size comparable across
    features), the method's statistic and the verdict, for the last ``windows`` windows."""
    records = project.store.list_monitor_results(pipeline, limit=windows)
    ends: list[str] = []
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    verdicts = []
    for rec in records:
        drift = (rec.summary or {}).get("drift")
        if not drift:
            continue
        end = rec.window_end.isoformat()
        ends.append(end)
        verdicts.append(
            {
                "end": end,
                "version": rec.version,
                "drifted": drift.get("drifted"),
                "n_drifted": drift.get("n_drifted"),
                "n_tested": drift.get("n_tested"),
                "columns": [_drift_label(r) for r in drift.get("rows", []) if r.get("drifted")],
            }
        )
        for row in drift.get("rows", []):
            cells.setdefault(_drift_label(row), {})[end] = {
                "distance": row.get("distance"),
                "statistic": row.get("statistic"),
                "method": row.get("method"),
                "p_value": row.get("adjusted_p_value", row.get("p_value")),
                "drifted": bool(row.get("drifted")),
                "note": row.get("note", ""),
            }
    features = list(cells)
    return {
        "windows": ends,
        "features": features,
        "cells": [[cells[f].get(end) for end in ends] for f in features],
        "verdicts": verdicts,
    }


def _run_item(run: Any, versions: dict[int, Any]) -> dict[str, Any]:
    item = run_view(run)
    item["duration"] = _duration(run)
    item["timings"] = _in_order(run.timings)
    mv = versions.get(run.version) if run.version is not None else None
    item["blessing"] = None
    if mv is not None:
        item["blessing"] = version_view(mv, [])["blessing"]
    return item


STEPS = (
    "load",
    "validate",
    "train",
    "train_cpu",
    "score",
    "profile",
    "update_holdout",
    "save",
    "sanity",
)
"""A run's steps in the order they run (the store keeps its timings by name)."""


def _in_order(timings: dict[str, float]) -> dict[str, float]:
    rank = {name: i for i, name in enumerate(STEPS)}
    return dict(sorted(timings.items(), key=lambda kv: (rank.get(kv[0], len(STEPS)), kv[0])))


def _duration(run: Any) -> float | None:
    """Seconds from start to finish; on a simulated clock (a backtest, the demo) the two are
    one instant, and the steps' own measured seconds add up to the run instead."""
    if not (run.started_at and run.finished_at):
        return None
    seconds = (run.finished_at - run.started_at).total_seconds()
    return seconds if seconds > 0 or not run.timings else float(sum(run.timings.values()))


def _cursor(items: list[Any], limit: int) -> int | None:
    """The ``before`` of the next (older) page: the oldest id shown, when the page is full."""
    return items[-1].id if len(items) == limit and items else None


_ROLLOUT_KINDS = [
    "rollout.started",
    "rollout.evaluated",
    "rollout.step",
    "rollout.promoted",
    "rollout.rejected",
    "rollout.rolled_back",
    "rollout.completed",
    "rollout.cancelled",
]
_ENDED = {
    "rollout.promoted": "promoted",
    "rollout.rejected": "rejected",
    "rollout.rolled_back": "rolled_back",
    "rollout.completed": "promoted",
    "rollout.cancelled": "cancelled",
}


def _looks(found: list[Any], candidate: int | None) -> list[dict[str, Any]]:
    looks: list[dict[str, Any]] = []
    for e in found:
        if e.version != candidate:
            continue
        data = e.data or {}
        test = data.get("test") or {}
        looks.append(
            {
                "at": e.at,
                "kind": e.kind,
                "share": data.get("share"),
                "n": min(test.get("n_champion") or 0, test.get("n_candidate") or 0),
                "n_champion": test.get("n_champion"),
                "n_candidate": test.get("n_candidate"),
                "mean_champion": test.get("mean_champion"),
                "mean_candidate": test.get("mean_candidate"),
                "difference": test.get("difference"),
                "low": test.get("low"),
                "high": test.get("high"),
                "outcome": test.get("outcome"),
            }
        )
    return looks


def rollout_history(project: Project, pipeline: str, limit: int = 20) -> list[dict[str, Any]]:
    """The pipeline's rollouts, newest first, from their events: candidate, champion,
    strategy, start, end and outcome."""
    found = project.store.list_events(pipeline, kinds=["rollout.started", *_ENDED], limit=limit * 3)
    out: dict[int, dict[str, Any]] = {}
    for e in found:
        if e.version is None:
            continue
        if e.kind == "rollout.started":
            data = e.data or {}
            out[e.version] = {
                "candidate": e.version,
                "champion": data.get("champion"),
                "strategy": (data.get("policy") or {}).get("strategy"),
                "started_at": e.at.isoformat(),
                "ended_at": None,
                "outcome": "running",
            }
        elif e.version in out and e.kind != "rollout.completed":
            out[e.version].update(ended_at=e.at.isoformat(), outcome=_ENDED[e.kind])
    return sorted(out.values(), key=lambda r: r["started_at"], reverse=True)[:limit]


def rollout_view(
    project: Project, cfg: Any, now: datetime, candidate: int | None = None
) -> dict[str, Any] | None:
    """The last rollout (or the earlier one of ``candidate``): its state, the test's looks
    over time (the confidence sequence), when a decision is expected, and the list of the
    pipeline's rollouts."""
    from retrainer.core.deploy import RolloutPolicy, build_policy
    from retrainer.core.rollout import ROLLOUT_KEY
    from retrainer.core.sequential import projected_decision

    stored = project.store.get_state(cfg.name, ROLLOUT_KEY)
    if stored is None:
        return None
    history = rollout_history(project, cfg.name)
    state = dict(stored[0])
    if candidate is not None and candidate != state.get("candidate"):
        earlier = next((r for r in history if r["candidate"] == candidate), None)
        if earlier is not None:  # an ended rollout: its figures are in its events
            state = {
                **earlier,
                "pipeline": cfg.name,
                "status": earlier["outcome"],
                "share": 0.0,
                "reason": "",
                "evidence": {},
            }
    started = datetime.fromisoformat(state["started_at"]) if state.get("started_at") else None
    found = project.store.list_events(cfg.name, since=started, kinds=_ROLLOUT_KINDS, limit=1000)
    looks = _looks(found, state.get("candidate"))
    if not state.get("evidence") and looks:
        last = next((x for x in reversed(found) if x.version == state.get("candidate")), None)
        state["evidence"] = {"test": (last.data or {}).get("test")} if last else {}
        state["reason"] = state.get("reason") or (last.message if last else "")
    expected = None
    if state.get("status") in ("running", "watching"):
        policy = build_policy(cfg.rollout) if cfg.rollout is not None else None
        deadline = max_samples = None
        if isinstance(policy, RolloutPolicy) and started is not None:
            span = policy.max_duration
            deadline = started + (span if isinstance(span, timedelta) else parse_duration(span))
            max_samples = policy.max_samples
        at, why = projected_decision(
            [x for x in looks if x["kind"] == "rollout.evaluated"],
            now=as_utc(now),
            deadline=deadline,
            max_samples=max_samples,
        )
        expected = {"at": at.isoformat() if at else None, "why": why}
    return {
        "state": state,
        "looks": [{**x, "at": x["at"].isoformat()} for x in looks],
        "expected": expected,
        "history": history,
    }


def pipeline_page(
    project: Project,
    pipeline: str,
    *,
    now: datetime | None = None,
    runs_before: int | None = None,
    triggers_before: int | None = None,
    versions_page: int = 1,
    rollout: int | None = None,
    page_size: int = 10,
) -> dict[str, Any]:
    """Everything the pipeline page shows (``ModelNotFoundError`` for an unknown pipeline)."""
    cfg = _known(project, pipeline)
    now = now or project.clock.now()
    store = project.store
    row = pipeline_row(project, cfg, next_fire(cfg, now))
    all_versions = store.list_versions(pipeline, profiles=False)
    by_number = {v.version: v for v in all_versions}
    aliases = store.aliases(pipeline)
    names: dict[int, list[str]] = {}
    for alias, v in aliases.items():
        names.setdefault(v, []).append(alias)
    newest = list(reversed(all_versions))
    pages = max(1, -(-len(newest) // page_size))
    versions_page = min(max(1, versions_page), pages)
    shown = newest[(versions_page - 1) * page_size : versions_page * page_size]
    runs = store.list_runs(pipeline, limit=page_size, before=runs_before)
    triggers = list(
        reversed(
            store.list_events(
                pipeline,
                kinds=["trigger.fired", "trigger.evaluated"],
                limit=page_size,
                before=triggers_before,
            )
        )
    )
    history = store.alias_history(pipeline)
    return {
        "pipeline": pipeline,
        "now": as_utc(now).isoformat(),
        "row": row,
        "metric": metric_series(project, cfg, now, row.metric.at_promotion if row.metric else None),
        "drift": drift_grid(project, pipeline),
        "triggers": {
            "items": [event_view(e) for e in triggers],
            "next_before": _cursor(triggers, page_size),
        },
        "runs": {
            "items": [_run_item(r, by_number) for r in runs],
            "next_before": _cursor(runs, page_size),
        },
        "versions": {
            "items": [version_view(v, names.get(v.version, [])) for v in shown],
            "page": versions_page,
            "pages": pages,
            "total": len(newest),
        },
        "aliases": aliases,
        "alias_history": [alias_move_view(m) for m in reversed(history[-page_size:])],
        "champion_history": [alias_move_view(m) for m in reversed(history) if m.alias == CHAMPION][
            :page_size
        ],
        "rollout": rollout_view(project, cfg, now, rollout),
    }


def run_page(project: Project, pipeline: str, run_id: int) -> dict[str, Any]:
    """One run: why it ran (its cause and the trigger's evidence), each step's duration, and
    the gate's evidence table for its candidate."""
    _known(project, pipeline)
    run = project.store.get_run(run_id)
    if run.pipeline != pipeline:
        raise ModelNotFoundError(f"run {run_id} is not a run of {pipeline}")
    version = None
    if run.version is not None:
        mv = project.store.get_version(pipeline, run.version)
        aliases = [a for a, v in project.store.aliases(pipeline).items() if v == run.version]
        version = version_view(mv, aliases)
    # the run's own events lie between its creation and its end (a day more for one running)
    until = (run.finished_at or run.created_at) + timedelta(days=1)
    found = project.store.list_events(pipeline, since=run.created_at, until=until, limit=5000)
    events = [event_view(e) for e in found if e.run_id == run_id]
    item = run_view(run)
    item["duration"] = _duration(run)
    item["timings"] = _in_order(run.timings)
    return {"pipeline": pipeline, "run": item, "version": version, "events": events[:100]}
