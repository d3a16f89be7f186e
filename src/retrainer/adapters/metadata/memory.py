"""The in-memory metadata store, and the record normalization every metadata store shares.

:class:`InMemoryMetadataStore` keeps everything in Python lists and dicts behind one lock. It is
a real adapter, not a mock: tests, doctests, the demo and the backtest use it, and it passes the
same contract suite as :class:`~retrainer.adapters.metadata.sql.SQLMetadataStore`.

The helpers above the class (``normalized_run``, ``json_dict``...) are shared with the SQL store
so that both behave alike: they turn a record into the exact form a store hands back, aware UTC
datetimes and JSON-only dicts (a JSON round-trip, so the in-memory store hands back exactly what
the SQL store would: tuples become lists, numpy scalars become Python numbers, non-finite
floats become ``None``, except in metrics, where they are NaN: see :func:`metrics_from_json`).
"""

from __future__ import annotations

import json
import math
import operator
import pickle
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from retrainer.adapters.metadata.protocol import ANY
from retrainer.core.clock import as_utc
from retrainer.core.types import (
    RUN_STATUSES,
    AliasMove,
    Event,
    EvidenceRow,
    ModelVersion,
    MonitorRecord,
    PipelineRecord,
    Run,
    Snapshot,
    Verdict,
)
from retrainer.errors import ConcurrencyError, ModelNotFoundError

__all__ = ["InMemoryMetadataStore"]

_T = TypeVar("_T")


# -- normalization shared by every metadata store --------------------------------------------


def _json_default(value: Any) -> Any:
    # numpy scalars (np.float64 is already a float, np.int64 and np.bool_ are not) have a
    # zero-dimensional ``item()``; anything else is not JSON.
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _non_finite(token: str) -> None:
    # json.dumps writes NaN and the infinities as the bare tokens NaN, Infinity and -Infinity
    # (not JSON; PostgreSQL's json type refuses them): read each back as null.
    return None


# what ``json.dumps(value, default=_json_default)`` and ``json.loads(text,
# parse_constant=_non_finite)`` use, built once (those calls build a new one each time)
_ENCODER = json.JSONEncoder(default=_json_default)
_DECODER = json.JSONDecoder(parse_constant=_non_finite)


def json_value(value: Any, what: str) -> Any:
    """Return a deep copy of ``value`` made of JSON values only, or raise ``TypeError``.

    Non-finite floats (NaN, infinities), wherever they are, become ``None``.
    """
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{what} must hold only JSON values (str, int, float, bool, None, and lists and "
            f"dicts with string keys of them). Got {exc}"
        ) from None
    return _DECODER.decode(text)


_SCALARS = frozenset({str, int, bool, type(None)})


def _flat_copy(value: Mapping[Any, Any]) -> dict[str, Any] | None:
    """What the JSON round trip gives for a dict of plain scalars (str keys; str, int, bool,
    None and float values, a non-finite float becoming None), without it; None for any
    other dict (nested values, other types: the round trip decides)."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        if type(key) is not str:
            return None
        kind = type(item)
        if kind is float:
            out[key] = item if math.isfinite(item) else None
        elif kind in _SCALARS:
            out[key] = item
        else:
            return None
    return out


def json_dict(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Return a JSON-only deep copy of the dict ``value``, or raise ``TypeError``."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a dict. Got {type(value).__name__}: {value!r}")
    flat = _flat_copy(value)
    if flat is not None:
        return flat
    result: dict[str, Any] = json_value(dict(value), what)
    return result


def json_dicts(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{what: json_dict(value, what)}`` for every entry, in one JSON round trip (a record's
    dict fields are copied together); the error names the field, as ``json_dict``'s does."""
    result: dict[str, dict[str, Any]] = {}
    nested: dict[str, dict[str, Any]] = {}
    for what, value in values.items():
        if not isinstance(value, Mapping):
            json_dict(value, what)  # raises, naming the field
        flat = _flat_copy(value)
        if flat is None:
            nested[what] = dict(value)
        else:
            result[what] = flat
    if nested:
        try:
            text = _ENCODER.encode(nested)
        except (TypeError, ValueError):
            for what, value in nested.items():
                json_dict(value, what)  # raises for the field that cannot be encoded
            raise  # pragma: no cover - one of them raised
        result.update(_DECODER.decode(text))
    return result


