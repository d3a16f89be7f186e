"""A run's record across processes: created once by key, claimed under a lease that its
holder's heartbeat renews (on the wall clock), and reaped when its holder is gone or silent.

:func:`new_run` creates a run idempotently (its key); :func:`claim_run` takes a queued one
with a compare-and-set on its epoch; :class:`Heartbeat` renews the lease while the run goes;
:func:`reap_stale_runs` repairs runs whose process died or went silent, through
:func:`retry_or_fail`. Each change of a run is stored with its event in one transaction.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from retrainer.adapters.environment import owner_is_gone, process_owner
from retrainer.core.types import CodeVersion, Event, EventKind, Run
from retrainer.engine.pipeline import Pipeline
from retrainer.engine.project import Project
from retrainer.errors import ConcurrencyError

_log = logging.getLogger(__name__)


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
        kind: EventKind = "run.retrying"
        message = (
            f"run {run.id} of {run.pipeline}: {why}; retry {run.attempts + 1} of "
            f"{max_attempts} not before {now + wait:%Y-%m-%d %H:%M:%S}Z"
        )
    else:
        changed = dataclasses.replace(
            run, status="failed", error=why, finished_at=now, epoch=run.epoch + 1
        )
        kind, message = "run.failed", f"run {run.id} of {run.pipeline} failed: {why}"
    event = Event(
        kind=kind,
        at=now,
        message=message,
        pipeline=run.pipeline,
        run_id=run.id,
        data={"error": why, "attempts": run.attempts, **(data or {})},
    )
    try:
        done = project.store.update_run(changed, expected_epoch=run.epoch, event=event)
    except ConcurrencyError:
        return None
    return done, event


def reap_stale_runs(
    project: Project,
    now: datetime,
    *,
    max_attempts: int = 1,
    backoff: timedelta = timedelta(minutes=1),
) -> list[Run]:
    """Repair every ``running`` run whose process is gone or whose lease expired: retry it
    (fewer than ``max_attempts`` attempts) or fail it, see :func:`retry_or_fail`.

    ``now`` is the data time the repair is recorded at (the replay's clock); whether a lease
    expired is a matter of real time, read from ``project.liveness_clock`` (the wall clock),
    so a replay of a later date never reaps a run that is alive.
    """
    reaped = []
    real_now = project.liveness_clock.now()
    for run in project.store.list_runs(status="running", limit=None):
        expired = run.lease_expires_at is not None and run.lease_expires_at <= real_now
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


def new_run(
    project: Project,
    pipeline: Pipeline,
    *,
    now: datetime,
    cause: str,
    evidence: Mapping[str, Any] | None = None,
    key: str | None = None,
    status: str = "queued",
    event: Callable[[Run], Event] | None = None,
) -> tuple[Run, bool]:
    """Create (idempotently, by key) a run of ``pipeline``; return (run, created).

    ``event`` builds the event recorded with a created run, in the same transaction.
    """
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
        ),
        event,
    )


LEASE = timedelta(seconds=60)
"""How long a claim holds without a heartbeat (real time); the owner renews it every quarter."""


def claim_run(project: Project, run: Run, *, now: datetime, owner: str | None = None) -> Run:
    """Take a queued run: ``running``, owned, leased for :data:`LEASE` (or ``run.timeout``
    if shorter); :func:`execute_claimed_run` renews the lease while the run goes.

    ``now`` (the run's clock, simulated in a replay) is its start; the lease runs on
    ``project.liveness_clock`` (real time), which every process sharing the store agrees on.
    A compare-and-set on the run's epoch: if another process claimed it first this raises
    ``ConcurrencyError`` and changes nothing.
    """
    timeout = project.pipeline(run.pipeline).config.run.timeout
    lease = min(LEASE, timedelta(seconds=timeout))
    attempt = run.attempts + 1
    # the claim and its event in one transaction: a claim without its event would be a run
    # started in the store but not in the audit trail
    return project.store.update_run(
        dataclasses.replace(
            run,
            status="running",
            owner=owner or process_owner(),
            epoch=run.epoch + 1,
            attempts=attempt,
            started_at=now,
            lease_expires_at=project.liveness_clock.now() + lease,
            error=None,
        ),
        expected_epoch=run.epoch,
        event=Event(
            kind="run.started",
            at=now,
            message=(
                f"run {run.id} of {run.pipeline} started ({run.cause}"
                + (f", attempt {attempt}" if attempt > 1 else "")
                + ")"
            ),
            pipeline=run.pipeline,
            run_id=run.id,
            data={"cause": run.cause, "evidence": run.evidence, "attempt": attempt},
        ),
    )


class Heartbeat:
    """Renew a claimed run's lease every quarter of it, in a thread, while the run goes.

    A run is reaped when its process is gone or its lease ran out in real time, so a run
    that trains for hours stays its owner's for as long as the owner lives and beats, and
    no longer than ``timeout`` seconds. A failed renewal (the database away) is tried again
    at the next beat; a lost claim (another process took the run) stops the beats.
    """

    def __init__(
        self, project: Project, run: Run, *, timeout: float, lease: timedelta | None = None
    ) -> None:
        assert run.id is not None
        self.project, self.run_id, self.epoch = project, run.id, run.epoch
        self.lease = min(lease or LEASE, timedelta(seconds=timeout))
        self.deadline = time.monotonic() + timeout
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="retrainer-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        every = self.lease.total_seconds() / 4
        while not self._stop.wait(every):
            if time.monotonic() + self.lease.total_seconds() > self.deadline:
                return  # the run is past its timeout: let the lease run out
            try:
                until = self.project.liveness_clock.now() + self.lease
                if not self.project.store.renew_lease(self.run_id, epoch=self.epoch, until=until):
                    return
                self.beats += 1
            except Exception as exc:  # the database away: the next beat tries again
                _log.warning("run %s: could not renew its lease: %s", self.run_id, exc)
