"""The run use case on in-memory stores: the cycle, the gate, and every bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrainer.adapters.sources import CallableSource
from retrainer.config import parse_config
from retrainer.core.clock import SimulatedClock
from retrainer.engine.project import Project
from retrainer.engine.runs.registry import PromotionError, list_models, promote, rollback
from retrainer.engine.runs.run import execute_run
from retrainer.errors import ModelNotFoundError
from retrainer.testing import in_memory_project
from tests.conftest import make_frame, pipeline_config

T1 = datetime(2024, 1, 20, tzinfo=UTC)
T2 = datetime(2024, 1, 26, tzinfo=UTC)


def _project(tmp_path: Path, frame: pd.DataFrame | None = None, **overrides: Any) -> Project:
    return in_memory_project(frame, root=tmp_path, **overrides)


def test_first_run_promotes_with_absolute_rules_only(tmp_path: Path):
    project = _project(tmp_path)
    result = execute_run(project, clock=SimulatedClock(T1))
    assert result.ok and result.promoted
    assert result.version is not None and result.version.version == 1
    assert project.store.get_alias("toy", "champion") == 1
    rows = {(r.rule, r.metric): r for r in result.verdict.evidence}
    assert rows[("absolute", "accuracy")].passed
    change = rows[("change", "accuracy")]
    assert change.passed and change.champion is None and "no champion" in change.note
    kinds = [e.kind for e in project.store.list_events("toy")]
    assert kinds == ["run.started", "blessing.passed", "model.promoted", "run.succeeded"]


def test_lineage_is_recorded(tmp_path: Path):
    project = _project(tmp_path)
    mv = execute_run(project, clock=SimulatedClock(T1)).version
    assert mv.snapshot.rows == 19 * 24  # hourly rows before T1
    assert mv.snapshot.window_end == T1
    assert mv.snapshot.max_time < T1
    assert len(mv.snapshot.fingerprint) == 64
    assert mv.code.pipeline_hash == project.pipeline().definition_hash
    assert mv.params["features"] == ["x1", "x2"]
    assert mv.params["model_params"] == {"max_iter": 200}
    assert "python" in mv.environment and "scikit-learn" in mv.environment
    assert mv.artifact_size > 0 and project.artifacts.exists(mv.artifact_sha256)
    assert set(mv.metrics) == {"accuracy", "roc_auc"}


def test_retrain_is_compared_with_champion_on_same_rows(tmp_path: Path):
    project = _project(tmp_path)
    execute_run(project, clock=SimulatedClock(T1))
    result = execute_run(project, clock=SimulatedClock(T2))
    assert result.ok
    change = next(r for r in result.verdict.evidence if r.rule == "change")
    assert change.champion is not None and change.candidate is not None
    assert change.delta == pytest.approx(change.candidate - change.champion)
    assert result.verdict.champion_version == 1
    assert project.store.get_alias("toy", "champion") == (2 if result.verdict.passed else 1)


def test_rejected_candidate_is_registered_but_never_champion(tmp_path: Path):
    project = _project(tmp_path)
    execute_run(project, clock=SimulatedClock(T1))
    # a second project sharing the stores with an impossible bar
    cfg = parse_config(
        {
            "pipelines": [
                pipeline_config(
                    blessing={
                        "holdout": 0.25,
                        "rules": [{"metric": "accuracy", "min": 0.999}],
                        "sanity": {"enabled": False},
                    }
                )
            ]
        }
    )
    hard = Project(
        config=cfg,
        root=tmp_path,
        store=project.store,
        artifacts=project.artifacts,
        sources=project.sources,
    )
    result = execute_run(hard, clock=SimulatedClock(T2))
    assert result.ok and not result.promoted
    assert result.run.outcome == "not_blessed"
    assert not result.version.blessing.passed
    assert "0.999" in result.version.blessing.reason
    assert project.store.get_alias("toy", "champion") == 1
    with pytest.raises(PromotionError, match="not blessed"):
        promote(project, 2, clock=SimulatedClock(T2))


def _bad(frame: pd.DataFrame, column: str, value: Any) -> pd.DataFrame:
    out = frame.copy()
    out[column] = value
    return out


BASE = make_frame(800)


def train_logistic(data: pd.DataFrame, params: dict[str, Any]) -> Any:
    """A train function (``train: tests.engine.runs.test_run:train_logistic``)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(data[params["features"]], data[params["target"]])


