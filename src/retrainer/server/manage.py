"""The management API: what the CLI does, as JSON routes (a dashboard's and a script's).

Every route calls the engine function its CLI command calls and answers what its ``--json``
prints, so the two never disagree:

=======================================  =====  =========================================
``GET /v1/status``                       read   ``retrainer status --json``
``GET /v1/{pipeline}/models``            read   ``retrainer models list --json`` (?limit=)
``GET /v1/{pipeline}/models/{version}``  read   ``retrainer models show VERSION --json``
``POST /v1/{pipeline}/promote``          admin  ``retrainer promote`` ({version, alias?})
``POST /v1/{pipeline}/rollback``         admin  ``retrainer rollback`` ({to?})
``GET /v1/{pipeline}/rollout``           read   the pipeline's last rollout (its stored state)
``GET /v1/events``                       read   ``retrainer events --json`` (?pipeline=
                                                &kind=&since=&limit=)
=======================================  =====  =========================================

Errors keep the server's shape (:class:`~retrainer.server.errors.ApiError`): 404 unknown
pipeline or version, 409 a refused move (not blessed, already there, an artifact that fails
its check, a concurrent move), 422 bad parameters, each naming the parameter. A promotion or a
rollback is recorded with the actor ``api token <id> (<name>)``; this worker's model holder
loads the new version at once (the other workers follow at their next poll).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Coroutine
from contextlib import suppress
from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from retrainer.core.clock import as_utc
from retrainer.core.types import CHAMPION, EVENT_KINDS, AliasMove
from retrainer.engine.project import Project
from retrainer.engine.rollout import current_rollout
from retrainer.engine.runs import registry
from retrainer.engine.runs.views import alias_move_view, event_view
from retrainer.engine.serving import ModelHolder
from retrainer.errors import (
    ArtifactIntegrityError,
    ConcurrencyError,
    ModelNotFoundError,
)
from retrainer.server.auth import require
from retrainer.server.errors import ApiError

__all__ = ["PromoteRequest", "RollbackRequest", "include_management", "management_router"]


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, description="A blessed version of the pipeline.")
    alias: str = Field(CHAMPION, min_length=1, description="The alias to move.")


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: int | None = Field(
        None, ge=1, description="The version to go back to (default: the previous champion)."
    )


class _ApiErrorRoute(APIRoute):
    """A route whose bad parameters answer in the server's error shape (422 ``invalid_request``,
    one problem per parameter) instead of FastAPI's own, counted in the request metrics under
    the route's name (not its path: a version in the path would make a label per version)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        name = self.name

        async def run(request: Request) -> Response:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status_code
                return response
            except ApiError as exc:
                status, exc.counted = exc.status, True
                raise
            except RequestValidationError as exc:
                status = 422
                problems = [
                    {
                        "at": [str(p) for p in e.get("loc", ())],
                        "problem": e.get("msg"),
                        "value": e.get("input"),
                    }
                    for e in exc.errors()[:20]
                ]
                error = ApiError(
                    422, "invalid_request", json.loads(json.dumps(problems, default=str))
                )
                error.counted = True
                raise error from None
            finally:
                metrics = getattr(request.app.state, "metrics", None)
                if metrics is not None:
                    metrics.observe(name, "-", "-", status, time.perf_counter() - started)

        return run


# a move the registry refuses (not blessed, already there, a damaged artifact) is a 409
_REFUSED: dict[int | str, dict[str, Any]] = {
    409: {"description": "the move is refused: the reason in one line (as the CLI says it)"}
}


def actor_of(token: Any) -> str:
    """The actor recorded for a move made with ``token``: ``api token <id> (<name>)``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> actor_of(SimpleNamespace(id="0123456789ab", name="deploy-bot"))
    'api token 0123456789ab (deploy-bot)'
    >>> actor_of(object())  # a custom authenticator's token without an id
    'api token'
    """
    tid, name = getattr(token, "id", None), getattr(token, "name", None)
    parts = ["api token", *([str(tid)] if tid else []), *([f"({name})"] if name else [])]
    return " ".join(parts)


