"""The ASGI app: prediction and feedback API, health, metrics (``retrainer serve`` runs it).

Routes (every one but health and the API description needs a bearer token with the scope
shown; see :mod:`retrainer.server.auth`):

================================  =========  ===============================================
``POST /v1/{pipeline}/predict``   predict    one row (object) or a batch (list of objects)
``POST /v1/{pipeline}/feedback``  feedback   outcomes by ``prediction_id``, batched
``GET /v1/models``                read       the version each pipeline serves
``GET /metrics``                  read       Prometheus
``GET /healthz``, ``/readyz``     -          alive; every champion loaded
``GET /docs``, ``/openapi.json``  -          the API's description
``GET /ui``, ``/ui/...``          read       the dashboard (:mod:`retrainer.server.dashboard`;
                                             ``/`` leads there)
================================  =========  ===============================================

During a pipeline's rollout each predict request is routed by its key
(:mod:`retrainer.engine.routing`): the champion, the ``challenger`` (the champion answers
instead if it raises) or the champion with a ``shadow`` copy scored after the answer.

Errors are ``{"error": ..., "detail": ...}`` with the status: 401/403 auth, 404 unknown
pipeline, 413 body or batch too large, 422 bad rows (each problem names the row, the column
and the value), 503 no champion yet or the prediction log is full. docs/serving.md has the
details and examples.
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from retrainer.adapters.logstore.writer import BatchWriter
from retrainer.config import ServeConfig
from retrainer.core.types import CHAMPION
from retrainer.core.windows import parse_duration
from retrainer.engine import routing
from retrainer.engine.project import Project
from retrainer.engine.routing import Answer, ModelFailedError, ShadowScorer
from retrainer.engine.serving import ModelHolder, RowError, ServedModel, log_records, new_ids
from retrainer.errors import ModelNotFoundError
from retrainer.server.auth import Authenticator, RateLimiter, default_authenticator, require
from retrainer.server.dashboard import include_dashboard
from retrainer.server.errors import ApiError
from retrainer.server.manage import include_management
from retrainer.server.metrics import CONTENT_TYPE, ServerMetrics

__all__ = ["app_from_environment", "create_app"]


# --- request and answer shapes (the OpenAPI schema; the bodies are parsed by hand for speed) ---


class PredictionOut(BaseModel):
    prediction_id: str
    prediction: Any
    score: float | None = Field(
        None,
        description="Probability of the positive class (binary), of the predicted class "
        "(multiclass), or the predicted value (regression).",
    )
    probabilities: dict[str, float] | None = None
    model_version: int
    variant: str


class PredictResponse(BaseModel):
    predictions: list[PredictionOut]


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prediction_id: str
    outcome: bool | int | float | str = Field(description="The label, click (0/1) or value.")
    timestamp: datetime | None = Field(None, description="When it happened (default: now).")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    feedback: list[FeedbackIn]


class FeedbackResponse(BaseModel):
    accepted: int
    unknown: list[str] = Field(
        description="Ids neither this worker nor the log (feedback_lookback) knows: not logged; "
        "post them again later (a prediction reaches the log within flush_interval)."
    )


_FEEDBACK = TypeAdapter(FeedbackRequest | list[FeedbackIn])

_ROW_SCHEMA = {
    "type": "object",
    "additionalProperties": True,
    "description": "One row: every feature of the pipeline, nothing else.",
}
ARROW = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
_COLUMNAR = {
    "type": "string",
    "format": "binary",
    "description": "A batch as columns (one per feature, named as the features).",
}
_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"anyOf": [_ROW_SCHEMA, {"type": "array", "items": _ROW_SCHEMA}]}
            },
            ARROW: {"schema": _COLUMNAR},
            PARQUET: {"schema": _COLUMNAR},
        },
    }
}
_FEEDBACK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": FeedbackRequest.model_json_schema()}},
    }
}


# --- the app's state -------------------------------------------------------------------------


class RecentIds:
    """The ids of the last ``size`` predictions this worker made (feedback checks them first)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._order: deque[str] = deque()
        self._ids: dict[str, str] = {}  # id -> pipeline
        self._lock = threading.Lock()

    def add(self, pipeline: str, ids: list[str]) -> None:
        if self.size <= 0:
            return
        with self._lock:
            for i in ids:
                self._ids[i] = pipeline
                self._order.append(i)
            while len(self._order) > self.size:
                self._ids.pop(self._order.popleft(), None)

    def pipeline_of(self, prediction_id: str) -> str | None:
        return self._ids.get(prediction_id)