def _one_string(column: str, row: int, value: str) -> pd.DataFrame:
    """BASE with ``column`` as text and ``value`` in ``row``: a CSV with one bad cell."""
    text = BASE[column].astype(str).astype(object)
    text[row] = value
    return _bad(BASE, column, text)


@pytest.mark.parametrize(
    ("frame", "overrides", "message"),
    [
        (BASE.drop(columns="y"), {}, "target column 'y' not found"),
        (BASE.drop(columns="x2"), {}, "feature column 'x2' not found"),
        (_bad(BASE, "x1", "abc"), {}, "feature column 'x1' has dtype"),
        (
            _bad(BASE, "y", np.where(np.arange(800) == 7, np.nan, BASE["y"])),
            {"unlabelled": "error"},
            "target column 'y' has 1 missing",
        ),
        (
            _bad(BASE, "y", pd.Series(BASE["y"], dtype="Int64").where(BASE["ts"] < BASE["ts"][0])),
            {},
            "has 600 rows and none has a label yet (target column 'y'",
        ),
        (BASE.iloc[0:0], {}, "has no rows"),
        (_bad(BASE, "y", 1), {}, "target column 'y' has a single class"),
        (_bad(BASE, "x1", np.inf), {}, "feature column 'x1' has 600 infinite"),
        (
            _bad(BASE, "x2", np.where(np.arange(800) % 100 == 0, -np.inf, BASE["x2"])),
            {},
            "feature column 'x2' has 6 infinite",
        ),
        (
            _bad(
                BASE,
                "x2",
                pd.Series(
                    np.where(np.arange(800) % 100 == 0, np.inf, BASE["x2"]), dtype="Float64"
                ).where(np.arange(800) != 1),  # a nullable column, one <NA>
            ),
            {},
            "feature column 'x2' has 6 infinite",
        ),
        (_bad(BASE, "x2", BASE["ts"]), {}, "feature column 'x2' has dtype datetime64"),
        (
            _one_string("x1", 300, "abc"),
            {"model": None, "train": "tests.engine.runs.test_run:train_logistic"},
            "feature column 'x1' has non-numeric values in [.. 2024-01-26 00:00) of "
            "callable:bad, e.g. 'abc' (row 300 of the window, time 2024-01-13 12:00:00;",
        ),
        (_one_string("y", 300, "yes"), {}, "target column 'y' mixes numbers and text in ["),
        (BASE, {"window": {"kind": "sliding", "duration": "1h"}}, "window"),
        # it failed inside scikit-learn: "Input X contains NaN", no column named
        (
            _bad(BASE, "x2", np.nan),
            {},
            "feature column 'x2' has no value in the 450 training rows of [.. 2024-01-26 00:00)"
            " of callable:bad: all are missing (NaN)",
        ),
        (
            _bad(BASE, "x1", pd.Series([None] * 800, dtype="Float64")),
            {"model": None, "train": "tests.engine.runs.test_run:train_logistic"},
            "feature column 'x1' has no value in the 450 training rows",
        ),
        # half the column text: "could not convert string to float: 'abc'", no column named
        (
            _bad(BASE, "x1", np.where(np.arange(800) % 2 == 0, "abc", BASE["x1"].astype(str))),
            {"model": None, "train": "tests.engine.runs.test_run:train_logistic"},
            "feature column 'x1' has non-numeric values in [.. 2024-01-26 00:00) of "
            "callable:bad, e.g. 'abc' (row 0 of the window, time 2024-01-01 00:00:00; "
            "300 of 600 values are not numbers)",
        ),
    ],
    ids=[
        "no-target",
        "no-feature",
        "wrong-dtype",
        "nan-target",
        "no-label-yet",
        "empty",
        "one-class",
        "inf",
        "minus-inf-second-feature",
        "inf-nullable-feature",
        "timestamp-feature",
        "stray-string-feature-train-function",
        "stray-string-target",
        "too-small",
        "all-nan-feature",
        "all-na-nullable-feature-train-function",
        "half-text-feature-train-function",
    ],
)
def test_bad_input_fails_the_run_and_changes_nothing(
    tmp_path: Path, frame: pd.DataFrame, overrides: dict[str, Any], message: str
):
    good = _project(tmp_path)
    execute_run(good, clock=SimulatedClock(T1))
    cfg = parse_config({"pipelines": [pipeline_config(**overrides)]})
    bad = Project(
        config=cfg,
        root=tmp_path,
        store=good.store,
        artifacts=good.artifacts,
        sources={"toy": CallableSource(lambda s, e: frame, time_column="ts", name="bad")},
    )
    result = execute_run(bad, clock=SimulatedClock(T2))
    assert not result.ok
    assert result.run.status == "failed"
    assert message in result.run.error
    assert result.version is None
    assert [v.version for v in good.store.list_versions("toy")] == [1]
    assert good.store.get_alias("toy", "champion") == 1
    assert good.store.list_events("toy")[-1].kind == "run.failed"


