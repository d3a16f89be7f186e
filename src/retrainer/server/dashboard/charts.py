"""The dashboard's charts as Plotly figures (plain dicts: the page's script draws them with
the plotly.js the server serves) and the overview's sparklines as inline SVG.

Each figure comes with the rows of its table fallback, so the data are readable without the
chart (and without colour).

Examples
--------
>>> svg = sparkline([0.70, 0.74, 0.72], label="accuracy")
>>> svg.startswith("<svg") and "polyline" in svg
True
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from retrainer.core.health import format_metric

__all__ = ["drift_figure", "metric_figure", "rollout_figures", "sparkline"]

_MARKER_STYLE = {
    "run.succeeded": ("circle-open", "#6b7785"),
    "blessing.passed": ("triangle-up", "#067647"),
    "blessing.rejected": ("x", "#b42318"),
    "model.promoted": ("star", "#1f5fbf"),
    "model.rolled_back": ("triangle-down", "#c4320a"),
}


_HEAT = [[0.0, "#fffbe6"], [0.35, "#fdbb63"], [0.7, "#e0542c"], [1.0, "#8f0a1f"]]


def sparkline(values: Sequence[float], *, label: str, width: int = 120, height: int = 28) -> str:
    """A small line of ``values`` as inline SVG (its description names the first and the last
    value; the page shows them as text too)."""
    if len(values) < 2:
        return ""
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    step = (width - 4) / (len(values) - 1)
    points = " ".join(
        f"{2 + i * step:.1f},{height - 3 - (v - lo) / span * (height - 6):.1f}"
        for i, v in enumerate(values)
    )
    title = html.escape(f"{label}: {len(values)} windows, from {values[0]:.4g} to {values[-1]:.4g}")
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{title}"><title>{title}</title>'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{points}"/></svg>'
    )


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "font": {"size": 14}},
        "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
        "height": 340,
        "hovermode": "closest",
        "legend": {"orientation": "h", "y": -0.18},
        **extra,
    }


def metric_figure(metric: dict[str, Any]) -> dict[str, Any]:
    """The online metric per window with the events marked and the triggers' thresholds."""
    name = metric["name"]
    pts = [p for p in metric["points"] if p["value"] is not None]
    xs = [p["start"] for p in pts]
    ys = [p["value"] for p in pts]
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": f"{name} per {metric['every']}",
            "x": xs,
            "y": ys,
            "customdata": [[p["labelled"], p["n"]] for p in pts],
            "hovertemplate": "%{x}<br>" + name + " %{y:.4g}<br>%{customdata[0]} labelled of "
            "%{customdata[1]}<extra></extra>",
            "line": {"color": "#1d232a"},
            "marker": {"size": 4},
        }
    ]
    top = max(ys) if ys else 1.0
    bottom = min(ys) if ys else 0.0
    pad = (top - bottom) * 0.08 or 0.01
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for m in metric["markers"]:
        by_kind.setdefault(m["kind"], []).append(m)
    # each kind on its own row above the line, so markers never hide the metric
    for row, (kind, marks) in enumerate(sorted(by_kind.items())):
        symbol, color = _MARKER_STYLE.get(kind, ("circle", "#6b7785"))
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": marks[0]["label"],
                "x": [m["at"] for m in marks],
                "y": [top + pad * (row + 1)] * len(marks),
                "text": [m["message"] for m in marks],
                "hovertemplate": "%{x}<br>%{text}<extra></extra>",
                "marker": {"symbol": symbol, "color": color, "size": 9},
            }
        )
    shapes = []
    for line in metric.get("lines", []):
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": line["value"],
                "y1": line["value"],
                "line": {"color": "#b42318", "dash": "dash", "width": 1.5},
                "label": {"text": line["label"], "font": {"size": 11}},
            }
        )
    return {
        "data": traces,
        "layout": _layout(
            f"{name} over time, from the "
            + ("prediction log" if metric["source"] == "log" else "monitor"),
            shapes=shapes,
            yaxis={"title": {"text": name}},
        ),
    }


