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


def _train_fn_pipeline(tmp_path: Path, **overrides: Any) -> Pipeline:
    (tmp_path / "textpipe.py").write_text("def train(data, params):\n    raise AssertionError\n")
    return _labels_pipeline(tmp_path, model=None, train="textpipe:train", **overrides)


@pytest.mark.parametrize("dtype", [object, "str"])
def test_a_stray_string_in_a_numeric_feature_is_named_before_training(tmp_path: Path, dtype):
    # a train function may take text features, but a column of numbers with a few strings is
    # bad data: it failed in training as "could not convert string to float: 'abc'"
    pipeline = _train_fn_pipeline(tmp_path, features=["x1", "x2", "segment"])
    frame = make_frame(300)
    x2 = frame["x2"].astype(str).astype(dtype)
    x2[[40, 41]] = ["abc", "n/a"]
    frame["x2"] = x2
    with pytest.raises(DataError) as info:
        pipeline.validate(frame, "[a .. b) of src")
    assert str(info.value).startswith(
        "feature column 'x2' has non-numeric values in [a .. b) of src, e.g. 'abc' (row 40 of "
        f"the window, time {frame['ts'][40]}; 2 of 300 values are not numbers); fix or drop "
    )
    # every value a number (written as text), or text: left to the train function
    frame["x2"] = make_frame(300)["x2"].astype(str).astype(dtype)
    pipeline.validate(frame, "w")
    frame["x2"] = np.where(np.arange(300) % 5 == 0, "code-a", "123")  # 20% text: codes
    pipeline.validate(frame, "w")
    # a text column of mostly digits declared categorical is not checked
    frame["x2"] = x2
    declared = _train_fn_pipeline(
        tmp_path, features=["x1", "x2"], monitor={"drift": {"categorical": ["x2"]}}
    )
    declared.validate(frame, "w")


def test_an_estimator_spec_names_the_stray_string_too(tmp_path: Path):
    frame = make_frame(300)
    frame["x1"] = frame["x1"].astype(object)
    frame.loc[7, "x1"] = "abc"
    with pytest.raises(DataError, match=r"^feature column 'x1' has non-numeric values in w, "):
        _labels_pipeline(tmp_path).validate(frame, "w")


def test_numeric_columns_skip_the_text_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # validation runs on each window of a replay: numeric columns pay nothing for the check
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pd.to_numeric called on a numeric column")

    monkeypatch.setattr(pd, "to_numeric", boom)
    _train_fn_pipeline(tmp_path).validate(make_frame(300), "w")


@pytest.mark.parametrize("dtype", [object, "str"])
def test_a_target_mixing_numbers_and_text_is_named(tmp_path: Path, dtype):
    # it trained, scored NaN roc_auc and log_loss and failed the gate without naming the target
    frame = make_frame(300)
    y = frame["y"].astype(str).astype(dtype)
    y[123] = "yes"
    frame["y"] = y
    with pytest.raises(DataError) as info:
        _train_fn_pipeline(tmp_path).validate(frame, "w")
    assert str(info.value).startswith(
        "target column 'y' mixes numbers and text in w: 'yes' (row 123 of the window, time "
        f"{frame['ts'][123]}; 1 of 300 values is not a number); "
    )
    frame["y"] = np.where(make_frame(300)["y"] == 1, "up", "down")  # text labels: fine
    _train_fn_pipeline(tmp_path).validate(frame, "w")
