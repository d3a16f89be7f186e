"""kill -9 of the real daemon in the middle of a rollout's promotion, then a restart."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrainer.engine.project import Project
from retrainer.engine.rollout import current_rollout
from tests.conftest import write_project
from tests.interfaces.test_e2e import cli_here

pytestmark = pytest.mark.slow

AB = {"strategy": "ab", "metric": "accuracy", "min_effect": 0.02, "min_samples": 200,
      "watch": "2h"}  # fmt: skip
BLESS_ANY = {"holdout": 0.25, "rules": [{"metric": "accuracy", "min": 0.5}],
             "sanity": {"enabled": False}}  # fmt: skip


def _log_ab(proj: Path, start: datetime, n: int = 1500) -> None:
    """Served predictions of both variants, the challenger right more often, with outcomes."""
    rng = np.random.default_rng(0)
    rows, feedback = [], []
    for variant, version, accuracy in (("champion", 1, 0.7), ("challenger", 2, 0.86)):
        y = rng.integers(0, 2, n)
        pred = np.where(rng.random(n) < accuracy, y, 1 - y)
        for i in range(n):
            t = start + timedelta(seconds=20 * i)
            rows.append({"id": f"{variant}{i}", "timestamp": t, "pipeline": "toy",
                         "model_version": version, "prediction": int(pred[i]),
                         "score": 0.2 + 0.6 * float(pred[i]), "variant": variant})  # fmt: skip
            feedback.append({"id": f"{variant}{i}", "timestamp": t + timedelta(minutes=1),
                             "outcome": int(y[i])})  # fmt: skip
    with Project.open(proj) as project:
        project.log_store().append_predictions(pd.DataFrame(rows))
        project.log_store().append_feedback(pd.DataFrame(feedback))


def test_kill_9_between_the_promotion_and_the_state_write_is_repaired(tmp_path: Path):
    proj = write_project(tmp_path / "p", blessing=BLESS_ANY, rollout=AB)
    cli_here("run", "-c", str(proj), "--as-of", "2024-01-20")
    cli_here("run", "-c", str(proj), "--as-of", "2024-01-22")  # v2 blessed: the rollout starts
    _log_ab(proj, datetime(2024, 1, 22, 0, 5))
    crashed = subprocess.run(
        [sys.executable, "-m", "retrainer", "daemon", "-c", str(proj), "--quiet",
         "--as-of", "2024-01-22T12:00:00", "--tick", "3600", "--max-ticks", "2"],
        env={**__import__("os").environ, "RETRAINER_FAULT": "rollout_after_alias"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert crashed.returncode == 137, crashed.stderr
    with Project.open(proj) as project:
        assert project.store.get_alias("toy", "champion") == 2  # moved, then the process died
        assert current_rollout(project, "toy")[0].status == "running"  # state write lost
    cli_here("daemon", "-c", str(proj), "--quiet", "--as-of", "2024-01-22T13:00:00",
             "--tick", "3600", "--max-ticks", "1")  # fmt: skip
    with Project.open(proj) as project:
        state, _ = current_rollout(project, "toy")
        assert state.status == "watching" and "recovered" in state.reason
        assert project.store.aliases("toy") == {"champion": 2}
    events = json.loads(cli_here("events", "-c", str(proj), "--json", "--limit", "500").stdout)
    promoted = [e for e in events if e["kind"] == "model.promoted"
                and e["data"]["alias"] == "champion"]  # fmt: skip
    assert [e["version"] for e in promoted] == [1, 2]  # v2's promotion recorded once
    cli_here("daemon", "-c", str(proj), "--quiet", "--as-of", "2024-01-22T16:00:00",
             "--tick", "3600", "--max-ticks", "1")  # fmt: skip
    with Project.open(proj) as project:
        assert current_rollout(project, "toy")[0].status == "promoted"