def test_training_that_raises_fails_the_run(tmp_path: Path):
    project = _project(
        tmp_path,
        model={"estimator": "sklearn.linear_model:LogisticRegression", "params": {"C": -1}},
    )
    result = execute_run(project, clock=SimulatedClock(T1))
    assert not result.ok
    assert "training with 'sklearn.linear_model:LogisticRegression' raised" in result.run.error
    assert project.store.list_versions("toy") == []


def test_user_train_function_gets_params(tmp_path: Path):
    (tmp_path / "mypipe.py").write_text(
        "from sklearn.tree import DecisionTreeClassifier\n"
        "SEEN = {}\n"
        "def train(data, params):\n"
        "    SEEN.update(params)\n"
        "    model = DecisionTreeClassifier(max_depth=params['depth'])\n"
        "    return model.fit(data[params['features']], data[params['target']])\n"
    )
    project = _project(tmp_path, model=None, train="mypipe:train", params={"depth": 3})
    result = execute_run(project, clock=SimulatedClock(T1))
    assert result.ok, result.run.error
    import sys

    assert sys.modules["mypipe"].SEEN == {"features": ["x1", "x2"], "target": "y", "depth": 3}
    assert result.version.params["train"] == "mypipe:train"


def test_sliding_window_follows_the_clock(tmp_path: Path):
    project = _project(tmp_path, window={"kind": "sliding", "duration": "5d"})
    mv = execute_run(project, clock=SimulatedClock(T1)).version
    assert mv.snapshot.window_start == datetime(2024, 1, 15, tzinfo=UTC)
    assert mv.snapshot.min_time == datetime(2024, 1, 15, tzinfo=UTC)
    assert mv.snapshot.rows == 5 * 24


def test_window_of_last_rows(tmp_path: Path):
    project = _project(tmp_path, window={"kind": "sliding", "rows": 100})
    mv = execute_run(project, clock=SimulatedClock(T1)).version
    assert mv.snapshot.rows == 100
    assert mv.snapshot.max_time == datetime(2024, 1, 19, 23, tzinfo=UTC)


def test_slice_rule_scores_each_slice(tmp_path: Path):
    blessing = {
        "holdout": 0.3,
        "rules": [{"metric": "accuracy", "slice": "segment", "min_size": 10, "min": 0.5}],
        "sanity": {"enabled": False},
    }
    project = _project(tmp_path, blessing=blessing)
    verdict = execute_run(project, clock=SimulatedClock(T1)).verdict
    slices = {r.slice for r in verdict.evidence if r.rule == "slice"}
    assert any("a" in (s or "") for s in slices) and any("b" in (s or "") for s in slices)


