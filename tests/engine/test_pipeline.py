"""The pipeline: predictions with the transforming steps run once, the labelled rows of a window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from retrainer import (
    AbsoluteRule,
    ChangeRule,
    Controller,
    Cooldown,
    Project,
    ScheduleTrigger,
    SimulatedClock,
    SliceRule,
    WallClock,
    execute_run,
    make_metric,
)
from retrainer.adapters.sources import CallableSource
from retrainer.config import PipelineConfig, json_schema, parse_config
from retrainer.engine.pipeline import Pipeline
from retrainer.errors import ConfigError, DataError, TrainingError
from retrainer.testing import drifting_frame
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


@pytest.mark.parametrize("dtype", [object, "str"])
def test_a_feature_half_made_of_text_is_named_unless_it_holds_codes(tmp_path: Path, dtype):
    # not a stray value: half the prices turned to 'abc' (it failed in training as "could not
    # convert string to float: 'abc'"), while whole numbers and text are codes a train
    # function may use
    pipeline = _train_fn_pipeline(tmp_path)
    frame = make_frame(300)
    half = np.where(np.arange(300) % 2 == 1, "abc", frame["x2"].astype(str))
    frame["x2"] = pd.Series(half, dtype=dtype)
    with pytest.raises(DataError) as info:
        pipeline.validate(frame, "w")
    assert str(info.value).startswith(
        "feature column 'x2' has non-numeric values in w, e.g. 'abc' (row 1 of the window, "
        f"time {frame['ts'][1]}; 150 of 300 values are not numbers); "
    )
    frame["x2"] = np.where(np.arange(300) % 2 == 1, "code-a", "123")  # codes: left alone
    pipeline.validate(frame, "w")
    frame["x2"] = np.where(np.arange(300) % 3 == 0, "1.5", "code-a")  # mostly text: left alone
    pipeline.validate(frame, "w")


def test_an_all_missing_feature_is_named_before_training(tmp_path: Path):
    pipeline = _labels_pipeline(tmp_path)
    frame = make_frame(300)
    frame["x1"] = np.nan
    with pytest.raises(DataError) as info:
        pipeline.check_train(frame, "[a .. b) of src")
    assert str(info.value) == (
        "feature column 'x1' has no value in the 300 training rows of [a .. b) of src: all are "
        "missing (NaN); fix the column in the source, or take it out of the pipeline's features"
    )
    frame["x1"] = pd.Series([pd.NA] * 300, dtype="Float64")
    with pytest.raises(DataError, match=r"^feature column 'x1' has no value"):
        pipeline.check_train(frame, "w")
    frame["x1"] = None  # an object column of None
    with pytest.raises(DataError, match=r"^feature column 'x1' has no value"):
        pipeline.check_train(frame, "w")
    frame["x1"] = make_frame(300)["x1"]
    frame.loc[5, "x1"] = np.nan
    pipeline.check_train(frame, "w")  # some missing values: left to the model


def test_some_missing_values_are_left_to_the_model_and_named_if_it_fails(tmp_path: Path):
    frame = make_frame(300)
    frame.loc[frame.index % 4 == 0, "x2"] = np.nan
    imputing = _labels_pipeline(
        tmp_path,
        model={"estimator": "tests.engine.test_pipeline:imputed_logistic"},
    )
    imputing.validate(frame, "w")
    imputing.check_train(frame, "w")
    model = imputing.fit(frame)
    assert imputing.score(model, frame).n == 300
    plain = _labels_pipeline(tmp_path)
    with pytest.raises(TrainingError) as info:
        plain.fit(frame)
    assert str(info.value).startswith(
        "training with 'sklearn.linear_model:LogisticRegression' raised ValueError on missing "
        "values (feature column 'x2' has 75 of 300 values missing): Input X contains NaN"
    )
    with pytest.raises(TrainingError, match=r"holdout on missing values \(feature column 'x2'"):
        plain.score(plain.fit(make_frame(300)), frame)


def imputed_logistic() -> Any:
    """An estimator spec (``tests.engine.test_pipeline:imputed_logistic``) that imputes."""
    from sklearn.impute import SimpleImputer

    return make_pipeline(SimpleImputer(), LogisticRegression())


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


# -- embedding: a pipeline from Python objects ------------------------------------------------

T_RUN = datetime(2024, 1, 20, tzinfo=UTC)


def _train(data: pd.DataFrame, params: dict[str, Any]) -> Any:
    return LogisticRegression().fit(data[params["features"]], data[params["target"]])


def _other_train(data: pd.DataFrame, params: dict[str, Any]) -> Any:
    return LogisticRegression(C=0.5).fit(data[params["features"]], data[params["target"]])


def _share_of_ones(y_true: Any, y_pred: Any, y_score: Any) -> float:
    return float(np.mean(np.asarray(y_pred) == 1))


def _embedded(**overrides: Any) -> Pipeline:
    kwargs: dict[str, Any] = {
        "name": "toy",
        "source": drifting_frame(800),
        "time_column": "ts",
        "target": "y",
        "features": ["x1", "x2"],
        "train": _train,
        "metrics": ["accuracy"],
        "rules": [{"metric": "accuracy", "min": 0.6}],
    }
    kwargs.update(overrides)
    return Pipeline.from_callables(**kwargs)


def test_a_pipeline_of_callables_runs_in_an_in_memory_project():
    metric = make_metric("share_of_ones", _share_of_ones, greater_is_better=False)
    pipeline = _embedded(
        metrics=["accuracy", metric],
        rules=[AbsoluteRule("accuracy", min=0.6), {"metric": "share_of_ones", "max": 0.99}],
    )
    with Project.in_memory(pipelines=[pipeline], clock=SimulatedClock(T_RUN)) as project:
        assert project.pipeline("toy") is pipeline
        result = execute_run(project, clock=project.clock)
        assert result.ok and result.promoted
        version = result.version
        assert version is not None and set(version.metrics) == {"accuracy", "share_of_ones"}
        assert version.params["train"] == f"{__name__}:_train"
        assert version.snapshot.rows == 19 * 24
        rows = {(r.rule, r.metric) for r in result.verdict.evidence}
        assert ("absolute", "share_of_ones") in rows
        assert project.pipeline().metrics["share_of_ones"].greater_is_better is False


def test_the_definition_hash_of_callables_is_stable_and_sees_the_function():
    assert _embedded().definition_hash == _embedded().definition_hash
    assert _embedded(train=_other_train).definition_hash != _embedded().definition_hash
    recorded = json.dumps(_embedded().config.model_dump(mode="json"))  # what the hash reads
    assert f"{__name__}:_train" in recorded and "DataFrame" in recorded


def test_the_source_may_be_a_function_or_a_source_object():
    frame = drifting_frame(24 * 25)
    by_function = _embedded(source=lambda start, end: frame)
    source = CallableSource(lambda start, end: frame, time_column="ts", name="mine")
    by_source = _embedded(source=source, time_column=None)
    assert by_source.source is source and by_source.time_column == "ts"
    end = datetime(2024, 1, 10, tzinfo=UTC)
    assert len(by_function.source.load(None, end)) == len(by_source.source.load(None, end)) == 216
    with pytest.raises(ConfigError, match="time_column is required"):
        _embedded(source=lambda start, end: frame, time_column=None)
    with pytest.raises(ConfigError, match="source must be a function"):
        _embedded(source=42)


def test_rules_triggers_and_guards_may_be_objects():
    pipeline = _embedded(
        rules=[
            AbsoluteRule("accuracy", min=0.6),
            ChangeRule("accuracy", max_regression=0.05),
            SliceRule("accuracy", column="segment", min_size=10, min=0.5),
        ],
        triggers=[ScheduleTrigger("0 2 * * *")],
        guards=[Cooldown("1d")],
    )
    rules = pipeline.config.blessing.rules
    # the config holds the rules' typed specs, written back as given (``slice``, not ``column``)
    assert rules[0].to_spec() == {"metric": "accuracy", "min": 0.6}
    assert rules[2].to_spec()["slice"] == "segment" and "column" not in rules[2].to_spec()
    assert [type(r).__name__ for r in pipeline.rules] == ["AbsoluteRule", "ChangeRule", "SliceRule"]
    assert pipeline.slice_columns == ["segment"]
    assert pipeline.config.triggers == [ScheduleTrigger("0 2 * * *").to_spec()]
    assert pipeline.config.guards == [Cooldown("1d").to_spec()]


def test_a_bad_embedded_pipeline_names_its_keys():
    with pytest.raises(ConfigError) as info:
        _embedded(features=["x1", "x1"], holdout=1.5)
    problems = info.value.problems
    assert any(p.startswith("features:") and "repeated: x1" in p for p in problems), problems
    assert any(p.startswith("blessing.holdout:") for p in problems), problems
    assert not any("pipelines[0]" in p for p in problems)
    with pytest.raises(ConfigError, match=r"metrics\[1\].*make_metric"):
        _embedded(metrics=["accuracy", _share_of_ones])
    with pytest.raises(ConfigError, match=r"rules\[0\]: expected a mapping"):
        _embedded(rules=[42])


def test_a_config_in_a_file_still_takes_strings_only():
    problems = []
    for train in (3, "no-colon"):
        with pytest.raises(ConfigError) as info:
            parse_config({"pipelines": [pipeline_config(model=None, train=train)]})
        problems += info.value.problems
    assert problems == [
        "pipelines[0].train: got 3; input should be a valid string",
        "pipelines[0].train: got 'no-colon'; must name a Python object as 'module:attribute', "
        "e.g. 'pipeline:train'",
    ]
    schema = json_schema()["$defs"]
    assert schema["PipelineConfig"]["properties"]["train"] == {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "default": None,
        "title": "Train",
    }
    assert schema["MetricConfig"]["properties"]["function"] == {
        "title": "Function",
        "type": "string",
    }


def test_in_memory_needs_a_config_or_pipelines_and_cleans_its_folder(tmp_path: Path):
    with pytest.raises(ConfigError, match="either a config or pipelines"):
        Project.in_memory()
    config = parse_config({"pipelines": [pipeline_config()]})
    with pytest.raises(ConfigError, match="either a config or pipelines"):
        Project.in_memory(config, pipelines=[_embedded()])
    with pytest.raises(ConfigError, match="settings go with pipelines"):
        Project.in_memory(config, settings={"controller": {}})
    with pytest.raises(ConfigError, match=r"controller\.tick"):
        Project.in_memory(pipelines=[_embedded()], settings={"controller": {"tick": -1}})
    project = Project.in_memory(pipelines=[_embedded()], settings={"controller": {"tick": 5}})
    assert project.config.controller.tick == 5
    assert isinstance(project.clock, WallClock)
    folder = project.root
    assert folder.is_dir()
    project.close()
    assert not folder.exists()
    kept = Project.in_memory(config, tmp_path)
    kept.close()
    assert tmp_path.is_dir()  # a folder the caller gave is the caller's


def test_an_embedded_pipeline_is_driven_by_the_controller():
    pipeline = _embedded(triggers=[ScheduleTrigger("0 2 * * *")])
    clock = SimulatedClock(T_RUN)
    with Project.in_memory(pipelines=[pipeline], clock=clock) as project:
        controller = Controller(project, clock=project.clock)
        for _ in range(48):
            controller.tick()
            clock.advance(timedelta(hours=1))
        runs = project.store.list_runs("toy", limit=None)
        assert [r.status for r in runs] == ["succeeded", "succeeded"]


def test_a_misspelt_feature_column_is_named_with_its_likely_meaning(tmp_path: Path):
    pipeline = _labels_pipeline(tmp_path, features=["x1", "xx2", "colour"])
    with pytest.raises(DataError) as info:
        pipeline.validate(make_frame(20), "w")
    assert str(info.value).startswith(
        "feature column 'xx2' (did you mean 'x2'?), feature column 'colour' not found in the "
        "data of w; columns are: "
    ), str(info.value)
