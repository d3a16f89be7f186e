"""The dashboard's routes under ``/ui``: pages, the sign-in, the actions and static files.

=========================================  =====  ==========================================
``GET /ui``                                read   the overview (``?page=``)
``GET /ui/pipelines/{p}``                  read   a pipeline (``?runs_before=&triggers_before=
                                                  &versions_page=``)
``GET /ui/pipelines/{p}/runs/{id}``        read   a run: why, steps, the gate's evidence
``GET|POST /ui/pipelines/{p}/promote``     admin  confirm, then promote (``version``)
``GET|POST /ui/pipelines/{p}/rollback``    admin  confirm, then roll back (``to``)
``GET /ui/events``                         read   the audit trail, filtered, paginated
``GET /ui/backtests``                      read   the backtests under the project's folder
``GET /ui/backtests/{id}/report``          read   a backtest's report
``GET|POST /ui/login``, ``POST /ui/logout``  -    sign in and out
``GET /ui/static/{name}``                  -      plotly.js (from the plotly package), the
                                                  page's script and style
=========================================  =====  ==========================================

A page asked with ``X-Dashboard-Fragment: 1`` answers only its ``<main>``: the page's script
refetches it every ``ui.refresh`` seconds and swaps it in (no reload).
"""

from __future__ import annotations

import functools
import hashlib
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import jinja2
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from retrainer.adapters.report import fmt
from retrainer.core.clock import as_utc
from retrainer.core.jsonsafe import dumps
from retrainer.core.types import CHAMPION, EVENT_KINDS
from retrainer.engine import dashboard as data
from retrainer.engine.project import Project
from retrainer.engine.runs import registry
from retrainer.errors import (
    ArtifactIntegrityError,
    ConcurrencyError,
    ModelNotFoundError,
)
from retrainer.server.dashboard import charts
from retrainer.server.dashboard.session import (
    COOKIE,
    Session,
    UiError,
    check_action,
    secret_of,
    session_for,
)
from retrainer.server.manage import actor_of

__all__ = ["STATIC", "dashboard_routes"]

_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
_STATIC_DIR = Path(__file__).resolve().parent / "static"


def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


STATIC: dict[str, tuple[Any, str]] = {
    "plotly.min.js": (_plotly_js, "text/javascript"),
    "dashboard.js": (lambda: _STATIC_DIR / "dashboard.js", "text/javascript"),
    "dashboard.css": (lambda: _STATIC_DIR / "dashboard.css", "text/css"),
}
"""The files under /ui/static: name -> (path getter, media type)."""

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
)


@functools.cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["num"] = fmt  # the reports' cell format
    env.filters["secs"] = _secs
    env.filters["metric"] = charts.metric_text
    env.filters["tojson_pretty"] = lambda v: dumps(v, indent=2)
    return env


def _when(value: Any) -> str:
    """An ISO time or datetime as ``YYYY-MM-DD HH:MM`` UTC."""
    if value is None or value == "":
        return "-"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{as_utc(at):%Y-%m-%d %H:%M}"


def _secs(value: Any) -> str:
    if value is None:
        return "-"
    v = float(value)
    if v < 1:
        return f"{v * 1000:.0f} ms"
    if v < 120:
        return f"{v:.1f} s"
    return f"{v / 60:.1f} min"


