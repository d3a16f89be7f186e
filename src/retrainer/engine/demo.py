"""The demo: find the policy worth its cost on elec2, then run the daemon with it.

1. a project is created from the bundled elec2 example (``retrainer init --example elec2``);
2. its ``backtest.yaml`` is run: the default grid of policies replayed over the first half of
   the history (the selection part) and the second (held out);
3. the recommended policy is written into the project's ``retrainer.yaml``
   (``recommended.yaml``, as ``retrainer backtest`` writes it);
4. the daemon's controller runs that configuration over the held-out period on a simulated
   clock, with the project's real stores (SQLite, artifact folder, Parquet logs), while a
   simulated serving loop predicts each day with the champion and logs predictions and labels;
   the monitor runs daily (``monitor.every``), as ``retrainer daemon`` runs it, so the project
   ends with drift and online performance over time for a dashboard to show.

The accuracy the daemon's champions served is then compared with the backtest's figure for
the same policy on the same days: what you backtest is what you run.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrainer.core.clock import SimulatedClock
from retrainer.core.types import Event
from retrainer.engine.backtest import BacktestResult, Progress, load_replay, run_backtest
from retrainer.engine.backtest.replay import pooled_metric, serve
from retrainer.engine.scaffold import init_project
from retrainer.errors import ConfigError

MARKER = ".retrainer-demo"
SHOWN = ("trigger.fired", "blessing.passed", "blessing.rejected", "model.promoted", "run.failed")


def prepare_demo_dir(target: Path) -> None:
    """Create ``target`` for the demo; a previous demo there (marked) is replaced."""
    if target.exists():
        if (target / MARKER).exists():
            shutil.rmtree(target)
        elif any(target.iterdir()):
            raise ConfigError(
                f"{target} exists and is not a retrainer demo folder; choose another --dir"
            )
    init_project(target, "elec2")
    (target / MARKER).write_text("created by `retrainer demo`; safe to delete\n")


def backtest_demo(target: Path, *, progress: Progress | None = None) -> BacktestResult:
    """Steps 1-3: the project, its backtest, and the recommended policy put in place."""
    prepare_demo_dir(target)
    result = run_backtest(target / "backtest.yaml", target / "backtest", progress=progress)
    original = target / "retrainer.yaml"
    shutil.copyfile(original, target / "retrainer.before-backtest.yaml")
    # in place of the project's retrainer.yaml the file needs no root (the folder is its own)
    lines = result.yaml_path.read_text(encoding="utf-8").splitlines(keepends=True)
    original.write_text("".join(x for x in lines if not x.startswith("root: ")), encoding="utf-8")
    return result


@dataclass
class DaemonSummary:
    """What the daemon did over the held-out period, and what its champions served."""

    start: str
    end: str
    days: int
    first_batch: int
    runs: int = 0
    blessed: int = 0
    rejected: int = 0
    promoted: int = 0
    failed: int = 0
    versions: int = 0
    served: dict[str, float | None] = field(default_factory=dict)
    seconds: float = 0.0
    monitored: int = 0
    """Monitor results recorded (one per ``monitor.every`` with a champion)."""
    logged: int = 0
    """Served predictions in the project's log."""
    labelled: int = 0
    """Feedback rows (labels) in the project's log."""


def backtest_on_days(
    policy: Mapping[str, Any], metric: str, summary: DaemonSummary
) -> tuple[float | None, int]:
    """A backtested policy's ``metric`` and retrains on the days the daemon ran.

    ``policy`` is one entry of the backtest's ``results["policies"]``.
    """
    k, nd = summary.first_batch, summary.days
    series = policy["series"]
    served = [
        (value, n)
        for value, n in zip(series[metric][k : k + nd], series["n"][k : k + nd], strict=True)
        if value is not None and n
    ]
    rows = sum(n for _, n in served)
    value = sum(v * n for v, n in served) / rows if rows else None
    retrains = sum(summary.start <= t < summary.end for t in policy["retrained_at"])
    return value, retrains