def _pipeline_label(project: Project, pipeline: str) -> str:
    names = {p.name for p in project.config.pipelines}
    return pipeline if pipeline in names else "unknown"


def _naive_utc(at: datetime) -> datetime:
    """The log's time: naive UTC (a naive time is taken to be UTC already)."""
    return at if at.tzinfo is None else at.astimezone(UTC).replace(tzinfo=None)


def _json_safe(problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The problems with NaN and infinite values spelled as JavaScript does (strict JSON has
    no literal for them, and the answer must be strict JSON)."""

    def safe(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return value

    return [{k: safe(v) for k, v in p.items()} for p in problems]


async def _read_json(request: Request, limit: int) -> Any:
    body = await _read_body(request, limit)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ApiError(422, "invalid_json", f"the body is not JSON: {exc}") from None


def _columnar(content_type: str) -> str | None:
    """ARROW or PARQUET when the Content-Type names one (None: JSON)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media if media in (ARROW, PARQUET) else None


def _read_table(body: bytes, media: str) -> pa.Table:
    """The Arrow table of an Arrow IPC stream or Parquet body (422 when it is not one)."""
    try:
        if media == ARROW:
            return pa.ipc.open_stream(pa.py_buffer(body)).read_all()
        return pq.read_table(pa.BufferReader(body))
    except (pa.ArrowException, OSError, ValueError) as exc:
        kind = "an Arrow IPC stream" if media == ARROW else "a Parquet file"
        raise ApiError(422, "invalid_body", f"the body is not {kind}: {exc}") from None


def _arrow_answer(ids: list[str], result: Answer) -> bytes:
    """The answers as one Arrow IPC stream: prediction_id, prediction, score,
    model_version, variant, and proba_<class> per class of a classifier."""
    served, predicted = result.served, result.predicted
    n = len(ids)
    columns: dict[str, Any] = {
        "prediction_id": pa.array(ids, pa.string()),
        "prediction": pa.array(predicted.prediction),
        "score": pa.array(predicted.score, pa.float64(), mask=np.isnan(predicted.score)),
        "model_version": pa.array(np.full(n, served.version, dtype=np.int64)),
        "variant": pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(n, dtype=np.int32)), pa.array([served.variant])
        ),
    }
    if predicted.proba is not None:
        for j, c in enumerate(predicted.classes):
            columns[f"proba_{c}"] = pa.array(predicted.proba[:, j])
    table = pa.table(columns)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return bytes(sink.getvalue())


