"""The monitor's HTML report: drift table, reference vs current per feature, findings,
performance over time. Self-contained (Plotly inlined), opens offline."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retrainer.adapters.report import Pill, esc, figure_html, render_page, write_page
from retrainer.core.drift import DriftReport
from retrainer.core.jsonsafe import json_safe
from retrainer.core.performance import WindowPerformance
from retrainer.engine.monitoring.results import Histogram, MonitorSummary, NumericHistogram

_REF, _CUR = "#7a8aa0", "#d9480f"


def _histogram(name: str, h: Histogram) -> Any:
    import plotly.graph_objects as go

    ref_total = max(sum(h.reference), 1)
    cur_total = max(sum(h.current), 1)
    if isinstance(h, NumericHistogram):
        edges = h.edges
        labels = (
            [f"≤ {edges[0]:.3g}"]
            + [f"{a:.3g} to {b:.3g}" for a, b in itertools.pairwise(edges)]
            + [f"> {edges[-1]:.3g}"]
            if edges
            else ["all"]
        )
    else:
        labels = list(h.labels)
    fig = go.Figure()
    fig.add_bar(
        x=labels, y=[c / ref_total for c in h.reference], name="reference", marker_color=_REF
    )
    fig.add_bar(x=labels, y=[c / cur_total for c in h.current], name="current", marker_color=_CUR)
    fig.update_layout(
        title={"text": esc(name), "font": {"size": 14}},
        barmode="group",
        yaxis={"tickformat": ".0%"},
        xaxis={"showticklabels": h.kind != "numeric"},
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def _performance_figure(points: Sequence[WindowPerformance]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    series: dict[str, tuple[list[str], list[float | None]]] = {}
    for w in points:
        for m in w.metrics:
            xs, ys = series.setdefault(m.name, ([], []))
            xs.append(w.start.isoformat())
            ys.append(m.value)
    for name, (xs, ys) in series.items():
        fig.add_scatter(x=xs, y=ys, mode="lines+markers", name=name, connectgaps=False)
    fig.update_layout(title={"text": "performance per window", "font": {"size": 14}})
    return fig


def _verdicts(summary: MonitorSummary) -> list[dict[str, Any]]:
    """The headline pills: dataset drift, concept drift, quality findings."""
    drift, concept, findings = summary.drift, summary.concept_drift, summary.findings
    out = []
    if drift is not None:
        out.append(
            {
                "pill": Pill(not drift.drifted, "no dataset drift", "dataset drift"),
                "note": (
                    f"{drift.n_drifted} of {drift.n_tested} features drifted (share "
                    f"{drift.share_drifted:.0%}, threshold {drift.drift_share:.0%}; "
                    f"{drift.correction} correction)"
                ),
            }
        )
    if concept is not None:
        detected = (
            f", detected at {', '.join(concept.detections[:3])}" if concept.detections else ""
        )
        out.append(
            {
                "pill": Pill(not concept.drift_detected, "no concept drift", "concept drift"),
                "note": f"{concept.method} on {concept.rows_fed} new rows{detected}",
            }
        )
    out.append(
        {
            "pill": Pill(not findings, "no quality findings", f"{len(findings)} quality findings"),
            "note": None,
        }
    )
    return out


def _drift_rows(drift: DriftReport) -> list[list[Any]]:
    # the figures as the stored record has them: NaN and infinities are None (no figure)
    rows = sorted(
        drift.rows,
        key=lambda r: (not r.drifted, r.role != "feature", -(json_safe(r.distance) or 0)),
    )
    return [
        [
            r.feature,
            r.role,
            r.kind,
            r.method,
            json_safe(r.statistic),
            json_safe(r.adjusted_p_value),
            json_safe(r.distance),
            r.n_ref,
            r.n_cur,
            Pill(not r.drifted, "no", "drifted"),
            r.note,
        ]
        for r in rows
    ]


def _performance(
    summary: MonitorSummary, history: Sequence[MonitorSummary]
) -> dict[str, Any] | None:
    """The performance chart over this and earlier runs, and this run's table."""
    points: list[WindowPerformance] = []
    seen: set[str] = set()
    for s in [*history, summary]:
        for w in s.performance:
            start = w.start.isoformat()
            if start not in seen:
                seen.add(start)
                points.append(w)
    points.sort(key=lambda w: w.start.isoformat())
    if not points:
        return None
    last = summary.performance
    n_metrics = len(last[0].metrics) if last else 0
    return {
        "figure": figure_html(_performance_figure(points), height=340),
        "headers": (
            ["window start", "rows", "labelled", "status", *[m.name for m in last[0].metrics]]
            if last
            else ["window"]
        ),
        "rows": [
            [
                w.start.isoformat()[:16],
                w.n_rows,
                w.n_labelled,
                w.status,
                *[m.value for m in w.metrics],
            ]
            for w in last
        ],
        "numeric": {1, 2, *range(4, 4 + n_metrics)},
    }


def _estimated(summary: MonitorSummary) -> dict[str, Any] | None:
    """The estimate beside the realized metric (see :mod:`.estimate`)."""
    e = summary.estimated
    if e is None:
        return None
    return {
        "note": (
            f"{e.method.upper()} on all {e.rows} rows of the window ({e.unlabelled} not labelled "
            f"yet), fitted on the champion's {e.reference_rows} holdout rows; it assumes no "
            "concept drift" + (f". Warning: {e.warning()}" if e.outside() else "")
        ),
        "rows": [
            [x.metric, x.value, x.low, x.high, e.realized.get(x.metric), x.method]
            for x in e.estimates
        ],
    }


def write_monitor_report(
    summary: MonitorSummary, history: Sequence[MonitorSummary], path: Path
) -> Path:
    """Write the report of one monitor run (``history``: earlier runs' summaries, oldest first)."""
    window, drift, hist = summary.window, summary.drift, summary.histograms
    drifted = set(drift.drifted_columns) if drift else set()
    histograms = [
        figure_html(_histogram(n, hist[n]), height=260)
        for n in sorted(hist, key=lambda n: (n not in drifted, n))
    ]
    page = render_page(
        "monitor_report.html.j2",
        plotly=True,
        title=f"Monitoring: {summary.pipeline} v{summary.version}",
        subtitle=(
            f"window {window.start} .. {window.end} · {summary.rows} rows · "
            f"data from {summary.data}"
        ),
        verdicts=_verdicts(summary),
        drift_rows=_drift_rows(drift) if drift is not None else None,
        histograms=histograms,
        findings=[
            [f.kind, f.column or "(window)", f.message, f.to_dict()["value"]]
            for f in summary.findings
        ],
        performance=_performance(summary, history),
        estimated=_estimated(summary),
        summary=summary.to_json(),
    )
    return write_page(page, path)
