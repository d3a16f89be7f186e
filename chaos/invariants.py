"""The store's invariants, read through retrainer's own API, and a ledger of what was seen.

:func:`check_store` is called by the campaign whenever no process it started is alive. It
returns the violations it finds; a :class:`Ledger` carried from one check to the next adds
the promises about the past: a record once seen never disappears or changes its outcome, and
everything a command reported as done (exit 0 and its JSON) is in the store.

Examples
--------
>>> from datetime import UTC, datetime
>>> from retrainer import execute_run
>>> from retrainer.testing import SimulatedClock, in_memory_project
>>> project = in_memory_project()
>>> result = execute_run(project, clock=SimulatedClock(datetime(2024, 1, 20, tzinfo=UTC)))
>>> ledger = Ledger()
>>> check_store(project, ledger)
[]
>>> ledger.figures()["versions"]
1
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from retrainer.adapters.environment import owner_is_gone
from retrainer.engine.project import Project
from retrainer.engine.runs.claims import reap_stale_runs
from retrainer.errors import RetrainerError

__all__ = ["Claim", "Ledger", "Violation", "check_store"]

# The key `retrainer run` gives a run (engine/runs/run.py new_run): nobody but that command
# ever claims it, so once its process is gone a `queued` one is orphaned for good.
_CLI_RUN_KEY = re.compile(r"^[^/]+/manual/\d{8}T\d{6}/[0-9a-f]{12}$")
# Kinds of the violations that count as a duplicate run or a lost record in the figures.
DUPLICATE_KINDS = frozenset({"duplicate_run", "duplicate_key"})
LOST_KINDS = frozenset({"lost_record", "record_rewritten", "claim_not_in_store"})


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant: its kind, what it is about, and what was seen."""

    kind: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} [{self.subject}]: {self.detail}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """Something a command said it did (exit 0): the store must show it from then on.

    ``what`` is ``run`` (``key`` ended with ``status``), ``version`` (``version`` of
    ``pipeline`` with ``sha256``) or ``alias`` (``alias`` of ``pipeline`` moved to ``version``).
    """

    what: str
    pipeline: str
    step: int
    command: str
    key: str = ""
    status: str = ""
    version: int | None = None
    sha256: str = ""
    alias: str = ""


@dataclass
class Ledger:
    """What earlier checks saw and commands claimed, checked again at every step."""

    runs: dict[int, tuple[str, str]] = field(default_factory=dict)
    """run id -> (key, status once finished, else "")."""
    versions: dict[tuple[str, int], str] = field(default_factory=dict)
    events: set[int] = field(default_factory=set)
    alias_moves: set[tuple[str, int | None]] = field(default_factory=set)
    claims: list[Claim] = field(default_factory=list)
    surviving_owners: set[str] = field(default_factory=set)
    """``host:pid`` of processes the campaign started and did not kill: their runs must
    never be reaped as interrupted."""
    killed_owners: set[str] = field(default_factory=set)
    reaped: int = 0
    """Runs left ``running`` by a dead process, repaired by the reaper before a check."""

    def figures(self) -> dict[str, int]:
        return {
            "runs": len(self.runs),
            "versions": len(self.versions),
            "events": len(self.events),
            "alias_moves": len(self.alias_moves),
            "claims": len(self.claims),
            "reaped_runs": self.reaped,
        }


