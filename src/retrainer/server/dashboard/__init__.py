"""The dashboard: server-rendered pages under ``/ui`` (Jinja2 templates, Plotly charts drawn
with the plotly.js of the installed ``plotly`` package: the pages need no internet).

``retrainer serve`` includes it beside the prediction and management API;
``retrainer ui`` serves it alone (:func:`create_dashboard_app`). The pages read the engine's
dashboard data (:mod:`retrainer.engine.dashboard`); a person signs in with an API token
(:mod:`.session`): ``read`` sees, ``admin`` promotes and rolls back. docs/dashboard.md shows
the pages.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI

from retrainer.config import DashboardConfig
from retrainer.engine.project import Project
from retrainer.server.auth import Authenticator, default_authenticator
from retrainer.server.dashboard.routes import dashboard_routes

__all__ = ["create_dashboard_app", "include_dashboard"]


def include_dashboard(
    app: FastAPI, project: Project, settings: DashboardConfig | None = None
) -> None:
    """Add the dashboard's pages to ``app`` (whose ``state.authenticate`` checks tokens)."""
    cfg = settings if settings is not None else project.config.ui
    dashboard_routes(app, project, refresh=cfg.refresh, page_size=cfg.page_size)


def create_dashboard_app(
    project: Project,
    *,
    authenticate: Authenticator | None = None,
    settings: DashboardConfig | None = None,
    close_project: bool = False,
) -> FastAPI:
    """The dashboard with the management API, without prediction serving (``retrainer ui``).

    Examples
    --------
    >>> from fastapi.testclient import TestClient
    >>> from retrainer.testing import in_memory_project
    >>> app = create_dashboard_app(in_memory_project(), authenticate=lambda secret: None)
    >>> with TestClient(app) as client:
    ...     r = client.get("/ui", follow_redirects=False)
    >>> r.status_code, r.headers["location"]
    (303, '/ui/login?next=%2Fui')
    """
    from retrainer.engine.serving import ModelHolder
    from retrainer.server.manage import include_management

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=warm_up, name="dashboard warm-up", daemon=True).start()
        try:
            yield
        finally:
            if close_project:
                project.close()

    app = FastAPI(
        title="retrainer dashboard",
        lifespan=lifespan,
        redoc_url=None,
        docs_url=None,
        openapi_url=None,
    )
    app.state.authenticate = (
        authenticate if authenticate is not None else default_authenticator(project)
    )
    from fastapi import Request
    from fastapi.responses import JSONResponse

    from retrainer.server.errors import ApiError

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        # the management API's errors in their shape, as under retrainer serve
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    include_dashboard(app, project, settings)
    # the management API the dashboard's pages mirror, for scripts next to it; no model is
    # served here, so its holder never loads one
    include_management(app, project, ModelHolder(project))
    _root(app)
    return app


def warm_up() -> None:
    """Import what the pipeline page computes with (DuckDB, scikit-learn's metrics: seconds
    of imports) in the background at start, so the first page a person opens is not slow."""
    with suppress(Exception):  # only a head start: the page imports them anyway
        import duckdb  # noqa: F401

        from retrainer.core.metrics import _skm
        from retrainer.engine.monitoring import online  # noqa: F401

        _skm()


def _root(app: Any) -> None:
    from fastapi.responses import RedirectResponse

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui", status_code=307)
