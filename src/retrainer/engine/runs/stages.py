"""A retrain as separate stages, each callable from its own process: the orchestrators' API.

The daemon executes a run in one call (:func:`~retrainer.engine.runs.run.execute_claimed_run`).
Airflow and Prefect run each step as a task of their own, in other processes or on other
machines, retried on failure and replayed by backfills. These functions give them that shape
on the same steps of :mod:`retrainer.engine.runs.run`:

- :func:`decide` evaluates the pipeline's triggers as a daemon tick does and records the
  evidence; it queues nothing;
- :func:`start_run` creates the run once per key (``run_key(pipeline, trigger, slot)``: a
  retried task or a backfilled date finds it) and claims it; None when it already finished;
- :func:`train` loads the window, fits, scores and stores the candidate; the holdout rows are
  stored too (a content-addressed Parquet blob), so that :func:`bless` judges champion and
  candidate on the very rows the candidate was scored on, in whatever process it runs;
- :func:`bless` runs the gate and registers the version; :func:`deploy` applies the rollout
  policy and closes the run.

What a stage hands to the next is the run's stage record (state ``run/<id>``): each stage
reads it, skips what it says is done, and writes its own part last, so a stage repeated after a
crash or a retry redoes only unfinished work. Bad data and failing user code fail the run and
raise :class:`RunFailed` (the task fails; a retry raises again and does nothing). Anything else
(a store away, a killed worker) propagates with the run left ``running``: the orchestrator's
retry continues it.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from retrainer.adapters.artifacts import ArtifactRef
from retrainer.adapters.environment import executed_on, process_owner
from retrainer.adapters.metadata._records import (
    evidence_from_json,
    evidence_to_json,
    metrics_from_json,
    metrics_to_json,
)
from retrainer.core.blessing import ScoreCard, SliceScore
from retrainer.core.clock import SimulatedClock, check_time
from retrainer.core.significance import HoldoutRows
from retrainer.core.triggers import Decision, run_key
from retrainer.core.types import Event, Run
from retrainer.engine.project import Project
from retrainer.engine.runs.claims import LEASE, Heartbeat, claim_run, new_run
from retrainer.engine.runs.run import (
    Blessing,
    LoadedWindow,
    TrainedCandidate,
    _fail,
    _finish,
    _start_sanity_server,
    bless_step,
    deploy_step,
    load_step,
    register_step,
    train_step,
)
from retrainer.errors import (
    DataError,
    RetrainerError,
    SourceError,
    TrainingError,
    UntrustedArtifactError,
)

__all__ = [
    "RunFailed",
    "StageResult",
    "admit",
    "bless",
    "decide",
    "deploy",
    "start_run",
    "train",
]

_EXPECTED = (DataError, SourceError, TrainingError, UntrustedArtifactError)
"""Errors of the data or the user's code: the run fails (a retry would fail the same way)."""

STAGES = ("train", "bless", "deploy")


class RunFailed(RetrainerError):
    """A stage found (or made) its run ``failed``: the orchestrator's task should fail."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StageResult:
    """What a stage left: the run's status after it and a JSON-ready summary (an XCom)."""

    run_id: int
    stage: str
    status: str
    summary: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "stage": self.stage, "status": self.status} | self.summary


