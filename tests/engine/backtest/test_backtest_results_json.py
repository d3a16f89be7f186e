"""results.json stays the same document: a pinned summary of hand-made policy runs.

The fixture ``data/backtest_results.json`` was written by the dict-building ``summarize`` of
before the typed results; the typed results must serialize to exactly the same content.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from retrainer.core.backtest import CostModel
from retrainer.engine.backtest import summarize
from retrainer.engine.backtest.replay import PolicyRun, Replay
from tests.engine.backtest.test_backtest import _correct, _replay, _run

FIXTURE = Path(__file__).parent / "data" / "backtest_results.json"


def _document(tmp_path: Path) -> Any:
    replay: Replay = _replay(tmp_path)
    replay.label_delay = timedelta(hours=6)
    rows = replay.batch_rows()
    half = int(rows[5] - rows[0])
    runs = [
        _run(replay, "never", _correct(0.9, 0.6, half, 1), retrains=0, cpu=0.0),
        _run(replay, "weekly", _correct(0.9, 0.85, half, 2), retrains=2, cpu=1.0),
        _run(replay, "daily", _correct(0.92, 0.86, half, 3), retrains=9, cpu=4.5),
        _run(replay, "drift", _correct(0.8, 0.7, half, 4), retrains=0, cpu=0.0),
    ]
    runs[3].watching = np.ones(replay.n_batches, dtype=bool)
    runs[2].values["accuracy"][3] = np.nan  # an empty batch: null in the series
    runs[1].failed = ["run 3 failed: boom"]
    broken = PolicyRun(
        name="broken",
        params={},
        n=np.zeros(0, dtype=np.int64),
        values={},
        y_true=np.zeros(0),
        y_pred=np.zeros(0),
        y_score=None,
        retrained_at=[],
        train_cpu=[],
        promoted_at=[],
        failed=[],
        wall_s=0.0,
        versions=0,
        error="none has a label yet",
    )
    policies: list[dict[str, Any]] = [
        {"name": "never", "triggers": [], "window": {"kind": "full"}},
        {
            "name": "weekly",
            "triggers": [{"schedule": "0 0 * * MON"}],
            "window": {"kind": "sliding", "duration": "14d"},
            "guards": [{"cooldown": "2d"}],
        },
        {"name": "daily", "triggers": [{"schedule": "0 0 * * *"}]},
        {"name": "drift", "triggers": [{"drift": {}}], "monitor": {"every": "1d"}},
        {"name": "broken", "triggers": [{"schedule": "every 2d"}]},
    ]
    deg = {
        "model": [0, 0, 0, 3, 3, 3],
        "age": [0, 1, 2, 0, 1, 2],
        "value": [0.9, 0.85, 0.8, 0.88, float("nan"), 0.7],
        "n": [20, 20, 20, 20, 0, 20],
        "every": 3,
    }
    return summarize(
        replay,
        [*runs[:4], broken],
        policies,
        cost=CostModel(per_retrain=1.0, per_cpu_second=0.1, per_metric_point=10.0),
        tolerance=0.5,
        cpu_tolerance=0.25,
        deg_scores=deg,
        deg_window={"kind": "sliding", "duration": "7d"},
    )


def _as_json(document: Any) -> Any:
    data = document.to_json() if hasattr(document, "to_json") else document
    return json.loads(json.dumps(data, indent=1, allow_nan=False))


def test_results_json_keeps_its_content(tmp_path: Path):
    got = _as_json(_document(tmp_path))
    if not FIXTURE.exists():  # pragma: no cover - writes the pin once, from the old code
        FIXTURE.write_text(json.dumps(got, indent=1, allow_nan=False) + "\n")
    assert got == json.loads(FIXTURE.read_text())


def test_results_json_keeps_its_key_order(tmp_path: Path):
    text = json.dumps(_as_json(_document(tmp_path)), indent=1, allow_nan=False) + "\n"
    assert text == FIXTURE.read_text()
