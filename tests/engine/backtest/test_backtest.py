"""The backtest: the held-out protocol, select_until, the cache and configuration errors."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from retrainer.backtest_config import load_backtest_config
from retrainer.config import PipelineConfig
from retrainer.core.backtest import CostModel
from retrainer.core.windows import parse_duration
from retrainer.engine.backtest import (
    BacktestSummary,
    default_policies,
    load_replay,
    run_backtest,
    summarize,
)
from retrainer.engine.backtest import execute as backtest_execute
from retrainer.engine.backtest.replay import PolicyRun, Replay
from retrainer.errors import ConfigError, DataError
from tests.conftest import make_frame, write_project

DAY = timedelta(days=1)
LR_TRAIN = (
    "from sklearn.linear_model import LogisticRegression\n\n\n"
    "def train(data, params):\n"
    "    return LogisticRegression().fit(data[params['features']], data[params['target']])\n"
)
BLESS_ANY = {
    "holdout": 0.2,
    "rules": [{"metric": "accuracy", "min": 0.0}],
    "sanity": {"enabled": False},
}
WEEKLY: dict[str, Any] = {
    "name": "weekly",
    "triggers": [{"schedule": "0 0 * * MON"}],
    "window": {"kind": "sliding", "duration": "14d"},
}
EVERY_3D: dict[str, Any] = {
    "name": "every 3 days",
    "triggers": [{"schedule": "every 3d"}],
    "window": {"kind": "sliding", "duration": "7d"},
}
NEVER: dict[str, Any] = {"name": "never"}


def tiny_project(root: Path, days: int = 40) -> Path:
    """A project of hourly rows over ``days`` days, trained by a train function module."""
    write_project(
        root,
        make_frame(n=24 * days),
        model=None,
        train="lrmod:train",
        blessing=BLESS_ANY,
    )
    (root / "lrmod.py").write_text(LR_TRAIN)
    return root


def backtest_file(project: Path, **settings: Any) -> Path:
    """backtest.yaml beside the project: inline, no degradation curve, the given settings."""
    cfg: dict[str, Any] = {
        "project": "retrainer.yaml",
        "warm_start": 0.5,
        "select_until": 0.5,
        "executor": {"kind": "inline"},
        "degradation": {"enabled": False},
        "policies": [NEVER, WEEKLY],
    }
    cfg.update(settings)
    path = project / "backtest.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# --- the held-out protocol --------------------------------------------------------------------

N_BATCHES, ROWS = 10, 20
START = datetime(2024, 1, 11, tzinfo=UTC)


def _replay(tmp_path: Path) -> Replay:
    # 20 days of ROWS rows a day (every 72 minutes); the first 10 days are the warm start
    ts = pd.date_range("2024-01-01", periods=20 * ROWS, freq="72min")
    y = np.random.default_rng(3).integers(0, 2, len(ts))
    spec = {
        "name": "toy",
        "source": {"kind": "parquet", "url": "data.parquet", "time_column": "ts"},
        "target": "y",
        "features": ["x"],
        "train": "unused:train",
        "metrics": ["accuracy"],
        "blessing": BLESS_ANY,
    }
    return Replay(
        frame=pd.DataFrame({"ts": ts, "x": 0.0, "y": y}),
        pipeline=PipelineConfig.model_validate(spec).model_dump(mode="json", exclude_none=True),
        batch=DAY,
        start=START,
        select_until=START + 5 * DAY,
        root=tmp_path,
    )


def _run(replay: Replay, name: str, correct: np.ndarray, retrains: int, cpu: float) -> PolicyRun:
    """A policy run whose prediction is right exactly where ``correct`` is True."""
    rows = replay.batch_rows()
    y_true = replay.frame["y"].to_numpy()[rows[0] : rows[-1]]
    y_pred = np.where(correct, y_true, 1 - y_true)
    values = np.array(
        [np.mean(correct[a - rows[0] : b - rows[0]]) for a, b in itertools.pairwise(rows)]
    )
    at = [START + (k + 1) * DAY for k in range(retrains)]
    return PolicyRun(
        name=name,
        params={},
        n=np.diff(rows),
        values={"accuracy": values},
        y_true=y_true,
        y_pred=y_pred,
        y_score=None,
        retrained_at=at,
        train_cpu=[cpu / max(retrains, 1)] * retrains,
        promoted_at=at,
        failed=[],
        wall_s=0.1,
        versions=retrains + 1,
    )


def _correct(first: float, second: float, half: int, seed: int) -> np.ndarray:
    """Right on a share ``first`` of the first ``half`` rows and ``second`` of the rest."""
    rng = np.random.default_rng(seed)
    a = np.arange(half) < round(first * half)
    b = np.arange(half) < round(second * half)
    return np.concatenate([rng.permutation(a), rng.permutation(b)])


def test_the_recommendation_is_chosen_on_the_selection_part_only(tmp_path: Path):
    replay = _replay(tmp_path)
    assert replay.n_batches == N_BATCHES and replay.selection_batches() == 5
    rows = replay.batch_rows()
    half = int(rows[5] - rows[0])
    assert half == 5 * ROWS
    policies = [{"name": "A", "triggers": []}, {"name": "B", "triggers": []}]
    # A: best before select_until, bad after; B: the reverse, and cheaper. Over the whole
    # period they tie, so choosing on the whole period or the held-out part would give B.
    a = _run(replay, "A", _correct(0.95, 0.60, half, 0), retrains=9, cpu=5.0)
    b = _run(replay, "B", _correct(0.60, 0.95, half, 1), retrains=1, cpu=0.5)
    results = summarize(replay, [a, b], policies, cost=CostModel(), tolerance=0.5, deg_scores=None)
    rec = results.recommended
    assert rec.name == "A"
    assert results.dataset.selection_batches == 5
    by_name = {p.name: p for p in results.policies}
    assert by_name["A"].metric["accuracy"] == by_name["B"].metric["accuracy"]
    # its held-out score is the pooled accuracy of the rows after select_until, computed here
    # from the arrays, and equals the accuracy of the held-out batches weighted by their rows
    held = slice(half, None)
    expected = float(np.mean(a.y_pred[held] == a.y_true[held]))
    assert expected == pytest.approx(0.60)
    assert rec.held_out["accuracy"] == round(expected, 6)
    assert by_name["A"].held_out == rec.held_out
    weighted = np.average(a.values["accuracy"][5:], weights=a.n[5:])
    assert rec.held_out["accuracy"] == pytest.approx(weighted)
    assert rec.selection["accuracy"] == pytest.approx(0.95)
    assert by_name["B"].held_out["accuracy"] == pytest.approx(0.95)
    # the held-out comparison is against B
    [comparison] = results.comparisons
    assert (comparison.a, comparison.b, comparison.part) == ("A", "B", "held_out")
    assert comparison.mean < 0

    # changing only the held-out part (A collapses, B is perfect) changes nothing chosen
    a2 = _run(replay, "A", _correct(0.95, 0.0, half, 0), retrains=9, cpu=5.0)
    b2 = _run(replay, "B", _correct(0.60, 1.0, half, 1), retrains=1, cpu=0.5)
    assert np.array_equal(a2.y_pred[:half], a.y_pred[:half])
    again = summarize(replay, [a2, b2], policies, cost=CostModel(), tolerance=0.5, deg_scores=None)
    assert again.recommended.name == "A"
    assert again.recommended.selection == rec.selection
    assert again.recommended.held_out["accuracy"] == 0.0


@pytest.mark.parametrize(
    ("select_until", "batches", "until"),
    [
        (0.5, 10, "2024-01-31"),
        (0.3, 6, "2024-01-27"),
        ("2024-01-27T12:00:00", 6, "2024-01-27"),  # a date inside a batch: that batch's start
        ("2024-02-08", 18, "2024-02-08"),
    ],
)
def test_select_until_as_a_fraction_or_a_date(
    tmp_path: Path, select_until: float | str, batches: int, until: str
):
    proj = tiny_project(tmp_path / "p")  # hourly rows from 2024-01-01 over 40 days
    cfg, file = load_backtest_config(backtest_file(proj, select_until=select_until))
    replay, _, _ = load_replay(cfg, file)
    # warm start 0.5: the first model at the 480th row, 2024-01-21; 20 daily batches
    assert replay.start == datetime(2024, 1, 21, tzinfo=UTC)
    assert replay.n_batches == 20
    assert replay.selection_batches() == batches
    assert replay.select_until == datetime.fromisoformat(until).replace(tzinfo=UTC)


# --- the cache --------------------------------------------------------------------------------


# a policy's own figures: its regret and CPU share are relative to the other policies
_RELATIVE = ("wall_s", "regret", "cpu_share")


def _comparable(results: BacktestSummary) -> list[dict[str, Any]]:
    return [{k: v for k, v in p.to_json().items() if k not in _RELATIVE} for p in results.policies]


def _count_replays(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, the names of the policies the backtest replays (not taken from cache)."""
    computed: list[str] = []
    real = backtest_execute.run_policy

    def counting(replay: Replay, policy: dict[str, Any]) -> PolicyRun:
        computed.append(str(policy["name"]))
        return real(replay, policy)

    monkeypatch.setattr(backtest_execute, "run_policy", counting)
    return computed


