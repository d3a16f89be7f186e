"""The in-memory metadata store: a real adapter, not a mock.

:class:`InMemoryMetadataStore` keeps everything in Python lists and dicts behind one lock. Tests,
doctests, the demo and the backtest use it, and it passes the same contract suite as
:class:`~retrainer.adapters.metadata.SQLMetadataStore`: both run records through the same
rules (:mod:`retrainer.adapters.metadata._records`) on the way in.
"""

from __future__ import annotations

import itertools
import pickle
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from retrainer.adapters.metadata._records import (
    alias_conflict,
    check_expected,
    check_expected_epoch,
    check_run_key,
    check_snapshot_pipeline,
    check_state_key,
    epoch_conflict,
    json_dict,
    normalized_event,
    normalized_monitor_record,
    normalized_run,
    normalized_snapshot,
    normalized_token,
    normalized_version,
    optional_utc,
    require_run_id,
    state_conflict,
    token_exists,
    unknown_pipeline,
    unknown_token,
    unknown_version,
)
from retrainer.adapters.metadata.protocol import ANY, MetadataStore
from retrainer.core.clock import as_utc
from retrainer.core.types import (
    RUN_STATUSES,
    AliasMove,
    Event,
    ModelVersion,
    MonitorRecord,
    PipelineRecord,
    Run,
    Snapshot,
    TokenRecord,
)
from retrainer.errors import ModelNotFoundError

__all__ = ["InMemoryMetadataStore"]

_T = TypeVar("_T")


# -- the store ----------------------------------------------------------------------------


