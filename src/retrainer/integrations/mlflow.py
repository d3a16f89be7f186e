"""MLflow interop: mirror what retrainer did to an MLflow tracking server, and use an MLflow
model as a pipeline's model.

**The mirror** (:func:`sync_mlflow`; ``retrainer mlflow sync``; the daemon after each tick when
``mlflow:`` is configured) replays each pipeline's finished runs, model versions and alias moves
to MLflow, in that order, after a cursor kept in retrainer's own store (``put_state`` under
:data:`STATE_KEY`, compare-and-set on its revision). Everything it creates carries retrainer's
ids as tags (``retrainer.run_id``, ``retrainer.version``) and is looked up by them before it is
created, so a replay after a crash anywhere (after the MLflow write, before the cursor moved)
never duplicates. MLflow being down never fails a retrain: the sync logs, records one
``mlflow.sync_failed`` event per outage, and the next sync starts from the same cursor.

**A model from MLflow**: ``model: {mlflow: "models:/name@alias"}`` in a pipeline makes that
model (its sklearn flavour) the estimator template: each run fits a fresh clone of it, with
``model.params`` set on it (:class:`MlflowTemplate`).

Examples
--------
>>> MlflowTemplate("models:/churn@champion")  # loads nothing until the first fit
MlflowTemplate('models:/churn@champion')
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from retrainer.core.types import AliasMove, Event, ModelVersion, Run
from retrainer.errors import ConcurrencyError, ConfigError
from retrainer.extras import require

if TYPE_CHECKING:
    from retrainer.engine.project import Project
    from retrainer.integrations.mlflow_config import MlflowConfig

__all__ = ["STATE_KEY", "MlflowTemplate", "SyncReport", "mlflow_client", "sync_mlflow"]

_log = logging.getLogger(__name__)

STATE_KEY = "mlflow.mirror"
"""The state key (per pipeline) of the mirror's cursor: the last run id, version number and
alias move id mirrored, and whether the last sync failed."""

_TAG_LIMIT = 5000  # MLflow keeps tag values up to 8000 characters; longer evidence: artifact only
_PARAM_LIMIT = 6000  # MLflow's limit on a param value
_PAGE = 200


def _mlflow() -> Any:
    return require("mlflow", extra="mlflow", needed_for=NEEDED_FOR)


NEEDED_FOR = "The MLflow integration (the mlflow: section, models:/ URIs)"


class MlflowTemplate:
    """An MLflow model (``models:/name@alias``, ``runs:/id/path``...) as an estimator factory:
    calling it returns an unfitted ``sklearn.base.clone`` of the model with ``params`` set.

    The model is loaded (sklearn flavour) at the first call, then kept: a pipeline's
    definition names the URI, the alias is resolved when the first run trains.

    Examples
    --------
    >>> MlflowTemplate("models:/churn/3").uri
    'models:/churn/3'
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._model: Any = None

    def __repr__(self) -> str:
        return f"MlflowTemplate({self.uri!r})"

    def __call__(self, **params: Any) -> Any:
        from sklearn.base import clone

        if self._model is None:
            mlflow = _mlflow()
            try:
                self._model = mlflow.sklearn.load_model(self.uri)
            except Exception as exc:
                raise ConfigError(
                    f"model.mlflow {self.uri!r} could not be loaded as a scikit-learn model "
                    f"(tracking URI {mlflow.get_tracking_uri()!r}): {type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}"
                ) from exc
        estimator = clone(self._model)
        return estimator.set_params(**params) if params else estimator


def mlflow_client(cfg: MlflowConfig) -> Any:
    """An ``MlflowClient`` of ``cfg.tracking_uri`` with its HTTP timeout and retries (set in
    MLflow's environment variables unless the user set them)."""
    _mlflow()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(math.ceil(cfg.timeout)))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(cfg.max_retries))
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.tracking_uri)


