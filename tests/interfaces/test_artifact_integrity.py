"""No alias moves onto a version whose artifact is missing or altered (issue 15, item 2).

``retrainer promote`` and ``retrainer rollback`` used to exit 0 and point the champion at a
blob deleted, flipped or appended to; they now read it back, compare its size and sha256 with
the version's record and refuse with one line naming the version, the URL and what differs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import fsspec
import pytest
from typer.testing import CliRunner

from retrainer.cli import app
from retrainer.engine.project import Project
from tests.conftest import write_project

runner = CliRunner()


def _delete(url: str) -> str:
    fs, path = fsspec.core.url_to_fs(url)
    fs.rm_file(path)
    return "missing"


def _flip(url: str) -> str:
    with fsspec.open(url, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0x01
    with fsspec.open(url, "wb") as f:
        f.write(bytes(data))
    return "sha256 differs"


def _append(url: str) -> str:
    with fsspec.open(url, "rb") as f:
        data = f.read()
    with fsspec.open(url, "wb") as f:
        f.write(data + b"\0\0\0")
    return f"size differs (expected {len(data)} bytes, found {len(data) + 3})"


DAMAGES = pytest.mark.parametrize(
    "damage", [_delete, _flip, _append], ids=["deleted", "flipped", "appended"]
)


def _two_versions(tmp_path: Path) -> Path:
    proj = write_project(tmp_path / "p")
    for day in ("2024-01-20", "2024-01-26"):
        result = runner.invoke(app, ["run", "-c", str(proj), "--as-of", day])
        assert result.exit_code == 0, result.output
    return proj


def _champion(proj: Path) -> int:
    with Project.open(proj) as project:
        champion = project.store.get_alias("toy", "champion")
    assert champion is not None
    return champion


def _blob_url(proj: Path, version: int) -> str:
    with Project.open(proj) as project:
        mv = project.store.get_version("toy", version)
        return project.artifacts.url(mv.artifact_sha256)


def _skipped(proj: Path) -> list[str]:
    with Project.open(proj) as project:
        return [e.message for e in project.store.list_events("toy", kinds=["promotion.skipped"])]


@DAMAGES
def test_rollback_refuses_a_damaged_artifact(tmp_path: Path, damage: Callable[[str], str]):
    proj = _two_versions(tmp_path)
    assert _champion(proj) == 2
    url = _blob_url(proj, 1)
    problem = damage(url)
    result = runner.invoke(app, ["rollback", "-c", str(proj)])
    assert result.exit_code == 1, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: refusing to point toy 'champion' at v1: its artifact ")
    assert url in line and problem in line
    assert _champion(proj) == 2  # the champion did not move
    assert [m for m in _skipped(proj) if "v1" in m and problem in m]


@DAMAGES
def test_promote_refuses_a_damaged_artifact(tmp_path: Path, damage: Callable[[str], str]):
    proj = _two_versions(tmp_path)
    assert runner.invoke(app, ["rollback", "-c", str(proj)]).exit_code == 0
    assert _champion(proj) == 1
    url = _blob_url(proj, 2)
    problem = damage(url)
    result = runner.invoke(app, ["promote", "2", "-c", str(proj)])
    assert result.exit_code == 1, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: refusing to point toy 'champion' at v2: its artifact ")
    assert url in line and problem in line
    assert _champion(proj) == 1
    other = runner.invoke(app, ["promote", "2", "-c", str(proj), "--alias", "stable"])
    assert other.exit_code == 1 and problem in other.stderr  # any alias, not only champion
    shown = json.loads(
        runner.invoke(app, ["models", "show", "2", "-c", str(proj), "--json"]).output
    )
    assert shown["aliases"] == []


def test_rollback_to_an_intact_version_still_works(tmp_path: Path):
    proj = _two_versions(tmp_path)
    result = runner.invoke(app, ["rollback", "-c", str(proj)])
    assert result.exit_code == 0, result.stderr
    assert _champion(proj) == 1 and _skipped(proj) == []
