"""The daemon: a controller with the configured executor and alerts, ticked until stopped."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType

from retrainer.adapters.executors import Executor, ProcessExecutor
from retrainer.core.clock import Clock, SimulatedClock, check_time
from retrainer.core.types import Event, Run
from retrainer.engine.control.checks import start_warnings
from retrainer.engine.control.controller import Controller
from retrainer.engine.project import Project
from retrainer.errors import ConfigError

_log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
"""The signals that stop the daemon cleanly (after the tick in progress)."""


def make_executor(project: Project, kind: str | None = None) -> Executor | None:
    """The executor named by ``kind`` or ``controller.executor.kind`` (None: inline)."""
    cfg = project.config.controller.executor
    kind = kind or cfg.kind
    if kind == "inline":
        return None
    if kind == "process":
        if project.config_path is None:
            raise ConfigError("the process executor needs a project opened from retrainer.yaml")
        return ProcessExecutor(
            max_workers=cfg.max_workers, log_dir=project.root / ".retrainer" / "runs"
        )
    if kind == "dask":
        from retrainer.integrations.dask import DaskExecutor

        return DaskExecutor(address=cfg.address, max_workers=cfg.max_workers)
    raise ConfigError(f"executor must be one of inline, process, dask; got {kind!r}")


def make_alerter(project: Project) -> object | None:
    """The alerter of ``alerts.notifiers`` (None when no notifier is configured)."""
    cfg = project.config.alerts
    if not cfg.notifiers:
        return None
    from retrainer.adapters.notifiers import build_notifier
    from retrainer.engine.control.alerts import Alerter

    return Alerter(
        project.store,
        [
            build_notifier(spec, where=f"alerts.notifiers[{i}]")
            for i, spec in enumerate(cfg.notifiers)
        ],
        rules={"kinds": cfg.kinds} if cfg.kinds else None,
        dedupe_window=cfg.dedupe_window,
        rate_limit=(cfg.rate_limit, cfg.rate_period),
        retries=cfg.retries,
    )


def start_controller(
    project: Project,
    *,
    clock: Clock | None = None,
    executor: str | None = None,
    monitor_configured: bool = False,
) -> Controller:
    """A controller for the daemon: wall clock unless ``clock`` is given.

    ``monitor_configured``: monitor each pipeline with a ``monitor:`` section every
    ``monitor.every``, whatever its triggers read (see :class:`Controller`).
    """
    if clock is None:
        from retrainer.adapters.clock import WallClock

        clock = WallClock()
    return Controller(
        project,
        clock=clock,
        executor=make_executor(project, executor),
        alerter=make_alerter(project),
        monitor_configured=monitor_configured,
    )


@contextmanager
def stop_on_signals(
    on_signal: Callable[[str], None] | None = None, stop: threading.Event | None = None
) -> Iterator[threading.Event]:
    """An event (``stop``, or a new one) that SIGTERM and SIGINT set; the handlers in place
    before are restored on exit.

    ``on_signal`` gets the signal's name (``"SIGINT"``). Signal handlers can only be installed
    from the main thread; elsewhere the event is returned and no handler changes.

    Examples
    --------
    >>> import signal
    >>> before = signal.getsignal(signal.SIGINT)
    >>> with stop_on_signals() as stop:
    ...     signal.raise_signal(signal.SIGINT)
    ...     stop.is_set()
    True
    >>> signal.getsignal(signal.SIGINT) is before
    True
    """
    stop = stop if stop is not None else threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if on_signal is not None:
            on_signal(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    try:
        for sig in STOP_SIGNALS:
            signal.signal(sig, handler)
        yield stop
    finally:
        for sig, old in previous.items():
            # None: a handler not installed from Python; the default is the closest we can put back
            signal.signal(sig, signal.SIG_DFL if old is None else old)


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonStart:
    """What a starting daemon runs, for the interface to announce."""

    pipelines: int
    tick_s: float
    simulated_from: datetime | None
    """The simulated clock's start, or None on the wall clock."""
    executor: str
    """The executor's class name (``InlineExecutor``, ``ProcessExecutor``, ...)."""
    warnings: tuple[str, ...] = ()
    """One line per reason this daemon may do nothing (see
    :func:`~retrainer.engine.control.checks.start_warnings`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonSummary:
    """How a daemon run ended."""

    ticks: int
    released: list[Run]
    """Runs in hand at shutdown, released (queued again) to be retried."""


def run_daemon(
    project: Project,
    *,
    as_of: datetime | None = None,
    tick_s: float | None = None,
    max_ticks: int | None = None,
    executor: str | None = None,
    on_start: Callable[[DaemonStart], None] | None = None,
    on_events: Callable[[list[Event]], None] | None = None,
    on_signal: Callable[[str], None] | None = None,
    on_outage: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> DaemonSummary:
    """Tick the project's controller until SIGTERM/SIGINT, ``stop`` or ``max_ticks``.

    Each pipeline with a ``monitor:`` section is monitored every ``monitor.every`` (drift,
    online performance, concept drift), whether or not a trigger reads the results.
    ``as_of`` replays history on a simulated clock that each tick advances by ``tick_s``
    (default: ``controller.tick``) instead of sleeping. At the end, runs in hand get
    ``controller.shutdown_grace`` seconds to finish and the rest are released to be retried.
    ``on_events`` gets the events written since the daemon started, after each tick and once
    more after the shutdown. The signal handlers (see :func:`stop_on_signals`) are those of
    the caller again when this returns or raises. When the metadata database goes away
    (unreachable, or locked past its busy timeout) the daemon waits with a capped
    exponential backoff and ticks again; ``on_outage`` (default: the log) gets one line when
    an outage starts and one when it ends (see ``docs/daemon.md``).

    Examples
    --------
    >>> import tempfile
    >>> from datetime import UTC, datetime
    >>> from pathlib import Path
    >>> from retrainer.engine.scaffold import init_project
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = init_project(Path(tmp), "elec2")
    ...     with Project.open(tmp) as project:
    ...         run_daemon(project, as_of=datetime(1997, 1, 6, tzinfo=UTC), max_ticks=1)
    DaemonSummary(ticks=1, released=[])
    """
    if project.config.mlflow is not None:  # a missing extra stops the start, not a tick
        from retrainer.integrations.mlflow import _mlflow

        _mlflow()
    with stop_on_signals(on_signal, stop) as stop:
        simulated = SimulatedClock(check_time(as_of, "--as-of")) if as_of is not None else None
        # what the user configured is monitored, so dashboards and alerts see it over time
        controller = start_controller(
            project, clock=simulated, executor=executor, monitor_configured=True
        )
        tick = tick_s if tick_s is not None else project.config.controller.tick
        advance = None
        if simulated is not None:
            step = timedelta(seconds=tick)

            def advance() -> None:
                simulated.advance(step)

        seen = max((e.id or 0 for e in project.store.list_events(limit=1)), default=0)

        def report_events(_: object = None) -> None:
            nonlocal seen
            if on_events is None:
                return
            new = [e for e in project.store.list_events(limit=500) if (e.id or 0) > seen]
            if new:
                seen = max(e.id or 0 for e in new)
                on_events(new)

        def after_tick(_: object = None) -> None:
            report_events()
            if project.config.mlflow is not None:  # mirror to MLflow; never raises
                from retrainer.integrations.mlflow import sync_mlflow

                sync_mlflow(project, controller.clock.now())

        warnings = tuple(
            start_warnings(project, controller.clock.now(), simulated=simulated is not None)
        )
        if on_start is not None:
            on_start(
                DaemonStart(
                    pipelines=len(project.config.pipelines),
                    tick_s=tick,
                    simulated_from=simulated.now() if simulated is not None else None,
                    executor=type(controller.executor).__name__,
                    warnings=warnings,
                )
            )
        else:
            for line in warnings:
                _log.warning(line)
        try:
            ticks = controller.run(
                tick_s=tick,
                max_ticks=max_ticks,
                stop=stop,
                on_tick=after_tick,
                advance=advance,
                on_outage=on_outage,
            )
        finally:
            released = controller.shutdown(project.config.controller.shutdown_grace)
            report_events()
    return DaemonSummary(ticks=ticks, released=released)
