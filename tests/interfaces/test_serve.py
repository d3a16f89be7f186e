"""`retrainer predict` in-process, and `retrainer serve` for real: a subprocess on a free
loopback port, predict and feedback over HTTP, SIGTERM, the rows in the log."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx  # the client starlette.testclient uses (the dev extra)
import pandas as pd
import pytest
from typer.testing import CliRunner

from retrainer.cli import app
from retrainer.engine.project import Project
from tests.conftest import make_frame, write_project

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_predict_scores_a_file_with_the_champion_and_logs_the_rows(tmp_path: Path, suffix: str):
    proj = write_project(tmp_path / "p")
    assert invoke("run", "-c", str(proj), "--as-of", "2024-01-20").exit_code == 0
    rows = make_frame(25, seed=3)[["ts", "x1", "x2"]]
    src = tmp_path / f"rows{suffix}"
    rows.to_csv(src, index=False) if suffix == ".csv" else rows.to_parquet(src)
    out = tmp_path / f"scored{suffix}"
    result = invoke("predict", str(src), "--out", str(out), "-c", str(proj))
    assert result.exit_code == 0, result.output
    assert "scored 25 rows" in result.output and "v1" in result.output
    scored = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert list(scored.columns) == [
        "ts",
        "x1",
        "x2",
        "prediction_id",
        "prediction",
        "score",
        "model_version",
    ]
    with Project.open(proj) as project:
        logged = project.log_store().predictions("toy", None, None)
    assert sorted(logged["id"]) == sorted(scored["prediction_id"])
    assert set(logged["variant"]) == {"batch"}


def test_predict_names_a_missing_column_and_fails_without_a_champion(tmp_path: Path):
    proj = write_project(tmp_path / "p")
    src = tmp_path / "rows.csv"
    make_frame(5)[["x1"]].to_csv(src, index=False)
    result = runner.invoke(
        app, ["predict", str(src), "--out", str(tmp_path / "o.csv"), "-c", str(proj)]
    )
    assert result.exit_code == 1
    assert "no 'champion' yet" in result.output
    assert invoke("run", "-c", str(proj), "--as-of", "2024-01-20").exit_code == 0
    result = runner.invoke(
        app, ["predict", str(src), "--out", str(tmp_path / "o.csv"), "-c", str(proj)]
    )
    assert result.exit_code == 1
    assert "column 'x2' is missing" in result.output


def test_serve_help_is_listed():
    result = invoke("--help")
    assert "serve" in result.output and "predict" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_serve_on_elec2_predict_feedback_sigterm_and_the_log_has_the_rows(tmp_path: Path):
    proj = tmp_path / "elec2"
    assert invoke("init", str(proj)).exit_code == 0
    with (proj / "retrainer.yaml").open("a") as f:
        f.write("serve:\n  flush_interval: 30\n")
    assert invoke("run", "-c", str(proj), "--as-of", "1997-01-06").exit_code == 0
    made = invoke("token", "create", "-c", str(proj), "--name", "e2e", "--scope", "predict",
                  "--scope", "feedback", "--json")  # fmt: skip
    assert made.exit_code == 0, made.output
    secret = json.loads(made.stdout)["secret"]
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "retrainer", "serve", "-c", str(proj), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "the server did not get ready"
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {secret}"}
        assert httpx.post(f"{base}/v1/elec2/predict", json={}, headers={}).status_code == 401
        row = {
            "period": 0.5,
            "nswprice": 0.05,
            "nswdemand": 0.4,
            "vicprice": 0.003,
            "vicdemand": 0.42,
            "transfer": 0.41,
        }
        r = httpx.post(f"{base}/v1/elec2/predict", json=[row] * 5, headers=headers)
        assert r.status_code == 200, r.text
        answers = r.json()["predictions"]
        assert {a["model_version"] for a in answers} == {1}
        r = httpx.post(
            f"{base}/v1/elec2/feedback",
            json={
                "feedback": [{"prediction_id": a["prediction_id"], "outcome": 1} for a in answers]
            },
            headers=headers,
        )
        assert r.json() == {"accepted": 5, "unknown": []}
    finally:
        server.send_signal(signal.SIGTERM)  # flush_interval is 30 s: only the stop flushes
        stdout, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    assert "flushed" in stdout
    with Project.open(proj) as project:
        logs = project.log_store()
        logged = logs.predictions("elec2", None, None)
        feedback = logs.feedback(None, None)
    assert sorted(logged["id"]) == sorted(a["prediction_id"] for a in answers)
    assert sorted(feedback["id"]) == sorted(logged["id"])
    json.dumps(answers)  # plain JSON all the way


def _scored_project(tmp_path: Path) -> Path:
    proj = write_project(tmp_path / "p")
    assert invoke("run", "-c", str(proj), "--as-of", "2024-01-20").exit_code == 0
    return proj


def test_predict_names_the_row_and_column_of_an_empty_cell(tmp_path: Path):
    proj = _scored_project(tmp_path)
    src = tmp_path / "rows.csv"
    rows = make_frame(5, seed=3)[["x1", "x2"]]
    rows.loc[2, "x2"] = None
    rows.to_csv(src, index=False)
    result = runner.invoke(
        app, ["predict", str(src), "--out", str(tmp_path / "o.csv"), "-c", str(proj)]
    )
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "row 2: column 'x2' is missing" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_predict_names_a_missing_output_folder_before_scoring(tmp_path: Path):
    proj = _scored_project(tmp_path)
    src = tmp_path / "rows.csv"
    make_frame(5, seed=3)[["x1", "x2"]].to_csv(src, index=False)
    out = tmp_path / "nonexistent" / "dir" / "s.csv"
    result = runner.invoke(app, ["predict", str(src), "--out", str(out), "-c", str(proj)])
    assert result.exit_code == 1, result.output
    assert f"{out.parent} does not exist" in " ".join(result.output.split())
    with Project.open(proj) as project:
        assert project.log_store().predictions("toy", None, None).empty  # nothing scored


def test_predict_names_the_row_and_value_of_a_non_number_in_a_numeric_csv_column(tmp_path: Path):
    proj = _scored_project(tmp_path)
    src = tmp_path / "rows.csv"
    rows = make_frame(5, seed=3)[["x1", "x2"]].astype(object)
    rows.loc[3, "x1"] = "high"
    rows.to_csv(src, index=False)
    result = runner.invoke(
        app, ["predict", str(src), "--out", str(tmp_path / "o.csv"), "-c", str(proj)]
    )
    assert result.exit_code == 1, result.output
    assert "row 3: column 'x1' must be a number (float64); got 'high'" in result.output


def test_serve_on_a_port_in_use_fails_with_one_line_before_serving(tmp_path: Path):
    proj = write_project(tmp_path / "p")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(app, ["serve", "-c", str(proj), "--port", str(port)])
    assert result.exit_code == 1, result.output
    assert result.output.strip() == (
        f"error: cannot listen on 127.0.0.1:{port}: address already in use; choose another --port"
    )
