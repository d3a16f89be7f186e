"""The cost-aware trigger: fires exactly when the value lost since the training exceeds a
retrain's cost; the online drop moves the curve's estimate; no champion, no curve, no price."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from retrainer.core.triggers import (
    TRIGGERS,
    CostAwareTrigger,
    MetricValue,
    TriggerContext,
    build_trigger,
)
from retrainer.core.triggers.cost import curve_area, curve_at
from retrainer.errors import ConfigError

TRAINED = datetime(2024, 3, 1, tzinfo=UTC)


def _ctx(
    trigger: CostAwareTrigger,
    *,
    days: float,
    value: float | None = None,
    n: int = 500,
    **kw: object,
) -> TriggerContext:
    [need] = trigger.needs().metrics
    metrics = {} if value is None else {need: MetricValue(value=value, n=n)}
    base = {
        "now": TRAINED + timedelta(days=days),
        "pipeline": "p",
        "last_training": TRAINED,
        "last_promotion": TRAINED,
        "metric_at_promotion": {"accuracy": 0.90},
        "metrics": metrics,
    }
    return TriggerContext(**{**base, **kw})  # type: ignore[arg-type]


def test_it_fires_exactly_when_the_gain_exceeds_the_cost():
    # numbers exact in binary: no curve, a straight line from 0 to 25 points at 8 days is
    # 100 point-days, x 0.125 = a gain of 12.5
    for cost, fires in ((12.25, True), (12.5, False), (12.75, False)):
        trigger = CostAwareTrigger(value_per_point=0.125, deploy_cost=cost, over="2d")
        ctx = _ctx(trigger, days=8, value=0.5, metric_at_promotion={"accuracy": 0.75})
        d = trigger.evaluate(ctx)
        assert d.evidence["gain"] == 12.5
        assert d.fire is fires and d.active is fires, cost


def test_the_cost_is_the_mean_cpu_of_the_latest_three_retrains_priced_plus_deployment():
    trigger = CostAwareTrigger(
        value_per_point=1.0, cpu_price_per_hour=3600.0, deploy_cost=2.0, over="2d"
    )
    ctx = _ctx(trigger, days=10, value=0.88, retrain_cpu_s=(3.0, 6.0, 9.0, 1000.0))
    d = trigger.evaluate(ctx)
    assert d.evidence["cost"] == pytest.approx(6.0 + 2.0)  # 1 per CPU second; the 4th ignored
    assert d.fire  # 10 > 8
    dearer = replace(ctx, retrain_cpu_s=(30.0,))
    assert not trigger.evaluate(dearer).fire  # 10 < 32


def test_it_fires_once_per_multiple_of_the_cost_while_the_same_champion_serves():
    trigger = CostAwareTrigger(value_per_point=1.0, deploy_cost=4.0, over="2d")
    first = trigger.evaluate(_ctx(trigger, days=10, value=0.88))  # 10 point-days: 2 x cost
    assert first.fire and first.slot == f"{TRAINED.isoformat()}#2"
    again = trigger.evaluate(_ctx(trigger, days=10, value=0.88, state=first.state))
    assert not again.fire and again.active and "acted on already" in again.reason
    later = trigger.evaluate(_ctx(trigger, days=12, value=0.88, state=first.state))
    assert later.fire and later.slot.endswith("#3")  # 12 point-days: 3 x cost
    retrained = TRAINED + timedelta(days=11)
    new = trigger.evaluate(
        _ctx(
            trigger,
            days=12,
            value=0.88,
            state=later.state,
            last_training=retrained,
            last_promotion=retrained,
        )
    )
    assert not new.fire  # a new champion, and no full window since its promotion


def test_the_online_drop_moves_the_curves_estimate():
    curve = ((1.0, 0.005), (5.0, 0.01), (10.0, 0.02))  # 2 points lost at 10 days
    trigger = CostAwareTrigger(value_per_point=1.0, deploy_cost=100.0, over="2d", prior_rows=500)
    prior = trigger.evaluate(_ctx(trigger, days=10, degradation=curve))
    assert prior.evidence["source"] == "curve"
    assert prior.evidence["loss"] == pytest.approx(0.02)
    assert prior.evidence["point_days"] == pytest.approx(100 * curve_area(curve, 10.0))
    # 500 labelled rows measured a 6-point drop: half the weight, the loss is 4 points
    seen = trigger.evaluate(_ctx(trigger, days=10, value=0.84, n=500, degradation=curve))
    assert seen.evidence["loss"] == pytest.approx(0.04)
    assert seen.evidence["point_days"] == pytest.approx(2 * prior.evidence["point_days"])
    many = trigger.evaluate(_ctx(trigger, days=10, value=0.84, n=50_000, degradation=curve))
    assert seen.evidence["loss"] < many.evidence["loss"] < 0.06  # more labels: nearer 6 points
    # a model that got better has lost nothing
    better = trigger.evaluate(_ctx(trigger, days=10, value=0.99, n=50_000, degradation=curve))
    assert better.evidence["gain"] == 0 and not better.fire


def test_no_curve_and_no_measure_waits_and_no_champion_never_fires():
    trigger = CostAwareTrigger(value_per_point=1.0)
    waiting = trigger.evaluate(_ctx(trigger, days=10))
    assert not waiting.fire and not waiting.watching
    assert "no degradation curve" in waiting.reason
    # a window reaching before the promotion judges the old champion: not used
    young = trigger.evaluate(_ctx(trigger, days=3, value=0.5))
    assert not young.fire and young.evidence["observed"] is None
    none = trigger.evaluate(TriggerContext(now=TRAINED, pipeline="p", degradation=((1.0, 0.5),)))
    assert not none.fire and none.reason == "cost-aware: no champion"


def test_at_zero_price_any_loss_fires_and_no_loss_does_not():
    trigger = CostAwareTrigger(value_per_point=1.0, over="2d")  # deploy 0, CPU price 0
    lost = trigger.evaluate(_ctx(trigger, days=10, value=0.8999, retrain_cpu_s=(50.0,)))
    assert lost.evidence["cost"] == 0 and lost.fire and lost.slot.endswith("#1")
    same = trigger.evaluate(_ctx(trigger, days=10, value=0.90))
    assert not same.fire


def test_a_loss_metric_counts_a_rise_in_its_units():
    trigger = CostAwareTrigger(value_per_point=1.0, deploy_cost=9.0, metric="mae", over="2d")
    d = trigger.evaluate(_ctx(trigger, days=10, value=5.0, metric_at_promotion={"mae": 3.0}))
    assert d.evidence["point_days"] == pytest.approx(10.0)  # 2 units x 10 days / 2
    assert d.fire


def test_the_curve_helpers():
    assert curve_at((), 3.0) == 0.0
    assert curve_at(((2.0, 0.02),), 1.0) == pytest.approx(0.01)
    assert curve_area(((2.0, -0.02),), 2.0) == 0.0  # a gain is not a loss


def test_it_is_configured_and_validated_as_the_others():
    spec = {
        "cost_aware": {
            "value_per_point": 120.0,
            "cpu_price_per_hour": 0.05,
            "deploy_cost": 2.0,
            "metric": "accuracy",
        }
    }
    trigger = build_trigger(spec)
    assert isinstance(trigger, CostAwareTrigger) and "cost_aware" in TRIGGERS
    assert build_trigger(trigger.to_spec()) == trigger
    assert trigger.needs().costs and trigger.needs().curve is None
    with pytest.raises(ConfigError, match="value_per_point"):
        build_trigger({"cost_aware": {"value_per_point": 0}})
    with pytest.raises(ConfigError, match="value_per_point"):
        build_trigger({"cost_aware": {}})
    with pytest.raises(ConfigError, match="unknown metric"):
        build_trigger({"cost_aware": {"value_per_point": 1.0, "metric": "auc"}})
    with pytest.raises(ConfigError, match="deploy_cost"):
        build_trigger({"cost_aware": {"value_per_point": 1.0, "deploy_cost": -1}})


def test_a_champion_better_than_at_its_training_is_said_to_have_improved():
    trigger = CostAwareTrigger(value_per_point=1.0, deploy_cost=5.0, over="2d")
    d = trigger.evaluate(_ctx(trigger, days=10, value=0.95))  # 0.90 at the promotion
    assert not d.fire and d.evidence["observed"] == pytest.approx(-0.05)
    assert "accuracy improved by 5 pts (counted as no loss)" in d.reason, d.reason
    worse = trigger.evaluate(_ctx(trigger, days=10, value=0.88))
    assert "accuracy lost 2 pts" in worse.reason, worse.reason