def drift_figure(drift: dict[str, Any]) -> dict[str, Any]:
    """Feature x window: colour the Jensen-Shannon distance, text the verdict (✕ drifted)."""
    z, text = [], []
    for row in drift["cells"]:
        z.append([c["distance"] if c else None for c in row])
        text.append(
            [
                ""
                if not c
                else ("✕ " if c["drifted"] else "")
                + (f"{c['distance']:.2f}" if c["distance"] is not None else "n/a")
                for c in row
            ]
        )
    hover = [
        [
            "not tested"
            if not c
            else f"{c['method']} "
            + ("-" if c["statistic"] is None else f"{c['statistic']:.4g}")
            + (f", p {c['p_value']:.3g}" if c.get("p_value") is not None else "")
            + (", drifted" if c["drifted"] else ", no drift")
            + (f" ({c['note']})" if c.get("note") else "")
            for c in row
        ]
        for row in drift["cells"]
    ]
    return {
        "data": [
            {
                "type": "heatmap",
                "x": drift["windows"],
                "y": drift["features"],
                "z": z,
                "text": text,
                "customdata": hover,
                "texttemplate": "%{text}",
                "hovertemplate": "%{y} · window ending %{x}<br>%{customdata}<extra></extra>",
                # pale for no change, dark red for the largest distance (explicit: the named
                # scales of plotly.js run the other way round)
                "colorscale": [
                    [0.0, "#fffbe6"],
                    [0.35, "#fdbb63"],
                    [0.7, "#e0542c"],
                    [1.0, "#8f0a1f"],
                ],
                "zmin": 0,
                "zmax": max([v for r in z for v in r if v is not None] + [0.3]),
                "colorbar": {"title": {"text": "JS distance"}},
            }
        ],
        "layout": _layout(
            "Drift per feature and monitor window (✕ = drifted)",
            height=max(220, 60 + 28 * len(drift["features"])),
            margin={"l": 110, "r": 20, "t": 40, "b": 60},
        ),
    }


def rollout_figures(rollout: dict[str, Any], metric: str | None) -> list[dict[str, Any]]:
    """The test's confidence sequence over time, and each variant's metric."""
    looks = [x for x in rollout["looks"] if x.get("low") is not None]
    if not looks:
        return []
    at = [x["at"] for x in looks]
    diff = [x["difference"] for x in looks]
    label = metric or "metric"
    band = {
        "type": "scatter",
        "x": at + at[::-1],
        "y": [x["high"] for x in looks] + [x["low"] for x in looks][::-1],
        "fill": "toself",
        "fillcolor": "rgba(31,95,191,0.18)",
        "line": {"width": 0},
        "name": "confidence sequence",
        "hoverinfo": "skip",
    }
    cs = {
        "data": [
            band,
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": at,
                "y": diff,
                "name": "challenger - champion",
                "line": {"color": "#1f5fbf"},
            },
        ],
        "layout": _layout(
            f"{label}: challenger - champion, with its confidence sequence",
            shapes=[
                {
                    "type": "line",
                    "xref": "paper",
                    "x0": 0,
                    "x1": 1,
                    "y0": 0,
                    "y1": 0,
                    "line": {"color": "#6b7785", "dash": "dot"},
                }
            ],
        ),
    }
    arms = {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": at,
                "y": [x["mean_champion"] for x in looks],
                "name": "champion",
                "line": {"color": "#1d232a"},
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": at,
                "y": [x["mean_candidate"] for x in looks],
                "name": "challenger",
                "line": {"color": "#1f5fbf", "dash": "dash"},
            },
        ],
        "layout": _layout(f"{label} per variant"),
    }
    return [cs, arms]


def metric_text(value: float | None, name: str) -> str:
    """A metric value as the page writes it."""
    from retrainer.core.metrics import in_points

    return format_metric(value, in_points(name))
