"""The metadata store ports: one small Protocol per concern, and their union.

Engine code that needs only part of a store can ask for that part (``RegistryStore`` for
promotion, ``EventStore`` for alerts); :class:`MetadataStore` is all of them, what
``open_metadata_store`` returns. The docstrings here are the contract: the adapters do not
repeat them (``help(SQLMetadataStore.move_alias)`` shows this text through inheritance).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from retrainer.core.types import (
    AliasMove,
    Event,
    ModelVersion,
    MonitorRecord,
    PipelineRecord,
    Run,
    Snapshot,
    TokenRecord,
)


class _Any:
    """Sentinel: ``expected=ANY`` (the default) skips a compare-and-set check.

    Used by ``move_alias(expected=...)``, ``put_state(expected_revision=...)`` and
    ``update_run(expected_epoch=...)``.
    """

    _instance: _Any | None = None

    def __new__(cls) -> _Any:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()


class RunStore(Protocol):
    """Pipelines, the data snapshots their runs read, and the runs themselves."""

    def ensure_pipeline(self, name: str, definition_hash: str, now: datetime) -> PipelineRecord:
        """Create the pipeline or update its definition hash; return the record.

        ``updated_at`` only moves when the hash changes.
        """
        ...

    def list_pipelines(self) -> list[PipelineRecord]:
        """All pipelines, by name."""
        ...

    def add_snapshot(self, snapshot: Snapshot) -> Snapshot:
        """Store a snapshot and return it with its ``id`` set."""
        ...

    def get_snapshot(self, snapshot_id: int) -> Snapshot:
        """The snapshot with ``snapshot_id``; ``ModelNotFoundError`` if there is none."""
        ...

    def create_run(self, run: Run, event: Callable[[Run], Event] | None = None) -> tuple[Run, bool]:
        """Insert ``run`` unless a run with its key exists; return (the stored run, created).

        ``event`` (if given) builds an event from the stored run (its ``id`` set), stored in the
        same transaction when the run is created: a crash never keeps one without the other.
        """
        ...

    def renew_lease(self, run_id: int, *, epoch: int, until: datetime) -> bool:
        """Move the lease of run ``run_id`` to ``until`` if it is still ``running`` at
        ``epoch`` (a heartbeat); return False, changing nothing, when the claim was lost."""
        ...

    def update_run(
        self, run: Run, *, expected_epoch: int | None = ANY, event: Event | None = None
    ) -> Run:
        """Overwrite the run with ``run.id`` with every field of ``run``; return it.

        A run's ``key`` cannot change (it is what makes ``create_run`` idempotent). If
        ``expected_epoch`` is given and the stored run's ``epoch`` differs, raise
        ``ConcurrencyError`` and change nothing: the lease holder that read the run at that
        epoch has lost it. An epoch is never ``None``: ``expected_epoch=None`` raises
        ``ValueError``. ``event`` (if given) is stored in the same transaction.
        """
        ...

    def get_run(self, run_id: int) -> Run:
        """The run with ``run_id``; ``ModelNotFoundError`` if there is none."""
        ...

    def list_runs(
        self,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int | None = 50,
        *,
        before: int | None = None,
    ) -> list[Run]:
        """Runs, newest first (by id); ``limit=None`` returns them all.

        ``before`` (a run id) keeps the runs with a smaller id: the next page of a listing
        is ``list_runs(..., before=<the last id shown>)``.
        """
        ...


class RegistryStore(Protocol):
    """Model versions and the aliases that point at them, with their append-only history."""

    def register_version(self, draft: ModelVersion, event: Event | None = None) -> ModelVersion:
        """Assign the next version number of ``draft.pipeline`` and store it.

        ``draft.version`` is ignored. A snapshot without an ``id`` is stored first; one with an
        ``id`` must exist and is returned as stored. ``event`` (if given) is stored in the same
        transaction with its ``version`` field set to the assigned number.
        """
        ...

    def get_version(self, pipeline: str, version: int, *, profile: bool = True) -> ModelVersion:
        """Version ``version`` of ``pipeline``; ``ModelNotFoundError`` if there is none.
        ``profile=False`` leaves out its reference profile (``profile=None``)."""
        ...

    def list_versions(self, pipeline: str, *, profiles: bool = True) -> list[ModelVersion]:
        """All versions of ``pipeline``, oldest first (none for an unknown pipeline);
        ``profiles=False`` leaves out their reference profiles (``profile=None``), the bulk
        of a version, for listings."""
        ...

    def move_alias(
        self,
        pipeline: str,
        alias: str,
        version: int | None,
        *,
        at: datetime,
        reason: str,
        actor: str,
        expected: int | None = ANY,
        event: Event | None = None,
    ) -> AliasMove:
        """Point ``alias`` at ``version`` (``None`` clears it), appending to its history.

        If ``expected`` is given (a version or ``None``) and the alias currently points
        elsewhere, raise ``ConcurrencyError`` and change nothing. A version that does not exist
        raises ``ModelNotFoundError``. ``event`` (if given) is stored in the same transaction.
        """
        ...

    def get_alias(self, pipeline: str, alias: str) -> int | None:
        """The version ``alias`` points at now, or ``None``."""
        ...

    def aliases(self, pipeline: str) -> dict[str, int]:
        """Current aliases of ``pipeline`` that point at a version."""
        ...

    def alias_history(
        self, pipeline: str, alias: str | None = None, *, limit: int | None = None
    ) -> list[AliasMove]:
        """Moves, oldest first; with ``limit``, the most recent ``limit`` of them."""
        ...

    def alias_at(self, pipeline: str, alias: str, at: datetime) -> int | None:
        """The version ``alias`` pointed at, at time ``at`` (None if none).

        That is the last move (by id) made at or before ``at``.
        """
        ...

    def alias_heads(
        self, alias: str, pipelines: Sequence[str] | None = None
    ) -> dict[str, AliasMove]:
        """The last move of ``alias`` of each pipeline that has one, by pipeline, in one read:
        ``alias_history(p, alias, limit=1)[0]`` for every ``p`` (its ``version`` is ``None``
        when the alias was cleared). ``pipelines`` (default: all of them) keeps those."""
        ...


class MonitorStore(Protocol):
    """The figures of each monitoring window."""

    def add_monitor_result(
        self, record: MonitorRecord, event: Event | None = None
    ) -> MonitorRecord:
        """Store the figures of one monitoring window; return them with their ``id`` set.

        ``record.version`` (if not ``None``) must be a version of ``record.pipeline``;
        ``window_end`` must not be before ``window_start`` (``ValueError``). ``event`` (if
        given) is stored in the same transaction.
        """
        ...

    def list_monitor_results(
        self,
        pipeline: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[MonitorRecord]:
        """Monitoring windows of ``pipeline``, oldest first (by ``window_end``, then id).

        ``since`` and ``until`` keep the windows that lie inside ``[since, until]``
        (``since <= window_start`` and ``window_end <= until``); with ``limit``, the most
        recent ``limit`` of them.
        """
        ...


class StateStore(Protocol):
    """Small JSON values a pipeline keeps between ticks (detector state, trigger memory)."""

    def get_state(self, pipeline: str, key: str) -> tuple[dict[str, Any], int] | None:
        """The value stored under ``key`` and its revision, or ``None`` if there is none."""
        ...

    def get_states(
        self, keys: Sequence[str], pipelines: Sequence[str] | None = None
    ) -> dict[str, dict[str, tuple[dict[str, Any], int]]]:
        """The values stored under ``keys`` and their revisions, by pipeline then key, in one
        read: ``get_states(keys)[p][k]`` is ``get_state(p, k)``, and a pair with nothing stored
        is left out. ``pipelines`` (default: all of them) keeps those."""
        ...

    def put_state(
        self,
        pipeline: str,
        key: str,
        value: dict[str, Any],
        *,
        at: datetime,
        expected_revision: int | None = ANY,
        event: Event | None = None,
    ) -> int:
        """Store ``value`` under ``key`` (replacing the old value); return the new revision.

        ``event`` (if given) is stored in the same transaction.

        Revisions start at 1. If ``expected_revision`` is given (a revision, or ``None`` for
        "the key must not exist yet") and the stored revision differs, raise
        ``ConcurrencyError`` and change nothing. ``key`` is 1 to 255 characters.
        """
        ...

    def list_state(self, pipeline: str) -> dict[str, dict[str, Any]]:
        """Every value stored for ``pipeline``, by key."""
        ...


class EventStore(Protocol):
    """The append-only audit trail."""

    def append_event(self, event: Event) -> Event:
        """Store ``event`` and return it with its ``id`` set (any ``kind`` is kept)."""
        ...

    def list_events(
        self,
        pipeline: str | None = None,
        since: datetime | None = None,
        kinds: list[str] | None = None,
        limit: int | None = None,
        *,
        until: datetime | None = None,
        before: int | None = None,
    ) -> list[Event]:
        """Events oldest first (by id); with ``limit``, the most recent ``limit`` of them.

        ``since`` keeps the events at or after it, ``until`` those at or before it; ``before``
        (an event id) keeps those with a smaller id: the page older than the one shown is
        ``list_events(..., limit=n, before=<the oldest id shown>)``.
        """
        ...


class TokenStore(Protocol):
    """API tokens: their ids, names, scopes and the sha256 of their secrets (never a secret)."""

    def add_token(self, token: TokenRecord, event: Event | None = None) -> TokenRecord:
        """Store a new token and return it as stored.

        An id already stored raises ``ValueError`` and changes nothing. ``event`` (if given) is
        stored in the same transaction.
        """
        ...

    def get_token(self, token_id: str) -> TokenRecord | None:
        """The token with ``token_id`` (revoked or not), or ``None``: one lookup by key."""
        ...

    def list_tokens(self) -> list[TokenRecord]:
        """Every token, revoked ones too, oldest first (by ``created_at``, then id)."""
        ...

    def revoke_token(
        self, token_id: str, *, at: datetime, event: Event | None = None
    ) -> TokenRecord:
        """Set the token's ``revoked_at`` to ``at`` and return it; ``TokenNotFoundError`` for
        an unknown id.

        A token already revoked keeps its first ``revoked_at`` and ``event`` is not stored;
        otherwise ``event`` (if given) is stored in the same transaction.
        """
        ...

    def mark_token_used(self, token_id: str, *, at: datetime, if_before: datetime) -> bool:
        """Set the token's ``last_used_at`` to ``at`` if it is unset or before ``if_before``
        (one guarded write, so several processes throttle together); return whether it
        changed. An unknown id changes nothing."""
        ...


class MetadataStore(
    RunStore, RegistryStore, MonitorStore, StateStore, EventStore, TokenStore, Protocol
):
    """Where every decision is recorded.

    Contract (checked by ``tests/adapters/test_metadata_contract.py`` against every adapter):

    - datetimes go in and come out as aware UTC datetimes;
    - ids and version numbers are assigned by the store; version numbers are 1, 2, 3... per
      pipeline and never collide, even with several processes writing at once;
    - ``create_run`` is idempotent on ``Run.key``: a second call with the same key returns the
      existing run and ``False``;
    - ``register_version``, ``move_alias`` and ``add_monitor_result`` write their optional
      event in the same transaction as the change itself: both happen or neither does;
    - alias history is append-only; the current alias is the last move;
    - compare-and-set: ``move_alias(expected=...)``, ``put_state(expected_revision=...)`` and
      ``update_run(expected_epoch=...)`` raise ``ConcurrencyError`` and change nothing when
      the stored value is not the expected one; of several writers (threads or processes)
      expecting the same value, exactly one wins. ``ANY`` (the default) skips the check;
    - state revisions are 1, 2, 3... per (pipeline, key); every ``put_state`` adds one;
    - tokens: the store keeps a token's id, name, scopes and the sha256 of its secret, never
      the secret; ``revoke_token`` of an unknown id raises ``TokenNotFoundError``;
    - unknown names: every write that names an unknown pipeline, run, snapshot or version
      raises ``ModelNotFoundError`` (``append_event`` excepted: an event may name any
      pipeline), and so do ``get_run``, ``get_snapshot`` and ``get_version``, which must
      return a record. Every other read of an unknown pipeline finds nothing: ``[]``, ``{}``
      or ``None`` (a configured pipeline that never ran is not an error);
    - dicts hold JSON values only (anything else raises ``TypeError``) and come back as a JSON
      round-trip gives them (tuples become lists, keys strings). Non-finite floats (NaN,
      infinities) anywhere inside them are stored as ``null`` (PostgreSQL's json type has no
      NaN). On the way out, a ``null`` value of ``Run.metrics`` or ``ModelVersion.metrics``
      comes back as ``float("nan")`` (a NaN metric means "undefined on this data"); every
      other ``null`` stays ``None``;
    - records are copied in and out: mutating what you passed or got back changes nothing
      stored.
    """

    def close(self) -> None:
        """Release the store's connections (the in-memory store stays usable)."""
        ...
