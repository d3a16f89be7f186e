from pathlib import Path

import pytest
import yaml

from retrainer.config import load_config, parse_config
from retrainer.errors import ConfigError
from tests.conftest import pipeline_config


def _problems(data) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.problems


def test_valid_config_has_defaults():
    cfg = parse_config({"pipelines": [pipeline_config()]})
    p = cfg.pipeline()
    assert p.window.kind == "full"
    assert p.blessing.holdout == 0.25
    assert cfg.storage.db_url.startswith("sqlite:///")
    assert cfg.serialization.format == "skops"


def test_each_problem_names_key_value_and_expectation():
    bad = pipeline_config(
        source={"kind": "parquett", "url": "x", "time_column": "ts"},
        window={"kind": "sliding", "duration": "ten days"},
        blessing={"holdout": 1.5, "rules": [{"metric": "accuracy", "min": 0.5}]},
    )
    bad["colour"] = "blue"
    problems = _problems({"pipelines": [bad]})
    text = "\n".join(problems)
    assert "pipelines[0].source.kind: got 'parquett'" in text
    assert "'parquet'" in text  # what is expected
    assert "pipelines[0].blessing.holdout: got 1.5" in text
    assert "less than 1" in text
    assert "pipelines[0].colour: unknown key" in text
    assert any("pipelines[0].window" in p and "ten days" in p for p in problems)
    assert len(problems) == 4


def test_missing_keys_are_listed_one_per_line():
    problems = _problems({"pipelines": [{"name": "x"}]})
    assert {p.split(":")[0] for p in problems} >= {
        "pipelines[0].source",
        "pipelines[0].target",
        "pipelines[0].features",
        "pipelines[0].metrics",
        "pipelines[0].blessing",
    }


def test_model_and_train_are_exclusive():
    problems = _problems({"pipelines": [pipeline_config(train="pipeline:train")]})
    assert any("exactly one of 'model'" in p for p in problems)


def test_unknown_metric_and_rule_metric_are_reported():
    cfg = pipeline_config(metrics=["accuracy", "acuracy"])
    cfg["blessing"]["rules"].append({"metric": "f1", "min": 0.1})
    problems = _problems({"pipelines": [cfg]})
    assert any(p.startswith("pipelines[0].metrics[1]: got 'acuracy'") for p in problems)
    assert any(p.startswith("pipelines[0].blessing.rules[2].metric: got 'f1'") for p in problems)


@pytest.mark.parametrize("fmt", ["joblib", "pickle"])
def test_pickle_formats_need_allow_pickle(fmt):
    problems = _problems({"serialization": {"format": fmt}, "pipelines": [pipeline_config()]})
    assert any("allow_pickle" in p and repr(fmt) in p for p in problems)


def test_env_overrides_storage(tmp_path: Path):
    (tmp_path / "retrainer.yaml").write_text(yaml.safe_dump({"pipelines": [pipeline_config()]}))
    cfg, file = load_config(
        tmp_path, env={"RETRAINER_DB_URL": "memory://", "RETRAINER_ARTIFACTS_URL": "memory://a"}
    )
    assert cfg.storage.db_url == "memory://"
    assert cfg.storage.artifacts_url == "memory://a"
    assert file == (tmp_path / "retrainer.yaml").resolve()


