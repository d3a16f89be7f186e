"""Categorical features: declared under ``categorical:``, one-hot encoded by the estimator spec
(scikit-learn) or by River natively, saved under the narrow skops trust, served from text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrainer.adapters.serialization import artifact_types, dump_model, load_model
from retrainer.config import PipelineConfig, parse_config
from retrainer.core.clock import SimulatedClock
from retrainer.engine.pipeline import Pipeline
from retrainer.engine.runs.run import execute_run
from retrainer.engine.serving import ModelHolder, predict_frame, rows_frame
from retrainer.errors import ConfigError, DataError
from retrainer.testing import in_memory_project, pipeline_spec

RIVER: dict[str, Any] = {
    "estimator": "retrainer.integrations.river:RiverClassifier",
    "params": {"model": "linear_model.LogisticRegression", "scale": True},
}


def banded_frame(n: int = 600, seed: int = 0, dtype: Any = "str") -> pd.DataFrame:
    """Hourly rows whose label is mostly told by a text column ``band`` (low/mid/high)."""
    rng = np.random.default_rng(seed)
    band = rng.choice(["low", "mid", "high"], size=n)
    x1 = rng.normal(size=n)
    y = ((band == "high") | ((band == "mid") & (x1 > 0))).astype(int)
    return pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=n, freq="h"),
            "x1": x1,
            "band": pd.Series(band, dtype=dtype),
            "y": y,
        }
    )


def banded_spec(**overrides: Any) -> dict[str, Any]:
    spec = {"features": ["x1", "band"], "categorical": ["band"], **overrides}
    return pipeline_spec(**spec)


def _pipeline(tmp_path: Path, **overrides: Any) -> Pipeline:
    return Pipeline(PipelineConfig.model_validate(banded_spec(**overrides)), tmp_path)


# --- configuration ------------------------------------------------------------------------


def test_categorical_must_name_features():
    with pytest.raises(ConfigError) as info:
        parse_config({"pipelines": [banded_spec(categorical=["band", "city"])]})
    assert "categorical lists 'city', which is not in features (x1, band)" in str(info.value)
    with pytest.raises(ConfigError, match="categorical columns must be unique; repeated: band"):
        parse_config({"pipelines": [banded_spec(categorical=["band", "band"])]})


def test_a_pipeline_without_categorical_keeps_its_definition_hash(tmp_path: Path):
    # the hash of this spec as written before ``categorical`` existed: runs keep their key
    plain = Pipeline(PipelineConfig.model_validate(pipeline_spec()), tmp_path)
    assert plain.definition_hash == (
        "2716e80bb5e51ccb4139c481ec0eea5316e34c86969765404d638831d968d3b0"
    )
    assert "categorical" not in plain.train_params()
    declared = _pipeline(tmp_path)
    assert declared.definition_hash != _pipeline(tmp_path, categorical=[]).definition_hash
    assert declared.train_params()["categorical"] == ["band"]


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [object, "str", "category"])
def test_a_text_feature_not_declared_names_the_column_and_the_key(tmp_path: Path, dtype: Any):
    frame = banded_frame(dtype=dtype)
    with pytest.raises(DataError) as info:
        _pipeline(tmp_path, categorical=[]).validate(frame, "w")
    message = str(info.value)
    assert message.startswith("feature column 'band' has dtype ")
    assert "list it under categorical: in the pipeline (categorical: [band])" in message
    _pipeline(tmp_path).validate(frame, "w")  # declared: fine


# --- training -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [object, "str", "category"])
def test_the_estimator_spec_one_hot_encodes_declared_columns(tmp_path: Path, dtype: Any):
    pipeline = _pipeline(tmp_path)
    frame = banded_frame(dtype=dtype)
    model = pipeline.fit(frame)
    encoder = model.named_steps["encode"].named_transformers_["categorical"]
    assert sorted(encoder.categories_[0]) == ["high", "low", "mid"]
    assert pipeline.score(model, banded_frame(seed=1, dtype=dtype)).metrics["accuracy"] > 0.85
    unseen = frame.head(3).assign(band=pd.Series(["new"] * 3, dtype=dtype))
    assert len(pipeline.predict(model, unseen).y_pred) == 3  # a new category is answered


def test_codes_declared_categorical_are_one_hot_encoded_too(tmp_path: Path):
    frame = banded_frame().assign(band=lambda f: f["band"].map({"low": 10, "mid": 20, "high": 30}))
    model = _pipeline(tmp_path).fit(frame)
    assert model.named_steps["encode"].transform(frame.head(1)[["x1", "band"]]).shape == (1, 4)


def test_river_takes_categorical_columns_natively_and_keeps_learning(tmp_path: Path):
    pipeline = _pipeline(tmp_path, model=RIVER, window={"kind": "new"})
    frame = banded_frame(1200)
    model = pipeline.fit(frame.iloc[:200])
    assert model.categorical == ["band"]  # encoded by River, not wrapped in scikit-learn
    model = pipeline.update(model, frame.iloc[200:1000])
    assert pipeline.score(model, frame.iloc[1000:]).metrics["accuracy"] > 0.85
    unseen = frame.head(2).assign(band="new")
    assert len(pipeline.predict(model, unseen).y_pred) == 2
    big = frame.iloc[:300]  # predict_proba_many from 200 rows on: the same answers
    one_by_one = np.vstack([model.predict_proba(big.iloc[[i]][["x1", "band"]]) for i in (0, 1)])
    assert np.allclose(model.predict_proba(big[["x1", "band"]])[:2], one_by_one)


# --- saving and serving -------------------------------------------------------------------


@pytest.mark.parametrize("spec", [{}, {"model": RIVER}], ids=["sklearn", "river"])
def test_an_encoded_model_loads_under_the_narrow_trust(tmp_path: Path, spec: dict[str, Any]):
    pipeline = _pipeline(tmp_path, **spec)
    frame = banded_frame()
    model = pipeline.fit(frame)
    data = dump_model(model, "skops")
    types = artifact_types(data)
    if not spec:
        assert "sklearn.compose._column_transformer.ColumnTransformer" in types
        assert "sklearn.preprocessing._encoders.OneHotEncoder" in types
    loaded = load_model(data, "skops")  # no trusted_types given: the default list
    X = frame[["x1", "band"]]
    assert np.array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("spec", [{}, {"model": RIVER}], ids=["sklearn", "river"])
def test_a_served_model_takes_text_for_a_categorical_column(spec: dict[str, Any]):
    project = in_memory_project(
        banded_frame(800),
        clock=SimulatedClock(datetime(2024, 2, 10, tzinfo=UTC)),
        **banded_spec(**spec),
    )
    try:
        execute_run(project, clock=SimulatedClock(datetime(2024, 1, 30, tzinfo=UTC)))
        holder = ModelHolder(project)
        [served] = holder.refresh()
        kinds = {f.name: f.kind for f in served.features}
        assert kinds == {"x1": "float", "band": "text"}
        rows = [{"x1": 0.1, "band": "high"}, {"x1": -1.0, "band": "low"}, {"x1": 0.0, "band": "?"}]
        answers = predict_frame(served, rows_frame(served.features, rows))
        assert [a["prediction"] for a in answers[:2]] == [1, 0]
        assert len(answers) == 3
    finally:
        project.close()
