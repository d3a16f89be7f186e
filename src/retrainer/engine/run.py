"""One run: load window -> snapshot -> check -> train -> score -> save -> bless -> promote.

Crash safety comes from the order of the writes, each of which is atomic:

1. the artifact is written (temp file + rename) before any record points at it;
2. the model version and its ``model.registered`` event are one transaction;
3. the champion alias move and its ``model.promoted`` event are one transaction, a
   compare-and-set against the champion the candidate was compared with;
4. the run record is closed last.

A process killed anywhere leaves at worst an unreferenced blob, or a registered version that
was not promoted, and a run still marked ``running`` whose owner is gone: the next run marks
that one failed (:func:`reap_stale_runs`). Set ``RETRAINER_FAULT=<step>`` to make the process
die at a named step (the crash tests use it); the steps are in :data:`FAULT_POINTS`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from retrainer.adapters.environment import owner_is_gone, package_versions, process_owner
from retrainer.adapters.sandbox import predict_in_fresh_process, start_fresh_process_server
from retrainer.adapters.serialization import dump_model
from retrainer.adapters.sources import snapshot_of
from retrainer.core.blessing import ScoreCard
from retrainer.core.clock import Clock
from retrainer.core.types import (
    CHAMPION,
    CodeVersion,
    Event,
    EvidenceRow,
    ModelVersion,
    Run,
    Snapshot,
    Verdict,
)
from retrainer.core.windows import holdout_mask
from retrainer.engine.pipeline import Pipeline
from retrainer.engine.profiles import reference_profile
from retrainer.engine.project import Project
from retrainer.errors import (
    ArtifactIntegrityError,
    ConcurrencyError,
    DataError,
    ModelNotFoundError,
    RetrainerError,
    SourceError,
    TrainingError,
    UntrustedArtifactError,
)

FAULT_ENV = "RETRAINER_FAULT"
FAULT_POINTS = (
    "after_run_created",
    "after_snapshot",
    "after_train",
    "after_artifact_write",
    "after_register",
    "after_promote",
)


def fault_point(name: str) -> None:
    """Die abruptly (like ``kill -9``) when ``RETRAINER_FAULT`` names this step."""
    if os.environ.get(FAULT_ENV) == name:
        os._exit(137)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """What a run did: the run record, the version it registered and the verdict."""

    run: Run
    version: ModelVersion | None = None
    verdict: Verdict | None = None
    promoted: bool = False
    previous_champion: int | None = None
    unlabelled_rows: int = 0
    """Rows of the window left out because their label had not arrived (``unlabelled``)."""

    @property
    def ok(self) -> bool:
        return self.run.status == "succeeded"


def retry_or_fail(
    project: Project,
    run: Run,
    *,
    now: datetime,
    why: str,
    retry: bool,
    max_attempts: int,
    backoff: timedelta,
    data: Mapping[str, Any] | None = None,
) -> tuple[Run, Event] | None:
    """End the attempt of a run whose worker could not record it (it died, timed out...).

    With ``retry`` (and fewer than ``max_attempts`` attempts) the run goes back to ``queued``,
    not to be claimed before ``now + backoff * 2**(attempts - 1)`` (its ``lease_expires_at``
    holds that time while it is queued); otherwise it is ``failed``. The change is a
    compare-and-set on the run's epoch, which it bumps, so a presumed-dead worker that comes
    back cannot overwrite it; None when another process got there first.
    """
    if retry and run.attempts < max_attempts:
        wait = backoff * (2 ** max(run.attempts - 1, 0))
        changed = dataclasses.replace(
            run,
            status="queued",
            owner=None,
            error=why,
            epoch=run.epoch + 1,
            lease_expires_at=now + wait,
        )
        kind = "run.retrying"
        message = (
            f"run {run.id} of {run.pipeline}: {why}; retry {run.attempts + 1} of "
            f"{max_attempts} not before {now + wait:%Y-%m-%d %H:%M:%S}Z"
        )
    else:
        changed = dataclasses.replace(
            run, status="failed", error=why, finished_at=now, epoch=run.epoch + 1
        )
        kind, message = "run.failed", f"run {run.id} of {run.pipeline} failed: {why}"
    try:
        done = project.store.update_run(changed, expected_epoch=run.epoch)
    except ConcurrencyError:
        return None
    event = project.store.append_event(
        Event(
            kind=kind,
            at=now,
            message=message,
            pipeline=run.pipeline,
            run_id=run.id,
            data={"error": why, "attempts": run.attempts, **(data or {})},
        )
    )
    return done, event


def reap_stale_runs(
    project: Project,
    now: datetime,
    *,
    max_attempts: int = 1,
    backoff: timedelta = timedelta(minutes=1),
) -> list[Run]:
    """Repair every ``running`` run whose process is gone or whose lease expired: retry it
    (fewer than ``max_attempts`` attempts) or fail it, see :func:`retry_or_fail`."""
    reaped = []
    for run in project.store.list_runs(status="running", limit=None):
        expired = run.lease_expires_at is not None and run.lease_expires_at <= now
        if not (owner_is_gone(run.owner) or expired):
            continue
        why = (
            f"interrupted: its process {run.owner} is gone"
            if not expired
            else f"interrupted: its lease expired at {run.lease_expires_at:%Y-%m-%d %H:%M:%S}Z"
        )
        done = retry_or_fail(
            project,
            run,
            now=now,
            why=why,
            retry=True,
            max_attempts=max_attempts,
            backoff=backoff,
            data={"reaped": True},
        )
        if done is not None:
            reaped.append(done[0])
    return reaped


def _online_base(project: Project, pipeline: Pipeline) -> tuple[int, Any, datetime] | None:
    """For a ``new`` window: (champion version, its model, where new rows start), else None."""
    if not pipeline.incremental:
        return None
    current = project.store.get_alias(pipeline.name, CHAMPION)
    if current is None:
        return None
    mv = project.store.get_version(pipeline.name, current)
    if mv.snapshot is None:
        return None
    # after the newest row the champion learned (with delayed labels the window's end runs
    # ahead of the rows in it); a window without rows: after its end
    newest = mv.snapshot.max_time
    since = newest + timedelta(microseconds=1) if newest is not None else mv.snapshot.window_end
    if since is None:
        return None
    try:
        model = project.load_model(mv.artifact_sha256, mv.artifact_format)
    except (ArtifactIntegrityError, UntrustedArtifactError, ModelNotFoundError) as exc:
        raise TrainingError(
            f"window kind 'new' updates the champion, and champion v{current} cannot be "
            f"loaded: {exc}; promote a loadable version or retrain with a full window"
        ) from exc
    return current, model, since


def _champion_card(
    project: Project, pipeline: Pipeline, holdout: Any
) -> tuple[int | None, ScoreCard | None, EvidenceRow | None]:
    """Score the current champion on the candidate's holdout (same rows)."""
    current = project.store.get_alias(pipeline.name, CHAMPION)
    if current is None:
        return None, None, None
    try:
        mv = project.store.get_version(pipeline.name, current)
        model = project.load_model(mv.artifact_sha256, mv.artifact_format)
        return current, pipeline.score(model, holdout), None
    except (
        ArtifactIntegrityError,
        UntrustedArtifactError,
        ModelNotFoundError,
        TrainingError,
    ) as exc:
        row = EvidenceRow(
            rule="champion",
            metric="-",
            candidate=None,
            champion=None,
            delta=None,
            threshold="champion loads and predicts",
            passed=True,
            note=f"champion v{current} unusable, compared on absolute rules only: {exc}",
        )
        return current, None, row


