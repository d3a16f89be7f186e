"""The metadata store port."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from retrainer.core.types import (
    AliasMove,
    Event,
    ModelVersion,
    PipelineRecord,
    Run,
    Snapshot,
)


class _Any:
    """Sentinel: ``move_alias(expected=ANY)`` skips the compare-and-set check."""

    _instance: _Any | None = None

    def __new__(cls) -> _Any:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()


class MetadataStore(Protocol):
    """Where every decision is recorded.

    Contract (checked by ``tests/adapters/test_metadata_contract.py`` against every adapter):

    - datetimes go in and come out as aware UTC datetimes;
    - ids and version numbers are assigned by the store; version numbers are 1, 2, 3... per
      pipeline and never collide, even with several processes writing at once;
    - ``create_run`` is idempotent on ``Run.key``: a second call with the same key returns the
      existing run and ``False``;
    - ``register_version`` and ``move_alias`` write their optional event in the same
      transaction as the change itself: both happen or neither does;
    - alias history is append-only; the current alias is the last move;
    - unknown pipelines, runs or versions raise ``ModelNotFoundError``.
    """

    # pipelines
    def ensure_pipeline(self, name: str, definition_hash: str, now: datetime) -> PipelineRecord:
        """Create the pipeline or update its definition hash; return the record."""
        ...

    def list_pipelines(self) -> list[PipelineRecord]: ...

    # snapshots
    def add_snapshot(self, snapshot: Snapshot) -> Snapshot:
        """Store a snapshot and return it with its ``id`` set."""
        ...

    def get_snapshot(self, snapshot_id: int) -> Snapshot: ...

    # runs
    def create_run(self, run: Run) -> tuple[Run, bool]:
        """Insert ``run`` unless a run with its key exists; return (the stored run, created)."""
        ...

    def update_run(self, run: Run) -> Run:
        """Overwrite the run with ``run.id`` with every field of ``run``; return it."""
        ...

    def get_run(self, run_id: int) -> Run: ...

    def list_runs(
        self, pipeline: str | None = None, status: str | None = None, limit: int | None = 50
    ) -> list[Run]:
        """Runs, newest first (by id)."""
        ...

    # model versions
    def register_version(self, draft: ModelVersion, event: Event | None = None) -> ModelVersion:
        """Assign the next version number of ``draft.pipeline`` and store it.

        ``draft.version`` is ignored. ``event`` (if given) is stored in the same transaction
        with its ``version`` field set to the assigned number.
        """
        ...

    def get_version(self, pipeline: str, version: int) -> ModelVersion: ...

    def list_versions(self, pipeline: str) -> list[ModelVersion]:
        """All versions of ``pipeline``, oldest first."""
        ...

    # aliases
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
        raises ``ModelNotFoundError``.
        """
        ...

    def get_alias(self, pipeline: str, alias: str) -> int | None: ...

    def aliases(self, pipeline: str) -> dict[str, int]:
        """Current aliases of ``pipeline`` that point at a version."""
        ...

    def alias_history(self, pipeline: str, alias: str | None = None) -> list[AliasMove]:
        """Moves, oldest first."""
        ...

    def alias_at(self, pipeline: str, alias: str, at: datetime) -> int | None:
        """The version ``alias`` pointed at, at time ``at`` (None if none)."""
        ...

    # events
    def append_event(self, event: Event) -> Event: ...

    def list_events(
        self,
        pipeline: str | None = None,
        since: datetime | None = None,
        kinds: list[str] | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events oldest first; with ``limit``, the most recent ``limit`` of them."""
        ...

    def close(self) -> None: ...