def decide(
    project: Project,
    pipeline: str,
    *,
    now: datetime,
    exclude_schedules: bool = False,
    actor: str = "retrainer",
) -> Decision:
    """Evaluate ``pipeline``'s triggers and guards at ``now``, as a daemon tick does.

    The monitor runs first when a drift trigger needs it; a ``trigger.fired`` or
    ``trigger.evaluated`` event records the evidence; the trigger state is saved. A firing
    queues its run first, as a tick does; the caller then starts it with :func:`start_run`
    (``decision.trigger``, ``decision.slot``). So that a task that dies in between loses
    nothing, a run still queued is returned first (as the decision that queued it), then a
    pending manual request (``retrainer run --queue``) as a firing ``manual`` decision.
    ``exclude_schedules`` leaves out the ``schedule`` triggers, for an orchestrator whose own
    schedule stands for them.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from pathlib import Path
    >>> from retrainer.config import parse_config
    >>> from retrainer.engine.project import Project
    >>> config = parse_config({"pipelines": [{
    ...     "name": "churn", "target": "y", "features": ["x"], "metrics": ["accuracy"],
    ...     "source": {"kind": "parquet", "url": "unused.parquet", "time_column": "ts"},
    ...     "model": {"estimator": "sklearn.tree:DecisionTreeClassifier"},
    ...     "blessing": {"rules": [{"metric": "accuracy", "min": 0.9}]},
    ...     "triggers": [{"schedule": "0 2 * * MON"}]}]})
    >>> project = Project.in_memory(config, Path("."))
    >>> project.git = (None, None)
    >>> decide(project, "churn", now=datetime(2024, 1, 1, 3, tzinfo=UTC)).fire  # arms
    False
    >>> d = decide(project, "churn", now=datetime(2024, 1, 8, 3, tzinfo=UTC))
    >>> d.fire, d.slot
    (True, '2024-01-08T02:00:00+00:00')
    >>> run = start_run(project, "churn", now=datetime(2024, 1, 8, 3, tzinfo=UTC),
    ...                 trigger=d.trigger, slot=d.slot)
    >>> run.status, run.cause
    ('running', 'schedule')
    >>> decide(project, "churn", now=datetime(2024, 1, 8, 3, tzinfo=UTC),
    ...        exclude_schedules=True).reason
    'churn has no trigger to evaluate'
    """
    from retrainer.engine.control.controller import Controller

    now = check_time(now, "the decision's time")
    controller = Controller(project, clock=SimulatedClock(now), owner=actor)
    return controller.decide_once(pipeline, now, exclude_schedules=exclude_schedules)


def admit(
    project: Project,
    pipeline: str,
    *,
    now: datetime,
    trigger: str,
    slot: str,
    actor: str = "retrainer",
) -> Decision:
    """Pass an orchestrator's scheduled firing through ``pipeline``'s guards at ``now``.

    An orchestrator's own schedule stands for the pipeline's ``schedule`` triggers (the
    Airflow DAG's timetable, a Prefect deployment's cron); this applies the guards a daemon
    would apply to that firing (cooldown, max retrains, min new rows) and records a
    ``trigger.fired`` or, when one holds it back, a ``trigger.evaluated`` event with the
    guards' evidence. Unlike a daemon, which fires a held schedule slot once the guard lets
    it, the orchestrator's slot is skipped: its next slot is evaluated again. Without guards
    the firing passes and nothing is recorded here (:func:`start_run` records the run).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from pathlib import Path
    >>> from retrainer.config import parse_config
    >>> from retrainer.engine.project import Project
    >>> config = parse_config({"pipelines": [{
    ...     "name": "churn", "target": "y", "features": ["x"], "metrics": ["accuracy"],
    ...     "source": {"kind": "parquet", "url": "unused.parquet", "time_column": "ts"},
    ...     "model": {"estimator": "sklearn.tree:DecisionTreeClassifier"},
    ...     "blessing": {"rules": [{"metric": "accuracy", "min": 0.9}]},
    ...     "triggers": [{"schedule": "0 2 * * *"}],
    ...     "guards": [{"max_retrains": {"count": 1, "per": "7d"}}]}]})
    >>> project = Project.in_memory(config, Path("."))
    >>> project.git = (None, None)
    >>> now = datetime(2024, 1, 8, 2, tzinfo=UTC)
    >>> d = admit(project, "churn", now=now, trigger="schedule", slot=now.isoformat())
    >>> d.fire, start_run(project, "churn", now=now, trigger=d.trigger, slot=d.slot).status
    (True, 'running')
    >>> later = datetime(2024, 1, 9, 2, tzinfo=UTC)
    >>> d = admit(project, "churn", now=later, trigger="schedule", slot=later.isoformat())
    >>> d.fire, d.reason.split(" (held back")[0]
    (False, 'max_retrains: 1 runs in the last 7d (limit 1)')
    """
    from retrainer.engine.control.controller import Controller

    now = check_time(now, "the decision's time")
    controller = Controller(project, clock=SimulatedClock(now), owner=actor)
    return controller.admit_once(
        pipeline, now, trigger=trigger, slot=slot, reason=f"{trigger}: slot {slot} ({actor})"
    )