def _promoting_project(tmp_path: Path) -> Project:
    """Every version with accuracy >= 0.5 is blessed (no comparison with the champion)."""
    return _project(
        tmp_path,
        blessing={
            "holdout": 0.25,
            "rules": [{"metric": "accuracy", "min": 0.5}],
            "sanity": {"enabled": False},
        },
    )


def test_promote_and_rollback_move_the_champion_with_events(tmp_path: Path):
    project = _promoting_project(tmp_path)
    execute_run(project, clock=SimulatedClock(T1))
    execute_run(project, clock=SimulatedClock(T2))
    assert project.store.get_alias("toy", "champion") == 2
    move = rollback(project, clock=SimulatedClock(T2))
    assert (move.previous, move.version) == (2, 1)
    assert project.store.get_alias("toy", "champion") == 1
    move = promote(project, 2, clock=SimulatedClock(T2))
    assert project.store.get_alias("toy", "champion") == 2
    kinds = [e.kind for e in project.store.list_events("toy")]
    assert kinds[-2:] == ["model.rolled_back", "model.promoted"]
    history = project.store.alias_history("toy", "champion")
    assert [m.version for m in history] == [1, 2, 1, 2]
    views = list_models(project)
    assert [v["aliases"] for v in views] == [[], ["champion"]]


def test_rolling_back_again_goes_further_back_and_never_forward(tmp_path: Path):
    """v1 -> v2 -> v3 promoted: rollback gives v2, then v1 (not v3 again), then nothing."""
    project = _promoting_project(tmp_path)
    for t in (T1, T2, T2 + timedelta(days=1)):
        execute_run(project, clock=SimulatedClock(t))
    assert project.store.get_alias("toy", "champion") == 3
    clock = SimulatedClock(T2 + timedelta(days=2))
    assert rollback(project, clock=clock).version == 2
    assert rollback(project, clock=clock).version == 1
    with pytest.raises(ModelNotFoundError, match="no earlier blessed version"):
        rollback(project, clock=clock)
    with pytest.raises(PromotionError, match=r"v3 is newer than 'champion' v1.*promote 3"):
        rollback(project, clock=clock, to=3)
    # a promotion after a rollback is served again: rolling back from it returns to v1
    promote(project, 3, clock=clock)
    assert rollback(project, clock=clock).version == 1


def test_sanity_check_runs_in_a_fresh_process(tmp_path: Path):
    blessing = {
        "holdout": 0.25,
        "rules": [{"metric": "accuracy", "min": 0.5}],
        "sanity": {"sample_rows": 20},
    }
    # the fresh process must read the artifact: use a local artifact store
    from retrainer.adapters.artifacts import LocalArtifactStore

    project = _project(tmp_path, blessing=blessing)
    project.artifacts = LocalArtifactStore(str(tmp_path / "artifacts"))
    result = execute_run(project, clock=SimulatedClock(T1))
    sanity = next(r for r in result.verdict.evidence if r.rule == "sanity")
    assert sanity.passed, sanity.note
    assert "20 rows" in sanity.note


def test_tampered_champion_is_reported_and_not_loaded(tmp_path: Path):
    from retrainer.adapters.artifacts import LocalArtifactStore

    project = _project(tmp_path)
    project.artifacts = LocalArtifactStore(str(tmp_path / "artifacts"))
    v1 = execute_run(project, clock=SimulatedClock(T1)).version
    blob = next((tmp_path / "artifacts").rglob(v1.artifact_sha256))
    blob.write_bytes(blob.read_bytes()[:-10])
    result = execute_run(project, clock=SimulatedClock(T2))
    assert result.ok
    note = next(r for r in result.verdict.evidence if r.rule == "champion")
    assert "champion v1 unusable" in note.note
    # replaced on the absolute rules, and said out loud: the alerter sends this (critical)
    [failed] = project.store.list_events("toy", kinds=["model.load_failed"])
    assert failed.version == 1 and failed.at == T2 and "unusable" in failed.message