def check_store(
    project: Project, ledger: Ledger | None = None, *, reap: bool = True
) -> list[Violation]:
    """Every invariant of the store of ``project``; call it when no process is using it.

    With ``reap``, runs left ``running`` by a process that is gone are first repaired the way
    the next ``retrainer run`` or daemon tick repairs them (``reap_stale_runs``); a run still
    ``running`` after that is a violation.
    """
    ledger = Ledger() if ledger is None else ledger
    out: list[Violation] = []
    store = project.store
    if reap:
        ledger.reaped += len(reap_stale_runs(project, datetime.now(UTC)))
    pipelines = {p.name for p in store.list_pipelines()}
    runs = store.list_runs(limit=None)
    run_ids = {r.id for r in runs}
    versions: dict[tuple[str, int], Any] = {}
    for name in sorted(pipelines):
        listed = store.list_versions(name, profiles=False)
        numbers = [v.version for v in listed]
        if sorted(numbers) != list(range(1, len(numbers) + 1)):
            out.append(
                Violation("version_numbers", name, f"not unique and gap-free: {sorted(numbers)}")
            )
        versions.update({(name, v.version): v for v in listed})
    out += _check_artifacts(project, versions)
    out += _check_aliases(project, pipelines, versions)
    out += _check_runs(runs, versions, ledger)
    events = store.list_events(limit=None)
    out += _check_events(events, pipelines, run_ids, versions)
    out += _check_ledger(project, ledger, runs, versions, events, pipelines)
    return out


def _check_artifacts(project: Project, versions: dict[tuple[str, int], Any]) -> list[Violation]:
    out = []
    for (name, number), v in sorted(versions.items()):
        subject = f"{name} v{number}"
        try:
            data = project.artifacts.get(v.artifact_sha256)
        except RetrainerError as exc:
            out.append(Violation("artifact_unreadable", subject, str(exc).splitlines()[0]))
            continue
        if len(data) != v.artifact_size:
            out.append(
                Violation(
                    "artifact_size", subject, f"recorded {v.artifact_size} bytes, {len(data)} read"
                )
            )
    return out


def _check_aliases(
    project: Project, pipelines: set[str], versions: dict[tuple[str, int], Any]
) -> list[Violation]:
    out = []
    loaded: dict[str, str | None] = {}
    for name in sorted(pipelines):
        for alias, number in sorted(project.store.aliases(name).items()):
            subject = f"{name} {alias}->v{number}"
            v = versions.get((name, number))
            if v is None:
                out.append(Violation("alias_dangling", subject, "the version does not exist"))
                continue
            if not v.blessing.passed:
                out.append(Violation("alias_unblessed", subject, v.blessing.reason))
            if v.artifact_sha256 not in loaded:
                loaded[v.artifact_sha256] = _load_error(project, v)
            if loaded[v.artifact_sha256] is not None:
                out.append(Violation("alias_unloadable", subject, str(loaded[v.artifact_sha256])))
    return out


def _load_error(project: Project, v: Any) -> str | None:
    try:
        project.load_model(v.artifact_sha256, v.artifact_format)
    except Exception as exc:  # any failure to load is the finding
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def _check_runs(
    runs: list[Any], versions: dict[tuple[str, int], Any], ledger: Ledger
) -> list[Violation]:
    out = []
    keys = Counter(r.key for r in runs)
    out += [Violation("duplicate_key", k, f"{n} runs") for k, n in keys.items() if n > 1]
    per_run = Counter(v.run_id for v in versions.values() if v.run_id is not None)
    out += [
        Violation("duplicate_run", f"run {rid}", f"registered {n} versions")
        for rid, n in per_run.items()
        if n > 1
    ]
    for r in runs:
        subject = f"run {r.id} ({r.key})"
        if r.status == "running" and owner_is_gone(r.owner):
            out.append(Violation("orphan_running", subject, f"owner {r.owner} is gone"))
        if r.status == "queued" and _CLI_RUN_KEY.match(r.key):
            out.append(
                Violation("orphan_queued", subject, "a `retrainer run` left it queued, unowned")
            )
        owner = r.owner or ""
        alive = owner in ledger.surviving_owners and owner not in ledger.killed_owners
        if r.status == "failed" and "interrupted" in (r.error or "") and alive:
            out.append(
                Violation(
                    "live_run_reaped",
                    subject,
                    f"marked failed ({r.error}) while its process {owner} was alive",
                )
            )
    return out


