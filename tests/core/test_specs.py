"""The typed specs of blessing rules, windows and notifiers: one registry per family, from which
validation, to_spec, describe() and the JSON schema of retrainer.yaml derive."""

import pytest

from retrainer.adapters.notifiers import NOTIFIERS
from retrainer.config import json_schema, parse_config
from retrainer.core._spec import is_number
from retrainer.core.blessing import RULES
from retrainer.core.windows import WINDOWS
from retrainer.errors import ConfigError
from tests.conftest import pipeline_config

# one example per registered kind: a kind added without one fails test_every_kind_has_an_example
EXAMPLES = {
    (RULES, "absolute"): {"metric": "accuracy", "min": 0.6, "max": 1},
    (RULES, "change"): {"metric": "rmse", "max_regression": 0.01, "relative": True},
    (RULES, "slice"): {"metric": "accuracy", "slice": "region", "min_size": 50, "min": 0.5},
    (RULES, "significance"): {
        "metric": "log_loss",
        "not_worse": "significant",
        "margin": 0.01,
        "alpha": 0.05,
    },
    (WINDOWS, "full"): {"kind": "full"},
    (WINDOWS, "sliding"): {"kind": "sliding", "duration": "90d"},
    (WINDOWS, "new"): {"kind": "new"},
    (WINDOWS, "since_change"): {"kind": "since_change", "min": "7d", "max": "90d"},
    (NOTIFIERS, "log"): {"kind": "log", "logger": "ops"},
    (NOTIFIERS, "webhook"): {"kind": "webhook", "url": "https://x.example/h", "timeout": 2},
    (NOTIFIERS, "slack"): {"kind": "slack", "url": "https://hooks.slack.com/s/T", "blocks": False},
    (NOTIFIERS, "email"): {"kind": "email", "host": "mx", "sender": "r@x.io", "to": ["a@x.io"]},
    (NOTIFIERS, "recording"): {"kind": "recording", "name": "audit", "fail_times": 1},
}
DESCRIPTIONS = {
    "absolute": "accuracy >= 0.6 and <= 1",
    "change": "rmse: regression <= 1.0% vs the champion",
    "slice": "accuracy on each region slice of >= 50 rows: >= 0.5",
    "significance": "log_loss significantly not worse than the champion - 0.01 (alpha 0.05)",
    "full": "all history",
    "sliding": "last 90d",
    "new": "new rows (online)",
    "since_change": "since the change (at least 7d, at most 90d)",
    "log": "log records on ops",
    "webhook": "JSON POST to https://x.example/...",
    "slack": "Slack message to https://hooks.slack.com/...",
    "email": "email to a@x.io via mx:25",
    "recording": "kept in memory",
}
CASES = [pytest.param(reg, kind, spec, id=kind) for (reg, kind), spec in EXAMPLES.items()]


def test_every_kind_has_an_example():
    registered = {(reg, kind) for reg in (RULES, WINDOWS, NOTIFIERS) for kind in reg.kinds}
    assert registered == set(EXAMPLES)


@pytest.mark.parametrize(("registry", "kind", "spec"), CASES)
def test_round_trip(registry, kind, spec):
    built = registry.build(kind, spec)
    assert built.spec_kind() == kind
    assert built.to_spec() == spec
    assert registry.build(kind, built.to_spec()) == built
    again = type(built)(**built.get_params())  # the constructor takes what get_params gives
    assert again.get_params() == built.get_params()
    again.check_params()


@pytest.mark.parametrize(("registry", "kind", "spec"), CASES)
def test_describe(registry, kind, spec):
    assert registry.build(kind, spec).describe() == DESCRIPTIONS[kind]


def test_config_schema_covers_every_kind():
    schema = json_schema()
    defs = schema["$defs"]
    for registry in (RULES, WINDOWS, NOTIFIERS):
        for kind in registry.kinds:
            cls = registry[kind]
            assert cls.__name__ in defs, cls
            properties = defs[cls.__name__]["properties"]
            assert set(registry.config_keys(kind)) == set(properties), kind
            assert defs[cls.__name__]["additionalProperties"] is False
    assert "slice" in defs["SliceRule"]["properties"]  # the config key, not the parameter name
    assert "to" in defs["EmailSpec"]["properties"]
    assert defs["SlidingWindow"]["properties"]["kind"]["const"] == "sliding"


def test_family_schema_lists_every_kind():
    for registry in (RULES, WINDOWS, NOTIFIERS):
        schema = registry.json_schema()
        assert {ref["$ref"].rsplit("/", 1)[-1] for ref in schema["oneOf"]} == {
            cls.__name__ for cls in registry.values()
        }


def test_config_keeps_rules_and_window_as_written():
    # a pipeline's definition hash is taken over this dump: it must not change with the types
    cfg = pipeline_config(
        window={"kind": "sliding", "rows": 500},
        blessing={"rules": [{"metric": "accuracy", "min_improvement": 0}]},
    )
    dump = parse_config({"pipelines": [cfg]}).pipeline().model_dump(mode="json")
    assert dump["window"] == {"kind": "sliding", "rows": 500, "duration": None, "min": None,
                              "max": None}  # fmt: skip
    assert dump["blessing"]["rules"] == [{"metric": "accuracy", "min_improvement": 0}]
    lean = parse_config({"pipelines": [cfg]}).pipeline().model_dump(exclude_none=True)
    assert lean["window"] == {"kind": "sliding", "rows": 500}


def test_config_names_the_key_of_a_bad_rule_value():
    cfg = pipeline_config()
    cfg["blessing"]["rules"] = [{"metric": "accuracy", "slice": "region", "min_size": 0, "min": 1}]
    with pytest.raises(ConfigError) as info:
        parse_config({"pipelines": [cfg]})
    assert info.value.problems == [
        "pipelines[0].blessing.rules[0].min_size: got 0; must be an integer >= 1"
    ]


def test_config_checks_notifiers_but_reads_secrets_later():
    ok = {"kind": "slack", "url": "${SLACK_URL}"}
    cfg = parse_config({"pipelines": [pipeline_config()], "alerts": {"notifiers": [ok]}})
    assert cfg.alerts.notifiers[0].to_spec() == ok
    bad = {"kind": "webhook", "url": "ftp://x.example/SECRET"}
    with pytest.raises(ConfigError) as info:
        parse_config({"pipelines": [pipeline_config()], "alerts": {"notifiers": [ok, bad]}})
    [problem] = info.value.problems
    assert problem.startswith("alerts.notifiers[1].url: must be an http:// or https:// URL")
    assert "SECRET" not in problem


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, True), (0.5, True), (True, False), (float("inf"), False), ("1", False), (None, False)],
)
def test_is_number(value, expected):
    assert is_number(value) is expected
