"""A pin of what the monitor writes: the stored record, the events, the report's raw data and
the report's tables, for a few windows (drift and concept drift from a source, an empty
window, a missing feature, the prediction log).

Written against the code before the monitor's results were typed; the refactor must keep
every document identical. Regenerate (only for an intended change) with
``RETRAINER_WRITE_PINS=1 pytest tests/engine/monitoring/test_monitor_pin.py``.
"""

from __future__ import annotations

import html
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrainer.adapters.sources import CallableSource
from retrainer.config import parse_config
from retrainer.core.clock import SimulatedClock
from retrainer.engine.monitoring.monitor import run_monitor
from retrainer.engine.project import Project
from retrainer.engine.runs.run import execute_run
from tests.conftest import make_frame, pipeline_config

PIN = Path(__file__).parent / "data" / "monitor_pin.json"
T_TRAIN = datetime(2024, 1, 20, tzinfo=UTC)


def _rounded(value: Any) -> Any:
    """Floats to 9 significant digits: the pin is about the documents' shape and figures,
    not the last bits of a solver."""
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _project(tmp_path: Path, frame: pd.DataFrame, **monitor: Any) -> Project:
    overrides: dict[str, Any] = {
        "monitor": {"window": "3d", "performance": {"every": "1d", "min_samples": 10}, **monitor}
    }
    cfg = parse_config({"pipelines": [pipeline_config(**overrides)]})
    src = CallableSource(lambda s, e: frame, time_column="ts", name="test")
    project = Project.in_memory(cfg, tmp_path, sources={"toy": src})
    assert execute_run(project, clock=SimulatedClock(T_TRAIN)).promoted
    return project


def _report(path: Path) -> dict[str, Any]:
    """The report's raw data block and its tables' text (figures left out: they hold ids)."""
    text = path.read_text()
    raw = re.search(r"<summary>raw data \(JSON\)</summary><pre>(.*?)</pre>", text, re.S)
    assert raw is not None
    tables = re.findall(r"<table.*?</table>", text, re.S)
    headings = re.findall(r"<h2>(.*?)</h2>", text)
    pills = re.findall(r"<p>(.*?)</p>", re.sub(r"<script.*?</script>", "", text, flags=re.S))
    return {
        "raw": json.loads(html.unescape(raw.group(1))),
        "tables": tables,
        "headings": headings,
        "paragraphs": pills,
    }


def _documents(project: Project, result: Any) -> dict[str, Any]:
    record = project.store.list_monitor_results("toy")[-1]
    events = project.store.list_events("toy")
    out: dict[str, Any] = {
        "record": {
            "version": record.version,
            "window_start": record.window_start.isoformat(),
            "window_end": record.window_end.isoformat(),
            "drifted": record.drifted,
            "summary": record.summary,
        },
        "events": [
            {"kind": e.kind, "message": e.message, "data": e.data}
            for e in events
            if e.kind in ("monitor.completed", "drift.detected", "concept_drift.detected")
        ],
    }
    if result.report_path is not None:
        out["report"] = _report(result.report_path)
    return out


def _scenarios(tmp_path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}

    frame = make_frame(24 * 40, seed=3)
    late = frame["ts"] >= pd.Timestamp("2024-01-22")
    frame.loc[late, "x1"] += 1.5
    flipped = frame["ts"] >= pd.Timestamp("2024-01-23")
    frame.loc[flipped, "y"] = 1 - frame.loc[flipped, "y"]
    project = _project(tmp_path / "a", frame, window="6d")
    for i, at in enumerate(
        [datetime(2024, 1, 26, 7, tzinfo=UTC), datetime(2024, 1, 27, tzinfo=UTC)]
    ):
        result = run_monitor(project, clock=SimulatedClock(at), report=tmp_path / f"a{i}.html")
        out[f"source_drift_{i}"] = _documents(project, result)

    empty = _project(tmp_path / "b", make_frame(24 * 40, seed=3))
    result = run_monitor(
        empty, clock=SimulatedClock(datetime(2025, 6, 1, tzinfo=UTC)), report=tmp_path / "b.html"
    )
    out["empty_window"] = _documents(empty, result)

    full = make_frame(24 * 40, seed=3)
    missing = _project(tmp_path / "c", full)
    missing.sources["toy"].fn = lambda s, e: full.drop(columns="x2")  # type: ignore[attr-defined]
    result = run_monitor(
        missing, clock=SimulatedClock(datetime(2024, 1, 26, tzinfo=UTC)), report=tmp_path / "c.html"
    )
    out["missing_feature"] = _documents(missing, result)

    log = _project(tmp_path / "d", make_frame(24 * 40, seed=3), data="log", window="8d")
    times = pd.date_range("2024-01-20", periods=192, freq="h")
    prediction = np.arange(192) % 2
    preds = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(192)],
            "timestamp": times,
            "pipeline": "toy",
            "model_version": 1,
            "prediction": prediction,
            "score": prediction * 0.8 + 0.1,
            "x1": np.linspace(-1, 2, 192),
            "x2": 0.0,
        }
    )
    outcome = np.where(times >= pd.Timestamp("2024-01-24"), 1 - prediction, prediction)
    labelled = times < pd.Timestamp("2024-01-27 12:00")
    logs = log.log_store()
    logs.append_predictions(preds)
    logs.append_feedback(
        pd.DataFrame(
            {
                "id": preds["id"][labelled],
                "timestamp": times[labelled] + timedelta(minutes=30),
                "outcome": outcome[labelled],
            }
        )
    )
    result = run_monitor(
        log, clock=SimulatedClock(datetime(2024, 1, 28, tzinfo=UTC)), report=tmp_path / "d.html"
    )
    out["prediction_log"] = _documents(log, result)
    return _rounded(json.loads(json.dumps(out)))


def test_the_monitor_documents_are_unchanged(tmp_path: Path):
    got = _scenarios(tmp_path)
    if os.environ.get("RETRAINER_WRITE_PINS"):
        PIN.write_text(json.dumps(got, indent=1, sort_keys=False) + "\n")
    expected = json.loads(PIN.read_text())
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name] == expected[name], name
    # key order is part of the documents (the --json output and the report print it)
    assert json.dumps(got) == json.dumps(expected)
