"""The pages follow the store without a reload, and say so when they cannot."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from retrainer.core.types import Event
from tests.server.dashboard.conftest import REFRESH, Dashboard, LiveServer, Watch

WITHIN_MS = int((3 * REFRESH + 2) * 1000)
"""A new event must show within one refresh; three intervals (and a margin for the slow
machine) before the test fails."""


def append_alert(history: Dashboard, kind: str = "model.load_failed") -> Event:
    """An event of a kind the overview counts as an open alert (critical, nothing after it
    resolves it): by default what the server writes when a model fails to load."""
    marker = f"browser-test {uuid.uuid4().hex[:8]}"
    return history.project.store.append_event(
        Event(
            kind=kind,
            at=datetime.now(UTC),
            message=f"{history.pipeline}: {marker}",
            pipeline=history.pipeline,
            data={"error": marker},
        )
    )


def test_a_new_event_shows_on_the_events_page_within_a_refresh(history: Dashboard, page: Any):
    history.login(page, history.read, "/ui/events")
    assert float(page.locator("body").get_attribute("data-refresh") or 0) == REFRESH
    event = append_alert(history)
    row = page.locator(f'table#events tr[data-event-id="{event.id}"]')
    row.wait_for(timeout=WITHIN_MS)
    assert event.message in row.inner_text()
    # swapped in place: the same document, no reload
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1


def test_a_new_event_shows_on_the_overview_within_a_refresh(history: Dashboard, page: Any):
    history.login(page, history.read)
    row = page.locator(f'table#pipelines tr[data-pipeline="{history.pipeline}"]')
    assert "run.failed" not in row.inner_text()
    event = append_alert(history, "run.failed")
    page.wait_for_function(
        """name => {
            const row = document.querySelector(`table#pipelines tr[data-pipeline="${name}"]`);
            return row && row.innerText.includes('run.failed');
        }""",
        arg=history.pipeline,
        timeout=WITHIN_MS,
    )
    # a critical open alert turns the row red, and says so in words
    health = row.locator("td.health")
    assert health.get_attribute("data-health") == "red"
    assert event.data["error"] in health.inner_text(), health.inner_text()
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1


def test_the_page_says_it_is_stale_when_the_server_stops_answering(
    history: Dashboard, page: Any, watch: Watch
):
    from retrainer.server import dashboard

    server = LiveServer(dashboard.create_dashboard_app(history.project)).start()
    try:
        page.goto(f"{server.url}/ui/login?token={history.read}&next=/ui")
        stale = page.locator("#stale")
        stale.wait_for(state="attached")
        assert stale.get_attribute("hidden") is not None
        page.wait_for_function("() => document.querySelector('#updated').innerText.trim() !== ''")
    finally:
        watch.offline = True  # the refreshes fail from now on, on purpose
        server.stop()
    stale.wait_for(state="visible", timeout=WITHIN_MS)
    assert stale.get_attribute("hidden") is None
    assert stale.inner_text().strip(), "#stale says nothing"
