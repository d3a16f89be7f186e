"""The rules every metadata store applies to what goes in and comes out, written once.

Both :class:`~retrainer.adapters.metadata.InMemoryMetadataStore` and
:class:`~retrainer.adapters.metadata.SQLMetadataStore` run a record through these before
storing it, so they hand back the exact same values: aware UTC datetimes and JSON-only dicts
(a JSON round-trip, so the in-memory store hands back exactly what the SQL store would: tuples
become lists, numpy scalars become Python numbers, non-finite floats become ``None``, except in
metrics, where they are NaN: see :func:`metrics_from_json`). The checks and the errors of the
contract (unknown names, compare-and-set conflicts) live here too.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from retrainer.adapters.metadata.protocol import ANY
from retrainer.core.clock import as_utc
from retrainer.core.jsonsafe import json_safe
from retrainer.core.types import (
    RUN_STATUSES,
    Event,
    EvidenceRow,
    ModelVersion,
    MonitorRecord,
    Run,
    Snapshot,
    TokenRecord,
    Verdict,
)
from retrainer.errors import ConcurrencyError, ModelNotFoundError, TokenNotFoundError

_V = TypeVar("_V")


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
    other dict (nested values, other types: the round trip decides).

    A fast path, not a sanitizer: unlike ``core.jsonsafe.json_safe`` it gives up on anything
    not flat, so that values JSON cannot hold still raise ``TypeError`` in the round trip."""
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
    out: dict[str, Any] = json_safe(metrics)
    return out


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


TOKEN_ID_MAX = 64
TOKEN_NAME_MAX = 255
_HEX = frozenset("0123456789abcdef")


def normalized_token(token: TokenRecord) -> TokenRecord:
    """``token`` with aware UTC datetimes and a tuple of scopes; checks what the columns hold.

    The store checks shapes only (the engine decides which scopes exist): an id of 1 to
    ``TOKEN_ID_MAX`` characters, a name of 1 to ``TOKEN_NAME_MAX``, scopes as strings, and a
    sha256 as 64 lowercase hex digits (a secret passed by mistake is refused, not stored).
    """
    if not isinstance(token.id, str) or not 1 <= len(token.id) <= TOKEN_ID_MAX:
        raise ValueError(
            f"A token id must be a string of 1 to {TOKEN_ID_MAX} characters. Got {token.id!r}."
        )
    if not isinstance(token.name, str) or not 1 <= len(token.name) <= TOKEN_NAME_MAX:
        raise ValueError(
            f"A token name must be a string of 1 to {TOKEN_NAME_MAX} characters. "
            f"Got {token.name!r}."
        )
    scopes = tuple(token.scopes)
    if isinstance(token.scopes, str) or not all(isinstance(s, str) and s for s in scopes):
        raise TypeError(f"TokenRecord.scopes must be a sequence of names. Got {token.scopes!r}.")
    digest = token.secret_sha256
    if not (isinstance(digest, str) and len(digest) == 64 and set(digest) <= _HEX):
        # no repr of the value: it may be the secret itself
        raise ValueError("TokenRecord.secret_sha256 must be a sha256 as 64 lowercase hex digits.")
    return replace(
        token,
        scopes=scopes,
        created_at=as_utc(token.created_at),
        revoked_at=optional_utc(token.revoked_at),
        last_used_at=optional_utc(token.last_used_at),
    )


def token_exists(token_id: str) -> ValueError:
    """The error for a token id already stored."""
    return ValueError(f"A token with id {token_id!r} already exists: make a new id.")


def unknown_token(token_id: str, known: Sequence[str]) -> TokenNotFoundError:
    """The error for a token id the store does not hold."""
    listed = ", ".join(repr(k) for k in sorted(known)) or "none"
    return TokenNotFoundError(
        f"No token with id {token_id!r} (retrainer token list shows them). Known ids: {listed}."
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


def require_run_id(run: Run) -> int:
    """The id of a run passed to ``update_run``, which must have one."""
    if run.id is None:
        raise ValueError("update_run needs a run with an id: pass the run create_run returned")
    return run.id


def check_run_key(run_id: int, stored_key: str, run: Run) -> None:
    """A run's key cannot change: it is what makes ``create_run`` idempotent."""
    if stored_key != run.key:
        raise ValueError(
            f"A run's key cannot change: run {run_id} has key {stored_key!r}, got {run.key!r}."
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


# -- compare-and-set ---------------------------------------------------------------------------


def check_expected(
    current: _V, expected: Any, conflict: Callable[[_V, Any], ConcurrencyError]
) -> None:
    """The compare of every compare-and-set: raise ``conflict(current, expected)`` unless
    ``expected`` is ``ANY`` (no check) or the stored value.

    The stores call it holding their write lock (the in-memory lock, ``BEGIN IMMEDIATE`` on
    SQLite, a row lock on PostgreSQL) between reading ``current`` and writing, which is what
    makes the check and the write one step.

    >>> never = lambda current, expected: ConcurrencyError("unreachable")
    >>> check_expected(3, ANY, never)
    >>> check_expected(3, 3, never)
    >>> check_expected(None, 1, lambda c, e: ConcurrencyError(f"at {c}, expected {e}"))
    Traceback (most recent call last):
    ...
    retrainer.errors.ConcurrencyError: at None, expected 1
    """
    if expected is not ANY and current != expected:
        raise conflict(current, expected)
