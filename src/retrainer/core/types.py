"""Domain records: what the registry, the run log and the audit trail are made of.

These are plain frozen value objects; stores persist them and hand them back unchanged. All
datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

RunStatus = Literal["queued", "running", "succeeded", "failed"]
"""``queued`` until a process claims it, ``running`` while one holds it (a lease with an epoch),
``succeeded`` or ``failed`` once it ends."""

RunOutcome = Literal["promoted", "not_blessed", "registered"]
"""What a succeeded run led to: promoted to champion, rejected by the gate, or only registered."""

RUN_STATUSES: tuple[str, ...] = ("queued", "running", "succeeded", "failed")


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeVersion:
    """Which code produced a model: git commit (when in a repository) and the pipeline hash."""

    pipeline_hash: str
    git_commit: str | None = None
    git_dirty: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """The exact data a run read: window bounds, rows, schema and a content fingerprint."""

    pipeline: str
    source: str
    window_start: datetime | None
    window_end: datetime | None
    min_time: datetime | None
    max_time: datetime | None
    rows: int
    schema: dict[str, str]
    fingerprint: str
    created_at: datetime
    id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One execution of a pipeline: why it ran, on what, with which result.

    ``key`` is unique per store: a pure function of pipeline + trigger + fire slot, so the same
    decision never creates two runs.
    """

    key: str
    pipeline: str
    cause: str
    created_at: datetime
    status: RunStatus = "running"
    evidence: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    snapshot_id: int | None = None
    code: CodeVersion | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    version: int | None = None
    outcome: RunOutcome | None = None
    owner: str | None = None
    lease_expires_at: datetime | None = None
    epoch: int = 0
    attempts: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceRow:
    """One line of a blessing verdict's evidence table."""

    rule: str
    metric: str
    candidate: float | None
    champion: float | None
    delta: float | None
    threshold: str
    passed: bool
    slice: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The gate's decision on one candidate, with the evidence it rests on."""

    passed: bool
    evidence: tuple[EvidenceRow, ...]
    champion_version: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelVersion:
    """An immutable, content-addressed model with its full lineage.

    ``version`` is assigned by the metadata store (1, 2, ... per pipeline) when registered.
    """

    pipeline: str
    version: int
    created_at: datetime
    run_id: int | None
    artifact_sha256: str
    artifact_size: int
    artifact_format: str
    metrics: dict[str, float]
    params: dict[str, Any]
    snapshot: Snapshot
    code: CodeVersion
    environment: dict[str, str]
    blessing: Verdict
    profile: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AliasMove:
    """One entry of an alias's append-only history. ``version=None`` means the alias was cleared."""

    pipeline: str
    alias: str
    version: int | None
    previous: int | None
    at: datetime
    reason: str
    actor: str
    id: int | None = None


CHAMPION = "champion"
"""The alias of the version that serves: runs promote to it, monitoring watches it."""

EventKind = Literal[
    "alert.failed",
    "alert.sent",
    "alert.suppressed",
    "blessing.passed",
    "blessing.rejected",
    "concept_drift.detected",
    "drift.detected",
    "gc.completed",
    "mlflow.sync_failed",
    "model.load_failed",
    "model.promoted",
    "model.rolled_back",
    "monitor.completed",
    "monitor.failed",
    "promotion.skipped",
    "rollout.cancelled",
    "rollout.completed",
    "rollout.evaluated",
    "rollout.promoted",
    "rollout.rejected",
    "rollout.rolled_back",
    "rollout.started",
    "rollout.step",
    "run.failed",
    "run.queued",
    "run.released",
    "run.requested",
    "run.retrying",
    "run.started",
    "run.succeeded",
    "token.created",
    "token.revoked",
    "trigger.evaluated",
    "trigger.fired",
]
"""The kinds of the events retrainer records, each documented in docs/concepts.md.

A ``Literal``, so mypy checks every ``Event(kind=...)`` in the code: a misspelt or new kind
fails the type check until it is added here (and documented).
"""

EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)
"""The same kinds as a tuple, sorted (``retrainer events --kind`` takes these).

>>> EVENT_KINDS[:2]
('alert.failed', 'alert.sent')
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """An append-only record of something that happened (run started, blessed, promoted...).

    Stores keep whatever ``kind`` they are given (an event written by a newer retrainer still
    reads back); the type says which kinds this version of retrainer writes.
    """

    kind: EventKind
    at: datetime
    message: str
    pipeline: str | None = None
    run_id: int | None = None
    version: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorRecord:
    """The figures of one monitoring window of a pipeline.

    ``summary`` holds what the monitor computed over ``[window_start, window_end)``: the drift
    report, data-quality findings and online performance. ``version`` is the model version
    that was serving in that window (``None`` if none was), ``drifted`` the monitor's overall
    verdict (``None`` when it could not tell, e.g. too few rows).
    """

    pipeline: str
    version: int | None
    window_start: datetime
    window_end: datetime
    created_at: datetime
    drifted: bool | None
    summary: dict[str, Any]
    id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineRecord:
    """A pipeline known to the store, with the hash of its current definition."""

    name: str
    definition_hash: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRecord:
    """An API token as the metadata store keeps it: never its secret, only the secret's sha256.

    ``id`` is the public part of the token (it appears in the token itself, in ``retrainer
    token list`` and in events); ``scopes`` what it may do; ``revoked_at`` is set once, by
    ``revoke_token``; ``last_used_at`` is bookkeeping, written at most once a minute.
    """

    id: str
    name: str
    scopes: tuple[str, ...]
    secret_sha256: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
