"""The FastAPI application of the HTTP API: `create_app(settings=None)`.

Routers per resource (accounts, score, forecast, metrics, models, admin, operations); settings, the serving
state and API-key auth are dependencies (csforecast.api.deps). The serving state is loaded at start-up
(lifespan) unless the caller already did (`csforecast serve` loads first so it can fail with a clear
message before binding the port).

Errors: 422 for invalid input (FastAPI's validation body, field by field, rendered by
`api.errors.validation_body` so that no value a client sends — NaN, Infinity, bytes — can break it),
401/403 for auth, 404 unknown account, 413 oversized batch or body, 503 when something server-side is
missing (models, scores, data source, forecast module). A handler turns anything unexpected into a JSON
500 as the last resort; the API tests fuzz the whole schema and send hostile bodies to keep client input
from ever reaching it. Request headers are never logged (they carry API keys), and secret query
parameters are redacted in the access log (`api.logredact`).

The dashboard is not part of this app: `csforecast.asgi.create_serving_app` adds it (under /ui, sharing
this app's state, keys and middleware); that is what `csforecast serve` and `serving/app.py` run.
"""
from __future__ import annotations

import logging
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from csforecast import __version__ as _pkg_version
from csforecast.api import docs, logredact
from csforecast.api.auth import KeyStore
from csforecast.api.routers import accounts, admin, forecast, health, metrics, models, process, score
from csforecast.api.routers import pipeline, reasons, scorecard, voc  # issue 17
from csforecast.api.schemas import ScoreRequest
from csforecast.api.errors import StartupError, validation_body
from csforecast.api.scoreset import shutdown_builder, warm_builder
from csforecast.api.state import StateHolder
from csforecast.config import Settings, get_settings

log = logging.getLogger("csforecast.api")

DESCRIPTION = """Churn, survival and health scores of every account, on-demand scoring, renewal forecasts and
retention metrics for Customer Success teams.

Every `/v1` endpoint needs an API key in the `X-API-Key` header (`csforecast apikey create --scope read|admin`);
`/v1/admin/*` needs scope `admin`. `/healthz`, `/readyz` and `/metrics` are open. Served by `csforecast serve`,
the dashboard is at [/ui/](/ui/): sign in with the same key.
"""


class MetricsMiddleware:
    """Pure ASGI middleware: request count by route template/method/status and latency histogram."""

    def __init__(self, app, metrics: health.ApiMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = [500]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            # the template without converters: /v1/accounts/{account_id}, not {account_id:path}
            path = getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(route=path, method=method, status=str(status[0])).inc()
            self.metrics.latency.labels(route=path, method=method).observe(time.perf_counter() - t0)


def _pkg() -> str:
    return _pkg_version if isinstance(_pkg_version, str) else "0"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    api_metrics = health.ApiMetrics()
    def on_swap(state) -> None:
        api_metrics.on_swap(state)
        forecast.warm(state)     # precompute what the new score set determines, in the background

    holder = StateHolder(settings, on_swap=on_swap)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if holder.current.generation == 0:  # not preloaded by `csforecast serve`
            try:
                await run_in_threadpool(holder.start)
            except StartupError as e:
                log.error("cannot start: %s", e)
                raise
        warm_builder()      # the helper process that builds score sets on reload (api/scoreset.py)
        try:
            yield
        finally:
            shutdown_builder()

    app = FastAPI(title="csforecast API", version=_pkg(), description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None,     # served offline by api/docs.py instead of from a CDN
                  openapi_tags=[{"name": "accounts", "description": "Latest scores per account"},
                                {"name": "scoring", "description": "On-demand scoring"},
                                {"name": "forecast", "description": "Renewal forecasts"},
                                {"name": "metrics", "description": "Retention metrics"},
                                {"name": "models", "description": "Served models"},
                                {"name": "admin", "description": "Admin (scope admin)"},
                                {"name": "operations", "description": "Liveness, readiness, Prometheus"}])
    app.state.settings = settings
    app.state.holder = holder
    app.state.keys = KeyStore(settings.apikeys_file)
    app.state.metrics = api_metrics

    app.include_router(docs.router)
    app.include_router(health.router)
    app.include_router(accounts.router)
    app.include_router(score.router, max_body_size=score.body_limit(settings.serve.max_batch))
    app.include_router(forecast.router)
    app.include_router(process.router)       # CSM calls, disagreements, ledger (issue 16)
    app.include_router(process.csm_router)   # CSM work lists
    app.include_router(metrics.router)
    app.include_router(models.router)
    app.include_router(admin.router)
    for r in (voc.router, reasons.router, pipeline.router,   # issue 17: voice of the customer, reasons, pipeline,
              scorecard.router):                          # the editable health scorecard
        app.include_router(r)
    app.add_middleware(MetricsMiddleware, metrics=api_metrics)
    logredact.install()

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_body(exc.errors()), status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # last resort only
        error_id = uuid.uuid4().hex[:12]
        log.error("unhandled %s on %s %s (error id %s)", type(exc).__name__, request.method, request.url.path,
                  error_id, exc_info=exc)
        return JSONResponse({"detail": "internal server error", "error_id": error_id}, status_code=500)

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes, tags=app.openapi_tags)
        schema.setdefault("components", {}).setdefault("schemas", {})["ScoreRequest"] = \
            ScoreRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        _score_example(schema, holder)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
    return app


def _score_example(schema: dict, holder: StateHolder) -> None:
    """Give POST /v1/score an example in the served churn model's input names, with made-up values only.

    The schema is public (no key needed), so no value may come from the data: the values are the
    `ScoreRequest` example's, kept where the served model has that input (and, for a category, that level),
    then further numeric inputs at 1.0, up to 8 inputs."""
    scorer = holder.current.churn
    if scorer is None:
        return
    synthetic = ScoreRequest.model_config["json_schema_extra"]["examples"][0]["rows"][0]
    row: dict = {}
    for f, kind in zip(scorer.features, scorer.kinds):
        v = synthetic.get(f)
        if v is not None and (kind == "numeric" or (kind == "categorical" and v in scorer.codes[scorer.index[f]])):
            row[f] = v
    for f, kind in zip(scorer.features, scorer.kinds):
        if len(row) >= 8:
            break
        if kind == "numeric" and f not in row:
            row[f] = 1.0
    example = {"rows": [row], "contributions": True}
    try:
        op = schema["paths"]["/v1/score"]["post"]["requestBody"]["content"]["application/json"]
        op["examples"] = {"served_model": {"summary": "Inputs of the served churn model (made-up values)",
                                           "value": example}}
    except KeyError:
        pass
