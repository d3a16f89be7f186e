"""The rank-based ROC AUC agrees with scikit-learn's."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from retrainer.core.metrics import binary_auc, compute, get_metric


@pytest.mark.parametrize("seed", range(5))
def test_binary_auc_matches_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(300) < 0.3
    score = np.round(rng.random(300) + y * 0.3, 1)  # rounded: many ties
    assert binary_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_roc_auc_metric_uses_it_and_handles_one_class() -> None:
    metric = get_metric("roc_auc")
    y = np.array([0, 1, 1, 0, 1])
    s = np.array([0.2, 0.9, 0.6, 0.7, 0.4])
    assert compute(metric, y, (s > 0.5).astype(int), s) == pytest.approx(roc_auc_score(y, s))
    assert np.isnan(binary_auc(np.ones(3, dtype=bool), np.array([0.1, 0.2, 0.3])))