@dataclass(slots=True, kw_only=True)
class SyncReport:
    """What one sync did, per pipeline: ``runs``/``versions``/``aliases`` mirrored now,
    ``failed`` the pipelines whose sync failed (with the error's first line)."""

    runs: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def sync_mlflow(project: Project, now: datetime, client: Any = None) -> SyncReport:
    """Mirror every configured pipeline's new runs, versions and alias moves to MLflow.

    Never raises for MLflow's sake: a pipeline whose sync fails is reported in
    ``SyncReport.failed``, logged, and recorded as one ``mlflow.sync_failed`` event (not one
    per attempt while the outage lasts); its cursor stays, so the next sync retries.
    A project without an ``mlflow:`` section, or without the ``mlflow`` package, raises
    ``ConfigError`` (one line naming ``pip install 'retrainer[mlflow]'``).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from retrainer import Project
    >>> sync_mlflow(Project.in_memory(), datetime(2024, 1, 1, tzinfo=UTC))  # doctest: +SKIP
    SyncReport(runs={}, versions={}, aliases={}, failed={})
    """
    cfg = project.config.mlflow
    if cfg is None:
        raise ConfigError("retrainer.yaml has no 'mlflow:' section (tracking_uri, experiment)")
    _mlflow()  # a missing extra is a configuration error, not an outage to retry
    report = SyncReport()
    known = {p.name for p in project.store.list_pipelines()}  # a pipeline that never ran: nothing
    names = [p.name for p in project.config.pipelines if p.name in known]
    if cfg.pipelines is not None:
        names = [n for n in names if n in cfg.pipelines]
    mirror = _Mirror(project, cfg, client)
    for name in names:
        stored = project.store.get_state(name, STATE_KEY)
        state, revision = stored if stored is not None else ({}, None)
        new = dict(state)
        try:
            counts = mirror.pipeline(name, new)
        except Exception as exc:  # MLflow down, refused, a bug: a retrain must not care
            why = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"[:500]
            report.failed[name] = why
            _log.warning("mlflow sync of pipeline %r failed (retried next sync): %s", name, why)
            first = not state.get("failing")
            new["failing"] = True
            event = None
            if first:
                event = Event(
                    kind="mlflow.sync_failed",
                    at=now,
                    pipeline=name,
                    message=f"mirroring to MLflow failed ({why}); retried at the next sync",
                    data={"error": why, "tracking_uri": cfg.tracking_uri},
                )
            _save(project, name, new, revision, now, event, changed=new != state)
            continue
        new["failing"] = False
        report.runs[name], report.versions[name], report.aliases[name] = counts
        _save(project, name, new, revision, now, None, changed=new != state)
    return report


def _save(
    project: Project,
    name: str,
    value: dict[str, Any],
    revision: int | None,
    now: datetime,
    event: Event | None,
    *,
    changed: bool,
) -> None:
    if not changed:
        return
    try:
        project.store.put_state(
            name, STATE_KEY, value, at=now, expected_revision=revision, event=event
        )
    except ConcurrencyError:
        # another mirror synced this pipeline meanwhile: what it wrote to MLflow is the same
        # (looked up by retrainer ids), and its cursor is at least as far as ours
        _log.info("mlflow cursor of %r moved by another process; keeping theirs", name)


def _ms(at: datetime | None) -> int | None:
    return None if at is None else int(at.timestamp() * 1000)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


