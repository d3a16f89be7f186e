"""One run, as explicit steps: load -> train -> bless -> register -> deploy.

:func:`load_step` loads the window, records its snapshot, checks the rows and splits off the
holdout; :func:`train_step` fits (or updates the champion online), scores the candidate on the
holdout and stores its artifact; :func:`bless_step` scores the champion on the same rows, runs
the sanity check and the gate; :func:`register_step` registers the version with its verdict;
:func:`deploy_step` applies the pipeline's deployment policy (a pure decision of
:mod:`retrainer.core.deploy`). Each step takes the earlier steps' frozen outputs.

Crash safety comes from the order of the writes, each of which is atomic:

1. the artifact is written (temp file + rename) before any record points at it;
2. the model version and its ``blessing.*`` event are one transaction;
3. the champion alias move and its ``model.promoted`` event are one transaction, a
   compare-and-set against the champion the candidate was compared with;
4. the run record is closed last.

A process killed anywhere leaves at worst an unreferenced blob, or a registered version that
was not promoted, and a run still marked ``running`` whose owner is gone: the next run marks
that one failed (:mod:`retrainer.engine.runs.claims`: leases, heartbeats, the reaper). Set
``RETRAINER_FAULT=<step>`` to make the process die at a named step (the crash tests use it);
the steps are in :data:`FAULT_POINTS`.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from retrainer.adapters.environment import package_versions
from retrainer.adapters.sandbox import predict_in_fresh_process, start_fresh_process_server
from retrainer.adapters.serialization import artifact_types, dump_model, types_record
from retrainer.adapters.sources import snapshot_of
from retrainer.core.blessing import ScoreCard
from retrainer.core.clock import Clock, check_time
from retrainer.core.deploy import DeployContext, DeployDecision, build_policy, decide
from retrainer.core.types import (
    CHAMPION,
    CodeVersion,
    Event,
    EvidenceRow,
    ModelVersion,
    Run,
    RunOutcome,
    Snapshot,
    Verdict,
)
from retrainer.core.windows import holdout_mask
from retrainer.engine.faults import fault_point
from retrainer.engine.pipeline import Pipeline
from retrainer.engine.project import Project
from retrainer.engine.runs.claims import Heartbeat, claim_run, new_run, reap_stale_runs
from retrainer.engine.runs.profiles import reference_profile
from retrainer.engine.runs.registry import verify_artifact
from retrainer.engine.runs.views import run_view, version_view
from retrainer.engine.state import last_change
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

if TYPE_CHECKING:
    import pandas as pd

    from retrainer.adapters.artifacts import ArtifactRef
    from retrainer.core.profile import Profile

_log = logging.getLogger(__name__)

FAULT_POINTS = (
    "after_run_created",
    "after_snapshot",
    "after_train",
    "after_artifact_write",
    "after_register",
    "after_promote",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """What a run did: the run record, the version it registered, the verdict and the
    deployment decision (None for a failed run)."""

    run: Run
    version: ModelVersion | None = None
    verdict: Verdict | None = None
    promoted: bool = False
    previous_champion: int | None = None
    unlabelled_rows: int = 0
    """Rows of the window left out because their label had not arrived (``unlabelled``)."""
    deployment: DeployDecision | None = None

    @property
    def ok(self) -> bool:
        return self.run.status == "succeeded"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data: what ``retrainer run --json`` prints.

        ``version`` is there when the run registered one, with the aliases the run gave it.
        """
        data: dict[str, Any] = {
            "run": run_view(self.run),
            "promoted": self.promoted,
            "unlabelled_rows": self.unlabelled_rows,
        }
        if self.version is not None:
            aliases = [CHAMPION] if self.promoted else []
            data["version"] = version_view(self.version, aliases)
        return data


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
        model = project.load_version(mv)
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
        model = project.load_version(mv)
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
    project: Project, pipeline: Pipeline, trained: TrainedCandidate, holdout: Any
) -> EvidenceRow:
    cfg = pipeline.config.blessing.sanity
    sample = holdout.iloc[: cfg.sample_rows][pipeline.feature_columns]
    ser = project.config.serialization
    model, sha256 = trained.model, trained.artifact.sha256
    result = predict_in_fresh_process(
        artifact_url=project.artifacts.url(sha256),
        sha256=sha256,
        fmt=ser.format,
        trusted_types=ser.trusted_types,
        allow_pickle=ser.allow_pickle,
        recorded_types=trained.artifact_types,
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


def execute_run(
    project: Project,
    pipeline_name: str | None = None,
    *,
    clock: Clock | None = None,
    cause: str = "manual",
    evidence: Mapping[str, Any] | None = None,
    key: str | None = None,
    actor: str = "retrainer run",
) -> RunResult:
    """Create, claim and execute one run of a pipeline now, in this process.

    ``clock`` says when "now" is (default: the project's clock, the wall clock unless the
    project was given another).

    Bad data and failing user code end the run as ``failed`` with a message naming the
    column or the call; no version is created and the champion is unchanged. Other errors
    (a broken store, an interrupt) propagate after the run is marked failed when possible.

    Examples
    --------
    On in-memory stores, a pipeline whose rows come from a function:

    >>> from datetime import UTC, datetime
    >>> from pathlib import Path
    >>> import pandas as pd
    >>> from retrainer.adapters.sources import CallableSource
    >>> from retrainer.config import parse_config
    >>> from retrainer.core.clock import SimulatedClock
    >>> from retrainer.engine.project import Project
    >>> from retrainer.engine.runs.run import execute_run
    >>> rows = pd.DataFrame({"ts": pd.date_range("2024-01-01", periods=480, freq="h"),
    ...                      "x": [i % 7 for i in range(480)]})
    >>> rows["y"] = (rows["x"] > 3).astype(int)
    >>> config = parse_config({"pipelines": [{
    ...     "name": "churn", "target": "y", "features": ["x"], "metrics": ["accuracy"],
    ...     "source": {"kind": "parquet", "url": "unused.parquet", "time_column": "ts"},
    ...     "model": {"estimator": "sklearn.tree:DecisionTreeClassifier"},
    ...     "blessing": {"rules": [{"metric": "accuracy", "min": 0.9}],
    ...                  "sanity": {"enabled": False}}}]})
    >>> source = CallableSource(lambda start, end: rows, time_column="ts", name="doc:rows")
    >>> project = Project.in_memory(config, Path("."), sources={"churn": source})
    >>> project.git = (None, None)  # not a git checkout
    >>> result = execute_run(project, clock=SimulatedClock(datetime(2024, 1, 11, tzinfo=UTC)))
    >>> result.ok, result.promoted, result.version.version, result.run.outcome
    (True, True, 1, 'promoted')
    >>> project.store.get_alias("churn", "champion")
    1
    >>> result.to_json()["run"]["status"]
    'succeeded'
    """
    clock = project.clock if clock is None else clock
    now = check_time(clock.now(), "the run's time (--as-of)")  # before any record is written
    _start_sanity_server(project, pipeline_name)
    pipeline = project.pipeline(pipeline_name)
    reap_stale_runs(project, now)
    run, _ = new_run(project, pipeline, now=now, cause=cause, evidence=evidence, key=key)
    run = claim_run(project, run, now=now)
    fault_point("after_run_created")
    return execute_claimed_run(project, run, clock=clock, actor=actor)


def execute_claimed_run(
    project: Project,
    run: Run,
    *,
    clock: Clock,
    actor: str = "retrainer",
    executed_on: Mapping[str, Any] | None = None,
) -> RunResult:
    """Execute a run this process has claimed (see :func:`claim_run`).

    Every update of the run is a compare-and-set on its epoch, so a worker whose lease was
    taken over (it was presumed dead) cannot overwrite the new owner's record. While the run
    goes, a heartbeat renews its lease, up to ``run.timeout``: past it the run is stale.
    ``executed_on`` (where the run executes: host, pid, Dask worker) goes into the data of the
    event that closes the run (``run.succeeded`` or ``run.failed``).
    """
    placed = {"executed_on": dict(executed_on)} if executed_on else {}
    _start_sanity_server(project, run.pipeline)
    pipeline = project.pipeline(run.pipeline)
    timings: dict[str, float] = {}
    with Heartbeat(project, run, timeout=pipeline.config.run.timeout):
        try:
            return _execute(project, pipeline, run, clock, timings, actor, placed)
        except (DataError, SourceError, TrainingError, UntrustedArtifactError) as exc:
            return _fail(project, run, clock, timings, exc, placed)
        except BaseException as exc:
            # anything else (a bug, a broken store, Ctrl-C): record it, then let it propagate
            _fail_despite_outage(project, run, clock, timings, exc, placed)
            raise


OUTAGE_PATIENCE_S = 30.0
"""How long a run cut short by its database going away waits for it to record its end."""


def _fail_despite_outage(
    project: Project,
    run: Run,
    clock: Clock,
    timings: dict[str, float],
    exc: BaseException,
    placed: Mapping[str, Any],
) -> None:
    """Record the run failed; if the database is away (a restart), keep trying for a while,
    so the run ends as what happened to it, not as "interrupted" when the next run reaps it."""
    from retrainer.adapters.metadata.outage import unavailable

    deadline = time.monotonic() + OUTAGE_PATIENCE_S
    wait = 0.25
    while True:
        try:
            _fail(project, run, clock, timings, exc, placed)
            return
        except Exception as failure:
            # anything but an outage (the claim lost to another holder, a bug) ends the
            # attempt; so does an outage longer than our patience: the reaper then marks it
            if unavailable(failure) is None or time.monotonic() + wait > deadline:
                return
            time.sleep(wait)
            wait = min(wait * 2, 4.0)


def _start_sanity_server(project: Project, pipeline_name: str | None) -> None:
    # before the pipeline imports the user's code: the server's imports (~2 s) then overlap
    # with this process's, the load and the fit
    if project.config.pipeline(pipeline_name).blessing.sanity.enabled:
        start_fresh_process_server()


def _fail(
    project: Project,
    run: Run,
    clock: Clock,
    timings: dict[str, float],
    exc: BaseException,
    placed: Mapping[str, Any] | None = None,
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
        event=Event(
            kind="run.failed",
            at=now,
            message=f"run {run.id} of {run.pipeline} failed: {message}",
            pipeline=run.pipeline,
            run_id=run.id,
            data={"error": message, "error_type": type(exc).__name__} | dict(placed or {}),
        ),
    )
    return RunResult(run=failed)


class _Timer:
    """Time a step into ``timings[name]`` (added up when a step is timed in two parts)."""

    def __init__(self, timings: dict[str, float], name: str) -> None:
        self.timings, self.name = timings, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        spent = self.timings.get(self.name, 0.0) + time.perf_counter() - self.t0
        self.timings[self.name] = round(spent, 6)


# --- the steps ----------------------------------------------------------------------------------
# Each step takes the previous steps' frozen outputs and returns its own; the writes happen in
# the order the module docstring gives, each atomic, so a crash between two steps leaves what
# the next run repairs. ``timings`` is the one running record they share (kept on failure).


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedWindow:
    """The load step's output: the window's rows, split, and the snapshot recorded for them."""

    run: Run
    """The run, now pointing at its snapshot."""
    snapshot: Snapshot
    train: pd.DataFrame
    holdout: pd.DataFrame
    """The most recent rows, which the candidate and the champion are both scored on."""
    base: tuple[int, Any, datetime] | None
    """For an online update: (champion version, its model, where new rows start)."""
    unlabelled: int
    """Rows left out because their label had not arrived."""
    findings: tuple[EvidenceRow, ...] = ()
    """Data-quality rows (duplicated rows...) the blessing evidence carries; they pass."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainedCandidate:
    """The train step's output: the fitted model, its holdout scores, its stored artifact."""

    model: Any
    card: ScoreCard
    """Scored on the holdout before an online model learns those rows too."""
    artifact: ArtifactRef
    profile: Profile | None
    artifact_types: tuple[str, ...] | None = None
    """The types in a skops artifact, recorded with the version (None for a pickle)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Blessing:
    """The bless step's output: the gate's verdict against the champion of the moment."""

    verdict: Verdict
    champion_version: int | None
    """The champion the candidate was compared with; the deploy step's alias moves expect it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployment:
    """The deploy step's output: the policy's decision and what applying it achieved."""

    decision: DeployDecision
    outcome: RunOutcome
    promoted: bool
    """Whether the candidate became the champion."""


def load_step(
    project: Project, pipeline: Pipeline, run: Run, *, now: datetime, timings: dict[str, float]
) -> LoadedWindow:
    """Load the run's window, record its snapshot, check the rows and split off the holdout."""
    store = project.store
    base = _online_base(project, pipeline)  # (version, model) an online update starts from
    change = last_change(store, pipeline.name) if pipeline.follows_change else None
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
    frame, hashes, duplicates = pipeline.duplicates(frame, hashes)  # reported, maybe dropped
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
        if base is None:  # an online update may see one class, or an empty column, in a day
            pipeline.check_train(train, where)
    return LoadedWindow(
        run=run,
        snapshot=snapshot,
        train=train,
        holdout=holdout,
        base=base,
        unlabelled=unlabelled,
        findings=(duplicates,) if duplicates is not None else (),
    )


def train_step(
    project: Project, pipeline: Pipeline, loaded: LoadedWindow, *, timings: dict[str, float]
) -> TrainedCandidate:
    """Fit (or update the champion online), score on the holdout, profile, store the artifact."""
    train, holdout, base = loaded.train, loaded.holdout, loaded.base
    with _Timer(timings, "train"):
        cpu: list[float] = []  # process time of the fits themselves
        if base is not None:
            model = pipeline.update(copy.deepcopy(base[1]), train, cpu=cpu)  # champion kept
        else:
            model = pipeline.fit(train, cpu=cpu)
        timings["train_cpu"] = round(sum(cpu), 6)
    fault_point("after_train")

    with _Timer(timings, "score"):
        card = pipeline.score(model, holdout)

    profile = None
    if project.profiles:
        with _Timer(timings, "profile"):
            profile = reference_profile(pipeline, model, train)

    if pipeline.incremental:  # test-then-train: an online model learns its holdout rows too
        with _Timer(timings, "update_holdout"):
            pipeline.update(model, holdout, cpu=cpu)
            timings["train_cpu"] = round(sum(cpu), 6)

    with _Timer(timings, "save"):
        fmt = project.config.serialization.format
        blob = dump_model(model, fmt)
        types = tuple(artifact_types(blob)) if fmt == "skops" else None
        ref = project.artifacts.put(blob)
        project.remember_model(ref.sha256, model)
    fault_point("after_artifact_write")
    return TrainedCandidate(
        model=model, card=card, artifact=ref, profile=profile, artifact_types=types
    )


def bless_step(
    project: Project,
    pipeline: Pipeline,
    loaded: LoadedWindow,
    trained: TrainedCandidate,
    *,
    timings: dict[str, float],
    now: datetime | None = None,
) -> Blessing:
    """Score the champion on the candidate's holdout, check the artifact in a fresh process,
    and let the gate decide.

    A champion that no longer loads (its artifact damaged or gone) leaves the candidate to the
    absolute rules, so that a working model can replace it; that is recorded as a
    ``model.load_failed`` event, which alerts, because a broken champion is served by nobody.
    """
    with _Timer(timings, "score"):
        champion_version, champion_card, champion_note = _champion_card(
            project, pipeline, loaded.holdout
        )
    extra: list[EvidenceRow] = list(loaded.findings)
    if champion_note is not None:
        extra.append(champion_note)
        project.store.append_event(
            Event(
                kind="model.load_failed",
                at=now or loaded.run.started_at or loaded.run.created_at,
                message=f"{pipeline.name}: {champion_note.note}",
                pipeline=pipeline.name,
                version=champion_version,
                run_id=loaded.run.id,
                data={"alias": CHAMPION, "error": champion_note.note},
            )
        )
    if pipeline.config.blessing.sanity.enabled:
        with _Timer(timings, "sanity"):
            extra.append(_sanity_row(project, pipeline, trained, loaded.holdout))
    verdict = pipeline.gate.evaluate(
        trained.card, champion_card, champion_version=champion_version, extra=extra
    )
    return Blessing(verdict=verdict, champion_version=champion_version)


def register_step(
    project: Project,
    pipeline: Pipeline,
    loaded: LoadedWindow,
    trained: TrainedCandidate,
    blessing: Blessing,
    *,
    now: datetime,
) -> ModelVersion:
    """Register the candidate, blessed or not, with its ``blessing.*`` event (one transaction)."""
    run, verdict, metrics = loaded.run, blessing.verdict, dict(trained.card.metrics)
    draft = ModelVersion(
        pipeline=pipeline.name,
        version=0,
        created_at=now,
        run_id=run.id,
        artifact_sha256=trained.artifact.sha256,
        artifact_size=trained.artifact.size,
        artifact_format=project.config.serialization.format,
        metrics=metrics,
        params=pipeline.recorded_params(),
        snapshot=loaded.snapshot,
        code=run.code or CodeVersion(pipeline_hash=pipeline.definition_hash),
        # the artifact's types: loading this version refuses any other (a swapped file)
        environment={**package_versions(), **types_record(trained.artifact_types)},
        blessing=verdict,
        profile=trained.profile.to_dict() if trained.profile is not None else None,
    )
    version = project.store.register_version(
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
                "champion_version": blessing.champion_version,
                "metrics": metrics,
            },
        ),
    )
    fault_point("after_register")
    return version


