"""`retrainer demo --rollout`: the A/B decided by the daemon, the broken candidate rolled back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.interfaces.test_e2e import cli_here

pytestmark = pytest.mark.slow


def test_the_rollout_demo_promotes_by_test_and_rolls_back_by_guard(tmp_path: Path):
    target = tmp_path / "demo"
    result = cli_here("demo", "--rollout", "--dir", str(target))
    assert "rollout.promoted" in result.stdout and "rollout.rolled_back" in result.stdout
    status = json.loads(cli_here("status", "-c", str(target), "--json").stdout)[0]
    rollout = status["rollout"]
    assert rollout["status"] == "rolled_back" and rollout["champion"] == status["champion"]
    breached = [g["name"] for g in rollout["evidence"]["guards"] if g["breached"]]
    assert breached == ["output_drift"]
    events = json.loads(cli_here("events", "-c", str(target), "--json", "--limit", "5000").stdout)
    kinds = [e["kind"] for e in events]
    promoted = [e for e in events if e["kind"] == "rollout.promoted"]
    assert len(promoted) == 1 and promoted[0]["data"]["test"]["outcome"] == "promote"
    assert kinds.count("rollout.rolled_back") == 1
    alerts = [e for e in events if e["kind"] == "alert.sent"]
    assert [a["data"].get("alert_kind", a["message"].split()[0]) for a in alerts] == [
        "rollout.rolled_back"
    ]
    # during the A/B the server logged both variants, each user on one side only
    from datetime import datetime

    from retrainer.engine.project import Project

    decided = datetime.fromisoformat(promoted[0]["at"]).replace(tzinfo=None)
    with Project.open(target) as project:
        log = project.log_store().predictions("elec2", None, decided)
    assert set(log["variant"]) == {"champion", "challenger"}
    assert set(log["model_version"]) == {1, 2}
    assert (log.groupby("request_key")["variant"].nunique() == 1).all()
