"""The car_loan example (text features under ``categorical:``): init, run and a small backtest
whose online policy is the default grid's, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from retrainer.backtest_config import load_backtest_config
from retrainer.cli import app
from retrainer.engine.backtest.grid import default_policies, load_replay

runner = CliRunner()


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_car_loan_example_runs_and_backtests_with_its_text_features(tmp_path: Path):
    proj = tmp_path / "loans"
    printed = _cli("init", str(proj), "--example", "car_loan")
    assert "retrainer run --as-of 2018-06-01" in " ".join(printed.split())  # wrapped or not
    config = yaml.safe_load((proj / "retrainer.yaml").read_text())
    assert config["pipelines"][0]["categorical"] == ["salary_range", "size_of_downpayment"]

    printed = _cli("run", "-c", str(proj), "--as-of", "2018-06-01")
    assert "v1 blessed and promoted to champion" in printed
    [version] = json.loads(_cli("models", "list", "-c", str(proj), "--json"))
    assert version["version"] == 1

    # the default grid's online policy (River) and a weekly retrain, on the last ~50 days
    settings = yaml.safe_load((proj / "backtest.yaml").read_text())
    settings.update(
        warm_start=0.92,
        executor={"kind": "inline"},
        degradation={"enabled": False},
        cache=False,
    )
    (proj / "backtest.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    cfg, file = load_backtest_config(proj / "backtest.yaml")
    replay, _, _ = load_replay(cfg, file)
    grid = default_policies(replay)
    [online] = [p for p in grid if (p.get("window") or {}).get("kind") == "new"]
    weekly = next(p for p in grid if p["triggers"] and "MON" in str(p["triggers"][0]))
    settings["policies"] = [{"name": "never", "triggers": []}, {"name": "weekly", **weekly}, online]
    (proj / "backtest.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))

    out = tmp_path / "out"
    _cli("backtest", "-c", str(proj / "backtest.yaml"), "--out", str(out))
    results = json.loads((out / "results.json").read_text())
    by_name = {p["name"]: p for p in results["policies"]}
    assert set(by_name) == {"never", "weekly", online["name"]}
    river = by_name[online["name"]]
    assert river["retrains"] >= 40  # one a day, none failed on the text columns
    assert not river.get("failed")
    for policy in by_name.values():
        assert 0.7 < policy["metric"]["accuracy"] < 1.0