def _check_events(
    events: list[Any],
    pipelines: set[str],
    run_ids: set[int | None],
    versions: dict[tuple[str, int], Any],
) -> list[Violation]:
    out = []
    succeeded = Counter(e.run_id for e in events if e.kind == "run.succeeded")
    out += [
        Violation("duplicate_run", f"run {rid}", f"{n} run.succeeded events")
        for rid, n in succeeded.items()
        if n > 1
    ]
    for e in events:
        subject = f"event {e.id} {e.kind}"
        if e.pipeline is not None and e.pipeline not in pipelines:
            out.append(Violation("event_subject", subject, f"no pipeline {e.pipeline!r}"))
        if e.run_id is not None and e.run_id not in run_ids:
            out.append(Violation("event_subject", subject, f"no run {e.run_id}"))
        if e.version is not None and (e.pipeline, e.version) not in versions:
            out.append(Violation("event_subject", subject, f"no {e.pipeline} v{e.version}"))
    return out


def _check_ledger(
    project: Project,
    ledger: Ledger,
    runs: list[Any],
    versions: dict[tuple[str, int], Any],
    events: list[Any],
    pipelines: set[str],
) -> list[Violation]:
    out = []
    by_id = {r.id: r for r in runs}
    by_key = {r.key: r for r in runs}
    for rid, (key, status) in ledger.runs.items():
        now = by_id.get(rid)
        if now is None:
            out.append(Violation("lost_record", f"run {rid} ({key})", "it was in the store"))
        elif status and now.status != status:
            out.append(
                Violation(
                    "record_rewritten", f"run {rid} ({key})", f"was {status}, now {now.status}"
                )
            )
    for (name, number), sha in ledger.versions.items():
        v = versions.get((name, number))
        if v is None:
            out.append(Violation("lost_record", f"{name} v{number}", "it was in the store"))
        elif v.artifact_sha256 != sha:
            out.append(Violation("record_rewritten", f"{name} v{number}", "its sha256 changed"))
    event_ids = {e.id for e in events}
    lost_events = sorted(ledger.events - event_ids)
    if lost_events:
        out.append(Violation("lost_record", "events", f"ids {lost_events[:10]} disappeared"))
    moves = {(name, m.id) for name in pipelines for m in project.store.alias_history(name)}
    lost_moves = sorted(ledger.alias_moves - moves)
    if lost_moves:
        out.append(Violation("lost_record", "alias history", f"moves {lost_moves[:10]} gone"))
    for claim in ledger.claims:
        problem = _claim_problem(project, claim, by_key, versions)
        if problem:
            out.append(
                Violation("claim_not_in_store", f"step {claim.step}: {claim.command}", problem)
            )
    ledger.runs = {
        r.id: (r.key, r.status if r.status in ("succeeded", "failed") else "") for r in runs
    }
    ledger.versions = {k: v.artifact_sha256 for k, v in versions.items()}
    ledger.events = event_ids
    ledger.alias_moves = moves
    return out


def _claim_problem(
    project: Project, claim: Claim, by_key: dict[str, Any], versions: dict[tuple[str, int], Any]
) -> str | None:
    if claim.what == "run":
        run = by_key.get(claim.key)
        if run is None:
            return f"run {claim.key} reported {claim.status} is not in the store"
        if claim.status and run.status != claim.status:
            return f"run {claim.key} reported {claim.status} is {run.status} in the store"
        return None
    if claim.what == "version":
        v = versions.get((claim.pipeline, claim.version or 0))
        if v is None:
            return f"{claim.pipeline} v{claim.version} reported registered is not in the store"
        if claim.sha256 and v.artifact_sha256 != claim.sha256:
            return f"{claim.pipeline} v{claim.version} has another sha256 than reported"
        return None
    history = project.store.alias_history(claim.pipeline, claim.alias)
    if not any(m.version == claim.version for m in history):
        return f"{claim.alias} reported moved to v{claim.version}: no such move in its history"
    return None