def age(now: datetime, then: datetime | str | None) -> str:
    """How long ago ``then`` was, in the largest whole unit (``3 d``, ``5 h``, ``12 min``)."""
    if then is None:
        return "-"
    t = datetime.fromisoformat(then) if isinstance(then, str) else then
    s = (as_utc(now) - as_utc(t)).total_seconds()
    if s < 0:
        return "in the future"
    for unit, size in (("y", 365 * 86400), ("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{int(s // size)} {unit} ago"
    return "just now"


def _chart(chart_id: str, figure: dict[str, Any]) -> Markup:
    """The chart's placeholder and its data (JSON in a non-executed script tag)."""
    payload = dumps(figure).replace("</", "<\\/")
    return Markup(
        f'<div class="chart" id="{chart_id}" data-chart="{chart_id}"></div>'
        f'<script type="application/json" id="{chart_id}-data">{payload}</script>'
    )


def dashboard_routes(app: FastAPI, project: Project, *, refresh: float, page_size: int) -> None:
    """Add the dashboard's routes to ``app`` (see the module's table)."""
    pipelines = [p.name for p in project.config.pipelines]
    read, admin = session_for("read"), session_for("admin")

    def render(
        request: Request, name: str, status: int = 200, session: Session | None = None, **ctx: Any
    ) -> HTMLResponse:
        now = project.clock.now()
        ctx = {
            "now": now,
            "age": functools.partial(age, now),
            "session": session,
            "refresh": refresh,
            "pipelines": pipelines,
            "chart": _chart,
            "url": lambda path, **q: (
                path
                + (
                    "?"
                    + urlencode({k: v for k, v in q.items() if v not in (None, "", [])}, doseq=True)
                    if q
                    else ""
                )
            ),
            "request_path": request.url.path,
            "flash": request.query_params.get("done"),
            **ctx,
        }
        ctx["fragment"] = request.headers.get("x-dashboard-fragment") == "1"
        body = _env().get_template(f"ui/{name}.html.j2").render(ctx)
        return HTMLResponse(body, status_code=status, headers=_headers())

    def _headers() -> dict[str, str]:
        return {
            "Content-Security-Policy": _CSP,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        }

    @app.exception_handler(UiError)
    async def _ui_error(request: Request, exc: UiError) -> Response:
        if exc.location is not None:
            return RedirectResponse(exc.location, status_code=303)
        return render(request, "error", status=exc.status, message=exc.message)

    @app.exception_handler(RequestValidationError)
    async def _bad_address(request: Request, exc: RequestValidationError) -> Response:
        if not request.url.path.startswith("/ui"):  # the API's own answer
            return await request_validation_exception_handler(request, exc)
        problems = "; ".join(
            f"{e['loc'][-1]}={e.get('input')!r}: {e['msg']}" for e in exc.errors()[:5]
        )
        return render(
            request, "error", status=422, message=f"This address is not valid: {problems}"
        )

    def known(pipeline: str) -> str:
        if pipeline not in pipelines:
            raise UiError(404, f"There is no pipeline {pipeline!r} in this project.")
        return pipeline

    # -- sign in ----------------------------------------------------------------------------

    def _next(value: str | None) -> str:
        # only a path of the dashboard: never an open redirect to another site
        return value if value and value.startswith("/ui") and not value.startswith("//") else "/ui"

    def _signed_in(request: Request, secret: str, target: str) -> Response:
        response = RedirectResponse(_next(target), status_code=303)
        response.set_cookie(
            COOKIE,
            secret,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/ui",
        )
        return response

    def _login_page(request: Request, error: str | None, target: str, status: int) -> Response:
        return render(request, "login", status=status, error=error, next=_next(target))

    def _check_login(secret: str) -> bool:
        token = app.state.authenticate(secret) if secret else None
        return token is not None and bool(token.allows("read"))

    @app.get("/ui/login", include_in_schema=False)
    def login_form(request: Request, token: str | None = None, next: str | None = None) -> Response:
        if token is not None:  # the link `retrainer ui` prints: sign in, then drop the token
            if _check_login(token.strip()):
                return _signed_in(request, token.strip(), next or "/ui")
            return _login_page(request, "Unknown, revoked or read-less token.", next or "", 401)
        return _login_page(request, None, next or "", 200)

    @app.post("/ui/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await _form(request)
        secret = form.get("token", "").strip()
        if not _check_login(secret):
            return _login_page(
                request,
                "Unknown or revoked token, or one without the 'read' scope.",
                form.get("next", ""),
                401,
            )
        return _signed_in(request, secret, form.get("next", "/ui"))

    @app.post("/ui/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(COOKIE, path="/ui")
        return response

    # -- static -----------------------------------------------------------------------------

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        # browsers ask for it on every page (a backtest report too): no icon, and no 404
        return Response(status_code=204, headers={"Cache-Control": "max-age=86400"})

    @app.get("/ui/static/{name}", include_in_schema=False)
    def static(name: str, request: Request) -> Response:
        if name not in STATIC:
            raise UiError(404, f"No file {name!r} here.")
        getter, media = STATIC[name]
        path = getter()
        stat = path.stat()
        etag = hashlib.sha256(f"{path}:{stat.st_mtime_ns}:{stat.st_size}".encode()).hexdigest()[:16]
        if request.headers.get("if-none-match") == f'"{etag}"':
            return Response(status_code=304)
        return FileResponse(
            path,
            media_type=media,
            headers={"Cache-Control": "max-age=3600", "ETag": f'"{etag}"'},
        )

    # -- pages --------------------------------------------------------------------------------

    @app.get("/ui", dependencies=[read], include_in_schema=False)
    async def overview(request: Request, page: int = Query(1, ge=1)) -> Response:
        session = Session(request.state.token, secret_of(request) or "")
        pages = max(1, -(-len(pipelines) // page_size))
        page = min(page, pages)
        rows = await run_in_threadpool(
            data.overview, project, offset=(page - 1) * page_size, limit=page_size
        )
        counts = {
            lvl: sum(r.health.level == lvl for r in rows) for lvl in ("red", "amber", "green")
        }
        return render(
            request,
            "overview",
            session=session,
            rows=rows,
            page=page,
            pages=pages,
            counts=counts,
            sparkline=charts.sparkline,
        )

    @app.get("/ui/pipelines/{pipeline}", dependencies=[read], include_in_schema=False)
    async def pipeline_page(
        request: Request,
        pipeline: str,
        runs_before: int | None = Query(None, ge=1),
        triggers_before: int | None = Query(None, ge=1),
        versions_page: int = Query(1, ge=1),
        rollout: int | None = Query(None, ge=1),
    ) -> Response:
        session = Session(request.state.token, secret_of(request) or "")
        page = await run_in_threadpool(
            functools.partial(
                data.pipeline_page,
                project,
                known(pipeline),
                runs_before=runs_before,
                triggers_before=triggers_before,
                versions_page=versions_page,
                rollout=rollout,
            )
        )
        figures = {
            "metric-chart": charts.metric_figure(page["metric"])
            if page["metric"]["points"]
            else None,
            "drift-chart": charts.drift_figure(page["drift"]) if page["drift"]["windows"] else None,
        }
        rollout_charts = (
            charts.rollout_figures(page["rollout"], page["metric"]["name"])
            if page["rollout"]
            else []
        )
        return render(
            request,
            "pipeline",
            session=session,
            p=page,
            figures=figures,
            rollout_charts=rollout_charts,
            query=dict(request.query_params),
        )

    @app.get("/ui/pipelines/{pipeline}/runs/{run_id}", dependencies=[read], include_in_schema=False)
    async def run_page(request: Request, pipeline: str, run_id: int) -> Response:
        session = Session(request.state.token, secret_of(request) or "")
        try:
            page = await run_in_threadpool(data.run_page, project, known(pipeline), run_id)
        except ModelNotFoundError as exc:
            raise UiError(404, str(exc)) from None
        return render(request, "run", session=session, r=page)

    # -- actions ------------------------------------------------------------------------------

    def _confirm(request: Request, pipeline: str, action: str, version: int | None) -> Response:
        session = Session(request.state.token, secret_of(request) or "")
        champion = project.store.get_alias(pipeline, CHAMPION)
        target = version
        problem = None
        if action == "rollback" and version is None:
            try:
                target = registry.rollback_target(project, pipeline)
            except (ModelNotFoundError, registry.PromotionError) as exc:
                problem = str(exc)
        if (
            action == "rollback"
            and target is not None
            and champion is not None
            and target > champion
        ):
            problem = (
                f"v{target} is newer than the champion v{champion}: a rollback goes back to an "
                "earlier version; promote it instead"
            )
        mv = None
        if target is not None and problem is None:
            try:
                mv = project.store.get_version(pipeline, target)
            except ModelNotFoundError as exc:
                problem = str(exc)
        return render(
            request,
            "confirm",
            session=session,
            pipeline=pipeline,
            action=action,
            version=version,
            target=target,
            champion=champion,
            mv=mv,
            problem=problem,
        )

    @app.get("/ui/pipelines/{pipeline}/promote", dependencies=[read], include_in_schema=False)
    def promote_confirm(request: Request, pipeline: str, version: int = Query(ge=1)) -> Response:
        return _confirm(request, known(pipeline), "promote", version)

    @app.get("/ui/pipelines/{pipeline}/rollback", dependencies=[read], include_in_schema=False)
    def rollback_confirm(
        request: Request, pipeline: str, to: int | None = Query(None, ge=1)
    ) -> Response:
        return _confirm(request, known(pipeline), "rollback", to)

    async def _act(request: Request, pipeline: str, action: str) -> Response:
        session = Session(request.state.token, secret_of(request) or "")
        form = await _form(request)
        check_action(request, session, form)
        actor = "dashboard: " + actor_of(session.token)
        raw = form.get("version") or form.get("to") or ""
        number = int(raw) if raw.isdigit() else None
        try:
            if action == "promote":
                if number is None:
                    raise UiError(422, "Which version? The form sent none.")
                move = await run_in_threadpool(
                    lambda: registry.promote(
                        project, number, clock=project.clock, pipeline=pipeline, actor=actor
                    )
                )
            else:
                move = await run_in_threadpool(
                    lambda: registry.rollback(
                        project, clock=project.clock, pipeline=pipeline, to=number, actor=actor
                    )
                )
        except ModelNotFoundError as exc:
            raise UiError(404 if number is not None else 409, str(exc)) from None
        except (registry.PromotionError, ArtifactIntegrityError, ConcurrencyError) as exc:
            raise UiError(409, f"Refused: {exc}") from None
        holder = getattr(app.state, "holder", None)
        if holder is not None:  # this worker serves the move now; the others at their poll
            with suppress(Exception):  # the move is made; the holder's own poll retries
                await run_in_threadpool(holder.refresh)
        done = (
            f"v{move.version} is the champion now (was v{move.previous})"
            if action == "promote"
            else f"rolled back: v{move.version} is the champion again (was v{move.previous})"
        )
        return RedirectResponse(
            f"/ui/pipelines/{quote(pipeline)}?{urlencode({'done': done})}", status_code=303
        )

    @app.post("/ui/pipelines/{pipeline}/promote", dependencies=[admin], include_in_schema=False)
    async def promote(request: Request, pipeline: str) -> Response:
        return await _act(request, known(pipeline), "promote")

    @app.post("/ui/pipelines/{pipeline}/rollback", dependencies=[admin], include_in_schema=False)
    async def rollback(request: Request, pipeline: str) -> Response:
        return await _act(request, known(pipeline), "rollback")

    # -- events and backtests -----------------------------------------------------------------

    @app.get("/ui/events", dependencies=[read], include_in_schema=False)
    async def events(
        request: Request,
        pipeline: str | None = None,
        kind: list[str] | None = Query(None),
        since: str | None = None,
        until: str | None = None,
        before: int | None = Query(None, ge=1),
    ) -> Response:
        session = Session(request.state.token, secret_of(request) or "")
        problems = []
        if pipeline:
            known(pipeline)
        bounds = {}
        for key, value in (("since", since), ("until", until)):
            if value:
                try:
                    bounds[key] = as_utc(datetime.fromisoformat(value))
                except ValueError:
                    problems.append(
                        f"{key}: {value!r} is not a date or time (2024-05-01 or 2024-05-01T12:00)"
                    )
        kinds = [k for k in kind or [] if k] or None
        page = await run_in_threadpool(
            functools.partial(
                data.events_page,
                project,
                pipeline=pipeline or None,
                kinds=kinds,
                before=before,
                limit=page_size,
                **bounds,
            )
        )
        return render(
            request,
            "events",
            session=session,
            page=page,
            kinds=EVENT_KINDS,
            before=before,
            filters={
                "pipeline": pipeline or "",
                "kind": kinds or [],
                "since": since or "",
                "until": until or "",
            },
            problems=problems,
        )

    @app.get("/ui/backtests", dependencies=[read], include_in_schema=False)
    async def backtests(request: Request) -> Response:
        session = Session(request.state.token, secret_of(request) or "")
        found = await run_in_threadpool(data.backtests, project)
        return render(request, "backtests", session=session, backtests=found)

    @app.get(
        "/ui/backtests/{backtest_id:path}/report", dependencies=[read], include_in_schema=False
    )
    def backtest_report(backtest_id: str) -> Response:
        from retrainer.engine.dashboard.listing import find_backtest

        found = find_backtest(project, backtest_id)
        if found is None or not found["report"]:
            raise UiError(404, f"No backtest report {backtest_id!r} in this project.")
        # the report inlines plotly.js in a script: it gets its own policy
        return FileResponse(
            Path(found["path"]) / "report.html",
            media_type="text/html",
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first value of each); at most 64 KiB."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > 65536:
            raise UiError(413, "The form is too large.")
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