def deploy_step(
    project: Project,
    pipeline: Pipeline,
    run: Run,
    version: ModelVersion,
    blessing: Blessing,
    *,
    now: datetime,
    actor: str,
) -> Deployment:
    """Ask the pipeline's deployment policy (pure, in core) what to do, then do it.

    Each alias move and its ``model.promoted`` event are one transaction, a compare-and-set
    against the version the policy expected; when another process moved the alias meanwhile,
    or the version's artifact does not read back whole (size and sha256), the move is skipped
    with a ``promotion.skipped`` event and the candidate stays registered.
    """
    store = project.store
    decision = decide(
        build_policy(pipeline.config.rollout),
        DeployContext(
            pipeline=pipeline.name,
            version=version.version,
            blessed=blessing.verdict.passed,
            champion=blessing.champion_version,
            run_id=run.id,
            aliases=store.aliases(pipeline.name),
        ),
    )
    outcome: RunOutcome = "registered" if blessing.verdict.passed else "not_blessed"
    promoted = False
    for move in decision.moves:
        target = (
            version
            if move.version == version.version
            else store.get_version(pipeline.name, move.version)
        )
        try:
            verify_artifact(project, target, alias=move.alias, at=now, run_id=run.id)
        except ArtifactIntegrityError:
            break  # its promotion.skipped event says why; the candidate stays registered
        try:
            store.move_alias(
                pipeline.name,
                move.alias,
                move.version,
                at=now,
                reason=f"blessed by run {run.id}",
                actor=actor,
                expected=move.expected,
                event=Event(
                    kind="model.promoted",
                    at=now,
                    message=(
                        f"{pipeline.name} v{move.version} promoted to {move.alias}"
                        + (f" (was v{move.expected})" if move.expected else "")
                    ),
                    pipeline=pipeline.name,
                    run_id=run.id,
                    version=move.version,
                    data={
                        "alias": move.alias,
                        "previous": move.expected,
                        "policy": decision.strategy,
                    },
                ),
            )
        except ConcurrencyError as exc:
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
            break
        if move.alias == CHAMPION:
            promoted, outcome = True, "promoted"
        elif decision.rollout and blessing.champion_version is not None:
            from retrainer.engine.rollout import begin_rollout

            begin_rollout(
                project,
                pipeline.name,
                candidate=version.version,
                champion=blessing.champion_version,
                now=now,
                run_id=run.id,
            )
    fault_point("after_promote")
    return Deployment(decision=decision, outcome=outcome, promoted=promoted)