def test_a_second_run_comes_from_the_cache_and_a_changed_policy_is_recomputed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    proj = tiny_project(tmp_path / "p", days=30)
    policies = [NEVER, WEEKLY, EVERY_3D]
    file = backtest_file(proj, policies=policies)
    out = tmp_path / "out"
    first = run_backtest(file, out)
    assert first.cached == 0

    computed = _count_replays(monkeypatch)
    second = run_backtest(file, out)
    assert second.cached == len(policies) == second.results.cached_policies
    assert computed == []
    assert _comparable(second.results) == _comparable(first.results)
    assert second.results.recommended == first.results.recommended

    changed = copy.deepcopy(policies)
    changed[2]["window"] = {"kind": "sliding", "duration": "10d"}
    third = run_backtest(backtest_file(proj, policies=changed), out)
    assert computed == ["every 3 days"]
    assert third.cached == len(policies) - 1
    before, after = _comparable(first.results), _comparable(third.results)
    assert after[:2] == before[:2]
    assert after[2]["params"]["window"] == {"kind": "sliding", "duration": "10d"}


def test_the_cache_follows_each_policys_pipeline_not_the_project_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """`retrainer demo` writes the recommended triggers, guards and window into the project:
    every policy replaces those, so nothing is recomputed; the gate's holdout is not a
    policy key, so changing it recomputes every policy; user code changes recompute too."""
    proj = tiny_project(tmp_path / "p", days=30)
    policies = [NEVER, WEEKLY, EVERY_3D]
    file = backtest_file(proj, policies=policies)
    out = tmp_path / "out"
    run_backtest(file, out)
    project_file = proj / "retrainer.yaml"
    cfg = yaml.safe_load(project_file.read_text())
    cfg["pipelines"][0].update(
        triggers=[{"schedule": "0 3 * * *"}],
        guards=[{"cooldown": "2d"}],
        window={"kind": "sliding", "duration": "5d"},
    )
    project_file.write_text(yaml.safe_dump(cfg))
    computed = _count_replays(monkeypatch)
    # "never" sets no window: it inherits the project's, so it alone is recomputed
    assert run_backtest(file, out).cached == 2 and computed == ["never"]
    cfg["pipelines"][0]["blessing"]["holdout"] = 0.3
    project_file.write_text(yaml.safe_dump(cfg))
    computed.clear()
    assert run_backtest(file, out).cached == 0 and len(computed) == 3
    (proj / "lrmod.py").write_text(LR_TRAIN + "\n# changed\n")
    computed.clear()
    assert run_backtest(file, out).cached == 0 and len(computed) == 3


