"""The pipeline: predictions with the transforming steps run once, the labelled rows of a window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from retrainer.config import PipelineConfig
from retrainer.engine.pipeline import Pipeline
from retrainer.errors import DataError
from tests.conftest import make_frame, pipeline_config


class Counting(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """Passes rows through and counts the transform calls."""

    calls = 0

    def fit(self, X: Any, y: Any = None) -> Counting:
        return self

    def transform(self, X: Any) -> Any:
        Counting.calls += 1
        return X


def test_a_sklearn_pipeline_transforms_once_for_labels_and_scores(tmp_path: Path):
    frame = make_frame(300)
    pipeline = Pipeline(PipelineConfig.model_validate(pipeline_config()), tmp_path)
    X, y = frame[["x1", "x2"]], frame["y"]
    model = make_pipeline(Counting(), StandardScaler(), LogisticRegression()).fit(X, y)
    Counting.calls = 0
    pred = pipeline.predict(model, frame)
    assert Counting.calls == 1  # twice through the pipeline's own predict and predict_proba
    assert np.array_equal(pred.y_pred, model.predict(X))
    assert pred.y_score is not None
    assert np.array_equal(pred.y_score, model.predict_proba(X)[:, 1])


def test_a_plain_estimator_and_a_label_only_pipeline_are_asked_as_they_are(tmp_path: Path):
    frame = make_frame(300)
    X, y = frame[["x1", "x2"]], frame["y"]
    plain = LogisticRegression().fit(X, y)
    scored = Pipeline(PipelineConfig.model_validate(pipeline_config()), tmp_path)
    pred = scored.predict(plain, frame)
    assert np.array_equal(pred.y_pred, plain.predict(X))
    assert pred.y_score is not None and np.allclose(pred.y_score, plain.predict_proba(X)[:, 1])
    labels_only = Pipeline(
        PipelineConfig.model_validate(pipeline_config(metrics=["accuracy"])), tmp_path
    )
    model = make_pipeline(Counting(), LogisticRegression()).fit(X, y)
    Counting.calls = 0
    pred = labels_only.predict(model, pd.DataFrame(frame))
    assert pred.y_score is None and Counting.calls == 1


def _labels_pipeline(tmp_path: Path, **overrides: Any) -> Pipeline:
    return Pipeline(PipelineConfig.model_validate(pipeline_config(**overrides)), tmp_path)


def test_labelled_leaves_out_the_rows_waiting_for_their_label(tmp_path: Path):
    pipeline = _labels_pipeline(tmp_path)
    frame = make_frame(10)
    frame["y"] = frame["y"].astype("Int64")
    frame.loc[7:, "y"] = pd.NA  # the newest rows: labels not arrived
    out, n = pipeline.labelled(frame, "w")
    assert n == 3 and len(out) == 7
    assert out["y"].dtype == np.int64  # the NumPy dtype back: what estimators expect
    assert out["ts"].tolist() == frame["ts"][:7].tolist()
    # a gap in the middle (a label that came late): the other rows, in order
    frame.loc[7:, "y"] = 1
    frame.loc[[2, 5], "y"] = pd.NA
    out, n = pipeline.labelled(frame, "w")
    assert n == 2 and out["ts"].tolist() == frame["ts"].drop([2, 5]).tolist()
    assert list(out.index) == list(range(8))
    # every label there: the same frame, untouched
    full = make_frame(10)
    assert pipeline.labelled(full, "w") == (full, 0)


def test_labelled_without_any_label_or_when_told_to_fail(tmp_path: Path):
    frame = make_frame(10)
    frame["y"] = np.nan
    with pytest.raises(DataError, match=r"has 10 rows and none has a label yet .*column 'y'"):
        _labels_pipeline(tmp_path).labelled(frame, "w")
    strict = _labels_pipeline(tmp_path, unlabelled="error")
    assert strict.labelled(frame, "w")[0] is frame  # validate names the missing values
    with pytest.raises(DataError, match=r"'y' has 10 missing value.*unlabelled: skip"):
        strict.validate(frame, "w")
