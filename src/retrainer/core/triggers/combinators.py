"""Triggers made of triggers: :class:`AnyOf` and :class:`AllOf`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from pydantic import Field

from retrainer.core._spec import DefaultName
from retrainer.core.triggers.base import (
    Decision,
    Needs,
    Trigger,
    TriggerContext,
    TriggerSpec,
    _decision,
)
from retrainer.errors import ConfigError

__all__ = ["AllOf", "AnyOf"]


class _Combinator(TriggerSpec):
    kind: ClassVar[str]
    layout = "list"

    # the children are checked by _validate (each validates its own parameters)
    triggers: tuple[Any, ...] = ()
    name: DefaultName = Field(None, validate_default=True)

    def __init__(self, *triggers: Trigger, name: str | None = None) -> None:
        super().__init__(triggers=triggers, name=name)

    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def default_name(self) -> str:
        """``<kind>(<child names>)``."""
        return f"{self.kind}({','.join(str(getattr(t, 'name', '?')) for t in self.triggers)})"

    def __repr__(self) -> str:
        inner = ", ".join([*(repr(t) for t in self.triggers), f"name={self.name!r}"])
        return f"{type(self).__name__}({inner})"

    def _validate(self) -> tuple[Trigger, ...]:
        owner = type(self).__name__
        self.checked()  # the name
        if not self.triggers:
            raise ConfigError(f"{owner} needs at least one trigger; got none")
        names = []
        for child in self.triggers:
            if not isinstance(child, Trigger):
                raise ConfigError(f"{owner} takes triggers; got {child!r}")
            child.needs()  # validates it
            names.append(child.name)
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(
                f"{owner} {self.name!r} has two triggers named {', '.join(map(repr, twice))}; "
                "give them distinct names (each keeps its own state)"
            )
        return self.triggers

    def needs(self) -> Needs:
        """What any child reads (metrics each once)."""
        return Needs.union([t.needs() for t in self._validate()])

    def describe(self) -> str:
        """The children's descriptions joined by the kind.

        Examples
        --------
        >>> from retrainer.core.triggers import DriftTrigger, NewDataTrigger
        >>> AnyOf(DriftTrigger(), NewDataTrigger(rows=500)).describe()
        '(data drift) any (500 new rows)'
        """
        return f" {self.kind} ".join(f"({t.describe()})" for t in self.triggers)

    def _children(self, ctx: TriggerContext) -> list[Decision]:
        states = ctx.state.get("children") or {}
        return [t.evaluate(replace(ctx, state=states.get(t.name) or {})) for t in self._validate()]

    @staticmethod
    def _evidence(decisions: Sequence[Decision]) -> list[dict[str, Any]]:
        return [
            {
                "trigger": d.trigger,
                "fire": d.fire,
                "active": d.active,
                "slot": d.slot,
                "reason": d.reason,
                "evidence": d.evidence,
            }
            for d in decisions
        ]

    def _result(
        self,
        ctx: TriggerContext,
        decisions: list[Decision],
        fire: bool,
        active: bool,
        reason: str,
        slot: str | None,
        watching: bool,
    ) -> Decision:
        return _decision(
            ctx,
            self.name,
            fire=fire,
            active=active,
            slot=slot,
            reason=reason,
            evidence={"children": self._evidence(decisions)},
            state={"children": {d.trigger: d.state for d in decisions}},
            status="; ".join(f"{d.trigger}={d.state.get('status')}" for d in decisions),
            watching=watching,
        )

    def to_spec(self) -> dict[str, Any]:
        """``{"any"|"all": [child specs]}`` (plus ``name`` if not the default)."""
        spec: dict[str, Any] = {self.kind: [t.to_spec() for t in self.triggers]}
        if self.name != self.default_name():
            spec["name"] = self.name
        return spec

    @classmethod
    def from_spec(
        cls,
        spec: Mapping[str, Any],
        where: str,
        build: Callable[..., Any] | None = None,
    ) -> _Combinator:
        """Build from ``{"any"|"all": [child specs], "name": ...}``; ``build`` reads a child."""
        children = spec[cls.kind]
        if isinstance(children, str | Mapping) or not isinstance(children, Sequence):
            raise ConfigError(f"{where}.{cls.kind} must be a list of triggers; got {children!r}")
        if build is None:
            raise TypeError("from_spec of a combinator needs build (build_trigger)")
        built = [build(c, where=f"{where}.{cls.kind}[{i}]") for i, c in enumerate(children)]
        params = {k: v for k, v in spec.items() if k != cls.kind}
        return cls(*built, **params)


class AnyOf(_Combinator):
    """Fire when any child fires (one run for all of them).

    Every child is evaluated and keeps its own state (under ``state["children"]``, by name,
    so children need distinct names). When several fire, the slot is the first firing child's
    (``<child>:<slot>``) and the others are acted on by the same run.

    Parameters
    ----------
    *triggers
        The children.
    name
        Defaults to ``"any(<child names>)"``.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from retrainer.core.triggers import ManualTrigger, NewDataTrigger
    >>> trigger = AnyOf(ManualTrigger(), NewDataTrigger(rows=100))
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, tzinfo=UTC), pipeline="p",
    ...                      rows_since_training=150)
    >>> d = trigger.evaluate(ctx)
    >>> d.trigger, d.fire, d.slot
    ('any(manual,new_data)', True, 'new_data:untrained#1')
    >>> [c["fire"] for c in d.evidence["children"]]
    [False, True]
    """

    kind: ClassVar[str] = "any"
    example = {"any": [{"drift": {}}, {"schedule": "@weekly"}]}

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Evaluate every child; fire if one fires."""
        decisions = self._children(ctx)
        firing = [d for d in decisions if d.fire]
        if firing:
            reason = f"{firing[0].trigger}: {firing[0].reason}"
            if len(firing) > 1:
                reason += f" (also firing: {', '.join(d.trigger for d in firing[1:])})"
        else:
            reason = "no trigger fires: " + "; ".join(f"{d.trigger}: {d.reason}" for d in decisions)
        slot = f"{firing[0].trigger}:{firing[0].slot}" if firing else None
        active = any(d.active for d in decisions)
        # watching when one child is: that child alone can fire
        watching = any(d.watching for d in decisions)
        return self._result(ctx, decisions, bool(firing), active, reason, slot, watching)


