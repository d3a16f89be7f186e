"""The overview: one row per pipeline, with its health and the reasons in words.

Each row costs a handful of indexed reads (aliases, the champion, its last alias move, the last
run, the pipeline's state values, its recent alerting events); nothing parses a monitor window:
the metric and drift come from the monitor's brief (:mod:`retrainer.engine.monitoring.recent`).

Examples
--------
>>> from retrainer.testing import in_memory_project
>>> rows = overview(in_memory_project())
>>> [(r.pipeline, r.health.level, r.health.reasons) for r in rows]
[('toy', 'red', ('no champion: nothing is served',))]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from retrainer.config import PipelineConfig
from retrainer.core.health import (
    HEALTH_SEVERITIES,
    RESOLVED_BY,
    Health,
    MetricStatus,
    assess,
    open_alerts,
)
from retrainer.core.metrics import in_points
from retrainer.core.types import CHAMPION, Event, Run
from retrainer.engine.project import Project
from retrainer.engine.runs.registry import leaf_triggers, next_fire
from retrainer.engine.state import MONITOR_STATE_KEY

__all__ = [
    "PipelineRow",
    "alerting_events",
    "headline_metric",
    "metric_thresholds",
    "overview",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineRow:
    """One pipeline at a glance (a row of the overview)."""

    pipeline: str
    health: Health
    champion: int | None
    champion_since: datetime | None
    """When the champion alias last moved to it."""
    champion_metrics: dict[str, float] = field(default_factory=dict)
    metric: MetricStatus | None = None
    spark: list[tuple[str, float]] = field(default_factory=list)
    """The headline metric per monitor window, (window start, value), oldest first."""
    drift: dict[str, Any] | None = None
    """The last monitor run's drift verdict (``end``, ``drifted``, ``columns``, ``share``)."""
    last_run: Run | None = None
    next_fire: str | None = None
    rollout: dict[str, Any] | None = None
    """The last rollout as stored (``RolloutState.to_dict()``), None if never."""
    alerts: list[Event] = field(default_factory=list)


def metric_thresholds(cfg: PipelineConfig) -> list[dict[str, Any]]:
    """The metric triggers of ``cfg`` with their thresholds: ``metric``, ``below``, ``above``,
    ``drop``, ``rise``, ``relative``, ``over`` (what the pipeline page draws on its chart)."""
    from retrainer.core.triggers.metric import MetricTrigger

    out = []
    for trig in leaf_triggers(cfg):
        if isinstance(trig, MetricTrigger):
            out.append(
                {
                    "name": trig.name,
                    "metric": trig.metric,
                    "below": trig.below,
                    "above": trig.above,
                    "drop": trig.drop,
                    "rise": trig.rise,
                    "relative": trig.relative,
                    "over": trig.over,
                }
            )
    return out


def headline_metric(cfg: PipelineConfig) -> tuple[str, bool]:
    """The metric a pipeline is judged by, and whether greater is better: its first metric
    trigger's, else its first metric."""
    triggers = metric_thresholds(cfg)
    if triggers:
        name = triggers[0]["metric"]
    else:
        first = cfg.metrics[0]
        if not isinstance(first, str):
            return first.name, first.greater_is_better
        name = first
    from retrainer.core.performance import get_online_metric
    from retrainer.errors import ConfigError

    try:
        return name, get_online_metric(name).greater_is_better
    except ConfigError:  # a user metric named only in a trigger
        custom = [m for m in cfg.metrics if not isinstance(m, str) and m.name == name]
        return name, custom[0].greater_is_better if custom else True


def _metric_status(
    cfg: PipelineConfig, windows: Sequence[dict[str, Any]], at_promotion: dict[str, float]
) -> tuple[MetricStatus, list[tuple[str, float]]]:
    name, greater = headline_metric(cfg)
    spark = [(w["start"], w["metrics"][name]) for w in windows if name in w.get("metrics", {})]
    below = above = None
    for t in metric_thresholds(cfg):
        if t["metric"] == name:
            below = t["below"] if below is None else below
            above = t["above"] if above is None else above
    status = MetricStatus(
        name=name,
        now=spark[-1][1] if spark else None,
        at_promotion=at_promotion.get(name),
        greater_is_better=greater,
        below=below,
        above=above,
        in_points=in_points(name),
    )
    return status, spark


def alerting_events(store: Any, pipeline: str) -> list[Event]:
    """The newest event of each alerting kind, and the newest events that could close them:
    what :func:`~retrainer.core.health.open_alerts` needs, in a few indexed reads whatever the
    length of the trail (a frequent kind such as ``monitor.completed`` never crowds out a rare
    one)."""
    openers: dict[str, Event] = {}
    for e in reversed(store.list_events(pipeline, kinds=list(RESOLVED_BY), limit=50)):
        openers.setdefault(e.kind, e)
    found = list(openers.values())
    for kind in sorted({k for o in openers for k in RESOLVED_BY[o]}):
        found += store.list_events(pipeline, kinds=[kind], limit=1)
    return sorted(found, key=lambda e: e.id or 0)


def pipeline_row(project: Project, cfg: PipelineConfig, next_fire: str | None) -> PipelineRow:
    """The overview row of one pipeline."""
    store = project.store
    name = cfg.name
    # the champion is the version of its alias's last move (one read instead of two)
    moves = store.alias_history(name, CHAMPION, limit=1)
    champion = moves[-1].version if moves else None
    champ = store.get_version(name, champion, profile=False) if champion is not None else None
    since = moves[-1].at if champion is not None else None
    state = store.list_state(name)
    brief = state.get(MONITOR_STATE_KEY, {})
    metric, spark = _metric_status(
        cfg, brief.get("windows", []), dict(champ.metrics) if champ else {}
    )
    verdicts = brief.get("drift", [])
    drift = verdicts[-1] if verdicts else None
    alerts = open_alerts(alerting_events(store, name), HEALTH_SEVERITIES)
    health = assess(
        champion=champion,
        metric=metric,
        open_alerts=alerts,
        drifted_columns=None if drift is None else drift.get("columns", []),
    )
    runs = store.list_runs(name, limit=1)
    return PipelineRow(
        pipeline=name,
        health=health,
        champion=champion,
        champion_since=since,
        champion_metrics=dict(champ.metrics) if champ else {},
        metric=metric,
        spark=spark[-30:],
        drift=drift,
        last_run=runs[0] if runs else None,
        next_fire=next_fire,
        rollout=state.get("rollout"),
        alerts=alerts,
    )


def overview(
    project: Project, *, now: datetime | None = None, offset: int = 0, limit: int | None = None
) -> list[PipelineRow]:
    """The rows of the project's pipelines in config order, ``limit`` of them from ``offset``
    (the overview paginates)."""
    configs = project.config.pipelines[offset : None if limit is None else offset + limit]
    at = now or project.clock.now()
    return [pipeline_row(project, cfg, next_fire(cfg, at)) for cfg in configs]
