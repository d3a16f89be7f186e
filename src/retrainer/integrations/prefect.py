"""Run retrainer's pipelines as Prefect 3 flows.

Two flows per pipeline, each task a thin call of :mod:`retrainer.engine.runs.stages` (the
same steps the daemon and the Airflow DAG run, so the three behave the same):

- ``retrain-<pipeline>`` (:func:`pipeline_flow`): start the run whose key is
  ``run_key(pipeline, trigger, slot)``, then train -> bless -> deploy. Its ``logical_time``
  parameter (default: the flow run's scheduled start, which is "now" for an ad-hoc run and the
  cron slot for a scheduled one) is the ``now`` of every stage and, with ``trigger="schedule"``,
  the run key's slot: a retry or a re-run of the same logical time finds the run, never
  starts a second one. The stages of a finished run do nothing: they return its recorded
  outcome (a failed run fails the flow again).
- ``watch-<pipeline>`` (:func:`watch_flow`): ``decide(exclude_schedules=True)`` on a short
  interval; when a metric, drift, new-data, code-change or manual trigger fires it runs the
  retrain flow (a subflow) with the decision's trigger and slot. A separate flow keeps the
  retrain deployment's history one flow run per retrain (the watch's minute-by-minute
  "nothing to do" runs would bury them) and a pipeline with only a schedule needs no watch.

A schedule trigger becomes the retrain deployment's cron (``every <duration>``: an interval
anchored at 1970-01-01 UTC, as retrainer counts it); :func:`plan_deployments` says what
``retrainer prefect deploy`` serves, without Prefect.

Examples
--------
>>> flow = pipeline_flow("my-project", "elec2")  # doctest: +SKIP
>>> flow(logical_time=datetime(1997, 3, 20, tzinfo=UTC))  # doctest: +SKIP
{'run_id': 1, 'stage': 'deploy', 'status': 'succeeded', ...}
"""

# no `from __future__ import annotations`: Prefect validates the flows' parameters from their
# annotations in the flow run's process, where a cloudpickled closure cannot resolve names

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from retrainer.errors import ConfigError, RetrainerError

__all__ = [
    "WATCH_EVERY",
    "DeploymentPlan",
    "pipeline_flow",
    "plan_deployments",
    "serve",
    "watch_flow",
]

WATCH_EVERY = timedelta(minutes=1)
"""How often the watch flow evaluates the non-schedule triggers (a daemon tick's order)."""


def _prefect() -> Any:
    from retrainer.extras import require

    return require("prefect", extra="prefect", needed_for="retrainer.integrations.prefect")


@contextlib.contextmanager
def _opened(project_dir: str | os.PathLike[str]) -> Iterator[Any]:
    # each task opens the project itself: tasks may run in other threads or processes (any
    # task runner), and a Project holds database connections that must not cross them
    from retrainer.engine.project import Project

    with Project.open(project_dir) as project:
        yield project


def _utc(moment: Any) -> datetime:
    """A stdlib UTC datetime from what Prefect gives (pendulum/whenever or stdlib)."""
    if not isinstance(moment, datetime):  # whenever.Instant and friends
        moment = datetime.fromisoformat(str(moment.format_common_iso()))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return datetime.fromisoformat(moment.astimezone(UTC).isoformat())


def _logical_time(given: datetime | None) -> datetime:
    """The flow's logical time: ``given``, else the flow run's scheduled start (stable across
    retries of that flow run: a retry never keys a second run), else now."""
    if given is not None:
        return _utc(given)
    from prefect.runtime import flow_run

    scheduled = flow_run.scheduled_start_time
    return _utc(scheduled) if scheduled is not None else datetime.now(UTC)


