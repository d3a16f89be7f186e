"""The CLI in-process (Typer's runner): output shapes, exit codes, error lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrainer.cli import app
from tests.conftest import make_frame, write_project

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_help_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for cmd in ("init", "run", "status", "models", "promote", "rollback", "demo"):
        assert cmd in result.output


def test_help_keeps_brackets_and_joins_the_docstring_lines(monkeypatch):
    # Rich markup ate "[score]" as a tag, and the docstrings' line breaks split sentences
    monkeypatch.setenv("COLUMNS", "200")
    result = invoke("log", "predictions", "--help")
    assert result.exit_code == 0
    assert "prediction, [score], features" in result.output
    result = invoke("backtest", "--help")
    assert "on a simulated clock: triggers, windows, the blessing gate" in result.output
    assert "OUT/persist/<policy>/" in result.output


def test_run_then_models_list_json(tmp_path: Path):
    proj = write_project(tmp_path / "p")
    result = invoke("run", "-c", str(proj), "--as-of", "2024-01-20")
    assert result.exit_code == 0, result.output
    assert "promoted to champion" in result.output
    result = invoke("run", "-c", str(proj), "--as-of", "2024-01-26", "--json")
    assert result.exit_code == 0
    run = json.loads(result.output)
    assert run["run"]["status"] == "succeeded"
    result = invoke("models", "list", "-c", str(proj), "--json")
    versions = json.loads(result.output)
    assert [v["version"] for v in versions] == [1, 2]
    for v in versions:
        assert {"version", "aliases", "created_at", "metrics", "lineage", "blessing"} <= set(v)
        assert {"passed", "evidence"} <= set(v["blessing"])
        assert v["lineage"]["snapshot"]["rows"] > 0
        assert len(v["lineage"]["artifact"]["sha256"]) == 64
    assert sum("champion" in v["aliases"] for v in versions) == 1


def test_models_show_and_status(tmp_path: Path):
    proj = write_project(tmp_path / "p")
    invoke("run", "-c", str(proj), "--as-of", "2024-01-20")
    shown = json.loads(invoke("models", "show", "1", "-c", str(proj), "--json").output)
    assert shown["version"] == 1 and shown["run"]["status"] == "succeeded"
    assert shown["alias_history"][0]["version"] == 1
    text = invoke("models", "show", "1", "-c", str(proj)).output
    assert "blessing evidence" in text and "fingerprint" in text
    assert "toy v1 [champion]" in text  # brackets survive Rich markup
    assert "alias history:\n  2024-01-20 00:00  champion: - -> v1  " in text  # not JSON only
    status = json.loads(invoke("status", "-c", str(proj), "--json").output)
    assert status[0]["champion"] == 1
    assert invoke("status", "-c", str(proj)).exit_code == 0


def test_bad_config_exits_2_with_one_line_per_problem(tmp_path: Path):
    (tmp_path / "retrainer.yaml").write_text(
        "pipelines:\n  - name: x\n    source: {kind: parquett, url: a, time_column: t}\n"
        "    target: y\n    features: [a]\n    model: {estimator: 'a:B'}\n    metrics: [accuracy]\n"
        "    blessing: {holdout: 2, rules: [{metric: accuracy, min: 0.5}]}\n"
    )
    result = runner.invoke(app, ["status", "-c", str(tmp_path)])
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 3  # the file, then a line per problem
    assert lines[0] == f"error: {tmp_path.resolve() / 'retrainer.yaml'} has 2 problems:"
    assert any("pipelines[0].source.kind: got 'parquett'" in ln for ln in lines)
    assert any("pipelines[0].blessing.holdout: got 2" in ln for ln in lines)


def test_failed_run_exits_1_and_names_the_column(tmp_path: Path):
    proj = write_project(tmp_path / "p", target="label")
    result = runner.invoke(app, ["run", "-c", str(proj), "--as-of", "2024-01-20"])
    assert result.exit_code == 1
    assert "target column 'label' not found" in result.stderr


def test_run_leaves_out_the_rows_whose_label_has_not_arrived(tmp_path: Path):
    """A parquet table whose newest rows have no label yet (NaN: a float column, so the task
    is set): the run trains on the others and says how many it left out."""
    frame = make_frame()
    frame["y"] = frame["y"].astype(float).mask(frame["ts"] >= "2024-01-19 12:00")
    proj = write_project(tmp_path / "p", frame, task="classification")
    result = invoke("run", "-c", str(proj), "--as-of", "2024-01-20")
    assert result.exit_code == 0, result.output
    assert "12 rows without a label yet left out" in result.output
    again = json.loads(invoke("run", "-c", str(proj), "--as-of", "2024-01-20", "--json").output)
    assert again["unlabelled_rows"] == 12 and again["run"]["status"] == "succeeded"
    shown = json.loads(invoke("models", "show", "1", "-c", str(proj), "--json").output)
    snapshot = shown["lineage"]["snapshot"]
    assert snapshot["rows"] == 19 * 24 - 12  # the hours before Jan 19 12:00
    assert snapshot["max_time"].startswith("2024-01-19T11:00")
    strict = write_project(tmp_path / "s", frame, task="classification", unlabelled="error")
    failed = runner.invoke(app, ["run", "-c", str(strict), "--as-of", "2024-01-20"])
    assert failed.exit_code == 1
    assert "target column 'y' has 12 missing value(s)" in failed.stderr


def test_unknown_version_is_a_clear_error(tmp_path: Path):
    proj = write_project(tmp_path / "p")
    invoke("run", "-c", str(proj), "--as-of", "2024-01-20")
    result = runner.invoke(app, ["models", "show", "9", "-c", str(proj)])
    assert result.exit_code == 1
    assert "error:" in result.stderr and "9" in result.stderr


@pytest.mark.parametrize(
    "args", [("models", "show", "1"), ("promote", "1"), ("rollback", "--to", "1")]
)
def test_a_pipeline_that_never_trained_says_so(tmp_path: Path, args: tuple[str, ...]):
    proj = write_project(tmp_path / "p")
    result = runner.invoke(app, [*args, "-c", str(proj)])
    assert result.exit_code == 1
    assert "has no model versions yet: train one with 'retrainer run'" in result.stderr
    assert "ensure_pipeline" not in result.stderr
    listed = runner.invoke(app, ["models", "list", "-c", str(proj)])
    assert listed.exit_code == 0
    assert "no model versions yet" in listed.output


def test_init_refuses_to_overwrite(tmp_path: Path):
    assert invoke("init", str(tmp_path / "e")).exit_code == 0
    assert (tmp_path / "e" / "data" / "elec2.parquet").exists()
    result = runner.invoke(app, ["init", str(tmp_path / "e")])
    assert result.exit_code == 2
    assert "already exists" in result.stderr


@pytest.mark.parametrize("cmd", [["promote", "1"], ["rollback"]])
def test_registry_commands_without_models_fail_cleanly(tmp_path: Path, cmd: list[str]):
    proj = write_project(tmp_path / "p")
    result = runner.invoke(app, [*cmd, "-c", str(proj)])
    assert result.exit_code == 1
    assert result.stderr.startswith("error:")


def test_json_output_is_strict_json():
    from retrainer.core.jsonsafe import json_safe

    data = json_safe({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": 2}})
    assert data == {"a": None, "b": [1.0, None], "c": {"d": 2}}
    json.dumps(data, allow_nan=False)


# --- option values refused up front, one error line, exit 2 ---------------------------------


def _usage_error(result, option: str) -> str:
    """The one stderr line of a usage error that names ``option``."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {option}: "), line
    return line


