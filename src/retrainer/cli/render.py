"""Everything the CLI prints: Rich tables, blessing evidence, events, progress, JSON.

The commands parse and call the engine; these functions turn its results into text.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from retrainer.core.jsonsafe import json_safe

if TYPE_CHECKING:
    from retrainer.engine.backtest import BacktestSummary
    from retrainer.engine.control.daemon import DaemonStart, DaemonSummary
    from retrainer.engine.gc import GcReport
    from retrainer.engine.monitoring.monitor import MonitorResult
    from retrainer.engine.runs.registry import PipelineStatus
    from retrainer.engine.runs.run import RunResult
    from retrainer.engine.tokens import Token


def _console(stderr: bool = False) -> Console:
    # Rich wraps at 80 columns when not on a terminal; logs and pipes read better wider
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120
    return Console(stderr=stderr, highlight=False, width=width)


out = _console()
err = _console(stderr=True)


def print_json(data: Any) -> None:
    text = json.dumps(json_safe(data), indent=2, default=str, allow_nan=False)
    sys.stdout.write(text + "\n")


def fmt(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if value != value:
        return "NaN"
    return f"{value:.{digits}f}"


def print_evidence(blessing: dict[str, Any], title: str = "blessing evidence") -> None:
    """The evidence table, then its notes as footnotes (they are too long for a column)."""
    rows = blessing["evidence"]
    has_slice = any(r.get("slice") for r in rows)
    table = Table(title=title, title_justify="left")
    cols = ["rule", "metric", *(["slice"] if has_slice else [])]
    cols += ["candidate", "champion", "delta", "threshold", "pass"]
    for col in cols:
        table.add_column(
            col, justify="right" if col in ("candidate", "champion", "delta") else "left"
        )
    notes = []
    for row in rows:
        mark = ""
        if row.get("note"):
            notes.append(row["note"])
            mark = f" [dim]({len(notes)})[/dim]"
        table.add_row(
            row["rule"] + mark,
            row["metric"],
            *([row.get("slice") or ""] if has_slice else []),
            fmt(row["candidate"]),
            fmt(row["champion"]),
            "-" if row["delta"] is None else f"{row['delta']:+.4f}",
            row["threshold"],
            "[green]yes[/green]" if row["passed"] else "[red]NO[/red]",
        )
    out.print(table)
    for i, note in enumerate(notes, 1):
        out.print(f"  [dim]({i})[/dim] {escape(note)}", soft_wrap=True)


def render_run(result: RunResult) -> None:
    from retrainer.engine.runs.registry import version_view

    run = result.run
    if not result.ok:
        err.print(
            f"[red]run {run.id} of {run.pipeline} failed:[/red] {escape(run.error or '')}",
            soft_wrap=True,
        )
        return
    mv = result.version
    assert mv is not None  # a succeeded run registered a version
    view = version_view(mv, [])
    snap = view["lineage"]["snapshot"]
    waiting = (
        f"; {result.unlabelled_rows} rows without a label yet left out"
        if result.unlabelled_rows
        else ""
    )
    steps = sum(v for k, v in run.timings.items() if k != "train_cpu")  # wall seconds
    out.print(
        f"run {run.id} of [bold]{run.pipeline}[/bold]: trained v{mv.version} on "
        f"{snap['rows']} rows ({snap['min_time'][:16]} .. {snap['max_time'][:16]}{waiting}) "
        f"in {steps:.2f}s"
    )
    print_evidence(view["blessing"])
    if result.promoted:
        was = f" (was v{result.previous_champion})" if result.previous_champion else ""
        out.print(f"[green]v{mv.version} blessed and promoted to champion{was}[/green]")
    elif mv.blessing.passed:
        out.print(f"[yellow]v{mv.version} blessed but not promoted (the champion changed)[/yellow]")
    else:
        champ = result.previous_champion
        out.print(
            f"[yellow]v{mv.version} not blessed: {escape(mv.blessing.reason)}; "
            f"champion stays {'v' + str(champ) if champ else 'unset'}[/yellow]"
        )


def render_status(data: list[PipelineStatus]) -> None:
    """The pipelines table, then each pipeline's last trigger evaluations."""
    table = Table(title="pipelines", title_justify="left")
    for col in (
        "pipeline",
        "champion",
        "metrics",
        "versions",
        "last run",
        "in flight",
        "next fire",
    ):
        table.add_column(col)
    for p in data:
        last = p.last_run
        last_text = (
            f"#{last.id} {last.status}"
            + (f" ({last.outcome})" if last.outcome else "")
            + f" {last.created_at.isoformat()[:16]}"
            if last
            else "-"
        )
        table.add_row(
            p.pipeline,
            f"v{p.champion}" if p.champion else "-",
            ", ".join(f"{k}={fmt(v)}" for k, v in p.champion_metrics.items()) or "-",
            str(p.versions),
            last_text,
            f"{len(p.running)} running, {len(p.queued)} queued",
            (p.next_fire or "-")[:16],
        )
    out.print(table)
    for p in data:
        if p.rollout is not None:
            out.print(escape(rollout_line(p.pipeline, p.rollout)), soft_wrap=True)
        for e in reversed(p.last_triggers):
            out.print(f"{e.at.isoformat()[:16]} {escape(e.message)}", soft_wrap=True)