def _json_answer(ids: list[str], result: Answer) -> list[dict[str, Any]]:
    """The answers as JSON objects, built from the arrays (no dict per row in between)."""
    served, predicted = result.served, result.predicted
    version, variant = served.version, served.variant
    preds, scores, probs = predicted.predictions(), predicted.scores(), predicted.probabilities()
    if probs is None:
        return [
            {
                "prediction_id": i,
                "prediction": p,
                "score": s,
                "model_version": version,
                "variant": variant,
            }
            for i, p, s in zip(ids, preds, scores, strict=True)
        ]
    return [
        {
            "prediction_id": i,
            "prediction": p,
            "score": s,
            "probabilities": pr,
            "model_version": version,
            "variant": variant,
        }
        for i, p, s, pr in zip(ids, preds, scores, probs, strict=True)
    ]


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ApiError(
            413, "too_large", f"the body has {length} bytes; the limit is {limit} (max_body_bytes)"
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(
                413, "too_large", f"the body exceeds {limit} bytes (serve.max_body_bytes)"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    project: Project,
    *,
    authenticate: Authenticator | None = None,
    settings: ServeConfig | None = None,
    holder: ModelHolder | None = None,
    close_project: bool = False,
) -> FastAPI:
    """The server of ``project``'s pipelines.

    Parameters
    ----------
    project
        Whose pipelines are served, whose registry is followed and whose log is written.
    authenticate
        secret -> token (an object with ``allows(scope)``) or None. Default: the project's
        token store; none installed: every request needs a token and none is valid.
    settings
        The ``serve:`` section (default: the project's).
    holder
        A model holder to use (default: one following ``champion``).
    close_project
        Close the project when the app stops (the app opened it).

    Examples
    --------
    >>> from fastapi.testclient import TestClient
    >>> from retrainer.testing import in_memory_project
    >>> app = create_app(in_memory_project(), authenticate=lambda secret: None)
    >>> with TestClient(app) as client:
    ...     client.get("/healthz").json(), client.get("/v1/models").status_code
    ({'status': 'ok'}, 401)
    """
    cfg = settings if settings is not None else project.config.serve
    holder = (
        holder
        if holder is not None
        else ModelHolder(
            project,
            poll_interval=cfg.poll_interval,
            stats_interval=cfg.stats_interval,
            clock=project.clock,
        )
    )
    lookback = parse_duration(cfg.feedback_lookback)
    recent = RecentIds(cfg.recent_ids)
    writers: dict[str, BatchWriter] = {}
    shadows: list[ShadowScorer] = []  # the lifespan's one scorer of shadow copies
    pipelines = {p.name for p in project.config.pipelines}

    def state() -> dict[str, Any]:
        return {
            "writers": dict(writers),
            "served": holder.served(),
            "candidates": holder.candidates(),
            "holder": holder,
            "shadow": shadows[0] if shadows else None,
        }

    metrics = ServerMetrics(state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logs = project.log_store()
        appends: dict[str, Callable[..., Any]] = {
            "predictions": logs.append_predictions,
            "feedback": logs.append_feedback,
        }
        for kind, append in appends.items():
            writers[kind] = BatchWriter(
                functools.partial(append, origin=f"server {kind}"),
                flush_interval=cfg.flush_interval,
                flush_rows=cfg.flush_rows,
                max_rows=cfg.queue_rows,
                wait=cfg.queue_wait,
                name=kind,
            )

        def shadow_scored(served: ServedModel, rows: int) -> None:
            metrics.predictions.labels(_pipeline_label(project, served.pipeline), "shadow").inc(
                rows
            )

        shadows.append(
            ShadowScorer(
                holder,
                log=writers["predictions"].submit,
                max_jobs=cfg.shadow_queue,
                on_scored=shadow_scored,
                on_failed=lambda served: metrics.model_errors.labels(
                    _pipeline_label(project, served.pipeline), "shadow"
                ).inc(),
            )
        )
        await run_in_threadpool(holder.refresh)
        holder.start()
        try:
            yield
        finally:
            # in order: the shadow copies queued are scored, the stats (with theirs) are
            # published, then the logs are flushed
            for scorer in shadows:
                await run_in_threadpool(scorer.close)
            shadows.clear()
            await run_in_threadpool(holder.stop)
            for w in writers.values():
                await run_in_threadpool(w.close)
            writers.clear()
            if close_project:
                project.close()

    app = FastAPI(
        title="retrainer",
        summary="Predictions and feedback for the pipelines of a retrainer project.",
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.authenticate = (
        authenticate if authenticate is not None else default_authenticator(project)
    )
    app.state.holder = holder
    app.state.rate_limiter = (
        RateLimiter(cfg.rate_limit, cfg.rate_burst or 2 * cfg.rate_limit)
        if cfg.rate_limit
        else None
    )
    app.state.writers = writers
    app.state.metrics = metrics

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        if not exc.counted:  # auth and body errors raised before a route's own accounting
            metrics.requests.labels(
                request.url.path.rsplit("/", 1)[-1], "-", "-", str(exc.status)
            ).inc()
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    def writer(kind: str) -> BatchWriter:
        w = writers.get(kind)
        if w is None:
            raise ApiError(503, "not_ready", "the server is starting or stopping")
        return w

    # -- health -------------------------------------------------------------------------

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """Every pipeline whose alias points at a version has that version loaded.

        ``pipelines`` says per pipeline ``true`` (loaded), ``false`` (not loaded yet, or it
        failed to load) or ``"no champion"`` (nothing to load; it does not hold readiness back).
        """
        ok = all(holder.ready().values()) and bool(writers)
        return JSONResponse(
            {"ready": ok, "pipelines": holder.status()}, status_code=200 if ok else 503
        )

    @app.get("/metrics", dependencies=[require("read")], tags=["health"])
    def prometheus() -> Response:
        """Prometheus metrics (see retrainer.server.metrics)."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/models", dependencies=[require("read")], tags=["models"])
    def models() -> dict[str, Any]:
        """The version each pipeline serves now (null: none)."""
        served = holder.served()
        return {
            "alias": holder.alias,
            "pipelines": {
                name: (
                    {
                        "version": served[name].version,
                        "variant": served[name].variant,
                        "loaded_at": served[name].loaded_at.isoformat(),
                    }
                    if name in served
                    else None
                )
                for name in sorted(pipelines)
            },
        }

    include_management(app, project, holder)  # status, models, promote, rollback, events
    include_dashboard(app, project)  # the pages under /ui

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return Response(status_code=307, headers={"location": "/ui"})

    # -- predict ------------------------------------------------------------------------

    @app.post(
        "/v1/{pipeline}/predict",
        dependencies=[require("predict")],
        response_model=PredictResponse,
        openapi_extra=_PREDICT_BODY,
        tags=["predictions"],
    )
    async def predict(pipeline: str, request: Request) -> Response:
        """Predict one row (an object) or a batch (a list of objects).

        Each row has exactly the pipeline's features, with values of the types the served
        model was trained on. An ``X-Request-Key`` header (e.g. a user id) is logged with the
        predictions and, during a rollout, keeps that key on one variant (without it, each
        request is routed at random).

        A large batch can come as columns: an Arrow IPC stream
        (``application/vnd.apache.arrow.stream``) or a Parquet file
        (``application/vnd.apache.parquet``), one column per feature, checked by column. The
        answer is an Arrow IPC stream when ``Accept`` asks for one (columns ``prediction_id``,
        ``prediction``, ``score``, ``model_version``, ``variant`` and ``proba_<class>``),
        else JSON.
        """
        started = time.perf_counter()
        label = _pipeline_label(project, pipeline)
        variant = "-"
        status = 500
        try:
            media = _columnar(request.headers.get("content-type", ""))
            rows: list[Any] | pa.Table
            if media is None:
                body = await _read_json(request, cfg.max_body_bytes)
                rows = body if isinstance(body, list) else [body]
            else:
                rows = _read_table(await _read_body(request, cfg.max_body_bytes), media)
            n = rows.num_rows if isinstance(rows, pa.Table) else len(rows)
            if not n:
                raise ApiError(422, "invalid_rows", "the batch is empty")
            if n > cfg.max_rows:
                raise ApiError(
                    413,
                    "too_many_rows",
                    f"{n} rows; the limit is {cfg.max_rows} per request (serve.max_rows)",
                )
            request_key = request.headers.get("x-request-key")
            try:
                # no key: a random one, so such requests split at random between variants
                result = routing.answer(
                    holder, pipeline, rows, request_key or uuid.uuid4().hex, started=started
                )
            except ModelNotFoundError as exc:
                raise ApiError(
                    404 if pipeline not in pipelines else 503, "no_model", str(exc)
                ) from None
            except RowError as exc:  # bad rows, or missing values the model cannot take
                variant = CHAMPION  # the champion's features judge the rows
                raise ApiError(422, "invalid_rows", _json_safe(exc.problems)) from None
            except ModelFailedError as exc:
                variant = exc.served.variant
                raise ApiError(500, "model_failed", str(exc)) from None
            served = result.served
            variant = served.variant
            if result.failed is not None:  # the candidate raised; the champion answered
                metrics.model_errors.labels(label, result.failed.variant).inc()
            ids = new_ids(n)
            now = project.clock.now()
            logged = log_records(
                served, result.frame, result.predicted, ids, now=now, request_key=request_key
            )
            if not writer("predictions").submit(logged):
                raise ApiError(
                    503,
                    "log_full",
                    "the prediction log is behind (its queue is full); retry shortly",
                    headers={"Retry-After": "1"},
                )
            recent.add(pipeline, ids)
            metrics.predictions.labels(label, variant).inc(n)
            if result.shadow is not None and shadows:
                shadows[0].submit(
                    result.shadow,
                    served,
                    rows,
                    result.frame,
                    ids,
                    request_key=request_key,
                    now=now,
                )
            status = 200
            if ARROW in request.headers.get("accept", ""):
                return Response(_arrow_answer(ids, result), media_type=ARROW)
            return JSONResponse({"predictions": _json_answer(ids, result)})
        except ApiError as exc:
            status = exc.status
            exc.counted = True
            raise
        finally:
            metrics.observe("predict", label, variant, status, time.perf_counter() - started)

    # -- feedback -----------------------------------------------------------------------

    def _known_in_log(pipeline: str, ids: set[str]) -> set[str]:
        start = project.clock.now().astimezone(UTC).replace(tzinfo=None) - lookback
        logged = project.log_store().predictions(pipeline, start, None, columns=["id"])
        return ids & set(logged["id"].astype(str))

    @app.post(
        "/v1/{pipeline}/feedback",
        dependencies=[require("feedback")],
        response_model=FeedbackResponse,
        openapi_extra=_FEEDBACK_BODY,
        tags=["predictions"],
    )
    async def feedback(pipeline: str, request: Request) -> Response:
        """Outcomes (labels, clicks, values) of earlier predictions, by ``prediction_id``.

        An id is known when this worker made the prediction recently (``recent_ids``) or the
        pipeline's prediction log holds it (last ``feedback_lookback``). Unknown ids are
        answered in ``unknown`` and not logged.
        """
        started = time.perf_counter()
        label = _pipeline_label(project, pipeline)
        status = 500
        try:
            if pipeline not in pipelines:
                raise ApiError(404, "no_pipeline", f"no pipeline {pipeline!r} in this project")
            body = await _read_json(request, cfg.max_body_bytes)
            try:
                parsed = _FEEDBACK.validate_python(body)
            except ValidationError as exc:
                problems = [
                    {"at": list(e["loc"]), "problem": e["msg"], "value": e.get("input")}
                    for e in exc.errors(include_url=False)[:20]
                ]
                raise ApiError(
                    422, "invalid_feedback", json.loads(json.dumps(problems, default=str))
                ) from None
            items = parsed.feedback if isinstance(parsed, FeedbackRequest) else parsed
            if len(items) > cfg.max_rows:
                raise ApiError(
                    413, "too_many_rows", f"{len(items)} rows; the limit is {cfg.max_rows}"
                )
            unknown = {
                f.prediction_id for f in items if recent.pipeline_of(f.prediction_id) != pipeline
            }
            if unknown:
                unknown -= await run_in_threadpool(_known_in_log, pipeline, unknown)
            now = project.clock.now()
            rows: list[Mapping[str, Any]] = [
                {
                    "id": f.prediction_id,
                    "timestamp": _naive_utc(f.timestamp or now),
                    "pipeline": pipeline,
                    "outcome": f.outcome,
                }
                for f in items
                if f.prediction_id not in unknown
            ]
            if not writer("feedback").submit(rows):
                raise ApiError(
                    503,
                    "log_full",
                    "the feedback log is behind; retry shortly",
                    headers={"Retry-After": "1"},
                )
            status = 200
            return JSONResponse({"accepted": len(rows), "unknown": sorted(unknown)})
        except ApiError as exc:
            status = exc.status
            exc.counted = True
            raise
        finally:
            metrics.observe("feedback", label, "-", status, time.perf_counter() - started)

    return app


def app_from_environment() -> FastAPI:
    """The app of the project ``RETRAINER_CONFIG`` names (uvicorn's factory, one per worker)."""
    import os

    project = Project.open(os.environ.get("RETRAINER_CONFIG"))
    return create_app(project, close_project=True)