def test_changed_data_recomputes_every_policy_and_no_cache_reads_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    proj = tiny_project(tmp_path / "p", days=30)
    policies = [NEVER, EVERY_3D]
    file = backtest_file(proj, policies=policies)
    out = tmp_path / "out"
    run_backtest(file, out)
    computed = _count_replays(monkeypatch)
    frame = pd.read_parquet(proj / "data.parquet")
    frame.loc[frame.index[-5:], "y"] = 1 - frame["y"].iloc[-5:]  # five labels corrected
    frame.to_parquet(proj / "data.parquet")
    assert run_backtest(file, out).cached == 0 and sorted(computed) == ["every 3 days", "never"]
    computed.clear()
    assert run_backtest(file, out).cached == 2 and computed == []
    # cache: false (the CLI's --no-cache) replays everything and leaves the cache as it was
    entries = sorted(p.name for p in (out / ".cache").iterdir())
    file = backtest_file(proj, policies=policies, cache=False)
    assert run_backtest(file, out).cached == 0 and len(computed) == 2
    assert sorted(p.name for p in (out / ".cache").iterdir()) == entries
    fresh = tmp_path / "fresh"
    run_backtest(file, fresh)
    assert not (fresh / ".cache").exists()


def test_a_damaged_cache_entry_is_recomputed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    proj = tiny_project(tmp_path / "p", days=30)
    file = backtest_file(proj, policies=[NEVER])
    out = tmp_path / "out"
    run_backtest(file, out)
    [entry] = (out / ".cache").iterdir()
    entry.write_bytes(b"not a pickle")
    computed = _count_replays(monkeypatch)
    assert run_backtest(file, out).cached == 0 and computed == ["never"]
    assert run_backtest(file, out).cached == 1


