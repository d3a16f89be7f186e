import dataclasses
import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from retrainer.core.blessing import (
    AbsoluteRule,
    ChangeRule,
    Gate,
    Rule,
    ScoreCard,
    SliceRule,
    SliceScore,
    build_rule,
)
from retrainer.core.metrics import get_metric, improvement, make_metric
from retrainer.core.types import EvidenceRow, Verdict
from retrainer.errors import ConfigError

ACCURACY = get_metric("accuracy")
RMSE = get_metric("rmse")
METRICS = {"accuracy": ACCURACY, "rmse": RMSE}
TOL = 1e-9


def card(n=500, slices=None, **metrics):
    return ScoreCard(n=n, metrics=metrics, slices=slices or {})


def sliced(column, **scores):
    """ScoreCard with one sliced column: value=(n, accuracy)."""
    return card(
        accuracy=0.8,
        slices={
            column: {
                v: SliceScore(n=n, metrics={"accuracy": acc}) for v, (n, acc) in scores.items()
            }
        },
    )


# --- AbsoluteRule -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "value", "passed", "threshold", "note"),
    [
        (AbsoluteRule("accuracy", min=0.65), 0.61, False, ">= 0.65", "accuracy 0.61 < min 0.65"),
        (AbsoluteRule("accuracy", min=0.65), 0.65, True, ">= 0.65", ""),
        (AbsoluteRule("rmse", max=1.5), 1.6, False, "<= 1.5", "rmse 1.6 > max 1.5"),
        (AbsoluteRule("rmse", max=1.5), 1.4, True, "<= 1.5", ""),
        (AbsoluteRule("accuracy", min=0.6, max=0.99), 0.995, False, ">= 0.6 and <= 0.99", None),
        (
            AbsoluteRule("accuracy", min=0.6),
            math.nan,
            False,
            ">= 0.6",
            "accuracy is NaN on candidate",
        ),
    ],
)
def test_absolute_rule(rule, value, passed, threshold, note):
    [row] = rule.check(card(**{rule.metric: value}), None, METRICS[rule.metric])
    assert row.rule == "absolute"
    assert row.passed is passed
    assert row.threshold == threshold
    if note is not None:
        assert row.note == note


def test_absolute_rule_fails_a_missing_metric():
    [row] = AbsoluteRule("accuracy", min=0.6).check(card(rmse=1.0), None, ACCURACY)
    assert not row.passed
    assert row.candidate is None
    assert row.note == "accuracy missing on candidate"


def test_absolute_rule_records_the_champion_and_delta():
    [row] = AbsoluteRule("accuracy", min=0.6).check(
        card(accuracy=0.7), card(accuracy=0.75), ACCURACY
    )
    assert row.champion == 0.75
    assert row.delta == pytest.approx(-0.05)


def test_bounds_tolerate_floating_point_rounding():
    # 0.1 + 0.2 = 0.30000000000000004
    [row] = AbsoluteRule("rmse", max=0.3).check(card(rmse=0.1 + 0.2), None, RMSE)
    assert row.passed
    [row] = ChangeRule("accuracy", max_regression=0.05).check(
        card(accuracy=0.6), card(accuracy=0.65), ACCURACY
    )
    assert row.passed  # 0.65 - 0.6 = 0.05000000000000004


# --- ChangeRule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "candidate", "champion", "passed", "threshold"),
    [
        (ChangeRule("accuracy", min_improvement=0.0), 0.81, 0.80, True, "improvement >= +0.000"),
        (ChangeRule("accuracy", min_improvement=0.0), 0.79, 0.80, False, "improvement >= +0.000"),
        (ChangeRule("rmse", min_improvement=0.0), 0.9, 1.0, True, "improvement >= +0.000"),
        (ChangeRule("rmse", min_improvement=0.0), 1.1, 1.0, False, "improvement >= +0.000"),
        (ChangeRule("accuracy", max_regression=0.02), 0.79, 0.80, True, "regression <= 0.020"),
        (ChangeRule("accuracy", max_regression=0.02), 0.77, 0.80, False, "regression <= 0.020"),
        (ChangeRule("rmse", max_regression=0.1), 1.05, 1.0, True, "regression <= 0.100"),
        (
            ChangeRule("rmse", max_regression=0.01, relative=True),
            1.02,
            1.0,
            False,
            "regression <= 1.0%",
        ),
        (
            ChangeRule("rmse", max_regression=0.05, relative=True),
            1.02,
            1.0,
            True,
            "regression <= 5.0%",
        ),
        (
            ChangeRule("accuracy", min_improvement=0.01, relative=True),
            0.81,
            0.80,
            True,
            "improvement >= +1.0%",
        ),
        (
            ChangeRule("accuracy", min_improvement=0.02, relative=True),
            0.81,
            0.80,
            False,
            "improvement >= +2.0%",
        ),
        (
            ChangeRule("accuracy", min_improvement=-0.0005),
            0.8,
            0.8004,
            True,
            "improvement >= -0.0005",
        ),
    ],
)
def test_change_rule_respects_the_metric_direction(rule, candidate, champion, passed, threshold):
    metric = METRICS[rule.metric]
    [row] = rule.check(card(**{rule.metric: candidate}), card(**{rule.metric: champion}), metric)
    assert row.rule == "change"
    assert row.passed is passed
    assert row.threshold == threshold
    assert row.delta == pytest.approx(candidate - champion)
    assert (row.note == "") is passed


