"""The pipeline page's rollout section, on the rollout demo stopped in the middle of its A/B
test (8 simulated days of traffic through the real server app, ~20 s to build)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.server.dashboard.conftest import Dashboard, open_dashboard, with_refresh
from tests.server.dashboard.helpers import charts_checked


@pytest.fixture(scope="module")
def rollout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    from retrainer.engine.demo_rollout import run_rollout_demo

    root = tmp_path_factory.mktemp("rollout") / "elec2"
    run_rollout_demo(root, days=8, say=lambda _: None)
    with_refresh(root)
    yield from open_dashboard(root)


def test_the_rollout_in_progress_shows_its_split_variants_and_decision(
    rollout: Dashboard, page: Any
):
    from retrainer.engine.rollout import current_rollout

    state = current_rollout(rollout.project, rollout.pipeline)
    assert state is not None and state[0].active, "the demo's A/B is no longer running"
    candidate, champion = state[0].candidate, state[0].champion

    rollout.login(page, rollout.read, f"/ui/pipelines/{rollout.pipeline}")
    section = page.locator("#rollout")
    text = section.inner_text()
    assert "50" in text and "%" in text, "the traffic split is not shown"
    assert f"v{candidate}" in text and f"v{champion}" in text, text
    charts = charts_checked(page, at_least=1)
    rollout_charts = section.locator("div.chart")
    assert rollout_charts.count() >= 1, "no chart of the per-variant metric"
    drawn = [c for c in charts if "rollout" in c["id"]]
    assert drawn and all(c["points"] > 0 for c in drawn), charts


def test_the_overview_says_a_rollout_is_in_progress(rollout: Dashboard, page: Any):
    from retrainer.engine.rollout import current_rollout

    state = current_rollout(rollout.project, rollout.pipeline)
    assert state is not None
    rollout.login(page, rollout.read)
    text = page.locator(f'table#pipelines tr[data-pipeline="{rollout.pipeline}"]').inner_text()
    assert f"v{state[0].candidate}" in text and "50%" in text and "running" in text, text
