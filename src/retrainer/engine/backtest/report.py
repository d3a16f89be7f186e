"""The backtest's report: which retraining policy to use and why, as one self-contained HTML
page (Plotly inlined, opens offline) plus a PNG of the main chart for READMEs and tickets.

``results`` is the dict the backtest also writes as ``results.json`` (schema version 1).
"""

from __future__ import annotations

import bisect
import io
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retrainer.adapters._atomic import write_file_atomically
from retrainer.adapters.report import Muted, Pill, esc, figure_html, fmt, render_page, write_page
from retrainer.engine.backtest.results import BacktestSummary

HTML_NAME = "report.html"
PNG_NAME = "metric_over_time.png"

ROLLING_BATCHES = 15
"""Batches in the rolling mean of the metric-over-time charts."""

MAX_HIGHLIGHTED = 8
"""Policies drawn in colour in the charts; the rest are hidden (HTML) or grey (PNG)."""

_ACCURACY_LIKE = frozenset(
    {"accuracy", "balanced_accuracy", "roc_auc", "f1", "precision", "recall"}
)
_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#7f7f7f",
)
_GREY = "#b8c0c8"
_RECOMMENDED = "#d9480f"
_PNG_DPI = 110
_PNG_SIZE = (1200, 600)


# ---------------------------------------------------------------- numbers and formatting


def _num(value: Any) -> float | None:
    """``value`` as a finite float, or None for missing, NaN, infinite or non-numeric."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _is_fraction(metric: str) -> bool:
    return metric in _ACCURACY_LIKE


def _fmt_metric(value: Any, metric: str) -> str:
    """A metric value for people: ``77.95%`` for accuracy-like fractions, raw otherwise."""
    number = _num(value)
    if number is None:
        return "-"
    if _is_fraction(metric) and 0.0 <= number <= 1.0:
        return f"{number:.2%}"
    return fmt(number)


def _fmt_diff(value: Any, metric: str, relative_to: Any = None) -> str:
    """A difference of two metric values: percentage points for rates in [0, 1]; a loss or
    error in its own units, and relative to ``relative_to`` when given (``-16.69 (-12.3%)``).

    Examples
    --------
    >>> _fmt_diff(0.0123, "accuracy"), _fmt_diff(-16.69, "mae", 135.2)
    ('+1.23 points', '-16.69 (-12.3%)')
    """
    number = _num(value)
    if number is None:
        return "-"
    if _is_fraction(metric):
        return f"{number * 100:+.2f} points"
    base = _num(relative_to)
    rel = f" ({number / abs(base):+.1%})" if base else ""
    return f"{number:+.4g}{rel}"


def _fmt_points(key: str) -> str:
    number = _num(key)
    return key if number is None else f"{number:g}"


def _metric_of(part: Any, metric: str) -> float | None:
    return _num(part.get(metric)) if isinstance(part, Mapping) else None


# ---------------------------------------------------------------- time axis


def _when(value: Any) -> datetime | None:
    """An ISO time as a naive UTC datetime (what both Plotly and matplotlib draw as-is)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _rolling(
    values: Sequence[Any], weights: Sequence[Any] | None, window: int = ROLLING_BATCHES
) -> list[float | None]:
    """Trailing mean of ``values`` over ``window`` entries, weighted by ``weights`` (batch sizes).

    Missing values (None, NaN) and non-positive weights are left out; a window with nothing
    left is None.

    Examples
    --------
    >>> _rolling([1.0, 0.0, None], [3, 1, 5], window=2)
    [1.0, 0.75, 0.0]
    """
    out: list[float | None] = []
    for i in range(len(values)):
        total = weight_sum = 0.0
        for j in range(max(0, i - window + 1), i + 1):
            value = _num(values[j])
            weight = 1.0 if weights is None else _num(weights[j] if j < len(weights) else None)
            if value is None or weight is None or weight <= 0:
                continue
            total += value * weight
            weight_sum += weight
        out.append(total / weight_sum if weight_sum > 0 else None)
    return out


