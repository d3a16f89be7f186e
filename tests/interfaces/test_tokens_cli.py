"""retrainer token create / list / revoke in-process: output shapes, exit codes, no secret leaks."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrainer import Project, verify_token
from retrainer.cli import app
from tests.conftest import write_project

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    return write_project(tmp_path / "p")


def test_create_prints_the_secret_alone_on_stdout_and_the_warning_on_stderr(proj: Path) -> None:
    result = invoke("token", "create", "-c", str(proj), "--name", "app", "--scope", "predict")
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert secret.startswith("rt_") and "\n" not in secret
    assert "shown once and not stored" in result.stderr
    assert "created token" in result.stderr and "(app)" in result.stderr
    with Project.open(proj) as project:
        token = verify_token(project, secret)
    assert token is not None and token.scopes == ("predict",)


def test_create_json_has_the_secret_once_and_no_hash(proj: Path) -> None:
    result = invoke(
        "token", "create", "-c", str(proj), "--name", "ops", "--scope", "read",
        "--scope", "feedback", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {
        "id", "name", "scopes", "created_at", "revoked_at", "last_used_at", "secret", "warning"
    }  # fmt: skip
    assert data["scopes"] == ["feedback", "read"]
    assert data["secret"].startswith(f"rt_{data['id']}_")
    assert "not stored" in data["warning"]


def test_the_database_holds_no_secret(proj: Path) -> None:
    result = invoke("token", "create", "-c", str(proj), "--name", "app", "--scope", "admin")
    secret = result.stdout.strip()
    raw = secret.split("_", 2)[2]
    for path in (proj / ".retrainer").glob("retrainer.db*"):
        assert raw.encode() not in path.read_bytes(), path
    conn = sqlite3.connect(proj / ".retrainer" / "retrainer.db")
    try:
        rows = conn.execute("SELECT * FROM api_tokens").fetchall()
        events = conn.execute("SELECT message, data FROM events").fetchall()
    finally:
        conn.close()
    assert len(rows) == 1 and raw not in repr(rows)
    assert events and raw not in repr(events)


def test_list_shows_tokens_without_secrets_or_hashes(proj: Path) -> None:
    assert "no tokens" in invoke("token", "list", "-c", str(proj)).stdout
    made = invoke("token", "create", "-c", str(proj), "--name", "app", "--scope", "predict")
    secret = made.stdout.strip()
    token_id = secret.split("_")[1]
    with Project.open(proj) as project:
        record = project.store.get_token(token_id)
    assert record is not None

    table = invoke("token", "list", "-c", str(proj))
    assert table.exit_code == 0
    assert token_id in table.stdout and "app" in table.stdout and "predict" in table.stdout
    listed = invoke("token", "list", "-c", str(proj), "--json")
    assert listed.exit_code == 0
    data = json.loads(listed.stdout)
    assert [(t["id"], t["name"], t["scopes"], t["revoked_at"]) for t in data] == [
        (token_id, "app", ["predict"], None)
    ]
    for output in (table.stdout, listed.stdout):
        assert secret.split("_", 2)[2] not in output
        assert record.secret_sha256 not in output


def test_revoke_then_the_token_is_refused_and_events_record_it(proj: Path) -> None:
    made = invoke("token", "create", "-c", str(proj), "--name", "app", "--scope", "predict")
    secret = made.stdout.strip()
    token_id = secret.split("_")[1]
    result = invoke("token", "revoke", token_id, "-c", str(proj))
    assert result.exit_code == 0, result.output
    assert f"revoked token {token_id} (app)" in result.stdout
    again = invoke("token", "revoke", token_id, "-c", str(proj))
    assert again.exit_code == 0 and "already revoked" in again.stdout
    with Project.open(proj) as project:
        assert verify_token(project, secret) is None
    listed = json.loads(invoke("token", "list", "-c", str(proj), "--json").stdout)
    assert listed[0]["revoked_at"] is not None
    events = invoke("events", "-c", str(proj), "--kind", "token.created", "--kind", "token.revoked")
    assert events.exit_code == 0
    assert "token.created" in events.stdout and "token.revoked" in events.stdout
    assert secret.split("_", 2)[2] not in events.stdout


def test_revoke_json(proj: Path) -> None:
    made = invoke("token", "create", "-c", str(proj), "--name", "app", "--scope", "read")
    token_id = made.stdout.strip().split("_")[1]
    result = invoke("token", "revoke", token_id, "-c", str(proj), "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["id"] == token_id and data["revoked_at"] is not None
    assert "secret" not in data


def test_revoking_an_unknown_id_is_one_error_line_exit_1(proj: Path) -> None:
    result = invoke("token", "revoke", "ffffffffffff", "-c", str(proj))
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "'ffffffffffff'" in lines[0] and "retrainer token list" in lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "app", "--scope", "write"], "unknown scope 'write'"),
        (["--name", " ", "--scope", "read"], "--name"),
    ],
)
def test_bad_input_is_exit_2_and_makes_nothing(proj: Path, args: list[str], message: str) -> None:
    result = invoke("token", "create", "-c", str(proj), *args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stdout == ""
    assert json.loads(invoke("token", "list", "-c", str(proj), "--json").stdout) == []


@pytest.mark.parametrize("missing", [["--name", "app"], ["--scope", "read"]])
def test_name_and_scope_are_required(proj: Path, missing: list[str]) -> None:
    result = runner.invoke(app, ["token", "create", "-c", str(proj), *missing])
    assert result.exit_code == 2


def test_help_lists_the_token_commands() -> None:
    result = invoke("token", "--help")
    assert result.exit_code == 0
    for command in ("create", "list", "revoke"):
        assert command in result.stdout
