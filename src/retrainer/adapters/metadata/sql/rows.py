"""Records to table rows and back: the only place that knows both the columns and the records.

Every ``DateTime`` column holds naive UTC; the records carry aware UTC datetimes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from retrainer.adapters.metadata._records import (
    evidence_from_json,
    evidence_to_json,
    metrics_from_json,
    metrics_to_json,
    optional_utc,
)
from retrainer.core.clock import as_utc
from retrainer.core.types import (
    AliasMove,
    CodeVersion,
    Event,
    ModelVersion,
    MonitorRecord,
    PipelineRecord,
    Run,
    Snapshot,
    TokenRecord,
    Verdict,
)


def db_time(value: datetime | None) -> datetime | None:
    """Naive UTC, the form every DateTime column holds."""
    return None if value is None else as_utc(value).replace(tzinfo=None)


def code_columns(code: CodeVersion | None) -> dict[str, Any]:
    return {
        "code_pipeline_hash": None if code is None else code.pipeline_hash,
        "code_git_commit": None if code is None else code.git_commit,
        "code_git_dirty": None if code is None else code.git_dirty,
    }


def code_from(row: sa.RowMapping) -> CodeVersion | None:
    if row["code_pipeline_hash"] is None:
        return None
    return CodeVersion(
        pipeline_hash=row["code_pipeline_hash"],
        git_commit=row["code_git_commit"],
        git_dirty=row["code_git_dirty"],
    )


def pipeline_from(row: sa.RowMapping) -> PipelineRecord:
    return PipelineRecord(
        name=row["name"],
        definition_hash=row["definition_hash"],
        created_at=as_utc(row["created_at"]),
        updated_at=as_utc(row["updated_at"]),
    )


def snapshot_columns(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "pipeline": snapshot.pipeline,
        "source": snapshot.source,
        "window_start": db_time(snapshot.window_start),
        "window_end": db_time(snapshot.window_end),
        "min_time": db_time(snapshot.min_time),
        "max_time": db_time(snapshot.max_time),
        "row_count": snapshot.rows,
        "data_schema": snapshot.schema,
        "fingerprint": snapshot.fingerprint,
        "created_at": db_time(snapshot.created_at),
    }


def snapshot_from(row: sa.RowMapping) -> Snapshot:
    return Snapshot(
        id=row["id"],
        pipeline=row["pipeline"],
        source=row["source"],
        window_start=optional_utc(row["window_start"]),
        window_end=optional_utc(row["window_end"]),
        min_time=optional_utc(row["min_time"]),
        max_time=optional_utc(row["max_time"]),
        rows=row["row_count"],
        schema=row["data_schema"],
        fingerprint=row["fingerprint"],
        created_at=as_utc(row["created_at"]),
    )


def run_columns(run: Run) -> dict[str, Any]:
    return {
        "key": run.key,
        "pipeline": run.pipeline,
        "cause": run.cause,
        "created_at": db_time(run.created_at),
        "status": run.status,
        "evidence": run.evidence,
        "params": run.params,
        "snapshot_id": run.snapshot_id,
        **code_columns(run.code),
        "started_at": db_time(run.started_at),
        "finished_at": db_time(run.finished_at),
        "error": run.error,
        "metrics": metrics_to_json(run.metrics),
        "version": run.version,
        "outcome": run.outcome,
        "owner": run.owner,
        "lease_expires_at": db_time(run.lease_expires_at),
        "epoch": run.epoch,
        "attempts": run.attempts,
        "timings": run.timings,
    }


def run_from(row: sa.RowMapping) -> Run:
    return Run(
        id=row["id"],
        key=row["key"],
        pipeline=row["pipeline"],
        cause=row["cause"],
        created_at=as_utc(row["created_at"]),
        status=row["status"],
        evidence=row["evidence"],
        params=row["params"],
        snapshot_id=row["snapshot_id"],
        code=code_from(row),
        started_at=optional_utc(row["started_at"]),
        finished_at=optional_utc(row["finished_at"]),
        error=row["error"],
        metrics=metrics_from_json(row["metrics"]),
        version=row["version"],
        outcome=row["outcome"],
        owner=row["owner"],
        lease_expires_at=optional_utc(row["lease_expires_at"]),
        epoch=row["epoch"],
        attempts=row["attempts"],
        timings=row["timings"],
    )


def version_columns(version: ModelVersion, number: int, snapshot_id: int) -> dict[str, Any]:
    return {
        "pipeline": version.pipeline,
        "version": number,
        "created_at": db_time(version.created_at),
        "run_id": version.run_id,
        "artifact_sha256": version.artifact_sha256,
        "artifact_size": version.artifact_size,
        "artifact_format": version.artifact_format,
        "metrics": metrics_to_json(version.metrics),
        "params": version.params,
        "snapshot_id": snapshot_id,
        **code_columns(version.code),
        "environment": version.environment,
        "blessed": version.blessing.passed,
        "blessing_reason": version.blessing.reason,
        "blessing_champion_version": version.blessing.champion_version,
        "blessing_evidence": evidence_to_json(version.blessing.evidence),
        "profile": version.profile,
    }


def version_from(row: sa.RowMapping, snapshot: Snapshot) -> ModelVersion:
    code = code_from(row)
    assert code is not None  # the column is NOT NULL
    return ModelVersion(
        pipeline=row["pipeline"],
        version=row["version"],
        created_at=as_utc(row["created_at"]),
        run_id=row["run_id"],
        artifact_sha256=row["artifact_sha256"],
        artifact_size=row["artifact_size"],
        artifact_format=row["artifact_format"],
        metrics=metrics_from_json(row["metrics"]),
        params=row["params"],
        snapshot=snapshot,
        code=code,
        environment=row["environment"],
        blessing=Verdict(
            passed=bool(row["blessed"]),
            evidence=evidence_from_json(row["blessing_evidence"]),
            champion_version=row["blessing_champion_version"],
            reason=row["blessing_reason"],
        ),
        profile=row.get("profile"),
    )


def move_from(row: sa.RowMapping) -> AliasMove:
    return AliasMove(
        id=row["id"],
        pipeline=row["pipeline"],
        alias=row["alias"],
        version=row["version"],
        previous=row["previous"],
        at=as_utc(row["at"]),
        reason=row["reason"],
        actor=row["actor"],
    )


def monitor_columns(record: MonitorRecord) -> dict[str, Any]:
    return {
        "pipeline": record.pipeline,
        "version": record.version,
        "window_start": db_time(record.window_start),
        "window_end": db_time(record.window_end),
        "created_at": db_time(record.created_at),
        "drifted": record.drifted,
        "summary": record.summary,
    }


def monitor_from(row: sa.RowMapping) -> MonitorRecord:
    return MonitorRecord(
        id=row["id"],
        pipeline=row["pipeline"],
        version=row["version"],
        window_start=as_utc(row["window_start"]),
        window_end=as_utc(row["window_end"]),
        created_at=as_utc(row["created_at"]),
        drifted=row["drifted"],
        summary=row["summary"],
    )


def event_columns(event: Event) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "at": db_time(event.at),
        "message": event.message,
        "pipeline": event.pipeline,
        "run_id": event.run_id,
        "version": event.version,
        "data": event.data,
    }


def event_from(row: sa.RowMapping) -> Event:
    return Event(
        id=row["id"],
        kind=row["kind"],
        at=as_utc(row["at"]),
        message=row["message"],
        pipeline=row["pipeline"],
        run_id=row["run_id"],
        version=row["version"],
        data=row["data"],
    )


def token_columns(token: TokenRecord) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "scopes": list(token.scopes),
        "secret_sha256": token.secret_sha256,
        "created_at": db_time(token.created_at),
        "revoked_at": db_time(token.revoked_at),
        "last_used_at": db_time(token.last_used_at),
    }


def token_from(row: sa.RowMapping) -> TokenRecord:
    return TokenRecord(
        id=row["id"],
        name=row["name"],
        scopes=tuple(row["scopes"]),
        secret_sha256=row["secret_sha256"],
        created_at=as_utc(row["created_at"]),
        revoked_at=optional_utc(row["revoked_at"]),
        last_used_at=optional_utc(row["last_used_at"]),
    )
