"""Triggers on the monitor's findings: data drift and concept drift."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from retrainer.core._spec import ColumnNames, DefaultName, Share, is_int, is_number
from retrainer.core.clock import as_utc
from retrainer.core.triggers.base import (
    Decision,
    Needs,
    TriggerContext,
    TriggerSpec,
    _at_least,
    _decision,
    _iso,
    _json_safe,
    _state_time,
    _to_time,
)

__all__ = ["ConceptDriftTrigger", "DriftTrigger"]


def _stale(moment: datetime, ctx: TriggerContext) -> bool:
    """Whether a monitor finding predates the last promotion (it judged the previous model)."""
    return ctx.last_promotion is not None and moment <= as_utc(ctx.last_promotion)


class DriftTrigger(TriggerSpec):
    """Fire on a monitor result that shows data drift, once per monitor result.

    What counts as drift: with neither ``share`` nor ``features``, the monitor's own dataset
    verdict (``drifted``); with ``share``, a share of drifted features of at least ``share``
    (instead of the monitor's ``drift_share``); with ``features``, any of those columns
    drifting. With both, either counts. A result whose window ended at or before the last
    promotion is ignored (it judged the previous champion). Each result is judged once: the
    trigger fires on a result newer than the last one it saw, and the slot is that result's
    window end.

    Parameters
    ----------
    share
        Smallest share of drifted features that fires, in (0, 1].
    features
        Columns whose drift alone fires (predictions included, by their column name).
    name
        Defaults to ``"drift"``.

    Examples
    --------
    >>> from datetime import UTC
    >>> from dataclasses import replace
    >>> trigger = DriftTrigger(share=0.3)
    >>> report = {"drifted": False, "share_drifted": 0.4, "drifted_columns": ["x1", "x2"],
    ...           "window_end": "2024-03-04T00:00:00+00:00"}
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, 9, tzinfo=UTC), pipeline="p", drift=report)
    >>> d = trigger.evaluate(ctx)
    >>> d.fire, d.slot
    (True, '2024-03-04T00:00:00+00:00')
    >>> print(d.reason)  # doctest: +NORMALIZE_WHITESPACE
    drift in the monitor window ending 2024-03-04T00:00:00+00:00:
    share of drifted features 0.40 >= 0.3
    >>> trigger.evaluate(replace(ctx, state=d.state)).fire  # same result: acted on already
    False
    """

    kind: ClassVar[str] = "drift"
    example = {"drift": {"share": 0.5, "features": ["price"]}}

    share: Share = None
    features: ColumnNames = ()
    name: DefaultName = Field(None, validate_default=True)

    def needs(self) -> Needs:
        """The monitor's drift report, hence the reference profiles."""
        self.checked()
        return Needs(monitor=True, profiles=True)

    def describe(self) -> str:
        """``data drift`` (and what counts as drift when not the monitor's verdict).

        Examples
        --------
        >>> DriftTrigger().describe(), DriftTrigger(share=0.3, features=["price"]).describe()
        ('data drift', 'data drift (share >= 0.3, price)')
        """
        parts = [f"share >= {self.share:g}"] if self.share is not None else []
        parts += [str(f) for f in self.features]
        return "data drift" + (f" ({', '.join(parts)})" if parts else "")

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Judge the latest monitor result if it is new; see the class."""
        features = list(self.checked()["features"])
        report = ctx.drift
        state: dict[str, Any] = {"last_window_end": ctx.state.get("last_window_end")}
        if not report or report.get("window_end") is None:
            return _decision(
                ctx,
                self.name,
                fire=False,
                active=False,
                slot=None,
                reason="drift: no monitor result yet",
                evidence={"window_end": None},
                state=state,
                status="no_result",
                watching=False,
            )
        window_end = _to_time(report["window_end"], "drift['window_end']")
        drifted_columns = [str(c) for c in report.get("drifted_columns") or ()]
        raw_share = report.get("share_drifted")
        share_drifted = float(raw_share) if is_number(raw_share) else None
        dataset = bool(report.get("drifted"))
        found: list[str] = []
        if self.share is None and not features and dataset:
            shown = f" (share of drifted features {share_drifted:.2f})" if share_drifted else ""
            found.append(f"dataset drifted{shown}")
        if (
            self.share is not None
            and share_drifted is not None
            and _at_least(share_drifted, self.share)
        ):
            found.append(f"share of drifted features {share_drifted:.2f} >= {self.share:g}")
        hit = [f for f in features if f in drifted_columns]
        if hit:
            found.append(f"drifted: {', '.join(hit)}")
        last_seen = _state_time(ctx.state, "last_window_end")
        new = last_seen is None or window_end > last_seen
        stale = _stale(window_end, ctx)
        # a window without rows (or whose columns could not be tested) judged nothing
        raw_tested = report.get("n_tested")
        tested = int(raw_tested) if is_int(raw_tested) else None
        watching = tested is None or tested > 0
        active = bool(found) and not stale
        if new:
            state["last_window_end"] = _iso(window_end)
        evidence = {
            "window_end": _iso(window_end),
            "drifted": _json_safe(report.get("drifted")),
            "share_drifted": share_drifted,
            "drifted_columns": drifted_columns,
            "share": self.share,
            "features": list(features),
            "new_result": new,
            "n_tested": tested,
        }
        where = f"the monitor window ending {_iso(window_end)}"
        if stale:
            status = "stale"
            reason = f"drift: {where} predates the last promotion"
        elif found:
            status = "drifted"
            reason = f"drift in {where}: {'; '.join(found)}"
            if not new:
                reason += " (acted on already)"
        elif not watching:
            status = "untested"
            rows = report.get("n_cur")
            reason = (
                f"drift: no column tested in {where} ({rows if rows is not None else '?'} rows)"
            )
        else:
            status = "no_drift"
            share_text = f" (share {share_drifted:.2f})" if share_drifted is not None else ""
            reason = f"no drift in {where}{share_text}"
        return _decision(
            ctx,
            self.name,
            fire=active and new,
            active=active,
            slot=_iso(window_end),
            reason=reason,
            evidence=evidence,
            state=state,
            status=status,
            watching=watching,
        )


class ConceptDriftTrigger(TriggerSpec):
    """Fire on a new detection of the monitor's concept-drift detector (error stream).

    It fires once per detection newer than the last one it fired on, for the latest one if a
    monitor result holds several; the slot is its time (UTC ISO). Detections at or before the
    last promotion are ignored.

    Parameters
    ----------
    name
        Defaults to ``"concept_drift"``.

    Examples
    --------
    >>> from datetime import UTC
    >>> cd = {"drift_detected": True, "detections": ["2024-03-03T17:00:00"]}
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, tzinfo=UTC), pipeline="p", concept_drift=cd)
    >>> d = ConceptDriftTrigger().evaluate(ctx)
    >>> d.fire, d.slot
    (True, '2024-03-03T17:00:00+00:00')
    """

    kind: ClassVar[str] = "concept_drift"
    example = {"concept_drift": {}}

    name: DefaultName = Field(None, validate_default=True)

    def needs(self) -> Needs:
        """The monitor's concept-drift result."""
        self.checked()
        return Needs(monitor=True)

    def describe(self) -> str:
        """``concept drift``."""
        return "concept drift"

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Fire on a detection newer than the last one fired on."""
        self.checked()
        result = ctx.concept_drift or {}
        detections = sorted(
            _to_time(d, "concept_drift['detections'] item") for d in result.get("detections") or ()
        )
        last = _state_time(ctx.state, "last_detection")
        state: dict[str, Any] = {"last_detection": ctx.state.get("last_detection")}
        fresh = [d for d in detections if not _stale(d, ctx)]
        new = [d for d in fresh if last is None or d > last]
        raw_seen = result.get("rows_seen")
        seen = int(raw_seen) if is_int(raw_seen) else 0
        watching = bool(detections) or seen > 0
        evidence: dict[str, Any] = {
            "method": _json_safe(result.get("method")),
            "detections": [_iso(d) for d in detections],
            "new_detections": len(new),
            "rows_seen": seen,
        }
        if new:
            latest = new[-1]
            state["last_detection"] = _iso(latest)
            method = f" ({result['method']})" if result.get("method") else ""
            more = f"; {len(new)} new detections" if len(new) > 1 else ""
            reason = f"concept drift detected at {_iso(latest)}{method}{more}"
            fire, active, slot = True, True, _iso(latest)
        elif fresh:
            reason = f"concept drift detected at {_iso(fresh[-1])} (acted on already)"
            fire, active, slot = False, True, None
        elif detections:
            reason = "concept drift: the detections predate the last promotion"
            fire, active, slot = False, False, None
        elif watching:
            reason = f"concept drift: no detection in {seen} errors"
            fire, active, slot = False, False, None
        else:
            reason = "concept drift: no error seen yet (no monitor result, or no label arrived)"
            fire, active, slot = False, False, None
        return _decision(
            ctx,
            self.name,
            fire=fire,
            active=active,
            slot=slot,
            reason=reason,
            evidence=evidence,
            state=state,
            status="detected" if active else "none",
            watching=watching,
        )
