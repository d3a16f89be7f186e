"""The model registry use cases: list, show, promote, roll back, and project status.

Aliases move only here and in a run, and always with an event in the same transaction.
Only blessed versions may become champion: a candidate that is not blessed is never served,
and no alias moves onto a version whose artifact fails its check (:func:`verify_artifact`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from retrainer.config import PipelineConfig
from retrainer.core.clock import Clock
from retrainer.core.rollout import ROLLOUT_KEY
from retrainer.core.types import CHAMPION, AliasMove, Event, ModelVersion, Run
from retrainer.engine.project import Project
from retrainer.engine.runs.views import (  # the JSON views, where callers found them
    _iso,
    alias_move_view,
    event_view,
    run_view,
    version_view,
)
from retrainer.errors import ArtifactIntegrityError, ModelNotFoundError, RetrainerError


class PromotionError(RetrainerError, ValueError):
    """The requested alias move is not allowed (e.g. the version is not blessed)."""


def _get_version(project: Project, pipeline: str, version: int) -> ModelVersion:
    """``store.get_version``, with a user's message for a pipeline that never trained."""
    try:
        return project.store.get_version(pipeline, version)
    except ModelNotFoundError:
        if not any(p.name == pipeline for p in project.store.list_pipelines()):
            raise ModelNotFoundError(
                f"{pipeline} has no model versions yet: train one with 'retrainer run'"
            ) from None
        raise


def verify_artifact(
    project: Project, mv: ModelVersion, *, alias: str, at: datetime, run_id: int | None = None
) -> None:
    """Refuse to point ``alias`` at ``mv`` unless its artifact reads back whole and unchanged.

    The blob is read from the store and its size and sha256 compared with those recorded in
    the version. On a mismatch (or a missing blob) a ``promotion.skipped`` event says why and
    ``ArtifactIntegrityError`` is raised with the same one line: the champion is never moved
    onto a model that cannot load.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from retrainer.core.clock import SimulatedClock
    >>> from retrainer.engine.runs.run import execute_run
    >>> from retrainer.testing import in_memory_project
    >>> project = in_memory_project(name="churn")
    >>> _ = execute_run(project, clock=SimulatedClock(datetime(2024, 1, 11, tzinfo=UTC)))
    >>> mv = project.store.get_version("churn", 1)
    >>> verify_artifact(project, mv, alias="champion", at=datetime(2024, 1, 12, tzinfo=UTC))
    """
    try:
        project.artifacts.verify(mv.artifact_sha256, mv.artifact_size)
    except ArtifactIntegrityError as exc:
        message = (
            f"refusing to point {mv.pipeline} '{alias}' at v{mv.version}: its {exc}; restore "
            "the file from a backup, or choose another version"
        )
        project.store.append_event(
            Event(
                kind="promotion.skipped",
                at=at,
                message=message,
                pipeline=mv.pipeline,
                run_id=run_id,
                version=mv.version,
                data={"alias": alias, "artifact": str(exc)},
            )
        )
        raise ArtifactIntegrityError(message) from None