class _Line:
    """One policy's metric-over-time line, ready to draw."""

    def __init__(self, policy: Mapping[str, Any], metric: str, use_dates: bool) -> None:
        series = policy.get("series") or {}
        ends = list(series.get("end") or [])
        values = list(series.get(metric) or [])
        length = min(len(ends), len(values))
        weights = series.get("n")
        self.name: str = str(policy.get("name", ""))
        self.y = _rolling(values[:length], list(weights) if weights is not None else None)
        moments = [_when(e) for e in ends[:length]]
        self.x: list[Any] = list(moments) if use_dates else list(range(length))
        # retrain markers: at the first batch ending at or after the retrain
        self.marker_x: list[Any] = []
        self.marker_y: list[float] = []
        self.marker_at: list[str] = []
        if use_dates and length:
            keys = [m for m in moments if m is not None]
            for stamp in policy.get("retrained_at") or []:
                moment = _when(stamp)
                if moment is None:
                    continue
                i = bisect.bisect_left(keys, moment)
                value = self.y[i] if i < length else None
                if value is not None:
                    self.marker_x.append(self.x[i])
                    self.marker_y.append(value)
                    self.marker_at.append(str(stamp))


def _all_dates(policies: Sequence[Mapping[str, Any]]) -> bool:
    """True when every batch end parses as a time (else the charts use the batch index)."""
    for p in policies:
        ends = (p.get("series") or {}).get("end") or []
        if any(_when(e) is None for e in ends):
            return False
    return True


def _plotly_x(values: Sequence[Any]) -> list[Any]:
    return [v.isoformat(sep=" ") if isinstance(v, datetime) else v for v in values]


# ---------------------------------------------------------------- which policies


class _Context:
    """What every part of the report needs: the primary metric, the ranking, the roles."""

    def __init__(self, results: Mapping[str, Any]) -> None:
        self.results = results
        self.metric: str = str(results.get("metric") or "metric")
        self.greater: bool = bool(results.get("greater_is_better", True))
        self.policies: list[Mapping[str, Any]] = list(results.get("policies") or [])
        rec = results.get("recommended")
        self.recommended: Mapping[str, Any] | None = rec if isinstance(rec, Mapping) else None
        self.recommended_name: str | None = (
            str(self.recommended.get("name")) if self.recommended else None
        )
        oracle = results.get("oracle")
        self.oracle_name: str | None = str(oracle) if oracle is not None else None
        self.ranked = sorted(self.policies, key=self._rank_key)
        self.never = next((p for p in self.policies if _is_never(p)), None)
        self.colors = {
            str(p.get("name")): _PALETTE[i % len(_PALETTE)] for i, p in enumerate(self.ranked)
        }
        self.highlighted = self._highlighted()

    def held_out(self, policy: Mapping[str, Any] | None) -> float | None:
        return _metric_of(policy.get("held_out"), self.metric) if policy else None

    def policy(self, name: str | None) -> Mapping[str, Any] | None:
        return next((p for p in self.policies if str(p.get("name")) == name), None)

    def _rank_key(self, policy: Mapping[str, Any]) -> tuple[bool, float, str]:
        value = self.held_out(policy)
        if value is None:
            return (True, 0.0, str(policy.get("name")))
        return (False, -value if self.greater else value, str(policy.get("name")))

    def _highlighted(self) -> set[str]:
        """The recommended, the oracle, "never retrain", then the best held-out, up to a cap."""
        names = [self.recommended_name, self.oracle_name]
        if self.never is not None:
            names.append(str(self.never.get("name")))
        names += [str(p.get("name")) for p in self.ranked]
        chosen: list[str] = []
        known = {str(p.get("name")) for p in self.policies}
        for name in names:
            if name is not None and name in known and name not in chosen:
                chosen.append(name)
        return set(chosen[:MAX_HIGHLIGHTED])

    def role(self, name: str) -> str:
        if name == self.recommended_name:
            return "recommended"
        if name == self.oracle_name:
            return "oracle"
        return ""


def _is_never(policy: Mapping[str, Any]) -> bool:
    """The "never retrain" baseline: so named, or a policy without any trigger."""
    if str(policy.get("name", "")).strip().lower().startswith("never"):
        return True
    params = policy.get("params")
    return isinstance(params, Mapping) and params.get("triggers") == []


# ---------------------------------------------------------------- HTML sections