def test_online_update_of_an_unloadable_champion_fails_the_run_with_the_reason(tmp_path: Path):
    from retrainer.adapters.artifacts import LocalArtifactStore

    project = _project(
        tmp_path,
        model={
            "estimator": "retrainer.integrations.river:RiverClassifier",
            "params": {"model": "linear_model.LogisticRegression"},
        },
        window={"kind": "new"},
        blessing={"holdout": 0.2, "rules": [{"metric": "accuracy", "min": 0.0}]},
    )
    project.artifacts = LocalArtifactStore(str(tmp_path / "artifacts"))
    v1 = execute_run(project, clock=SimulatedClock(T1)).version
    blob = next((tmp_path / "artifacts").rglob(v1.artifact_sha256))
    blob.write_bytes(blob.read_bytes()[:-10])
    result = execute_run(project, clock=SimulatedClock(T2))
    assert result.run.status == "failed"
    assert "champion v1 cannot be loaded" in (result.run.error or "")
    assert project.store.get_alias("toy", "champion") == 1


def test_a_sql_join_whose_newest_labels_have_not_arrived(tmp_path: Path):
    """The production shape of delayed labels: features LEFT JOIN labels, the newest rows'
    labels NULL (a float column, so the task is set). The run trains on the labelled rows,
    and its snapshot (rows, newest row, fingerprint) is theirs."""
    import sqlite3

    from retrainer.adapters.sources import SQLSource, snapshot_of

    frame = make_frame(800)
    db = tmp_path / "shop.db"
    labelled = frame["ts"] < pd.Timestamp("2024-01-18 06:00")
    with sqlite3.connect(db) as con:
        frame.drop(columns="y").assign(id=range(800)).to_sql("features", con, index=False)
        frame[labelled].assign(id=np.flatnonzero(labelled))[["id", "y"]].to_sql(
            "labels", con, index=False
        )
    query = "SELECT f.ts, f.x1, f.x2, l.y FROM features f LEFT JOIN labels l ON l.id = f.id"
    source = SQLSource(f"sqlite:///{db}", query, time_column="ts")
    project = in_memory_project(source, root=tmp_path, task="classification")
    result = execute_run(project, clock=SimulatedClock(T1))
    assert result.ok and result.promoted, result.run.error
    assert result.unlabelled_rows == 42  # Jan 18 06:00 .. Jan 19 23:00
    snap = result.version.snapshot
    assert snap.rows == 17 * 24 + 6 and snap.max_time == datetime(2024, 1, 18, 5, tzinfo=UTC)
    rows = source.load(None, T1).dropna(subset=["y"]).reset_index(drop=True)
    assert snap.fingerprint == snapshot_of(rows, "ts").fingerprint
    done = project.store.list_events("toy", kinds=["run.succeeded"])[-1]
    assert done.data["unlabelled_rows"] == 42


def test_a_rejected_candidate_is_told_in_words_not_by_the_enum(tmp_path: Path):
    project = _project(
        tmp_path,
        blessing={
            "holdout": 0.25,
            "rules": [{"metric": "accuracy", "min": 0.999}],
            "sanity": {"enabled": False},
        },
    )
    result = execute_run(project, clock=SimulatedClock(T1))
    assert result.run.outcome == "not_blessed"
    [event] = [e for e in project.store.list_events("toy") if e.kind == "run.succeeded"]
    assert event.message.endswith("succeeded: v1 not blessed")


@pytest.mark.parametrize("alias", ["", " ", "staging "])
def test_promote_refuses_an_empty_or_padded_alias(tmp_path: Path, alias: str):
    project = _promoting_project(tmp_path)
    execute_run(project, clock=SimulatedClock(T1))
    with pytest.raises(PromotionError, match="an alias is a non-empty name"):
        promote(project, 1, clock=SimulatedClock(T1), alias=alias)
    assert project.store.aliases("toy") == {"champion": 1}


# --- the run's steps, its deploy step and its typed result ------------------------------------


