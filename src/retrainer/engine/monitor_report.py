"""The monitor's HTML report: drift table, reference vs current per feature, findings,
performance over time. Self-contained (Plotly inlined), opens offline."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from retrainer.adapters.report import HtmlReport, esc, json_block, pill, table

_REF, _CUR = "#7a8aa0", "#d9480f"


def _histogram(name: str, h: Mapping[str, Any]) -> Any:
    import plotly.graph_objects as go

    ref_total = max(sum(h["reference"]), 1)
    cur_total = max(sum(h["current"]), 1)
    if h["kind"] == "numeric":
        edges = h["edges"]
        labels = (
            [f"≤ {edges[0]:.3g}"]
            + [f"{a:.3g} to {b:.3g}" for a, b in itertools.pairwise(edges)]
            + [f"> {edges[-1]:.3g}"]
            if edges
            else ["all"]
        )
    else:
        labels = h["labels"]
    fig = go.Figure()
    fig.add_bar(
        x=labels, y=[c / ref_total for c in h["reference"]], name="reference", marker_color=_REF
    )
    fig.add_bar(
        x=labels, y=[c / cur_total for c in h["current"]], name="current", marker_color=_CUR
    )
    fig.update_layout(
        title={"text": esc(name), "font": {"size": 14}},
        barmode="group",
        yaxis={"tickformat": ".0%"},
        xaxis={"showticklabels": h["kind"] != "numeric"},
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def _performance_figure(points: Sequence[Mapping[str, Any]]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    series: dict[str, tuple[list[str], list[float | None]]] = {}
    for w in points:
        for m in w["metrics"]:
            xs, ys = series.setdefault(m["name"], ([], []))
            xs.append(w["start"])
            ys.append(m["value"])
    for name, (xs, ys) in series.items():
        fig.add_scatter(x=xs, y=ys, mode="lines+markers", name=name, connectgaps=False)
    fig.update_layout(title={"text": "performance per window", "font": {"size": 14}})
    return fig


def write_monitor_report(
    summary: Mapping[str, Any], history: Sequence[Mapping[str, Any]], path: Path
) -> Path:
    """Write the report of one monitor run (``history``: earlier runs' summaries, oldest first)."""
    window = summary["window"]
    report = HtmlReport(
        f"Monitoring: {summary['pipeline']} v{summary['version']}",
        f"window {window['start']} .. {window['end']} · {summary['rows']} rows · "
        f"data from {summary['data']}",
    )
    drift = summary.get("drift")
    concept = summary.get("concept_drift")
    verdicts = []
    if drift is not None:
        verdicts.append(
            pill(not drift["drifted"], "no dataset drift", "dataset drift").html
            + f" <span class='muted'>{drift['n_drifted']} of {drift['n_tested']} features "
            f"drifted (share {drift['share_drifted']:.0%}, threshold "
            f"{drift['drift_share']:.0%}; {esc(drift['correction'])} correction)</span>"
        )
    if concept is not None:
        verdicts.append(
            pill(not concept["drift_detected"], "no concept drift", "concept drift").html
            + f" <span class='muted'>{esc(concept['method'])} on {concept['rows_fed']} new rows"
            + (
                f", detected at {esc(', '.join(concept['detections'][:3]))}"
                if concept["detections"]
                else ""
            )
            + "</span>"
        )
    findings = summary.get("findings") or []
    verdicts.append(
        pill(not findings, "no quality findings", f"{len(findings)} quality findings").html
    )
    report.html("<p>" + "<br>".join(verdicts) + "</p>")

    if drift is not None:
        rows = sorted(
            drift["rows"],
            key=lambda r: (not r["drifted"], r["role"] != "feature", -(r["distance"] or 0)),
        )
        report.section(
            "Drift per column",
            table(
                [
                    "column",
                    "role",
                    "kind",
                    "method",
                    "statistic",
                    "p (adjusted)",
                    "distance (JS)",
                    "n ref",
                    "n cur",
                    "drifted",
                    "note",
                ],
                [
                    [
                        r["feature"],
                        r["role"],
                        r["kind"],
                        r["method"],
                        r["statistic"],
                        r["adjusted_p_value"],
                        r["distance"],
                        r["n_ref"],
                        r["n_cur"],
                        pill(not r["drifted"], "no", "drifted"),
                        r.get("note") or "",
                    ]
                    for r in rows
                ],
                numeric={4, 5, 6, 7, 8},
            ),
        )
    hist = summary.get("histograms") or {}
    if hist:
        drifted = set(drift["drifted_columns"]) if drift else set()
        order = sorted(hist, key=lambda n: (n not in drifted, n))
        figs = "".join(
            f"<div>{report.figure(_histogram(n, hist[n]), height=260)}</div>" for n in order
        )
        report.section(
            "Reference vs current (share of rows per bin)", f"<div class='grid'>{figs}</div>"
        )

    report.section(
        "Data quality",
        table(
            ["kind", "column", "finding", "value"],
            [
                [f["kind"], f.get("column") or "(window)", f["message"], f.get("value")]
                for f in findings
            ],
        )
        if findings
        else "<p class='muted'>No findings.</p>",
    )

    points: list[Mapping[str, Any]] = []
    seen: set[str] = set()
    for s in [*history, summary]:
        for w in s.get("performance") or []:
            if w["start"] not in seen:
                seen.add(w["start"])
                points.append(w)
    points.sort(key=lambda w: w["start"])
    if points:
        body = report.figure(_performance_figure(points), height=340)
        last = summary.get("performance") or []
        body += table(
            ["window start", "rows", "labelled", "status", *[m["name"] for m in last[0]["metrics"]]]
            if last
            else ["window"],
            [
                [
                    w["start"][:16],
                    w["n_rows"],
                    w["n_labelled"],
                    w["status"],
                    *[m["value"] for m in w["metrics"]],
                ]
                for w in last
            ],
            numeric={1, 2, *range(4, 4 + (len(last[0]["metrics"]) if last else 0))},
        )
        report.section("Performance over time", body)
    else:
        report.section("Performance over time", "<p class='muted'>No labelled rows yet.</p>")
    report.html(json_block(summary))
    return report.write(path)