def _versus(
    ctx: _Context, mine: float | None, label: str, other: float | None, name: str | None = None
) -> dict[str, Any] | None:
    """One "compared with" line of the headline: ``label`` (and ``name``, in bold)."""
    if mine is None or other is None:
        return None
    diff = mine - other
    better = diff > 0 if ctx.greater else diff < 0
    return {
        "label": label,
        "name": name,
        "other": _fmt_metric(other, ctx.metric),
        "diff": _fmt_diff(diff, ctx.metric, other),
        "verdict": "same" if diff == 0 else ("better" if better else "worse"),
    }


def _headline(ctx: _Context) -> dict[str, Any] | None:
    """What the Recommendation section says (the template lays it out)."""
    rec = ctx.recommended
    if rec is None:
        return None
    name = ctx.recommended_name or ""
    policy = ctx.policy(name)
    mine = _metric_of(rec.get("held_out"), ctx.metric)
    if mine is None:
        mine = ctx.held_out(policy)
    versus: list[dict[str, Any]] = []
    oracle_too = False
    if ctx.oracle_name is not None:
        if ctx.oracle_name == name:
            oracle_too = True
        else:
            line = _versus(
                ctx,
                mine,
                "always-retrain reference",
                ctx.held_out(ctx.policy(ctx.oracle_name)),
                ctx.oracle_name,
            )
            if line:
                versus.append(line)
    if ctx.never is not None and str(ctx.never.get("name")) != name:
        never_name = str(ctx.never.get("name"))
        shown = never_name if never_name.strip().lower() != "never retrain" else None
        line = _versus(ctx, mine, "never retrain", ctx.held_out(ctx.never), shown)
        if line:
            line["in_parentheses"] = True
            versus.append(line)
    cost = []
    if rec.get("retrains_held_out") is not None:
        cost.append(f"{rec['retrains_held_out']} retrains")
    if _num(rec.get("train_cpu_s_held_out")) is not None:
        cost.append(f"{fmt(_num(rec['train_cpu_s_held_out']), 3)} s of training CPU")
    return {
        "name": name,
        "reason": rec.get("reason") or "",
        "rule": rec.get("rule"),
        "held_out": _fmt_metric(mine, ctx.metric),
        "selection": _fmt_metric(_metric_of(rec.get("selection"), ctx.metric), ctx.metric),
        "oracle_too": oracle_too,
        "versus": versus,
        "cost": cost,
        "snippet": rec.get("snippet"),
        "yaml_path": rec.get("yaml_path"),
        "noise": rec.get("noise"),
        "within_noise": rec.get("within_noise"),
        "bound": _bound_sentence(ctx),
        "definition": (
            f"Every {ctx.metric} here is pooled over all the rows of a part (not a mean of "
            "batches); the choice reads the same pooled figure on each of "
            f"{ctx.results.get('folds') or 1} consecutive part(s) of the selection period, and "
            "the intervals resample whole batches and recompute it."
        ),
    }


def _bound_sentence(ctx: _Context) -> str | None:
    """The always-retrain reference, the hindsight bound and the recommended policy's regret."""
    ref, bound = ctx.results.get("reference"), ctx.results.get("hindsight")
    if not isinstance(ref, Mapping):
        return None
    unit = " points" if ctx.results.get("units", "points") == "points" else "%"
    text = (
        f"Always-retrain reference (the best window retrained every batch): {ref.get('name')} "
        f"at {_fmt_metric(ref.get('held_out'), ctx.metric)} held out."
    )
    if isinstance(bound, Mapping):
        share = _num(bound.get("max_cpu_share")) or 0.2
        text += (
            f" Hindsight bound (the best held-out policy at <= {share:.0%} of its training CPU, "
            f"picked on the held-out part, which no honest selection beats): {bound.get('name')} "
            f"at {_fmt_metric(bound.get('held_out'), ctx.metric)}"
        )
        gap = _num(bound.get("gap"))
        text += f", {gap:+.2f}{unit} against the reference." if gap is not None else "."
    regret = _num((ctx.recommended or {}).get("regret"))
    if regret is not None:
        text += f" The recommended policy's regret against the bound: {regret:+.2f}{unit}."
    return text


def _cost_model_set(results: Mapping[str, Any]) -> bool:
    model = results.get("cost_model")
    return isinstance(model, Mapping) and any(_num(v) for v in model.values())


