"""The served ASGI application: the HTTP API with the dashboard under /ui.

`create_serving_app(settings=None)` is what `csforecast serve` runs and what ``serving/app.py`` hands to
uvicorn or gunicorn. It is the only module that knows both halves: ``api/`` never imports the dashboard
(`csforecast.api.app.create_app` builds the API alone), and ``ui/`` only reads the API's serving state and
key store. It lives in the package rather than in the top-level ``serving/`` folder, which is a deployment
example and not installed, so an installed csforecast serves the same app without the repository.

``GET /`` is a small landing page (no auth, nothing from the data): where the dashboard is and how one signs in,
the API documentation (``/docs``, ``/redoc``, both served offline) and the open health endpoints.
"""
from __future__ import annotations

from html import escape

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from csforecast.api.app import create_app
from csforecast.config import Settings
from csforecast.ui.router import router as ui_router

LANDING_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                                              "frame-ancestors 'none'",
                   "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                   "Cache-Control": "no-store"}

LANDING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>csforecast</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;color:#1f2933}}
a{{color:#1d4ed8}} code{{background:#f1f5f9;padding:0 .25rem;border-radius:3px}} li{{margin:.4rem 0}}</style>
</head><body>
<h1>csforecast {version}</h1>
<p>Churn, survival and health scores of every account and renewal forecasts for Customer Success teams.</p>
<ul>
<li><a id="dashboard" href="{root}/ui/"><strong>Dashboard</strong></a> — sign in by pasting an API key
(<code>csforecast demo</code> prints one for its demo home; otherwise create one with
<code>csforecast apikey create --scope read</code>).</li>
<li><a id="docs" href="{root}/docs">API documentation</a> (Swagger UI) or <a id="redoc" href="{root}/redoc">ReDoc</a>;
every <code>/v1</code> call needs the key in the <code>X-API-Key</code> header.</li>
<li>Health: <a href="{root}/healthz">/healthz</a> (liveness), <a href="{root}/readyz">/readyz</a> (models and scores
loaded), <a href="{root}/metrics">/metrics</a> (Prometheus).</li>
</ul>
</body></html>
"""


def landing_page(request: Request) -> HTMLResponse:
    """The landing page at ``GET /``: links to the dashboard, the API docs and the health endpoints."""
    root = escape(request.scope.get("root_path", "") or "", quote=True)
    html = LANDING.format(root=root, version=escape(str(request.app.version)))
    return HTMLResponse(html, headers=LANDING_HEADERS)


def create_serving_app(settings: Settings | None = None) -> FastAPI:
    """The API app (`create_app`) with the dashboard's routes added under /ui and the landing page at /.

    The dashboard shares the app's state (settings, serving state, API keys), its middleware and its
    error handler, so its pages use the same keys and the same loaded models and scores as /v1.
    """
    app = create_app(settings)
    app.include_router(ui_router)
    app.add_api_route("/", landing_page, methods=["GET"], include_in_schema=False, response_class=HTMLResponse)
    return app
