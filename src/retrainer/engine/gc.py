"""``retrainer gc``: remove the artifact store's files that nothing needs any more.

A run writes its candidate's blob when training ends and references it when it registers the
version, seconds or minutes later; a run killed in between leaves a blob nothing references,
and a ``put`` killed half-way leaves a temporary file. ``collect_garbage`` removes those, and
only those, under one rule:

a file is removed only if it is **older than the grace period** (default 24 hours, on the
wall clock: files carry wall-clock times), **older than the start of every run in flight**
(``running`` or ``queued``), and, for a blob, **referenced by no registered version** of any
pipeline in the store (every alias points at a registered version, so an alias's blob is
referenced too).

Why that is safe beside a daemon: a blob becomes referenced only by a run that wrote it (or
stored the same bytes again, which makes the old blob young: ``put`` refreshes its time), so
a blob that may still become referenced is younger than its run's start and the grace period.
A run whose start lies ahead of the wall clock (a replay's simulated clock) gives no such
bound: while it is in flight nothing is removed. Right before each removal the references,
the runs in flight and the file's time are read again.

Why it is safe to kill: it removes files one at a time and writes nothing else until its
``gc.completed`` event at the end; a killed gc leaves fewer garbage files, and the next one
removes the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from retrainer.adapters.artifacts import FsspecArtifactStore, StoredFile
from retrainer.core.clock import Clock
from retrainer.core.types import Event, Run
from retrainer.engine.project import Project
from retrainer.errors import RetrainerError

__all__ = ["DEFAULT_GRACE", "GcReport", "collect_garbage"]

DEFAULT_GRACE = timedelta(hours=24)
"""How old an unreferenced file must be before ``retrainer gc`` removes it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GcReport:
    """What one ``retrainer gc`` removed (or, with ``dry_run``, would remove) and kept.

    Examples
    --------
    >>> report = GcReport(dry_run=True, grace=DEFAULT_GRACE, cutoff=None)
    >>> report.removed_bytes, report.to_json()["removed"]
    (0, [])
    """

    dry_run: bool
    grace: timedelta
    cutoff: datetime | None
    """Files written before this time could go; None: a run in flight forbids any removal."""
    removed: tuple[StoredFile, ...] = ()
    kept_referenced: int = 0
    """Blobs a registered version references."""
    kept_recent: int = 0
    """Unreferenced files written after the cutoff (the grace period, a run in flight)."""
    in_flight: tuple[Run, ...] = ()

    @property
    def removed_bytes(self) -> int:
        return sum(f.size for f in self.removed)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data: what ``retrainer gc --json`` prints."""
        return {
            "dry_run": self.dry_run,
            "grace_seconds": self.grace.total_seconds(),
            "cutoff": self.cutoff.isoformat() if self.cutoff else None,
            "removed": [
                {
                    "url": f.url,
                    "sha256": f.sha256,
                    "temporary": f.sha256 is None,
                    "size": f.size,
                    "modified": f.modified.isoformat(),
                }
                for f in self.removed
            ],
            "removed_count": len(self.removed),
            "removed_bytes": self.removed_bytes,
            "kept_referenced": self.kept_referenced,
            "kept_recent": self.kept_recent,
            "in_flight": [
                {"id": r.id, "pipeline": r.pipeline, "status": r.status, "since": _start(r)}
                for r in self.in_flight
            ],
        }


def _start(run: Run) -> str:
    return (run.started_at or run.created_at).isoformat()


def _in_flight(project: Project) -> tuple[Run, ...]:
    store = project.store
    return tuple(
        run
        for status in ("running", "queued")
        for run in store.list_runs(status=status, limit=None)
    )


def _cutoff(now: datetime, grace: timedelta, runs: tuple[Run, ...]) -> datetime | None:
    """Files written before the returned time may go (None: none may)."""
    cutoff = now - grace
    for run in runs:
        start = run.started_at or run.created_at
        if start > now:
            return None  # a clock ahead of the wall's: no bound on what it may have written
        cutoff = min(cutoff, start)
    return cutoff


def _referenced(project: Project) -> set[str]:
    """The sha256 of every registered version's artifact, in every pipeline of the store."""
    store = project.store
    return {
        mv.artifact_sha256.lower()
        for p in store.list_pipelines()
        for mv in store.list_versions(p.name, profiles=False)
    }


def _garbage(file: StoredFile, cutoff: datetime | None, referenced: set[str]) -> bool:
    if cutoff is None or file.modified >= cutoff:
        return False
    return file.sha256 is None or file.sha256 not in referenced


def collect_garbage(
    project: Project,
    *,
    clock: Clock,
    grace: timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    on_remove: Callable[[StoredFile], None] | None = None,
) -> GcReport:
    """Remove the artifact store's unreferenced blobs and leftover temporary files.

    The rule (older than ``grace`` and than every run in flight, referenced by no version)
    is the module's docstring. ``clock`` must tell wall-clock time: the files' times are.

    Parameters
    ----------
    grace
        Minimum age of a removed file.
    dry_run
        Report what would be removed and remove nothing.
    on_remove
        Called after each removal (progress output).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from retrainer.core.clock import SimulatedClock
    >>> from retrainer.testing import in_memory_project
    >>> project = in_memory_project(name="churn")
    >>> ref = project.artifacts.put(b"a blob no version references")
    >>> later = SimulatedClock(datetime.now(UTC) + timedelta(days=2))
    >>> report = collect_garbage(project, clock=later)
    >>> [f.sha256 == ref.sha256 for f in report.removed], project.artifacts.exists(ref.sha256)
    ([True], False)
    """
    store = project.artifacts
    if not isinstance(store, FsspecArtifactStore):
        raise RetrainerError(
            f"the artifact store {store!r} cannot list its files: gc works on a folder or an "
            "fsspec URL (storage.artifacts_url)"
        )
    if grace < timedelta(0):
        raise ValueError(f"the grace period must not be negative; got {grace}")
    runs = _in_flight(project)
    cutoff = _cutoff(clock.now(), grace, runs)
    referenced = _referenced(project)
    files = store.files()
    candidates = [f for f in files if _garbage(f, cutoff, referenced)]
    kept_referenced = sum(1 for f in files if f.sha256 is not None and f.sha256 in referenced)
    removed: list[StoredFile] = []
    for file in candidates:
        if not dry_run:
            # again, right before: a run may have registered it or stored its bytes meanwhile
            now_cutoff = _cutoff(clock.now(), grace, _in_flight(project))
            current = store.stat(file.url)
            if current is None:
                continue  # another gc took it
            if not _garbage(current, now_cutoff, _referenced(project) if file.sha256 else set()):
                continue
            if not store.remove(file.url):
                continue
        removed.append(file)
        if on_remove is not None:
            on_remove(file)
    report = GcReport(
        dry_run=dry_run,
        grace=grace,
        cutoff=cutoff,
        removed=tuple(removed),
        kept_referenced=kept_referenced,
        kept_recent=len(files) - kept_referenced - len(candidates),
        in_flight=runs,
    )
    if removed and not dry_run:
        project.store.append_event(
            Event(
                kind="gc.completed",
                at=clock.now(),
                message=(
                    f"gc removed {len(removed)} file(s), {report.removed_bytes} bytes, from "
                    f"the artifact store (grace {grace})"
                ),
                data={
                    "removed": len(removed),
                    "bytes": report.removed_bytes,
                    "grace_seconds": grace.total_seconds(),
                },
            )
        )
    return report