def _summary_table(ctx: _Context) -> dict[str, Any]:
    with_cost = _cost_model_set(ctx.results)
    m = ctx.metric
    headers = [
        "policy",
        f"held-out {m}",
        f"selection {m}",
        f"whole-period {m}",
        "retrains (held out)",
        "retrains (all)",
        "train CPU s (held out)",
        "train CPU s (all)",
        *(["cost"] if with_cost else []),
        "Pareto",
        "recommended",
    ]
    rows = []
    for p in ctx.ranked:
        name = str(p.get("name"))
        role = ctx.role(name)
        muted = (["oracle"] if role == "oracle" else []) + (
            [str(p["excluded"])] if p.get("excluded") else []
        )
        rows.append(
            [
                name,
                _fmt_metric(ctx.held_out(p), m),
                _fmt_metric(_metric_of(p.get("selection"), m), m),
                _fmt_metric(_metric_of(p.get("metric"), m), m),
                p.get("retrains_held_out"),
                p.get("retrains"),
                _num(p.get("train_cpu_s_held_out")),
                _num(p.get("train_cpu_s")),
                *([_num(p.get("cost"))] if with_cost else []),
                Pill(True, "Pareto") if p.get("pareto") else "",
                Pill(True, "recommended") if role == "recommended" else Muted(tuple(muted)),
            ]
        )
    return {
        "headers": headers,
        "rows": rows,
        "numeric": set(range(1, 8 + (1 if with_cost else 0))),
        "order": "higher" if ctx.greater else "lower",
    }


def _select_until(results: Mapping[str, Any], use_dates: bool) -> datetime | None:
    dataset = results.get("dataset") or {}
    return _when(dataset.get("select_until")) if use_dates else None


def _metric_over_time_figure(ctx: _Context, lines: Sequence[_Line], split: datetime | None) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    hover_y = "%{y:.2%}" if _is_fraction(ctx.metric) else "%{y:.4g}"
    for line in lines:
        role = ctx.role(line.name)
        label = esc(line.name) + (f" ({role})" if role else "")
        color = ctx.colors.get(line.name, _GREY)
        visible: bool | str = True if line.name in ctx.highlighted else "legendonly"
        width = 3.0 if role == "recommended" else (2.4 if role == "oracle" else 1.4)
        fig.add_scatter(
            x=_plotly_x(line.x),
            y=line.y,
            mode="lines",
            name=label,
            legendgroup=label,
            visible=visible,
            line={"color": color, "width": width},
            connectgaps=False,
            hovertemplate=f"%{{x}}<br>{esc(ctx.metric)}: {hover_y}<extra>{label}</extra>",
        )
        if line.marker_x:
            fig.add_scatter(
                x=_plotly_x(line.marker_x),
                y=line.marker_y,
                mode="markers",
                name=f"{label}: retrains",
                legendgroup=label,
                showlegend=False,
                visible=visible,
                marker={"color": color, "size": 5, "symbol": "circle"},
                hovertext=[f"retrained at {esc(at)}" for at in line.marker_at],
                hovertemplate=f"%{{hovertext}}<extra>{label}</extra>",
            )
    if split is not None:
        x = split.isoformat(sep=" ")
        fig.add_shape(
            type="line",
            x0=x,
            x1=x,
            xref="x",
            y0=0,
            y1=1,
            yref="paper",
            line={"dash": "dash", "color": "#5b6773", "width": 1.2},
        )
        fig.add_annotation(
            x=x,
            xref="x",
            y=1,
            yref="paper",
            text="selection | held out",
            showarrow=False,
            yanchor="bottom",
            font={"size": 11, "color": "#5b6773"},
        )
    fig.update_layout(
        title={
            "text": f"{esc(ctx.metric)}, rolling mean over {ROLLING_BATCHES} batches "
            "(dots: retrains)",
            "font": {"size": 14},
        },
        yaxis={"tickformat": ".1%"} if _is_fraction(ctx.metric) else {},
        hovermode="closest",
    )
    return fig


