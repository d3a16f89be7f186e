"""Screenshots of the dashboard for the README: the overview and a pipeline page.

Builds the elec2 project with ~20 simulated days of the daemon (runs, blessings and
rejections, promotions, monitor results, a prediction log; as the browser tests do), serves
the dashboard on a free 127.0.0.1 port, and saves, with Debian's chromium under Playwright
(nothing is downloaded):

- ``docs/images/dashboard-overview.png``
- ``docs/images/dashboard-pipeline.png`` (the full page)

Usage (from the repository root)::

    .venv/bin/python benchmarks/screenshots.py
    .venv/bin/python benchmarks/screenshots.py --dir /tmp/shots-project --out docs/images
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def build_history(target: Path, days: int) -> None:
    """The demo's project with history; the browser tests' own builder until it lands."""
    try:
        from retrainer.engine.demo import history_project  # type: ignore[attr-defined]
    except ImportError:
        sys.path.insert(0, str(ROOT))
        from tests.server.dashboard.conftest import own_history_project

        own_history_project(target, days=days)
        return
    history_project(target, days=days)


@contextmanager
def served(app: Any) -> Iterator[str]:
    """``app`` under uvicorn in a thread on a 127.0.0.1 port bound beforehand; its URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the dashboard did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="where to build the project (default: a temp)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from retrainer.engine.project import Project
    from retrainer.engine.tokens import create_token
    from retrainer.server import dashboard

    with tempfile.TemporaryDirectory() as tmp:
        target = args.dir or Path(tmp) / "elec2"
        build_history(target, args.days)
        args.out.mkdir(parents=True, exist_ok=True)
        with Project.open(target) as project:
            now = datetime.now(UTC)
            _, secret = create_token(project, name="screenshots", scopes=["read"], now=now)
            name = project.config.pipelines[0].name
            with served(dashboard.create_dashboard_app(project)) as url, sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": args.width, "height": 800})
                for path, file, full in (
                    ("/ui", "dashboard-overview.png", False),
                    (f"/ui/pipelines/{name}", "dashboard-pipeline.png", True),
                ):
                    query = urlencode({"token": secret, "next": path})
                    page.goto(f"{url}/ui/login?{query}")
                    page.wait_for_function(
                        "() => [...document.querySelectorAll('div.chart')]"
                        ".every(c => c.dataset.drawn === '1')"
                    )
                    page.screenshot(path=str(args.out / file), full_page=full)
                    print(f"saved {args.out / file}")
                browser.close()


if __name__ == "__main__":
    main()
