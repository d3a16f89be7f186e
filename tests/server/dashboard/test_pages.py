"""Every page of the dashboard, in chromium, on the elec2 project after ~20 days of the daemon:
it renders without a console error or a failed request, its charts draw their data, and what
it lists matches the store (UI_CONTRACT: URLs and selectors)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.server.dashboard.conftest import Dashboard, Watch
from tests.server.dashboard.helpers import charts_checked


def test_login_form_refuses_a_bad_token_then_lets_a_good_one_in(
    history: Dashboard, page: Any, watch: Watch
):
    page.goto(f"{history.url}/ui/login")
    assert page.locator("input[name=token]").count() == 1
    watch.allow(401, "/ui/login")
    page.fill("input[name=token]", "rt_nope_nope")
    with page.expect_navigation() as nav:
        page.click("button[type=submit]")
    assert nav.value.status == 401
    assert page.locator("input[name=token]").count() == 1  # the form again, with an error
    page.fill("input[name=token]", history.read)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/ui/?$"))
    assert page.locator("table#pipelines").count() == 1
    cookie = next(c for c in page.context.cookies() if c["name"] == "retrainer_ui")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_a_page_without_a_cookie_sends_to_the_login_and_back(history: Dashboard, page: Any):
    wanted = f"/ui/pipelines/{history.pipeline}"
    page.goto(history.url + wanted)
    assert urlparse(page.url).path == "/ui/login"
    assert parse_qs(urlparse(page.url).query)["next"] == [wanted]
    page.fill("input[name=token]", history.read)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(wanted) + "$"))


def test_overview_has_a_row_per_pipeline_with_health_in_words(history: Dashboard, page: Any):
    history.login(page, history.read)
    rows = page.locator("table#pipelines tr[data-pipeline]")
    assert rows.count() == len(history.project.config.pipelines)
    row = page.locator(f'table#pipelines tr[data-pipeline="{history.pipeline}"]')
    link = row.locator("a.pipeline-link")
    assert link.get_attribute("href") == f"/ui/pipelines/{history.pipeline}"
    health = row.locator("td.health")
    assert health.get_attribute("data-health") in ("green", "amber", "red")
    # colour is never the only signal: the cell says why in words
    assert len(health.inner_text().strip()) >= 3
    champion = history.project.store.get_alias(history.pipeline, "champion")
    assert f"v{champion}" in row.inner_text() or str(champion) in row.inner_text()
    charts_checked(page, at_least=0)
    page.locator("#updated").wait_for(state="attached")
    assert page.locator("#stale").get_attribute("hidden") is not None


def test_pipeline_page_sections_charts_and_tables(history: Dashboard, page: Any):
    name = history.pipeline
    history.login(page, history.read, f"/ui/pipelines/{name}")
    for section in ("metric", "drift", "triggers", "runs", "versions", "rollout"):
        assert page.locator(f"#{section}").count() == 1, f"#{section} missing"
    charts = charts_checked(page, at_least=2)
    sections = {c["id"] for c in charts}
    # the online metric and the drift heatmap are drawn on a project with this history
    assert any("metric" in s for s in sections) and any("drift" in s for s in sections), sections

    store = history.project.store
    versions = store.list_versions(name, profiles=False)
    champion = store.get_alias(name, "champion")
    shown = page.locator("#versions tr[data-version]")
    assert sorted(int(v) for v in shown.evaluate_all("rs => rs.map(r => r.dataset.version)")) == (
        sorted(v.version for v in versions)
    )
    for v in versions:
        promote = page.locator(f'#versions tr[data-version="{v.version}"] a.promote')
        expected = v.blessing.passed and v.version != champion
        assert promote.count() == (1 if expected else 0), f"v{v.version}: a.promote"
        if expected:
            assert promote.get_attribute("href") == (
                f"/ui/pipelines/{name}/promote?version={v.version}"
            )
    assert page.locator("a.rollback").count() <= 1

    runs = store.list_runs(name, limit=None)
    shown_runs = page.locator("#runs tr[data-run]")
    assert shown_runs.count() == len(runs)  # fewer than a page of them
    for run in runs:
        link = page.locator(
            f'#runs tr[data-run="{run.id}"] a[href="/ui/pipelines/{name}/runs/{run.id}"]'
        )
        assert link.count() >= 1, f"run {run.id}: no link to its page"
    assert page.locator("#triggers").inner_text().strip(), "no trigger evaluations shown"


def test_run_page_shows_the_gates_evidence_of_a_rejection(history: Dashboard, page: Any):
    name = history.pipeline
    store = history.project.store
    rejected = [
        e for e in store.list_events(name, kinds=["blessing.rejected"]) if e.run_id is not None
    ]
    assert rejected, "the history has no rejection: the fixture changed"
    run_id = rejected[-1].run_id
    history.login(page, history.read, f"/ui/pipelines/{name}")
    # from the pipeline page, as a user would
    page.click(f'#runs tr[data-run="{run_id}"] a[href="/ui/pipelines/{name}/runs/{run_id}"]')
    page.wait_for_url(re.compile(rf"/ui/pipelines/{name}/runs/{run_id}$"))
    text = page.locator("main").inner_text()
    assert "accuracy" in text and "log_loss" in text, "the gate's rules are not shown"
    version = store.get_version(name, rejected[-1].version)
    failed = [row for row in version.blessing.evidence if not row.passed]
    assert failed and all(row.metric in text for row in failed)
    assert re.search(r"reject|fail", text, re.IGNORECASE), "the verdict is not said in words"
    # the evidence table has a row per check of the gate
    evidence_rows = page.locator("main table tbody tr").count()
    assert evidence_rows >= len(version.blessing.evidence)
    assert page.locator("table").count() >= 1
    charts_checked(page, at_least=0)


def test_events_page_lists_filters_and_paginates(history: Dashboard, page: Any):
    store = history.project.store
    events = store.list_events(limit=None)
    history.login(page, history.read, "/ui/events")
    rows = page.locator("table#events tr[data-event-id]")
    assert rows.count() > 0
    ids = [int(i) for i in rows.evaluate_all("rs => rs.map(r => r.dataset.eventId)")]
    assert ids == sorted(ids, reverse=True), "newest first"
    assert ids[0] == max(e.id for e in events if e.id is not None)

    seen = set(ids)
    pages = 1
    while page.locator("a[rel=next]").count():
        page.click("a[rel=next]")
        page.wait_for_load_state()
        older = [
            int(i)
            for i in page.locator("table#events tr[data-event-id]").evaluate_all(
                "rs => rs.map(r => r.dataset.eventId)"
            )
        ]
        assert older and max(older) < min(seen), "the next page is not older"
        seen |= set(older)
        pages += 1
        assert pages < 100
    assert seen == {e.id for e in events}, "paging does not reach every event exactly once"

    kind = "model.promoted"
    page.goto(f"{history.url}/ui/events?kind={kind}&pipeline={history.pipeline}")
    kinds = page.locator("table#events tr[data-event-id]")
    promoted = [e for e in events if e.kind == kind]
    assert kinds.count() == len(promoted)
    assert {int(i) for i in kinds.evaluate_all("rs => rs.map(r => r.dataset.eventId)")} == {
        e.id for e in promoted
    }

    # a time window: the events of one simulated day
    day = promoted[len(promoted) // 2].at
    since, until = day.strftime("%Y-%m-%dT00:00:00"), day.strftime("%Y-%m-%dT23:59:59")
    page.goto(f"{history.url}/ui/events?since={since}&until={until}")
    within = {e.id for e in events if since <= e.at.strftime("%Y-%m-%dT%H:%M:%S") <= until}
    shown = {
        int(i)
        for i in page.locator("table#events tr[data-event-id]").evaluate_all(
            "rs => rs.map(r => r.dataset.eventId)"
        )
    }
    assert shown and shown <= within


def test_backtests_page_lists_the_projects_backtests(history: Dashboard, page: Any):
    history.login(page, history.read, "/ui/backtests")
    assert page.locator("table#backtests").count() == 1
    for link in page.locator("table#backtests a[href]").all():
        href = link.get_attribute("href")
        assert href
        response = page.request.get(history.url + href if href.startswith("/") else href)
        assert response.status == 200, href


def test_every_page_refreshes_itself_without_errors(history: Dashboard, page: Any):
    """Two refresh intervals on each page: the swaps of <main> bring no console error, no
    failed request, and the charts are drawn again."""
    name = history.pipeline
    run = history.project.store.list_runs(name, limit=1)[0]
    history.login(page, history.read)
    for path in (
        "/ui",
        f"/ui/pipelines/{name}",
        f"/ui/pipelines/{name}/runs/{run.id}",
        "/ui/events",
        "/ui/backtests",
    ):
        page.goto(history.url + path)
        refresh = float(page.locator("body").get_attribute("data-refresh") or 0)
        assert 0 < refresh <= 2, f"{path}: data-refresh={refresh} (ui.refresh is 1)"
        before = page.locator("#updated").inner_text()
        page.wait_for_function(
            "b => document.querySelector('#updated').innerText !== b", arg=before, timeout=5_000
        )
        charts_checked(page, at_least=0)
        assert page.locator("#stale").get_attribute("hidden") is not None, f"{path}: stale"