def _cost_figure(ctx: _Context) -> tuple[Any, int] | None:
    """The cost-vs-metric figure, and how many policies it leaves out (no score or cost)."""
    import plotly.graph_objects as go

    cpu = [_num(p.get("train_cpu_s_held_out")) for p in ctx.policies]
    if any(c for c in cpu):
        key, x_title = "train_cpu_s_held_out", "train CPU s (held-out part)"
    else:
        key, x_title = "retrains_held_out", "retrains (held-out part)"
    points = []
    for p in ctx.policies:
        x, y = _num(p.get(key)), ctx.held_out(p)
        if x is not None and y is not None:
            points.append((x, y, str(p.get("name")), bool(p.get("pareto"))))
    if not points:
        return None
    missing = len(ctx.policies) - len(points)
    hover_y = "%{y:.2%}" if _is_fraction(ctx.metric) else "%{y:.4g}"
    template = f"%{{hovertext}}<br>{x_title}: %{{x:.4g}}<br>{esc(ctx.metric)}: {hover_y}"
    fig = go.Figure()
    others = [pt for pt in points if not pt[3]]
    front = sorted((pt for pt in points if pt[3]), key=lambda pt: (pt[0], pt[1]))
    if others:
        fig.add_scatter(
            x=[pt[0] for pt in others],
            y=[pt[1] for pt in others],
            mode="markers",
            name="other policies",
            marker={"color": _GREY, "size": 9},
            hovertext=[esc(pt[2]) for pt in others],
            hovertemplate=template + "<extra></extra>",
        )
    if front:
        fig.add_scatter(
            x=[pt[0] for pt in front],
            y=[pt[1] for pt in front],
            mode="lines+markers",
            name="Pareto front",
            line={"color": "#1f77b4", "width": 1.5},
            marker={"color": "#1f77b4", "size": 9},
            hovertext=[esc(pt[2]) for pt in front],
            hovertemplate=template + "<extra></extra>",
        )
    rec = [pt for pt in points if pt[2] == ctx.recommended_name]
    if rec:
        fig.add_scatter(
            x=[rec[0][0]],
            y=[rec[0][1]],
            mode="markers",
            name="recommended",
            marker={
                "color": _RECOMMENDED,
                "size": 17,
                "symbol": "star",
                "line": {"color": "#1d232a", "width": 1},
            },
            hovertext=[esc(rec[0][2])],
            hovertemplate=template + "<extra>recommended</extra>",
        )
    fig.update_layout(
        title={"text": f"held-out {esc(ctx.metric)} vs cost", "font": {"size": 14}},
        xaxis={"title": {"text": x_title}},
        yaxis={
            "title": {"text": f"held-out {esc(ctx.metric)}"},
            **({"tickformat": ".1%"} if _is_fraction(ctx.metric) else {}),
        },
        hovermode="closest",
    )
    return fig, missing


def _degradation_sentence(deg: Mapping[str, Any], unit: str) -> str:
    """The sentence "after N batches a frozen model has lost X points" from ``age_at_loss``."""
    loss = deg.get("age_at_loss") or {}
    ages = [a for a in (_num(x) for x in deg.get("ages") or []) if a is not None]
    parts = []
    for key in sorted(loss, key=lambda k: _num(k) or 0.0):
        points = _fmt_points(str(key))
        noun = "point" if _num(key) == 1.0 else "points"
        age = loss[key]
        if age is None:
            within = f" within {max(ages):g} batches" if ages else ""
            parts.append(f"it has not lost {points} {noun}{within}")
        else:
            parts.append(f"after {age} batches a frozen model has lost {points} {noun}")
    if not parts:
        return ""
    sentence = "; ".join(parts)
    return f"{sentence[0].upper()}{sentence[1:]}{unit}."


