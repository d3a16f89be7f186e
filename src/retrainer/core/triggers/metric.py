"""The online-metric threshold trigger."""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PlainValidator

from retrainer.core._spec import (
    Count,
    DefaultName,
    Duration,
    Flag,
    MetricName,
    OptionalNumber,
    PositiveNumber,
)
from retrainer.core.clock import as_utc
from retrainer.core.triggers.base import (
    EPOCH,
    Decision,
    MetricNeed,
    Needs,
    TriggerContext,
    TriggerSpec,
    _at_least,
    _decision,
    _iso,
    _json_safe,
    _spec_duration,
    _state_time,
)
from retrainer.errors import ConfigError

__all__ = ["MetricTrigger"]

_SOURCES = ("realized", "estimated")


def _source(value: Any) -> str:
    if value not in _SOURCES:
        raise ValueError(f"source must be 'realized' or 'estimated'; got {value!r}")
    return str(value)


Source = Annotated[
    Literal["realized", "estimated"],
    PlainValidator(_source, json_schema_input_type=Literal["realized", "estimated"]),
]


class MetricTrigger(TriggerSpec):
    """Fire when an online metric over the last ``over`` crosses a threshold.

    Thresholds (give at least one; any that is crossed counts):

    - ``below``/``above``: absolute, strict (``ctr < 0.0191``);
    - ``drop``/``rise``: change from the value measured after the last promotion
      (``TriggerContext.metric_at_promotion``), at least this much; in the metric's units, or a
      fraction of that value with ``relative=True`` (``drop=0.1, relative=True``: 10% lower).
      Without a baseline they are not judged (the evidence says so).

    A metric with ``status != "ok"`` or fewer than ``min_samples`` rows never fires.

    With ``source="estimated"`` the value is the champion's performance *estimated* before the
    labels arrive (CBPE for accuracy/F1/ROC AUC, DLE for MAE/RMSE: see
    :mod:`retrainer.core.estimation`), read from the latest monitor result (its window is
    ``monitor.window``; a result older than ``over`` is not used). The trigger then makes the
    pipeline's monitor run.

    One run per breach per window: after firing at ``t`` the trigger stays quiet until
    ``t + over``, so each firing judges a window that shares no data with the previous
    firing's; and it waits until a whole window has passed since the last promotion, so it
    never judges the new champion on rows the old one served. The slot is the evaluation time
    floored to ``over`` on a UTC grid starting 1970-01-01 (for ``over="7d"`` weeks start on
    Thursdays): re-evaluating after a crash gives the same slot, and no two firings share one.

    Parameters
    ----------
    metric
        Metric name (as in the monitor: ``"accuracy"``, a rate metric such as ``"ctr"``).
    below, above
        Absolute bounds; with both, ``below < above`` (fires outside the band).
    drop, rise
        Smallest change from the post-promotion value that fires, ``> 0``.
    relative
        Whether ``drop``/``rise`` are fractions of the post-promotion value.
    over
        The metric window, a duration such as ``"1d"``.
    min_samples
        Fewest rows the metric must rest on.
    source
        ``"realized"`` (the labelled rows) or ``"estimated"`` (before the labels arrive).
    name
        Defaults to ``"metric:<metric>"``.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from dataclasses import replace
    >>> from retrainer.core.triggers import MetricValue
    >>> trigger = MetricTrigger("ctr", below=0.0191, over="1d", min_samples=1000)
    >>> [need] = trigger.needs().metrics
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, 9, tzinfo=UTC), pipeline="ads",
    ...                      metrics={need: MetricValue(value=0.0173, n=5120, status="ok")})
    >>> d = trigger.evaluate(ctx)
    >>> d.fire, d.slot, d.reason
    (True, '2024-03-04T00:00:00+00:00', 'ctr 0.0173 < 0.0191 over 1d (n=5120)')
    >>> few = replace(ctx, metrics={need: MetricValue(value=None, n=80,
    ...                                               status="insufficient_data")})
    >>> trigger.evaluate(few).reason
    'ctr over 1d: insufficient data (n=80)'
    """

    kind: ClassVar[str] = "metric"
    example = {"metric": "ctr", "below": 0.0191, "over": "1d", "min_samples": 1000}
    layout = "flat"
    always = frozenset({"over"})

    metric: MetricName
    below: OptionalNumber = None
    above: OptionalNumber = None
    drop: PositiveNumber = None
    rise: PositiveNumber = None
    relative: Flag = False
    over: Duration = "1d"
    min_samples: Count = 1
    source: Source = "realized"
    name: DefaultName = Field(None, validate_default=True)

    def default_name(self) -> str:
        """``metric:<metric>``."""
        return f"metric:{self.metric}"

    def _check(self, values: dict[str, Any]) -> None:
        owner = "MetricTrigger"
        below, above = values["below"], values["above"]
        if below is not None and above is not None and below >= above:
            raise ConfigError(
                f"{owner} for {self.metric!r}: below must be less than above (it fires "
                f"outside [below, above]); got below={self.below!r}, above={self.above!r}"
            )
        if all(v is None for v in (self.below, self.above, self.drop, self.rise)):
            raise ConfigError(
                f"{owner} for {self.metric!r} needs a threshold: below, above, drop or rise; "
                "got none"
            )
        if self.relative and self.drop is None and self.rise is None:
            raise ConfigError(
                f"{owner}.relative applies to drop and rise, and {self.metric!r} has neither"
            )

    def _need(self) -> MetricNeed:
        values = self.checked()
        return MetricNeed(
            metric=self.metric,
            over=values["over"],
            min_samples=self.min_samples,
            source=self.source,
        )

    def needs(self) -> Needs:
        """The one metric this trigger reads (an estimate: from the monitor's result)."""
        return Needs(metrics=(self._need(),), monitor=self.source == "estimated")

    def describe(self) -> str:
        """The first threshold and the window.

        Examples
        --------
        >>> MetricTrigger("accuracy", drop=0.02, over="3d").describe()
        'accuracy drops 2 pts over 3d'
        >>> MetricTrigger("ctr", drop=0.1, relative=True).describe()
        'ctr drops 10% over 1d'
        >>> MetricTrigger("ctr", below=0.0191).describe()
        'ctr < 0.0191 over 1d'

        A change of a metric that is not a share (MAE, RMSE, log loss) is in its units:

        >>> MetricTrigger("mae", rise=1.5, over="3d").describe()
        'mae rises 1.5 over 3d'
        """
        from retrainer.core.metrics import in_points

        over = f" over {_spec_duration(self.over)}"
        if self.source == "estimated":
            over += " (estimated)"
        for amount, word in ((self.drop, "drops"), (self.rise, "rises")):
            if amount is not None:
                if self.relative:
                    return f"{self.metric} {word} {amount * 100:g}%{over}"
                if in_points(self.metric):
                    return f"{self.metric} {word} {amount * 100:g} pts{over}"
                return f"{self.metric} {word} {amount:g}{over}"
        for bound, word in ((self.below, "<"), (self.above, ">")):
            if bound is not None:
                return f"{self.metric} {word} {bound:g}{over}"
        return f"{self.metric}{over}"  # pragma: no cover (a threshold is required)

    def _conditions(self, value: float, baseline: float | None) -> list[dict[str, Any]]:
        m = self.metric
        rows: list[dict[str, Any]] = []
        if self.below is not None:
            rows.append(
                {
                    "condition": "below",
                    "threshold": self.below,
                    "met": value < self.below,
                    "text": f"{m} {value:.4g} < {self.below:g}",
                }
            )
        if self.above is not None:
            rows.append(
                {
                    "condition": "above",
                    "threshold": self.above,
                    "met": value > self.above,
                    "text": f"{m} {value:.4g} > {self.above:g}",
                }
            )
        for kind, bound, sign, word in (
            ("drop", self.drop, 1.0, "below"),
            ("rise", self.rise, -1.0, "above"),
        ):
            if bound is None:
                continue
            row: dict[str, Any] = {"condition": kind, "threshold": bound, "relative": self.relative}
            if baseline is None or not math.isfinite(baseline):
                row.update(met=False, note="no value measured after the last promotion")
            elif self.relative and baseline == 0:
                row.update(met=False, note="the value after the last promotion is 0")
            else:
                change = sign * (baseline - value)
                if self.relative:
                    change /= abs(baseline)
                    amount, limit = f"{change * 100:.3g}%", f"{bound * 100:g}%"
                else:
                    amount, limit = f"{change:.4g}", f"{bound:g}"
                row.update(
                    change=change,
                    met=_at_least(change, bound),
                    text=(
                        f"{m} {value:.4g} is {amount} {word} {baseline:.4g} after the last "
                        f"promotion ({kind} >= {limit})"
                    ),
                )
            rows.append(row)
        return rows

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Judge the metric over the last ``over``; see the class for when it fires."""
        need = self._need()
        over = need.over
        now = as_utc(ctx.now)
        over_text = _spec_duration(self.over)
        measured = ctx.metrics.get(need)
        raw_baseline = ctx.metric_at_promotion.get(self.metric)
        baseline = None if raw_baseline is None else float(raw_baseline)
        evidence: dict[str, Any] = {
            "metric": self.metric,
            "over": over_text,
            "window_start": _iso(now - over),
            "window_end": _iso(now),
            "min_samples": self.min_samples,
            "value": None,
            "n": None,
            "status": None,
            "baseline": _json_safe(baseline),
        }
        if self.source == "estimated":
            evidence["source"] = "estimated"
        state: dict[str, Any] = {"last_fired_at": ctx.state.get("last_fired_at")}
        label = f"{self.metric} over {over_text}"
        if self.source == "estimated":
            label = f"estimated {label}"

        status: str
        if measured is None:
            status, reason = "insufficient_data", f"{label}: not measured"
        else:
            value = measured.value
            evidence.update(value=_json_safe(value), n=measured.n, status=measured.status)
            if measured.status == "undefined" or (value is not None and math.isnan(value)):
                status, reason = "undefined", f"{label}: undefined (n={measured.n})"
            elif measured.status != "ok" or value is None:
                status = "insufficient_data"
                reason = f"{label}: insufficient data (n={measured.n})"
            elif measured.n < self.min_samples:
                status = "insufficient_data"
                reason = (
                    f"{label}: insufficient data (n={measured.n} < min_samples={self.min_samples})"
                )
            else:
                status, reason = "ok", ""
        if status != "ok" or measured is None or measured.value is None:
            return _decision(
                ctx,
                self.name,
                fire=False,
                active=False,
                slot=None,
                reason=reason,
                evidence=evidence,
                state=state,
                status=status,
                watching=False,
            )

        value = float(measured.value)
        conditions = self._conditions(value, baseline)
        evidence["conditions"] = [{k: v for k, v in c.items() if k != "text"} for c in conditions]
        met = [c for c in conditions if c["met"]]
        if not met:
            return _decision(
                ctx,
                self.name,
                fire=False,
                active=False,
                slot=None,
                reason=f"{self.metric} {value:.4g} over {over_text} (n={measured.n}): "
                "no threshold crossed",
                evidence=evidence,
                state=state,
                status="ok",
                watching=True,
            )

        reason = f"{'; '.join(c['text'] for c in met)} over {over_text} (n={measured.n})"
        if self.source == "estimated":
            reason = f"estimated {reason}"
        last_fired = _state_time(ctx.state, "last_fired_at")
        promoted = as_utc(ctx.last_promotion) if ctx.last_promotion is not None else None
        hold = ""
        if last_fired is not None and now < last_fired + over:
            hold = f"; fired at {_iso(last_fired)}, next judged from {_iso(last_fired + over)}"
        elif promoted is not None and now - over < promoted:
            hold = (
                f"; waiting for a full {over_text} after the promotion at {_iso(promoted)}: "
                f"judged from {_iso(promoted + over)}"
            )
        fire = not hold
        if fire:
            state["last_fired_at"] = _iso(now)
        slot = EPOCH + ((now - EPOCH) // over) * over
        return _decision(
            ctx,
            self.name,
            fire=fire,
            active=True,
            slot=_iso(slot),
            reason=reason + hold,
            evidence=evidence,
            state=state,
            status="breach",
            watching=True,
        )
