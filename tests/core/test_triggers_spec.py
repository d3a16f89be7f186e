"""Triggers and guards as typed specs: the registries, round trips, schema, describe, needs.

Parametrized over the registries, so a new trigger or guard kind is covered by adding it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from pydantic import Field, TypeAdapter

from retrainer.config import json_schema
from retrainer.core._spec import DefaultName, Duration, Spec, TimeZone
from retrainer.core.triggers import (
    GUARDS,
    TRIGGERS,
    AnyOf,
    MetricNeed,
    MetricTrigger,
    Needs,
    NewDataTrigger,
    ScheduleTrigger,
    Trigger,
    TriggerContext,
    build_guard,
    build_trigger,
)
from retrainer.core.triggers.base import TriggerSpec
from retrainer.core.triggers.spec import guard_spec_type, trigger_spec_type
from retrainer.errors import ConfigError


@pytest.mark.parametrize("kind", list(TRIGGERS))
def test_every_trigger_kind_round_trips_through_its_spec(kind: str) -> None:
    cls = TRIGGERS[kind]
    assert cls.kind == kind
    assert cls.example is not None and kind in cls.example, "give the class an example spec"
    trigger = build_trigger(cls.example)
    assert isinstance(trigger, cls) and isinstance(trigger, Trigger)
    assert build_trigger(trigger.to_spec()) == trigger
    assert trigger.to_spec() == build_trigger(trigger.to_spec()).to_spec()
    # get_params gives the constructor back the same trigger (scikit-learn's contract)
    params = trigger.get_params()
    children = params.pop("triggers", ())
    assert cls(*children, **params) == trigger


@pytest.mark.parametrize("kind", list(GUARDS))
def test_every_guard_kind_round_trips_through_its_spec(kind: str) -> None:
    cls = GUARDS[kind]
    assert cls.example is not None and kind in cls.example
    guard = build_guard(cls.example)
    assert isinstance(guard, cls)
    assert guard.to_spec() == cls.example
    assert build_guard(guard.to_spec()) == guard
    assert cls(**guard.get_params()) == guard


def test_the_config_schema_covers_every_trigger_and_guard_kind() -> None:
    schema = json_schema()
    pipeline = schema["$defs"]["PipelineConfig"]["properties"]

    def kinds(prop: dict[str, Any]) -> set[str]:
        out = set()
        for ref in prop["items"]["anyOf"]:
            model = schema["$defs"][ref["$ref"].rsplit("/", 1)[-1]]
            assert model["additionalProperties"] is False
            out |= set(model["required"]) & {*TRIGGERS, *GUARDS}
        return out

    assert kinds(pipeline["triggers"]) == set(TRIGGERS)
    assert kinds(pipeline["guards"]) == set(GUARDS)
    metric = schema["$defs"]["MetricTriggerSpec"]["properties"]
    assert metric["min_samples"] == {
        "default": 1,
        "minimum": 1,
        "title": "Min Samples",
        "type": "integer",
    }
    assert schema["$defs"]["AnyOfSpec"]["properties"]["any"]["items"]["anyOf"]  # recursive


@pytest.mark.parametrize("kind", list(TRIGGERS))
def test_the_schema_models_accept_what_to_spec_writes(kind: str) -> None:
    adapter = TypeAdapter(trigger_spec_type())
    adapter.validate_python(build_trigger(TRIGGERS[kind].example).to_spec())
    with pytest.raises(ValueError, match="Extra inputs"):
        adapter.validate_python({**TRIGGERS[kind].example, "colour": "blue"})


def test_the_guard_schema_models_accept_the_examples() -> None:
    adapter = TypeAdapter(guard_spec_type())
    for cls in GUARDS.values():
        adapter.validate_python(cls.example)


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ({"schedule": "0 0 * * *"}, "daily"),
        ({"schedule": "@weekly"}, "weekly"),
        ({"schedule": "0 0 1 * *"}, "monthly"),
        ({"schedule": "every 3d"}, "every 3d"),
        ({"schedule": "0 2 * * MON", "timezone": "Europe/Paris"}, "0 2 * * MON (Europe/Paris)"),
        ({"metric": "accuracy", "drop": 0.02, "over": "3d"}, "accuracy drops 2 pts over 3d"),
        ({"metric": "log_loss", "rise": 0.1, "relative": True}, "log_loss rises 10% over 1d"),
        ({"metric": "ctr", "below": 0.0191, "over": "1d"}, "ctr < 0.0191 over 1d"),
        ({"metric": "ctr", "above": 0.5, "over": "6h"}, "ctr > 0.5 over 6h"),
        ({"drift": {}}, "data drift"),
        ({"drift": {"share": 0.3}}, "data drift (share >= 0.3)"),
        ({"concept_drift": {}}, "concept drift"),
        ({"new_data": {"rows": 500}}, "500 new rows"),
        ({"new_data": {"fraction": 0.25}}, "new rows 25% of the training rows"),
        ({"code_change": {}}, "code change"),
        ({"manual": {}}, "manual"),
        (
            {"any": [{"drift": {}}, {"new_data": {"rows": 500}}]},
            "(data drift) any (500 new rows)",
        ),
        ({"all": [{"schedule": "@daily"}, {"manual": {}}]}, "(daily) all (manual)"),
    ],
)
def test_describe(spec: dict[str, Any], text: str) -> None:
    assert build_trigger(spec).describe() == text


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ({"cooldown": "7d"}, "cooldown 7d"),
        ({"max_retrains": {"count": 3, "per": "1d"}}, "max 3 per 1d"),
        ({"min_new_rows": 1000}, "at least 1000 new rows"),
    ],
)
def test_guard_describe(spec: dict[str, Any], text: str) -> None:
    assert build_guard(spec).describe() == text


@pytest.mark.parametrize("kind", [*TRIGGERS, *GUARDS])
def test_every_kind_describes_itself(kind: str) -> None:
    cls = {**TRIGGERS, **GUARDS}[kind]
    built = (build_trigger if kind in TRIGGERS else build_guard)(cls.example)
    assert isinstance(built.describe(), str) and built.describe()


@pytest.mark.parametrize(
    ("spec", "needs"),
    [
        ({"schedule": "0 2 * * *"}, Needs(cadence=timedelta(days=1))),
        ({"schedule": "0 2 * * MON-FRI"}, Needs(cadence=timedelta(days=1))),
        ({"schedule": "every 3d"}, Needs(cadence=timedelta(days=3))),
        (
            {"metric": "ctr", "below": 0.02, "over": "6h", "min_samples": 50},
            Needs(metrics=(MetricNeed(metric="ctr", over=timedelta(hours=6), min_samples=50),)),
        ),
        ({"drift": {}}, Needs(monitor=True, profiles=True)),
        ({"concept_drift": {}}, Needs(monitor=True)),
        ({"new_data": {"rows": 10}}, Needs(rows=True)),
        ({"code_change": {}}, Needs()),
        ({"manual": {}}, Needs()),
        (
            {"any": [{"concept_drift": {}}, {"new_data": {"rows": 10}}, {"schedule": "@hourly"}]},
            Needs(rows=True, monitor=True, cadence=timedelta(hours=1)),
        ),
    ],
)
def test_needs(spec: dict[str, Any], needs: Needs) -> None:
    assert build_trigger(spec).needs() == needs


def test_guard_needs() -> None:
    assert build_guard({"min_new_rows": 5}).needs() == Needs(rows=True)
    assert build_guard({"cooldown": "1h"}).needs() == Needs()


def test_a_parameter_is_validated_on_first_use_with_its_key_path() -> None:
    trigger = ScheduleTrigger("0 2 * * *", catch_up="yes")  # stored as given
    assert trigger.catch_up == "yes"
    with pytest.raises(ConfigError, match=r"^ScheduleTrigger.catch_up must be true or false"):
        trigger.evaluate(TriggerContext(now=datetime(2024, 3, 4, tzinfo=UTC), pipeline="p"))
    with pytest.raises(
        ConfigError,
        match=r"^pipelines\[0\].triggers\[1\].any\[0\]: MetricTrigger.below must be a finite",
    ):
        build_trigger({"any": [{"metric": "ctr", "below": "2%"}]}, where="pipelines[0].triggers[1]")


def test_changing_a_parameter_is_seen_by_the_next_evaluation() -> None:
    # the validated parameters are remembered per trigger, not beyond a change
    trigger = NewDataTrigger(rows=100)
    ctx = TriggerContext(
        now=datetime(2024, 3, 4, tzinfo=UTC), pipeline="p", rows_since_training=150
    )
    assert trigger.evaluate(ctx).fire
    trigger.rows = 200
    assert not trigger.evaluate(ctx).fire
    trigger.rows = 0
    with pytest.raises(ConfigError, match="rows must be an integer >= 1"):
        trigger.evaluate(ctx)


def test_a_changed_schedule_uses_its_new_cron() -> None:
    trigger = ScheduleTrigger("0 2 * * *")
    now = datetime(2024, 3, 4, 9, tzinfo=UTC)
    assert trigger.next_fire(now) == datetime(2024, 3, 5, 2, tzinfo=UTC)
    trigger.cron = "0 12 * * *"
    assert trigger.next_fire(now) == datetime(2024, 3, 4, 12, tzinfo=UTC)


def test_schedules_do_not_share_their_memory() -> None:
    a, b = ScheduleTrigger("0 2 * * *"), ScheduleTrigger("0 2 * * *")
    now = datetime(2024, 3, 4, 9, tzinfo=UTC)
    a.next_fire(now)
    assert a._schedule_memo is not None and b._schedule_memo is None


def test_needs_union_keeps_each_metric_once() -> None:
    m = MetricTrigger("ctr", below=0.1)
    combined = AnyOf(m, MetricTrigger("ctr", above=0.9, name="high")).needs()
    assert combined.metrics == m.needs().metrics


def test_a_parameter_added_to_init_reaches_the_spec_the_schema_and_validation() -> None:
    # ManualTrigger.remember was added to the class alone (its __init__ and its use)
    trigger = build_trigger({"manual": {"remember": 2}})
    assert trigger.to_spec() == {"manual": {"remember": 2}}
    assert build_trigger({"manual": {}}).to_spec() == {"manual": {}}
    schema = json_schema()["$defs"]["ManualTriggerSettings"]["properties"]
    assert schema["remember"]["minimum"] == 1
    with pytest.raises(ConfigError, match=r"ManualTrigger.remember must be an integer >= 1"):
        build_trigger({"manual": {"remember": 0}})
    state: dict[str, Any] = {}
    for i in range(3):
        ctx = TriggerContext(
            now=datetime(2024, 3, 4, tzinfo=UTC), pipeline="p", state=state,
            manual_requests=[{"id": f"r{i}"}],
        )  # fmt: skip
        state = trigger.evaluate(ctx).state
    assert state["handled"] == ["r1", "r2"]


@pytest.mark.parametrize("cls", [*TRIGGERS.values(), *GUARDS.values()], ids=lambda c: c.kind)
def test_every_trigger_and_guard_declares_its_parameters_as_spec_fields(cls: Any) -> None:
    # one mechanism for every family: the fields are the parameters
    assert issubclass(cls, Spec)
    built = (build_trigger if cls.kind in TRIGGERS else build_guard)(cls.example)
    params = built.get_params()
    assert list(params) == list(cls.model_fields)
    assert cls.model_validate(params).get_params().keys() == params.keys()
    built.check_params()


def test_a_new_parameter_is_one_field() -> None:
    class Every(TriggerSpec):
        kind: ClassVar[str] = "every"
        layout = "flat"
        period: Duration
        zone: TimeZone = "UTC"
        name: DefaultName = Field(None, validate_default=True)

    every = Every("1d")
    assert every.name == "every" and every.get_params() == {
        "period": "1d",
        "zone": "UTC",
        "name": "every",
    }
    assert every.checked()["period"] == timedelta(days=1)  # converted, kept as given on the object
    assert every.period == "1d"
    assert every == Every("24h") and every != Every("2d")
    assert every.to_spec() == {"every": "1d"}
    assert Every(timedelta(hours=6), zone="Europe/Paris").to_spec() == {
        "every": "6h",
        "zone": "Europe/Paris",
    }
    with pytest.raises(ConfigError, match=r"^Every.zone must be an IANA time zone name"):
        Every("1d", zone="Mars/Olympus").checked()
    with pytest.raises(ConfigError, match=r"^Every.period: invalid duration '1 day'"):
        Every("1 day").checked()
