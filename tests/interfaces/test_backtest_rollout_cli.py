"""`retrainer backtest rollout`: a rollout replayed on a project's pipeline from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from retrainer.cli import app
from retrainer.engine.scaffold import init_project

runner = CliRunner()


def test_backtest_rollout_on_elec2_writes_its_decision(tmp_path: Path):
    init_project(tmp_path / "p")
    out = tmp_path / "out"
    args = [
        "backtest", "rollout", "-c", str(tmp_path / "p"), "--start", "1998-01-05",
        "--train-champion", "1996-05-07..1996-07-06", "--train-candidate", "30d",
        "--strategy", "ab", "--metric", "accuracy", "--tau", "0.05", "--max-duration", "21d",
        "--max-output-drift", "off", "--out", str(out),
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "promote at 1998-01-" in result.output
    document = json.loads((out / "rollout.json").read_text())
    assert document["outcome"] == "promote"
    assert document["policy"]["guards"]["max_output_drift"] is None
    assert document["ticks"][-1]["low"] > 0
    assert (out / "rollout.png").stat().st_size > 1000
    # the default output-drift guard lets the sound retrain through (far from the stale
    # champion's scores, close to its own) and stops a guard set tight enough to trip
    result = runner.invoke(app, [*args[:-4], "--out", str(tmp_path / "o2"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["outcome"] == "promote"
    result = runner.invoke(
        app, [*args[:-4], "--max-output-drift", "0.01", "--out", str(tmp_path / "o3"), "--json"]
    )
    assert json.loads(result.output)["outcome"] == "rollback"


def test_backtest_keeps_its_options_and_lists_rollout(tmp_path: Path):
    result = runner.invoke(app, ["backtest", "--help"])
    assert (
        result.exit_code == 0 and "rollout" in result.output and "--select-until" in result.output
    )
    result = runner.invoke(app, ["backtest", "rollout", "--help"])
    assert result.exit_code == 0 and "--train-candidate" in result.output
    init_project(tmp_path / "p")
    result = runner.invoke(
        app, ["backtest", "rollout", "-c", str(tmp_path / "p"), "--start", "1998-01-05"]
    )
    assert result.exit_code == 2
    assert "no rollout strategy" in result.output