def test_yaml_syntax_error_names_line(tmp_path: Path):
    (tmp_path / "retrainer.yaml").write_text("pipelines:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_config(tmp_path, env={})


def test_missing_file_says_how_to_create_one(tmp_path: Path):
    with pytest.raises(ConfigError, match="retrainer init"):
        load_config(tmp_path / "nope", env={})


def test_pipeline_lookup():
    cfg = parse_config({"pipelines": [pipeline_config(), pipeline_config(name="other")]})
    assert cfg.pipeline("other").name == "other"
    with pytest.raises(ConfigError, match="several pipelines"):
        cfg.pipeline()
    with pytest.raises(ConfigError, match="no pipeline named 'x'"):
        cfg.pipeline("x")


def test_since_change_window_is_checked_with_the_monitor():
    ok = pipeline_config(window={"kind": "since_change", "min": "7d", "max": "90d"})
    assert parse_config({"pipelines": [ok]}).pipeline().window.min == "7d"
    off = pipeline_config(
        window={"kind": "since_change", "min": "7d"},
        monitor={"concept_drift": {"enabled": False}},
    )
    problems = _problems({"pipelines": [off]})
    assert any("set monitor.concept_drift.enabled: true" in p for p in problems)
    for window, says in [
        ({"kind": "since_change"}, "needs min"),
        ({"kind": "since_change", "min": "30d", "max": "7d"}, "must be at least"),
        ({"kind": "sliding", "duration": "7d", "min": "3d"}, "belong to a 'since_change' window"),
    ]:
        problems = _problems({"pipelines": [pipeline_config(window=window)]})
        assert any("pipelines[0].window" in p and says in p for p in problems), problems


def test_root_moves_the_project_folder_relative_paths_resolve_from(tmp_path: Path):
    from retrainer.config import project_root

    project = tmp_path / "project"
    project.mkdir()
    elsewhere = tmp_path / "out"
    elsewhere.mkdir()
    body = yaml.safe_dump({"pipelines": [pipeline_config()]})
    (project / "retrainer.yaml").write_text(body)
    (elsewhere / "recommended.yaml").write_text("root: ../project\n" + body)
    cfg, file = load_config(project)
    assert project_root(cfg, file) == project.resolve()
    cfg, file = load_config(elsewhere / "recommended.yaml")
    assert project_root(cfg, file) == project.resolve()
    (elsewhere / "bad.yaml").write_text("root: ../nowhere\n" + body)
    cfg, file = load_config(elsewhere / "bad.yaml")
    with pytest.raises(ConfigError, match=r"root: '../nowhere' is not a folder"):
        project_root(cfg, file)


def test_a_source_problem_is_named_by_its_keys_not_by_its_kind():
    source = {"kind": "parquet", "url": "d.parquet", "time_colum": "t"}
    with pytest.raises(ConfigError) as info:
        parse_config({"pipelines": [pipeline_config(source=source)]})
    assert "pipelines[0].source.time_column: missing; this key is required" in info.value.problems
    assert any(
        p.startswith("pipelines[0].source.time_colum: unknown key") for p in info.value.problems
    )
    assert not any("source.parquet" in p for p in info.value.problems)


def test_trigger_metric_is_checked_at_load_time():
    # a metric the controller cannot read failed only when the daemon started, without a key
    custom = {"name": "mine", "function": "pipeline:mine", "greater_is_better": True}
    cfg = pipeline_config(
        metrics=["accuracy", custom],
        triggers=[
            {"schedule": "@daily"},
            {"metric": "acuracy", "below": 0.7, "over": "1d"},
            {"any": [{"metric": "ctr", "below": 0.02}, {"metric": "mine", "below": 0.5}]},
        ],
    )
    problems = _problems({"pipelines": [cfg]})
    assert len(problems) == 2, problems
    assert problems[0].startswith(
        "pipelines[0].triggers[1].metric: unknown metric 'acuracy' (did you mean 'accuracy'?); "
        "known: accuracy, "
    )
    assert "ctr" in problems[0] and "roc_auc" in problems[0]
    assert problems[1].startswith(
        "pipelines[0].triggers[2].any[1].metric: 'mine' is a custom metric of this pipeline; "
        "metric triggers read the built-in metrics of the prediction log only: "
    )
    ok = pipeline_config(triggers=[{"metric": "roc_auc", "drop": 0.02, "over": "3d"}])
    assert parse_config({"pipelines": [ok]}).pipeline().triggers[0]["metric"] == "roc_auc"


def test_a_misspelt_metric_is_reported_once_not_again_by_the_rule_that_names_it_right():
    cfg = pipeline_config(metrics=["accuracy", "logloss"])
    cfg["blessing"]["rules"].append({"metric": "log_loss", "max_regression": 0.05})
    problems = _problems({"pipelines": [cfg]})
    assert len(problems) == 1 and problems[0].startswith("pipelines[0].metrics[1]: got 'logloss'")


def test_a_rule_with_an_unknown_key_shows_the_rule_once():
    cfg = pipeline_config()
    cfg["blessing"]["rules"].append({"metric": "accuracy", "max_regresion": 0.005})
    [problem] = _problems({"pipelines": [cfg]})
    assert problem.startswith("pipelines[0].blessing.rules[2]: got {")
    assert "unknown key(s) 'max_regresion'" in problem
    assert problem.count("max_regresion") == 2  # the rule as given, then the key named


def test_a_metric_of_the_other_task_is_a_config_error_naming_key_and_metric():
    # accuracy in a regression pipeline was accepted, and every run stored it as 0.0
    cfg = pipeline_config(
        task="regression",
        model={"estimator": "sklearn.linear_model:LinearRegression"},
        metrics=["mae", "accuracy"],
        blessing={"holdout": 0.25, "rules": [{"metric": "mae", "max": 1.0}]},
        triggers=[{"any": [{"metric": "roc_auc", "drop": 0.02, "over": "3d"}]}],
    )
    problems = _problems({"pipelines": [cfg]})
    assert len(problems) == 2, problems
    assert problems[0].startswith(
        "pipelines[0].metrics[1]: 'accuracy' is a classification metric, but the pipeline's "
        "task is regression; use one of mae, mape, mse, r2, rmse, or set task: classification"
    )
    assert problems[1].startswith("pipelines[0].triggers[0].any[0].metric: 'roc_auc' is a")
    # and the reverse: a regression metric in a classification pipeline
    [problem] = _problems(
        {"pipelines": [pipeline_config(task="classification", metrics=["accuracy", "rmse"])]}
    )
    assert problem.startswith("pipelines[0].metrics[1]: 'rmse' is a regression metric")
    assert "set task: regression" in problem


def test_with_task_auto_the_inferred_task_is_checked_when_the_data_is_read():
    import numpy as np
    import pandas as pd

    from retrainer.engine.pipeline import Pipeline

    cfg = parse_config(
        {
            "pipelines": [
                pipeline_config(
                    model={"estimator": "sklearn.linear_model:LinearRegression"},
                    metrics=["mae", "accuracy"],
                    blessing={"holdout": 0.25, "rules": [{"metric": "mae", "max": 9.0}]},
                )
            ]
        }
    ).pipeline()
    frame = pd.DataFrame({"x1": np.arange(10.0), "x2": 1.0, "y": np.arange(10.0) / 3})
    with pytest.raises(ConfigError) as info:
        Pipeline(cfg, Path()).validate(frame, "of the test")
    assert str(info.value).startswith(
        "pipelines[toy].metrics[1]: 'accuracy' is a classification metric, but the pipeline's "
        "task is regression (task: auto, and target column 'y' has dtype float64)"
    )


def test_a_misspelt_key_is_named_with_its_likely_meaning():
    bad = pipeline_config(blessing={"holdot": 0.2, "rules": [{"metric": "accuracy", "min": 0.5}]})
    bad["targt"] = bad.pop("target")
    problems = _problems({"pipelines": [bad], "storag": {}})
    # the missing key beside it first, else any key of the file's models; a stranger: remove it
    assert "pipelines[0].targt: unknown key (value 'y'); did you mean 'target'?" in problems
    assert "pipelines[0].blessing.holdot: unknown key (value 0.2); did you mean 'holdout'?" in (
        problems
    )
    assert "storag: unknown key (value {}); did you mean 'storage'?" in problems
    assert "colour: unknown key (value 'blue'); remove it" in _problems(
        {"pipelines": [pipeline_config()], "colour": "blue"}
    )


def test_problems_name_specs_as_retrainer_yaml_does_not_by_python_class():
    cfg = pipeline_config(
        triggers=[{"cost_aware": {"value_per_point": -1}}],
        blessing={"rules": [{"metric": "accuracy", "better": "significant", "margin": 0.1}]},
    )
    text = "\n".join(_problems({"pipelines": [cfg]}))
    assert "CostAwareTrigger" not in text and "SignificanceRule" not in text, text
    assert "significance rule for metric 'accuracy': margin goes with not_worse" in text
    cfg = pipeline_config(triggers=[{"cost_aware": {"value_per_point": -1}}])
    assert "pipelines[0].triggers[0]: cost_aware.value_per_point must be a number > 0" in (
        "\n".join(_problems({"pipelines": [cfg]}))
    )
