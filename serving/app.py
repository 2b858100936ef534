"""ASGI entry point: `uvicorn serving.app:app --host 0.0.0.0 --port 8000` (settings from CSFORECAST_* env vars).

See serving/README.md. Models and scores are loaded in the app's lifespan, so importing this module is cheap.
"""
from csforecast.api.app import create_app

app = create_app()