def test_change_rule_failure_notes():
    [row] = ChangeRule("accuracy", min_improvement=0.0).check(
        card(accuracy=0.78), card(accuracy=0.80), ACCURACY
    )
    assert row.note == "accuracy improvement -0.02 < required +0.000"
    [row] = ChangeRule("rmse", max_regression=0.01, relative=True).check(
        card(rmse=1.05), card(rmse=1.0), RMSE
    )
    assert row.note == "rmse regression 5% > allowed 1.0%"


def test_change_rule_with_both_bounds_gives_two_rows():
    rows = ChangeRule("accuracy", min_improvement=0.0, max_regression=0.01).check(
        card(accuracy=0.795), card(accuracy=0.8), ACCURACY
    )
    assert [(r.threshold, r.passed) for r in rows] == [
        ("improvement >= +0.000", False),
        ("regression <= 0.010", True),
    ]


def test_change_rule_without_champion_is_skipped():
    [row] = ChangeRule("accuracy", min_improvement=0.0).check(card(accuracy=0.5), None, ACCURACY)
    assert row.passed
    assert row.note == "no champion: skipped"
    assert row.champion is None and row.delta is None


@pytest.mark.parametrize(
    ("champion", "note"),
    [
        (card(rmse=1.0), "champion has no accuracy value: skipped"),
        (card(accuracy=math.nan), "champion's accuracy is NaN: skipped"),
    ],
)
def test_change_rule_treats_an_unusable_champion_value_like_no_champion(champion, note):
    [row] = ChangeRule("accuracy", min_improvement=0.0).check(
        card(accuracy=0.5), champion, ACCURACY
    )
    assert row.passed
    assert row.note == note
    assert row.delta is None


@pytest.mark.parametrize("champion", [None, card(accuracy=0.8)])
@pytest.mark.parametrize("value", [math.nan, None])
def test_change_rule_fails_an_unscorable_candidate(champion, value):
    candidate = card(accuracy=value) if value is not None else card(rmse=1.0)
    [row] = ChangeRule("accuracy", max_regression=0.1).check(candidate, champion, ACCURACY)
    assert not row.passed
    assert "on candidate" in row.note


@pytest.mark.parametrize(
    ("metric", "candidate", "passed"),
    [
        (RMSE, 0.0, True),
        (RMSE, 0.1, False),
        (get_metric("r2"), 0.1, True),
        (get_metric("r2"), -0.1, False),
    ],
)
def test_relative_change_from_a_zero_champion(metric, candidate, passed):
    rule = ChangeRule(metric.name, max_regression=0.5, relative=True)
    [row] = rule.check(card(**{metric.name: candidate}), card(**{metric.name: 0.0}), metric)
    assert row.passed is passed


# --- SliceRule --------------------------------------------------------------------------------


def test_slice_rule_checks_large_slices_and_skips_small_ones():
    candidate = sliced("region", north=(300, 0.82), south=(100, 0.55), west=(4, 0.0))
    rows = SliceRule("accuracy", "region", min_size=30, min=0.6).check(candidate, None, ACCURACY)
    assert [(r.slice, r.passed) for r in rows] == [
        ("region=north", True),
        ("region=south", False),
        ("region=west", True),
    ]
    assert all(r.rule == "slice" for r in rows)
    assert rows[1].note == "accuracy[region=south] 0.55 < min 0.6"
    assert rows[2].note == "n=4 < min_size=30: skipped"
    assert rows[2].threshold == "n >= 30"