def rollout_line(pipeline: str, state: Mapping[str, Any]) -> str:
    """One line on a pipeline's last rollout: strategy, versions, status, share, test.

    >>> line = rollout_line("elec2", {"strategy": "ab", "candidate": 2, "champion": 1,
    ...     "status": "running", "share": 0.5, "reason": "v2 blessed",
    ...     "evidence": {"test": {"n_champion": 310, "n_candidate": 305, "difference": 0.021,
    ...                           "low": -0.01, "high": 0.05, "p_value": 0.31}}})
    >>> line.split("; ")
    ['elec2: ab rollout of v2 against v1: running, 50% of traffic', '305 vs 310 labelled, \
difference +0.021 [-0.01, 0.05], p=0.31']
    """
    head = (
        f"{pipeline}: {state.get('strategy')} rollout of v{state.get('candidate')} against "
        f"v{state.get('champion')}: {state.get('status')}"
    )
    if state.get("status") == "running":
        head += f", {float(state.get('share') or 0):.0%} of traffic"
        test = (state.get("evidence") or {}).get("test")
        if test and test.get("difference") is not None:
            low, high = test.get("low"), test.get("high")
            cs = f" [{low:.4g}, {high:.4g}]" if low is not None and high is not None else ""
            head += (
                f"; {test['n_candidate']} vs {test['n_champion']} labelled, difference "
                f"{test['difference']:+.3g}{cs}, p={test['p_value']:.2g}"
            )
        return head
    return f"{head} ({state.get('reason')})"


def render_models(data: list[dict[str, Any]], hidden: int = 0) -> None:
    """The versions table; ``hidden`` older versions left out are counted below it."""
    metric_names = list(dict.fromkeys(m for v in data for m in v["metrics"]))
    table = Table(title="model versions", title_justify="left")
    for col in ("version", "aliases", "created", *metric_names, "rows", "data", "blessed"):
        table.add_column(col, justify="right" if col in metric_names else "left")
    for v in data:
        snap = v["lineage"]["snapshot"]
        table.add_row(
            f"v{v['version']}",
            ", ".join(v["aliases"]) or "",
            v["created_at"][:16].replace("T", " "),
            *(fmt(v["metrics"].get(m)) for m in metric_names),
            str(snap["rows"]),
            f"{(snap['min_time'] or '')[:10]} .. {(snap['max_time'] or '')[:10]}",
            "[green]yes[/green]" if v["blessing"]["passed"] else "[red]no[/red]",
        )
    out.print(table)
    if hidden:
        older = f"{hidden} older version{'s' if hidden > 1 else ''}"
        out.print(f"[dim]... and {older}: --limit 0 shows them all[/dim]")


