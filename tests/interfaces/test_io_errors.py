"""Unwritable stores through the real CLI: one line naming the path and what to do, exit 1,
no traceback, and no run left running.

It printed 54- and 83-line tracebacks. ``chmod`` does not stop root (CI may run as root):
there the read-only cases use ``chattr +i`` (skipped where it is not allowed), and the
cases made of a file standing where a folder should be fail for everyone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrainer.cli import app
from retrainer.engine.project import Project
from tests.conftest import write_project

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _cli(proj: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "retrainer", *args],
        cwd=proj,
        env={**os.environ, "PYTHONPATH": SRC, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_error_line(result: subprocess.CompletedProcess, *parts: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot "), lines[0]
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


@contextlib.contextmanager
def _read_only(*paths: Path) -> Iterator[None]:
    """Make ``paths`` unwritable: chmod, or for root (whom chmod does not stop) chattr +i."""
    if not hasattr(os, "geteuid"):
        pytest.skip("POSIX permissions")
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    done: list[Path] = []
    try:
        for p in paths:
            if subprocess.run(["chattr", "+i", str(p)], capture_output=True).returncode:
                pytest.skip("running as root, and chattr +i is not allowed here")
            done.append(p)
        yield
    finally:
        for p in done:
            subprocess.run(["chattr", "-i", str(p)], capture_output=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with two versions (v2 champion), copied by each test that needs one."""
    proj = write_project(tmp_path_factory.mktemp("trained") / "p")
    first = _cli(proj, "run", "--as-of", "2024-01-20")
    assert first.returncode == 0, first.stderr
    second = _cli(proj, "run", "--as-of", "2024-01-22")
    assert second.returncode == 0, second.stderr
    return proj


def _copy(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "p"))


def _runs(proj: Path) -> list[tuple[str, str | None]]:
    """(status, error) of the project's runs, oldest first."""
    with Project.open(proj) as project:
        runs = sorted(project.store.list_runs("toy"), key=lambda r: r.id or 0)
        return [(r.status, r.error) for r in runs]


def test_an_artifacts_path_under_a_file_is_one_line_and_a_failed_run(tmp_path: Path):
    proj = write_project(tmp_path / "p")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = {"RETRAINER_ARTIFACTS_URL": str(blocker / "artifacts")}
    line = _one_error_line(
        _cli(proj, "run", "--as-of", "2024-01-20", env=env),
        str(blocker / "artifacts"),
        "Not a directory",
        "a file stands where a folder is expected",
        "storage.artifacts_url",
    )
    runs = _runs(proj)
    assert [status for status, _ in runs] == ["failed"]  # recorded, nothing left running
    assert runs[0][1] == line.removeprefix("error: ")


def test_a_read_only_artifacts_folder_is_one_line_and_a_failed_run(trained: Path, tmp_path: Path):
    proj = _copy(trained, tmp_path)
    folder = proj / ".retrainer" / "artifacts"
    shards = folder / "sha256"
    (proj / "retrainer.yaml").write_text(
        (proj / "retrainer.yaml").read_text().replace("max_iter: 200", "max_iter: 201")
    )  # another model: a blob not stored yet
    with _read_only(folder, shards, *shards.iterdir()):
        result = _cli(proj, "run", "--as-of", "2024-01-24")
    _one_error_line(result, str(shards), "may not write there", "storage.artifacts_url")
    assert [status for status, _ in _runs(proj)] == ["succeeded", "succeeded", "failed"]


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--as-of", "2024-01-24"],
        ["promote", "1"],
        ["rollback"],
        ["monitor", "--as-of", "2024-01-24"],
        ["daemon", "--as-of", "2024-01-24", "--max-ticks", "1"],
    ],
    ids=["run", "promote", "rollback", "monitor", "daemon"],
)
def test_a_read_only_database_is_one_line_for_every_command(
    trained: Path, tmp_path: Path, args: list[str]
):
    proj = _copy(trained, tmp_path)
    if args[0] == "daemon":  # a daemon with something to do (it writes nothing otherwise)
        write_project(proj, triggers=[{"schedule": "0 0 * * *"}])
    db = proj / ".retrainer" / "retrainer.db"
    before = _runs(proj)
    with _read_only(db):
        result = _cli(proj, *args)
    _one_error_line(
        result, f"the metadata database {db.resolve()}", "readonly database", "storage.db_url"
    )
    assert _runs(proj) == before  # nothing written: no run started, none left running


def test_a_logs_folder_under_a_file_is_one_line(tmp_path: Path):
    proj = write_project(tmp_path / "p")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    preds = tmp_path / "preds.csv"
    preds.write_text("id,timestamp,model_version,prediction\na,2024-01-21T10:00:00,1,1\n")
    env = {"RETRAINER_LOGS_URL": str(blocker / "logs")}
    _one_error_line(
        _cli(proj, "log", "predictions", str(preds), env=env),
        str(blocker / "logs"),
        "Not a directory",
    )


def test_init_under_a_file_is_one_line(tmp_path: Path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    _one_error_line(_cli(tmp_path, "init", str(blocker / "proj")), str(blocker), "a file stands")


# --- in process: a full disk, and what no store named -----------------------------------------

runner = CliRunner()


def test_a_full_disk_while_storing_the_artifact_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    proj = write_project(tmp_path / "p")
    import retrainer.adapters._atomic as atomic

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    result = runner.invoke(app, ["run", "-c", str(proj), "--as-of", "2024-01-20"])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "error: cannot write " in result.output
    assert "No space left on device; the disk is full: free space on it" in result.output
    monkeypatch.undo()
    assert [status for status, _ in _runs(proj)] == ["failed"]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            PermissionError(errno.EACCES, "Permission denied", "/srv/x"),
            "error: cannot use /srv/x: Permission denied; the user running retrainer may not "
            "write there",
        ),
        (
            OSError(errno.EROFS, "Read-only file system", "/mnt/ro/y"),
            "error: cannot use /mnt/ro/y: Read-only file system; the file system is read-only",
        ),
        (
            sqlite3.OperationalError("unable to open database file"),
            "error: cannot use the database: unable to open database file; check that its "
            "folder exists",
        ),
    ],
    ids=["eacces", "erofs", "sqlite-open"],
)
def test_handle_errors_names_what_no_store_did(
    monkeypatch: pytest.MonkeyPatch, exc: Exception, expected: str
):
    import retrainer.cli.runs as runs

    def broken(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(runs, "open_project", broken)
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1
    assert result.output.startswith(expected), result.output
    assert len(result.output.strip().splitlines()) == 1


def test_other_errors_still_propagate(monkeypatch: pytest.MonkeyPatch):
    import retrainer.cli.runs as runs

    def bug(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("no such table: runs")

    monkeypatch.setattr(runs, "open_project", bug)
    result = runner.invoke(app, ["status"])
    assert isinstance(result.exception, sqlite3.OperationalError)


def test_a_database_gone_mid_command_is_one_line(monkeypatch: pytest.MonkeyPatch):
    import sqlalchemy as sa

    import retrainer.cli.runs as runs

    def gone(*args: object, **kwargs: object) -> None:  # a PostgreSQL restart under a command
        raise sa.exc.OperationalError(
            "UPDATE runs", {}, Exception("server closed the connection unexpectedly")
        )

    monkeypatch.setattr(runs, "open_project", gone)
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1
    assert result.output.startswith(
        "error: the metadata database went away (Exception: server closed the connection "
        "unexpectedly)"
    ), result.output
    assert len(result.output.strip().splitlines()) == 1