def test_slice_rule_compares_each_slice_with_the_champion():
    candidate = sliced("region", north=(300, 0.80), south=(100, 0.70))
    champion = sliced("region", north=(300, 0.81), south=(100, 0.80))
    rule = SliceRule("accuracy", "region", max_regression=0.05)
    rows = rule.check(candidate, champion, ACCURACY)
    assert [(r.slice, r.passed) for r in rows] == [("region=north", True), ("region=south", False)]
    assert rows[1].champion == 0.80
    assert rows[1].delta == pytest.approx(-0.10)
    assert rows[1].threshold == "regression <= 0.050"
    assert rows[1].note == "accuracy[region=south] regression 0.1 > allowed 0.050"


def test_slice_rule_relative_regression():
    candidate = sliced("region", north=(300, 0.78))
    champion = sliced("region", north=(300, 0.80))
    [row] = SliceRule("accuracy", "region", max_regression=0.02, relative=True).check(
        candidate, champion, ACCURACY
    )
    assert not row.passed  # 2.5% > 2.0%
    assert row.threshold == "regression <= 2.0%"


def test_slice_rule_without_champion_applies_only_its_bounds():
    candidate = sliced("region", north=(300, 0.50))
    rows = SliceRule("accuracy", "region", min=0.6, max_regression=0.0).check(
        candidate, None, ACCURACY
    )
    assert [(r.threshold, r.passed, r.note) for r in rows] == [
        (">= 0.6", False, "accuracy[region=north] 0.5 < min 0.6"),
        ("regression <= 0.000", True, "no champion: skipped"),
    ]


def test_slice_rule_skips_a_slice_the_champion_lacks():
    candidate = sliced("region", north=(300, 0.50), east=(50, 0.5))
    champion = sliced("region", north=(300, 0.80))
    rows = SliceRule("accuracy", "region", max_regression=0.01).check(candidate, champion, ACCURACY)
    assert [(r.slice, r.passed) for r in rows] == [("region=north", False), ("region=east", True)]
    assert rows[1].note == "champion has no score on region=east: skipped"


@pytest.mark.parametrize(
    "slices", [{}, {"region": {}}, {"other": {"a": SliceScore(n=99, metrics={})}}]
)
def test_slice_rule_fails_when_the_candidate_has_no_slices_of_the_column(slices):
    [row] = SliceRule("accuracy", "region", min=0.5).check(
        card(accuracy=0.9, slices=slices), None, ACCURACY
    )
    assert not row.passed
    assert row.note == "no slices of column 'region' on candidate"


def test_slice_rule_fails_a_large_slice_without_the_metric():
    candidate = card(accuracy=0.8, slices={"region": {"north": SliceScore(n=300, metrics={})}})
    [row] = SliceRule("accuracy", "region", min=0.5).check(candidate, None, ACCURACY)
    assert not row.passed
    assert row.note == "accuracy[region=north] missing on candidate"


# --- rule validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "match"),
    [
        (AbsoluteRule("accuracy"), "needs min or max"),
        (AbsoluteRule("", min=0.5), r"AbsoluteRule\.metric must be"),
        (AbsoluteRule("accuracy", min="0.6"), r"AbsoluteRule\.min must be a finite number.*'0\.6'"),
        (AbsoluteRule("accuracy", min=True), r"AbsoluteRule\.min"),
        (AbsoluteRule("accuracy", max=math.inf), r"AbsoluteRule\.max"),
        (AbsoluteRule("accuracy", min=0.9, max=0.1), "min must not exceed max"),
        (ChangeRule("accuracy"), "needs min_improvement or max_regression"),
        (ChangeRule("accuracy", max_regression=-0.1), r"max_regression must be >= 0.*-0\.1"),
        (
            ChangeRule("accuracy", min_improvement=0.0, relative="yes"),
            r"relative must be true or false",
        ),
        (SliceRule("accuracy", "region"), "needs min, max or max_regression"),
        (SliceRule("accuracy", "", min=0.5), r"SliceRule\.column"),
        (
            SliceRule("accuracy", "region", min_size=0, min=0.5),
            r"min_size must be an integer >= 1; got 0",
        ),
        (SliceRule("accuracy", "region", min_size=2.5, min=0.5), r"min_size.*2\.5"),
    ],
)
def test_rules_validate_on_first_use(rule, match):
    with pytest.raises(ConfigError, match=match):
        rule.check(card(accuracy=0.8), None, ACCURACY)


def test_rules_store_their_parameters_as_given():
    rule = AbsoluteRule("accuracy", min="not checked yet")
    assert rule.get_params() == {"metric": "accuracy", "min": "not checked yet", "max": None}
    assert SliceRule("a", "c", max_regression=0.1).get_params() == {
        "metric": "a",
        "column": "c",
        "min_size": 30,
        "min": None,
        "max": None,
        "max_regression": 0.1,
        "relative": False,
    }