def render_version(v: dict[str, Any]) -> None:
    lin = v["lineage"]
    snap, code, art = lin["snapshot"], lin["code"], lin["artifact"]
    aliases = escape(f" [{', '.join(v['aliases'])}]") if v["aliases"] else ""
    out.print(f"[bold]{v['pipeline']} v{v['version']}{aliases}[/bold]  created {v['created_at']}")
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="dim")
    table.add_column()
    table.add_row("metrics", ", ".join(f"{k}={fmt(x)}" for k, x in v["metrics"].items()))
    table.add_row("run", str(lin["run_id"]))
    table.add_row("data", escape(snap["source"]))
    table.add_row("window", f"{snap['window_start'] or '(start)'} .. {snap['window_end']}")
    table.add_row("rows", f"{snap['rows']} ({snap['min_time']} .. {snap['max_time']})")
    table.add_row("fingerprint", snap["fingerprint"])
    dirty = " (dirty)" if code["git_dirty"] else ""
    table.add_row("git", f"{code['git_commit'] or '(not in a git repository)'}{dirty}")
    table.add_row("pipeline hash", code["pipeline_hash"])
    table.add_row("artifact", f"sha256:{art['sha256']} ({art['size']} bytes, {art['format']})")
    env = dict(lin["environment"])
    types = env.pop("skops_types", None)  # the artifact's types (serialization.py)
    table.add_row("environment", ", ".join(f"{k} {x}" for k, x in env.items()))
    if types is not None:
        table.add_row("artifact types", escape(", ".join(types.split())))
    table.add_row("params", escape(json.dumps(v["params"], default=str)))
    out.print(table)
    b = v["blessing"]
    verdict = "[green]blessed[/green]" if b["passed"] else "[red]rejected[/red]"
    vs = f" vs champion v{b['champion_version']}" if b["champion_version"] else " (no champion)"
    out.print(f"blessing: {verdict}{vs}: {escape(b['reason'])}")
    print_evidence(b)
    moves = v.get("alias_history") or []
    if moves:
        out.print("alias history:")
    for m in moves:
        was = f"v{m['previous']}" if m["previous"] is not None else "-"
        now = f"v{m['version']}" if m["version"] is not None else "(cleared)"
        out.print(
            f"  {m['at'][:16].replace('T', ' ')}  {escape(m['alias'])}: {was} -> {now}  "
            f"{escape(m['reason'])} ({escape(m['actor'])})"
        )


def render_monitor(result: MonitorResult) -> None:
    s = result.summary
    w = s.window
    out.print(
        f"[bold]{s.pipeline}[/bold] v{s.version}: {s.rows} rows in "
        f"{w.start[:16]} .. {w.end[:16]} ({s.data})"
    )
    drift = result.drift
    if drift is not None:
        table = Table(title="drift", title_justify="left")
        for col in ("column", "role", "method", "statistic", "p adj.", "JS dist.", "drifted"):
            table.add_column(
                col, justify="right" if col in ("statistic", "p adj.", "JS dist.") else "left"
            )
        rows = sorted(drift.rows, key=lambda r: (not r.drifted, r.role != "feature", r.feature))
        for r in rows:
            table.add_row(
                escape(r.feature),
                r.role,
                r.method,
                fmt(r.statistic),
                "-" if r.adjusted_p_value is None else f"{r.adjusted_p_value:.2g}",
                fmt(r.distance),
                "[red]yes[/red]" if r.drifted else ("no" if r.tested else f"- ({escape(r.note)})"),
            )
        out.print(table)
        verdict = "[red]dataset drift[/red]" if drift.drifted else "[green]no dataset drift[/green]"
        out.print(
            f"{verdict}: {drift.n_drifted} of {drift.n_tested} features drifted "
            f"(threshold {drift.drift_share:.0%} of features, {drift.correction} correction)"
        )
    for f in s.findings:
        where = f" ({escape(f.column)})" if f.column else ""
        out.print(f"[yellow]finding[/yellow] {f.kind}{where}: {escape(f.message)}", soft_wrap=True)
    if s.performance:
        table = Table(title="performance", title_justify="left")
        names = [m.name for m in s.performance[0].metrics]
        for col in ("window", "rows", "labelled", *names):
            table.add_column(col, justify="left" if col == "window" else "right")
        for p in s.performance:
            table.add_row(
                p.start.isoformat()[:16],
                str(p.n_rows),
                str(p.n_labelled),
                *(
                    fmt(m.value)
                    if m.status == "ok"
                    else f"[dim]{m.status.replace('_data', '')} (n={m.n})[/dim]"
                    for m in p.metrics
                ),
            )
        out.print(table)
    concept = s.concept_drift
    if concept:
        found = (
            f"[red]detected[/red] at {', '.join(concept.detections[:3])}"
            if concept.drift_detected
            else "[green]none[/green]"
        )
        out.print(f"concept drift ({concept.method}, {concept.rows_fed} new rows): {found}")
    if s.estimated:  # beside the realized value on the rows labelled so far
        e = s.estimated
        off = e.outside()
        parts = []
        for x in e.estimates:
            if x.value is None or x.low is None or x.high is None:
                continue
            text = f"{x.metric} {x.value:.3f} [{x.low:.3f}, {x.high:.3f}]"
            realized = e.realized.get(x.metric)
            if realized is not None:
                flag = ", [yellow]outside[/yellow]" if x.metric in off else ""
                text += f" (realized {realized:.3f}{flag})"
            parts.append(text)
        out.print(
            f"estimated ({e.method}, {e.rows} rows, {e.unlabelled} unlabelled): {'; '.join(parts)}"
        )
        if off:
            out.print(f"[yellow]{e.warning()}[/yellow]")
    if result.report_path:
        out.print(f"report: {result.report_path}")