def run_daemon_demo(
    target: Path,
    *,
    days: int | None = None,
    on_events: Callable[[list[Event]], None] | None = None,
) -> DaemonSummary:
    """Step 4: the controller of ``retrainer daemon`` over the held-out period.

    ``days`` limits the replay to the first days (batches) of the held-out part; None: all.
    """
    from retrainer.backtest_config import load_backtest_config
    from retrainer.engine.control.controller import Controller, request_run
    from retrainer.engine.project import Project

    t0 = time.perf_counter()
    cfg, file = load_backtest_config(target / "backtest.yaml")
    replay, _, _ = load_replay(cfg, file)
    first = replay.selection_batches()
    start = replay.boundaries()[first]
    if days is not None and first + days < replay.n_batches:
        replay.end = start + days * replay.batch
    clock = SimulatedClock(start)
    with Project.open(target) as project:
        # the data arrive as time passes: a row's features at its time, its label later
        project.sources[replay.name] = replay.source(clock)
        # as `retrainer daemon`: the monitor section of retrainer.yaml is run every
        # monitor.every, whatever the recommended policy's triggers read
        controller = Controller(
            project, clock=clock, owner="retrainer demo", monitor_configured=True
        )
        request_run(project, replay.name, now=start, by="retrainer demo (first champion)")
        # what was served, and the labels as they arrive: the online metric over time
        logs = project.log_store()
        last_id, last_at = 0, None

        def report(_: int, now: Any) -> None:
            nonlocal last_id, last_at
            events = [e for e in project.store.list_events(since=last_at) if (e.id or 0) > last_id]
            if events:
                last_at = max(e.at for e in events)
                last_id = max(e.id or 0 for e in events)
                if on_events is not None:
                    on_events([e for e in events if e.kind in SHOWN])

        served = serve(
            replay, project, controller, clock, logs=logs, first_batch=first, on_batch=report
        )
        rows = replay.batch_rows()
        lo, hi = int(rows[first]), int(rows[-1])
        y_true = replay.frame[replay.target].to_numpy()[lo:hi]
        y_pred, y_score = served.predictions()
        runs = project.store.list_runs(replay.name, limit=None)
        events = project.store.list_events(limit=None)
        kinds = [e.kind for e in events]
        return DaemonSummary(
            start=start.isoformat(),
            end=replay.boundaries()[-1].isoformat(),
            days=replay.n_batches - first,
            first_batch=first,
            runs=len(runs),
            blessed=kinds.count("blessing.passed"),
            rejected=kinds.count("blessing.rejected"),
            promoted=kinds.count("model.promoted"),
            failed=sum(1 for r in runs if r.status == "failed"),
            versions=len(project.store.list_versions(replay.name)),
            served={
                m: pooled_metric(m, y_true, y_pred, y_score) if len(y_pred) == len(y_true) else None
                for m in replay.metric_names
            },
            seconds=time.perf_counter() - t0,
            monitored=len(project.store.list_monitor_results(replay.name, limit=None)),
            logged=len(logs.predictions(replay.name, None, None, columns=["timestamp"])),
            labelled=len(logs.feedback(None, None, pipeline=replay.name)),
        )


HISTORY_TRIGGERS: tuple[dict[str, Any], ...] = (
    {"schedule": "0 0 * * 1"},
    {"metric": "accuracy", "below": 0.8, "over": "2d", "min_samples": 40},
)
"""The triggers :func:`history_project` adds to the elec2 example (which has none): a weekly
retrain, and a metric trigger whose threshold a dashboard draws on the online metric."""

HISTORY_GUARDS: tuple[dict[str, Any], ...] = ({"cooldown": "3d"},)


def history_project(
    target: Path,
    days: int = 20,
    *,
    triggers: Sequence[Mapping[str, Any]] = HISTORY_TRIGGERS,
    guards: Sequence[Mapping[str, Any]] = HISTORY_GUARDS,
) -> Path:
    """A project with history, quickly: the elec2 example run by the daemon for ``days`` days.

    For tests and dashboards that need runs, versions, monitor results, events and a
    prediction + feedback log. The elec2 example project is created in ``target`` (replacing
    a previous demo or history project there; no backtest), ``triggers`` and ``guards`` are
    added to its pipeline (the example has none), and the demo's daemon phase runs it from the
    start of the held-out part: served predictions and their labels logged, the monitor run
    daily. Returns ``target``.

    Examples
    --------
    >>> import tempfile
    >>> from retrainer.engine.project import Project
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = history_project(Path(tmp) / "history", days=2)
    ...     with Project.open(folder) as project:
    ...         len(project.store.list_monitor_results("elec2", limit=None))
    1
    """
    import yaml

    prepare_demo_dir(target)
    config = target / "retrainer.yaml"
    document = yaml.safe_load(config.read_text(encoding="utf-8"))
    pipeline = document["pipelines"][0]
    pipeline["triggers"] = [dict(t) for t in triggers]
    pipeline["guards"] = [dict(g) for g in guards]
    header = "# the elec2 example with triggers, run by retrainer.engine.demo.history_project\n"
    config.write_text(header + yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    run_daemon_demo(target, days=days)
    return target