def start_run(
    project: Project,
    pipeline: str,
    *,
    now: datetime,
    trigger: str,
    slot: str,
    evidence: Mapping[str, Any] | None = None,
    cause: str | None = None,
    owner: str | None = None,
) -> Run | None:
    """The run of ``(pipeline, trigger, slot)``, created once and claimed; None if it ended.

    A run of that key still ``running`` (a task retried after its process died) is returned
    to be continued by the stages; one ``queued`` (by :func:`decide`, or re-queued by a
    reaper) is claimed, with ``evidence`` added to its own. ``cause`` names what fired
    (default: ``trigger``) when the run is created here.
    """
    now = check_time(now, "the run's time")
    definition = project.pipeline(pipeline)
    key = run_key(pipeline, trigger, slot)

    def queued(run: Run) -> Event:
        return Event(
            kind="run.queued",
            at=now,
            message=f"run {run.id} of {pipeline} queued by {cause or trigger}",
            pipeline=pipeline,
            run_id=run.id,
            data={"key": key, "trigger": trigger, "slot": slot, "by": owner or process_owner()},
        )

    run, _ = new_run(
        project,
        definition,
        now=now,
        cause=cause or trigger,
        evidence=dict(evidence or {}),
        key=key,
        event=queued,
    )
    if run.status in ("succeeded", "failed"):
        return None
    if run.status == "queued":  # queued by decide (or by a start that died before its claim)
        evidence = {**run.evidence, **dict(evidence or {})}
        return claim_run(project, dataclasses.replace(run, evidence=evidence), now=now, owner=owner)
    return run


def train(project: Project, run_id: int, *, now: datetime) -> StageResult:
    """Load the run's window, fit, score and store the candidate (and the holdout rows)."""
    return _stage(project, run_id, "train", now)


def bless(project: Project, run_id: int, *, now: datetime) -> StageResult:
    """Score the champion on the candidate's holdout rows, run the gate, register the version."""
    return _stage(project, run_id, "bless", now)


def deploy(
    project: Project, run_id: int, *, now: datetime, actor: str = "retrainer"
) -> StageResult:
    """Apply the pipeline's rollout policy to the registered version and close the run."""
    return _stage(project, run_id, "deploy", now, actor=actor)


# --- the machinery -------------------------------------------------------------------------


def _placed() -> dict[str, Any]:
    # the stage that closes the run says where it ran (an orchestrator's worker)
    return {"executed_on": executed_on()}


def _key(run_id: int) -> str:
    return f"run/{run_id}"


def _stage(
    project: Project, run_id: int, stage: str, now: datetime, *, actor: str = "retrainer"
) -> StageResult:
    now = check_time(now, "the stage's time")
    store = project.store
    run = store.get_run(run_id)
    stored = store.get_state(run.pipeline, _key(run_id))
    record, revision = stored if stored is not None else ({}, None)
    if run.status == "failed":
        raise RunFailed(f"run {run_id} of {run.pipeline} failed: {run.error}")
    done = record.get("done", [])
    if run.status == "succeeded" or stage in done:
        return _result(run, stage, record)
    missing = [s for s in STAGES[: STAGES.index(stage)] if s not in done]
    if missing:
        raise RetrainerError(
            f"run {run_id} of {run.pipeline}: stage {stage!r} needs {missing[0]!r} first "
            f"(done: {', '.join(done) or 'none'})"
        )
    run = _hold(project, run, now)
    pipeline = project.pipeline(run.pipeline)
    timings: dict[str, float] = dict(record.get("timings", {}))
    with Heartbeat(project, run, timeout=pipeline.config.run.timeout):
        try:
            if stage == "train":
                _start_sanity_server(project, run.pipeline)
                update = _train(project, run, now, timings)
            elif stage == "bless":
                _start_sanity_server(project, run.pipeline)
                update = _bless(project, run, record, now, timings)
            else:
                run = _deploy(project, run, record, now, timings, actor)
                update = {}
        except _EXPECTED as exc:
            failed = _fail(project, run, SimulatedClock(now), timings, exc, _placed()).run
            raise RunFailed(f"run {run_id} of {run.pipeline} failed: {failed.error}") from exc
    record = record | update | {"done": [*done, stage], "timings": timings}
    store.put_state(run.pipeline, _key(run_id), record, at=now, expected_revision=revision)
    return _result(store.get_run(run_id), stage, record)


