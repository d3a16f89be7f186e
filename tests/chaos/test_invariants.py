"""The campaign's machinery: the invariant checker catches a deliberately broken store, and
the faulty filesystem fails the artifact store the way it says."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from chaos.faultyfs import FAULT_ENV, register
from chaos.invariants import Claim, Ledger, check_store

from retrainer import execute_run
from retrainer.adapters.artifacts import open_artifact_store
from retrainer.engine.project import Project
from retrainer.testing import SimulatedClock, write_project


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder with two blessed versions, v2 the champion."""
    proj = write_project(
        tmp_path_factory.mktemp("built") / "p",
        blessing={"holdout": 0.25, "rules": [{"metric": "accuracy", "min": 0.5}],
                  "sanity": {"enabled": False}},
    )  # fmt: skip
    with Project.open(proj) as project:
        project.git = (None, None)
        for day in (20, 24):
            execute_run(project, clock=SimulatedClock(datetime(2024, 1, day, tzinfo=UTC)))
    return proj


@pytest.fixture
def proj(tmp_path: Path, built: Path) -> Path:
    import shutil

    return Path(shutil.copytree(built, tmp_path / "p"))


def kinds(proj: Path, ledger: Ledger | None = None) -> set[str]:
    with Project.open(proj) as project:
        return {v.kind for v in check_store(project, ledger)}


def db(proj: Path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{proj / '.retrainer' / 'retrainer.db'}")


def blob(proj: Path, version: int) -> Path:
    with Project.open(proj) as project:
        sha = project.store.get_version("toy", version).artifact_sha256
    return proj / ".retrainer" / "artifacts" / "sha256" / sha[:2] / sha


def test_a_sound_store_has_no_violation(proj: Path):
    assert kinds(proj) == set()
    with Project.open(proj) as project:
        assert project.store.aliases("toy") == {"champion": 2}


def test_a_deleted_blob_is_caught(proj: Path):
    blob(proj, 1).unlink()
    assert kinds(proj) == {"artifact_unreadable"}


def test_a_flipped_champion_blob_is_caught_and_the_champion_does_not_load(proj: Path):
    path = blob(proj, 2)
    data = path.read_bytes()
    path.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    assert {"artifact_unreadable", "alias_unloadable"} <= kinds(proj)


def test_a_gap_in_version_numbers_is_caught(proj: Path):
    with db(proj).begin() as conn:
        conn.execute(sa.text("UPDATE model_versions SET version = 3 WHERE version = 2"))
    assert "version_numbers" in kinds(proj)


def test_an_alias_on_an_unblessed_version_is_caught(proj: Path):
    with db(proj).begin() as conn:
        conn.execute(sa.text("UPDATE model_versions SET blessed = 0 WHERE version = 2"))
    assert "alias_unblessed" in kinds(proj)


def test_a_run_running_with_a_dead_owner_is_reaped_or_caught(proj: Path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    import socket

    owner = f"{socket.gethostname()}:{dead.stdout.strip()}"
    with db(proj).begin() as conn:
        conn.execute(
            sa.text("UPDATE runs SET status = 'running', owner = :o WHERE id = 2"), {"o": owner}
        )
    with Project.open(proj) as project:
        assert {v.kind for v in check_store(project, reap=False)} == {"orphan_running"}
    ledger = Ledger()
    assert kinds(proj, ledger) == set()  # the reaper repaired it, as the next run would
    assert ledger.reaped == 1


def test_a_cli_run_left_queued_is_caught(proj: Path):
    with db(proj).begin() as conn:
        conn.execute(sa.text("UPDATE runs SET status = 'queued', owner = NULL WHERE id = 2"))
    assert "orphan_queued" in kinds(proj)


def test_a_live_run_reaped_is_caught(proj: Path):
    with Project.open(proj) as project:
        run = project.store.get_run(2)
        project.store.update_run(
            dataclasses.replace(run, status="failed", error="interrupted: its lease expired")
        )
    ledger = Ledger(surviving_owners={run.owner or ""})
    assert "live_run_reaped" in kinds(proj, ledger)


def test_lost_records_and_unkept_claims_are_caught(proj: Path):
    ledger = Ledger()
    assert kinds(proj, ledger) == set()
    ledger.claims.append(Claim(what="version", pipeline="toy", step=1, command="run",
                               version=7, sha256="0" * 64))  # fmt: skip
    with db(proj).begin() as conn:
        conn.execute(sa.text("DELETE FROM events WHERE id = (SELECT max(id) FROM events)"))
    assert kinds(proj, ledger) == {"lost_record", "claim_not_in_store"}


def test_an_event_about_a_missing_run_is_caught(proj: Path):
    with db(proj).begin() as conn:
        conn.execute(sa.text("UPDATE events SET run_id = 99 WHERE id = 1"))
    assert "event_subject" in kinds(proj)


@pytest.mark.parametrize("fault", ["eio", "enospc", "partial", "eacces", "rename"])
def test_the_faulty_filesystem_fails_writes_and_leaves_no_blob(
    tmp_path: Path, fault: str, monkeypatch: pytest.MonkeyPatch
):
    register()
    store = open_artifact_store(f"faulty://{tmp_path}")
    monkeypatch.setenv(FAULT_ENV, fault)
    with pytest.raises(OSError):
        store.put(b"model bytes")
    monkeypatch.delenv(FAULT_ENV)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert store.get(store.put(b"model bytes").sha256) == b"model bytes"


def test_the_entry_point_registers_the_faulty_filesystem(tmp_path: Path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    done = subprocess.run(
        [sys.executable, "-c", "import chaos.entry, fsspec; print(type(fsspec.filesystem("
         "'faulty')).__name__)"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "FaultyFileSystem"