def _old_cli_json(result: Any) -> dict[str, Any]:
    """What 'retrainer run --json' printed before the result could render itself."""
    from retrainer.engine.runs.registry import run_view, version_view

    data: dict[str, Any] = {
        "run": run_view(result.run),
        "promoted": result.promoted,
        "unlabelled_rows": result.unlabelled_rows,
    }
    if result.version is not None:
        data["version"] = version_view(result.version, ["champion"] if result.promoted else [])
    return data


def test_run_result_to_json_is_what_run_json_printed(tmp_path: Path):
    import json

    project = _project(
        tmp_path,
        blessing={
            "holdout": 0.25,
            "rules": [
                {"metric": "accuracy", "min": 0.6},
                {"metric": "accuracy", "min_improvement": 0.5},
            ],
            "sanity": {"enabled": False},
        },
    )
    promoted = execute_run(project, clock=SimulatedClock(T1))
    rejected = execute_run(project, clock=SimulatedClock(T2))
    assert promoted.promoted and rejected.ok and not rejected.promoted
    bad = Project(
        config=project.config,
        root=tmp_path,
        store=project.store,
        artifacts=project.artifacts,
        sources={"toy": CallableSource(lambda s, e: BASE.iloc[0:0], time_column="ts", name="x")},
    )
    failed = execute_run(bad, clock=SimulatedClock(T2 + timedelta(days=1)))
    assert not failed.ok
    for result in (promoted, rejected, failed):
        data = result.to_json()
        assert data == _old_cli_json(result)
        assert list(data) == list(_old_cli_json(result))  # the same key order, so the same text
        assert json.dumps(data) == json.dumps(_old_cli_json(result))
    assert promoted.to_json()["version"]["aliases"] == ["champion"]
    assert rejected.to_json()["version"]["aliases"] == []
    assert "version" not in failed.to_json()


def test_the_deploy_step_records_its_decision(tmp_path: Path):
    project = _project(tmp_path, deploy={"strategy": "replace"})
    first = execute_run(project, clock=SimulatedClock(T1))
    assert first.deployment is not None and first.deployment.strategy == "replace"
    assert [(m.alias, m.version, m.expected) for m in first.deployment.moves] == [
        ("champion", 1, None)
    ]
    [event] = project.store.list_events("toy", kinds=["model.promoted"])
    assert event.data == {"alias": "champion", "previous": None, "policy": "replace"}
    assert event.message == "toy v1 promoted to champion"


def test_a_policy_that_moves_another_alias_is_applied_as_decided(tmp_path: Path):
    from typing import ClassVar, Literal

    from retrainer.core.deploy import AliasChange, DeployContext, DeployDecision, DeploymentPolicy

    class Challenger(DeploymentPolicy):
        strategy: Literal["challenger"] = "challenger"
        summary: ClassVar[str] = "blessed candidates become the challenger"

        def decide(self, ctx: DeployContext) -> DeployDecision:
            move = AliasChange(alias="challenger", version=ctx.version, expected=None)
            return DeployDecision(strategy=self.strategy, moves=(move,), reason="challenger")

    project = _project(tmp_path, deploy=Challenger())
    result = execute_run(project, clock=SimulatedClock(T1))
    assert result.ok and not result.promoted
    assert result.run.outcome == "registered"
    assert project.store.aliases("toy") == {"challenger": 1}
    [event] = project.store.list_events("toy", kinds=["model.promoted"])
    assert event.data == {"alias": "challenger", "previous": None, "policy": "challenger"}


def test_an_unset_deploy_key_keeps_the_definition_hash(tmp_path: Path):
    import hashlib
    import json

    project = _project(tmp_path)
    dump = project.pipeline().config.model_dump(mode="json")
    assert dump.pop("rollout") is None
    assert dump.pop("duplicates") == "keep"  # a later key, left out of the hash the same way
    assert dump.pop("categorical") == []  # and another
    assert dump["monitor"]["drift"].pop("window") == "auto"  # and another
    assert dump["model"].pop("mlflow") is None  # and another (model: {mlflow: uri})
    before = hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()
    assert project.pipeline().definition_hash == before  # projects written before 'deploy'
    explicit = _project(tmp_path, deploy={"strategy": "replace"})
    assert explicit.pipeline().definition_hash != before  # an edited config is a change
    assert _project(tmp_path, duplicates="keep").pipeline().definition_hash == before
    assert _project(tmp_path, duplicates="drop").pipeline().definition_hash != before
    auto = _project(tmp_path, monitor={"drift": {"window": "auto"}})
    assert auto.pipeline().definition_hash == before
    same = _project(tmp_path, monitor={"drift": {"window": "same"}})
    assert same.pipeline().definition_hash != before