def _sanity_row(
    project: Project, pipeline: Pipeline, model: Any, sha256: str, holdout: Any
) -> EvidenceRow:
    cfg = pipeline.config.blessing.sanity
    sample = holdout.iloc[: cfg.sample_rows][pipeline.feature_columns]
    ser = project.config.serialization
    result = predict_in_fresh_process(
        artifact_url=project.artifacts.url(sha256),
        sha256=sha256,
        fmt=ser.format,
        trusted_types=ser.trusted_types,
        allow_pickle=ser.allow_pickle,
        sample=sample,
        timeout_s=cfg.timeout,
    )
    passed, note = result.ok, result.error or ""
    if result.ok:
        expected = np.asarray(model.predict(sample))
        got = result.predictions
        same = got is not None and got.shape == expected.shape
        if same and np.issubdtype(expected.dtype, np.number):
            same = bool(np.allclose(got, expected, equal_nan=True))  # type: ignore[arg-type]
        elif same:
            same = bool(np.array_equal(got, expected))  # type: ignore[arg-type]
        passed = same
        note = (
            f"{len(sample)} rows predicted in {result.seconds:.2f}s"
            if same
            else f"predictions in a fresh process differ from the trained model's "
            f"on {len(sample)} rows"
        )
    return EvidenceRow(
        rule="sanity",
        metric="reload+predict",
        candidate=None,
        champion=None,
        delta=None,
        threshold="same predictions in a fresh process",
        passed=passed,
        note=note,
    )


