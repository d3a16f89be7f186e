"""Every kind of every configurable family, through its one registry.

Parametrized over all the registries together: a kind added to any family (a trigger, guard,
blessing rule, window, notifier or deployment strategy) is covered without editing this file,
and one without an ``example`` fails here.
"""

import pytest
from pydantic import TypeAdapter, ValidationError

from retrainer.adapters.notifiers import NOTIFIERS
from retrainer.config import json_schema
from retrainer.core._spec import Registry
from retrainer.core.blessing import RULES
from retrainer.core.deploy import DEPLOYMENT_POLICIES
from retrainer.core.triggers import GUARDS, TRIGGERS
from retrainer.core.windows import WINDOWS

REGISTRIES = {
    "triggers": TRIGGERS,
    "guards": GUARDS,
    "rules": RULES,
    "window": WINDOWS,
    "notifiers": NOTIFIERS,
    "deploy": DEPLOYMENT_POLICIES,
}
CASES = [
    pytest.param(registry, kind, id=f"{family}-{kind}")
    for family, registry in REGISTRIES.items()
    for kind in registry
]


def test_every_family_has_one_registry_of_the_same_type():
    assert all(isinstance(r, Registry) for r in REGISTRIES.values())
    assert len({id(r) for r in REGISTRIES.values()}) == len(REGISTRIES)
    assert all(len(r) >= 1 and list(r) == list(r.kinds) for r in REGISTRIES.values())


@pytest.mark.parametrize(("registry", "kind"), CASES)
def test_every_kind_round_trips_through_its_spec(registry, kind):
    cls = registry[kind]
    assert cls.spec_kind() == kind
    assert cls.example, f"{cls.__name__} has no example"
    built = registry.build(kind, cls.example)
    assert type(built) is cls
    spec = built.to_spec()
    assert registry.build(kind, spec) == built
    assert registry.build(kind, spec).to_spec() == spec  # written back identically
    assert set(spec) <= set(registry.config_keys(kind)) | {"kind", "strategy"}


@pytest.mark.parametrize(("registry", "kind"), CASES)
def test_every_kind_describes_itself(registry, kind):
    text = registry.build(kind, registry[kind].example).describe()
    assert isinstance(text, str) and text.strip()


@pytest.mark.parametrize(("registry", "kind"), CASES)
def test_every_kind_is_in_the_config_schema(registry, kind):
    adapter = TypeAdapter(registry.config_type())
    example = registry[kind].example
    adapter.validate_python(example)
    with pytest.raises(ValidationError):
        adapter.validate_python({**example, "colour": "blue"})
    # the family's schema is the one `retrainer config-schema` shows
    config_defs = json_schema()["$defs"]
    family = registry.json_schema()
    assert set(family.get("$defs", {})) <= set(config_defs), kind
    # the kind has its own model (its class's name, or its spec model's for triggers/guards)
    models = {*family.get("$defs", {}), family.get("title", "")}
    [model] = [
        m for m in models if m in (registry[kind].__name__, f"{registry[kind].__name__}Spec")
    ]
    assert model in config_defs
