"""The backtest report: a self-contained HTML page and a PNG of the metric over time."""

from __future__ import annotations

import copy
import html
import math
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from retrainer.engine.backtest.report import _rolling, write_backtest_report

START = datetime(2024, 1, 1, tzinfo=UTC)
BATCHES = 60
SELECT_UNTIL = START + timedelta(days=40)
PLOTLY_MARKER = "plotly.js v"  # the banner at the top of the inlined plotly.js bundle
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _policy(
    name: str,
    level: float,
    every: int | None,
    held_out: float | None,
    *,
    pareto: bool,
    cpu: float,
) -> dict[str, Any]:
    ends = [_iso(START + timedelta(days=i + 1)) for i in range(BATCHES)]
    accuracy: list[float | None] = [
        level - 0.002 * (i % (every or BATCHES)) + 0.01 * math.sin(i) for i in range(BATCHES)
    ]
    retrained = [_iso(START + timedelta(days=i)) for i in range(0, BATCHES, every)] if every else []
    return {
        "name": name,
        "params": {"triggers": [{"schedule": f"every {every}d"}] if every else []},
        "metric": {"accuracy": level, "log_loss": 1 - level},
        "selection": {"accuracy": level + 0.001, "log_loss": 1 - level},
        "held_out": {"accuracy": held_out, "log_loss": None if held_out is None else 1 - held_out},
        "retrains": len(retrained),
        "promotions": max(len(retrained) - 1, 0),
        "train_cpu_s": cpu * 2,
        "wall_s": 1.5,
        "retrains_held_out": len(retrained) // 3,
        "train_cpu_s_held_out": cpu,
        "cost": None,
        "pareto": pareto,
        "series": {
            "end": ends,
            "n": [48] * BATCHES,
            "accuracy": accuracy,
            "log_loss": [None if a is None else 1 - a for a in accuracy],
        },
        "retrained_at": retrained,
        "promoted_at": retrained[1:],
    }


def _results() -> dict[str, Any]:
    policies = [
        _policy("every 7 days · last 30d", 0.78, 7, 0.7795, pareto=True, cpu=0.47),
        _policy("every day · last 7d", 0.80, 1, 0.7850, pareto=True, cpu=2.1),
        _policy("never retrain", 0.70, None, 0.6900, pareto=True, cpu=0.01),
    ]
    return {
        "version": 1,
        "title": "elec2 backtest",
        "dataset": {
            "pipeline": "elec2",
            "source": "parquet:data/elec2.parquet",
            "rows": 45312,
            "start": _iso(START),
            "end": _iso(START + timedelta(days=BATCHES)),
            "batch": "1d",
            "batches": BATCHES,
            "warm_start_end": _iso(START),
            "label_delay": "0",
            "select_until": _iso(SELECT_UNTIL),
        },
        "metric": "accuracy",
        "greater_is_better": True,
        "metrics": ["accuracy", "log_loss"],
        "cost_model": {"per_retrain": 0.0, "per_cpu_second": 0.0, "per_metric_point": 0.0},
        "policies": policies,
        "comparisons": [
            {
                "a": "every 7 days · last 30d",
                "b": "every day · last 7d",
                "part": "held_out",
                "mean": -0.0055,
                "low": -0.011,
                "high": 0.0002,
                "significant": False,
                "text": "every 7 days and every day are within noise (CI crosses zero)",
            }
        ],
        "degradation": {
            "ages": list(range(20)),
            "mean": [0.79 - 0.002 * a for a in range(20)],
            "low": [0.78 - 0.002 * a for a in range(20)],
            "high": [0.80 - 0.002 * a for a in range(20)],
            "n_models": [8] * 20,
            "control": 0.79,
            "age_at_loss": {"0.5": 3, "1.0": 5, "2.0": None},
            "window": {"kind": "sliding", "duration": "30d"},
            "every": 7,
        },
        "recommended": {
            "name": "every 7 days · last 30d",
            "rule": "tolerance",
            "reason": "cheapest policy within 1.0 points of the best on the selection part",
            "selection": {"accuracy": 0.781},
            "held_out": {"accuracy": 0.7795},
            "retrains_held_out": 3,
            "train_cpu_s_held_out": 0.47,
            "yaml_path": "recommended.yaml",
            "snippet": "triggers:\n  - schedule: {every: 7d}\nwindow:\n  duration: 30d",
        },
        "oracle": "every day · last 7d",
        "seconds": 41.2,
    }