def management_router(project: Project, holder: ModelHolder) -> APIRouter:
    """The management routes of ``project`` (``create_app`` includes them).

    Examples
    --------
    >>> from fastapi import FastAPI
    >>> from retrainer.server.auth import route_scopes
    >>> from retrainer.testing import in_memory_project
    >>> project = in_memory_project()
    >>> app = FastAPI(openapi_url=None, docs_url=None)
    >>> include_management(app, project, ModelHolder(project))
    >>> [r for r in route_scopes(app) if r[0] == "POST"]
    [('POST', '/v1/{pipeline}/promote', 'admin'), ('POST', '/v1/{pipeline}/rollback', 'admin')]
    """
    router = APIRouter(route_class=_ApiErrorRoute, tags=["management"])
    pipelines = {p.name for p in project.config.pipelines}

    def known(pipeline: str) -> str:
        if pipeline not in pipelines:
            raise ApiError(404, "no_pipeline", f"no pipeline {pipeline!r} in this project")
        return pipeline

    def moved(move: AliasMove) -> dict[str, Any]:
        # this worker serves the move now; the others follow at their next poll
        with suppress(Exception):  # the move is made; the holder's own poll retries and logs
            holder.refresh()
        return alias_move_view(move)

    def refused(exc: Exception) -> ApiError:
        if isinstance(exc, ArtifactIntegrityError):
            return ApiError(409, "artifact_integrity", str(exc))
        if isinstance(exc, ConcurrencyError):
            return ApiError(409, "conflict", str(exc))
        return ApiError(409, "promotion_refused", str(exc))

    @router.get("/v1/status", dependencies=[require("read")])
    def status() -> list[dict[str, Any]]:
        """Each pipeline: champion, versions, next scheduled fire, last triggers and runs."""
        return [p.to_json() for p in registry.status(project, project.clock.now())]

    @router.get("/v1/{pipeline}/models", dependencies=[require("read")])
    def models_list(
        pipeline: str,
        limit: int | None = Query(
            None,
            ge=0,
            description="Only the N most recent versions, and those an alias points at "
            "(0 or absent: all).",
        ),
    ) -> list[dict[str, Any]]:
        """Every version, oldest first, with aliases, metrics, data window and blessing."""
        data = registry.list_models(project, known(pipeline))
        return [
            v for i, v in enumerate(data) if not limit or i >= len(data) - limit or v["aliases"]
        ]

    @router.get("/v1/{pipeline}/models/{version}", dependencies=[require("read")])
    def models_show(pipeline: str, version: int) -> dict[str, Any]:
        """One version: lineage, blessing evidence, alias history and its run."""
        try:
            return registry.show_model(project, version, known(pipeline))
        except ModelNotFoundError as exc:
            raise ApiError(404, "no_version", str(exc)) from None

    @router.post("/v1/{pipeline}/promote", dependencies=[require("admin")], responses=_REFUSED)
    def promote(pipeline: str, body: PromoteRequest, request: Request) -> dict[str, Any]:
        """Point an alias (champion by default) at a blessed version; its artifact is checked
        first. Answers the alias move."""
        known(pipeline)
        try:
            move = registry.promote(
                project,
                body.version,
                clock=project.clock,
                pipeline=pipeline,
                alias=body.alias,
                actor=actor_of(getattr(request.state, "token", None)),
            )
        except ModelNotFoundError as exc:
            raise ApiError(404, "no_version", str(exc)) from None
        except (registry.PromotionError, ArtifactIntegrityError, ConcurrencyError) as exc:
            raise refused(exc) from None
        return moved(move)

    @router.post("/v1/{pipeline}/rollback", dependencies=[require("admin")], responses=_REFUSED)
    def rollback(
        pipeline: str, request: Request, body: RollbackRequest | None = None
    ) -> dict[str, Any]:
        """Move the champion back to an earlier blessed version (the previous one by default).
        Answers the alias move."""
        known(pipeline)
        to = body.to if body is not None else None
        try:
            move = registry.rollback(
                project,
                clock=project.clock,
                pipeline=pipeline,
                to=to,
                actor=actor_of(getattr(request.state, "token", None)),
            )
        except ModelNotFoundError as exc:
            # no champion, or none before it: nothing to go back to is a refusal, not a 404
            if to is None:
                raise ApiError(409, "promotion_refused", str(exc)) from None
            raise ApiError(404, "no_version", str(exc)) from None
        except (registry.PromotionError, ArtifactIntegrityError, ConcurrencyError) as exc:
            raise refused(exc) from None
        return moved(move)

    @router.get(
        "/v1/{pipeline}/rollout",
        dependencies=[require("read")],
        responses={404: {"description": "unknown pipeline, or it never had a rollout"}},
    )
    def rollout(pipeline: str) -> dict[str, Any]:
        """The pipeline's last rollout as the controller stored it, running or ended: status,
        strategy, candidate, champion, share, step, started_at, reason, the sequential test
        and the evidence of the last tick (every server worker routes by it)."""
        stored = current_rollout(project, known(pipeline))
        if stored is None:
            raise ApiError(
                404,
                "no_rollout",
                f"{pipeline} has never had a rollout: a blessed candidate starts one when the "
                "pipeline's rollout strategy is shadow, canary or ab and a champion serves",
            )
        state, revision = stored
        return {**state.to_dict(), "revision": revision}

    @router.get("/v1/events", dependencies=[require("read")])
    def events(
        pipeline: str | None = Query(None, description="Only this pipeline's events."),
        kind: list[str] | None = Query(None, description="Only these kinds (repeatable)."),
        since: datetime | None = Query(None, description="Only events at or after this time."),
        limit: int = Query(200, ge=1, description="The most recent N events."),
    ) -> list[dict[str, Any]]:
        """The audit trail, oldest first: triggers, runs, verdicts, promotions, alerts."""
        if pipeline is not None:
            known(pipeline)
        # as the CLI: a misspelt kind would match nothing; a project's own kind is stored
        unknown = [
            k
            for k in dict.fromkeys(kind or [])
            if k not in EVENT_KINDS and not project.store.list_events(kinds=[k], limit=1)
        ]
        if unknown:
            raise ApiError(
                422,
                "invalid_request",
                [
                    {"at": ["query", "kind"], "problem": "unknown event kind", "value": k}
                    for k in unknown
                ],
            )
        found = project.store.list_events(
            pipeline, since=as_utc(since) if since else None, kinds=kind or None, limit=limit
        )
        return [event_view(e) for e in found]

    return router


def include_management(app: FastAPI, project: Project, holder: ModelHolder) -> None:
    """Add the management routes to ``app`` as its own routes.

    Not ``app.include_router``: FastAPI 0.165 includes a router lazily, as one opaque route
    that :func:`~retrainer.server.auth.route_scopes` (and so the auth matrix) cannot see into.
    Each route carries its own scope dependency, so adding them one by one is the same.
    """
    app.router.routes.extend(management_router(project, holder).routes)
