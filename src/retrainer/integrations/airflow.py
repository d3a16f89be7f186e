"""Run a project's pipelines as Airflow (3.x) DAGs: decide -> train -> bless -> deploy.

:func:`build_dags` reads ``retrainer.yaml`` (nothing else: Airflow parses DAG files often) and
returns one DAG per pipeline, named after it, plus a ``<pipeline>__watch`` DAG for a pipeline
with triggers other than a schedule. A DAG file in Airflow's ``dags/`` folder is two lines::

    from retrainer.integrations.airflow import build_dags
    globals().update(build_dags("/path/to/project"))

Each task opens the project once and calls one function of
:mod:`retrainer.engine.runs.stages`, the steps the daemon runs, so a run made by Airflow is
the run the daemon would have made: same key, same events, same blessing and rollout.

- ``<pipeline>`` is scheduled by the pipeline's schedule trigger (its cron, in its time zone;
  ``every <duration>`` as a fixed interval). Its ``decide`` task passes the slot through the
  pipeline's guards (:func:`~retrainer.engine.runs.stages.admit`), then creates the run whose key is
  (the schedule trigger's name, the DAG run's data interval end): the daemon's key for that
  slot, so Airflow and a daemon never both train it; retries and backfills find the run.
- ``<pipeline>__watch`` runs every ``watch_every`` (5 minutes by default): its ``decide`` task
  evaluates the other triggers (metric, drift, new data, code change, manual requests) the way
  a daemon tick does, and the run's key is the decision's trigger and slot.

A run that already finished for its key skips the tasks after ``decide``
(``AirflowSkipException``); a run that failed (``RunFailed``: bad data, failing user code)
fails its task without retries (``AirflowFailException``); other errors (a database briefly
locked, a lost worker) are retried as Airflow's ``retries`` say, and the stages pick up where
the run stopped.

Examples
--------
>>> dags = build_dags("/path/to/project")  # doctest: +SKIP
>>> sorted(dags)  # doctest: +SKIP
['elec2', 'elec2__watch']
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from retrainer.errors import ConfigError
from retrainer.extras import require

WATCH_SUFFIX = "__watch"
"""The watch DAG of pipeline ``p`` is ``p__watch``."""

_STAGES = ("train", "bless", "deploy")
_SCHEDULE = "schedule"  # the trigger kind (and default name) the DAG's own schedule stands for


def _airflow() -> Any:
    return require("airflow.sdk", extra="airflow", needed_for="retrainer.integrations.airflow")


def build_dags(
    project: str | os.PathLike[str],
    *,
    watch_every: timedelta = timedelta(minutes=5),
    start_date: datetime | None = None,
    default_args: Mapping[str, Any] | None = None,
    tags: tuple[str, ...] = ("retrainer",),
) -> dict[str, Any]:
    """One Airflow DAG per pipeline of the project (and a watch DAG where one is needed).

    Parameters
    ----------
    project
        The project's folder or its ``retrainer.yaml``. Every task opens it, so it must be
        readable from Airflow's workers with the same path (and its stores reachable from
        them: a shared folder, or PostgreSQL + S3 URLs).
    watch_every
        How often a ``<pipeline>__watch`` DAG evaluates the triggers other than schedules.
    start_date
        The DAGs' start date (Airflow's default: none, which runs from now on).
    default_args
        Airflow's task arguments; retrainer's defaults are ``retries=2`` after 1 minute.
    tags
        The DAGs' tags.

    Returns
    -------
    dict
        DAG id -> ``airflow.sdk.DAG``: ``globals().update(...)`` in a DAG file.

    Raises
    ------
    ConfigError
        When Airflow is not installed, or for an invalid ``retrainer.yaml``.

    Examples
    --------
    >>> dags = build_dags("/path/to/project", watch_every=timedelta(minutes=1))  # doctest: +SKIP
    >>> dags["elec2"].schedule  # doctest: +SKIP
    """
    sdk = _airflow()
    from retrainer.config import load_config
    from retrainer.core.triggers import ScheduleTrigger, build_trigger

    config, file = load_config(project)
    where = str(file)
    args = {"retries": 2, "retry_delay": timedelta(minutes=1), **(default_args or {})}
    dags: dict[str, Any] = {}
    for i, pipeline in enumerate(config.pipelines):
        built = [
            build_trigger(spec, where=f"pipelines[{i}].triggers[{j}]")
            for j, spec in enumerate(pipeline.triggers)
        ]
        schedules = [t for t in built if isinstance(t, ScheduleTrigger)]
        # one schedule trigger keeps its own name, so the key is the daemon's for that slot
        trigger = schedules[0].name if len(schedules) == 1 else _SCHEDULE
        common = {
            "start_date": start_date,
            "catchup": False,
            "max_active_runs": 1,  # runs of one pipeline in order: a backfill replays in order
            "default_args": args,
            "tags": [*tags, pipeline.name],
        }
        dags[pipeline.name] = _dag(
            sdk,
            pipeline.name,
            schedule=_timetable(schedules),
            decide=_start_scheduled,
            decide_kwargs={"config": where, "pipeline": pipeline.name, "trigger": trigger},
            description=f"retrainer: {pipeline.name} on its schedule (decide, train, bless, "
            "deploy)",
            **common,
        )
        if len(schedules) < len(built):
            dags[pipeline.name + WATCH_SUFFIX] = _dag(
                sdk,
                pipeline.name + WATCH_SUFFIX,
                schedule=watch_every,
                decide=_start_decided,
                decide_kwargs={"config": where, "pipeline": pipeline.name},
                description=f"retrainer: {pipeline.name}'s triggers other than schedules, "
                f"every {watch_every}",
                **common,
            )
    return dags


def _timetable(schedules: list[Any]) -> Any:
    """The DAG's schedule for the pipeline's schedule triggers (None: manual runs only)."""
    from airflow.sdk import (
        CronTriggerTimetable,
        DeltaTriggerTimetable,
        MultipleCronTriggerTimetable,
    )

    if not schedules:
        return None
    if len(schedules) == 1 and str(schedules[0].cron).startswith("every "):
        from retrainer.core.windows import parse_duration

        # retrainer's `every` slots are whole multiples since 1970-01-01 UTC; Airflow counts
        # a delta from the DAG's previous run (see docs/airflow.md)
        return DeltaTriggerTimetable(parse_duration(str(schedules[0].cron).removeprefix("every ")))
    crons = [s for s in schedules if not str(s.cron).startswith("every ")]
    if len(crons) < len(schedules):
        raise ConfigError(
            "retrainer.integrations.airflow: an 'every <duration>' schedule must be the "
            "pipeline's only schedule trigger under Airflow; got "
            f"{', '.join(repr(s.cron) for s in schedules)}"
        )
    zones = {s.timezone for s in crons}
    if len(crons) == 1:
        return CronTriggerTimetable(str(crons[0].cron), timezone=crons[0].timezone)
    if len(zones) > 1:
        raise ConfigError(
            "retrainer.integrations.airflow: the schedule triggers of a pipeline must share "
            f"one time zone under Airflow; got {', '.join(sorted(zones))}"
        )
    return MultipleCronTriggerTimetable(*(str(s.cron) for s in crons), timezone=zones.pop())


def _dag(
    sdk: Any,
    dag_id: str,
    *,
    decide: Callable[..., Any],
    decide_kwargs: dict[str, Any],
    **dag_args: Any,
) -> Any:
    from airflow.providers.standard.operators.python import PythonOperator

    with sdk.DAG(dag_id, **dag_args) as dag:
        previous = PythonOperator(task_id="decide", python_callable=decide, op_kwargs=decide_kwargs)
        for stage in _STAGES:
            task = PythonOperator(
                task_id=stage,
                python_callable=_stage,
                op_kwargs={
                    "stage": stage,
                    "config": decide_kwargs["config"],
                    "pipeline": decide_kwargs["pipeline"],
                },
            )
            previous >> task
            previous = task
    return dag


# --- the tasks: each opens the project once and calls one stage --------------------------------


def _now(context: Mapping[str, Any]) -> datetime:
    """The time the DAG run stands for: its data interval's end (the logical date of a
    manual run, which has no interval)."""
    for key in ("data_interval_end", "logical_date"):
        value = context.get(key)
        if value is not None:
            break
    else:
        value = context["dag_run"].run_after
    # pendulum's DateTime -> a plain aware datetime (the stores and the JSON events want it)
    return datetime.fromtimestamp(value.timestamp(), UTC)


def _airflow_evidence(context: Mapping[str, Any]) -> dict[str, Any]:
    run = context["dag_run"]
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    return {
        "orchestrator": "airflow",
        "dag_id": run.dag_id,
        "dag_run_id": run.run_id,
        "run_type": str(getattr(run.run_type, "value", run.run_type)),
        "data_interval_start": start.isoformat() if start is not None else None,
        "data_interval_end": end.isoformat() if end is not None else None,
        "try_number": context["ti"].try_number,
    }


def _owner(context: Mapping[str, Any]) -> str:
    run = context["dag_run"]
    return f"airflow:{run.dag_id}/{run.run_id}"


def _started(run: Any, key: tuple[str, str], skip: type[Exception]) -> dict[str, Any]:
    if run is None:
        raise skip(f"the run for trigger {key[0]!r}, slot {key[1]!r} already finished")
    return {"run_id": run.id, "trigger": key[0], "slot": key[1]}


def _start_scheduled(config: str, pipeline: str, trigger: str, **context: Any) -> dict[str, Any]:
    """The DAG's schedule fired: create (or find) the run of this data interval."""
    from airflow.sdk.exceptions import AirflowSkipException

    from retrainer.engine.project import Project
    from retrainer.engine.runs import stages

    now = _now(context)
    slot = now.isoformat()
    evidence = {**_airflow_evidence(context), "slot": slot}
    with Project.open(config) as project:
        # the timetable stands for the schedule trigger; the guards still apply
        admitted = stages.admit(
            project, pipeline, now=now, trigger=trigger, slot=slot, actor="airflow"
        )
        if not admitted.fire:
            raise AirflowSkipException(f"{pipeline}: {admitted.reason}")
        run = stages.start_run(
            project,
            pipeline,
            now=now,
            trigger=trigger,
            slot=slot,
            evidence=evidence,
            owner=_owner(context),
        )
    return _started(run, (trigger, slot), AirflowSkipException)