def metrics_from_json(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics as a store hands them back: a ``None`` value is NaN ("undefined on this data").

    The JSON form has no NaN, so a NaN metric is stored as ``null``; this is the way back.
    """
    return {name: math.nan if value is None else value for name, value in metrics.items()}


def metrics_to_json(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`metrics_from_json`: NaN (and infinite) values become ``None``."""
    return {
        name: None if isinstance(value, float) and not math.isfinite(value) else value
        for name, value in metrics.items()
    }


def optional_utc(value: datetime | None) -> datetime | None:
    """``as_utc`` that lets ``None`` through."""
    return None if value is None else as_utc(value)


def evidence_to_json(rows: Sequence[EvidenceRow]) -> list[dict[str, Any]]:
    """A verdict's evidence rows as JSON objects (the form the SQL store keeps)."""
    encoded = [
        {
            "rule": row.rule,
            "metric": row.metric,
            "candidate": row.candidate,
            "champion": row.champion,
            "delta": row.delta,
            "threshold": row.threshold,
            "passed": row.passed,
            "slice": row.slice,
            "note": row.note,
        }
        for row in rows
    ]
    result: list[dict[str, Any]] = json_value(encoded, "Verdict.evidence")
    return result


def evidence_from_json(rows: Sequence[Mapping[str, Any]]) -> tuple[EvidenceRow, ...]:
    """The inverse of :func:`evidence_to_json`."""
    return tuple(EvidenceRow(**dict(row)) for row in rows)


def normalized_snapshot(snapshot: Snapshot, schema: dict[str, Any] | None = None) -> Snapshot:
    """``snapshot`` with aware UTC datetimes and a copied ``schema`` (``schema``: the copy,
    when the caller made it already)."""
    return replace(
        snapshot,
        window_start=optional_utc(snapshot.window_start),
        window_end=optional_utc(snapshot.window_end),
        min_time=optional_utc(snapshot.min_time),
        max_time=optional_utc(snapshot.max_time),
        schema=json_dict(snapshot.schema, "Snapshot.schema") if schema is None else schema,
        created_at=as_utc(snapshot.created_at),
    )


def normalized_run(run: Run) -> Run:
    """``run`` with aware UTC datetimes and copied dicts; checks ``status``."""
    if run.status not in RUN_STATUSES:
        raise ValueError(f"Run.status must be one of {', '.join(RUN_STATUSES)}. Got {run.status!r}")
    copies = json_dicts(
        {
            "Run.evidence": run.evidence,
            "Run.params": run.params,
            "Run.metrics": run.metrics,
            "Run.timings": run.timings,
        }
    )
    return replace(
        run,
        created_at=as_utc(run.created_at),
        started_at=optional_utc(run.started_at),
        finished_at=optional_utc(run.finished_at),
        lease_expires_at=optional_utc(run.lease_expires_at),
        evidence=copies["Run.evidence"],
        params=copies["Run.params"],
        metrics=metrics_from_json(copies["Run.metrics"]),
        timings=copies["Run.timings"],
    )


def normalized_version(draft: ModelVersion) -> ModelVersion:
    """``draft`` with aware UTC datetimes, copied dicts and a JSON-checked verdict."""
    blessing = draft.blessing
    fields = {
        "ModelVersion.metrics": draft.metrics,
        "ModelVersion.params": draft.params,
        "ModelVersion.environment": draft.environment,
        "Snapshot.schema": draft.snapshot.schema,
    }
    if draft.profile is not None:
        fields["ModelVersion.profile"] = draft.profile
    copies = json_dicts(fields)
    return replace(
        draft,
        created_at=as_utc(draft.created_at),
        metrics=metrics_from_json(copies["ModelVersion.metrics"]),
        params=copies["ModelVersion.params"],
        environment=copies["ModelVersion.environment"],
        profile=copies.get("ModelVersion.profile"),
        snapshot=normalized_snapshot(draft.snapshot, schema=copies["Snapshot.schema"]),
        blessing=Verdict(
            passed=bool(blessing.passed),
            evidence=evidence_from_json(evidence_to_json(blessing.evidence)),
            champion_version=blessing.champion_version,
            reason=blessing.reason,
        ),
    )


def normalized_event(event: Event) -> Event:
    """``event`` with an aware UTC time and a copied ``data`` dict."""
    return replace(event, at=as_utc(event.at), data=json_dict(event.data, "Event.data"))


def normalized_monitor_record(record: MonitorRecord) -> MonitorRecord:
    """``record`` with aware UTC datetimes and a copied ``summary``; checks the window."""
    start, end = as_utc(record.window_start), as_utc(record.window_end)
    if end < start:
        raise ValueError(
            f"A monitoring window must not end before it starts: window_start is "
            f"{start.isoformat()}, window_end {end.isoformat()}."
        )
    return replace(
        record,
        version=None if record.version is None else operator.index(record.version),
        window_start=start,
        window_end=end,
        created_at=as_utc(record.created_at),
        drifted=None if record.drifted is None else bool(record.drifted),
        summary=json_dict(record.summary, "MonitorRecord.summary"),
    )


STATE_KEY_MAX = 255


def check_state_key(key: str) -> str:
    """A state key must be a string of 1 to ``STATE_KEY_MAX`` characters."""
    if not isinstance(key, str) or not 1 <= len(key) <= STATE_KEY_MAX:
        raise ValueError(
            f"A state key must be a string of 1 to {STATE_KEY_MAX} characters. Got {key!r}."
        )
    return key


def check_expected_epoch(expected_epoch: Any) -> None:
    """``update_run(expected_epoch=None)`` is a mistake, not a lost race: say so."""
    if expected_epoch is None:
        raise ValueError(
            "update_run(expected_epoch=None) can never match: a run's epoch is an int. Pass the "
            "epoch you read the run at, or leave expected_epoch out to skip the check."
        )


def check_snapshot_pipeline(pipeline: str, snapshot: Snapshot) -> None:
    """A model version's snapshot must be data of the same pipeline."""
    if snapshot.pipeline != pipeline:
        raise ValueError(
            f"A version of pipeline {pipeline!r} cannot point at snapshot {snapshot.id} of "
            f"pipeline {snapshot.pipeline!r}: pass a snapshot of {pipeline!r}."
        )


def unknown_pipeline(name: str, known: Sequence[str]) -> ModelNotFoundError:
    """The error for a pipeline the store does not know."""
    listed = ", ".join(repr(n) for n in sorted(known)) or "none"
    return ModelNotFoundError(
        f"Unknown pipeline {name!r}: register it with ensure_pipeline() first. "
        f"Known pipelines: {listed}."
    )


def unknown_version(pipeline: str, version: int, existing: Sequence[int]) -> ModelNotFoundError:
    """The error for a version number a pipeline does not have."""
    have = f"its versions are 1..{max(existing)}" if existing else "it has no versions yet"
    return ModelNotFoundError(f"Pipeline {pipeline!r} has no version {version}: {have}.")


def alias_conflict(
    pipeline: str, alias: str, current: int | None, expected: int | None
) -> ConcurrencyError:
    """The error for a failed compare-and-set on an alias."""

    def show(v: int | None) -> str:
        return "nothing" if v is None else f"version {v}"

    return ConcurrencyError(
        f"Alias {alias!r} of pipeline {pipeline!r} points at {show(current)}, expected "
        f"{show(expected)}: another process moved it first. Read the alias again and retry."
    )


def state_conflict(
    pipeline: str, key: str, current: int | None, expected: int | None
) -> ConcurrencyError:
    """The error for a failed compare-and-set on a state key."""

    def show(revision: int | None) -> str:
        return "does not exist" if revision is None else f"is at revision {revision}"

    return ConcurrencyError(
        f"State {key!r} of pipeline {pipeline!r} {show(current)}, expected it {show(expected)}"
        ": another process wrote it first. Read it again and retry."
    )


def epoch_conflict(run_id: int, current: int, expected: int | None) -> ConcurrencyError:
    """The error for a failed compare-and-set on a run's epoch."""
    return ConcurrencyError(
        f"Run {run_id} is at epoch {current}, expected epoch {expected}: another process "
        "claimed it since. Read the run again; its lease is no longer yours."
    )


# -- the store ----------------------------------------------------------------------------


class InMemoryMetadataStore:
    """A metadata store that keeps everything in memory, for tests, the demo and backtests.

    Thread-safe (one lock around every method). Records are copied on the way in and on the
    way out, so mutating a dict you passed in or got back never changes what is stored.
    Everything is lost when the object is dropped.

    Like every metadata store: a write that names an unknown pipeline, run, snapshot or version
    raises :class:`~retrainer.errors.ModelNotFoundError` (``append_event`` excepted), and so do
    ``get_run``, ``get_snapshot`` and ``get_version``; every other read of an unknown pipeline
    finds nothing (``[]``, ``{}``, ``None``). Dicts must hold JSON values; non-finite floats in
    them are kept as ``None``, except metric values, which come back as NaN.

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
        """Create the pipeline or update its definition hash; return the record.

        ``updated_at`` only moves when the hash changes.
        """
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
        """All pipelines, by name."""
        with self._lock:
            return [self._pipelines[name] for name in sorted(self._pipelines)]

    # -- snapshots --

    def add_snapshot(self, snapshot: Snapshot) -> Snapshot:
        """Store a snapshot and return it with its ``id`` set."""
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

    def create_run(self, run: Run) -> tuple[Run, bool]:
        """Insert ``run`` unless a run with its key exists; return (the stored run, created)."""
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
            return self._out(stored), True

    def update_run(self, run: Run, *, expected_epoch: int | None = ANY) -> Run:
        """Overwrite the run with ``run.id`` with every field of ``run``; return it.

        A run's ``key`` cannot change (it is what makes ``create_run`` idempotent). If
        ``expected_epoch`` is given and the stored run's ``epoch`` differs, raise
        ``ConcurrencyError`` and change nothing.
        """
        run_id = run.id
        if run_id is None:
            raise ValueError("update_run needs a run with an id: pass the run create_run returned")
        check_expected_epoch(expected_epoch)
        run = normalized_run(run)
        with self._lock:
            current = self._require_run(run_id)
            if current.key != run.key:
                raise ValueError(
                    f"A run's key cannot change: run {run_id} has key {current.key!r}, "
                    f"got {run.key!r}."
                )
            if expected_epoch is not ANY and current.epoch != expected_epoch:
                raise epoch_conflict(run_id, current.epoch, expected_epoch)
            self._check_run_refs(run)
            self._set_run(run)
            return self._out(run)

    def get_run(self, run_id: int) -> Run:
        with self._lock:
            return self._out(self._require_run(run_id))

    def list_runs(
        self, pipeline: str | None = None, status: str | None = None, limit: int | None = 50
    ) -> list[Run]:
        """Runs, newest first (by id); ``limit=None`` returns them all."""
        with self._lock:
            candidates = (
                reversed(self._runs)
                if status is None
                else (
                    self._runs[i - 1]
                    for i in sorted(self._run_status.get(status, ()), reverse=True)
                )
            )
            found = [
                run
                for run in candidates
                if (pipeline is None or run.pipeline == pipeline)
                and (status is None or run.status == status)
            ]
            return self._out(found if limit is None else found[: max(limit, 0)])

    # -- model versions --

    def register_version(self, draft: ModelVersion, event: Event | None = None) -> ModelVersion:
        """Assign the next version number of ``draft.pipeline`` and store it.

        ``draft.version`` is ignored. A snapshot without an ``id`` is stored first; one with an
        ``id`` must exist and is returned as stored. ``event`` (if given) is stored with its
        ``version`` set to the assigned number; all of it happens or none of it does.
        """
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

    def get_version(self, pipeline: str, version: int) -> ModelVersion:
        with self._lock:
            return self._out(self._require_version(pipeline, version))

    def list_versions(self, pipeline: str, *, profiles: bool = True) -> list[ModelVersion]:
        """All versions of ``pipeline``, oldest first (none for an unknown pipeline)."""
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
        """Point ``alias`` at ``version`` (``None`` clears it), appending to its history.

        If ``expected`` is given (a version or ``None``) and the alias currently points
        elsewhere, raise ``ConcurrencyError`` and change nothing. A version that does not exist
        raises ``ModelNotFoundError``. ``event`` (if given) is stored with the move.
        """
        at = as_utc(at)
        event = None if event is None else normalized_event(event)
        with self._lock:
            self._require_pipeline(pipeline)
            if version is not None:
                self._require_version(pipeline, version)
            current = self._current(pipeline, alias)
            if expected is not ANY and current != expected:
                raise alias_conflict(pipeline, alias, current, expected)
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
        """The version ``alias`` points at now, or ``None``."""
        with self._lock:
            return self._current(pipeline, alias)

    def aliases(self, pipeline: str) -> dict[str, int]:
        """Current aliases of ``pipeline`` that point at a version."""
        with self._lock:
            current: dict[str, int | None] = {}
            for move in self._moves:
                if move.pipeline == pipeline:
                    current[move.alias] = move.version
            return {name: v for name, v in sorted(current.items()) if v is not None}

    def alias_history(self, pipeline: str, alias: str | None = None) -> list[AliasMove]:
        """Moves, oldest first."""
        with self._lock:
            if alias is not None:
                return list(self._alias_moves.get((pipeline, alias), ()))
            return [m for m in self._moves if m.pipeline == pipeline]

    def alias_at(self, pipeline: str, alias: str, at: datetime) -> int | None:
        """The version ``alias`` pointed at, at time ``at`` (None if none).

        That is the last move (by id) made at or before ``at``.
        """
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
        """Store the figures of one monitoring window; return them with their ``id`` set.

        ``record.version`` (if not ``None``) must be a version of ``record.pipeline``.
        ``event`` (if given) is stored with the record: both or neither.
        """
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
        """Monitoring windows of ``pipeline``, oldest first (by ``window_end``, then id).

        ``since`` and ``until`` keep the windows inside ``[since, until]``; with ``limit``,
        the most recent ``limit`` of them.
        """
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
        """The value stored under ``key`` and its revision, or ``None`` if there is none."""
        with self._lock:
            found = self._state.get((pipeline, key))
            return None if found is None else (self._out(found[0]), found[1])

    def put_state(
        self,
        pipeline: str,
        key: str,
        value: dict[str, Any],
        *,
        at: datetime,
        expected_revision: int | None = ANY,
    ) -> int:
        """Store ``value`` under ``key``; return the new revision (the first is 1).

        If ``expected_revision`` is given (a revision, or ``None`` for "must not exist yet")
        and the stored revision differs, raise ``ConcurrencyError`` and change nothing.
        """
        check_state_key(key)
        value = json_dict(value, f"The value of state {key!r}")
        at = as_utc(at)
        with self._lock:
            self._require_pipeline(pipeline)
            found = self._state.get((pipeline, key))
            current = None if found is None else found[1]
            if expected_revision is not ANY and current != expected_revision:
                raise state_conflict(pipeline, key, current, expected_revision)
            revision = 1 if current is None else current + 1
            self._state[(pipeline, key)] = (value, revision, at)
            return revision

    def list_state(self, pipeline: str) -> dict[str, dict[str, Any]]:
        """Every value stored for ``pipeline``, by key."""
        with self._lock:
            return {
                key: self._out(value)
                for (name, key), (value, _, _) in sorted(self._state.items(), key=lambda i: i[0])
                if name == pipeline
            }

    # -- events --

    def append_event(self, event: Event) -> Event:
        """Store ``event`` and return it with its ``id`` set."""
        event = normalized_event(event)
        with self._lock:
            return self._out(self._append_event(event))

    def list_events(
        self,
        pipeline: str | None = None,
        since: datetime | None = None,
        kinds: list[str] | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events oldest first (by id); with ``limit``, the most recent ``limit`` of them.

        ``since`` keeps the events at or after it.
        """
        since = optional_utc(since)
        with self._lock:
            found = [
                e
                for e in self._events
                if (pipeline is None or e.pipeline == pipeline)
                and (since is None or e.at >= since)
                and (kinds is None or e.kind in kinds)
            ]
            if limit is not None:
                found = found[max(len(found) - limit, 0) :] if limit > 0 else []
            return self._out(found)

    def close(self) -> None:
        """Nothing to release; the store stays usable."""