def test_duplicated_rows_are_reported_in_the_evidence_and_kept_by_default(tmp_path: Path):
    # the same rows twice in a source were trained on silently
    once = make_frame(600)
    twice = pd.concat([once, once.iloc[:200]]).sort_values("ts", kind="stable")
    result = execute_run(_project(tmp_path, twice), clock=SimulatedClock(T1))
    assert result.ok and result.version is not None
    rows = {(r.rule, r.metric): r for r in result.verdict.evidence}
    row = rows[("data", "duplicate rows")]
    assert row.passed and row.threshold == "reported"
    assert row.candidate == pytest.approx(200 / 656)  # 456 rows before T1, 200 of them twice
    assert row.note == (
        "200 of 656 rows (30.5%) repeat another row exactly; trained on as they are (set "
        "duplicates: drop in the pipeline to leave them out)"
    )
    assert result.version.snapshot.rows == 656
    assert result.version.blessing.passed  # a finding, not a failed check
    # stored with the version: its lineage shows it
    stored = result.version.blessing.evidence
    assert any(r.metric == "duplicate rows" for r in stored)
    # no repeats: no row
    clean = execute_run(_project(tmp_path / "clean", once), clock=SimulatedClock(T1))
    assert all(r.rule != "data" for r in clean.verdict.evidence)


def test_duplicates_drop_leaves_the_repeats_out(tmp_path: Path):
    once = make_frame(600)
    twice = pd.concat([once, once.iloc[:200]]).sort_values("ts", kind="stable")
    result = execute_run(_project(tmp_path, twice, duplicates="drop"), clock=SimulatedClock(T1))
    assert result.ok and result.version is not None
    row = next(r for r in result.verdict.evidence if r.metric == "duplicate rows")
    assert row.threshold == "dropped"
    assert (
        row.note
        == "200 of 656 rows (30.5%) repeat another row exactly; left out (duplicates: drop)"
    )
    assert result.version.snapshot.rows == 456  # the rows of the clean source
    clean = execute_run(_project(tmp_path / "clean", once), clock=SimulatedClock(T1))
    assert result.version.snapshot.fingerprint == clean.version.snapshot.fingerprint
    assert result.version.params["duplicates"] == "drop"
    assert "duplicates" not in clean.version.params
    # same timestamps, other values: not duplicates
    near = twice.copy()
    near.loc[near.duplicated(keep="first"), "x1"] += 1.0
    kept = execute_run(
        _project(tmp_path / "near", near, duplicates="drop"), clock=SimulatedClock(T1)
    )
    assert kept.version.snapshot.rows == 656
    assert all(r.rule != "data" for r in kept.verdict.evidence)


def test_a_run_abandoned_between_register_and_deploy_is_repaired(tmp_path: Path):
    """The steps one by one, then the process 'dies' (its lease runs out): the next run fails
    the abandoned one, the version it registered is never promoted, the next one is."""
    from retrainer.engine.runs import claims
    from retrainer.engine.runs import run as steps

    project = _promoting_project(tmp_path)
    project.liveness_clock = real = SimulatedClock(T2)  # real time, moved by hand
    execute_run(project, clock=SimulatedClock(T1))
    pipeline = project.pipeline()
    run, _ = claims.new_run(project, pipeline, now=T2, cause="manual")
    run = claims.claim_run(project, run, now=T2)
    timings: dict[str, float] = {}
    loaded = steps.load_step(project, pipeline, run, now=T2, timings=timings)
    trained = steps.train_step(project, pipeline, loaded, timings=timings)
    blessing = steps.bless_step(project, pipeline, loaded, trained, timings=timings)
    assert blessing.verdict.passed and blessing.champion_version == 1
    orphan = steps.register_step(project, pipeline, loaded, trained, blessing, now=T2)
    assert orphan.version == 2 and project.store.get_alias("toy", "champion") == 1

    real.advance(timedelta(seconds=project.pipeline().config.run.timeout + 1))
    later = execute_run(project, clock=SimulatedClock(T2 + timedelta(days=1)))
    assert later.ok and later.promoted and later.version.version == 3
    assert later.previous_champion == 1
    abandoned = project.store.get_run(run.id)
    assert abandoned.status == "failed" and "interrupted" in (abandoned.error or "")
    assert [m.version for m in project.store.alias_history("toy", "champion")] == [1, 3]