def _variant() -> dict[str, Any]:
    """No degradation, no oracle, missing values and a name that is HTML."""
    results = _results()
    results["degradation"] = None
    results["oracle"] = None
    nasty = results["policies"][1]
    nasty["name"] = "daily <b>& co"
    nasty["held_out"]["accuracy"] = None
    nasty["series"]["accuracy"][10] = None
    nasty["series"]["accuracy"][11] = float("nan")
    results["policies"][0]["series"]["accuracy"][5] = float("nan")
    results["comparisons"][0]["b"] = nasty["name"]
    results["recommended"]["reason"] = "picked <b>& because"
    return results


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _section(text: str, heading: str) -> str:
    start = text.index(f"<h2>{heading}</h2>")
    end = text.find("<h2>", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_writes_both_files_into_a_new_folder(tmp_path: Path):
    out = tmp_path / "runs" / "bt1"
    html_path, png_path = write_backtest_report(_results(), out)
    assert html_path == (out / "report.html").resolve()
    assert png_path == (out / "metric_over_time.png").resolve()
    assert html_path.is_file() and png_path.is_file()
    # atomic writes leave no temp files behind
    assert sorted(p.name for p in out.iterdir()) == ["metric_over_time.png", "report.html"]


def test_html_content(tmp_path: Path):
    results = _results()
    html_path, _ = write_backtest_report(results, tmp_path)
    text = html_path.read_text(encoding="utf-8")
    for policy in results["policies"]:
        assert html.escape(policy["name"]) in text
    assert results["recommended"]["reason"] in text
    assert f"<pre>{html.escape(results['recommended']['snippet'])}</pre>" in text
    for heading in ("Recommendation", "Policies", "Metric over time", "Cost vs metric"):
        assert f"<h2>{heading}</h2>" in text
    assert "<h2>Time to degrade</h2>" in text
    assert (
        "After 3 batches a frozen model has lost 0.5 points; after 5 batches a frozen model "
        "has lost 1 point; it has not lost 2 points within 19 batches (a batch is 1d)."
    ) in text
    assert "always retrained" in text
    assert "selection | held out" in text
    assert text.count(PLOTLY_MARKER) == 1  # plotly.js inlined exactly once
    assert "<script src=" not in text  # nothing fetched
    assert "within noise (CI crosses zero)" in _section(text, "Differences")
    assert "raw data (JSON)" in text and "parquet:data/elec2.parquet" in text


def test_headline_compares_with_oracle_and_never(tmp_path: Path):
    html_path, _ = write_backtest_report(_results(), tmp_path)
    head = _section(html_path.read_text(encoding="utf-8"), "Recommendation")
    assert "77.95%" in head
    assert "78.50%" in head and "-0.55 points, worse" in head  # vs the oracle
    assert "69.00%" in head and "+8.95 points, better" in head  # vs never retrain


def test_summary_sorted_by_held_out_with_percentages_and_pills(tmp_path: Path):
    html_path, _ = write_backtest_report(_results(), tmp_path)
    summary = _section(html_path.read_text(encoding="utf-8"), "Policies")
    names = ["every day · last 7d", "every 7 days · last 30d", "never retrain"]
    positions = [summary.index(f"<td>{html.escape(n)}</td>") for n in names]
    assert positions == sorted(positions)
    assert "77.95%" in summary and "0.7795" not in summary
    assert summary.count(">Pareto</span>") == 3
    assert summary.count(">recommended</span>") == 1
    assert "<th>cost</th>" not in summary  # the cost model is all zeros


def test_why_a_policy_could_not_be_recommended_is_shown(tmp_path: Path):
    results = _results()
    never = next(p for p in results["policies"] if p["name"] == "never retrain")
    never["excluded"] = "baseline"
    html_path, _ = write_backtest_report(results, tmp_path)
    summary = _section(html_path.read_text(encoding="utf-8"), "Policies")
    row = summary[summary.index("<td>never retrain</td>") :]
    row = row[: row.index("</tr>")]
    assert "<span class='muted'>baseline</span>" in row
    assert summary.count("<span class='muted'>baseline</span>") == 1


def test_raw_metric_sorted_ascending_and_cost_column(tmp_path: Path):
    results = _results()
    results["metric"] = "log_loss"
    results["greater_is_better"] = False
    results["cost_model"]["per_retrain"] = 1.5
    results["policies"][0]["cost"] = 12.25
    html_path, _ = write_backtest_report(results, tmp_path)
    summary = _section(html_path.read_text(encoding="utf-8"), "Policies")
    names = ["every day · last 7d", "every 7 days · last 30d", "never retrain"]
    positions = [summary.index(f"<td>{html.escape(n)}</td>") for n in names]
    assert positions == sorted(positions)  # lower log loss first
    assert "0.2205" in summary and "%" not in summary  # raw, not a percentage
    assert "<th>cost</th>" in summary and "12.2500" in summary


def test_variant_without_degradation_and_with_html_in_names(tmp_path: Path):
    results = _variant()
    html_path, png_path = write_backtest_report(copy.deepcopy(results), tmp_path)
    text = html_path.read_text(encoding="utf-8")
    assert "Time to degrade" not in text
    assert "<b>&" not in text
    assert "daily &lt;b&gt;&amp; co" in text
    assert "picked &lt;b&gt;&amp; because" in text
    assert "oracle" not in _section(text, "Recommendation")
    assert text.count(PLOTLY_MARKER) == 1
    width, height = _png_size(png_path)
    assert 1000 <= width <= 1400 and 450 <= height <= 750


def test_a_policy_or_pipeline_name_with_a_script_tag_is_escaped(tmp_path: Path):
    results = _results()
    attack = "<script>alert('x')</script>"
    results["title"] = f"{attack} backtest"
    results["dataset"]["pipeline"] = attack
    results["policies"][2]["name"] = attack
    results["oracle"] = attack
    results["recommended"]["snippet"] = attack
    results["comparisons"][0]["b"] = attack
    html_path, _ = write_backtest_report(results, tmp_path)
    text = html_path.read_text(encoding="utf-8")
    assert attack not in text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in text
    assert "<script>alert" not in text


def test_png_is_a_plausible_image(tmp_path: Path):
    _, png_path = write_backtest_report(_results(), tmp_path)
    width, height = _png_size(png_path)
    assert (width, height) == (1200, 600)
    assert png_path.stat().st_size > 10_000  # lines were drawn, not a blank canvas


def test_png_survives_mathtext_and_underscore_names(tmp_path: Path):
    results = _results()
    results["policies"][0]["name"] = "$\\nosuchcommand$ cost"
    results["policies"][1]["name"] = "_hidden_by_default"
    results["recommended"]["name"] = "$\\nosuchcommand$ cost"
    _, png_path = write_backtest_report(results, tmp_path)
    assert _png_size(png_path) == (1200, 600)


@pytest.mark.parametrize(
    ("values", "weights", "expected"),
    [
        ([1.0, 0.0, None], [3, 1, 5], [1.0, 0.75, 0.0]),
        ([None, float("nan")], [1, 1], [None, None]),
        ([0.5, 1.0], [0, 2], [None, 1.0]),
        ([1.0, 0.0, 0.0], None, [1.0, 0.5, 0.0]),
    ],
)
def test_rolling_mean_is_weighted_by_batch_size(values, weights, expected):
    assert _rolling(values, weights, window=2) == expected
