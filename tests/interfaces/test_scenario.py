"""The scripted elec2 scenario: daily data arrival, a cron and a metric trigger, the daemon's
controller on a simulated clock; `retrainer events --json` tells the whole story."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.interfaces.test_e2e import assert_consistent, cli_here

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "elec2_daemon_scenario.py"


def test_elec2_scenario_events_tell_the_story(tmp_path: Path):
    proj = tmp_path / "scenario"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(proj), "--days", "21"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    events = json.loads(cli_here("events", "-c", str(proj), "--limit", "5000", "--json").stdout)
    fired = [e for e in events if e["kind"] == "trigger.fired"]
    assert {e["data"]["fired_by"] for e in fired} == {"weekly", "accuracy-drop"}
    metric = next(e for e in fired if e["data"]["fired_by"] == "accuracy-drop")
    child = next(c for c in metric["data"]["evidence"]["children"] if c["fire"])
    assert child["evidence"]["metric"] == "accuracy" and child["evidence"]["value"] < 0.75
    kinds = {e["kind"] for e in events}
    assert {
        "run.queued",
        "run.started",
        "run.succeeded",
        "blessing.passed",
        "model.promoted",
    } <= kinds
    runs = [e for e in events if e["kind"] == "run.queued"]
    assert len(runs) == len(fired)  # one run per firing
    assert [r["data"]["trigger"] for r in runs] == [e["data"]["trigger"] for e in fired]
    causes = {
        r["cause"]
        for r in json.loads(cli_here("status", "-c", str(proj), "--json").stdout)[0]["last_runs"]
    }
    assert causes <= {"weekly", "accuracy-drop"}
    assert_consistent(proj)