def new_run(
    project: Project,
    pipeline: Pipeline,
    *,
    now: datetime,
    cause: str,
    evidence: Mapping[str, Any] | None = None,
    key: str | None = None,
    status: str = "queued",
) -> tuple[Run, bool]:
    """Create (idempotently, by key) a run of ``pipeline``; return (run, created)."""
    store = project.store
    store.ensure_pipeline(pipeline.name, pipeline.definition_hash, now)
    commit, dirty = project.code_state()
    code = CodeVersion(pipeline_hash=pipeline.definition_hash, git_commit=commit, git_dirty=dirty)
    return store.create_run(
        Run(
            key=key or f"{pipeline.name}/{cause}/{now:%Y%m%dT%H%M%S}/{uuid.uuid4().hex[:12]}",
            pipeline=pipeline.name,
            cause=cause,
            status=status,  # type: ignore[arg-type]
            evidence=dict(evidence or {}),
            params=pipeline.recorded_params(),
            code=code,
            created_at=now,
        )
    )


def claim_run(project: Project, run: Run, *, now: datetime, owner: str | None = None) -> Run:
    """Take a queued run: ``running``, owned, leased for the pipeline's ``run.timeout``.

    A compare-and-set on the run's epoch: if another process claimed it first this raises
    ``ConcurrencyError`` and changes nothing.
    """
    timeout = project.pipeline(run.pipeline).config.run.timeout
    claimed = project.store.update_run(
        dataclasses.replace(
            run,
            status="running",
            owner=owner or process_owner(),
            epoch=run.epoch + 1,
            attempts=run.attempts + 1,
            started_at=now,
            lease_expires_at=now + timedelta(seconds=timeout),
            error=None,
        ),
        expected_epoch=run.epoch,
    )
    project.store.append_event(
        Event(
            kind="run.started",
            at=now,
            message=(
                f"run {run.id} of {run.pipeline} started ({run.cause}"
                + (f", attempt {claimed.attempts}" if claimed.attempts > 1 else "")
                + ")"
            ),
            pipeline=run.pipeline,
            run_id=run.id,
            data={"cause": run.cause, "evidence": run.evidence, "attempt": claimed.attempts},
        )
    )
    return claimed


def execute_run(
    project: Project,
    pipeline_name: str | None = None,
    *,
    clock: Clock,
    cause: str = "manual",
    evidence: Mapping[str, Any] | None = None,
    key: str | None = None,
    actor: str = "retrainer run",
) -> RunResult:
    """Create, claim and execute one run of a pipeline now, in this process.

    Bad data and failing user code end the run as ``failed`` with a message naming the
    column or the call; no version is created and the champion is unchanged. Other errors
    (a broken store, an interrupt) propagate after the run is marked failed when possible.
    """
    _start_sanity_server(project, pipeline_name)
    pipeline = project.pipeline(pipeline_name)
    now = clock.now()
    reap_stale_runs(project, now)
    run, _ = new_run(project, pipeline, now=now, cause=cause, evidence=evidence, key=key)
    run = claim_run(project, run, now=now)
    fault_point("after_run_created")
    return execute_claimed_run(project, run, clock=clock, actor=actor)


def execute_claimed_run(
    project: Project, run: Run, *, clock: Clock, actor: str = "retrainer"
) -> RunResult:
    """Execute a run this process has claimed (see :func:`claim_run`).

    Every update of the run is a compare-and-set on its epoch, so a worker whose lease was
    taken over (it was presumed dead) cannot overwrite the new owner's record.
    """
    _start_sanity_server(project, run.pipeline)
    pipeline = project.pipeline(run.pipeline)
    timings: dict[str, float] = {}
    try:
        return _execute(project, pipeline, run, clock, timings, actor)
    except (DataError, SourceError, TrainingError, UntrustedArtifactError) as exc:
        return _fail(project, run, clock, timings, exc)
    except BaseException as exc:
        # anything else (a bug, a broken store, Ctrl-C): record it, then let it propagate
        with contextlib.suppress(Exception):  # the store itself may be what broke
            _fail(project, run, clock, timings, exc)
        raise