def _start_decided(config: str, pipeline: str, **context: Any) -> dict[str, Any]:
    """Evaluate the triggers other than schedules; create (or find) the run they fire."""
    from airflow.sdk.exceptions import AirflowSkipException

    from retrainer.engine.project import Project
    from retrainer.engine.runs import stages

    now = _now(context)
    with Project.open(config) as project:
        decision = stages.decide(
            project, pipeline, now=now, exclude_schedules=True, actor="airflow"
        )
        if not decision.fire:
            raise AirflowSkipException(f"{pipeline}: nothing fired ({decision.reason})")
        slot = decision.slot or now.isoformat()
        run = stages.start_run(
            project,
            pipeline,
            now=now,
            trigger=decision.trigger,
            slot=slot,
            evidence={**dict(decision.evidence), "airflow": _airflow_evidence(context)},
            owner=_owner(context),
        )
    return _started(run, (decision.trigger, slot), AirflowSkipException)


def _stage(stage: str, config: str, pipeline: str, **context: Any) -> dict[str, Any]:
    """One stage of the run ``decide`` started; its summary is the task's XCom."""
    from airflow.sdk.exceptions import AirflowFailException

    from retrainer.engine.project import Project
    from retrainer.engine.runs import stages

    started = context["ti"].xcom_pull(task_ids="decide")
    run_id = int(started["run_id"])
    step = {"train": stages.train, "bless": stages.bless, "deploy": stages.deploy}[stage]
    with Project.open(config) as project:
        try:
            result = step(project, run_id, now=_now(context))
        except stages.RunFailed as exc:
            # recorded as failed by the stage: a retry would only raise it again
            raise AirflowFailException(f"{pipeline}: run {run_id} failed: {exc}") from exc
    if result.status == "failed":
        raise AirflowFailException(f"{pipeline}: run {run_id} failed ({result.summary})")
    summary: dict[str, Any] = result.to_json()
    return summary
