"""The pipeline's predictions: the same answers, with the transforming steps run once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from retrainer.config import PipelineConfig
from retrainer.engine.pipeline import Pipeline
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
