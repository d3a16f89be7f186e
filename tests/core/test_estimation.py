"""CBPE and DLE against truths known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from retrainer.core.estimation import (
    estimate_classification,
    estimate_regression,
    expected_accuracy,
    expected_f1,
    expected_roc_auc,
)


def _draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probabilities (a Beta mix, not uniform) and labels drawn from them."""
    p = rng.beta(0.7, 0.9, size=n)
    return p, (rng.random(n) < p).astype(float)


def _realized(metric: str, y: np.ndarray, p: np.ndarray) -> float:
    yhat = (p >= 0.5).astype(float)
    if metric == "accuracy":
        return float(np.mean(y == yhat))
    if metric == "f1":
        return float(f1_score(y, yhat))
    return float(roc_auc_score(y, p))


@pytest.mark.parametrize("metric", ["accuracy", "f1", "roc_auc"])
def test_cbpe_interval_covers_the_realized_metric_about_95_percent(metric):
    rng = np.random.default_rng(1)
    hits, trials = 0, 200
    for _ in range(trials):
        p, y = _draw(rng, 500)
        e = estimate_classification(p, metrics=(metric,))[metric]
        hits += e.low <= _realized(metric, y, p) <= e.high
    # 95% nominal; binomial sd over 200 trials is 1.5 points
    assert 0.90 <= hits / trials <= 0.99, hits


@pytest.mark.parametrize("metric", ["accuracy", "f1", "roc_auc"])
def test_cbpe_is_unbiased_when_perfectly_calibrated(metric):
    rng = np.random.default_rng(2)
    errors = []
    for _ in range(300):
        p, y = _draw(rng, 400)
        e = estimate_classification(p, metrics=(metric,))[metric]
        errors.append(e.value - _realized(metric, y, p))
    errors_ = np.asarray(errors)
    # the mean error is within 3 standard errors of 0 (AUC of the expected curve and F1 of
    # the expected matrix are ratio estimates: a bias of O(1/n), far below that)
    assert abs(errors_.mean()) < 3 * errors_.std() / math.sqrt(len(errors_)) + 2e-3


def test_a_miscalibrated_model_is_misestimated():
    """Over-confident probabilities (the assumption CBPE rests on, broken) overstate accuracy."""
    rng = np.random.default_rng(3)
    p, y = _draw(rng, 20_000)
    sharp = np.clip((p - 0.5) * 3 + 0.5, 0, 1)  # same ranking, over-confident
    e = estimate_classification(sharp, metrics=("accuracy",))["accuracy"]
    assert e.value > _realized("accuracy", y, p) + 0.05


def test_expected_metrics_equal_the_plain_ones_on_certain_labels():
    y = np.array([1, 0, 1, 1, 0, 0, 1.0])
    yhat = np.array([1, 0, 0, 1, 1, 0, 1.0])
    score = np.array([0.9, 0.1, 0.4, 0.8, 0.6, 0.2, 0.6])
    assert expected_accuracy(y, yhat) == pytest.approx(np.mean(y == yhat))
    assert expected_f1(y, yhat) == pytest.approx(f1_score(y, yhat))
    assert expected_roc_auc(y, score) == pytest.approx(roc_auc_score(y, score))


def test_one_class_auc_is_undefined():
    e = estimate_classification(np.ones(10), metrics=("roc_auc",))["roc_auc"]
    assert e.status == "undefined" and e.value is None


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="log_loss"):
        estimate_classification([0.5], metrics=("log_loss",))


def test_dle_on_a_known_noise_model():
    """Errors ~ N(0, sigma(x)^2): with the true loss functions DLE is unbiased and its
    interval covers the realized MAE and RMSE about 95% of the time."""
    rng = np.random.default_rng(4)
    hits = {"mae": 0, "rmse": 0}
    trials = 200
    for _ in range(trials):
        sigma = 0.5 + rng.uniform(size=1000) * 2
        e = rng.normal(scale=sigma)
        est = estimate_regression(sigma * math.sqrt(2 / math.pi), sigma**2)
        realized = {"mae": np.mean(np.abs(e)), "rmse": math.sqrt(np.mean(e**2))}
        for m in hits:
            hits[m] += est[m].low <= realized[m] <= est[m].high
    for m, h in hits.items():
        assert 0.90 <= h / trials <= 0.99, (m, h)


def test_dle_of_no_rows_is_insufficient():
    est = estimate_regression([], [])
    assert est["mae"].status == "insufficient_data" and est["mae"].value is None


def _same(a, b):
    for m in a:
        for f in ("value", "low", "high"):
            assert getattr(a[m], f) == pytest.approx(getattr(b[m], f), abs=1e-12), (m, f)


@pytest.mark.parametrize("y_pred", ["threshold", "none", "random", "all_positive"])
def test_score_with_calibration_equals_the_calibrated_probabilities(y_pred):
    """The sorted path (one value sort, the map on sorted scores) and its fallback (predictions
    that are no threshold on the score) give the estimate of the calibrated probabilities."""
    rng = np.random.default_rng(5)
    score = np.round(rng.uniform(size=3000), 2)  # ties, as a tree model's scores have

    def calibrate(s):
        return np.interp(s, [0.0, 0.3, 0.7, 1.0], [0.05, 0.2, 0.9, 0.95])

    pred = {
        "threshold": (score >= 0.4).astype(int),
        "none": None,
        "random": (rng.uniform(size=score.size) < 0.5).astype(int),
        "all_positive": np.ones(score.size, dtype=int),
    }[y_pred]
    by_map = estimate_classification(score=score, calibration=calibrate, y_pred=pred)
    _same(by_map, estimate_classification(calibrate(score), y_pred=pred, score=score))
    if y_pred != "none":  # p sorted on itself: its own ranking
        _same(
            estimate_classification(calibrate(score), y_pred=pred),
            estimate_classification(calibrate(score), y_pred=pred, score=calibrate(score)),
        )


def test_calibration_needs_a_score_and_no_probabilities():
    with pytest.raises(ValueError, match="calibration"):
        estimate_classification([0.5], calibration=lambda s: s)
    with pytest.raises(ValueError, match="calibration"):
        estimate_classification([0.5], score=[0.5], calibration=lambda s: s)
    with pytest.raises(ValueError, match="calibrated probabilities"):
        estimate_classification(score=[0.5])
    with pytest.raises(ValueError, match="NaN"):
        estimate_classification(score=[0.5, np.nan], calibration=lambda s: s)
