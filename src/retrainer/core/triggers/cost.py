"""The cost-aware trigger: retrain when what the champion's age has cost exceeds a retrain.

The rent-or-buy rule: keep paying the "rent" (the metric an ageing model loses) until what
was paid since the champion was trained exceeds the price of "buying" (a retrain: its CPU and
a fixed deployment cost); then buy. The loss by age is the backtest's time-to-degrade curve
(a prior), updated online by the drop measured since the promotion as labels arrive.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any, ClassVar

from pydantic import Field, PlainValidator, WithJsonSchema

from retrainer.core._spec import (
    Count,
    DefaultName,
    Duration,
    MetricName,
    NonNegative,
    Number,
    _optional_name,
)
from retrainer.core.clock import as_utc
from retrainer.core.triggers.base import (
    Decision,
    MetricNeed,
    Needs,
    TriggerContext,
    TriggerSpec,
    _decision,
    _iso,
    _json_safe,
    _spec_duration,
)
from retrainer.errors import ConfigError

__all__ = ["CostAwareTrigger", "curve_area", "curve_at"]

_DAY = timedelta(days=1)
ResultsFile = Annotated[
    str | None,
    PlainValidator(_optional_name),
    WithJsonSchema({"type": "string", "minLength": 1, "examples": ["backtest-out/results.json"]}),
]
CPU_RUNS = 3
"""How many of the latest retrains' CPU seconds are averaged into a retrain's cost."""


def curve_at(curve: Sequence[tuple[float, float]], age: float) -> float:
    """The loss of a degradation curve at ``age`` (days), linearly interpolated.

    ``curve`` holds ``(age in days, loss)`` pairs in ascending age; the loss is 0 at age 0,
    and stays at its last value past the last age.

    Examples
    --------
    >>> round(curve_at([(1.0, 0.01), (3.0, 0.03)], 2.0), 6)
    0.02
    >>> curve_at([(1.0, 0.01), (3.0, 0.03)], 0.5), curve_at([(1.0, 0.01)], 9.0)
    (0.005, 0.01)
    """
    prev_a, prev_v = 0.0, 0.0
    for a, v in curve:
        if age <= a:
            if a == prev_a:
                return float(v)
            return prev_v + (v - prev_v) * (age - prev_a) / (a - prev_a)
        prev_a, prev_v = float(a), float(v)
    return prev_v


def curve_area(curve: Sequence[tuple[float, float]], age: float) -> float:
    """The area under the curve's positive part from age 0 to ``age`` (loss x days).

    Examples
    --------
    >>> curve_area([(2.0, 0.02)], 2.0)  # a triangle: 2 days x 0.02 / 2
    0.02
    >>> round(curve_area([(2.0, 0.02)], 4.0), 6)  # then flat at 0.02
    0.06
    """
    points = [(0.0, 0.0)] + [(float(a), float(v)) for a, v in curve if 0 < a < age]
    points.append((age, curve_at(curve, age)))
    return sum(
        (a1 - a0) * (max(v0, 0.0) + max(v1, 0.0)) / 2
        for (a0, v0), (a1, v1) in itertools.pairwise(points)
    )


class CostAwareTrigger(TriggerSpec):
    """Fire when the value the champion lost since its training exceeds a retrain's cost.

    **Loss now** (in the metric's units, positive = worse) at the champion's age ``A`` (time
    since the end of its training window): the prior is the time-to-degrade curve at ``A``
    (``TriggerContext.degradation``, from a backtest's ``results.json`` named by ``curve``);
    the observation is the drop of the online ``metric`` over the last ``over`` from the value
    measured when the champion was trained (``metric_at_promotion``), once a whole ``over``
    has passed since the promotion and with at least ``min_samples`` labelled rows. With both,
    their blend ``(prior_rows x prior + n x observed) / (prior_rows + n)``: the more labels
    arrive, the more the observation counts. With one, that one; with neither, it waits.

    **Gain** since the training: the area under the loss from age 0 to ``A`` (the curve's
    shape scaled to pass through the loss now; without a curve, a straight line from 0), in
    point-days (a point is 0.01 of a rate such as accuracy, one unit of a loss such as MAE),
    times ``value_per_point``: what one point is worth over one day of serving at your
    traffic. **Cost** of a retrain: the mean training CPU seconds of the latest 3 retrains x
    ``cpu_price_per_hour`` / 3600 + ``deploy_cost`` (0 CPU seconds before the first).

    It fires when gain > cost: once, then again each time the gain passes a further multiple
    of the cost while the same champion serves (a candidate not blessed, say); the slot is
    ``<end of the champion's training window>#<multiple>``. Never without a champion. The
    rent-or-buy rule: over a champion's life it pays at most one retrain's cost in lost value
    before retraining.

    Parameters
    ----------
    value_per_point
        Money one metric point is worth per day of serving, ``> 0``.
    cpu_price_per_hour
        Money per hour of training CPU, ``>= 0``.
    deploy_cost
        Money per retrain beyond its CPU (deployment, review, risk), ``>= 0``.
    metric
        A built-in metric (its direction and whether it reads in points come from it).
    over, min_samples
        The online metric's window and fewest rows.
    prior_rows
        How many labelled rows the curve's prior weighs as, in the blend.
    curve
        A backtest's ``results.json`` (relative to the project folder) whose degradation
        curve is the prior; None: the online estimate only. Leave it out in a backtest of the
        same data: the curve was measured on its future.
    name
        Defaults to ``"cost_aware"``.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from retrainer.core.triggers import MetricValue
    >>> trigger = CostAwareTrigger(value_per_point=2.0, deploy_cost=10.0, over="2d")
    >>> [need] = trigger.needs().metrics
    >>> ctx = TriggerContext(
    ...     now=datetime(2024, 3, 11, tzinfo=UTC), pipeline="p",
    ...     last_training=datetime(2024, 3, 1, tzinfo=UTC),
    ...     last_promotion=datetime(2024, 3, 1, tzinfo=UTC),
    ...     metric_at_promotion={"accuracy": 0.90},
    ...     metrics={need: MetricValue(value=0.88, n=500)})
    >>> d = trigger.evaluate(ctx)  # 2 points now, 10 days: 10 point-days x 2.0 = 20 > 10
    >>> d.fire, d.slot
    (True, '2024-03-01T00:00:00+00:00#2')
    >>> d.reason
    'gain 20 > cost 10: accuracy lost 2 pts at age 10d (observed), 10 point-days x 2'
    """

    kind: ClassVar[str] = "cost_aware"
    example = {
        "cost_aware": {
            "value_per_point": 120.0,
            "cpu_price_per_hour": 0.05,
            "deploy_cost": 2.0,
            "metric": "accuracy",
        }
    }

    value_per_point: Number
    cpu_price_per_hour: NonNegative = 0.0
    deploy_cost: NonNegative = 0.0
    metric: MetricName = "accuracy"
    over: Duration = "7d"
    min_samples: Count = 30
    prior_rows: Count = 500
    curve: ResultsFile = None
    name: DefaultName = Field(None, validate_default=True)

    def _check(self, values: dict[str, Any]) -> None:
        from retrainer.core.metrics import get_metric

        value = values["value_per_point"]
        if value <= 0:
            raise ConfigError(
                f"CostAwareTrigger.value_per_point must be a number > 0 (what a metric point "
                f"is worth per day of serving); got {self.value_per_point!r}"
            )
        try:
            get_metric(values["metric"])
        except ConfigError as exc:
            raise ConfigError(f"CostAwareTrigger.metric: {exc}") from None

    def needs(self) -> Needs:
        """The online metric, and the costs (retrain CPU seconds, the degradation curve)."""
        values = self.checked()
        need = MetricNeed(metric=self.metric, over=values["over"], min_samples=self.min_samples)
        return Needs(metrics=(need,), costs=True, curve=self.curve)

    def describe(self) -> str:
        """``cost-aware: 1 pt-day = 120, retrain = 2 + CPU at 0.05/h``.

        Examples
        --------
        >>> CostAwareTrigger(value_per_point=0.5, deploy_cost=1.0).describe()
        'cost-aware: 1 pt-day = 0.5, retrain = 1'
        """
        text = f"cost-aware: 1 pt-day = {self.value_per_point:g}, retrain = {self.deploy_cost:g}"
        if self.cpu_price_per_hour:
            text += f" + CPU at {self.cpu_price_per_hour:g}/h"
        return text

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Weigh the gain since the champion's training against a retrain; see the class."""
        from retrainer.core.metrics import get_metric, in_points

        values = self.checked()
        over: timedelta = values["over"]
        now = as_utc(ctx.now)
        metric = get_metric(self.metric)
        sign = 1.0 if metric.greater_is_better else -1.0
        scale = 100.0 if in_points(self.metric) else 1.0
        unit = "pts" if scale == 100.0 else "units"
        cpu = list(ctx.retrain_cpu_s[:CPU_RUNS])
        cpu_s = sum(cpu) / len(cpu) if cpu else 0.0
        cost = cpu_s * float(self.cpu_price_per_hour) / 3600 + float(self.deploy_cost)
        state: dict[str, Any] = {"base": ctx.state.get("base"), "batch": ctx.state.get("batch")}
        evidence: dict[str, Any] = {
            "metric": self.metric,
            "cost": cost,
            "retrain_cpu_s": cpu_s,
            "cpu_runs": len(cpu),
            "value_per_point": self.value_per_point,
        }

        def wait(reason: str, status: str, watching: bool = False) -> Decision:
            return _decision(
                ctx,
                self.name,
                fire=False,
                active=False,
                slot=None,
                reason=reason,
                evidence=_json_safe(evidence),
                state=state,
                status=status,
                watching=watching,
            )

        if ctx.last_training is None:
            return wait("cost-aware: no champion", "no_champion")
        trained = as_utc(ctx.last_training)
        age = max((now - trained) / _DAY, 0.0)
        evidence["age_days"] = age

        observed, n = self._observed(ctx, now, over, sign)
        curve = [(float(a), float(v)) for a, v in ctx.degradation]
        prior = curve_at(curve, age) if curve else None
        evidence.update(observed=observed, n=n, prior=prior)
        if observed is not None and prior is not None:
            w = n / (n + self.prior_rows)
            loss, source = (1 - w) * prior + w * observed, f"blend, {w:.0%} observed"
        elif observed is not None:
            loss, source = observed, "observed"
        elif prior is not None:
            loss, source = prior, "curve"
        else:
            return wait(
                f"cost-aware: {self.metric} over {_spec_duration(self.over)} not measured yet "
                "and no degradation curve",
                "insufficient_data",
            )
        raw, loss = loss, max(loss, 0.0)
        base_area = curve_area(curve, age) if prior is not None and prior > 0 else 0.0
        area = base_area * loss / prior if base_area > 0 and prior else loss * age / 2
        point_days = area * scale
        gain = point_days * float(self.value_per_point)
        evidence.update(loss=loss, source=source, point_days=point_days, gain=gain)

        base = _iso(trained)
        multiple = math.floor(gain / cost) if cost > 0 else (1 if gain > 0 else 0)
        active = gain > cost
        multiple = max(multiple, 1) if active else 0
        evidence["multiple"] = multiple
        prev = ctx.state.get("batch")
        new = ctx.state.get("base") != base or not isinstance(prev, int) or multiple > prev
        fire = active and new
        if fire:
            state = {"base": base, "batch": multiple}
        word = ">" if active else "<="
        # a champion doing better than at its training has lost nothing: say so, not "lost 0"
        change = (
            f"lost {loss * scale:.3g} {unit}"
            if raw >= 0
            else f"improved by {-raw * scale:.3g} {unit} (counted as no loss)"
        )
        reason = (
            f"gain {gain:.4g} {word} cost {cost:.4g}: {self.metric} {change} at age "
            f"{age:.3g}d ({source}), {point_days:.4g} point-days x {self.value_per_point:g}"
        )
        if active and not new:
            reason += " (acted on already)"
        return _decision(
            ctx,
            self.name,
            fire=fire,
            active=active,
            slot=f"{base}#{multiple}",
            reason=reason,
            evidence=_json_safe(evidence),
            state=state,
            status="worth_it" if active else "not_yet",
            watching=True,
        )

    def _observed(
        self, ctx: TriggerContext, now: Any, over: timedelta, sign: float
    ) -> tuple[float | None, int]:
        """The drop measured online (metric units, positive = worse) and its rows, or None:
        not measured, too few rows, no baseline, or a window reaching before the promotion
        (it would judge the old champion's rows)."""
        measured = ctx.metrics.get(
            MetricNeed(metric=self.metric, over=over, min_samples=self.min_samples)
        )
        baseline = ctx.metric_at_promotion.get(self.metric)
        if measured is None or measured.value is None or measured.status != "ok":
            return None, 0
        if measured.n < self.min_samples or baseline is None or not math.isfinite(baseline):
            return None, measured.n
        if ctx.last_promotion is not None and now - over < as_utc(ctx.last_promotion):
            return None, measured.n
        return sign * (float(baseline) - float(measured.value)), measured.n