class AllOf(_Combinator):
    """Fire when every child's condition holds and at least one child fires.

    Conditions are levels (``Decision.active``: a due cron slot, a metric past its threshold,
    enough new rows...), firings are edges. ``AllOf(ScheduleTrigger("0 2 * * MON"),
    NewDataTrigger(rows=10_000))`` fires on Monday at 02:00 if 10,000 rows arrived since the
    last training, and not that week otherwise. A child's firing is acted on whether or not
    the others agree: the Monday slot above is not carried over to Tuesday. The slot joins
    the firing children's (``<child>:<slot>+...``).

    Parameters
    ----------
    *triggers
        The children.
    name
        Defaults to ``"all(<child names>)"``.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from retrainer.core.triggers import ManualTrigger, NewDataTrigger
    >>> trigger = AllOf(ManualTrigger(), NewDataTrigger(rows=100))
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, tzinfo=UTC), pipeline="p",
    ...                      rows_since_training=50, manual_requests=[{"id": "r1"}])
    >>> d = trigger.evaluate(ctx)
    >>> d.fire, d.reason
    (False, 'waiting for new_data: 50 new rows since the last training < 100 (rows=100)')
    >>> trigger.evaluate(replace(ctx, rows_since_training=150)).slot
    'manual:r1+new_data:untrained#1'
    """

    kind: ClassVar[str] = "all"
    example = {"all": [{"schedule": "0 2 * * MON"}, {"new_data": {"rows": 10_000}}]}

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Evaluate every child; fire if all hold and one fires."""
        decisions = self._children(ctx)
        inactive = [d for d in decisions if not d.active]
        firing = [d for d in decisions if d.fire]
        fire = not inactive and bool(firing)
        if fire:
            reason = "all hold: " + "; ".join(f"{d.trigger}: {d.reason}" for d in decisions)
        elif inactive:
            reason = "waiting for " + "; ".join(f"{d.trigger}: {d.reason}" for d in inactive)
        else:
            reason = "all hold, none fires anew: " + "; ".join(
                f"{d.trigger}: {d.reason}" for d in decisions
            )
        slot = "+".join(f"{d.trigger}:{d.slot}" for d in firing) if fire else None
        # watching only when every child is: one that waits for its input holds them all
        watching = all(d.watching for d in decisions)
        return self._result(ctx, decisions, fire, not inactive, reason, slot, watching)
