"""A pipeline's health at a glance: green, amber or red, with the reasons in words.

What the dashboard's overview shows per pipeline. Two pure pieces:

- :func:`open_alerts`: the alerting events (a failed run, a rejected candidate, drift, a
  rollback...) that no later event has resolved (a run that succeeded, a candidate blessed, a
  window without drift, a promotion);
- :func:`assess`: the level and its reasons from what the engine gathered (champion, online
  metric now and at promotion, the thresholds of the metric triggers, drift, open alerts).

Red means someone should act (nothing serves, a critical alert is open, a metric is past a
trigger's threshold); amber means watch (a warning is open, the metric fell clearly below its
value at promotion); green says why all is well. The level is always written out with its
reasons, so colour is never the only signal.

Examples
--------
>>> from datetime import UTC, datetime
>>> from retrainer.core.types import Event
>>> at = lambda day: datetime(2024, 1, day, tzinfo=UTC)
>>> events = [
...     Event(kind="run.failed", at=at(1), message="p: run 1 failed: boom", run_id=1),
...     Event(kind="drift.detected", at=at(2), message="p: 2 of 5 features drifted"),
...     Event(kind="run.succeeded", at=at(3), message="p: run 2 succeeded", run_id=2),
... ]
>>> [e.kind for e in open_alerts(events, {"run.failed": "critical", "drift.detected": "warning"})]
['drift.detected']
>>> h = assess(champion=3, metric=MetricStatus(name="accuracy", now=0.70, at_promotion=0.80,
...            greater_is_better=True), open_alerts=[])
>>> h.level, h.reasons[0]
('amber', 'accuracy 70.0% now, 80.0% at promotion (12.5% worse)')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from retrainer.core.types import Event

__all__ = [
    "DECLINE",
    "DEFAULT_SEVERITIES",
    "HEALTH_SEVERITIES",
    "RESOLVED_BY",
    "Health",
    "Level",
    "MetricStatus",
    "assess",
    "format_metric",
    "open_alerts",
]

Level = Literal["green", "amber", "red"]

DECLINE = 0.05
"""A metric this much worse than at promotion (a fraction of that value) makes a pipeline
amber: less is within the usual gap between a holdout and live traffic."""

DEFAULT_SEVERITIES: Mapping[str, str] = MappingProxyType(
    {
        "blessing.rejected": "warning",
        "concept_drift.detected": "warning",
        "drift.detected": "warning",
        "model.load_failed": "critical",
        "model.promoted": "info",
        "model.rolled_back": "warning",
        "rollout.promoted": "info",
        "rollout.rejected": "info",
        "rollout.rolled_back": "critical",
        "run.failed": "critical",
        "trigger.fired": "info",
    }
)
"""The event kinds that alert by default, with their severity (the alerter's defaults)."""

HEALTH_SEVERITIES: Mapping[str, str] = MappingProxyType(
    {**DEFAULT_SEVERITIES, "monitor.failed": "warning"}
)
"""What counts against a pipeline's health: the alerting kinds, and a failing monitor."""

RESOLVED_BY: Mapping[str, tuple[str, ...]] = {
    "run.failed": ("run.succeeded",),
    "blessing.rejected": ("blessing.passed",),
    "drift.detected": ("monitor.completed",),  # a later window without drift
    "concept_drift.detected": ("monitor.completed",),
    "monitor.failed": ("monitor.completed",),
    "model.load_failed": ("model.promoted", "model.rolled_back"),
    "model.rolled_back": ("model.promoted",),
    "rollout.rolled_back": ("model.promoted", "rollout.started"),
}
"""For each alerting kind, the later events that close it (see :func:`open_alerts`)."""


def _resolves(later: Event, alert: Event) -> bool:
    if later.kind not in RESOLVED_BY.get(alert.kind, ()):
        return False
    if later.kind != "monitor.completed" or alert.kind == "monitor.failed":
        return True
    # a monitor window closes a drift alert only when it saw no such drift
    data = later.data or {}
    if alert.kind == "drift.detected":
        return data.get("drifted") is False
    return data.get("concept_drift") is False


def open_alerts(events: Sequence[Event], severities: Mapping[str, str]) -> list[Event]:
    """The events of an alerting kind (``severities`` other than ``info``) that no later event
    of ``events`` resolves (:data:`RESOLVED_BY`), oldest first; one per kind, the newest.

    ``events`` are one pipeline's, oldest first (what ``list_events`` returns).
    """
    newest: dict[str, Event] = {}
    for e in events:
        if severities.get(e.kind, "info") != "info" and e.kind in RESOLVED_BY:
            newest[e.kind] = e
    out = []
    for alert in newest.values():
        after = False
        for later in events:
            if later is alert:
                after = True
            elif after and _resolves(later, alert):
                break
        else:
            out.append(alert)
    return sorted(out, key=lambda e: (e.at, e.id or 0))


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricStatus:
    """A pipeline's headline metric: ``now`` (the last online window), at promotion (the
    champion's holdout figure) and the thresholds of its metric triggers (``below``/``above``
    absolute bounds; None when not set)."""

    name: str
    now: float | None
    at_promotion: float | None = None
    greater_is_better: bool = True
    below: float | None = None
    above: float | None = None
    in_points: bool = True
    """Whether values read as percentages (a share between 0 and 1)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    """The level and its reasons, most important first."""

    level: Level
    reasons: tuple[str, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)


def format_metric(value: float | None, in_points: bool = True) -> str:
    """``0.7534`` as ``75.3%`` for a share, else 4 significant digits; None as ``-``.

    >>> format_metric(0.7534), format_metric(12.25, in_points=False), format_metric(None)
    ('75.3%', '12.25', '-')
    """
    if value is None:
        return "-"
    return f"{value:.1%}" if in_points else f"{value:.4g}"


def _metric_reasons(m: MetricStatus) -> tuple[list[str], list[str], str | None]:
    """(red reasons, amber reasons, the green sentence) of the headline metric."""
    if m.now is None:
        return [], [], None
    now = format_metric(m.now, m.in_points)
    red = []
    if m.below is not None and m.now < m.below:
        red.append(f"{m.name} {now} is below the trigger's {format_metric(m.below, m.in_points)}")
    if m.above is not None and m.now > m.above:
        red.append(f"{m.name} {now} is above the trigger's {format_metric(m.above, m.in_points)}")
    amber = []
    text = f"{m.name} {now} now"
    if m.at_promotion is not None:
        text += f", {format_metric(m.at_promotion, m.in_points)} at promotion"
        base = abs(m.at_promotion)
        worse = (m.at_promotion - m.now) if m.greater_is_better else (m.now - m.at_promotion)
        if base > 0 and worse / base > DECLINE:
            amber.append(f"{text} ({worse / base:.1%} worse)")
    return red, amber, text


def assess(
    *,
    champion: int | None,
    metric: MetricStatus | None = None,
    open_alerts: Sequence[Event] = (),
    severities: Mapping[str, str] | None = None,
    drifted_columns: Sequence[str] | None = None,
) -> Health:
    """The pipeline's level with its reasons.

    ``open_alerts`` come from :func:`open_alerts`; ``severities`` ranks them (default:
    :data:`HEALTH_SEVERITIES`);
    ``drifted_columns`` are those of the last monitor window (None: not monitored).

    Examples
    --------
    >>> assess(champion=None).reasons
    ('no champion: nothing is served',)
    >>> assess(champion=2, drifted_columns=[]).level
    'green'
    """
    sev = HEALTH_SEVERITIES if severities is None else severities
    red: list[str] = []
    amber: list[str] = []
    if champion is None:
        red.append("no champion: nothing is served")
    for alert in reversed(open_alerts):  # newest first
        text = alert.message
        if alert.pipeline and text.startswith(f"{alert.pipeline}: "):
            text = text[len(alert.pipeline) + 2 :]
        (red if sev.get(alert.kind) == "critical" else amber).append(text)
    green: list[str] = []
    if metric is not None:
        r, a, sentence = _metric_reasons(metric)
        red += r
        amber += a
        if sentence:
            green.append(sentence)
    if drifted_columns:
        if not any(a.kind == "drift.detected" for a in open_alerts):
            amber.append("drift in " + ", ".join(drifted_columns[:4]))
    elif drifted_columns is not None:
        green.append("no drift in the last window")
    if red:
        return Health(level="red", reasons=tuple(red + amber))
    if amber:
        return Health(level="amber", reasons=tuple(amber))
    if champion is not None:
        green.insert(0, f"v{champion} serving")
    return Health(level="green", reasons=tuple(green))