def _hold(project: Project, run: Run, now: datetime) -> Run:
    """This process's hold on the run: claimed if queued, else owned and leased anew (the
    previous stage's process is gone; the epoch stays, so its records still apply)."""
    if run.status == "queued":
        return claim_run(project, run, now=now)
    lease = min(LEASE, timedelta(seconds=project.pipeline(run.pipeline).config.run.timeout))
    return project.store.update_run(
        dataclasses.replace(
            run,
            owner=process_owner(),
            lease_expires_at=project.liveness_clock.now() + lease,
        ),
        expected_epoch=run.epoch,
    )


def _result(run: Run, stage: str, record: Mapping[str, Any]) -> StageResult:
    summary: dict[str, Any] = {"pipeline": run.pipeline}
    for name in ("rows", "candidate_metrics", "version", "passed", "reason", "outcome"):
        if name in record:
            summary[name] = record[name]
    if run.outcome is not None:
        summary["outcome"] = run.outcome
    return StageResult(run_id=run.id or 0, stage=stage, status=run.status, summary=summary)


def _card_to_json(card: ScoreCard) -> dict[str, Any]:
    return {
        "n": card.n,
        "metrics": metrics_to_json(card.metrics),
        "slices": {
            column: {
                value: {"n": s.n, "metrics": metrics_to_json(s.metrics)}
                for value, s in slices.items()
            }
            for column, slices in card.slices.items()
        },
    }


def _card_from_json(data: Mapping[str, Any]) -> ScoreCard:
    return ScoreCard(
        n=int(data["n"]),
        metrics=metrics_from_json(data["metrics"]),
        slices={
            column: {
                value: SliceScore(n=int(s["n"]), metrics=metrics_from_json(s["metrics"]))
                for value, s in slices.items()
            }
            for column, slices in data.get("slices", {}).items()
        },
    )


def _rows_blob(rows: HoldoutRows) -> bytes:
    """The candidate's per-row answers (significance rules), as Parquet: not in the JSON record,
    and not recomputed in bless, where an online model has since learned the holdout rows."""
    columns: dict[str, Any] = {"y_pred": rows.y_pred}
    score = rows.y_score
    if score is not None and score.ndim == 1:
        columns["y_score"] = score
    elif score is not None:
        columns.update({f"y_score_{j}": score[:, j] for j in range(score.shape[1])})
    buffer = io.BytesIO()
    pd.DataFrame(columns).to_parquet(buffer, index=False)
    return buffer.getvalue()


def _rows_from_blob(blob: bytes, y_true: Any) -> HoldoutRows:
    frame = pd.read_parquet(io.BytesIO(blob))
    matrix = [c for c in frame.columns if c.startswith("y_score_")]
    score = (
        frame["y_score"].to_numpy()
        if "y_score" in frame.columns
        else frame[matrix].to_numpy()
        if matrix
        else None
    )
    return HoldoutRows(y_true=y_true, y_pred=frame["y_pred"].to_numpy(), y_score=score)


def _ref(data: Mapping[str, Any]) -> ArtifactRef:
    return ArtifactRef(sha256=data["sha256"], size=int(data["size"]), url=data.get("url", ""))