EVENT_STYLE = {
    "trigger.fired": "cyan",
    "run.failed": "red",
    "blessing.rejected": "yellow",
    "blessing.passed": "green",
    "model.promoted": "bold green",
    "model.rolled_back": "yellow",
    "drift.detected": "magenta",
    "concept_drift.detected": "magenta",
    "alert.failed": "red",
}
"""The one colour per event kind that `events`, `daemon` and `demo` print with."""


def styled_kind(kind: str, width: int) -> str:
    """``kind`` padded to ``width`` and coloured by EVENT_STYLE (alerts and monitor runs dim)."""
    style = EVENT_STYLE.get(kind, "dim" if kind.startswith(("alert.", "monitor.")) else "")
    padded = f"{kind:<{width}}"
    return f"[{style}]{padded}[/{style}]" if style else padded


def print_event(event: Any) -> None:
    out.print(
        f"{event.at:%Y-%m-%d %H:%M} {styled_kind(event.kind, 22)} {escape(event.message)}",
        soft_wrap=True,
    )


def print_events(events: list[Any]) -> None:
    for event in events:
        print_event(event)


def render_daemon_start(start: DaemonStart) -> None:
    """The daemon's first line: pipelines, tick, clock, executor."""
    where = (
        f"simulated from {start.simulated_from:%Y-%m-%d %H:%M}"
        if start.simulated_from is not None
        else "wall clock"
    )
    out.print(
        f"retrainer daemon: {start.pipelines} pipeline(s), tick {start.tick_s:g}s "
        f"({where}), executor {start.executor}"
    )
    for line in start.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(line)}", soft_wrap=True)


def render_daemon_stop(summary: DaemonSummary) -> None:
    released = summary.released
    out.print(
        f"stopped after {summary.ticks} tick(s)"
        + (f"; released {len(released)} run(s) to be retried" if released else "")
    )


class EventPrinter:
    """Prints the daemon's events as they happen; a busy month is condensed to a summary."""

    # the kinds a condensed month counts, in this order
    COUNTED = (
        "trigger.fired",
        "blessing.passed",
        "blessing.rejected",
        "model.promoted",
        "run.failed",
    )

    def __init__(self, detail: int = 8) -> None:
        self.detail = detail
        self.month: str | None = None
        self.events: list[Any] = []

    def __call__(self, events: list[Any]) -> None:
        for event in events:
            month = f"{event.at:%Y-%m}"
            if month != self.month:
                self.flush()
                self.month = month
            self.events.append(event)

    def _line(self, event: Any) -> str:
        return f"  {event.at:%Y-%m-%d}  {styled_kind(event.kind, 17)} {escape(event.message)}"

    def flush(self) -> None:
        if not self.events:
            return
        if len(self.events) <= self.detail:
            for event in self.events:
                out.print(self._line(event), soft_wrap=True)
        else:
            for event in self.events[:3]:
                out.print(self._line(event), soft_wrap=True)
            kinds = [e.kind for e in self.events[3:]]
            counts = ", ".join(
                f"{kinds.count(k)} {k.split('.')[-1]}" for k in self.COUNTED if kinds.count(k)
            )
            out.print(f"  [dim]{self.month}: and {len(kinds)} more events ({counts})[/dim]")
        self.events = []


