"""Triggers on events: new rows, a code change, a manual request."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from retrainer.core._spec import (
    Count,
    DefaultName,
    Name,
    OptionalCount,
    PositiveNumber,
    is_int,
    names_of,
)
from retrainer.core.triggers.base import (
    Decision,
    Needs,
    TriggerContext,
    TriggerSpec,
    _decision,
    _iso,
    _json_safe,
)
from retrainer.errors import ConfigError, DataError

__all__ = ["CodeChangeTrigger", "ManualTrigger", "NewDataTrigger"]

_CODE_KEYS = ("pipeline_hash", "git_commit")
if TYPE_CHECKING:
    CodeKeys = tuple[str, ...] | list[str]
else:
    CodeKeys = names_of(_CODE_KEYS)


class NewDataTrigger(TriggerSpec):
    """Fire when enough rows arrived since the champion's training.

    The threshold is ``rows``, or ``fraction`` of the rows the champion was trained on; with
    both, the smaller. It fires once per batch of that many new rows: when the count since the
    training reaches 1x the threshold, again at 2x if no new model was trained meanwhile (say
    the candidate was not blessed), and so on; the slot is ``<last training>#<batch>``.

    Parameters
    ----------
    rows
        New rows that fire, ``>= 1``.
    fraction
        New rows as a fraction of ``training_rows`` that fire, ``> 0``.
    name
        Defaults to ``"new_data"``.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, tzinfo=UTC), pipeline="p",
    ...                      last_training=datetime(2024, 3, 1, tzinfo=UTC),
    ...                      rows_since_training=12_000, training_rows=50_000)
    >>> d = NewDataTrigger(rows=10_000).evaluate(ctx)
    >>> d.fire, d.slot
    (True, '2024-03-01T00:00:00+00:00#1')
    >>> d.reason
    '12000 new rows since the last training >= 10000 (rows=10000)'
    """

    kind: ClassVar[str] = "new_data"
    example = {"new_data": {"rows": 10_000}}

    rows: OptionalCount = None
    fraction: PositiveNumber = None
    name: DefaultName = Field(None, validate_default=True)

    def _check(self, values: dict[str, Any]) -> None:
        if self.rows is None and self.fraction is None:
            raise ConfigError("NewDataTrigger needs rows or fraction; got neither")

    def needs(self) -> Needs:
        """The row counts."""
        self.checked()
        return Needs(rows=True)

    def describe(self) -> str:
        """``500 new rows`` (or a fraction of the training rows).

        Examples
        --------
        >>> NewDataTrigger(rows=500).describe(), NewDataTrigger(fraction=0.1).describe()
        ('500 new rows', 'new rows 10% of the training rows')
        """
        if self.rows is not None:
            return f"{self.rows} new rows"
        return f"new rows {(self.fraction or 0) * 100:g}% of the training rows"

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Compare the rows since the training with the threshold; see the class."""
        self.checked()
        since = ctx.rows_since_training
        base = _iso(ctx.last_training) if ctx.last_training is not None else "untrained"
        thresholds: list[tuple[int, str]] = []
        if self.rows is not None:
            thresholds.append((self.rows, f"rows={self.rows}"))
        if self.fraction is not None and ctx.training_rows:
            thresholds.append(
                (
                    max(1, math.ceil(self.fraction * ctx.training_rows)),
                    f"fraction={self.fraction:g} of {ctx.training_rows} training rows",
                )
            )
        state: dict[str, Any] = {"base": ctx.state.get("base"), "batch": ctx.state.get("batch")}
        evidence: dict[str, Any] = {
            "rows_since_training": since,
            "training_rows": ctx.training_rows,
            "last_training": base,
            "rows": self.rows,
            "fraction": self.fraction,
        }
        if since is None or not thresholds:
            what = "rows since the last training" if since is None else "training rows"
            return _decision(
                ctx,
                self.name,
                fire=False,
                active=False,
                slot=None,
                reason=f"new data: {what} unknown",
                evidence=evidence,
                state=state,
                status="unknown",
                watching=False,
            )
        threshold, rule = min(thresholds)
        batch = since // threshold
        evidence.update(threshold=threshold, batch=batch)
        active = batch >= 1
        prev_batch = ctx.state.get("batch")
        new = ctx.state.get("base") != base or not is_int(prev_batch) or batch > prev_batch
        fire = active and new
        if fire:
            state = {"base": base, "batch": batch}
        comparison = ">=" if active else "<"
        reason = f"{since} new rows since the last training {comparison} {threshold} ({rule})"
        if active and batch > 1:
            reason += f", batch {batch}"
        if active and not new:
            reason += " (acted on already)"
        return _decision(
            ctx,
            self.name,
            fire=fire,
            active=active,
            slot=f"{base}#{batch}",
            reason=reason,
            evidence=evidence,
            state=state,
            status="enough" if active else "waiting",
            watching=True,
        )


