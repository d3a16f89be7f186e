"""The backtest grid: windows that coincide on a short history are replayed once."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from retrainer.backtest_config import BacktestConfig
from retrainer.engine.backtest.grid import default_policies, expand_policies
from tests.engine.backtest.test_backtest import _replay

DAY = timedelta(days=1)


def _names(policies: list[dict]) -> list[str]:
    return [str(p["name"]) for p in policies]


def test_the_default_grid_replays_coinciding_windows_once(tmp_path: Path):
    short = _replay(tmp_path)  # 20 days of data: 30d, 90d and all history hold the same rows
    names = _names(expand_policies(BacktestConfig(), short))
    assert "weekly · last 30d" in names and "weekly · last 90d" not in names
    assert "every 30d · last 30d" in names
    assert "every 30d · last 90d" not in names and "every 30d · all history" not in names
    assert "weekly · last 7d" in names  # a window shorter than the history stays
    assert "daily · last 30d" in names  # the always-retrain reference's window
    assert len(names) == len(set(names)) == 14  # 3 cost-aware settings

    # the same grid on 200 days of data: every window is distinct, none left out
    ts = pd.date_range("2024-01-01", periods=200 * 20, freq="72min")
    y = np.random.default_rng(3).integers(0, 2, len(ts))
    long = dataclasses.replace(
        short,
        frame=pd.DataFrame({"ts": ts, "x": 0.0, "y": y}),
        start=datetime(2024, 6, 1, tzinfo=UTC),
        select_until=datetime(2024, 6, 20, tzinfo=UTC),
        end=None,
    )
    assert (
        len(default_policies(long)) == 17
    )  # the default grid, the always-retrain reference included


def test_a_grid_of_the_user_is_deduped_but_listed_policies_are_kept(tmp_path: Path):
    short = _replay(tmp_path)
    weekly = [{"schedule": "0 0 * * MON"}]
    cfg = BacktestConfig(
        policies=[
            {"name": "mine, all history", "triggers": weekly, "window": {"kind": "full"}},
            {
                "name": "mine, 90d",
                "triggers": weekly,
                "window": {"kind": "sliding", "duration": "90d"},
            },
        ],
        grid=[
            {
                "triggers": [weekly],
                "window": [
                    {"kind": "sliding", "duration": "5d"},
                    {"kind": "sliding", "duration": "60d"},
                    {"kind": "full"},
                ],
            }
        ],
    )
    names = _names(expand_policies(cfg, short))
    assert names == ["mine, all history", "mine, 90d", "weekly · last 5d", "weekly · last 60d"]


def test_the_default_metric_trigger_is_in_points_for_shares_and_relative_for_losses(
    tmp_path: Path,
):
    # a rise of 0.02 in MAE (dollars, degrees) or in log loss means nothing: 10% of it does
    def trigger(metric: str) -> dict:
        replay = dataclasses.replace(_replay(tmp_path), metric=metric)
        triggers = [p["triggers"][0] for p in default_policies(replay) if p["triggers"]]
        return next(t for t in triggers if "metric" in t)

    got = trigger("accuracy")
    assert got["drop"] == 0.02 and not got.get("relative") and "rise" not in got
    for loss in ("mae", "rmse", "log_loss"):
        got = trigger(loss)
        assert (got["rise"], got["relative"]) == (0.1, True), loss
        assert "drop" not in got


def test_the_default_grid_compares_cost_aware_triggers_and_they_run(tmp_path: Path):
    import copy

    from retrainer.engine.backtest.replay import run_policy
    from tests.engine.backtest.test_replay import FLIP, _flipping_replay

    replay = _flipping_replay(tmp_path, "sign_cost")
    policies = expand_policies(BacktestConfig(), replay)
    costed = [p for p in policies if p["triggers"] and "cost_aware" in p["triggers"][0]]
    assert [p["triggers"][0]["cost_aware"]["value_per_point"] for p in costed] == [
        round(1 / 3, 6),
        0.1,
        round(1 / 30, 6),
    ]
    assert all(p["name"].startswith("cost-aware: 1 pt-day = ") for p in costed)
    # the most valuable setting, its sample floor lowered for 4 rows a day: quiet while the
    # model is exact, then it retrains after the flip, far fewer times than every day
    policy = copy.deepcopy(costed[0])
    policy["triggers"][0]["cost_aware"]["min_samples"] = 4
    run = run_policy(replay, policy)
    assert run.error is None and run.failed == []
    assert run.retrained_at and min(run.retrained_at) > FLIP
    assert len(run.retrained_at) < replay.n_batches // 2


def test_a_cost_aware_curve_that_does_not_exist_is_refused_before_the_replay(tmp_path: Path):
    import pytest

    from retrainer.errors import ConfigError

    spec = {"value_per_point": 0.5, "deploy_cost": 1.0, "curve": "nothere/results.json"}
    cfg = BacktestConfig(policies=[{"name": "c", "triggers": [{"cost_aware": spec}]}])
    with pytest.raises(ConfigError, match=r"policy 'c': cost_aware.curve: no file .*nothere"):
        expand_policies(cfg, _replay(tmp_path))
    (tmp_path / "nothere").mkdir()
    (tmp_path / "nothere" / "results.json").write_text("{}")
    assert _names(expand_policies(cfg, _replay(tmp_path))) == ["c"]


def test_a_project_key_naming_no_file_says_so(tmp_path: Path):
    import pytest

    from retrainer.engine.backtest.grid import load_replay
    from retrainer.errors import ConfigError

    cfg = BacktestConfig(project="retainer.yaml")
    with pytest.raises(ConfigError, match=r"backtest.yaml: project: 'retainer.yaml' names no file"):
        load_replay(cfg, tmp_path / "backtest.yaml")


def test_a_file_key_and_a_policy_problem_are_named_in_one_round(tmp_path: Path):
    import pytest
    import yaml

    from retrainer.engine.backtest.run import load_checked
    from retrainer.errors import ConfigError
    from retrainer.testing import write_project

    folder = write_project(tmp_path / "p")
    spec = {"cost_aware": {"value_per_pont": 0.1}}
    backtest = {"label_dealy": 7, "policies": [{"name": "c", "triggers": [spec]}]}
    (folder / "backtest.yaml").write_text(yaml.safe_dump(backtest))
    with pytest.raises(ConfigError) as info:
        load_checked(folder / "backtest.yaml")
    [key, policy] = info.value.problems
    assert key == "label_dealy: unknown key (value 7); did you mean 'label_delay'?"
    assert (
        policy.startswith("policy 'c': triggers[0]: cost_aware takes")
        and "value_per_pont" in policy
    )
    # the file's keys alone when the policies are sound: the same error as before
    (folder / "backtest.yaml").write_text(yaml.safe_dump({"label_dealy": 7}))
    with pytest.raises(ConfigError) as info:
        load_checked(folder)
    assert info.value.problems == [key]
