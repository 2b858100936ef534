"""The served ASGI application: the HTTP API with the dashboard under /ui.

`create_serving_app(settings=None)` is what `csforecast serve` runs and what ``serving/app.py`` hands to
uvicorn or gunicorn. It is the only module that knows both halves: ``api/`` never imports the dashboard
(`csforecast.api.app.create_app` builds the API alone), and ``ui/`` only reads the API's serving state and
key store. It lives in the package rather than in the top-level ``serving/`` folder, which is a deployment
example and not installed, so an installed csforecast serves the same app without the repository.
"""
from __future__ import annotations

from fastapi import FastAPI

from csforecast.api.app import create_app
from csforecast.config import Settings
from csforecast.ui.router import router as ui_router


def create_serving_app(settings: Settings | None = None) -> FastAPI:
    """The API app (`create_app`) with the dashboard's routes added under /ui.

    The dashboard shares the app's state (settings, serving state, API keys), its middleware and its
    error handler, so its pages use the same keys and the same loaded models and scores as /v1.
    """
    app = create_app(settings)
    app.include_router(ui_router)
    return app
