"""Significance rules in the gate: configuration, the test chosen by the metric, edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from retrainer.config import parse_config
from retrainer.core.blessing import Gate, ScoreCard, build_rule, rule_kind
from retrainer.core.blessing_significance import SignificanceRule
from retrainer.core.metrics import compute, get_metric, make_metric
from retrainer.core.significance import HoldoutRows
from retrainer.errors import ConfigError
from tests.conftest import pipeline_config

METRICS = {
    name: get_metric(name) for name in ("accuracy", "roc_auc", "log_loss", "rmse", "mae", "f1")
}
RNG = np.random.default_rng(0)
Y = (RNG.random(600) < 0.4).astype(int)


def _card(y, pred, score=None, names=("accuracy",)):
    rows = HoldoutRows(y_true=y, y_pred=pred, y_score=score)
    metrics = {n: compute(METRICS[n], y, pred, score) for n in names}
    return ScoreCard(n=len(y), metrics=metrics, rows=rows)


def _classifier(noise: float, seed: int):
    rng = np.random.default_rng(seed)
    score = 1 / (1 + np.exp(-(3 * (Y - 0.5) + rng.normal(0, noise, len(Y)))))
    return (score > 0.5).astype(int), score


def _gate(rule):
    return Gate([build_rule(rule)], METRICS)


def test_keys_make_a_significance_rule():
    assert rule_kind({"metric": "accuracy", "better": "significant"}) == "significance"
    rule = build_rule({"metric": "log_loss", "not_worse": "significant", "margin": 0.01})
    assert isinstance(rule, SignificanceRule) and rule.alpha == 0.05


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"metric": "accuracy", "better": "yes"}, "SignificanceRule.better must be 'significant'"),
        ({"metric": "accuracy", "better": "significant", "alpha": 0.7}, "alpha must be a number"),
        ({"metric": "accuracy", "better": "significant", "not_worse": "significant"},
         "needs exactly one of"),
        ({"metric": "accuracy", "better": "significant", "margin": 0.01}, "margin goes with"),
        ({"metric": "accuracy", "better": "significant", "test": "wilcoxon"}, "test must be one"),
        ({"metric": "accuracy", "better": "significant", "min": 0.5}, "does not take 'min'"),
        # a test of another metric would judge the wrong question under this metric's name
        ({"metric": "log_loss", "better": "significant", "test": "delong"},
         "test 'delong' tests roc_auc, not log_loss"),
        ({"metric": "roc_auc", "better": "significant", "test": "mcnemar"},
         "test 'mcnemar' tests accuracy, not roc_auc"),
        ({"metric": "accuracy", "better": "significant", "test": "t"},
         "test 't' tests log_loss / brier / mae / mse, not accuracy"),
    ],
)  # fmt: skip
def test_bad_rules_are_refused_by_name(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_rule(spec)


def test_retrainer_yaml_validates_significance_rules():
    ok = pipeline_config(
        blessing={"rules": [{"metric": "accuracy", "better": "significant", "alpha": 0.01}]}
    )
    rule = parse_config({"pipelines": [ok]}).pipeline().blessing.rules[0]
    assert isinstance(rule, SignificanceRule) and rule.alpha == 0.01
    bad = pipeline_config(blessing={"rules": [{"metric": "accuracy", "not_worse": 1}]})
    with pytest.raises(ConfigError, match=r"rules\[0\]\.not_worse: got 1; must be 'significant'"):
        parse_config({"pipelines": [bad]})


def test_accuracy_uses_mcnemar_and_names_it():
    good, _ = _classifier(0.5, 1)
    bad, _ = _classifier(3.0, 2)
    verdict = _gate({"metric": "accuracy", "better": "significant"}).evaluate(
        _card(Y, good), _card(Y, bad)
    )
    [row] = verdict.evidence
    assert row.passed and row.rule == "significance"
    assert row.note.startswith("McNemar exact p=") and "90% CI [+" in row.note
    reverse = _gate({"metric": "accuracy", "better": "significant"}).evaluate(
        _card(Y, bad), _card(Y, good)
    )
    assert not reverse.passed and "accuracy not significantly better" in reverse.reason


def test_a_small_gain_on_few_rows_is_not_significant_but_not_worse_with_a_margin():
    y = np.array([0, 1] * 50)
    champ = y.copy()
    champ[:6] = 1 - champ[:6]
    cand = y.copy()
    cand[:4] = 1 - cand[:4]  # 2 points better than the champion, on 100 rows
    better = _gate({"metric": "accuracy", "better": "significant"}).evaluate(
        _card(y, cand), _card(y, champ)
    )
    assert not better.passed and "McNemar exact p=0.25" in better.reason
    not_worse = _gate({"metric": "accuracy", "not_worse": "significant", "margin": 0.05})
    [row] = not_worse.evaluate(_card(y, cand), _card(y, champ)).evidence
    assert row.passed and "Tango score" in row.note and "margin 0.05" in row.note
    assert row.threshold == "not worse by > 0.05: one-sided p < 0.05"


def test_roc_auc_uses_delong_and_a_single_class_holdout_fails_with_the_reason():
    pred_a, score_a = _classifier(0.5, 3)
    pred_b, score_b = _classifier(2.0, 4)
    names = ("accuracy", "roc_auc")
    rule = {"metric": "roc_auc", "better": "significant"}
    [row] = (
        _gate(rule)
        .evaluate(_card(Y, pred_a, score_a, names), _card(Y, pred_b, score_b, names))
        .evidence
    )
    assert row.passed and row.note.startswith("DeLong p=")
    ones = np.ones(50, dtype=int)
    card = ScoreCard(
        n=50,
        metrics={"roc_auc": 0.9},  # as if a value were there: the rule sees the rows
        rows=HoldoutRows(y_true=ones, y_pred=ones, y_score=np.linspace(0, 1, 50)),
    )
    [row] = _gate(rule).evaluate(card, card).evidence
    assert not row.passed and "single class" in row.note


def test_losses_use_a_paired_t_test_and_rmse_a_bootstrap():
    rng = np.random.default_rng(7)
    y = rng.normal(0, 1, 800)
    cand, champ = y + rng.normal(0, 0.5, 800), y + rng.normal(0, 0.7, 800)
    names = ("rmse", "mae")
    for metric, test in (("mae", "paired t"), ("rmse", "paired bootstrap")):
        [row] = (
            _gate({"metric": metric, "better": "significant"})
            .evaluate(_card(y, cand, names=names), _card(y, champ, names=names))
            .evidence
        )
        assert row.passed and row.note.startswith(f"{test} p="), row.note
    _, score_a = _classifier(0.5, 5)
    _, score_b = _classifier(0.6, 6)
    card_a = _card(Y, (score_a > 0.5).astype(int), score_a, ("log_loss",))
    card_b = _card(Y, (score_b > 0.5).astype(int), score_b, ("log_loss",))
    [row] = (
        _gate({"metric": "log_loss", "not_worse": "significant", "margin": 0.05})
        .evaluate(card_a, card_b)
        .evidence
    )
    assert row.note.startswith("paired t p=") and row.passed
    # the per-row mean is the metric: the estimate is the log-loss improvement itself
    estimate = float(row.note.split("improvement ")[1].split(",")[0])
    assert estimate == pytest.approx(card_b.metrics["log_loss"] - card_a.metrics["log_loss"],
                                     abs=1e-3)  # fmt: skip


def test_custom_metric_is_bootstrapped_reproducibly():
    errors = make_metric("errors", lambda y, p, s: float(np.sum(y != p)), greater_is_better=False)
    good, _ = _classifier(0.5, 8)
    bad, _ = _classifier(1.5, 9)
    gate = Gate([SignificanceRule("errors", better="significant", resamples=300)],
                {"errors": errors})  # fmt: skip

    def card(pred):
        rows = HoldoutRows(y_true=Y, y_pred=pred)
        return ScoreCard(n=len(Y), metrics={"errors": float(np.sum(pred != Y))}, rows=rows)

    first = gate.evaluate(card(good), card(bad))
    assert first.passed and first.evidence[0].note.startswith("paired bootstrap p=")
    assert gate.evaluate(card(good), card(bad)).evidence == first.evidence


@pytest.mark.parametrize(
    ("champion", "passed", "note"),
    [
        (None, True, "no champion: skipped"),
        (ScoreCard(n=600, metrics={"accuracy": 0.5}), False, "no per-row scores"),
        (ScoreCard(n=600, metrics={"accuracy": float("nan")}), True, "unusable: skipped"),
    ],
)
def test_without_a_champion_or_its_rows(champion, passed, note):
    good, _ = _classifier(0.5, 1)
    [row] = (
        _gate({"metric": "accuracy", "better": "significant"})
        .evaluate(_card(Y, good), champion)
        .evidence
    )
    assert row.passed is passed and note in row.note


def test_different_rows_cannot_be_paired():
    good, _ = _classifier(0.5, 1)
    [row] = (
        _gate({"metric": "accuracy", "better": "significant"})
        .evaluate(_card(Y, good), _card(Y[:-1], good[:-1]))
        .evidence
    )
    assert not row.passed and "not scored on the same rows" in row.note


def test_gate_says_whether_it_needs_rows():
    assert _gate({"metric": "accuracy", "better": "significant"}).needs_rows
    assert not _gate({"metric": "accuracy", "min": 0.5}).needs_rows


def test_a_custom_metric_may_name_mcnemar_and_a_builtin_any_bootstrap():
    custom = build_rule({"metric": "error_rate", "better": "significant", "test": "mcnemar"})
    assert custom.test == "mcnemar"
    assert build_rule({"metric": "roc_auc", "better": "significant", "test": "bootstrap"})
