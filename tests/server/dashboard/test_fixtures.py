"""The browser fixtures themselves: the live server answers and stops, the watch catches
what the dashboard tests rely on it to catch."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx2 as httpx  # the client starlette.testclient uses (the dev extra)
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response

from tests.server.dashboard.conftest import LiveServer, Watch


def tiny_app() -> FastAPI:
    app = FastAPI()

    @app.get("/", response_class=HTMLResponse)
    def clean() -> str:
        return "<!doctype html><link rel=icon href='data:,'><p id=ok>fine</p>"

    @app.get("/noisy", response_class=HTMLResponse)
    def noisy() -> str:
        return (
            "<!doctype html><link rel=icon href='data:,'><img src='/nothing.png'>"
            "<script>console.error('boom'); fetch('/gone');</script>"
        )

    @app.get("/throws", response_class=HTMLResponse)
    def throws() -> str:
        return "<!doctype html><link rel=icon href='data:,'><script>null.x</script>"

    @app.get("/gone")
    def gone() -> Response:
        return Response(status_code=410)

    return app


def watched(browser: Any, url: str, watch: Watch) -> list[str]:
    context = browser.new_context()
    try:
        page = context.new_page()
        watch.attach(page)
        page.goto(url)
        page.wait_for_load_state("networkidle")
    finally:
        context.close()
    return watch.problems


def test_the_live_server_answers_then_stops_and_frees_its_port():
    with LiveServer(tiny_app()) as server:
        assert httpx.get(server.url + "/").status_code == 200
    assert not server.thread.is_alive()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=1):
        pass


def test_a_clean_page_has_no_problems(browser: Any, live_server: Any):
    server = live_server(tiny_app())
    assert watched(browser, server.url + "/", Watch()) == []


def test_the_watch_sees_console_errors_failed_requests_and_error_statuses(
    browser: Any, live_server: Any
):
    server = live_server(tiny_app())
    problems = watched(browser, server.url + "/noisy", Watch())
    text = "\n".join(problems)
    assert "console error: boom" in text
    assert "HTTP 404: GET " + server.url + "/nothing.png" in text
    assert "HTTP 410: GET " + server.url + "/gone" in text
    # an allowed status is neither a problem nor is chromium's console line for it
    watch = Watch()
    watch.allow(404, "/nothing.png")
    watch.allow(410, "/gone")
    allowed = watched(browser, server.url + "/noisy", watch)
    assert len(allowed) == 1 and allowed[0].startswith("console error: boom"), allowed


def test_the_watch_sees_uncaught_exceptions(browser: Any, live_server: Any):
    server = live_server(tiny_app())
    problems = watched(browser, server.url + "/throws", Watch())
    assert len(problems) == 1 and problems[0].startswith("uncaught exception:")


def test_a_request_to_a_stopped_server_is_a_failed_request(browser: Any):
    server = LiveServer(tiny_app()).start()
    url = server.url
    context = browser.new_context()
    try:
        page = context.new_page()
        watch = Watch()
        watch.attach(page)
        page.goto(url + "/")
        server.stop()
        page.evaluate("() => fetch('/').catch(() => null)")
        page.wait_for_timeout(200)
    finally:
        context.close()
    assert any(p.startswith("request failed: GET " + url) for p in watch.problems)


def test_the_project_with_history_has_what_the_pages_show(history_dir: Path):
    """What the page tests rely on (a rejection to open, an older blessed version to promote,
    monitor windows for the heatmap, a log for the online metric)."""
    from retrainer.engine.project import Project

    with Project.open(history_dir) as project:
        name = project.config.pipelines[0].name
        store = project.store
        versions = store.list_versions(name, profiles=False)
        assert len(store.list_runs(name, limit=None)) >= 5
        assert any(not v.blessing.passed for v in versions)
        champion = store.get_alias(name, "champion")
        assert any(v.blessing.passed and v.version != champion for v in versions)
        assert len(store.list_events(name, kinds=["model.promoted"])) >= 3
        assert len(store.list_monitor_results(name)) >= 10
        assert len(project.log_store().predictions(name, None, None)) > 500