class _Mirror:
    """The writes of one sync, on one client."""

    def __init__(self, project: Project, cfg: MlflowConfig, client: Any = None) -> None:
        self.project = project
        self.cfg = cfg
        self._client = client
        self._experiment_id: str | None = None
        self._runs: dict[int, str] = {}  # retrainer run id -> MLflow run id, this sync

    @property
    def client(self) -> Any:
        # made at the first write: a sync with nothing new never contacts MLflow
        if self._client is None:
            self._client = mlflow_client(self.cfg)
        return self._client

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            exp = self.client.get_experiment_by_name(self.cfg.experiment)
            self._experiment_id = (
                exp.experiment_id
                if exp is not None
                else self.client.create_experiment(
                    self.cfg.experiment,
                    artifact_location=self.cfg.artifact_location,
                    tags={"retrainer.project": str(self.project.root)},
                )
            )
        return self._experiment_id

    def pipeline(self, name: str, state: dict[str, Any]) -> tuple[int, int, int]:
        """Mirror ``name`` from ``state``'s cursor, moving it in place; (runs, versions,
        aliases) mirrored."""
        store = self.project.store
        runs = 0
        for run in self._new_runs(name, int(state.get("runs", 0))):
            if run.status in ("queued", "running"):
                break  # the cursor waits for it: a later run is mirrored once it ends
            self._run(run)
            state["runs"] = run.id
            runs += 1
        versions = 0
        for mv in store.list_versions(name, profiles=False):
            if mv.version <= int(state.get("versions", 0)):
                continue
            if mv.run_id is not None and mv.run_id > int(state.get("runs", 0)):
                break  # its run is not mirrored yet (still running)
            self._version(mv)
            state["versions"] = mv.version
            versions += 1
        moves = [
            m
            for m in store.alias_history(name, limit=_PAGE)
            if (m.id or 0) > int(state.get("aliases", 0))
        ]
        aliases = 0
        if moves:
            aliases = self._aliases(name, moves, int(state.get("versions", 0)))
            state["aliases"] = (
                max(m.id or 0 for m in moves[:aliases]) if aliases else state.get("aliases", 0)
            )
        return runs, versions, aliases

    def _new_runs(self, name: str, after: int) -> list[Run]:
        """The runs of ``name`` with an id above ``after``, oldest first."""
        out: list[Run] = []
        before = None
        while True:
            page = self.project.store.list_runs(name, limit=_PAGE, before=before)
            fresh = [r for r in page if (r.id or 0) > after]
            out.extend(fresh)
            if len(page) < _PAGE or len(fresh) < len(page):
                break
            before = page[-1].id
        return sorted(out, key=lambda r: r.id or 0)

    # -- runs -------------------------------------------------------------------------------
    def _find_run(self, pipeline: str, run_id: int) -> Any | None:
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=(
                f"tags.`retrainer.pipeline` = '{pipeline}' and tags.`retrainer.run_id` = '{run_id}'"
            ),
            max_results=1,
        )
        return found[0] if found else None

    def _run(self, run: Run) -> str:
        from mlflow.entities import Metric, Param, RunTag

        assert run.id is not None
        existing = self._find_run(run.pipeline, run.id)
        if existing is not None and existing.data.tags.get("retrainer.mirrored") == "1":
            self._runs[run.id] = existing.info.run_id
            return str(existing.info.run_id)
        tags = {
            "retrainer.pipeline": run.pipeline,
            "retrainer.run_id": str(run.id),
            "retrainer.key": run.key,
            "retrainer.cause": run.cause,
            "retrainer.status": run.status,
            "mlflow.runName": f"{run.pipeline} run {run.id}",
        }
        if existing is None:
            mlrun = self.client.create_run(
                self.experiment_id,
                start_time=_ms(run.started_at or run.created_at),
                tags=tags,
                run_name=tags["mlflow.runName"],
            )
            mlflow_id = mlrun.info.run_id
        else:  # created before a crash, not finished: complete it (params are the same values)
            mlflow_id = existing.info.run_id
        extra = {
            "retrainer.outcome": run.outcome,
            "retrainer.version": run.version,
            "retrainer.snapshot_id": run.snapshot_id,
            "retrainer.attempts": run.attempts,
            "retrainer.error": (run.error or "")[:_TAG_LIMIT] or None,
            "retrainer.code_hash": run.code.pipeline_hash if run.code else None,
            "retrainer.git_commit": run.code.git_commit if run.code else None,
            "mlflow.source.git.commit": run.code.git_commit if run.code else None,
        }
        tags.update({k: str(v) for k, v in extra.items() if v is not None})
        evidence = _text(run.evidence)
        if len(evidence) <= _TAG_LIMIT:
            tags["retrainer.evidence"] = evidence
        at = _ms(run.finished_at or run.started_at or run.created_at) or 0
        metrics = [
            Metric(k, float(v), at, 0)
            for k, v in {
                **run.metrics,
                **{f"timing.{k}": v for k, v in run.timings.items()},
            }.items()
            if isinstance(v, int | float) and math.isfinite(v)
        ]
        params = [Param(k, _text(v)[:_PARAM_LIMIT]) for k, v in sorted(run.params.items())]
        if existing is None:
            self.client.log_batch(
                mlflow_id,
                metrics=metrics,
                params=params,
                tags=[RunTag(k, v) for k, v in tags.items()],
            )
        else:  # a metric logged twice would show twice in its history
            self.client.log_batch(
                mlflow_id, params=params, tags=[RunTag(k, v) for k, v in tags.items()]
            )
            logged = set(self.client.get_run(mlflow_id).data.metrics)
            missing = [m for m in metrics if m.key not in logged]
            if missing:
                self.client.log_batch(mlflow_id, metrics=missing)
        self.client.log_dict(
            mlflow_id,
            {"cause": run.cause, "evidence": run.evidence, "error": run.error},
            "retrainer/evidence.json",
        )
        self.client.set_tag(mlflow_id, "retrainer.mirrored", "1")
        self.client.set_terminated(
            mlflow_id,
            status="FINISHED" if run.status == "succeeded" else "FAILED",
            end_time=_ms(run.finished_at),
        )
        self._runs[run.id] = mlflow_id
        return str(mlflow_id)

    # -- model versions ----------------------------------------------------------------------
    def model_name(self, pipeline: str) -> str:
        return f"{self.cfg.model_prefix}{pipeline}"

    def _versions(self, name: str) -> dict[str, Any]:
        """retrainer version number (as text) -> MLflow model version, of model ``name``."""
        found = self.client.search_model_versions(f"name = '{name}'")
        return {mv.tags["retrainer.version"]: mv for mv in found if "retrainer.version" in mv.tags}

    def _ensure_model(self, name: str, pipeline: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
                raise
            self.client.create_registered_model(
                name,
                tags={"retrainer.pipeline": pipeline},
                description=f"retrainer pipeline {pipeline!r}: versions and aliases mirrored",
            )

    def _version(self, mv: ModelVersion) -> None:
        name = self.model_name(mv.pipeline)
        self._ensure_model(name, mv.pipeline)
        if str(mv.version) in self._versions(name):
            return
        mlflow_run = None
        if mv.run_id is not None:
            mlflow_run = self._runs.get(mv.run_id)
            if mlflow_run is None and (found := self._find_run(mv.pipeline, mv.run_id)):
                mlflow_run = found.info.run_id
        snap, code, verdict = mv.snapshot, mv.code, mv.blessing
        tags = {
            "retrainer.pipeline": mv.pipeline,
            "retrainer.version": mv.version,
            "retrainer.run_id": mv.run_id,
            "retrainer.snapshot_id": snap.id,
            "retrainer.window_start": snap.window_start and snap.window_start.isoformat(),
            "retrainer.window_end": snap.window_end and snap.window_end.isoformat(),
            "retrainer.rows": snap.rows,
            "retrainer.data_fingerprint": snap.fingerprint,
            "retrainer.code_hash": code.pipeline_hash,
            "retrainer.git_commit": code.git_commit,
            "retrainer.git_dirty": code.git_dirty,
            "retrainer.artifact_sha256": mv.artifact_sha256,
            "retrainer.artifact_format": mv.artifact_format,
            "retrainer.blessing": "passed" if verdict.passed else "rejected",
            "retrainer.blessing_reason": verdict.reason[:_TAG_LIMIT] or None,
            "retrainer.champion_at_blessing": verdict.champion_version,
            "retrainer.params": _text(mv.params)[:_TAG_LIMIT],
            **{f"retrainer.metric.{k}": v for k, v in mv.metrics.items()},
        }
        self.client.create_model_version(
            name,
            source=self.project.artifacts.url(mv.artifact_sha256),
            run_id=mlflow_run,
            tags={k: _text(v) for k, v in tags.items() if v is not None},
            description=(
                f"retrainer {mv.pipeline} v{mv.version}: blessing "
                f"{'passed' if verdict.passed else 'rejected'}"
                + (f" ({verdict.reason})" if verdict.reason else "")
            ),
        )

    # -- aliases --------------------------------------------------------------------------
    def _aliases(self, pipeline: str, moves: Iterable[AliasMove], mirrored: int) -> int:
        """Apply ``moves`` (oldest first) while they point at mirrored versions; how many."""
        name = self.model_name(pipeline)
        by_number = self._versions(name)
        done = 0
        for move in moves:
            if move.version is not None and move.version > mirrored:
                break
            if move.version is None:
                from mlflow.exceptions import MlflowException

                with contextlib.suppress(MlflowException):  # already gone (a replay)
                    self.client.delete_registered_model_alias(name, move.alias)
            else:
                target = by_number.get(str(move.version))
                if target is None:  # not in MLflow (the registered model was edited there)
                    _log.warning(
                        "%s v%s is not in MLflow; alias %r not moved",
                        name,
                        move.version,
                        move.alias,
                    )
                else:
                    self.client.set_registered_model_alias(name, move.alias, target.version)
                    self.client.set_model_version_tag(
                        name, target.version, f"retrainer.alias.{move.alias}", move.at.isoformat()
                    )
            done += 1
        return done
