"""Configuration mappings: one registry per family, the builders and the JSON schema.

A trigger's kind key (``schedule``, ``metric``, ``drift``...) names its class in
:data:`TRIGGERS`, a guard's in :data:`GUARDS`. Each class's fields are its spec (see
:class:`~retrainer.core.triggers.base.TriggerSpec`): the keys a mapping may hold, their
validation and their JSON schema all come from them, so a new trigger is its class plus one
entry here.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from retrainer.core._spec import Registry
from retrainer.core.triggers.base import Guard, Trigger, TriggerSpec, _keys_text
from retrainer.core.triggers.combinators import AllOf, AnyOf
from retrainer.core.triggers.cost import CostAwareTrigger
from retrainer.core.triggers.drift import ConceptDriftTrigger, DriftTrigger
from retrainer.core.triggers.events import CodeChangeTrigger, ManualTrigger, NewDataTrigger
from retrainer.core.triggers.guards import Cooldown, MaxRetrains, MinNewRows
from retrainer.core.triggers.metric import MetricTrigger
from retrainer.core.triggers.schedule import ScheduleTrigger
from retrainer.errors import ConfigError

__all__ = [
    "GUARDS",
    "TRIGGERS",
    "build_guard",
    "build_trigger",
    "guard_spec_type",
    "trigger_spec_type",
]

TRIGGERS: Registry[TriggerSpec] = Registry(
    "trigger",
    ScheduleTrigger
    | MetricTrigger
    | DriftTrigger
    | ConceptDriftTrigger
    | NewDataTrigger
    | CodeChangeTrigger
    | ManualTrigger
    | CostAwareTrigger
    | AnyOf
    | AllOf,
    config_type=lambda: trigger_spec_type(),
    builder=lambda spec, where: build_trigger(spec, where=where or "trigger"),  # type: ignore[arg-type,return-value]
)
"""Trigger kind (the key that names it in ``retrainer.yaml``) -> class."""

GUARDS: Registry[TriggerSpec] = Registry(
    "guard",
    Cooldown | MaxRetrains | MinNewRows,
    config_type=lambda: guard_spec_type(),
    builder=lambda spec, where: build_guard(spec, where=where or "guard"),  # type: ignore[arg-type,return-value]
)
"""Guard kind -> class."""


def build_trigger(spec: Mapping[str, Any], *, where: str = "trigger") -> Trigger:
    """Build a trigger from its configuration mapping, validating it.

    The one key among ``schedule``, ``metric``, ``drift``, ``concept_drift``, ``new_data``,
    ``code_change``, ``manual``, ``cost_aware``, ``any`` and ``all`` says which trigger it
    is; ``name`` may sit beside it. ``schedule`` and ``metric`` keep their settings beside
    them, the others under their key::

        {"schedule": "0 2 * * MON", "timezone": "Europe/Paris"}
        {"metric": "ctr", "below": 0.0191, "over": "1d", "min_samples": 1000}
        {"metric": "ctr", "drop": 0.1, "relative": True}
        {"drift": {"share": 0.5, "features": ["price"]}}
        {"concept_drift": {}}, {"code_change": {}}, {"manual": {}}
        {"new_data": {"rows": 10000}}
        {"cost_aware": {"value_per_point": 120.0, "deploy_cost": 2.0}}
        {"any": [...]}, {"all": [...]}

    Parameters
    ----------
    spec
        The mapping.
    where
        Where the mapping sits in the configuration, for error messages.

    Raises
    ------
    ConfigError
        For no or several kind keys, unknown keys, or bad values; the message names them.

    Examples
    --------
    >>> build_trigger({"schedule": "0 2 * * MON", "timezone": "Europe/Paris"})
    ScheduleTrigger(cron='0 2 * * MON', timezone='Europe/Paris', catch_up=False, name='schedule')
    >>> t = build_trigger({"any": [{"drift": {"share": 0.5}}, {"new_data": {"rows": 10000}}]})
    >>> t.name
    'any(drift,new_data)'
    >>> build_trigger(t.to_spec()) == t
    True
    >>> build_trigger({"metric": "ctr", "below": 0.0191, "window": "1d"})
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: trigger: a metric trigger has unknown key(s) 'window'; ...
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{where} must be a mapping such as {{'schedule': '0 2 * * MON'}}; got {spec!r}"
        )
    kinds = [k for k in spec if k in TRIGGERS]
    if len(kinds) != 1:
        found = f"{', '.join(map(repr, kinds))}" if kinds else "none"
        raise ConfigError(
            f"{where} must have exactly one of the keys {', '.join(TRIGGERS)} to say "
            f"which trigger it is; found {found} in {dict(spec)!r}"
        )
    kind = kinds[0]
    cls = TRIGGERS[kind]
    allowed = cls.spec_keys()
    unknown = [k for k in spec if k not in allowed]
    if unknown:
        raise ConfigError(
            f"{where}: a {kind} trigger has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"it takes {_keys_text(allowed)}. Got {dict(spec)!r}"
        )
    try:
        trigger = cls.from_spec(spec, where, build_trigger)
        trigger.needs()  # validates, children included
    except ConfigError as exc:
        if str(exc).startswith(where):
            raise
        raise ConfigError(f"{where}: {exc}") from None
    if not isinstance(trigger, Trigger):  # pragma: no cover (every registered class is one)
        raise TypeError(f"{cls.__name__} is not a Trigger")
    return trigger