class CodeChangeTrigger(TriggerSpec):
    """Fire when the code differs from the champion's: pipeline hash or git commit.

    A watched value that is unknown on either side (say, not in a git repository) is not
    compared. Without a champion it fires too, once, to train the first model. It fires once
    per code version; the slot is ``<pipeline hash>@<git commit>`` (the watched ones, ``-``
    for unknown).

    Parameters
    ----------
    watch
        Which of ``"pipeline_hash"`` and ``"git_commit"`` to compare (a commit that only
        touches documentation changes the commit, not the pipeline hash).
    name
        Defaults to ``"code_change"``.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, tzinfo=UTC), pipeline="p",
    ...                      code={"pipeline_hash": "b2", "git_commit": "c9"},
    ...                      champion_code={"pipeline_hash": "a1", "git_commit": "c9"})
    >>> d = CodeChangeTrigger().evaluate(ctx)
    >>> d.fire, d.slot, d.reason
    (True, 'b2@c9', 'code changed: pipeline_hash a1 -> b2')
    """

    kind: ClassVar[str] = "code_change"
    example = {"code_change": {"watch": ["pipeline_hash"]}}

    watch: CodeKeys = _CODE_KEYS
    name: DefaultName = Field(None, validate_default=True)

    def _check(self, values: dict[str, Any]) -> None:
        if not values["watch"]:
            raise ConfigError(
                f"CodeChangeTrigger.watch must name at least one of {', '.join(_CODE_KEYS)}"
            )

    def needs(self) -> Needs:
        """The code versions only (always gathered)."""
        self.checked()
        return Needs()

    def describe(self) -> str:
        """``code change`` (and what is watched when not both).

        Examples
        --------
        >>> CodeChangeTrigger().describe(), CodeChangeTrigger(watch=["git_commit"]).describe()
        ('code change', 'code change (git_commit)')
        """
        watch = tuple(self.watch) if isinstance(self.watch, list | tuple) else ()
        return "code change" + ("" if watch == _CODE_KEYS else f" ({', '.join(watch)})")

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Compare the current code with the champion's; see the class."""
        watch = list(self.checked()["watch"])
        current = {k: ctx.code.get(k) for k in watch}
        champion = ctx.champion_code
        slot = "@".join(current[k] or "-" for k in watch)
        evidence: dict[str, Any] = {
            "code": dict(current),
            "champion_code": {k: champion.get(k) for k in watch} if champion else None,
        }
        state: dict[str, Any] = {"last_slot": ctx.state.get("last_slot")}
        if all(v is None for v in current.values()):
            active, status, reason = False, "unknown", "code change: current code version unknown"
        elif champion is None:
            active, status = True, "no_champion"
            reason = "no champion yet: train the first model"
        else:
            diffs = [
                k
                for k in watch
                if current[k] is not None
                and champion.get(k) is not None
                and current[k] != champion.get(k)
            ]
            active = bool(diffs)
            status = "differs" if active else "same"
            if active:
                changes = ", ".join(f"{k} {champion.get(k)} -> {current[k]}" for k in diffs)
                reason = f"code changed: {changes}"
            else:
                reason = "code unchanged since the champion"
        fire = active and slot != ctx.state.get("last_slot")
        if fire:
            state["last_slot"] = slot
        elif active:
            reason += " (acted on already)"
        return _decision(
            ctx,
            self.name,
            fire=fire,
            active=active,
            slot=slot,
            reason=reason,
            evidence=evidence,
            state=state,
            status=status,
            watching=False,
        )


class ManualTrigger(TriggerSpec):
    """Fire for each manual request (``retrainer run``, the API); the slot is its id.

    One request per evaluation, the first pending one it has not fired for (the engine
    passes them oldest first); the ids of the last ``remember`` fired requests are kept in the
    state, so a request the engine has not cleared yet does not fire twice.

    Parameters
    ----------
    name
        Defaults to ``"manual"``.
    remember
        How many fired request ids the state keeps (raise it for an API that queues more
        requests than that between two evaluations).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from dataclasses import replace
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, tzinfo=UTC), pipeline="p",
    ...                      manual_requests=[{"id": "r-17", "at": "2024-03-04T00:00:00+00:00",
    ...                                        "by": "ana"}])
    >>> d = ManualTrigger().evaluate(ctx)
    >>> d.fire, d.slot, d.reason
    (True, 'r-17', 'manual request r-17 by ana at 2024-03-04T00:00:00+00:00')
    >>> ManualTrigger().evaluate(replace(ctx, state=d.state)).fire
    False
    """

    kind: ClassVar[str] = "manual"
    example = {"manual": {}}

    name: Name = "manual"
    remember: Count = 100

    def needs(self) -> Needs:
        """The pending requests only (always gathered)."""
        self.checked()
        return Needs()

    def describe(self) -> str:
        """``manual``."""
        return "manual"

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Fire for the first pending request not fired for yet."""
        self.checked()
        raw_handled = ctx.state.get("handled") or []
        handled = [str(h) for h in raw_handled]
        pending = []
        for request in ctx.manual_requests:
            if request.get("id") is None or request.get("id") == "":
                raise DataError(f"a manual request needs an 'id'; got {dict(request)!r}")
            if str(request["id"]) not in handled:
                pending.append(request)
        state: dict[str, Any] = {"handled": handled}
        if not pending:
            return _decision(
                ctx,
                self.name,
                fire=False,
                active=False,
                slot=None,
                reason="no pending manual request",
                evidence={"pending": 0},
                state=state,
                status="idle",
                watching=False,
            )
        request = pending[0]
        request_id = str(request["id"])
        state["handled"] = [*handled, request_id][-self.remember :]
        by = f" by {request['by']}" if request.get("by") else ""
        at = f" at {_json_safe(request['at'])}" if request.get("at") is not None else ""
        note = f": {request['reason']}" if request.get("reason") else ""
        return _decision(
            ctx,
            self.name,
            fire=True,
            active=True,
            slot=request_id,
            reason=f"manual request {request_id}{by}{at}{note}",
            evidence={"request": _json_safe(request), "pending": len(pending)},
            state=state,
            status="pending" if len(pending) > 1 else "idle",
            watching=False,
        )
