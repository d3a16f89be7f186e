"""JSON-ready views of the stored records: the shapes ``--json`` prints.

Kept apart from the use cases so that any of them (a run's result, the registry, the status)
renders a record the same way without importing the others.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from retrainer.core.types import AliasMove, Event, ModelVersion, Run

__all__ = ["alias_move_view", "event_view", "run_view", "version_view"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def version_view(mv: ModelVersion, aliases: list[str]) -> dict[str, Any]:
    """A model version as JSON-ready data (the shape of ``models list --json``)."""
    snap = mv.snapshot
    return {
        "pipeline": mv.pipeline,
        "version": mv.version,
        "aliases": sorted(aliases),
        "created_at": _iso(mv.created_at),
        "metrics": dict(mv.metrics),
        "params": mv.params,
        "lineage": {
            "run_id": mv.run_id,
            "snapshot": {
                "id": snap.id,
                "source": snap.source,
                "window_start": _iso(snap.window_start),
                "window_end": _iso(snap.window_end),
                "min_time": _iso(snap.min_time),
                "max_time": _iso(snap.max_time),
                "rows": snap.rows,
                "schema": snap.schema,
                "fingerprint": snap.fingerprint,
            },
            "code": {
                "git_commit": mv.code.git_commit,
                "git_dirty": mv.code.git_dirty,
                "pipeline_hash": mv.code.pipeline_hash,
            },
            "environment": mv.environment,
            "artifact": {
                "sha256": mv.artifact_sha256,
                "size": mv.artifact_size,
                "format": mv.artifact_format,
            },
        },
        "blessing": {
            "passed": mv.blessing.passed,
            "reason": mv.blessing.reason,
            "champion_version": mv.blessing.champion_version,
            "evidence": [dataclasses.asdict(row) for row in mv.blessing.evidence],
        },
    }


def run_view(run: Run) -> dict[str, Any]:
    """A run as JSON-ready data."""
    out = dataclasses.asdict(run)
    for key in ("created_at", "started_at", "finished_at", "lease_expires_at"):
        out[key] = _iso(getattr(run, key))
    return out


def event_view(event: Event) -> dict[str, Any]:
    out = dataclasses.asdict(event)
    out["at"] = _iso(event.at)
    return out


def alias_move_view(move: AliasMove) -> dict[str, Any]:
    out = dataclasses.asdict(move)
    out["at"] = _iso(move.at)
    return out