@pytest.mark.parametrize("enabled", [True, False])
def test_the_sanity_server_starts_before_the_pipeline_loads(tmp_path: Path, monkeypatch, enabled):
    # its imports (~2 s) overlap with the load and the fit instead of following them
    import retrainer.engine.runs.run as run_module

    calls: list[str] = []
    monkeypatch.setattr(run_module, "start_fresh_process_server", lambda: calls.append("server"))
    pipeline = Project.pipeline

    def loading(self, name=None):
        calls.append("pipeline")
        return pipeline(self, name)

    monkeypatch.setattr(Project, "pipeline", loading)
    blessing = {"rules": [{"metric": "accuracy", "min": 0.5}], "sanity": {"enabled": enabled}}
    project = _project(tmp_path, blessing=blessing)
    if enabled:
        from retrainer.adapters.artifacts import LocalArtifactStore

        project.artifacts = LocalArtifactStore(str(tmp_path / "artifacts"))
    assert execute_run(project, clock=SimulatedClock(T1)).ok
    assert calls[:2] == (["server", "pipeline"] if enabled else ["pipeline", "pipeline"])


def test_a_version_records_its_artifact_types_and_loads_only_those(tmp_path: Path):
    from dataclasses import replace

    from retrainer.adapters.serialization import RECORDED_TYPES_KEY, artifact_types
    from retrainer.errors import UntrustedArtifactError

    project = _project(tmp_path)
    mv = execute_run(project, clock=SimulatedClock(T1)).version
    assert mv is not None
    recorded = mv.environment[RECORDED_TYPES_KEY].split()
    assert recorded == artifact_types(project.artifacts.get(mv.artifact_sha256))
    assert any(name.endswith("LogisticRegression") for name in recorded)
    assert project.load_version(mv) is not None
    # a record that lacks one of the file's types: the file is not the one that was saved
    lacking = {**mv.environment, RECORDED_TYPES_KEY: " ".join(recorded[1:])}
    with pytest.raises(UntrustedArtifactError, match=recorded[0].replace(".", r"\.")):
        project.load_version(replace(mv, environment=lacking))
    # versions saved before the types were recorded load against the allowlist alone
    landed = {k: v for k, v in mv.environment.items() if k != RECORDED_TYPES_KEY}
    assert project.load_version(replace(mv, environment=landed)) is not None


def test_loading_a_version_checks_its_recorded_size(tmp_path: Path):
    from retrainer.adapters.artifacts import LocalArtifactStore
    from retrainer.errors import ArtifactIntegrityError

    project = _project(tmp_path)
    project.artifacts = LocalArtifactStore(str(tmp_path / "artifacts"))
    project.cache_models = False
    mv = execute_run(project, clock=SimulatedClock(T1)).version
    assert mv is not None
    blob = next(p for p in (tmp_path / "artifacts").rglob("*") if mv.artifact_sha256 in p.name)
    blob.write_bytes(blob.read_bytes() + b"tail")  # appended to: the size says so first
    expected = f"size differs \\(expected {mv.artifact_size} bytes, found {mv.artifact_size + 4}"
    with pytest.raises(ArtifactIntegrityError, match=expected):
        project.load_version(mv)
