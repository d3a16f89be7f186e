"""Issue 17: units of differences, one definition for table/recommendation/intervals, robust
selection on folds with never retraining as a candidate, the reference and hindsight bound,
and the progress count."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrainer.config import PipelineConfig
from retrainer.core.backtest import CostModel, paired_bootstrap
from retrainer.engine.backtest import run_backtest, summarize
from retrainer.engine.backtest.replay import PolicyRun, Replay
from tests.engine.backtest.test_backtest import NEVER, WEEKLY, backtest_file, tiny_project

DAY = timedelta(days=1)
ROWS = 40


def _replay(tmp_path: Path, metric: str, y: np.ndarray, days: int, selection: int) -> Replay:
    """``days`` days of ROWS rows a day, half of them warm start, then ``selection`` batches."""
    ts = pd.date_range("2024-01-01", periods=days * ROWS, freq=f"{24 * 60 // ROWS}min")
    start = datetime(2024, 1, 1, tzinfo=UTC) + (days // 2) * DAY
    spec = {
        "name": "toy",
        "source": {"kind": "parquet", "url": "data.parquet", "time_column": "ts"},
        "target": "y",
        "features": ["x"],
        "train": "unused:train",
        "metrics": [metric],
        "blessing": {
            "holdout": 0.2,
            "rules": [
                {
                    "metric": metric,
                    "max" if metric == "mae" else "min": 1e9 if metric == "mae" else 0.0,
                }
            ],
            "sanity": {"enabled": False},
        },
    }
    return Replay(
        frame=pd.DataFrame({"ts": ts, "x": 0.0, "y": y[: len(ts)]}),
        pipeline=PipelineConfig.model_validate(spec).model_dump(mode="json", exclude_none=True),
        batch=DAY,
        start=start,
        select_until=start + selection * DAY,
        root=tmp_path,
        metric=metric,
    )


def _run(
    replay: Replay,
    name: str,
    y_pred: np.ndarray,
    y_score: np.ndarray | None,
    values: np.ndarray,
    retrains: int = 0,
    cpu: float = 0.0,
) -> PolicyRun:
    rows = replay.batch_rows()
    metric = replay.metric or "accuracy"
    at = [replay.start + (k + 1) * DAY for k in range(retrains)]
    return PolicyRun(
        name=name,
        params={},
        n=np.diff(rows),
        values={metric: values},
        y_true=replay.frame["y"].to_numpy()[rows[0] : rows[-1]],
        y_pred=y_pred,
        y_score=y_score,
        retrained_at=at,
        train_cpu=[cpu / max(retrains, 1)] * retrains,
        promoted_at=at,
        failed=[],
        wall_s=0.1,
        versions=retrains + 1,
    )


def _per_batch(replay: Replay, fn: Any) -> np.ndarray:
    rows = replay.batch_rows()
    return np.array([fn(a - rows[0], b - rows[0]) for a, b in itertools.pairwise(rows)])


SELECT: dict[str, Any] = {"cost": CostModel(), "tolerance": 0.5, "deg_scores": None}


def test_regression_differences_are_written_in_the_metrics_units_not_points(tmp_path: Path):
    """Item 1: an MAE 16 lower was written "1600.00 points"; it is 16 (and a relative %)."""
    y = np.random.default_rng(0).normal(100.0, 10.0, 20 * ROWS)
    replay = _replay(tmp_path, "mae", y, days=20, selection=5)
    rows = replay.batch_rows()
    truth = y[rows[0] : rows[-1]]
    runs = []
    for name, err in (("good", 10.0), ("bad", 26.0)):
        pred = truth + err
        values = _per_batch(replay, lambda a, b, e=err: e)
        runs.append(_run(replay, name, pred, None, values))
    policies = [{"name": "good", "triggers": [{"x": 1}]}, {"name": "bad", "triggers": [{"x": 1}]}]
    out = summarize(replay, runs, policies, **SELECT)
    assert out.recommended.name == "good" and out.units == "units"
    (c,) = out.comparisons
    assert abs(c.mean - (-16.0)) < 1e-9
    assert "points" not in c.text
    assert c.text.startswith("good beats bad by 16 (61.5%)"), c.text
    assert out.to_json()["comparisons"][0]["text"] == c.text
    from retrainer.engine.backtest.report import write_backtest_report

    report, _ = write_backtest_report(out, tmp_path / "out")
    page = report.read_text()
    differences = page[page.index("<h2>Differences") :]
    assert "points" not in differences
    assert "-16 (-61.5%)" in differences


def test_auc_table_recommendation_and_interval_share_the_pooled_definition(tmp_path: Path):
    """Item 2: "within" has a good ranking inside each batch but scores on a scale that drifts
    from batch to batch: the mean of per-batch AUCs favours it, the AUC pooled over the rows
    (what the table shows and the recommendation reads) favours "steady". The difference and
    its interval are now about the pooled AUC; before, they were about the per-batch mean."""
    rng = np.random.default_rng(1)
    days = 20
    y = rng.integers(0, 2, days * ROWS)
    replay = _replay(tmp_path, "roc_auc", y, days=days, selection=5)
    rows = replay.batch_rows()
    truth = y[rows[0] : rows[-1]]
    batch = np.repeat(np.arange(replay.n_batches), np.diff(rows))
    # within: ranks right in each batch (AUC 1 there), but each batch shifted by a lot
    within = 0.1 * truth + 0.05 * rng.random(len(truth)) + 0.8 * (batch % 2)
    within = within / within.max()
    # steady: noisy but on one scale
    steady = 0.35 * truth + 0.65 * rng.random(len(truth))
    from retrainer.core.metrics import compute, get_metric

    auc = get_metric("roc_auc")

    def values(s: np.ndarray) -> np.ndarray:
        return _per_batch(replay, lambda a, b: compute(auc, truth[a:b], truth[a:b], s[a:b]))

    runs = [
        _run(replay, "within", (within > 0.5).astype(int), within, values(within), 3, 1.0),
        _run(replay, "steady", (steady > 0.5).astype(int), steady, values(steady), 3, 1.0),
    ]
    k = replay.selection_batches()
    per_batch = paired_bootstrap(
        runs[0].values["roc_auc"][k:], runs[1].values["roc_auc"][k:], runs[0].n[k:]
    )
    assert per_batch.mean > 0  # the old definition: "within" ahead
    policies = [
        {"name": "within", "triggers": [{"x": 1}]},
        {"name": "steady", "triggers": [{"x": 1}]},
    ]
    out = summarize(replay, runs, policies, **SELECT)
    assert out.definition == "pooled"
    table = {p.name: p.held_out["roc_auc"] for p in out.policies}
    assert table["steady"] > table["within"]
    assert out.recommended.name == "steady"
    (c,) = out.comparisons
    assert c.a == "steady" and c.b == "within"
    assert abs(c.mean - (table["steady"] - table["within"])) < 1e-5
    assert c.low is not None and c.high is not None and c.low <= c.mean <= c.high


def _fold_case(tmp_path: Path) -> tuple[Replay, list[PolicyRun], list[dict[str, Any]]]:
    """18 selection batches (3 folds of 6): "lucky" wins the last fold by a lot and loses the
    first two; never retraining is steady and close to the best on average."""
    days, selection = 48, 18
    y = np.random.default_rng(2).integers(0, 2, days * ROWS)
    replay = _replay(tmp_path, "accuracy", y, days=days, selection=selection)
    rows = replay.batch_rows()
    truth = y[rows[0] : rows[-1]]
    batch = np.repeat(np.arange(replay.n_batches), np.diff(rows))
    rng = np.random.default_rng(3)

    def run(name: str, share_by_batch: np.ndarray, retrains: int, cpu: float) -> PolicyRun:
        right = rng.random(len(truth)) < share_by_batch[batch]
        pred = np.where(right, truth, 1 - truth)
        values = _per_batch(replay, lambda a, b: float(np.mean(right[a:b])))
        return _run(replay, name, pred, None, values, retrains, cpu)

    n = replay.n_batches
    lucky = np.where(np.arange(n) < 12, 0.74, 0.97)
    lucky[selection:] = 0.70
    never = np.full(n, 0.78)
    runs = [run("never", never, 0, 0.0), run("lucky", lucky, n, 2.4)]
    policies = [{"name": "never", "triggers": []}, {"name": "lucky", "triggers": [{"x": 1}]}]
    return replay, runs, policies


def test_selection_scores_consecutive_folds_and_dont_retrain_is_an_answer(tmp_path: Path):
    """Item 8: "lucky" is best on the selection part thanks to its last third, by 2 points:
    one split recommended it. Its edge is within noise (the batches' paired interval reaches 0),
    so never retraining, free, is recommended, and the reason says so."""
    replay, runs, policies = _fold_case(tmp_path)
    out = summarize(replay, runs, policies, **SELECT)
    assert out.folds == 3
    by = {p.name: p for p in out.policies}
    assert len(by["lucky"].folds) == 3
    assert by["lucky"].selection["accuracy"] > by["never"].selection["accuracy"]
    assert by["never"].regret is not None and by["lucky"].regret is not None
    assert by["lucky"].regret < by["never"].regret
    assert out.recommended.name == "never"
    assert out.recommended.rule == "folds"
    assert out.recommended.reason.startswith("don't retrain: ")
    assert out.recommended.within_noise is True
    assert "rests on differences within noise" in (out.recommended.noise or "")


def test_results_json_has_the_reference_cpu_shares_hindsight_bound_and_regret(tmp_path: Path):
    replay, runs, policies = _fold_case(tmp_path)
    doc = summarize(replay, runs, policies, **SELECT).to_json()
    assert doc["oracle"] == "lucky" == doc["reference"]["name"]
    shares = {p["name"]: p["cpu_share"] for p in doc["policies"]}
    assert shares == {"never": 0.0, "lucky": 1.0}
    assert doc["hindsight"]["name"] == "never"  # the only one at <= 20% of the reference's CPU
    assert doc["hindsight"]["max_cpu_share"] == 0.2
    held = {p["name"]: p["held_out"]["accuracy"] for p in doc["policies"]}
    assert abs(doc["hindsight"]["gap"] - 100 * (held["never"] - held["lucky"])) < 1e-3
    assert doc["recommended"]["regret"] == 0.0


def test_the_reference_is_the_best_window_retrained_every_batch(tmp_path: Path):
    replay, runs, policies = _fold_case(tmp_path)
    worse = _run(
        replay,
        "every batch, short window",
        1 - runs[1].y_pred,
        None,
        1 - runs[1].values["accuracy"],
        retrains=replay.n_batches,
        cpu=2.4,
    )
    out = summarize(
        replay, [*runs, worse], [*policies, {"name": worse.name, "triggers": [{"x": 1}]}], **SELECT
    )
    assert out.oracle == "lucky"


def test_progress_counts_the_policies_and_reports_each_as_it_finishes(tmp_path: Path):
    """Item 11: the count was the policies plus the degradation curve (14 for "12 policies")."""
    proj = tiny_project(tmp_path / "p", days=30)
    file = backtest_file(proj, policies=[NEVER, WEEKLY], degradation={"every": 3, "max_age": 5})
    calls: list[tuple[int, int, str]] = []
    result = run_backtest(file, tmp_path / "out", progress=lambda d, t, n: calls.append((d, t, n)))
    assert {t for _, t, _ in calls} == {len(result.results.policies)} == {2}
    finished = [n for d, _, n in calls if d > 0 and n != "degradation curve"]
    assert finished == ["never", "weekly"]
    assert any(n == "degradation curve" for _, _, n in calls)


def test_without_a_terminal_the_cli_prints_a_line_per_finished_policy(capsys: Any):
    from retrainer.cli.backtest import _PolicyLines

    with _PolicyLines() as update:
        update(0, 3, "starting")
        update(1, 3, "never")
        update(2, 3, "weekly")
        update(2, 3, "degradation curve")
        update(3, 3, "daily")
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "policy 1/3 done: never",
        "policy 2/3 done: weekly",
        "degradation curve done",
        "policy 3/3 done: daily",
    ]


def test_a_trigger_that_never_fired_is_preferred_to_never_retraining_at_equal_cost():
    """Both cost nothing on the selection part and are within tolerance: the one that can
    react to a shift to come wins (car loan: never retraining lost 1.5 points held out)."""
    from retrainer.core.selection import FoldCandidate, select_on_folds

    cands = [
        FoldCandidate(
            name="never", folds=(0.862, 0.860, 0.865), retrains=0, cpu_s=0.0, reacts=False
        ),
        FoldCandidate(name="drift", folds=(0.862, 0.859, 0.864), retrains=0, cpu_s=0.0),
        FoldCandidate(name="daily", folds=(0.861, 0.860, 0.863), retrains=90, cpu_s=2.0),
    ]
    assert select_on_folds(cands).name == "drift"
    assert select_on_folds(cands[::2]).name == "never"