def _degradation_section(ctx: _Context, deg: Mapping[str, Any]) -> dict[str, Any]:
    import plotly.graph_objects as go

    ages = list(deg.get("ages") or [])
    mean = [_num(v) for v in deg.get("mean") or []]
    low = [_num(v) for v in deg.get("low") or []]
    high = [_num(v) for v in deg.get("high") or []]
    n_models = list(deg.get("n_models") or [None] * len(ages))
    fig = go.Figure()
    if len(low) == len(ages) and len(high) == len(ages):
        fig.add_scatter(
            x=ages, y=low, mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"
        )
        fig.add_scatter(
            x=ages,
            y=high,
            mode="lines",
            line={"width": 0},
            fill="tonexty",
            fillcolor="rgba(31,119,180,0.18)",
            name="interval",
            hoverinfo="skip",
        )
    hover_y = "%{y:.2%}" if _is_fraction(ctx.metric) else "%{y:.4g}"
    fig.add_scatter(
        x=ages,
        y=mean,
        mode="lines+markers",
        name="frozen model",
        line={"color": "#1f77b4", "width": 2},
        marker={"size": 4},
        customdata=n_models,
        hovertemplate=f"age %{{x}} batches<br>{esc(ctx.metric)}: {hover_y}"
        "<br>models: %{customdata}<extra></extra>",
    )
    control = _num(deg.get("control"))
    if control is not None:
        fig.add_hline(
            y=control,
            line={"dash": "dot", "color": _RECOMMENDED, "width": 1.5},
            annotation_text="always retrained",
            annotation_position="top right",
        )
    fig.update_layout(
        title={"text": f"{esc(ctx.metric)} of a frozen model by age", "font": {"size": 14}},
        xaxis={"title": {"text": "age (batches since training)"}},
        yaxis={"tickformat": ".1%"} if _is_fraction(ctx.metric) else {},
    )
    window = deg.get("window") or {}
    kind = window.get("kind") if isinstance(window, Mapping) else None
    duration = window.get("duration") if isinstance(window, Mapping) else None
    how = []
    if deg.get("every") is not None:
        how.append(f"trained every {deg['every']} batches")
    if kind:
        how.append(f"on a{'n' if str(kind)[:1] in 'aeiou' else ''} {kind} window")
        if duration:
            how[-1] += f" of {duration}"
    batch = (ctx.results.get("dataset") or {}).get("batch")
    unit = f" (a batch is {batch})" if batch else ""
    return {
        "sentence": _degradation_sentence(deg, unit),
        "figure": figure_html(fig, height=360),
        "how": ", ".join(how) + ", " if how else "",
    }


def _comparisons_table(ctx: _Context) -> dict[str, Any]:
    comparisons = ctx.results.get("comparisons") or []
    rows = [
        [
            c.get("a"),
            c.get("b"),
            c.get("part"),
            _fmt_diff(c.get("mean"), ctx.metric, ctx.held_out(ctx.policy(str(c.get("b"))))),
            _fmt_diff(c.get("low"), ctx.metric),
            _fmt_diff(c.get("high"), ctx.metric),
            "yes" if c.get("significant") else "no",
            c.get("text") or "",
        ]
        for c in comparisons
    ]
    return {
        "headers": ["A", "B", "part", "A - B", "low", "high", "significant", "in words"],
        "rows": rows,
        "numeric": {3, 4, 5},
    }


def _subtitle(results: Mapping[str, Any]) -> str:
    d = results.get("dataset") or {}
    bits = []
    if d.get("pipeline"):
        bits.append(f"pipeline {d['pipeline']}")
    if d.get("source"):
        bits.append(str(d["source"]))
    if d.get("rows") is not None:
        bits.append(f"{d['rows']} rows")
    if d.get("start") and d.get("end"):
        bits.append(f"{d['start']} .. {d['end']}")
    if d.get("batches") is not None:
        bits.append(f"{d['batches']} batches of {d.get('batch', '?')}")
    if d.get("select_until"):
        bits.append(f"selection until {d['select_until']}")
    if d.get("label_delay") not in (None, "", "0"):
        bits.append(f"label delay {d['label_delay']}")
    if _num(results.get("seconds")) is not None:
        bits.append(f"ran in {float(results['seconds']):.1f} s")
    return " · ".join(bits)


def _write_html(results: Mapping[str, Any], ctx: _Context, path: Path) -> Path:
    use_dates = _all_dates(ctx.policies)
    lines = [_Line(p, ctx.metric, use_dates) for p in ctx.ranked]
    over_time = figure_html(
        _metric_over_time_figure(ctx, lines, _select_until(results, use_dates)), height=440
    )
    cost = _cost_figure(ctx)
    deg = results.get("degradation")
    page = render_page(
        "backtest_report.html.j2",
        plotly=True,
        title=str(results.get("title") or "Backtest"),
        subtitle=_subtitle(results),
        metric=ctx.metric,
        headline=_headline(ctx),
        summary=_summary_table(ctx),
        over_time=over_time,
        hidden=len(ctx.policies) - len(ctx.highlighted),
        cost=None
        if cost is None
        else {"figure": figure_html(cost[0], height=400), "missing": cost[1]},
        degradation=_degradation_section(ctx, deg) if isinstance(deg, Mapping) else None,
        comparisons=_comparisons_table(ctx),
        units=(
            "points: 0.01 of the rate"
            if results.get("units", "points") == "points" and _is_fraction(ctx.metric)
            else "in its own units; relative to B in parentheses"
        ),
        raw={
            "dataset": results.get("dataset"),
            "cost_model": results.get("cost_model"),
            "metric": results.get("metric"),
            "greater_is_better": results.get("greater_is_better"),
            "metrics": results.get("metrics"),
        },
    )
    return write_page(page, path)