def test_the_cache_key_is_one_hash_of_canonical_json():
    from retrainer.engine.backtest import cache_key

    assert cache_key({"a": 1, "b": [1, 2]}, "x") == cache_key({"b": [1, 2], "a": 1}, "x")
    assert cache_key({"a": 1}, "x") != cache_key({"a": 1.5}, "x")
    assert cache_key({"a": 1}, "x") != cache_key({"a": 1}, "y")


# --- configuration errors ---------------------------------------------------------------------


def test_unknown_top_level_key_names_it(tmp_path: Path):
    proj = tiny_project(tmp_path / "p", days=20)
    file = backtest_file(proj, polices=[])
    with pytest.raises(ConfigError, match="polices") as info:
        load_backtest_config(file)
    assert any("polices" in line and "unknown key" in line for line in info.value.problems)


@pytest.mark.parametrize("switch", [False, True])
def test_degradation_true_or_false_switches_the_curve_with_its_defaults(
    tmp_path: Path, switch: bool
):
    proj = tiny_project(tmp_path / "p", days=20)
    cfg, _ = load_backtest_config(backtest_file(proj, degradation=switch))
    assert cfg.degradation.enabled is switch
    assert (cfg.degradation.every, cfg.degradation.max_age) == (7, 90)


def test_a_policy_with_a_bad_window_or_trigger_is_a_config_error_naming_it(tmp_path: Path):
    proj = tiny_project(tmp_path / "p", days=20)
    bad = [
        {"name": "no span", "triggers": [{"schedule": "0 0 * * *"}], "window": {"kind": "sliding"}},
        {"name": "bad cron", "triggers": [{"schedule": "every day"}]},
    ]
    file = backtest_file(proj, policies=[*bad, WEEKLY])
    with pytest.raises(ConfigError) as info:
        run_backtest(file, tmp_path / "out")
    problems = info.value.problems
    assert problems[0].startswith("policy 'no span': window: ")
    assert problems[1].startswith("policy 'bad cron': triggers[0]: ")
    assert not (tmp_path / "out" / "results.json").exists()  # nothing ran


