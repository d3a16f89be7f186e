"""Wiring of the daemon: a controller with the configured executor and alerts."""

from __future__ import annotations

from retrainer.adapters.executors import Executor, ProcessExecutor
from retrainer.core.clock import Clock
from retrainer.engine.controller import Controller
from retrainer.engine.project import Project
from retrainer.errors import ConfigError


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
    from retrainer.engine.alerts import Alerter

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
    project: Project, *, clock: Clock | None = None, executor: str | None = None
) -> Controller:
    """A controller for the daemon: wall clock unless ``clock`` is given."""
    if clock is None:
        from retrainer.adapters.clock import WallClock

        clock = WallClock()
    return Controller(
        project,
        clock=clock,
        executor=make_executor(project, executor),
        alerter=make_alerter(project),
    )
