"""Fixtures of the browser tests: Debian's chromium driven by Playwright, a live server, a
watched page, and a project with history.

- ``browser`` (session): chromium from ``/usr/bin/chromium`` (``RETRAINER_CHROMIUM``
  overrides it); nothing is downloaded. Missing, the tests skip, except under ``CI`` where
  they fail: CI must not pass by skipping them.
- :class:`LiveServer` / ``live_server``: an ASGI app under uvicorn in a thread, on a
  127.0.0.1 port bound before it starts (no race for the port), stopped cleanly.
- ``page``: a fresh browser context and page whose console errors, uncaught exceptions,
  failed requests and responses >= 400 fail the test (:class:`Watch`; a test allows the
  ones it provokes).
- ``history_dir`` (session) / ``history`` (module): the elec2 project after ~20 simulated days
  of the daemon (runs, blessings and rejections, promotions, monitor results, a prediction
  log), with a read and an admin token, served by the dashboard. Each module gets its own copy,
  so the tests that act (promote) do not leak into the others.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("RETRAINER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # without these chromium reaches for Google's services (there is no network to reach)
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REFRESH = 1
"""The dashboard's refresh interval (seconds) in the test project (``ui.refresh``)."""
HISTORY_DAYS = 20


# -- the browser ----------------------------------------------------------------------------


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}: the browser tests cannot run, and CI does not skip them")
    pytest.skip(why)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Chromium under Playwright for the whole session (skips locally if absent; fails in CI)."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


# -- the live server ------------------------------------------------------------------------


class LiveServer:
    """``app`` served by uvicorn in a daemon thread on 127.0.0.1.

    The socket is bound (port 0: a free one) before the thread starts, so ``url`` is known
    and no other process can take the port in between. :meth:`start` returns once the server
    accepts connections; :meth:`stop` asks it to exit and joins the thread.
    """

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"the live server at {self.url} died while starting")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the live server at {self.url} did not start in {timeout} s")
            time.sleep(0.02)
        # started: the socket listens; one connection proves it answers
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout):
            pass
        return self

    def stop(self, timeout: float = 15.0) -> None:
        if self.thread.is_alive():
            self.server.should_exit = True
            self.thread.join(timeout)
            if self.thread.is_alive():  # pragma: no cover - a hung request
                self.server.force_exit = True
                self.thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def live_server() -> Iterator[Callable[[Any], LiveServer]]:
    """A factory: ``live_server(app)`` starts ``app`` and returns it; all stop at teardown."""
    started: list[LiveServer] = []

    def start(app: Any) -> LiveServer:
        server = LiveServer(app).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


# -- the watched page -----------------------------------------------------------------------


@dataclass
class Watch:
    """What went wrong in a page: console errors, uncaught exceptions, failed requests and
    responses >= 400 other than the ``allowed`` ones (status, path fragment)."""

    problems: list[str] = field(default_factory=list)
    allowed: list[tuple[int, str]] = field(default_factory=list)
    offline: bool = False
    """Set by a test that stopped the server on purpose: failures after that are expected."""

    def allow(self, status: int, path: str = "") -> None:
        """Expect responses with ``status`` whose URL contains ``path`` (and their console
        line, which chromium writes for every response >= 400)."""
        self.allowed.append((status, path))

    def _allowed(self, status: int, url: str) -> bool:
        return any(s == status and p in url for s, p in self.allowed)

    def attach(self, page: Any) -> None:
        def console(msg: Any) -> None:
            if msg.type != "error" or self.offline:
                return
            text = msg.text
            # chromium's own line for a response >= 400: judged by the response handler
            if text.startswith("Failed to load resource: the server responded with a status"):
                status = int(text.split("status of ")[1].split()[0])
                url = (msg.location or {}).get("url", "")
                if self._allowed(status, url):
                    return
            self.problems.append(f"console error: {text} ({msg.location})")

        def pageerror(exc: Any) -> None:
            self.problems.append(f"uncaught exception: {exc}")

        def requestfailed(request: Any) -> None:
            if self.offline:
                return
            failure = request.failure or ""
            # a refresh in flight when the test navigates away is cancelled: not a fault
            if "ERR_ABORTED" in failure and request.resource_type in ("fetch", "xhr"):
                return
            self.problems.append(f"request failed: {request.method} {request.url}: {failure}")

        def response(resp: Any) -> None:
            if resp.status >= 400 and not self._allowed(resp.status, resp.url):
                self.problems.append(f"HTTP {resp.status}: {resp.request.method} {resp.url}")

        page.on("console", console)
        page.on("pageerror", pageerror)
        page.on("requestfailed", requestfailed)
        page.on("response", response)


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def page(browser: Any, watch: Watch) -> Iterator[Any]:
    """A page in a fresh context (no cookies); the test fails if ``watch`` saw a problem."""
    context = browser.new_context()
    context.set_default_timeout(15_000)
    p = context.new_page()
    watch.attach(p)
    yield p
    context.close()
    if watch.problems:
        pytest.fail("the page had problems:\n  " + "\n  ".join(watch.problems))


