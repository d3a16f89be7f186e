"""``retrainer gc`` (issue 15, item 8): blobs of interrupted runs are removed, nothing else.

Removed: unreferenced blobs and leftover temporary files older than the grace period and than
every run in flight. Kept: anything a registered version (so any alias) references, anything
younger, anything a run in flight may have written. Killed half-way, the store is consistent
and the next gc finishes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fsspec
import pytest
from typer.testing import CliRunner

from retrainer.adapters.artifacts import (
    FsspecArtifactStore,
    InMemoryArtifactStore,
    LocalArtifactStore,
    StoredFile,
)
from retrainer.adapters.clock import WallClock
from retrainer.cli import app
from retrainer.core.clock import SimulatedClock
from retrainer.core.types import Run
from retrainer.engine.gc import collect_garbage
from retrainer.engine.project import Project
from retrainer.engine.runs.run import execute_run
from retrainer.testing import in_memory_project
from tests.conftest import write_project

runner = CliRunner()
HOUR = timedelta(hours=1)


def _age(url: str, age: timedelta) -> None:
    """Make the file at ``url`` look written ``age`` ago."""
    when = datetime.now(UTC) - age
    fs, path = fsspec.core.url_to_fs(url)
    if url.startswith("memory://"):
        fs.store[path].modified = when
    else:
        os.utime(path, (when.timestamp(), when.timestamp()))


def _memory(tmp_path: Path) -> FsspecArtifactStore:
    return InMemoryArtifactStore()


def _local(tmp_path: Path) -> FsspecArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


@pytest.fixture(params=[_memory, _local], ids=["memory", "local"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    """One registered, promoted version (its blob aged 30 days), as an operator finds it."""
    make: Callable[[Path], FsspecArtifactStore] = request.param
    project = in_memory_project(name="churn")
    project.artifacts = make(tmp_path)
    result = execute_run(project, clock=SimulatedClock(datetime(2024, 1, 20, tzinfo=UTC)))
    assert result.promoted and result.version is not None
    _age(project.artifacts.url(result.version.artifact_sha256), timedelta(days=30))
    return project


def _orphan(project: Project, data: bytes, age: timedelta) -> str:
    ref = project.artifacts.put(data)
    _age(ref.url, age)
    return ref.sha256


def _temp(project: Project, age: timedelta) -> str:
    sha = project.artifacts.put(str(age).encode()).sha256
    url = project.artifacts.url(sha).rsplit("/", 1)[0] + f"/.{sha}.{'ab' * 16}.tmp"
    with fsspec.open(url, "wb") as f:
        f.write(b"half a blob")
    _age(url, age)
    project.artifacts.remove(project.artifacts.url(sha))
    return url


def _running(project: Project, started: datetime, status: str = "running") -> Run:
    project.store.ensure_pipeline("churn", "h", started)
    run, _ = project.store.create_run(
        Run(
            key=f"churn/test/{started.isoformat()}/{status}",
            pipeline="churn",
            cause="manual",
            created_at=started,
            started_at=started if status == "running" else None,
            status=status,  # type: ignore[arg-type]
        )
    )
    return run


def _champion_sha(project: Project) -> str:
    champion = project.store.get_alias("churn", "champion")
    assert champion is not None
    return project.store.get_version("churn", champion).artifact_sha256


def _gc(project: Project, **kwargs: object):
    return collect_garbage(project, clock=WallClock(), **kwargs)  # type: ignore[arg-type]


def test_an_old_unreferenced_blob_goes_and_a_referenced_one_stays(project: Project):
    orphan = _orphan(project, b"blob of a killed run", 2 * 24 * HOUR)
    report = _gc(project)
    assert [f.sha256 for f in report.removed] == [orphan]
    assert report.removed_bytes == len(b"blob of a killed run")
    assert not project.artifacts.exists(orphan)
    assert project.artifacts.exists(_champion_sha(project))  # 30 days old, referenced
    assert report.kept_referenced == 1
    [event] = project.store.list_events(kinds=["gc.completed"])
    assert event.data["removed"] == 1 and event.data["bytes"] == report.removed_bytes
    assert _gc(project).removed == ()  # nothing left to do; no second event
    assert len(project.store.list_events(kinds=["gc.completed"])) == 1


def test_a_blob_of_an_unpromoted_version_stays(project: Project):
    mv = project.store.get_version("churn", 1)
    sha = _orphan(project, b"registered, never promoted", 40 * 24 * HOUR)
    project.store.register_version(dataclasses.replace(mv, artifact_sha256=sha))
    assert _gc(project).removed == ()
    assert project.artifacts.exists(sha)


def test_a_young_blob_stays(project: Project):
    young = _orphan(project, b"written an hour ago", HOUR)
    report = _gc(project)
    assert report.removed == () and report.kept_recent == 1
    assert project.artifacts.exists(young)
    assert [f.sha256 for f in _gc(project, grace=timedelta(minutes=30)).removed] == [young]


def test_leftover_temp_files_go_after_the_grace_period(project: Project):
    old, young = _temp(project, 3 * 24 * HOUR), _temp(project, HOUR)
    report = _gc(project)
    assert [f.url for f in report.removed] == [old]
    assert report.removed[0].sha256 is None
    assert project.artifacts.stat(old) is None and project.artifacts.stat(young) is not None


@pytest.mark.parametrize("status", ["running", "queued"])
def test_a_blob_a_run_in_flight_may_have_written_stays(project: Project, status: str):
    # the run started 3 h ago and wrote its blob 2 h ago; gc with a 1 h grace must keep it
    # until the run registers it (or ends): older blobs still go
    _running(project, datetime.now(UTC) - 3 * HOUR, status)
    mine = _orphan(project, b"blob of the run in flight", 2 * HOUR)
    older = _orphan(project, b"blob of an older, dead run", 4 * HOUR)
    report = _gc(project, grace=HOUR)
    assert [f.sha256 for f in report.removed] == [older]
    assert project.artifacts.exists(mine)
    assert [r.status for r in report.in_flight] == [status]


@pytest.mark.parametrize(
    "start", [datetime(1997, 3, 3, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)]
)
def test_a_run_in_flight_on_a_simulated_clock_keeps_everything(project: Project, start: datetime):
    # a replay's run times say nothing about when (on the wall clock) it wrote its blob
    _running(project, start)
    orphan = _orphan(project, b"maybe that run's", 10 * 24 * HOUR)
    assert _gc(project).removed == ()
    assert project.artifacts.exists(orphan)


def test_dry_run_removes_nothing_and_lists_what_would_go(project: Project):
    orphan = _orphan(project, b"old", 2 * 24 * HOUR)
    tmp = _temp(project, 2 * 24 * HOUR)
    before = project.artifacts.files()
    report = _gc(project, dry_run=True)
    assert report.dry_run and {f.url for f in report.removed} == {
        project.artifacts.url(orphan),
        tmp,
    }
    assert report.removed_bytes == 3 + len(b"half a blob")
    assert project.artifacts.files() == before
    assert project.store.list_events(kinds=["gc.completed"]) == []


def test_references_are_read_again_right_before_each_removal(project: Project):
    # a daemon's run registers a version on the old blob (it stored the same bytes) while gc
    # is between its listing and the removal
    sha = _orphan(project, b"about to be referenced", 3 * 24 * HOUR)
    store = project.artifacts
    assert isinstance(store, FsspecArtifactStore)
    real_stat = store.stat

    def register_meanwhile(url: str) -> StoredFile | None:
        mv = project.store.get_version("churn", 1)
        project.store.register_version(dataclasses.replace(mv, artifact_sha256=sha))
        return real_stat(url)

    store.stat = register_meanwhile  # type: ignore[method-assign]
    assert _gc(project).removed == ()
    assert store.exists(sha)


def test_killed_half_way_the_store_is_consistent_and_the_next_gc_finishes(project: Project):
    orphans = [_orphan(project, f"orphan {i}".encode(), (5 + i) * 24 * HOUR) for i in range(4)]
    store = project.artifacts
    assert isinstance(store, FsspecArtifactStore)
    real_remove, calls = store.remove, []

    def dies_on_the_third(url: str) -> bool:
        calls.append(url)
        if len(calls) == 3:
            raise KeyboardInterrupt  # kill -INT (kill -9 removes even less)
        return real_remove(url)

    store.remove = dies_on_the_third  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        _gc(project)
    store.remove = real_remove  # type: ignore[method-assign]
    assert sum(store.exists(s) for s in orphans) == 2
    for mv in project.store.list_versions("churn"):  # every reference still verifies
        store.verify(mv.artifact_sha256, mv.artifact_size)
    assert project.store.list_events(kinds=["gc.completed"]) == []  # it wrote nothing else
    assert len(_gc(project).removed) == 2
    assert not any(store.exists(s) for s in orphans)
    assert store.exists(_champion_sha(project))


def test_a_store_that_cannot_list_its_files_is_refused():
    from retrainer.adapters.artifacts import DictArtifactStore
    from retrainer.errors import RetrainerError

    project = in_memory_project(name="churn")
    project.artifacts = DictArtifactStore()
    with pytest.raises(RetrainerError, match="cannot list its files"):
        _gc(project)


# --- the command ------------------------------------------------------------------------------


def test_gc_command_dry_run_then_json(tmp_path: Path):
    proj = write_project(tmp_path / "p")
    assert runner.invoke(app, ["run", "-c", str(proj), "--as-of", "2024-01-20"]).exit_code == 0
    with Project.open(proj) as project:
        orphan = _orphan(project, b"x" * 2048, 2 * 24 * HOUR)
        url = project.artifacts.url(orphan)
    dry = runner.invoke(app, ["gc", "-c", str(proj), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"would remove {url} (2.0 KiB, unreferenced blob, written " in dry.output
    assert "would remove 1 file(s), 2.0 KiB; kept 1 referenced blob(s)" in dry.output
    with Project.open(proj) as project:
        assert project.artifacts.exists(orphan)
    done = runner.invoke(app, ["gc", "-c", str(proj), "--json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.output)
    assert data["removed_count"] == 1 and data["removed_bytes"] == 2048
    assert data["removed"][0]["url"] == url and data["dry_run"] is False
    assert data["kept_referenced"] == 1
    events = runner.invoke(app, ["events", "-c", str(proj), "--kind", "gc.completed"])
    assert "gc removed 1 file(s), 2048 bytes" in events.output
    again = runner.invoke(app, ["gc", "-c", str(proj)])
    assert "removed 0 file(s), 0 bytes; kept 1 referenced blob(s)" in again.output


def test_gc_command_refuses_a_bad_grace(tmp_path: Path):
    proj = write_project(tmp_path / "p")
    result = runner.invoke(app, ["gc", "-c", str(proj), "--grace", "a while"])
    assert result.exit_code == 2 and "invalid duration 'a while'" in result.stderr
