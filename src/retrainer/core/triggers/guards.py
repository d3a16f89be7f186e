"""Guards: hold a trigger's firing back (cooldown, max retrains per period, min new rows)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, ClassVar

from retrainer.core._spec import Count, Duration
from retrainer.core.clock import as_utc
from retrainer.core.triggers.base import (
    Decision,
    Guard,
    Needs,
    TriggerContext,
    TriggerSpec,
    _format_duration,
    _iso,
    _json_safe,
    _spec_duration,
)

__all__ = ["Cooldown", "MaxRetrains", "MinNewRows", "apply_guards"]


def _guard_entry(kind: str, passed: bool, reason: str, **values: Any) -> dict[str, Any]:
    return {"guard": kind, "passed": passed, "reason": reason, **_json_safe(values)}


def _allow(decision: Decision, entry: dict[str, Any]) -> Decision:
    evidence = dict(decision.evidence)
    evidence["guards"] = [*evidence.get("guards", ()), entry]
    return replace(decision, evidence=evidence)


def _hold(ctx: TriggerContext, decision: Decision, entry: dict[str, Any]) -> Decision:
    evidence = dict(decision.evidence)
    evidence["guards"] = [*evidence.get("guards", ()), entry]
    evidence["held_back"] = {"slot": decision.slot, "reason": decision.reason}
    status = f"blocked:{entry['guard']}"
    return Decision(
        fire=False,
        trigger=decision.trigger,
        slot=None,
        reason=f"{entry['reason']} (held back: {decision.reason})",
        evidence=evidence,
        state={**ctx.state, "status": status},
        changed=status != ctx.state.get("status"),
        active=decision.active,
        watching=decision.watching,
    )


class Cooldown(TriggerSpec):
    """Hold a firing back until ``period`` has passed since the last training or run.

    The reference is the latest of ``last_training`` and ``recent_runs``.

    Parameters
    ----------
    period
        A duration such as ``"6h"``.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> now = datetime(2024, 3, 4, 12, tzinfo=UTC)
    >>> ctx = TriggerContext(now=now, pipeline="p", recent_runs=[now - timedelta(hours=2)])
    >>> fired = Decision(fire=True, trigger="drift", slot="s", reason="drift")
    >>> held = Cooldown("6h").check(ctx, fired)
    >>> held.fire, held.reason
    (False, 'cooldown: last run 2h ago < 6h (held back: drift)')
    """

    kind: ClassVar[str] = "cooldown"
    layout = "value"
    example = {"cooldown": "6h"}

    period: Duration

    def lookback(self) -> timedelta:
        """``period``."""
        period: timedelta = self.checked()["period"]
        return period

    def needs(self) -> Needs:
        """The recent runs only (always gathered, over :meth:`lookback`)."""
        self.lookback()
        return Needs()

    def describe(self) -> str:
        """``cooldown 6h``."""
        return f"cooldown {_spec_duration(self.period)}"

    def check(self, ctx: TriggerContext, decision: Decision) -> Decision:
        """Hold ``decision`` back if it fires within ``period`` of the last training or run."""
        period = self.lookback()
        if not decision.fire:
            return decision
        now = as_utc(ctx.now)
        refs = []
        if ctx.last_training is not None:
            refs.append((as_utc(ctx.last_training), "last training"))
        if ctx.recent_runs:
            refs.append((max(as_utc(t) for t in ctx.recent_runs), "last run"))
        period_text = _spec_duration(self.period)
        if not refs:
            return _allow(
                decision, _guard_entry(self.kind, True, "cooldown: no training or run yet")
            )
        ref, label = max(refs)
        age = max(now - ref, timedelta(0))
        entry_values = {"period": period_text, "since": _iso(ref), "age": _format_duration(age)}
        if age < period:
            reason = f"cooldown: {label} {_format_duration(age, 2)} ago < {period_text}"
            return _hold(ctx, decision, _guard_entry(self.kind, False, reason, **entry_values))
        reason = f"cooldown: {label} {_format_duration(age, 2)} ago >= {period_text}"
        return _allow(decision, _guard_entry(self.kind, True, reason, **entry_values))


class MaxRetrains(TriggerSpec):
    """Hold a firing back once ``count`` runs were created in the last ``per``.

    Parameters
    ----------
    count
        Most runs allowed in any window of length ``per``, ``>= 1``.
    per
        A duration such as ``"1d"``.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> now = datetime(2024, 3, 4, 12, tzinfo=UTC)
    >>> runs = [now - timedelta(hours=h) for h in (1, 5, 9)]
    >>> ctx = TriggerContext(now=now, pipeline="p", recent_runs=runs)
    >>> fired = Decision(fire=True, trigger="drift", slot="s", reason="drift")
    >>> MaxRetrains(count=3, per="1d").check(ctx, fired).reason
    'max_retrains: 3 runs in the last 1d (limit 3) (held back: drift)'
    """

    kind: ClassVar[str] = "max_retrains"
    example = {"max_retrains": {"count": 3, "per": "1d"}}

    count: Count
    per: Duration

    def lookback(self) -> timedelta:
        """``per``."""
        per: timedelta = self.checked()["per"]
        return per

    def needs(self) -> Needs:
        """The recent runs only (always gathered, over :meth:`lookback`)."""
        self.lookback()
        return Needs()

    def describe(self) -> str:
        """``max 3 per 1d``."""
        return f"max {self.count} per {_spec_duration(self.per)}"

    def check(self, ctx: TriggerContext, decision: Decision) -> Decision:
        """Hold ``decision`` back if ``count`` runs already happened in the last ``per``."""
        per = self.lookback()
        if not decision.fire:
            return decision
        now = as_utc(ctx.now)
        recent = sum(1 for t in ctx.recent_runs if as_utc(t) > now - per)
        per_text = _spec_duration(self.per)
        values = {"runs": recent, "count": self.count, "per": per_text}
        if recent >= self.count:
            reason = f"max_retrains: {recent} runs in the last {per_text} (limit {self.count})"
            return _hold(ctx, decision, _guard_entry(self.kind, False, reason, **values))
        reason = f"max_retrains: {recent} of {self.count} runs in the last {per_text}"
        return _allow(decision, _guard_entry(self.kind, True, reason, **values))


class MinNewRows(TriggerSpec):
    """Hold a firing back until ``rows`` rows arrived since the champion's training.

    A pipeline never trained passes (its first model needs training); an unknown count
    holds the firing back.

    Parameters
    ----------
    rows
        Fewest new rows, ``>= 1``.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, tzinfo=UTC), pipeline="p",
    ...                      last_training=datetime(2024, 3, 1, tzinfo=UTC),
    ...                      rows_since_training=400)
    >>> fired = Decision(fire=True, trigger="schedule", slot="s", reason="due")
    >>> MinNewRows(1000).check(ctx, fired).reason
    'min_new_rows: 400 new rows since the last training < 1000 (held back: due)'
    """

    kind: ClassVar[str] = "min_new_rows"
    layout = "value"
    example = {"min_new_rows": 1000}

    rows: Count

    def lookback(self) -> timedelta:
        """Zero: it reads no runs."""
        self.checked()
        return timedelta(0)

    def needs(self) -> Needs:
        """The row counts."""
        self.checked()
        return Needs(rows=True)

    def describe(self) -> str:
        """``at least 1000 new rows``."""
        return f"at least {self.rows} new rows"

    def check(self, ctx: TriggerContext, decision: Decision) -> Decision:
        """Hold ``decision`` back if fewer than ``rows`` rows arrived since the training."""
        rows: int = self.checked()["rows"]
        if not decision.fire:
            return decision
        since = ctx.rows_since_training
        values = {"rows": rows, "rows_since_training": since}
        if ctx.last_training is None:
            reason = "min_new_rows: no model trained yet"
            return _allow(decision, _guard_entry(self.kind, True, reason, **values))
        if since is None:
            reason = "min_new_rows: rows since the last training unknown"
            return _hold(ctx, decision, _guard_entry(self.kind, False, reason, **values))
        if since < rows:
            reason = f"min_new_rows: {since} new rows since the last training < {rows}"
            return _hold(ctx, decision, _guard_entry(self.kind, False, reason, **values))
        reason = f"min_new_rows: {since} new rows since the last training >= {rows}"
        return _allow(decision, _guard_entry(self.kind, True, reason, **values))


def apply_guards(ctx: TriggerContext, decision: Decision, guards: Sequence[Guard]) -> Decision:
    """Run ``guards`` in order over a decision; the first that holds it back decides.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> now = datetime(2024, 3, 4, 12, tzinfo=UTC)
    >>> ctx = TriggerContext(now=now, pipeline="p", recent_runs=[now - timedelta(days=2)])
    >>> fired = Decision(fire=True, trigger="drift", slot="s", reason="drift")
    >>> d = apply_guards(ctx, fired, [Cooldown("6h"), MaxRetrains(count=1, per="1d")])
    >>> d.fire, [g["passed"] for g in d.evidence["guards"]]
    (True, [True, True])
    """
    for guard in guards:
        if not decision.fire:
            break
        decision = guard.check(ctx, decision)
    return decision