@pytest.mark.parametrize("value", ["banana", "2.5", "0", "1", "nan", ""])
def test_backtest_select_until_that_is_neither_a_fraction_nor_a_date(tmp_path: Path, value: str):
    # it raised pandas' DateParseError ('banana') or pydantic's ValidationError ('2.5')
    from tests.engine.backtest.test_backtest import backtest_file, tiny_project

    file = backtest_file(tiny_project(tmp_path / "p", days=20))
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["backtest", "-c", str(file), "--out", str(out), "--select-until", value]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    head, line = result.stderr.splitlines()
    assert head == "error: the command line has 1 problem:"
    assert line.startswith("error: select_until: got ")
    assert "between 0 and 1 (exclusive)" in line
    assert not out.exists()


def test_backtest_yaml_select_until_that_is_not_a_date_names_the_file(tmp_path: Path):
    # the option was checked in the CLI only: the same value in backtest.yaml raised
    # pandas' DateParseError from the replay
    from tests.engine.backtest.test_backtest import backtest_file, tiny_project

    file = backtest_file(tiny_project(tmp_path / "p", days=20), select_until="banana")
    result = runner.invoke(app, ["backtest", "-c", str(file), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"error: {file} has 1 problem:" in result.stderr
    assert "error: select_until: got 'banana'; expected a fraction" in result.stderr


@pytest.mark.parametrize("tick", ["-86400", "0", "nan", "inf"])
def test_daemon_refuses_a_tick_that_is_not_a_positive_number_before_any_work(
    tmp_path: Path, tick: str
):
    # --tick -86400 ran a full tick, then crashed with 'a clock cannot go backwards'
    proj = write_project(tmp_path / "p", triggers=[{"schedule": "0 0 * * *"}])
    args = ["daemon", "-c", str(proj), "--as-of", "2024-01-20", "--max-ticks", "3"]
    result = runner.invoke(app, [*args, "--tick", tick, "--executor", "inline"])
    line = _usage_error(result, "--tick")
    assert f"got {tick}" in line
    assert "retrainer daemon:" not in result.output  # it did not start
    assert json.loads(invoke("events", "-c", str(proj), "--json").output) == []


def test_daemon_max_ticks_must_be_at_least_one(tmp_path: Path):
    proj = write_project(tmp_path / "p")
    result = runner.invoke(
        app, ["daemon", "-c", str(proj), "--as-of", "2024-01-20", "--max-ticks", "0"]
    )
    assert result.exit_code == 2
    assert "--max-ticks" in result.stderr and "retrainer daemon:" not in result.output


def test_daemon_as_of_takes_an_offset_like_the_other_commands(tmp_path: Path):
    # 'daemon --as-of' refused the %z format 'run', 'status' and 'monitor' take
    proj = write_project(tmp_path / "p", triggers=[{"schedule": "0 0 * * *"}])
    args = ["daemon", "-c", str(proj), "--executor", "inline", "--max-ticks", "1"]
    result = runner.invoke(app, [*args, "--as-of", "2024-01-20T02:00:00+02:00"])
    assert result.exit_code == 0, result.output
    assert "simulated from 2024-01-20 00:00" in result.output  # in UTC
    # --since takes the same formats: the schedule was armed at 00:00 UTC
    for since, found in (("01:59:00+02:00", True), ("02:01:00+02:00", False)):
        events = invoke("events", "-c", str(proj), "--since", f"2024-01-20T{since}", "--json")
        assert events.exit_code == 0, events.output
        assert bool(json.loads(events.output)) is found, since


def test_events_refuses_an_unknown_kind_and_lists_the_known_ones(tmp_path: Path):
    # a misspelt kind printed 'no events matching the filters' with exit 0
    proj = write_project(tmp_path / "p")
    result = runner.invoke(
        app, ["events", "-c", str(proj), "--kind", "model.promoted", "--kind", "bogus"]
    )
    line = _usage_error(result, "--kind")
    assert "unknown event kind 'bogus'" in line
    assert "model.promoted" in line.split("bogus")[1] and "trigger.fired" in line
    known = invoke("events", "-c", str(proj), "--kind", "model.promoted")
    assert known.exit_code == 0 and "no events matching the filters" in known.output


def test_events_accepts_a_kind_the_store_holds(tmp_path: Path):
    """Events written through the Python API may have kinds of their own."""
    from datetime import UTC, datetime

    from retrainer.core.types import Event
    from retrainer.engine.project import Project

    proj = write_project(tmp_path / "p")
    with Project.open(proj) as project:
        project.store.append_event(
            Event(kind="team.note", at=datetime(2024, 1, 1, tzinfo=UTC), message="hi")
        )
    result = invoke("events", "-c", str(proj), "--kind", "team.note")
    assert result.exit_code == 0 and "team.note" in result.output


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_events_limit_must_be_at_least_one(tmp_path: Path, limit: str):
    proj = write_project(tmp_path / "p")
    result = runner.invoke(app, ["events", "-c", str(proj), "--limit", limit])
    assert result.exit_code == 2 and "--limit" in result.stderr


@pytest.mark.parametrize("alias", ["", "   ", " champion"])
def test_promote_refuses_an_empty_or_padded_alias(tmp_path: Path, alias: str):
    proj = write_project(tmp_path / "p")
    invoke("run", "-c", str(proj), "--as-of", "2024-01-20")
    result = runner.invoke(app, ["promote", "1", "-c", str(proj), "--alias", alias])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip() == (
        f"error: an alias is a non-empty name without surrounding spaces; got {alias!r}"
    )
    shown = json.loads(invoke("models", "show", "1", "-c", str(proj), "--json").output)
    assert shown["aliases"] == ["champion"]


# --- log predictions / feedback ---------------------------------------------------------------


def test_logging_a_file_again_says_its_rows_were_already_logged(tmp_path: Path):
    # the second time printed 'logged 2 predictions' though the log stayed the same
    proj = write_project(tmp_path / "p")
    preds = tmp_path / "preds.csv"
    preds.write_text(
        "id,timestamp,model_version,prediction\n"
        "a,2024-01-21T10:00:00,1,1\nb,2024-01-22T11:00:00,1,0\n"
    )
    first = invoke("log", "predictions", str(preds), "-c", str(proj))
    assert f"logged 2 predictions of toy from {preds}" in first.output
    again = invoke("log", "predictions", str(preds), "-c", str(proj))
    assert f"logged 0 new predictions of toy from {preds} (2 already logged)" in again.output
    feedback = tmp_path / "fb.csv"
    feedback.write_text("id,timestamp,outcome\na,2024-01-22T10:00:00,1\n")
    assert (
        "logged 1 feedback rows from"
        in invoke("log", "feedback", str(feedback), "-c", str(proj)).output
    )
    again = invoke("log", "feedback", str(feedback), "-c", str(proj))
    assert f"logged 0 new feedback rows from {feedback} (1 already logged)" in again.output


def test_a_predictions_file_without_a_column_is_named_with_its_own_columns(tmp_path: Path):
    # the error listed a 'pipeline' column the file did not have (the CLI adds it) and
    # asked for one
    proj = write_project(tmp_path / "p")
    bad = tmp_path / "preds.csv"
    bad.write_text("id,timestamp,prediction\na,2024-01-21T10:00:00,1\n")
    result = runner.invoke(app, ["log", "predictions", str(bad), "-c", str(proj)])
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line == (
        f"error: {bad}: missing required column(s) 'model_version'. A prediction row needs "
        "id, timestamp, model_version, prediction; got columns: id, timestamp, prediction"
    )


@pytest.mark.parametrize(
    ("args", "exit_code"),
    [
        (["--executor", "inline", "--max-ticks", "2"], 0),
        (["--executor", "bogus", "--max-ticks", "2"], 2),  # fails after the handlers went in
    ],
)
def test_daemon_restores_the_signal_handlers_it_installs(tmp_path: Path, args, exit_code):
    # the daemon's SIGTERM/SIGINT handlers outlived it: an in-process run left pytest
    # ignoring Ctrl-C
    import signal

    proj = write_project(tmp_path / "p", triggers=[{"schedule": "0 0 * * *"}])
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    result = runner.invoke(app, ["daemon", "-c", str(proj), "--as-of", "2024-01-20", *args])
    assert result.exit_code == exit_code, result.output
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_run_json_is_the_run_and_version_the_registry_shows(tmp_path: Path):
    """'run --json' prints RunResult.to_json(): the same shapes as 'models list/show --json'."""
    proj = write_project(tmp_path / "p")
    first = json.loads(invoke("run", "-c", str(proj), "--as-of", "2024-01-20", "--json").output)
    assert list(first) == ["run", "promoted", "unlabelled_rows", "version"]
    assert first["promoted"] is True and first["unlabelled_rows"] == 0
    [listed] = json.loads(invoke("models", "list", "-c", str(proj), "--json").output)
    assert first["version"] == listed and listed["aliases"] == ["champion"]
    shown = json.loads(invoke("models", "show", "1", "-c", str(proj), "--json").output)
    assert first["run"] == shown["run"]
    assert first["run"]["status"] == "succeeded" and first["run"]["outcome"] == "promoted"


MONITOR_PIN = Path(__file__).parent / "data" / "monitor_cli_pin.json"


def test_monitor_and_status_output_is_pinned(tmp_path: Path, monkeypatch):
    """`monitor` and `status`, as text and --json, as they were before their results were
    typed (run ids and the project's path masked). Regenerate with RETRAINER_WRITE_PINS=1."""
    import os
    import re

    monkeypatch.setenv("COLUMNS", "200")
    frame = make_frame(24 * 30, seed=3)
    frame.loc[frame["ts"] >= "2024-01-22", "x1"] += 1.5
    proj = write_project(tmp_path / "p", frame, monitor={"window": "3d"})
    invoke("run", "-c", str(proj), "--as-of", "2024-01-20")
    invoke("run", "-c", str(proj), "--as-of", "2024-01-21")

    def masked(text: str) -> str:
        text = text.replace(str(proj.resolve()), "<proj>").replace(str(proj), "<proj>")
        text = re.sub(r'"owner": "[^"]*"', '"owner": "<host:pid>"', text)
        # leases run on the wall clock, whatever --as-of says
        text = re.sub(r'"lease_expires_at": "[^"]*"', '"lease_expires_at": "<real time>"', text)
        return re.sub(r"[0-9a-f]{12,}|[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", text)

    def timings_masked(output: str) -> str:
        data = json.loads(output)
        for pipeline in data:
            for run in (*pipeline["last_runs"], *pipeline["running"], *pipeline["queued"]):
                run["timings"] = sorted(run["timings"])  # wall times vary; their steps do not
        return json.dumps(data, indent=2)

    got = {}
    for args in (
        ("monitor", "--as-of", "2024-01-24", "--no-report", "--json"),
        ("monitor", "--as-of", "2024-01-25", "--no-report"),
        ("status", "--as-of", "2024-01-25", "--json"),
        ("status", "--as-of", "2024-01-25"),
    ):
        result = invoke(*args, "-c", str(proj))
        assert result.exit_code == 0, result.output
        output = (
            timings_masked(result.output)
            if args[0] == "status" and "--json" in args
            else result.output
        )
        got[" ".join(args)] = masked(output).splitlines()
    if os.environ.get("RETRAINER_WRITE_PINS"):
        MONITOR_PIN.parent.mkdir(exist_ok=True)
        MONITOR_PIN.write_text(json.dumps(got, indent=1) + "\n")
    assert got == json.loads(MONITOR_PIN.read_text())


def test_models_list_limit_keeps_the_latest_and_the_aliased_versions(tmp_path: Path):
    # a registry of 1,000 versions drew 1,000 table rows (0.6 s of Rich) at every call
    import dataclasses

    from retrainer.engine.project import Project

    proj = write_project(tmp_path / "p")
    assert invoke("run", "-c", str(proj), "--as-of", "2024-01-20").exit_code == 0
    with Project.open(proj) as project:
        first = project.store.get_version("toy", 1)
        for _ in range(4):
            project.store.register_version(dataclasses.replace(first))

    def listed(*args: str) -> list[int]:
        result = invoke("models", "list", "-c", str(proj), "--json", *args)
        return [v["version"] for v in json.loads(result.output)]

    assert listed() == [1, 2, 3, 4, 5]  # --json lists all by default
    assert listed("--limit", "2") == [1, 4, 5]  # v1 is the champion
    assert listed("--limit", "0") == [1, 2, 3, 4, 5]
    table = invoke("models", "list", "-c", str(proj), "--limit", "2").output
    assert "v4" in table and "v1" in table and "v2" not in table
    assert "... and 2 older versions: --limit 0 shows them all" in table
    assert "older version" not in invoke("models", "list", "-c", str(proj)).output
