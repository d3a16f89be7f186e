"""A pipeline's retraining policy as the controller evaluates it: its triggers and guards
built from ``retrainer.yaml``, what they read (:class:`~retrainer.core.triggers.Needs`), and
the decisions that are not a trigger's own (a manual request)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from retrainer.core.triggers import (
    AnyOf,
    Decision,
    Guard,
    Needs,
    Trigger,
    build_guard,
    build_trigger,
)
from retrainer.engine.pipeline import Pipeline

__all__ = [
    "TriggerPolicy",
    "build_policy",
    "fired_by",
    "policy_needs",
    "requested_decision",
    "watches_monitor",
]


@dataclass
class TriggerPolicy:
    """A pipeline's triggers (one, or any of them) and guards, built once, with what they read."""

    trigger: Trigger
    guards: list[Guard]
    needs: Needs
    watches_monitor: bool

    @property
    def needs_rows(self) -> bool:
        return self.needs.rows


def build_policy(pipeline: Pipeline, *, exclude_schedules: bool = False) -> TriggerPolicy | None:
    """The pipeline's triggers (any of them fires) and guards, or None without triggers.

    ``exclude_schedules`` leaves out the top-level ``schedule`` triggers: an orchestrator's own
    schedule stands for them (:func:`retrainer.engine.runs.stages.decide`).
    """
    cfg = pipeline.config
    specs = [s for s in cfg.triggers if not (exclude_schedules and "schedule" in s)]
    if not specs:
        return None
    triggers = [build_trigger(spec) for spec in specs]
    trigger = triggers[0] if len(triggers) == 1 else AnyOf(*triggers)
    guards = [build_guard(spec) for spec in cfg.guards]
    needs = Needs.union([trigger.needs(), *(g.needs() for g in guards)])
    return TriggerPolicy(
        trigger=trigger,
        guards=guards,
        needs=needs,
        watches_monitor=watches_monitor(needs, cfg.window.kind),
    )


def policy_needs(triggers: Sequence[Any], guards: Sequence[Any] = ()) -> Needs:
    """What the triggers and guards of a configuration (their mappings) read."""
    return Needs.union(
        [*(build_trigger(t).needs() for t in triggers), *(build_guard(g).needs() for g in guards)]
    )


def watches_monitor(needs: Needs, window_kind: str | None) -> bool:
    """Whether a pipeline needs its monitor run: a drift or concept-drift trigger reads its
    results, and a ``since_change`` window its detector, whatever fires the run."""
    return needs.monitor or window_kind == "since_change"


def requested_decision(request: dict[str, Any]) -> Decision:
    """A manual request (``retrainer run --queue``) as a firing decision: slot = its id."""
    return Decision(
        fire=True,
        trigger="manual",
        slot=str(request["id"]),
        reason=f"manual request {request['id']} by {request.get('by', '?')}",
        evidence=dict(request),
    )


def fired_by(decision: Decision) -> str:
    """The trigger that made ``decision`` fire: the first firing child of a combinator."""
    for child in decision.evidence.get("children", ()) if decision.evidence else ():
        if isinstance(child, dict) and child.get("fire"):
            return str(child.get("trigger", decision.trigger))
    return decision.trigger