def _start_sanity_server(project: Project, pipeline_name: str | None) -> None:
    # before the pipeline imports the user's code: the server's imports (~2 s) then overlap
    # with this process's, the load and the fit
    if project.config.pipeline(pipeline_name).blessing.sanity.enabled:
        start_fresh_process_server()


def _fail(
    project: Project, run: Run, clock: Clock, timings: dict[str, float], exc: BaseException
) -> RunResult:
    now = clock.now()
    message = str(exc) if isinstance(exc, RetrainerError) else f"{type(exc).__name__}: {exc}"
    failed = project.store.update_run(
        dataclasses.replace(
            project.store.get_run(run.id),  # type: ignore[arg-type]
            status="failed",
            error=message,
            finished_at=now,
            timings=timings,
        ),
        expected_epoch=run.epoch,
    )
    project.store.append_event(
        Event(
            kind="run.failed",
            at=now,
            message=f"run {run.id} of {run.pipeline} failed: {message}",
            pipeline=run.pipeline,
            run_id=run.id,
            data={"error": message, "error_type": type(exc).__name__},
        )
    )
    return RunResult(run=failed)


class _Timer:
    def __init__(self, timings: dict[str, float], name: str) -> None:
        self.timings, self.name = timings, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.name] = round(time.perf_counter() - self.t0, 6)