def _finish(
    project: Project,
    pipeline: Pipeline,
    loaded: LoadedWindow,
    trained: TrainedCandidate,
    version: ModelVersion,
    blessing: Blessing,
    deployment: Deployment,
    *,
    now: datetime,
    timings: dict[str, float],
    placed: Mapping[str, Any],
) -> RunResult:
    """Close the run record (last, so a crash before it leaves the run for the reaper)."""
    run, outcome, unlabelled = loaded.run, deployment.outcome, loaded.unlabelled
    done = project.store.update_run(
        dataclasses.replace(
            run,
            status="succeeded",
            finished_at=now,
            metrics=dict(trained.card.metrics),
            version=version.version,
            outcome=outcome,
            timings=timings,
        ),
        expected_epoch=run.epoch,
        event=Event(
            kind="run.succeeded",
            at=now,
            message=f"run {run.id} of {pipeline.name} succeeded: v{version.version} "
            + outcome.replace("_", " ")  # "not blessed", not the enum's "not_blessed"
            + (f" ({unlabelled} rows without a label yet left out)" if unlabelled else ""),
            pipeline=pipeline.name,
            run_id=run.id,
            version=version.version,
            data={"outcome": outcome, "timings": timings}
            | ({"unlabelled_rows": unlabelled} if unlabelled else {})
            | dict(placed),
        ),
    )
    return RunResult(
        run=done,
        version=version,
        verdict=blessing.verdict,
        promoted=deployment.promoted,
        previous_champion=blessing.champion_version,
        unlabelled_rows=unlabelled,
        deployment=deployment.decision,
    )


def _execute(
    project: Project,
    pipeline: Pipeline,
    run: Run,
    clock: Clock,
    timings: dict[str, float],
    actor: str,
    placed: Mapping[str, Any],
) -> RunResult:
    """load -> train -> bless -> register -> deploy, then close the run."""
    loaded = load_step(project, pipeline, run, now=clock.now(), timings=timings)
    trained = train_step(project, pipeline, loaded, timings=timings)
    blessing = bless_step(project, pipeline, loaded, trained, timings=timings, now=clock.now())
    now = clock.now()
    version = register_step(project, pipeline, loaded, trained, blessing, now=now)
    deployment = deploy_step(project, pipeline, loaded.run, version, blessing, now=now, actor=actor)
    return _finish(
        project,
        pipeline,
        loaded,
        trained,
        version,
        blessing,
        deployment,
        now=clock.now(),
        timings=timings,
        placed=placed,
    )
