"""`retrainer ui` for real: a subprocess on a free loopback port, its sign-in link, the pages,
SIGTERM, and the session's token revoked; `retrainer demo --serve` refuses a busy port first."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx  # the client starlette.testclient uses (the dev extra)
import pytest
from typer.testing import CliRunner

from retrainer.cli import app
from retrainer.engine.project import Project
from retrainer.engine.tokens import list_tokens
from tests.conftest import write_project

runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_ui_prints_a_sign_in_link_serves_the_pages_and_revokes_its_token(tmp_path: Path):
    proj = write_project(tmp_path / "p")
    assert runner.invoke(app, ["run", "-c", str(proj), "--as-of", "2024-01-20"]).exit_code == 0
    port = _free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "retrainer", "ui", "-c", str(proj), "--port", str(port),
         "--sign-in", "read"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )  # fmt: skip
    try:
        first = ui.stdout.readline()
        assert first.startswith(f"dashboard at http://localhost:{port}/ui"), first
        link = ui.stdout.readline().strip()
        assert re.fullmatch(rf"http://localhost:{port}/ui/login\?token=rt_\w+_[\w-]+", link)
        link = link.replace("localhost", "127.0.0.1")
        deadline = time.monotonic() + 60
        while True:
            try:
                signed = httpx.get(link, follow_redirects=False)
                break
            except httpx.TransportError:
                assert ui.poll() is None, ui.communicate()
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.2)
        assert signed.status_code == 303 and signed.headers["location"] == "/ui"
        cookies = signed.cookies
        base = f"http://127.0.0.1:{port}"
        page = httpx.get(f"{base}/ui/pipelines/toy", cookies=cookies)
        assert page.status_code == 200 and 'data-version="1"' in page.text
        # a read session: the confirmation says so, and no button
        confirm = httpx.get(f"{base}/ui/pipelines/toy/rollback", cookies=cookies)
        assert 'id="confirm"' not in confirm.text
        assert httpx.get(f"{base}/", follow_redirects=False).headers["location"] == "/ui"
    finally:
        ui.send_signal(signal.SIGTERM)
        out, err = ui.communicate(timeout=30)
    assert ui.returncode == 0, err
    assert out.rstrip().endswith("stopped")
    with Project.open(proj) as project:
        [token] = list_tokens(project)
    assert token.name == "retrainer ui (read)" and token.scopes == ("read",) and token.revoked


def test_demo_serve_refuses_a_busy_port_before_the_demo(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(
            app, ["demo", "--dir", str(tmp_path / "d"), "--serve", "--port", str(port)]
        )
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert not (tmp_path / "d").exists()  # nothing was started


def test_ui_refuses_an_unknown_sign_in_scope(tmp_path: Path):
    proj = write_project(tmp_path / "p")
    result = runner.invoke(app, ["ui", "-c", str(proj), "--sign-in", "predict"])
    assert result.exit_code == 2 and "--sign-in must be admin, read or none" in result.output