def _execute(
    project: Project,
    pipeline: Pipeline,
    run: Run,
    clock: Clock,
    timings: dict[str, float],
    actor: str,
) -> RunResult:
    store = project.store
    ser = project.config.serialization
    now = clock.now()

    base = _online_base(project, pipeline)  # (version, model) an online update starts from
    change = None
    if pipeline.follows_change:
        from retrainer.engine.monitor import last_change

        change = last_change(store, pipeline.name)
    with _Timer(timings, "load"):
        frame, start, end = pipeline.load(now, since=base[2] if base else None, change_at=change)
    where = (
        f"[{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}) of {pipeline.source.description}"
        if start is not None
        else f"[.. {end:%Y-%m-%d %H:%M}) of {pipeline.source.description}"
    )
    loaded = frame
    frame, unlabelled = pipeline.labelled(frame, where)  # labels not arrived yet: left out
    hashes = pipeline.known_row_hashes(loaded) if frame is loaded else None
    summary = snapshot_of(frame, pipeline.time_column, hashes=hashes)
    snapshot = store.add_snapshot(
        Snapshot(
            pipeline=pipeline.name,
            source=pipeline.source.description,
            window_start=start,
            window_end=end,
            min_time=summary.min_time,
            max_time=summary.max_time,
            rows=summary.rows,
            schema=summary.schema,
            fingerprint=summary.fingerprint,
            created_at=now,
        )
    )
    run = store.update_run(
        dataclasses.replace(run, snapshot_id=snapshot.id), expected_epoch=run.epoch
    )
    fault_point("after_snapshot")

    with _Timer(timings, "validate"):
        pipeline.validate(frame, where)
        mask = holdout_mask(
            frame[pipeline.time_column].to_numpy(), pipeline.config.blessing.holdout
        )
        train, holdout = frame.loc[~mask], frame.loc[mask]
        if base is None:  # an online update may see one class in a day
            pipeline.check_classes(train, where)

    with _Timer(timings, "train"):
        cpu: list[float] = []  # process time of the fits themselves
        if base is not None:
            model = pipeline.update(copy.deepcopy(base[1]), train, cpu=cpu)  # champion kept
        else:
            model = pipeline.fit(train, cpu=cpu)
        timings["train_cpu"] = round(sum(cpu), 6)
    fault_point("after_train")

    with _Timer(timings, "score"):
        candidate_card = pipeline.score(model, holdout)
        champion_version, champion_card, champion_note = _champion_card(project, pipeline, holdout)

    profile = None
    if project.profiles:
        with _Timer(timings, "profile"):
            profile = reference_profile(pipeline, model, train)

    if pipeline.incremental:  # test-then-train: an online model learns its holdout rows too
        with _Timer(timings, "update_holdout"):
            pipeline.update(model, holdout, cpu=cpu)
            timings["train_cpu"] = round(sum(cpu), 6)

    with _Timer(timings, "save"):
        blob = dump_model(model, ser.format)
        ref = project.artifacts.put(blob)
        project.remember_model(ref.sha256, model)
    fault_point("after_artifact_write")

    extra: list[EvidenceRow] = []
    if champion_note is not None:
        extra.append(champion_note)
    if pipeline.config.blessing.sanity.enabled:
        with _Timer(timings, "sanity"):
            extra.append(_sanity_row(project, pipeline, model, ref.sha256, holdout))

    verdict = pipeline.gate.evaluate(
        candidate_card, champion_card, champion_version=champion_version, extra=extra
    )
    now = clock.now()
    draft = ModelVersion(
        pipeline=pipeline.name,
        version=0,
        created_at=now,
        run_id=run.id,
        artifact_sha256=ref.sha256,
        artifact_size=ref.size,
        artifact_format=ser.format,
        metrics=dict(candidate_card.metrics),
        params=pipeline.recorded_params(),
        snapshot=snapshot,
        code=run.code or CodeVersion(pipeline_hash=pipeline.definition_hash),
        environment=package_versions(),
        blessing=verdict,
        profile=profile.to_dict() if profile is not None else None,
    )
    version = store.register_version(
        draft,
        event=Event(
            kind="blessing.passed" if verdict.passed else "blessing.rejected",
            at=now,
            message=(
                f"{pipeline.name}: candidate from run {run.id} "
                f"{'blessed' if verdict.passed else 'rejected'}: {verdict.reason}"
            ),
            pipeline=pipeline.name,
            run_id=run.id,
            data={
                "passed": verdict.passed,
                "reason": verdict.reason,
                "champion_version": champion_version,
                "metrics": dict(candidate_card.metrics),
            },
        ),
    )
    fault_point("after_register")

    promoted = False
    outcome = "not_blessed"
    if verdict.passed:
        try:
            store.move_alias(
                pipeline.name,
                CHAMPION,
                version.version,
                at=now,
                reason=f"blessed by run {run.id}",
                actor=actor,
                expected=champion_version,
                event=Event(
                    kind="model.promoted",
                    at=now,
                    message=(
                        f"{pipeline.name} v{version.version} promoted to champion"
                        + (f" (was v{champion_version})" if champion_version else "")
                    ),
                    pipeline=pipeline.name,
                    run_id=run.id,
                    version=version.version,
                    data={"alias": CHAMPION, "previous": champion_version, "policy": "replace"},
                ),
            )
            promoted, outcome = True, "promoted"
        except ConcurrencyError as exc:
            outcome = "registered"
            store.append_event(
                Event(
                    kind="promotion.skipped",
                    at=now,
                    message=(
                        f"{pipeline.name} v{version.version} not promoted: the champion changed "
                        f"during the run ({exc})"
                    ),
                    pipeline=pipeline.name,
                    run_id=run.id,
                    version=version.version,
                )
            )
    fault_point("after_promote")

    now = clock.now()
    done = store.update_run(
        dataclasses.replace(
            run,
            status="succeeded",
            finished_at=now,
            metrics=dict(candidate_card.metrics),
            version=version.version,
            outcome=outcome,  # type: ignore[arg-type]
            timings=timings,
        ),
        expected_epoch=run.epoch,
    )
    store.append_event(
        Event(
            kind="run.succeeded",
            at=now,
            message=f"run {run.id} of {pipeline.name} succeeded: v{version.version} "
            + outcome.replace("_", " ")  # "not blessed", not the enum's "not_blessed"
            + (f" ({unlabelled} rows without a label yet left out)" if unlabelled else ""),
            pipeline=pipeline.name,
            run_id=run.id,
            version=version.version,
            data={"outcome": outcome, "timings": timings}
            | ({"unlabelled_rows": unlabelled} if unlabelled else {}),
        )
    )
    return RunResult(
        run=done,
        version=version,
        verdict=verdict,
        promoted=promoted,
        previous_champion=champion_version,
        unlabelled_rows=unlabelled,
    )
