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
