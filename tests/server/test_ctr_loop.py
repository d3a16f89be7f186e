"""The seed's example end to end on served traffic: predictions through the API, clicks
posted as feedback, and the daemon's metric trigger (retrain when CTR < 1.91%) reading them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from retrainer.core.clock import SimulatedClock
from retrainer.engine.control.controller import Controller
from retrainer.engine.runs.run import execute_run
from retrainer.server import create_app
from retrainer.testing import in_memory_project
from tests.server.conftest import FAST, authenticate, bearer

START = datetime(2024, 1, 20, tzinfo=UTC)


def test_ctr_trigger_fires_on_clicks_posted_to_the_server():
    clock = SimulatedClock(START)
    project = in_memory_project(
        clock=clock,
        metrics=["accuracy"],
        triggers=[{"metric": "ctr", "below": 0.0191, "over": "1d", "min_samples": 100}],
    )
    assert execute_run(project, clock=clock).promoted
    controller = Controller(project, clock=clock)
    app = create_app(project, authenticate=authenticate, settings=FAST)

    def serve_day(client: TestClient, clicks: int) -> None:
        rows = [{"x1": 0.1 * (i % 7), "x2": -0.1 * (i % 5)} for i in range(200)]
        answers = client.post("/v1/toy/predict", json=rows, headers=bearer("predict")).json()
        ids = [a["prediction_id"] for a in answers["predictions"]]
        outcomes = [{"prediction_id": i, "outcome": int(n < clicks)} for n, i in enumerate(ids)]
        r = client.post("/v1/toy/feedback", json=outcomes, headers=bearer("feedback"))
        assert r.json() == {"accepted": 200, "unknown": []}
        for writer in app.state.writers.values():
            writer.flush()

    with TestClient(app) as client:
        serve_day(client, clicks=6)  # 3%
        clock.set(START + timedelta(days=1))
        assert controller.tick().queued == []
        serve_day(client, clicks=1)  # 0.5%
        clock.set(START + timedelta(days=2))
        assert len(controller.tick().queued) == 1
    fired = project.store.list_events("toy", kinds=["trigger.fired"])[-1]
    assert "ctr" in fired.message