def _aliases_by_version(project: Project, pipeline: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for alias, version in project.store.aliases(pipeline).items():
        out.setdefault(version, []).append(alias)
    return out


def list_models(project: Project, pipeline: str | None = None) -> list[dict[str, Any]]:
    """Every version of the pipeline, oldest first, as JSON-ready data."""
    name = project.config.pipeline(pipeline).name
    by_version = _aliases_by_version(project, name)
    return [
        version_view(mv, by_version.get(mv.version, []))
        for mv in project.store.list_versions(name, profiles=False)
    ]


def show_model(project: Project, version: int, pipeline: str | None = None) -> dict[str, Any]:
    """One version with its lineage, blessing evidence and the alias history touching it."""
    name = project.config.pipeline(pipeline).name
    mv = _get_version(project, name, version)
    view = version_view(mv, _aliases_by_version(project, name).get(version, []))
    view["alias_history"] = [
        alias_move_view(m)
        for m in project.store.alias_history(name)
        if version in (m.version, m.previous)
    ]
    if mv.run_id is not None:
        view["run"] = run_view(project.store.get_run(mv.run_id))
    return view


def promote(
    project: Project,
    version: int,
    *,
    clock: Clock,
    pipeline: str | None = None,
    alias: str = CHAMPION,
    actor: str = "retrainer promote",
    reason: str | None = None,
) -> AliasMove:
    """Point ``alias`` at a blessed ``version``, recording the move and an event.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from retrainer.core.clock import SimulatedClock
    >>> from retrainer.engine.runs.run import execute_run
    >>> from retrainer.testing import in_memory_project
    >>> project = in_memory_project(name="churn")  # one pipeline on in-memory stores
    >>> for day in (11, 15):
    ...     _ = execute_run(project, clock=SimulatedClock(datetime(2024, 1, day, tzinfo=UTC)))
    >>> clock = SimulatedClock(datetime(2024, 1, 16, tzinfo=UTC))
    >>> move = promote(project, 1, clock=clock, alias="stable")
    >>> (move.alias, move.version, move.previous)
    ('stable', 1, None)
    >>> project.store.aliases("churn") == {"champion": 2, "stable": 1}
    True
    >>> promote(project, 2, clock=clock)
    Traceback (most recent call last):
    ...
    retrainer.engine.runs.registry.PromotionError: churn v2 is already 'champion'
    """
    if not alias or alias != alias.strip():
        raise PromotionError(
            f"an alias is a non-empty name without surrounding spaces; got {alias!r}"
        )
    name = project.config.pipeline(pipeline).name
    mv = _get_version(project, name, version)
    if not mv.blessing.passed:
        raise PromotionError(
            f"{name} v{version} was not blessed ({mv.blessing.reason}); only blessed versions "
            f"can be promoted to '{alias}'"
        )
    current = project.store.get_alias(name, alias)
    if current == version:
        raise PromotionError(f"{name} v{version} is already '{alias}'")
    now = clock.now()
    verify_artifact(project, mv, alias=alias, at=now)
    return project.store.move_alias(
        name,
        alias,
        version,
        at=now,
        reason=reason or "manual promote",
        actor=actor,
        expected=current,
        event=Event(
            kind="model.promoted",
            at=now,
            message=f"{name} v{version} promoted to {alias} by hand"
            + (f" (was v{current})" if current else ""),
            pipeline=name,
            version=version,
            data={"alias": alias, "previous": current, "policy": "manual", "actor": actor},
        ),
    )


ROLLBACK_REASON = "rollback from v"
"""How a rollback's alias move starts its reason (how :func:`rollback_target` tells them apart)."""


def serving_stack(history: list[AliasMove]) -> list[int]:
    """The versions an alias served, oldest first, with the rolled-back ones taken off.

    A promotion pushes its version; a rollback pops back to its target (pushes it when it
    never served), so rolling back twice goes two versions back instead of returning to the
    version just rolled back from; clearing the alias empties the stack.
    """
    stack: list[int] = []
    for move in history:
        if move.version is None:
            stack.clear()
        elif move.reason.startswith(ROLLBACK_REASON) and move.version in stack:
            del stack[stack.index(move.version) + 1 :]
        else:
            stack.append(move.version)
    return stack


def rollback_target(project: Project, pipeline: str, alias: str = CHAMPION) -> int:
    """The version ``alias`` served before its current one and not rolled back from since
    (blessed, still present)."""
    current = project.store.get_alias(pipeline, alias)
    if current is None:
        raise ModelNotFoundError(f"{pipeline} has no '{alias}' to roll back")
    for v in reversed(serving_stack(project.store.alias_history(pipeline, alias))):
        if v != current and project.store.get_version(pipeline, v).blessing.passed:
            return v
    raise ModelNotFoundError(
        f"{pipeline} '{alias}' v{current} has no earlier blessed version to roll back to"
    )


def rollback(
    project: Project,
    *,
    clock: Clock,
    pipeline: str | None = None,
    to: int | None = None,
    alias: str = CHAMPION,
    actor: str = "retrainer rollback",
) -> AliasMove:
    """Move ``alias`` back to an earlier blessed version (the previous one by default).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from retrainer.core.clock import SimulatedClock
    >>> from retrainer.engine.runs.run import execute_run
    >>> from retrainer.testing import in_memory_project
    >>> project = in_memory_project(name="churn")  # one pipeline on in-memory stores
    >>> for day in (11, 15):
    ...     _ = execute_run(project, clock=SimulatedClock(datetime(2024, 1, day, tzinfo=UTC)))
    >>> project.store.get_alias("churn", "champion")
    2
    >>> move = rollback(project, clock=SimulatedClock(datetime(2024, 1, 16, tzinfo=UTC)))
    >>> (move.previous, move.version, move.reason)
    (2, 1, 'rollback from v2')
    >>> [e.kind for e in project.store.list_events("churn")][-1]
    'model.rolled_back'
    """
    name = project.config.pipeline(pipeline).name
    current = project.store.get_alias(name, alias)
    target = to if to is not None else rollback_target(project, name, alias)
    mv = _get_version(project, name, target)
    if not mv.blessing.passed:
        raise PromotionError(
            f"{name} v{target} was not blessed ({mv.blessing.reason}); cannot roll back to it"
        )
    if target == current:
        raise PromotionError(f"{name} v{target} is already '{alias}'")
    if current is not None and target > current:
        raise PromotionError(
            f"{name} v{target} is newer than '{alias}' v{current}: a rollback goes back to an "
            f"earlier version; to move forward, run 'retrainer promote {target}'"
        )
    now = clock.now()
    verify_artifact(project, mv, alias=alias, at=now)
    return project.store.move_alias(
        name,
        alias,
        target,
        at=now,
        reason=f"{ROLLBACK_REASON}{current}",
        actor=actor,
        expected=current,
        event=Event(
            kind="model.rolled_back",
            at=now,
            message=f"{name} {alias} rolled back from v{current} to v{target}",
            pipeline=name,
            version=target,
            data={"alias": alias, "previous": current, "actor": actor},
        ),
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PipelineStatus:
    """One pipeline at a glance: what ``retrainer status`` shows.

    ``to_json()`` is one element of ``retrainer status --json``.

    Examples
    --------
    >>> s = PipelineStatus(pipeline="churn", champion=None, versions=0)
    >>> s.to_json()["champion"], s.last_run
    (None, None)
    """

    pipeline: str
    champion: int | None
    champion_metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)
    champion_created_at: datetime | None = None
    aliases: Mapping[str, int] = dataclasses.field(default_factory=dict)
    versions: int
    next_fire: str | None = None
    """The next scheduled fire (ISO 8601), None without a schedule or when not asked."""
    last_triggers: tuple[Event, ...] = ()
    """The last trigger evaluations, newest first."""
    last_runs: tuple[Run, ...] = ()
    """The last runs, newest first."""
    running: tuple[Run, ...] = ()
    queued: tuple[Run, ...] = ()
    rollout: Mapping[str, Any] | None = None
    """The pipeline's last rollout as stored (``RolloutState.to_dict()``), None if never."""

    @property
    def last_run(self) -> Run | None:
        return self.last_runs[0] if self.last_runs else None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data; times are ISO 8601 strings."""
        return {
            "pipeline": self.pipeline,
            "champion": self.champion,
            "champion_metrics": dict(self.champion_metrics),
            "champion_created_at": _iso(self.champion_created_at),
            "aliases": dict(self.aliases),
            "versions": self.versions,
            "next_fire": self.next_fire,
            "last_triggers": [event_view(e) for e in self.last_triggers],
            "last_runs": [run_view(r) for r in self.last_runs],
            "running": [run_view(r) for r in self.running],
            "queued": [run_view(r) for r in self.queued],
            "rollout": None if self.rollout is None else dict(self.rollout),
        }


def status(project: Project, now: datetime | None = None) -> list[PipelineStatus]:
    """Per pipeline: champion and its metrics, versions, next scheduled fire, the last trigger
    evaluations, recent runs and runs in flight (queued or running)."""
    fires = next_fires(project, now) if now is not None else {}
    out = []
    for cfg in project.config.pipelines:
        store = project.store
        versions = store.list_versions(cfg.name, profiles=False)
        aliases = store.aliases(cfg.name)
        champion = aliases.get(CHAMPION)
        champ_mv = next((v for v in versions if v.version == champion), None)
        out.append(
            PipelineStatus(
                pipeline=cfg.name,
                champion=champion,
                champion_metrics=dict(champ_mv.metrics) if champ_mv else {},
                champion_created_at=champ_mv.created_at if champ_mv else None,
                aliases=aliases,
                versions=len(versions),
                next_fire=fires.get(cfg.name),
                last_triggers=tuple(
                    store.list_events(
                        cfg.name, kinds=["trigger.fired", "trigger.evaluated"], limit=5
                    )
                ),
                last_runs=tuple(store.list_runs(cfg.name, limit=5)),
                running=tuple(store.list_runs(cfg.name, status="running")),
                queued=tuple(store.list_runs(cfg.name, status="queued")),
                rollout=(store.get_state(cfg.name, ROLLOUT_KEY) or (None, 0))[0],
            )
        )
    return out


def next_fires(
    project: Project, now: datetime, configs: Sequence[PipelineConfig] | None = None
) -> dict[str, str | None]:
    """The next scheduled fire of each pipeline (None without a schedule), for status.

    Built from the trigger specs alone: loading the pipelines would import the user's code
    (and scikit-learn) for a command that reads a few rows.
    """
    return {
        cfg.name: next_fire(cfg, now)
        for cfg in (project.config.pipelines if configs is None else configs)
    }


def next_fire(cfg: PipelineConfig, now: datetime) -> str | None:
    """The next scheduled fire of ``cfg`` (ISO 8601), None without a schedule."""
    fires = [t.next_fire(now) for t in leaf_triggers(cfg) if hasattr(t, "next_fire")]
    return min(fires).isoformat() if fires else None


def leaf_triggers(cfg: PipelineConfig) -> tuple[Any, ...]:
    """The leaf triggers of ``cfg`` (the children of any/all, recursively)."""
    return _leaf_triggers(json.dumps(cfg.triggers, sort_keys=True, default=str))


@functools.lru_cache(maxsize=4096)
def _leaf_triggers(specs: str) -> tuple[Any, ...]:
    # built once per distinct specs: the status and the dashboard ask every few seconds, and
    # building a trigger checks its cron
    from retrainer.core.triggers import build_trigger

    return tuple(t for spec in json.loads(specs) for t in walk_triggers(build_trigger(spec)))


def walk_triggers(trigger: Any) -> list[Any]:
    """The leaf triggers of ``trigger`` (the children of any/all, recursively)."""
    children = getattr(trigger, "triggers", None)
    if children:
        return [t for c in children for t in walk_triggers(c)]
    return [trigger]