# --- the deployments, planned from the config (no Prefect needed) -------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DeploymentPlan:
    """One deployment ``retrainer prefect deploy`` serves: a flow, its schedule, parameters.

    Examples
    --------
    >>> plan = DeploymentPlan(name="elec2-schedule", flow="retrain-elec2", pipeline="elec2",
    ...                       cron="0 0 * * MON", parameters={"trigger": "schedule"})
    >>> plan.schedule
    "cron '0 0 * * MON' (UTC)"
    """

    name: str
    flow: str
    pipeline: str
    cron: str | None = None
    timezone: str = "UTC"
    interval: timedelta | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def schedule(self) -> str:
        """``cron '<expr>' (<zone>)`` or ``every <seconds>s``."""
        if self.cron is not None:
            return f"cron {self.cron!r} ({self.timezone})"
        assert self.interval is not None
        return f"every {int(self.interval.total_seconds())}s"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready fields (``--dry-run --json``)."""
        return {
            "name": self.name,
            "flow": self.flow,
            "pipeline": self.pipeline,
            "cron": self.cron,
            "timezone": self.timezone if self.cron is not None else None,
            "interval_seconds": self.interval.total_seconds() if self.interval else None,
            "parameters": dict(self.parameters),
        }


def plan_deployments(
    project_dir: str | os.PathLike[str],
    pipeline: str | None = None,
    *,
    watch_every: timedelta = WATCH_EVERY,
) -> list[DeploymentPlan]:
    """The deployments of ``pipeline`` (default: every pipeline of the project).

    A top-level schedule trigger gives a retrain deployment on its cron (``every <d>``: an
    interval); any other trigger gives one watch deployment every ``watch_every``. A schedule
    inside ``any``/``all`` is not a cron Prefect can run: the watch evaluates that combinator
    without its schedules.

    Examples
    --------
    >>> import tempfile
    >>> from retrainer.testing import write_project
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = write_project(tmp, triggers=[{"schedule": "0 2 * * MON"},
    ...                                           {"manual": {}}])
    ...     for plan in plan_deployments(folder):
    ...         print(plan.name, "|", plan.schedule, "|", plan.parameters)
    toy-schedule | cron '0 2 * * MON' (UTC) | {'trigger': 'schedule'}
    toy-watch | every 60s | {}
    """
    from retrainer.config import load_config
    from retrainer.core.triggers import ScheduleTrigger, build_trigger
    from retrainer.core.windows import parse_duration

    config, _ = load_config(project_dir)
    names = [pipeline] if pipeline is not None else [p.name for p in config.pipelines]
    plans: list[DeploymentPlan] = []
    for name in names:
        cfg = config.pipeline(name)
        watch = False
        for spec in cfg.triggers:
            trigger = build_trigger(spec)
            if not isinstance(trigger, ScheduleTrigger):
                watch = True
                continue
            cron = str(trigger.cron)
            every = cron.startswith("every ")
            plans.append(
                DeploymentPlan(
                    name=f"{cfg.name}-{trigger.name}",
                    flow=f"retrain-{cfg.name}",
                    pipeline=cfg.name,
                    cron=None if every else cron,
                    timezone=str(trigger.timezone),
                    interval=parse_duration(cron.removeprefix("every ").strip()) if every else None,
                    parameters={"trigger": str(trigger.name)},
                )
            )
        if watch:
            plans.append(
                DeploymentPlan(
                    name=f"{cfg.name}-watch",
                    flow=f"watch-{cfg.name}",
                    pipeline=cfg.name,
                    interval=watch_every,
                )
            )
    return plans


# --- the flows ---------------------------------------------------------------------------------


def _tasks(project_dir: str, pipeline: str) -> dict[str, Any]:
    """The stage tasks of one pipeline, each opening the project and calling one stage."""
    prefect = _prefect()
    from prefect.cache_policies import NO_CACHE

    from retrainer.core.triggers import run_key
    from retrainer.engine.runs import stages

    # retrainer's store is what makes a stage idempotent: no Prefect caching on top of it
    task = prefect.task(cache_policy=NO_CACHE, persist_result=False)

    @task(name="decide")
    def decide(now: datetime) -> dict[str, Any]:
        with _opened(project_dir) as project:
            d = stages.decide(project, pipeline, now=now, exclude_schedules=True, actor="prefect")
        return {
            "fire": d.fire,
            "trigger": d.trigger,
            "slot": d.slot,
            "reason": d.reason,
            "evidence": d.evidence,
        }

    @task(name="admit")
    def admit(now: datetime, trigger: str, slot: str) -> dict[str, Any]:
        with _opened(project_dir) as project:
            d = stages.admit(
                project, pipeline, now=now, trigger=trigger, slot=slot, actor="prefect"
            )
        return {"fire": d.fire, "reason": d.reason, "evidence": d.evidence}

    @task(name="start")
    def start(now: datetime, trigger: str, slot: str, evidence: dict[str, Any] | None) -> int:
        with _opened(project_dir) as project:
            run = stages.start_run(
                project, pipeline, now=now, trigger=trigger, slot=slot, evidence=evidence
            )
            if run is not None:
                assert run.id is not None
                return run.id
            # it finished before: the stages give its recorded outcome (RunFailed if it
            # failed, so a flow retry never turns a failed run into a green flow run)
            return _finished_run(project, pipeline, run_key(pipeline, trigger, slot))

    def stage(name: str) -> Any:
        @task(name=name)
        def call(run_id: int, now: datetime) -> dict[str, Any]:
            with _opened(project_dir) as project:
                result: Any = getattr(stages, name)(project, run_id, now=now)
            return dict(result.to_json())

        return call

    return {
        "decide": decide,
        "admit": admit,
        "start": start,
        "train": stage("train"),
        "bless": stage("bless"),
        "deploy": stage("deploy"),
    }


def _finished_run(project: Any, pipeline: str, key: str, page: int = 200) -> int:
    """The id of the finished run of ``key``, newest first (a re-run is usually recent)."""
    before = None
    while runs := project.store.list_runs(pipeline, limit=page, before=before):
        for run in runs:
            if run.key == key:
                return int(run.id)
        before = runs[-1].id
    raise RetrainerError(f"{pipeline}: start_run found run {key!r} finished, but it is gone")


def _pipeline_name(project_dir: str | os.PathLike[str], pipeline: str | None) -> str:
    from retrainer.config import load_config

    config, _ = load_config(project_dir)
    return config.pipeline(pipeline).name


def pipeline_flow(project_dir: str | os.PathLike[str], pipeline: str | None = None) -> Any:
    """The ``retrain-<pipeline>`` flow: start the run of ``(trigger, slot)`` -> train -> bless
    -> deploy, every stage at ``logical_time``.

    Parameters of the flow: ``logical_time`` (default: the flow run's scheduled start, i.e.
    now for an ad-hoc run), ``trigger`` (default ``"schedule"``), ``slot`` (default: the
    logical time's UTC ISO string), ``evidence`` and ``guards`` (default true: the
    pipeline's guards judge the firing first, as a daemon's would judge its schedule's; the
    watch flow passes false, its decision having passed them). It returns the deploy stage's
    summary (``run_id``, ``status``, ``version``, ``outcome``...), or ``status: skipped`` with
    the guard's ``reason`` when one held the firing back. When that run already finished the
    stages do nothing and return its recorded outcome, or raise
    :class:`~retrainer.engine.runs.stages.RunFailed` again for a failed run: a stage raising
    it fails the flow.

    Examples
    --------
    >>> flow = pipeline_flow("my-project")  # doctest: +SKIP
    >>> flow(logical_time=datetime(1997, 3, 20, tzinfo=UTC))["status"]  # doctest: +SKIP
    'succeeded'
    """
    prefect = _prefect()
    root = str(Path(project_dir).resolve())
    name = _pipeline_name(root, pipeline)
    tasks = _tasks(root, name)

    @prefect.flow(name=f"retrain-{name}", log_prints=False, persist_result=False)
    def retrain(
        logical_time: datetime | None = None,
        trigger: str = "schedule",
        slot: str | None = None,
        evidence: dict[str, Any] | None = None,
        guards: bool = True,
    ) -> dict[str, Any]:
        now = _logical_time(logical_time)
        slot = slot or now.isoformat()
        if guards:  # the deployment's schedule stands for the schedule trigger: guard it
            admitted = dict(tasks["admit"](now, trigger, slot))
            if not admitted["fire"]:
                return {"status": "skipped", "reason": admitted["reason"], "run_id": None}
        run_id = tasks["start"](now, trigger, slot, evidence)
        tasks["train"](run_id, now)
        tasks["bless"](run_id, now)
        return dict(tasks["deploy"](run_id, now))

    return retrain


def watch_flow(
    project_dir: str | os.PathLike[str],
    pipeline: str | None = None,
    *,
    retrain: Any | None = None,
) -> Any:
    """The ``watch-<pipeline>`` flow: decide on the non-schedule triggers at ``logical_time``
    (default: the scheduled start); when one fires, run the retrain flow (``retrain``, default
    :func:`pipeline_flow`) as a subflow with the decision's trigger, slot and evidence.

    Returns the decision (``fire``, ``trigger``, ``slot``, ``reason``, ``evidence``) and, when
    it fired, the retrain flow's result under ``"run"``.

    Examples
    --------
    >>> watch_flow("my-project")().get("fire")  # doctest: +SKIP
    False
    """
    prefect = _prefect()
    root = str(Path(project_dir).resolve())
    name = _pipeline_name(root, pipeline)
    tasks = _tasks(root, name)
    retrain_flow = retrain if retrain is not None else pipeline_flow(root, name)

    @prefect.flow(name=f"watch-{name}", log_prints=False, persist_result=False)
    def watch(logical_time: datetime | None = None) -> dict[str, Any]:
        now = _logical_time(logical_time)
        decision = dict(tasks["decide"](now))
        if decision["fire"]:
            decision["run"] = retrain_flow(
                logical_time=now,
                trigger=decision["trigger"],
                slot=decision["slot"],
                evidence=decision["evidence"],
                guards=False,  # the decision passed them
            )
        return decision

    return watch


# --- serving -----------------------------------------------------------------------------------


def _served(
    project_dir: str | os.PathLike[str], plans: Sequence[DeploymentPlan]
) -> list[tuple[DeploymentPlan, Any, Any]]:
    """(plan, flow object, Prefect schedule) for each plan: one retrain flow per pipeline,
    shared by its deployments and its watch flow."""
    _prefect()
    from prefect.schedules import Cron, Interval

    root = str(Path(project_dir).resolve())
    retrains: dict[str, Any] = {}
    watches: dict[str, Any] = {}
    out = []
    for plan in plans:
        if plan.pipeline not in retrains:
            retrains[plan.pipeline] = pipeline_flow(root, plan.pipeline)
        flow = retrains[plan.pipeline]
        if plan.flow.startswith("watch-"):
            flow = watches.setdefault(
                plan.pipeline, watch_flow(root, plan.pipeline, retrain=retrains[plan.pipeline])
            )
        if plan.cron is not None:
            schedule: Any = Cron(plan.cron, timezone=plan.timezone)
        else:  # retrainer counts `every <d>` slots from 1970-01-01 UTC: the same anchor
            assert plan.interval is not None
            schedule = Interval(plan.interval, anchor_date=datetime(1970, 1, 1, tzinfo=UTC))
        out.append((plan, flow, schedule))
    return out


def serve(
    project_dir: str | os.PathLike[str],
    pipeline: str | None = None,
    *,
    watch_every: timedelta = WATCH_EVERY,
    limit: int | None = None,
) -> None:
    """Serve the deployments of :func:`plan_deployments` from this process, as
    ``flow.serve`` does (blocks; Ctrl-C stops it): the Prefect API is the one
    ``PREFECT_API_URL`` names (a ``prefect server start``, or Prefect Cloud).

    Examples
    --------
    >>> serve("my-project")  # doctest: +SKIP
    """
    _prefect()
    plans = plan_deployments(project_dir, pipeline, watch_every=watch_every)
    if not plans:
        raise ConfigError(
            "no deployment to serve: the pipeline has no triggers; add a schedule or another "
            "trigger under its triggers:, or run the flow yourself (pipeline_flow)"
        )
    import asyncio

    from prefect.runner import Runner

    # Runner.add_flow, not prefect.serve(*deployments): the runner then runs these very flow
    # objects (cloudpickled into the flow run's process) instead of re-importing them from an
    # entrypoint, which a flow built per pipeline at run time does not have
    runner = Runner(limit=limit, pause_on_shutdown=False)
    for plan, flow, schedule in _served(project_dir, plans):
        runner.add_flow(flow, name=plan.name, schedule=schedule, parameters=dict(plan.parameters))
    from prefect.exceptions import TerminationSignal

    with contextlib.suppress(KeyboardInterrupt, TerminationSignal):  # Ctrl-C, as prefect.serve
        asyncio.run(runner.start())
