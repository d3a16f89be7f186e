"""The real `retrainer daemon` in subprocesses: two daemons on one database, and kill -9."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_project
from tests.interfaces.test_e2e import assert_consistent, cli_here, copy_project, models

pytestmark = pytest.mark.slow

BLESS_ANY = {
    "holdout": 0.25,
    "rules": [{"metric": "accuracy", "min": 0.5}],
    "sanity": {"enabled": False},
}
TRIGGERS = [
    {"schedule": "0 2 * * *", "name": "nightly"},
    {"schedule": "30 14 * * MON,THU", "name": "twice-weekly"},
]


def _project(root: Path, **overrides) -> Path:
    return write_project(
        root,
        triggers=TRIGGERS,
        blessing=BLESS_ANY,
        window={"kind": "sliding", "duration": "10d"},
        **overrides,
    )


def _daemon(proj: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "retrainer",
            "daemon",
            "-c",
            str(proj),
            "--executor",
            "inline",
            "--quiet",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _events(proj: Path, env: dict[str, str] | None = None) -> list[dict]:
    events = cli_here("events", "-c", str(proj), "--limit", "10000", "--json", env=env)
    return json.loads(events.stdout)


def _check_exactly_once(proj: Path, env: dict[str, str] | None = None) -> None:
    events = _events(proj, env)
    queued = [e for e in events if e["kind"] == "run.queued"]
    started = [e for e in events if e["kind"] == "run.started"]
    succeeded = [e for e in events if e["kind"] == "run.succeeded"]
    keys = [e["data"]["key"] for e in queued]
    assert len(keys) == len(set(keys)) == 9  # 7 nightly + Monday and Thursday
    assert sorted(e["run_id"] for e in started) == sorted(e["run_id"] for e in queued)
    assert sorted(e["run_id"] for e in succeeded) == sorted(e["run_id"] for e in queued)
    versions = models(proj, env)
    assert len(versions) == 9


def _two_daemons(proj: Path, env: dict[str, str] | None = None) -> None:
    week = ["--as-of", "2024-01-22", "--tick", "1800", "--max-ticks", str(7 * 48)]
    procs = [_daemon(proj, *week, env=env) for _ in range(2)]
    for p in procs:
        _, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr


# Each daemon runs its own simulated clock, at its own speed, so their "now"s drift apart by
# hours, past the default lease of 2 h: leases run on the wall clock, which both agree on, so
# neither reaps the other's runs (before, one did and left a run queued).


def test_two_daemons_on_one_sqlite_file_run_everything_once(tmp_path: Path):
    proj = _project(tmp_path / "p")
    _two_daemons(proj)
    _check_exactly_once(proj)
    assert_consistent(proj)


def test_two_daemons_on_one_postgresql_database_run_everything_once(tmp_path: Path):
    base = os.environ.get("RETRAINER_TEST_PG_URL")
    if not base:
        pytest.skip("set RETRAINER_TEST_PG_URL (.ci/run starts a throwaway PostgreSQL)")
    from retrainer.testing import postgres_database

    with postgres_database(base, "daemons") as url:
        env = {"RETRAINER_DB_URL": url}
        proj = _project(tmp_path / "p")
        _two_daemons(proj, env=env)
        _check_exactly_once(proj, env=env)


@pytest.fixture(scope="module")
def scheduled_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scheduled project with a champion to replace, built once and copied per test."""
    proj = _project(tmp_path_factory.mktemp("built") / "p")
    cli_here("run", "-c", str(proj), "--as-of", "2024-01-21")
    return proj


@pytest.mark.parametrize(
    "point", ["after_train", "after_artifact_write", "after_register", "after_promote"]
)
def test_kill_9_of_the_daemon_mid_run_then_restart(tmp_path: Path, scheduled_v1: Path, point: str):
    proj = copy_project(scheduled_v1, tmp_path / "p")  # a champion to replace
    # 01:00 arms the nightly schedule, 02:00 fires it and the daemon dies mid-run
    crashed = _daemon(
        proj,
        "--as-of",
        "2024-01-22T01:00:00",
        "--tick",
        "3600",
        "--max-ticks",
        "3",
        env={"RETRAINER_FAULT": point},
    )
    crashed.communicate(timeout=300)
    assert crashed.returncode == 137
    assert_consistent(proj)
    # the restart is a new controller on the store; in this process, which spares an interpreter
    cli_here(
        "daemon", "-c", str(proj), "--executor", "inline", "--quiet",
        "--as-of", "2024-01-22T02:00:00", "--tick", "3600", "--max-ticks", "3",
    )  # fmt: skip
    assert_consistent(proj)
    runs = json.loads(cli_here("status", "-c", str(proj), "--json").stdout)[0]
    assert runs["running"] == [] and runs["queued"] == []
    daemon_run = next(r for r in runs["last_runs"] if r["cause"] != "manual")
    assert daemon_run["status"] == "succeeded" and daemon_run["attempts"] == 2
    events = [e["kind"] for e in _events(proj)]
    assert "run.retrying" in events


def test_sigterm_releases_the_run_in_hand(tmp_path: Path):
    import signal
    import time

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "slow.py").write_text(
        "import time\nfrom sklearn.linear_model import LogisticRegression\n"
        "def train(data, params):\n    time.sleep(60)\n"
        "    return LogisticRegression().fit(data[params['features']], data[params['target']])\n"
    )
    proj = write_project(
        tmp_path / "p",
        model=None,
        train="slow:train",
        blessing=BLESS_ANY,
    )
    cfg = proj / "retrainer.yaml"
    import yaml

    data = yaml.safe_load(cfg.read_text())
    data["controller"] = {"shutdown_grace": 1, "tick": 0.5, "executor": {"kind": "process"}}
    cfg.write_text(yaml.safe_dump(data))
    cli_here("run", "-c", str(proj), "--queue")  # a manual request for the daemon
    daemon = subprocess.Popen(
        [sys.executable, "-m", "retrainer", "daemon", "-c", str(proj)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = json.loads(cli_here("status", "-c", str(proj), "--json").stdout)[0]
            if status["running"]:
                break
            time.sleep(0.3)
        assert status["running"], "the daemon never started the run"
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=60)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    assert daemon.returncode == 0, err
    assert "released 1 run" in out
    status = json.loads(cli_here("status", "-c", str(proj), "--json").stdout)[0]
    assert status["running"] == [] and len(status["queued"]) == 1
    kinds = [e["kind"] for e in _events(proj)]
    assert "run.requested" in kinds and "run.released" in kinds
