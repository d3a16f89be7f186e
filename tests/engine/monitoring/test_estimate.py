"""The loss models' input matrix: text features coded as the reference's categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retrainer.engine.monitoring.estimate import _codes


@pytest.mark.parametrize("dtype", ["str", "string", "object", "category"])
@pytest.mark.parametrize("gaps", [False, True])
def test_codes_are_the_categorical_codes(dtype, gaps):
    """Arrow's lookup (text without gaps) and the Index lookup code as Categorical did:
    a known value its position among the categories, an unknown one or a gap NaN."""
    values = ["b", "a", "zz", "b", None] if gaps else ["b", "a", "zz", "b", "a"]
    column = pd.Series(values, dtype=dtype)
    categories = pd.Index(["a", "b"])
    expected = np.array([1.0, 0.0, np.nan, 1.0, np.nan if gaps else 0.0])
    np.testing.assert_array_equal(_codes(column, categories), expected)


def test_a_realized_metric_outside_the_interval_is_named_in_the_result_and_the_report():
    from retrainer.core.estimation import Estimate
    from retrainer.engine.monitoring.report import _estimated
    from retrainer.engine.monitoring.results import Estimation

    def estimation(realized: float) -> Estimation:
        est = Estimate(metric="accuracy", value=0.9, low=0.85, high=0.95, n=300)
        auc = Estimate(metric="roc_auc", value=0.9, low=0.85, high=0.95, n=300)
        return Estimation(method="cbpe", rows=300, unlabelled=0, reference_rows=500,
                          estimates=(est, auc), realized={"accuracy": realized, "roc_auc": None})  # fmt: skip

    assert estimation(0.9).outside() == [] and estimation(0.9).warning() is None
    off = estimation(0.6)
    assert off.outside() == ["accuracy"]
    assert off.warning() is not None and off.warning().startswith("the realized accuracy lies")

    class _Summary:
        estimated = off

    assert "Warning: the realized accuracy lies outside" in _estimated(_Summary())["note"]  # type: ignore[arg-type]