@pytest.mark.parametrize(
    "rule",
    [AbsoluteRule("a", min=1), ChangeRule("a", min_improvement=0), SliceRule("a", "c", min=1)],
)
def test_builtin_rules_satisfy_the_protocol(rule):
    assert isinstance(rule, Rule)
    assert type(rule)(**rule.get_params()).get_params() == rule.get_params()


# --- Gate -------------------------------------------------------------------------------------


def test_gate_passes_when_every_row_passes():
    gate = Gate(
        [AbsoluteRule("accuracy", min=0.6), ChangeRule("rmse", min_improvement=0.0)], METRICS
    )
    verdict = gate.evaluate(
        card(accuracy=0.7, rmse=0.9), card(accuracy=0.7, rmse=1.0), champion_version=4
    )
    assert isinstance(verdict, Verdict)
    assert verdict.passed
    assert verdict.reason == "all 2 checks passed"
    assert verdict.champion_version == 4
    assert [r.rule for r in verdict.evidence] == ["absolute", "change"]


def test_gate_reason_lists_the_failing_rows():
    gate = Gate(
        [
            AbsoluteRule("accuracy", min=0.65),
            ChangeRule("rmse", max_regression=0.01, relative=True),
        ],
        METRICS,
    )
    verdict = gate.evaluate(card(accuracy=0.61, rmse=1.05), card(accuracy=0.7, rmse=1.0))
    assert not verdict.passed
    assert verdict.reason == "accuracy 0.61 < min 0.65; rmse regression 5% > allowed 1.0%"


def test_gate_without_champion_applies_only_absolute_checks():
    gate = Gate(
        [AbsoluteRule("accuracy", min=0.6), ChangeRule("accuracy", min_improvement=0.1)], METRICS
    )
    verdict = gate.evaluate(card(accuracy=0.7))
    assert verdict.passed
    assert verdict.evidence[1].note == "no champion: skipped"
    assert verdict.champion_version is None


def test_gate_counts_extra_rows():
    gate = Gate([AbsoluteRule("accuracy", min=0.6)], METRICS)
    sanity = EvidenceRow(
        rule="sanity",
        metric="load",
        candidate=None,
        champion=None,
        delta=None,
        threshold="loads in a fresh process",
        passed=False,
        note="model failed to load in a fresh process",
    )
    verdict = gate.evaluate(card(accuracy=0.7), extra=[sanity])
    assert not verdict.passed
    assert verdict.evidence[-1] is sanity
    assert verdict.reason == "model failed to load in a fresh process"
    silent = EvidenceRow(
        rule="sanity",
        metric="latency",
        candidate=0.5,
        champion=None,
        delta=None,
        threshold="<= 0.1 s",
        passed=False,
    )
    assert gate.evaluate(card(accuracy=0.7), extra=(silent,)).reason == (
        "sanity check on latency failed (<= 0.1 s)"
    )
    ok = dataclasses.replace(silent, passed=True)
    assert gate.evaluate(card(accuracy=0.7), extra=(ok,)).reason == "all 2 checks passed"


def test_gate_with_no_rules_is_a_config_error():
    with pytest.raises(ConfigError, match="at least one rule is needed"):
        Gate([], METRICS).evaluate(card(accuracy=0.7))


def test_gate_names_the_rule_whose_metric_is_unknown():
    gate = Gate([AbsoluteRule("accuracy", min=0.6), AbsoluteRule("f1", min=0.5)], METRICS)
    with pytest.raises(ConfigError, match=r"rules\[1\] uses metric 'f1'.*accuracy, rmse"):
        gate.evaluate(card(accuracy=0.7, f1=0.6))


def test_gate_prefixes_rule_errors_with_the_index():
    gate = Gate([AbsoluteRule("accuracy", min=0.6), ChangeRule("accuracy")], METRICS)
    with pytest.raises(ConfigError, match=r"^rules\[1\]: ChangeRule"):
        gate.evaluate(card(accuracy=0.7))


def test_gate_rejects_things_that_are_not_rules():
    with pytest.raises(ConfigError, match=r"rules\[0\] must be a blessing rule"):
        Gate([{"metric": "accuracy", "min": 0.6}], METRICS).evaluate(card(accuracy=0.7))


def test_gate_get_params():
    rules = [AbsoluteRule("accuracy", min=0.6)]
    assert Gate(rules, METRICS).get_params() == {"rules": rules, "metrics": METRICS}


