"""Reference profiles: computed once from the training window, stored with the model version.

The profile covers the features, the target and the model's own output on the training rows
(its score when it has ``predict_proba``, else its prediction), so that the monitor can check
feature drift, target drift and prediction drift of a later window without re-reading the
reference data.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from retrainer.core.profile import Columns, Profile, compute_profile
from retrainer.engine.frames import to_columns
from retrainer.engine.pipeline import Pipeline, Prediction

PREDICTION_COLUMN = "__prediction__"


def model_output(pipeline: Pipeline, model: Any, frame: pd.DataFrame) -> pd.Series:
    """What the profile tracks of the model: its score (binary), else its prediction."""
    return output_of(pipeline.predict(model, frame), frame.index)


def output_of(pred: Prediction, index: pd.Index) -> pd.Series:
    """:func:`model_output` from predictions already made on the rows of ``index``."""
    values = pred.y_score if pred.y_score is not None and pred.y_score.ndim == 1 else pred.y_pred
    return pd.Series(values, index=index, name=PREDICTION_COLUMN)


def _categorical(pipeline: Pipeline, frame: pd.DataFrame, output: pd.Series | None) -> list[str]:
    declared = dict.fromkeys(
        [*pipeline.config.categorical, *pipeline.config.monitor.drift.categorical]
    )
    cats = [c for c in declared if c in frame.columns]
    target = pipeline.config.target
    if target in frame.columns and pipeline.task(frame) == "classification":
        cats.append(target)
    if output is not None and not pd.api.types.is_float_dtype(output):
        cats.append(PREDICTION_COLUMN)
    return cats


def window_columns(
    pipeline: Pipeline, frame: pd.DataFrame, output: pd.Series | None = None
) -> Columns:
    """The columns a profile or a drift check looks at: features, target, model output."""
    keep = [c for c in [*pipeline.feature_columns, pipeline.config.target] if c in frame.columns]
    data = frame[keep]
    if output is not None:
        data = data.assign(**{PREDICTION_COLUMN: output.to_numpy()})
    return to_columns(data, categorical=_categorical(pipeline, frame, output))


def reference_profile(pipeline: Pipeline, model: Any, train: pd.DataFrame) -> Profile:
    """The profile of the training rows, with the trained model's output on them."""
    return compute_profile(window_columns(pipeline, train, model_output(pipeline, model, train)))