def test_unknown_key_in_a_policy_names_it(tmp_path: Path):
    proj = tiny_project(tmp_path / "p", days=20)
    bad = {"name": "typo", "trigers": [{"schedule": "0 0 * * *"}]}
    file = backtest_file(proj, policies=[bad, WEEKLY])
    with pytest.raises(ConfigError, match=r"'typo' has unknown key\(s\) trigers"):
        run_backtest(file, tmp_path / "out")


@pytest.mark.parametrize("until", ["2030-01-01", "2023-12-01"])
def test_select_until_outside_the_data_names_it(tmp_path: Path, until: str):
    proj = tiny_project(tmp_path / "p", days=20)
    cfg, file = load_backtest_config(backtest_file(proj, select_until=until))
    with pytest.raises(ConfigError, match=f"select_until '{until}' must fall inside"):
        load_replay(cfg, file)


def test_a_metric_not_in_the_pipeline_names_it(tmp_path: Path):
    proj = tiny_project(tmp_path / "p", days=20)
    cfg, file = load_backtest_config(backtest_file(proj, metric="f1"))
    with pytest.raises(ConfigError, match=r"metric 'f1' is not one of .*accuracy, roc_auc"):
        load_replay(cfg, file)


def test_two_policies_with_one_name(tmp_path: Path):
    proj = tiny_project(tmp_path / "p", days=20)
    twin = {**EVERY_3D, "name": "weekly"}
    file = backtest_file(proj, policies=[WEEKLY, twin])
    with pytest.raises(ConfigError, match="two policies are called 'weekly'"):
        run_backtest(file, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything ran


# --- --persist ------------------------------------------------------------------------------


def test_persist_keeps_each_policys_registry_in_sqlite(tmp_path: Path):
    from retrainer.engine.backtest.replay import policy_slug
    from retrainer.engine.project import Project

    proj = tiny_project(tmp_path / "p", days=30)
    file = backtest_file(proj, policies=[NEVER, EVERY_3D])
    result = run_backtest(file, tmp_path / "out", persist=True)
    folder = tmp_path / "out" / "persist" / policy_slug("every 3 days")
    assert (folder / ".retrainer" / "retrainer.db").is_file()
    with Project.open(folder) as project:
        versions = project.store.list_versions("toy")
        runs = project.store.list_runs("toy", limit=None)
    policy = next(p for p in result.results.policies if p.name == "every 3 days")
    # the first model plus one version per retrain, all recorded in the policy's own SQLite file
    assert len(versions) == policy.retrains + 1 == len(runs)
    assert policy.retrains > 0
    assert result.cached == 0


def test_a_policy_that_cannot_run_is_reported_and_the_others_still_run(tmp_path: Path):
    proj = tiny_project(tmp_path / "p", days=30)
    short = {
        "name": "daily on 2 days",
        "triggers": [{"schedule": "0 0 * * *"}],
        "window": {"kind": "sliding", "duration": "2d"},
    }
    # with labels 3 days late, a 2-day window ending now holds no labelled row
    file = backtest_file(proj, policies=[NEVER, WEEKLY, short], label_delay="3d")
    result = run_backtest(file, tmp_path / "out")
    assert [f.name for f in result.results.failed_policies] == ["daily on 2 days"]
    assert "none has a label yet" in result.results.failed_policies[0].error
    assert [p.name for p in result.results.policies] == ["never", WEEKLY["name"]]


def test_when_no_policy_can_run_the_error_gives_the_first_in_full_and_names_the_others(
    tmp_path: Path,
):
    proj = tiny_project(tmp_path / "p", days=30)
    shorts = [
        {
            "name": f"daily on {d} days",
            "triggers": [{"schedule": "0 0 * * *"}],
            "window": {"kind": "sliding", "duration": f"{d}d"},
        }
        for d in (1, 2)
    ]
    file = backtest_file(proj, policies=shorts, label_delay="3d", warm_start="4d")
    with pytest.raises(DataError) as info:
        run_backtest(file, tmp_path / "out")
    message = str(info.value)
    assert message.startswith("no policy could run on this data: policy 'daily on 1 days'")
    assert "none has a label yet" in message
    assert message.endswith("(and 1 other policies failed: 'daily on 2 days')")
    assert message.count("none has a label yet") == 1


@pytest.mark.parametrize(
    ("delay", "warm_start", "fails"), [("3d", "3d", False), ("3d1h", "3d", True)]
)
def test_a_label_delay_past_the_warm_start_is_a_config_error(
    tmp_path: Path, delay: str, warm_start: str, fails: bool
):
    """The first model is trained when the warm start ends: some label must have arrived."""
    proj = tiny_project(tmp_path / "p", days=20)
    file = backtest_file(proj, label_delay=delay, warm_start=warm_start)
    cfg, file = load_backtest_config(file)
    if not fails:
        replay, _, _ = load_replay(cfg, file)
        assert replay.label_delay == parse_duration(delay)
        return
    with pytest.raises(ConfigError, match=r"label_delay '3d1h' \(73h\) leaves no label") as info:
        load_replay(cfg, file)
    assert "leaves no label arrived when the first model is trained at" in str(info.value)
    assert "shorten label_delay or lengthen warm_start" in str(info.value)


def test_a_strict_pipeline_is_replayed_with_its_labels_delayed(tmp_path: Path):
    """``unlabelled: error`` guards production data; the replay hides the labels not arrived
    yet by design, so it trains on the labelled rows whatever the pipeline says."""
    proj = tiny_project(tmp_path / "p", days=30)
    config = yaml.safe_load((proj / "retrainer.yaml").read_text())
    config["pipelines"][0]["unlabelled"] = "error"
    (proj / "retrainer.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    file = backtest_file(
        proj, policies=[NEVER, EVERY_3D], label_delay="2d", degradation={"every": 3, "max_age": 6}
    )
    result = run_backtest(file, tmp_path / "out")
    assert result.results.failed_policies == ()
    by_name = {p.name: p for p in result.results.policies}
    assert by_name["every 3 days"].failed_runs == () and by_name["every 3 days"].retrains > 0
    assert result.results.degradation.n_models[0] > 0  # frozen models, on labelled rows


SELECT = {"cost": CostModel(), "tolerance": 0.5, "deg_scores": None}


def _cheap_and_weekly(
    tmp_path: Path, name: str, triggers: list[dict[str, Any]]
) -> tuple[Replay, list[PolicyRun], list[dict[str, Any]]]:
    """A policy that never retrains, as good as a weekly one on the selection part and worse
    after it, and the weekly one (2 retrains, 1 CPU s)."""
    replay = _replay(tmp_path)
    rows = replay.batch_rows()
    half = int(rows[5] - rows[0])
    cheap = _run(replay, name, _correct(0.9, 0.6, half, 1), retrains=0, cpu=0.0)
    weekly = _run(replay, "weekly", _correct(0.9, 0.85, half, 2), retrains=2, cpu=1.0)
    policies = [{"name": name, "triggers": triggers}, {"name": "weekly", "triggers": [{"x": 1}]}]
    return replay, [cheap, weekly], policies


def test_never_retrain_is_a_candidate_and_the_reason_says_dont_retrain(tmp_path: Path):
    """Issue 17, item 8: "don't retrain" is a valid answer (it was excluded as a baseline)."""
    replay, runs, policies = _cheap_and_weekly(tmp_path, "never", [])
    out = summarize(replay, runs, policies, **SELECT)
    assert out.recommended.name == "never"  # cheapest within 0.5 points on the first half
    assert out.recommended.reason.startswith("don't retrain: ")
    assert [p.excluded for p in out.policies] == [None, None]
    asked = summarize(replay, runs, policies, recommend_baselines=True, **SELECT)
    assert asked.recommended.name == "never"
    assert [p.excluded for p in asked.policies] == [None, None]


def test_a_trigger_that_never_fired_on_the_selection_part_is_not_recommended(tmp_path: Path):
    replay, runs, policies = _cheap_and_weekly(tmp_path, "silent", [{"concept_drift": {}}])
    out = summarize(replay, runs, policies, **SELECT)
    assert out.recommended.name == "weekly"  # "silent" is cheaper, but untested
    asked = summarize(replay, runs, policies, recommend_baselines=True, **SELECT)
    assert asked.recommended.name == "silent"


def test_a_trigger_that_watched_and_never_fired_was_tested_and_can_be_recommended(
    tmp_path: Path,
):
    """A monitor that judged (at least half of) the selection batches and saw nothing worth a
    retrain is the cheapest policy within tolerance; one that never had its signal, or had it
    for less than half the selection part, is not recommended."""
    replay, runs, policies = _cheap_and_weekly(tmp_path, "silent", [{"drift": {}}])
    silent, k = runs[0], replay.selection_batches()

    def recommended() -> BacktestSummary:
        return summarize(replay, runs, policies, **SELECT)

    silent.watching = np.zeros(replay.n_batches, dtype=bool)
    assert recommended().recommended.name == "weekly"
    need = (k + 1) // 2
    silent.watching[k - need + 1 : k] = True  # one batch short of half the selection part
    out = recommended()
    assert out.policies[0].watched_selection == need - 1
    assert out.policies[0].excluded == "untested"
    assert out.recommended.name == "weekly"
    silent.watching[k - need] = True  # half of it: the policy was tested
    out = recommended()
    assert out.policies[0].excluded is None
    assert out.recommended.name == "silent"
    assert out.recommended.reason.endswith(
        f"its trigger watched {need} of the {k} selection batches and never fired there, "
        "so its score there is its first model's"
    )
    silent.watching[:] = False
    silent.watching[k:] = True  # watching only in the held-out part does not count
    assert recommended().recommended.name == "weekly"


def test_backtest_on_days_weights_batches_by_rows_and_counts_retrains_in_range():
    from retrainer.engine.demo import DaemonSummary, backtest_on_days

    policy = {
        "series": {"n": [10, 30, 0, 20], "accuracy": [1.0, 0.5, None, 0.0]},
        "retrained_at": ["2024-01-01T00:00:00+00:00", "2024-01-02T00:00:00+00:00"],
    }
    summary = DaemonSummary(
        start="2024-01-02T00:00:00+00:00", end="2024-01-04T00:00:00+00:00", days=3, first_batch=1
    )
    value, retrains = backtest_on_days(policy, "accuracy", summary)
    assert value == pytest.approx((0.5 * 30 + 0.0 * 20) / 50)
    assert retrains == 1


def test_the_default_grid_widens_what_needs_labels_by_the_delay():
    """Under a 3-day label delay, spans that must hold labelled rows (training windows, the
    metric trigger's look-back, the concept-drift monitor's window) grow by 3 days; the data
    drift monitor's 7 days do not, since features arrive with their rows."""
    replay = _replay(Path())
    plain = default_policies(replay)
    delayed = default_policies(dataclasses.replace(replay, label_delay=3 * DAY))
    assert len(plain) == len(delayed)

    def by_trigger(policies: list[dict[str, Any]], key: str) -> dict[str, Any]:
        return next(p for p in policies if p["triggers"] and key in p["triggers"][0])

    drift, drift_late = by_trigger(plain, "drift"), by_trigger(delayed, "drift")
    assert drift["monitor"]["window"] == drift_late["monitor"]["window"] == "7d"
    assert drift_late["window"] == {"kind": "sliding", "duration": "33d"}
    concept, concept_late = by_trigger(plain, "concept_drift"), by_trigger(delayed, "concept_drift")
    assert (concept["monitor"]["window"], concept_late["monitor"]["window"]) == ("1d", "4d")
    metric, metric_late = by_trigger(plain, "metric"), by_trigger(delayed, "metric")
    assert (metric["triggers"][0]["over"], metric_late["triggers"][0]["over"]) == ("3d", "6d")