# --- build_rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind", "params"),
    [
        ({"metric": "accuracy", "min": 0.6}, AbsoluteRule, {"min": 0.6, "max": None}),
        ({"metric": "rmse", "max": 2}, AbsoluteRule, {"min": None, "max": 2}),
        (
            {"metric": "accuracy", "min_improvement": 0.0, "relative": True},
            ChangeRule,
            {"min_improvement": 0.0, "max_regression": None, "relative": True},
        ),
        ({"metric": "accuracy", "max_regression": 0.01}, ChangeRule, {"max_regression": 0.01}),
        (
            {"metric": "accuracy", "slice": "region", "min_size": 50, "max_regression": 0.05},
            SliceRule,
            {"column": "region", "min_size": 50, "max_regression": 0.05},
        ),
        (
            {"metric": "accuracy", "slice": "region", "min": 0.5},
            SliceRule,
            {"min_size": 30, "min": 0.5},
        ),
    ],
)
def test_build_rule_picks_the_type_from_the_keys(spec, kind, params):
    rule = build_rule(spec)
    assert type(rule) is kind
    assert rule.metric == spec["metric"]
    assert params.items() <= rule.get_params().items()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"metric": "accuracy", "minimum": 0.6}, r"unknown key\(s\) 'minimum'"),
        ({"metric": "accuracy", "min": 0.6, "max_regresion": 0.1}, "'max_regresion'"),
        ({"min": 0.6}, "needs a 'metric' key"),
        ({"metric": "accuracy"}, "cannot tell which blessing rule"),
        ({"metric": "accuracy", "relative": True}, "cannot tell which blessing rule"),
        (
            {"metric": "accuracy", "min": 0.6, "relative": True},
            "absolute blessing rule does not take 'relative'",
        ),
        (
            {"metric": "accuracy", "min": 0.6, "min_improvement": 0},
            "change blessing rule does not take 'min'",
        ),
        (
            {"metric": "accuracy", "min_size": 10, "min": 0.5},
            "absolute blessing rule does not take 'min_size'",
        ),
        (
            {"metric": "accuracy", "min": "high"},
            r"AbsoluteRule\.min must be a finite number.*'high'",
        ),
        ({"metric": "accuracy", "slice": "", "min": 0.5}, r"SliceRule\.column"),
        ({"metric": 3, "min": 0.5}, r"metric must be a metric name.*got 3"),
        (["metric", "accuracy"], "must be a mapping"),
    ],
)
def test_build_rule_errors_name_the_problem(spec, match):
    with pytest.raises(ConfigError, match=match):
        build_rule(spec)


# --- properties -------------------------------------------------------------------------------

values = st.floats(min_value=-100, max_value=100, allow_nan=False)
bounds = st.floats(min_value=-10, max_value=10, allow_nan=False)


def _metric(greater):
    return make_metric("m", lambda y, p, s: 0.0, greater_is_better=greater)


@given(value=values, lo=st.none() | bounds, hi=st.none() | bounds, greater=st.booleans())
def test_gate_never_blesses_outside_absolute_bounds(value, lo, hi, greater):
    assume(lo is not None or hi is not None)
    assume(lo is None or hi is None or lo <= hi)
    verdict = Gate([AbsoluteRule("m", min=lo, max=hi)], {"m": _metric(greater)}).evaluate(
        ScoreCard(n=10, metrics={"m": value})
    )
    if verdict.passed:
        assert lo is None or value >= lo - TOL * max(1.0, abs(lo))
        assert hi is None or value <= hi + TOL * max(1.0, abs(hi))
    else:
        assert (lo is not None and value < lo) or (hi is not None and value > hi)


@given(
    candidate=values,
    champion=values,
    bound=st.floats(min_value=0, max_value=5, allow_nan=False),
    greater=st.booleans(),
    relative=st.booleans(),
    as_regression=st.booleans(),
)
def test_gate_never_blesses_a_candidate_worse_than_a_change_rule_allows(
    candidate, champion, bound, greater, relative, as_regression
):
    metric = _metric(greater)
    if as_regression:
        rule = ChangeRule("m", max_regression=bound, relative=relative)
        required = -bound
    else:
        rule = ChangeRule("m", min_improvement=bound, relative=relative)
        required = bound
    verdict = Gate([rule], {"m": metric}).evaluate(
        ScoreCard(n=10, metrics={"m": candidate}), ScoreCard(n=10, metrics={"m": champion})
    )
    change = improvement(metric, candidate, champion, relative=relative)
    if relative and champion == 0:
        raw = improvement(metric, candidate, champion, relative=False)
        change = 0.0 if raw == 0 else math.copysign(math.inf, raw)
    if verdict.passed:
        assert change >= required - TOL * max(1.0, abs(required))
    else:
        assert change < required
