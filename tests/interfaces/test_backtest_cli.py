"""`retrainer backtest` end to end, and its recommended.yaml run as is by `retrainer daemon`."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from retrainer.cli import app
from retrainer.config import load_config
from retrainer.engine.backtest import run_backtest
from retrainer.engine.project import Project
from tests.engine.backtest.test_backtest import WEEKLY, backtest_file, tiny_project
from tests.interfaces.test_e2e import cli

runner = CliRunner()

RIVER: dict[str, Any] = {
    "estimator": "retrainer.integrations.river:RiverClassifier",
    "params": {"model": "linear_model.LogisticRegression", "scale": True},
}
ONLINE: dict[str, Any] = {
    "name": "online",
    "triggers": [{"schedule": "0 0 * * *"}],
    "window": {"kind": "new"},
    "model": RIVER,
    "blessing": {"rules": [{"metric": "accuracy", "min": 0.0}]},
}


def _recommended_project(tmp_path: Path, policy: dict[str, Any]) -> Path:
    """Backtest one policy; return out/recommended.yaml, which runs as is from there."""
    proj = tiny_project(tmp_path / "p")  # hourly rows, 2024-01-01 .. 2024-02-09
    result = run_backtest(backtest_file(proj, policies=[policy]), tmp_path / "out")
    assert result.results.recommended.name == policy["name"]
    deployed = result.yaml_path
    assert deployed.parent == tmp_path / "out"
    cfg, _ = load_config(deployed)
    assert cfg.root == str(proj.resolve())  # the project's data, train module and stores
    pipeline = cfg.pipeline("toy")
    assert pipeline.triggers == policy["triggers"]
    assert pipeline.window.model_dump(exclude_none=True) == policy["window"]
    return deployed


def _versions(deployed: Path) -> list[Any]:
    with Project.open(deployed) as project:
        return list(project.store.list_versions("toy"))


def _champion(deployed: Path) -> int | None:
    with Project.open(deployed) as project:
        return project.store.get_alias("toy", "champion")


@pytest.mark.slow
def test_recommended_schedule_policy_runs_in_the_daemon(tmp_path: Path):
    deployed = _recommended_project(tmp_path, WEEKLY)
    # the first tick (Sunday 23:59:59) arms the Monday schedule, the second (one simulated
    # second later: --tick is the simulated step) is at its slot and trains the first model
    proc = cli(
        "daemon", "-c", str(deployed), "--executor", "inline", "--quiet",
        "--as-of", "2024-01-28T23:59:59", "--max-ticks", "2", "--tick", "1", check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [v1] = _versions(deployed)
    assert not (deployed.parent / ".retrainer").exists()  # the project's stores
    assert v1.snapshot is not None
    assert v1.snapshot.window_end.isoformat() == "2024-01-29T00:00:00+00:00"
    assert v1.snapshot.window_start is not None  # the policy's 14-day window
    assert v1.snapshot.window_start.isoformat() == "2024-01-15T00:00:00+00:00"
    assert _champion(deployed) == 1


@pytest.mark.slow
def test_recommended_online_policy_runs_in_the_daemon_then_updates(tmp_path: Path):
    deployed = _recommended_project(tmp_path, ONLINE)
    pipeline = load_config(deployed)[0].pipeline("toy")
    assert pipeline.model is not None and pipeline.model.estimator == RIVER["estimator"]
    assert pipeline.train is None  # the model replaced the project's train function
    proc = cli(
        "daemon", "-c", str(deployed), "--executor", "inline", "--quiet",
        "--as-of", "2024-01-29T23:59:59", "--max-ticks", "2", "--tick", "1", check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [v1] = _versions(deployed)  # the daily schedule's slot at 2024-01-30 00:00
    assert v1.snapshot is not None and v1.snapshot.window_start is None  # first fit: all rows
    assert v1.snapshot.window_end.isoformat() == "2024-01-30T00:00:00+00:00"
    assert _champion(deployed) == 1
    result = runner.invoke(app, ["run", "-c", str(deployed), "--as-of", "2024-02-05", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["run"]["status"] == "succeeded"
    first, second = _versions(deployed)
    assert first.snapshot is not None and second.snapshot is not None
    # the update learned the rows after the newest row of the first version, and only those
    assert first.snapshot.max_time is not None
    assert second.snapshot.window_start == first.snapshot.max_time + timedelta(microseconds=1)
    assert second.snapshot.min_time == first.snapshot.max_time + timedelta(hours=1)
    assert second.snapshot.rows == 6 * 24
    assert _champion(deployed) == 2


SINCE_CHANGE: dict[str, Any] = {
    "name": "page-hinkley since the change",
    "triggers": [{"concept_drift": {}}],
    "window": {"kind": "since_change", "min": "3d", "max": "10d"},
    "monitor": {"every": "1d", "window": "1d", "concept_drift": {"method": "page_hinkley"}},
}


@pytest.mark.slow
def test_recommended_since_change_policy_runs_in_the_daemon(tmp_path: Path):
    deployed = _recommended_project(tmp_path, SINCE_CHANGE)
    result = runner.invoke(app, ["run", "-c", str(deployed), "--as-of", "2024-02-01", "--json"])
    assert result.exit_code == 0, result.output
    [v1] = _versions(deployed)
    assert v1.snapshot is not None and v1.snapshot.window_start is not None
    # no change detected yet: the window is its max, 10 days
    assert v1.snapshot.window_start.isoformat() == "2024-01-22T00:00:00+00:00"
    proc = cli(
        "daemon", "-c", str(deployed), "--executor", "inline", "--quiet",
        "--as-of", "2024-02-02T00:00:00", "--max-ticks", "2", "--tick", "1", check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with Project.open(deployed) as project:  # the daemon feeds the window's detector
        [record] = project.store.list_monitor_results("toy", limit=None)
    assert record.summary["concept_drift"]["method"] == "page_hinkley"


def test_backtest_config_error_exits_2_with_the_key_on_stderr(tmp_path: Path):
    proj = tiny_project(tmp_path / "p", days=20)
    file = backtest_file(proj, select_untill=0.5)
    result = runner.invoke(app, ["backtest", "-c", str(file), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "select_untill" in result.stderr and "unknown key" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_bad_policy_is_reported_without_a_progress_bar(tmp_path: Path):
    proj = tiny_project(tmp_path / "p", days=20)
    bad = {"name": "bad window", "window": {"kind": "sliding"}}  # no duration
    file = backtest_file(proj, policies=[WEEKLY, bad])
    result = runner.invoke(app, ["backtest", "-c", str(file), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "policy 'bad window'" in result.stderr
    assert "━" not in result.stderr.split("policy 'bad window'")[0]  # no progress bar before it
    assert "starting" not in result.stderr


ELEC2_POLICIES: list[dict[str, Any]] = [
    {"name": "never", "triggers": []},
    {
        "name": "weekly, last 30 days",
        "triggers": [{"schedule": "0 0 * * MON"}],
        "window": {"kind": "sliding", "duration": "30d"},
    },
    {
        "name": "online River",
        "triggers": [{"schedule": "0 0 * * *"}],
        "window": {"kind": "new"},
        "model": RIVER,
        "blessing": {"rules": [{"metric": "accuracy", "min": 0.0}]},
    },
]


@pytest.mark.slow
def test_backtest_cli_on_elec2(tmp_path: Path):
    proj = tmp_path / "elec2"
    cli("init", str(proj), "--example", "elec2")
    settings = {
        "project": "retrainer.yaml",
        "select_until": 0.5,
        # the last 10% of elec2 (~95 days): the 0.8 the example suggests takes twice as long
        "warm_start": 0.9,
        "degradation": {"every": 14, "max_age": 30},
        "policies": ELEC2_POLICIES,
    }
    (proj / "backtest.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    out = tmp_path / "out"
    proc = cli("backtest", "-c", str(proj / "backtest.yaml"), "--out", str(out), "--json")
    for name in ("report.html", "results.json", "metric_over_time.png", "recommended.yaml"):
        assert (out / name).is_file(), name
    printed = json.loads(proc.stdout)
    results = json.loads((out / "results.json").read_text())
    names = [p["name"] for p in ELEC2_POLICIES]
    assert [p["name"] for p in results["policies"]] == names
    assert [p["name"] for p in printed["policies"]] == names
    for p, policy in zip(results["policies"], ELEC2_POLICIES, strict=True):
        assert p["params"] == {k: v for k, v in policy.items() if k != "name"}
        assert set(p["metric"]) == {"accuracy", "roc_auc", "log_loss"}
        assert 0.5 < p["metric"]["accuracy"] < 1.0
        assert isinstance(p["retrains"], int) and p["train_cpu_s"] >= 0
    never, weekly, online = results["policies"]
    assert never["retrains"] == 0 and never["train_cpu_s"] == 0
    assert 10 <= weekly["retrains"] <= 15  # one a week over ~95 days
    assert online["retrains"] >= 90  # one a day
    rec = results["recommended"]
    assert rec["name"] in names
    by_name = {p["name"]: p for p in results["policies"]}
    assert rec["held_out"] == by_name[rec["name"]]["held_out"]
    assert rec["held_out"]["accuracy"] is not None
    assert (
        results["dataset"]["selection_batches"] + results["dataset"]["held_out_batches"]
        == (results["dataset"]["batches"])
    )
    assert results["degradation"] is not None and results["degradation"]["ages"]
    assert printed["recommended"]["name"] == rec["name"]
    recommended = yaml.safe_load((out / "recommended.yaml").read_text())
    [pipeline] = recommended["pipelines"]
    assert pipeline["triggers"] == by_name[rec["name"]]["params"]["triggers"]


def test_the_summary_says_when_labels_come_late(tmp_path: Path):
    proj = tiny_project(tmp_path / "p", days=30)
    for delay, shown in (("0", None), ("2d", "labels 2d late")):
        file = backtest_file(proj, policies=[WEEKLY], label_delay=delay)
        result = runner.invoke(app, ["backtest", "-c", str(file), "--out", str(tmp_path / delay)])
        assert result.exit_code == 0, result.output
        title = next(line for line in result.output.splitlines() if "held-out part" in line)
        assert (shown in title) if shown else ("late" not in title), title