# ---------------------------------------------------------------- PNG


def _mpl_text(text: str) -> str:
    """Plain text for matplotlib: ``$`` would start mathtext, a leading ``_`` hides a label."""
    text = text.replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def _write_png(results: Mapping[str, Any], ctx: _Context, path: Path) -> Path:
    import warnings

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    use_dates = _all_dates(ctx.policies)
    lines = [_Line(p, ctx.metric, use_dates) for p in ctx.ranked]
    width, height = _PNG_SIZE
    # A bare Figure on an Agg canvas: no pyplot, so no global backend switch and no figure
    # kept alive in pyplot's registry.
    fig = Figure(figsize=(width / _PNG_DPI, height / _PNG_DPI), dpi=_PNG_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.085, 0.1, 0.6, 0.8))
    grey_labelled = False
    # grey lines first, then the highlighted ones, the recommended last (on top)
    order = sorted(
        lines,
        key=lambda ln: (ln.name in ctx.highlighted, ctx.role(ln.name) == "recommended"),
    )
    for line in order:
        ys = [math.nan if v is None else v for v in line.y]
        role = ctx.role(line.name)
        if line.name in ctx.highlighted:
            ax.plot(
                line.x,
                ys,
                color=ctx.colors.get(line.name, _GREY),
                linewidth=2.8 if role == "recommended" else (2.2 if role == "oracle" else 1.1),
                alpha=1.0 if role else 0.85,
                label=_mpl_text(line.name[:48] + (f" ({role})" if role else "")),
                zorder=3 if role else 2,
            )
        else:
            label = None if grey_labelled else "other policies"
            grey_labelled = True
            ax.plot(line.x, ys, color=_GREY, linewidth=0.8, alpha=0.7, label=label, zorder=1)
    split = _select_until(results, use_dates)
    if split is not None:
        split_x = float(date2num(split))
        ax.axvline(split_x, color="#5b6773", linestyle="--", linewidth=1.0, zorder=0)
        ax.text(
            split_x,
            1.005,
            "selection | held out",
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=8,
            color="#5b6773",
        )
    if use_dates:
        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    else:
        ax.set_xlabel("batch")
    if _is_fraction(ctx.metric):
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=1))
    ax.set_ylabel(_mpl_text(f"{ctx.metric} (rolling mean, {ROLLING_BATCHES} batches)"))
    ax.grid(True, color="#eef1f4", linewidth=0.8)
    ax.set_title(
        _mpl_text(str(results.get("title") or "Backtest")), loc="left", fontsize=11, pad=14
    )
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(
            handles,
            labels,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            fontsize=8,
            frameon=False,
            ncol=1 if len(handles) <= 24 else 2,
        )
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # a policy name in a script the bundled font lacks is drawn as boxes, not an error
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        fig.savefig(buffer, format="png", dpi=_PNG_DPI)
    fig.clear()
    target = path.resolve()
    write_file_atomically(target, buffer.getvalue())
    return target


# ---------------------------------------------------------------- entry point


def write_backtest_report(
    results: BacktestSummary | Mapping[str, Any], out_dir: Path
) -> tuple[Path, Path]:
    """Write ``out_dir/report.html`` and ``out_dir/metric_over_time.png``; return their paths.

    ``results`` is the backtest's summary, or the content of a ``results.json`` (the report
    draws that document, so it also draws one read back from disk). Both files are written
    atomically; ``out_dir`` is created if needed.
    """
    if isinstance(results, BacktestSummary):
        results = results.to_json()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = _Context(results)
    html_path = _write_html(results, ctx, out_dir / HTML_NAME)
    png_path = _write_png(results, ctx, out_dir / PNG_NAME)
    return html_path, png_path