def build_guard(spec: Mapping[str, Any], *, where: str = "guard") -> Guard:
    """Build a guard from its configuration mapping, validating it.

    Accepted: ``{"cooldown": "6h"}``, ``{"max_retrains": {"count": 3, "per": "1d"}}``,
    ``{"min_new_rows": 1000}``.

    Raises
    ------
    ConfigError
        For an unknown guard, extra keys or bad values; the message names them.

    Examples
    --------
    >>> build_guard({"max_retrains": {"count": 3, "per": "1d"}})
    MaxRetrains(count=3, per='1d')
    >>> build_guard({"cooldown": "6 hours"})
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: guard: Cooldown.period: invalid duration '6 hours': ...
    """
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConfigError(
            f"{where} must be a mapping with one key, one of {', '.join(GUARDS)} (e.g. "
            f"{{'cooldown': '6h'}}); got {spec!r}"
        )
    [kind] = spec
    try:
        if kind not in GUARDS:
            raise ConfigError(f"unknown guard {kind!r}; expected one of {', '.join(GUARDS)}")
        guard = GUARDS[kind].from_spec(spec, where)
        guard.needs()  # validates
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not isinstance(guard, Guard):  # pragma: no cover (every registered class is one)
        raise TypeError(f"{type(guard).__name__} is not a Guard")
    return guard


# --- JSON schema: pydantic models of the mappings, derived from the classes' fields ------------


def _field(cls: type[TriggerSpec], name: str) -> tuple[Any, Any]:
    info = cls.model_fields[name]
    default = ... if info.is_required() else info.default
    if isinstance(default, tuple):
        default = list(default)
    return Annotated[(info.annotation, *info.metadata)], Field(default)


def _doc(cls: type[TriggerSpec]) -> str:
    return (inspect.getdoc(cls) or "").split("\n\n")[0]


def _model(cls: type[TriggerSpec], union: Any) -> type[BaseModel]:
    forbid = ConfigDict(extra="forbid")
    names = list(cls.model_fields)
    fields: dict[str, Any] = {}
    if cls.layout == "flat":
        fields[cls.kind] = _field(cls, names[0])
        fields.update({n: _field(cls, n) for n in names[1:]})
    elif cls.layout == "value":
        fields[cls.kind] = _field(cls, names[0])
    elif cls.layout == "list":
        fields[cls.kind] = (list[union], Field(min_length=1))
        fields["name"] = _field(cls, "name")
    else:
        settings: dict[str, Any] = {n: _field(cls, n) for n in cls.body_keys()}
        body = create_model(f"{cls.__name__}Settings", __config__=forbid, **settings)
        required = any(info.is_required() for info in cls.model_fields.values())
        # the kind key names the trigger, so it is required even when its settings are not
        fields[cls.kind] = (body if required else body | None, Field(...))
        if "name" in names:
            fields["name"] = _field(cls, "name")
    config = ConfigDict(extra="forbid", json_schema_extra={"examples": [dict(cls.example or {})]})
    model: type[BaseModel] = create_model(
        f"{cls.__name__}Spec", __config__=config, __doc__=_doc(cls), **fields
    )
    return model


def trigger_spec_type() -> Any:
    """The union of every trigger kind's spec model, for a JSON schema.

    Examples
    --------
    >>> from pydantic import TypeAdapter
    >>> schema = TypeAdapter(list[trigger_spec_type()]).json_schema()
    >>> sorted(schema["$defs"])[:3]
    ['AllOfSpec', 'AnyOfSpec', 'CodeChangeTriggerSettings']
    """
    models = [_model(cls, "AnyTriggerSpec") for cls in TRIGGERS.values()]
    union: Any = Union[tuple(models)]  # noqa: UP007 (built from a tuple)
    for model in models:
        model.model_rebuild(_types_namespace={"AnyTriggerSpec": union})
    return union


def guard_spec_type() -> Any:
    """The union of every guard kind's spec model, for a JSON schema."""
    return Union[tuple(_model(cls, None) for cls in GUARDS.values())]  # noqa: UP007