def _train(project: Project, run: Run, now: datetime, timings: dict[str, float]) -> dict[str, Any]:
    pipeline = project.pipeline(run.pipeline)
    loaded = load_step(project, pipeline, run, now=now, timings=timings)
    trained = train_step(project, pipeline, loaded, timings=timings)
    buffer = io.BytesIO()
    loaded.holdout.to_parquet(buffer, index=True)  # the index: slices and row order survive
    holdout = project.artifacts.put(buffer.getvalue())
    rows = None
    if trained.card.rows is not None:
        rows_ref = project.artifacts.put(_rows_blob(trained.card.rows))
        rows = {"sha256": rows_ref.sha256, "size": rows_ref.size}
    return {
        "snapshot_id": loaded.snapshot.id,
        "rows": loaded.snapshot.rows,
        "unlabelled": loaded.unlabelled,
        "findings": evidence_to_json(loaded.findings),
        "holdout": {"sha256": holdout.sha256, "size": holdout.size},
        "candidate": {
            "sha256": trained.artifact.sha256,
            "size": trained.artifact.size,
            "types": list(trained.artifact_types) if trained.artifact_types else None,
        },
        "card": _card_to_json(trained.card),
        "row_answers": rows,
        "candidate_metrics": metrics_to_json(trained.card.metrics),
        "profile": trained.profile.to_dict() if trained.profile is not None else None,
    }


def _restore(
    project: Project, run: Run, record: Mapping[str, Any], *, with_model: bool
) -> tuple[LoadedWindow, TrainedCandidate]:
    """The train stage's outputs, read back from its record and its two blobs."""
    from retrainer.core.profile import Profile

    holdout = pd.DataFrame()
    model = None
    if with_model:
        blob = project.artifacts.get(record["holdout"]["sha256"], size=record["holdout"]["size"])
        holdout = pd.read_parquet(io.BytesIO(blob))
        candidate = record["candidate"]
        model = project.load_model(
            candidate["sha256"],
            project.config.serialization.format,
            recorded_types=candidate.get("types"),
            size=candidate["size"],
        )
    loaded = LoadedWindow(
        run=run,
        snapshot=project.store.get_snapshot(record["snapshot_id"]),
        train=holdout.iloc[:0],
        holdout=holdout,
        base=None,
        unlabelled=int(record.get("unlabelled", 0)),
        findings=evidence_from_json(record.get("findings", [])),
    )
    card = _card_from_json(record["card"])
    answers = record.get("row_answers")
    if with_model and answers:
        blob = project.artifacts.get(answers["sha256"], size=answers["size"])
        target = project.pipeline(run.pipeline).config.target
        rows = _rows_from_blob(blob, holdout[target].to_numpy())
        card = dataclasses.replace(card, rows=rows)
    candidate = record["candidate"]
    trained = TrainedCandidate(
        model=model,
        card=card,
        artifact=_ref(candidate),
        profile=Profile.from_dict(record["profile"]) if record.get("profile") else None,
        artifact_types=tuple(candidate["types"]) if candidate.get("types") else None,
    )
    return loaded, trained


def _bless(
    project: Project,
    run: Run,
    record: Mapping[str, Any],
    now: datetime,
    timings: dict[str, float],
) -> dict[str, Any]:
    pipeline = project.pipeline(run.pipeline)
    loaded, trained = _restore(project, run, record, with_model=True)
    blessing = bless_step(project, pipeline, loaded, trained, timings=timings, now=now)
    # a retry after a crash between the registration and the stage record: no second version
    version = next(
        (
            v
            for v in project.store.list_versions(run.pipeline, profiles=False)
            if v.run_id == run.id
        ),
        None,
    ) or register_step(project, pipeline, loaded, trained, blessing, now=now)
    return {
        "version": version.version,
        "champion_version": blessing.champion_version,
        "passed": blessing.verdict.passed,
        "reason": blessing.verdict.reason,
    }


def _deploy(
    project: Project,
    run: Run,
    record: Mapping[str, Any],
    now: datetime,
    timings: dict[str, float],
    actor: str,
) -> Run:
    pipeline = project.pipeline(run.pipeline)
    version = project.store.get_version(run.pipeline, int(record["version"]))
    assert version.blessing is not None  # registered by the bless stage, with its verdict
    blessing = Blessing(verdict=version.blessing, champion_version=record.get("champion_version"))
    deployment = deploy_step(project, pipeline, run, version, blessing, now=now, actor=actor)
    loaded, trained = _restore(project, run, record, with_model=False)
    return _finish(
        project,
        pipeline,
        loaded,
        trained,
        version,
        blessing,
        deployment,
        now=now,
        timings=timings,
        placed=_placed(),
    ).run
