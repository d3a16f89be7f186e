"""End to end: the real CLI in subprocesses, on real data, with crashes and races.

What a test proves runs in a real interpreter (a run killed at a step, two processes racing);
the set-up before it is built once per module and copied (:func:`copy_project`), and the
checks after it read the store in this process (:func:`cli_here`), which spares 4-6
interpreters a test.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrainer.cli import app
from retrainer.engine.runs.run import FAULT_POINTS
from tests.conftest import write_project

pytestmark = pytest.mark.slow
runner = CliRunner()


def cli(*args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 120):
    proc = subprocess.run(
        [sys.executable, "-m", "retrainer", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"retrainer {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def cli_here(*args: str, env: dict[str, str] | None = None):
    """The CLI in this process (Typer's runner), for set-up and checks around what a test
    proves in a subprocess: the same commands and output, without an interpreter's start."""
    result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
    if result.exit_code != 0:
        raise AssertionError(
            f"retrainer {' '.join(args)} exited {result.exit_code}:\n{result.stderr}"
        )
    return result


def copy_project(built: Path, dest: Path) -> Path:
    """A copy of a project folder (config, data, SQLite store, artifacts) built once."""
    return Path(shutil.copytree(built, dest))


def models(proj: Path, env: dict[str, str] | None = None) -> list[dict]:
    return json.loads(cli_here("models", "list", "-c", str(proj), "--json", env=env).stdout)


def assert_consistent(proj: Path, env: dict[str, str] | None = None) -> None:
    """Every alias points at an existing version whose artifact is whole."""
    versions = models(proj, env)
    numbers = [v["version"] for v in versions]
    assert numbers == list(range(1, len(numbers) + 1))
    for v in versions:
        sha = v["lineage"]["artifact"]["sha256"]
        blob = next((proj / ".retrainer" / "artifacts").rglob(sha))
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == sha
        if v["aliases"]:
            assert v["blessing"]["passed"]
    assert sum("champion" in v["aliases"] for v in versions) <= 1


@pytest.fixture(scope="module")
def elec2_v1(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The elec2 example after its first real run (v1, champion), and that run's output."""
    proj = tmp_path_factory.mktemp("built") / "elec2"
    cli("init", str(proj), "--example", "elec2")
    first = cli("run", "-c", str(proj), "--as-of", "1997-01-06")
    return proj, first.stdout


@pytest.fixture(scope="module")
def toy_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy project after one run (v1, champion): the state every crash test starts from."""
    proj = write_project(tmp_path_factory.mktemp("built") / "p")
    cli_here("run", "-c", str(proj), "--as-of", "2024-01-20")
    return proj


def test_elec2_example_cycle(tmp_path: Path, elec2_v1: tuple[Path, str]):
    built, first = elec2_v1
    proj = copy_project(built, tmp_path / "elec2")
    assert "promoted to champion" in first
    cli("run", "-c", str(proj), "--as-of", "1997-03-03")
    versions = models(proj)
    assert len(versions) == 2
    champion = next(v for v in versions if "champion" in v["aliases"])
    assert champion["blessing"]["passed"]
    rules = {row["rule"] for row in champion["blessing"]["evidence"]}
    assert {"absolute", "change", "sanity"} <= rules
    snap = champion["lineage"]["snapshot"]
    assert snap["rows"] > 2000 and snap["source"].startswith("parquet:")
    second = versions[1]
    change = [r for r in second["blessing"]["evidence"] if r["rule"] == "change"]
    assert all(r["champion"] is not None for r in change)  # compared with v1 on the same rows
    assert_consistent(proj)


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_crash_at_any_step_leaves_the_store_consistent(tmp_path: Path, toy_v1: Path, point: str):
    proj = copy_project(toy_v1, tmp_path / "p")
    crashed = cli(
        "run", "-c", str(proj), "--as-of", "2024-01-26", env={"RETRAINER_FAULT": point}, check=False
    )
    assert crashed.returncode == 137
    assert_consistent(proj)
    after = cli_here("run", "-c", str(proj), "--as-of", "2024-01-27", "--json")
    assert json.loads(after.stdout)["run"]["status"] == "succeeded"
    assert_consistent(proj)
    status = json.loads(cli_here("status", "-c", str(proj), "--json").stdout)[0]
    assert status["running"] == []  # the crashed run was marked failed, not left running
    interrupted = [r for r in status["last_runs"] if r["status"] == "failed"]
    assert len(interrupted) == 1 and "interrupted" in interrupted[0]["error"]


def test_real_kill_during_training(tmp_path: Path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "slowpipe.py").write_text(
        "import os, pathlib, time\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "def train(data, params):\n"
        "    if os.environ.get('SLOW_TRAIN'):\n"
        "        pathlib.Path(os.environ['SLOW_TRAIN']).write_text('training')\n"
        "        time.sleep(60)\n"
        "    return LogisticRegression().fit(data[params['features']], data[params['target']])\n"
    )
    proj = write_project(tmp_path / "p", model=None, train="slowpipe:train")
    cli_here("run", "-c", str(proj), "--as-of", "2024-01-20")
    marker = tmp_path / "training.marker"
    proc = subprocess.Popen(
        [sys.executable, "-m", "retrainer", "run", "-c", str(proj), "--as-of", "2024-01-26"],
        env={**os.environ, "SLOW_TRAIN": str(marker)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "training never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert_consistent(proj)
    assert [v["version"] for v in models(proj)] == [1]
    cli_here("run", "-c", str(proj), "--as-of", "2024-01-27")
    assert [v["version"] for v in models(proj)] == [1, 2]


def test_two_runs_at_once_on_one_sqlite_file(tmp_path: Path, toy_v1: Path):
    proj = copy_project(toy_v1, tmp_path / "p")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "retrainer", "run", "-c", str(proj), "--as-of", f"2024-01-2{d}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for d in (5, 6)
    ]
    results = []
    for p in procs:
        _, stderr = p.communicate(timeout=120)
        results.append((p.returncode, stderr))
    for code, stderr in results:
        assert code == 0 or (code == 1 and stderr.startswith("error:")), stderr
    assert any(code == 0 for code, _ in results)
    versions = models(proj)
    assert [v["version"] for v in versions] == list(range(1, len(versions) + 1))
    assert_consistent(proj)


SLOW_TRAIN = """
import os, pathlib, time
from sklearn.linear_model import LogisticRegression

def train(data, params):
    gate = os.environ.get("SLOW_TRAIN_GATE")
    if gate:  # tell the test training started, then wait for its go
        pathlib.Path(gate, "training").touch()
        deadline = time.monotonic() + 90
        while not pathlib.Path(gate, "go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return LogisticRegression(max_iter=200).fit(data[["x1", "x2"]], data["y"])
"""


def test_a_later_as_of_does_not_reap_a_live_run(tmp_path: Path):
    """A run replaying 2024-01-25 is still training when another replays 2024-01-26, past
    the first one's lease in simulated time: liveness is real time, so the second leaves the
    first alone and both succeed."""
    proj = write_project(tmp_path / "p", model=None, train="slowtrain:train")
    (proj / "slowtrain.py").write_text(SLOW_TRAIN)
    gate = tmp_path / "gate"
    gate.mkdir()
    first = subprocess.Popen(
        [sys.executable, "-m", "retrainer", "run", "-c", str(proj), "--as-of", "2024-01-25"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SLOW_TRAIN_GATE": str(gate)},
    )
    try:
        deadline = time.monotonic() + 90
        while not (gate / "training").exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run never started training"
            time.sleep(0.05)
        second = cli("run", "-c", str(proj), "--as-of", "2024-01-26T12:00:00", "--json")
        assert json.loads(second.stdout)["run"]["status"] == "succeeded"
    finally:
        (gate / "go").touch()
        _, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    runs = json.loads(cli_here("status", "-c", str(proj), "--json").stdout)[0]
    assert runs["running"] == [] and runs["queued"] == []
    statuses = [r["status"] for r in runs["last_runs"]]
    assert statuses == ["succeeded", "succeeded"], runs["last_runs"]
    kinds = [e["kind"] for e in json.loads(cli_here("events", "-c", str(proj), "--json").stdout)]
    assert "run.failed" not in kinds and "run.retrying" not in kinds
    assert_consistent(proj)


def test_monitor_on_elec2_writes_the_report(tmp_path: Path, elec2_v1: tuple[Path, str]):
    proj = copy_project(elec2_v1[0], tmp_path / "elec2")
    out = tmp_path / "monitor.html"
    result = json.loads(
        cli("monitor", "-c", str(proj), "--as-of", "1997-04-07", "--out", str(out), "--json").stdout
    )
    assert result["version"] == 1 and result["rows"] == 7 * 48
    assert "nswprice" in result["drift"]["drifted_columns"]
    assert [w["n_labelled"] for w in result["performance"]] == [48] * 7
    # the window's 7 days, after the rows since v1's training that warm the new detector up
    concept = result["concept_drift"]
    warmed = concept["rows_fed"] - 7 * 48
    assert warmed > 0 and any(
        f"{warmed} labelled row(s) since v1's training" in n for n in [concept["note"]]
    )
    assert result["report"] == str(out.resolve())
    html = out.read_text()
    assert "Drift per column" in html and "Performance over time" in html
    # the next day's window overlaps: only its 48 new rows reach the detector
    again = json.loads(
        cli("monitor", "-c", str(proj), "--as-of", "1997-04-08", "--no-report", "--json").stdout
    )
    assert again["concept_drift"]["rows_fed"] == 48 and again["report"] is None


def test_log_commands_append_and_validate(tmp_path: Path):
    proj = write_project(tmp_path / "p")
    preds = tmp_path / "preds.csv"
    preds.write_text(
        "id,timestamp,model_version,prediction,x1,x2\n"
        "a,2024-01-21T10:00:00,1,1,0.1,0.2\n"
        "b,2024-01-21T11:00:00,1,0,0.3,0.1\n"
    )
    done = cli("log", "predictions", str(preds), "-c", str(proj))
    assert "logged 2 predictions" in done.stdout
    bad = tmp_path / "fb.csv"
    bad.write_text("id,when,outcome\na,2024-01-22,1\n")
    failed = cli("log", "feedback", str(bad), "-c", str(proj), check=False)
    assert failed.returncode == 1
    assert "timestamp" in failed.stderr and failed.stderr.startswith("error:")