class PolicyBar:
    """The backtest's progress bar, shown from its first update: a config error found before
    any policy starts prints alone, without an empty bar above it."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]policies[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=err,
            transient=False,
        )
        self.task: Any = None

    def __call__(self, done: int, total: int, name: str) -> None:
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task("", total=total)
        self.bar.update(self.task, completed=done, total=total, description=escape(name))

    def __enter__(self) -> PolicyBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.bar.stop()


def render_backtest(results: BacktestSummary, top: int = 20) -> None:
    metric = results.metric
    greater = results.greater_is_better
    pct = metric in ("accuracy", "balanced_accuracy", "roc_auc", "f1", "precision", "recall")

    def show(v: float | None) -> str:
        if v is None:
            return "-"
        return f"{v * 100:.2f}" if pct else f"{v:.4f}"

    rec = results.recommended.name
    oracle = results.oracle
    rows = sorted(
        results.policies,
        key=lambda p: (
            p.held_out[metric] is None,
            -(p.held_out[metric] or 0) * (1 if greater else -1),
        ),
    )
    delay = results.dataset.label_delay
    late = f", labels {delay} late" if delay not in (None, "", "0") else ""
    table = Table(
        title=f"{results.title}: {metric}{' %' if pct else ''} on the held-out part "
        f"(after {results.dataset.select_until[:10]}{late})",
        title_justify="left",
        caption="retrains and train CPU s: in the held-out part (the recommendation below "
        "quotes the selection part)",
        caption_justify="left",
    )
    for col in ("policy", "held out", "selection", "retrains", "train CPU s", ""):
        table.add_column(col, justify="left" if col in ("policy", "") else "right")
    for p in rows[:top] + [p for p in rows[top:] if p.name in (rec, oracle)]:
        tags = []
        if p.name == rec:
            tags.append("[green]recommended[/green]")
        if p.name == oracle:
            tags.append("oracle")
        if p.pareto:
            tags.append("[dim]pareto[/dim]")
        if p.excluded:
            tags.append(f"[dim]{escape(p.excluded)}[/dim]")
        table.add_row(
            ("[bold]" + escape(p.name) + "[/bold]") if p.name == rec else escape(p.name),
            show(p.held_out[metric]),
            show(p.selection[metric]),
            str(p.retrains_held_out),
            f"{p.train_cpu_s_held_out:.2f}",
            " ".join(tags),
        )
    out.print(table)
    if len(rows) > top:
        more = len(rows) - top
        out.print(
            f"[dim]... {more} more {'policy' if more == 1 else 'policies'} in the report[/dim]"
        )
    for failed in results.failed_policies:
        out.print(
            f"[yellow]not run:[/yellow] {escape(failed.name)}: {escape(failed.error)}",
            soft_wrap=True,
        )


def fmt_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``; under a KiB, the exact count."""
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def render_gc(report: GcReport) -> None:
    """What ``retrainer gc`` removed (or would), then the totals and what it kept and why."""
    verb = "would remove" if report.dry_run else "removed"
    for f in report.removed:
        what = "temporary file" if f.sha256 is None else "unreferenced blob"
        out.print(
            f"{verb} {escape(f.url)} ({fmt_bytes(f.size)}, {what}, "
            f"written {f.modified:%Y-%m-%d %H:%M} UTC)",
            soft_wrap=True,
        )
    out.print(
        f"{verb} {len(report.removed)} file(s), {fmt_bytes(report.removed_bytes)}; kept "
        f"{report.kept_referenced} referenced blob(s) and {report.kept_recent} recent file(s)"
    )
    for run in report.in_flight:
        since = run.started_at or run.created_at
        out.print(
            f"run {run.id} of {escape(run.pipeline)} is {run.status} (since "
            f"{since:%Y-%m-%d %H:%M}): files written after it started are kept",
            soft_wrap=True,
        )
    if report.cutoff is None:
        out.print("a run in flight is ahead of the wall clock: nothing removed while it runs")


def token_json(token: Token) -> dict[str, Any]:
    """A token as ``--json`` prints it: never a secret nor a hash (the token holds neither)."""
    return {
        "id": token.id,
        "name": token.name,
        "scopes": list(token.scopes),
        "created_at": token.created_at.isoformat(),
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
    }


def render_token_created(token: Token, secret: str, warning: str) -> None:
    """The secret alone on stdout (for ``$(...)``); what it is and the warning on stderr."""
    err.print(
        f"created token {token.id} ({escape(token.name)}) with scopes {', '.join(token.scopes)}",
        soft_wrap=True,
    )
    sys.stdout.write(secret + "\n")
    sys.stdout.flush()
    err.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True)


def _when(value: Any) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"


def render_tokens(tokens: list[Token]) -> None:
    if not tokens:
        out.print("no tokens: make one with retrainer token create --name NAME --scope predict")
        return
    table = Table(title="API tokens", title_justify="left")
    for col in ("id", "name", "scopes", "created", "last used", "revoked"):
        table.add_column(col)
    for t in tokens:
        table.add_row(
            t.id,
            escape(t.name),
            ", ".join(t.scopes),
            _when(t.created_at),
            _when(t.last_used_at),
            "-" if t.revoked_at is None else f"[red]{_when(t.revoked_at)}[/red]",
        )
    out.print(table)


def render_token_revoked(token: Token, *, already: bool) -> None:
    if already:
        out.print(
            f"token {token.id} ({escape(token.name)}) was already revoked at "
            f"{_when(token.revoked_at)}"
        )
    else:
        out.print(
            f"revoked token {token.id} ({escape(token.name)}): it is refused from now on "
            "(by a running server within 5 s)"
        )