# -- the project with history ---------------------------------------------------------------

TRIGGERS_YAML = """    triggers:                      # added by the browser tests: a history to show
      - {schedule: "every 4d", name: every-4d}
      - {metric: accuracy, below: 0.70, over: 1d, min_samples: 40}
      - {concept_drift: {}}
    guards:
      - {cooldown: 1d}
"""


def own_history_project(target: Path, days: int = HISTORY_DAYS) -> Path:
    """The elec2 demo project after ``days`` simulated days of the daemon, with a schedule,
    a metric trigger (a threshold to draw) and a concept-drift trigger: ~9 runs, blessings
    and rejections, promotions, monitor results and a prediction/feedback log (~15 s)."""
    from retrainer.engine.demo import prepare_demo_dir, run_daemon_demo

    prepare_demo_dir(target)
    path = target / "retrainer.yaml"
    text = path.read_text(encoding="utf-8")
    anchor = "    metrics: [accuracy, roc_auc, log_loss]\n"
    assert anchor in text, "the elec2 example changed: the browser tests' history needs a look"
    path.write_text(text.replace(anchor, anchor + TRIGGERS_YAML), encoding="utf-8")
    run_daemon_demo(target, days=days)
    return target


def build_history(target: Path) -> Path:
    """The project with history: the demo's own builder when it exists, else ours."""
    try:
        from retrainer.engine.demo import history_project  # type: ignore[attr-defined]
    except ImportError:
        return own_history_project(target)
    history_project(target, days=HISTORY_DAYS)
    return target


@pytest.fixture(scope="session")
def history_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per session (per xdist worker); modules copy it."""
    return build_history(tmp_path_factory.mktemp("history") / "elec2")


@dataclass
class Dashboard:
    """A project served by the dashboard on a live server, with its two tokens."""

    root: Path
    project: Any
    server: LiveServer
    read: str
    admin: str
    pipeline: str

    @property
    def url(self) -> str:
        return self.server.url

    def login(self, page: Any, secret: str, next: str = "/ui") -> Any:
        """Log ``page`` in through ``/ui/login?token=`` and land on ``next``."""
        from urllib.parse import urlencode

        page.goto(f"{self.url}/ui/login?{urlencode({'token': secret, 'next': next})}")
        return page


def copy_project(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def open_dashboard(root: Path) -> Iterator[Dashboard]:
    """Open the project at ``root``, make its tokens, serve the dashboard; close after."""
    from retrainer.engine.project import Project
    from retrainer.engine.tokens import create_token
    from retrainer.server import dashboard

    with Project.open(root) as project:
        now = datetime.now(UTC)
        _, read = create_token(project, name="browser-read", scopes=["read"], now=now)
        _, admin = create_token(project, name="browser-admin", scopes=["admin"], now=now)
        server = LiveServer(dashboard.create_dashboard_app(project)).start()
        try:
            yield Dashboard(
                root=root,
                project=project,
                server=server,
                read=read,
                admin=admin,
                pipeline=project.config.pipelines[0].name,
            )
        finally:
            server.stop()


def with_refresh(root: Path, seconds: int = REFRESH) -> None:
    """Set ``ui.refresh`` in the project's configuration (a short one: the tests wait for it)."""
    path = root / "retrainer.yaml"
    text = path.read_text(encoding="utf-8")
    if "\nui:" not in text:
        path.write_text(text + f"\nui:\n  refresh: {seconds}\n", encoding="utf-8")


@pytest.fixture(scope="module")
def history(history_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """This module's copy of the project with history, served by the dashboard."""
    root = copy_project(history_dir, tmp_path_factory.mktemp("served") / "elec2")
    with_refresh(root)
    yield from open_dashboard(root)