class InMemoryMetadataStore(MetadataStore):
    """A metadata store that keeps everything in memory, for tests, the demo and backtests.

    Thread-safe (one lock around every method). Records are copied on the way in and on the
    way out, so mutating a dict you passed in or got back never changes what is stored.
    Everything is lost when the object is dropped.

    The contract (unknown names, JSON values, compare-and-set) is the one every metadata store
    keeps: see :class:`~retrainer.adapters.metadata.MetadataStore`. ``copies=False`` hands out
    the stored records themselves, for a caller that never changes what it reads.

    Examples
    --------
    >>> from datetime import datetime
    >>> from retrainer.core.types import CodeVersion, Event, ModelVersion, Snapshot, Verdict
    >>> store = InMemoryMetadataStore()
    >>> now = datetime(2024, 5, 1, 12)
    >>> store.ensure_pipeline("churn", "d41d8cd9", now).name
    'churn'
    >>> snap = Snapshot(
    ...     pipeline="churn", source="data/churn.parquet", window_start=None,
    ...     window_end=now, min_time=None, max_time=now, rows=1000,
    ...     schema={"age": "int64"}, fingerprint="ab12", created_at=now,
    ... )
    >>> draft = ModelVersion(
    ...     pipeline="churn", version=0, created_at=now, run_id=None,
    ...     artifact_sha256="0" * 64, artifact_size=2048, artifact_format="skops",
    ...     metrics={"auc": 0.91}, params={}, snapshot=snap,
    ...     code=CodeVersion(pipeline_hash="d41d8cd9"), environment={"python": "3.11"},
    ...     blessing=Verdict(passed=True, evidence=()),
    ... )
    >>> v1 = store.register_version(draft)
    >>> v1.version, v1.snapshot.id, v1.created_at.isoformat()
    (1, 1, '2024-05-01T12:00:00+00:00')
    >>> store.register_version(draft).version
    2
    >>> move = store.move_alias(
    ...     "churn", "champion", 1, at=now, reason="first model", actor="alice", expected=None
    ... )
    >>> store.get_alias("churn", "champion"), store.aliases("churn")
    (1, {'champion': 1})
    >>> store.put_state("churn", "ddm", {"n": 10}, at=now, expected_revision=None)
    1
    >>> store.put_state("churn", "ddm", {"n": 25}, at=now, expected_revision=1)
    2
    >>> store.get_state("churn", "ddm")
    ({'n': 25}, 2)
    """

    def __init__(self, *, copies: bool = True) -> None:
        self._copies = copies
        self._lock = threading.RLock()
        self._pipelines: dict[str, PipelineRecord] = {}
        self._snapshots: list[Snapshot] = []
        self._runs: list[Run] = []
        self._run_ids: dict[str, int] = {}
        # run ids by status (dicts as ordered sets): finding the queued or running runs
        # does not scan every run
        self._run_status: dict[str, dict[int, None]] = {s: {} for s in RUN_STATUSES}
        self._versions: dict[str, list[ModelVersion]] = {}
        self._moves: list[AliasMove] = []
        # the moves of each (pipeline, alias), oldest first: a read does not scan them all
        self._alias_moves: dict[tuple[str, str], list[AliasMove]] = {}
        self._events: list[Event] = []
        self._monitor: list[MonitorRecord] = []
        self._state: dict[tuple[str, str], tuple[dict[str, Any], int, datetime]] = {}
        self._tokens: dict[str, TokenRecord] = {}

    def __enter__(self) -> InMemoryMetadataStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "InMemoryMetadataStore()"

    # -- helpers (call with the lock held) --

    def _require_pipeline(self, name: str) -> None:
        if name not in self._pipelines:
            raise unknown_pipeline(name, list(self._pipelines))

    def _require_snapshot(self, snapshot_id: int) -> Snapshot:
        if not 1 <= snapshot_id <= len(self._snapshots):
            raise ModelNotFoundError(f"No snapshot with id {snapshot_id}.")
        return self._snapshots[snapshot_id - 1]

    def _require_run(self, run_id: int) -> Run:
        if not 1 <= run_id <= len(self._runs):
            raise ModelNotFoundError(f"No run with id {run_id}.")
        return self._runs[run_id - 1]

    def _require_version(self, pipeline: str, version: int) -> ModelVersion:
        self._require_pipeline(pipeline)
        versions = self._versions.get(pipeline, [])
        if not 1 <= version <= len(versions):
            raise unknown_version(pipeline, version, [v.version for v in versions])
        return versions[version - 1]

    def _check_run_refs(self, run: Run) -> None:
        self._require_pipeline(run.pipeline)
        if run.snapshot_id is not None:
            self._require_snapshot(run.snapshot_id)

    def _current(self, pipeline: str, alias: str) -> int | None:
        moves = self._alias_moves.get((pipeline, alias))
        return moves[-1].version if moves else None

    def _set_run(self, run: Run) -> None:
        """Store ``run`` (its id set) in its slot, and keep the status index."""
        run_id = run.id
        assert run_id is not None
        if run_id <= len(self._runs):
            del self._run_status[self._runs[run_id - 1].status][run_id]
            self._runs[run_id - 1] = run
        else:
            self._runs.append(run)
        self._run_status[run.status][run_id] = None

    def _append_event(self, event: Event) -> Event:
        stored = replace(event, id=len(self._events) + 1)
        self._events.append(stored)
        return stored

    def _out(self, record: _T) -> _T:
        # a deep copy (callers must not reach the stored record); pickle is 5x faster here.
        # ``copies=False`` hands out the stored records themselves: for a caller that never
        # changes what it reads (the backtest's replay), where the copies cost 10% of a run
        if not self._copies:
            return record
        return pickle.loads(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL))  # type: ignore[no-any-return, unused-ignore]

    # -- pipelines --

    def ensure_pipeline(self, name: str, definition_hash: str, now: datetime) -> PipelineRecord:
        now = as_utc(now)
        with self._lock:
            record = self._pipelines.get(name)
            if record is None:
                record = PipelineRecord(
                    name=name, definition_hash=definition_hash, created_at=now, updated_at=now
                )
            elif record.definition_hash != definition_hash:
                record = replace(record, definition_hash=definition_hash, updated_at=now)
            self._pipelines[name] = record
            return record

    def list_pipelines(self) -> list[PipelineRecord]:
        with self._lock:
            return [self._pipelines[name] for name in sorted(self._pipelines)]

    # -- snapshots --

    def add_snapshot(self, snapshot: Snapshot) -> Snapshot:
        snapshot = normalized_snapshot(snapshot)
        with self._lock:
            self._require_pipeline(snapshot.pipeline)
            stored = replace(snapshot, id=len(self._snapshots) + 1)
            self._snapshots.append(stored)
            return self._out(stored)

    def get_snapshot(self, snapshot_id: int) -> Snapshot:
        with self._lock:
            return self._out(self._require_snapshot(snapshot_id))

    # -- runs --

    def create_run(self, run: Run, event: Callable[[Run], Event] | None = None) -> tuple[Run, bool]:
        run = normalized_run(run)
        with self._lock:
            existing = self._run_ids.get(run.key)
            if existing is not None:
                return self._out(self._runs[existing - 1]), False
            self._check_run_refs(run)
            run_id = len(self._runs) + 1
            stored = replace(run, id=run_id)
            self._set_run(stored)
            self._run_ids[stored.key] = run_id
            if event is not None:
                self._append_event(normalized_event(event(self._out(stored))))
            return self._out(stored), True

    def update_run(
        self, run: Run, *, expected_epoch: int | None = ANY, event: Event | None = None
    ) -> Run:
        run_id = require_run_id(run)
        check_expected_epoch(expected_epoch)
        run = normalized_run(run)
        event = None if event is None else normalized_event(event)
        with self._lock:
            current = self._require_run(run_id)
            check_run_key(run_id, current.key, run)
            check_expected(current.epoch, expected_epoch, partial(epoch_conflict, run_id))
            self._check_run_refs(run)
            self._set_run(run)
            if event is not None:
                self._append_event(event)
            return self._out(run)

    def renew_lease(self, run_id: int, *, epoch: int, until: datetime) -> bool:
        until = as_utc(until)
        with self._lock:
            current = self._require_run(run_id)
            if current.status != "running" or current.epoch != epoch:
                return False
            self._set_run(replace(current, lease_expires_at=until))
            return True

    def get_run(self, run_id: int) -> Run:
        with self._lock:
            return self._out(self._require_run(run_id))

    def list_runs(
        self,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int | None = 50,
        *,
        before: int | None = None,
    ) -> list[Run]:
        with self._lock:
            candidates = (
                reversed(self._runs)
                if status is None
                else (
                    self._runs[i - 1]
                    for i in sorted(self._run_status.get(status, ()), reverse=True)
                )
            )
            found = (
                run
                for run in candidates
                if (pipeline is None or run.pipeline == pipeline)
                and (status is None or run.status == status)
                and (before is None or (run.id or 0) < before)
            )
            return self._out(
                list(itertools.islice(found, None if limit is None else max(limit, 0)))
            )

    # -- model versions --

    def register_version(self, draft: ModelVersion, event: Event | None = None) -> ModelVersion:
        draft = normalized_version(draft)
        event = None if event is None else normalized_event(event)
        with self._lock:
            # Check everything before changing anything: the write is all or nothing.
            self._require_pipeline(draft.pipeline)
            if draft.run_id is not None:
                self._require_run(draft.run_id)
            snapshot = draft.snapshot
            if snapshot.id is not None:
                snapshot = self._require_snapshot(snapshot.id)
            check_snapshot_pipeline(draft.pipeline, snapshot)
            if snapshot.id is None:
                snapshot = replace(snapshot, id=len(self._snapshots) + 1)
                self._snapshots.append(snapshot)
            versions = self._versions.setdefault(draft.pipeline, [])
            stored = replace(draft, version=len(versions) + 1, snapshot=snapshot)
            versions.append(stored)
            if event is not None:
                self._append_event(replace(event, version=stored.version))
            return self._out(stored)

    def get_version(self, pipeline: str, version: int, *, profile: bool = True) -> ModelVersion:
        with self._lock:
            found = self._require_version(pipeline, version)
            return self._out(found if profile else replace(found, profile=None))

    def list_versions(self, pipeline: str, *, profiles: bool = True) -> list[ModelVersion]:
        with self._lock:
            found = self._versions.get(pipeline, [])
            return self._out([v if profiles else replace(v, profile=None) for v in found])

    # -- aliases --

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
        at = as_utc(at)
        event = None if event is None else normalized_event(event)
        with self._lock:
            self._require_pipeline(pipeline)
            if version is not None:
                self._require_version(pipeline, version)
            current = self._current(pipeline, alias)
            check_expected(current, expected, partial(alias_conflict, pipeline, alias))
            move = AliasMove(
                pipeline=pipeline,
                alias=alias,
                version=version,
                previous=current,
                at=at,
                reason=reason,
                actor=actor,
                id=len(self._moves) + 1,
            )
            self._moves.append(move)
            self._alias_moves.setdefault((pipeline, alias), []).append(move)
            if event is not None:
                self._append_event(event)
            return move

    def get_alias(self, pipeline: str, alias: str) -> int | None:
        with self._lock:
            return self._current(pipeline, alias)

    def aliases(self, pipeline: str) -> dict[str, int]:
        with self._lock:
            current: dict[str, int | None] = {}
            for move in self._moves:
                if move.pipeline == pipeline:
                    current[move.alias] = move.version
            return {name: v for name, v in sorted(current.items()) if v is not None}

    def alias_history(
        self, pipeline: str, alias: str | None = None, *, limit: int | None = None
    ) -> list[AliasMove]:
        with self._lock:
            if alias is not None:
                found = list(self._alias_moves.get((pipeline, alias), ()))
            else:
                found = [m for m in self._moves if m.pipeline == pipeline]
        return found if limit is None else found[len(found) - max(limit, 0) :]

    def alias_heads(
        self, alias: str, pipelines: Sequence[str] | None = None
    ) -> dict[str, AliasMove]:
        with self._lock:
            names = self._pipelines if pipelines is None else pipelines
            heads = ((name, self._alias_moves.get((name, alias))) for name in names)
            return {name: moves[-1] for name, moves in heads if moves}

    def alias_at(self, pipeline: str, alias: str, at: datetime) -> int | None:
        at = as_utc(at)
        with self._lock:
            for move in reversed(self._alias_moves.get((pipeline, alias), ())):
                if move.at <= at:
                    return move.version
            return None

    # -- monitoring --

    def add_monitor_result(
        self, record: MonitorRecord, event: Event | None = None
    ) -> MonitorRecord:
        record = normalized_monitor_record(record)
        event = None if event is None else normalized_event(event)
        with self._lock:
            self._require_pipeline(record.pipeline)
            if record.version is not None:
                self._require_version(record.pipeline, record.version)
            stored = replace(record, id=len(self._monitor) + 1)
            self._monitor.append(stored)
            if event is not None:
                self._append_event(event)
            return self._out(stored)

    def list_monitor_results(
        self,
        pipeline: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[MonitorRecord]:
        since, until = optional_utc(since), optional_utc(until)
        with self._lock:
            found = sorted(
                (
                    r
                    for r in self._monitor
                    if r.pipeline == pipeline
                    and (since is None or r.window_start >= since)
                    and (until is None or r.window_end <= until)
                ),
                key=lambda r: (r.window_end, r.id or 0),
            )
            if limit is not None:
                found = found[max(len(found) - limit, 0) :] if limit > 0 else []
            return self._out(found)

    # -- state --

    def get_state(self, pipeline: str, key: str) -> tuple[dict[str, Any], int] | None:
        with self._lock:
            found = self._state.get((pipeline, key))
            return None if found is None else (self._out(found[0]), found[1])

    def get_states(
        self, keys: Sequence[str], pipelines: Sequence[str] | None = None
    ) -> dict[str, dict[str, tuple[dict[str, Any], int]]]:
        out: dict[str, dict[str, tuple[dict[str, Any], int]]] = {}
        with self._lock:
            for name in self._pipelines if pipelines is None else pipelines:
                for key in keys:
                    found = self._state.get((name, key))
                    if found is not None:
                        out.setdefault(name, {})[key] = (self._out(found[0]), found[1])
        return out

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
        check_state_key(key)
        value = json_dict(value, f"The value of state {key!r}")
        at = as_utc(at)
        event = None if event is None else normalized_event(event)
        with self._lock:
            self._require_pipeline(pipeline)
            found = self._state.get((pipeline, key))
            current = None if found is None else found[1]
            check_expected(current, expected_revision, partial(state_conflict, pipeline, key))
            revision = 1 if current is None else current + 1
            self._state[(pipeline, key)] = (value, revision, at)
            if event is not None:
                self._append_event(event)
            return revision

    def list_state(self, pipeline: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {
                key: self._out(value)
                for (name, key), (value, _, _) in sorted(self._state.items(), key=lambda i: i[0])
                if name == pipeline
            }

    # -- events --

    def append_event(self, event: Event) -> Event:
        event = normalized_event(event)
        with self._lock:
            return self._out(self._append_event(event))

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
        since = optional_utc(since)
        until = optional_utc(until)
        with self._lock:
            # newest first, from the cursor on (an event's id is its position + 1), stopping
            # at the limit: a page of a long trail does not scan all of it
            skip = 0 if before is None else max(len(self._events) - max(before - 1, 0), 0)
            newest_first = (
                e
                for e in itertools.islice(reversed(self._events), skip, None)
                if (pipeline is None or e.pipeline == pipeline)
                and (since is None or e.at >= since)
                and (until is None or e.at <= until)
                and (kinds is None or e.kind in kinds)
            )
            found = list(itertools.islice(newest_first, None if limit is None else max(limit, 0)))
            found.reverse()
            return self._out(found)

    # -- tokens --

    def add_token(self, token: TokenRecord, event: Event | None = None) -> TokenRecord:
        token = normalized_token(token)
        event = None if event is None else normalized_event(event)
        with self._lock:
            if token.id in self._tokens:
                raise token_exists(token.id)
            self._tokens[token.id] = token
            if event is not None:
                self._append_event(event)
        return token

    def get_token(self, token_id: str) -> TokenRecord | None:
        with self._lock:
            return self._tokens.get(token_id)

    def list_tokens(self) -> list[TokenRecord]:
        with self._lock:
            return sorted(self._tokens.values(), key=lambda t: (t.created_at, t.id))

    def revoke_token(
        self, token_id: str, *, at: datetime, event: Event | None = None
    ) -> TokenRecord:
        at = as_utc(at)
        event = None if event is None else normalized_event(event)
        with self._lock:
            token = self._tokens.get(token_id)
            if token is None:
                raise unknown_token(token_id, list(self._tokens))
            if token.revoked_at is not None:
                return token
            token = self._tokens[token_id] = replace(token, revoked_at=at)
            if event is not None:
                self._append_event(event)
            return token

    def mark_token_used(self, token_id: str, *, at: datetime, if_before: datetime) -> bool:
        at, if_before = as_utc(at), as_utc(if_before)
        with self._lock:
            token = self._tokens.get(token_id)
            if token is None or (
                token.last_used_at is not None and token.last_used_at >= if_before
            ):
                return False
            self._tokens[token_id] = replace(token, last_used_at=at)
            return True

    def close(self) -> None:
        """Nothing to release; the store stays usable."""
