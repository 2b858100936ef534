"""ASGI entry point: `uvicorn serving.app:app --host 0.0.0.0 --port 8000` (settings from CSFORECAST_* env vars).

See serving/README.md. The API and the dashboard (/ui) are composed by `csforecast.asgi.create_serving_app`,
the same app `csforecast serve` runs. Models and scores are loaded in the app's lifespan, so importing this
module is cheap.
"""
from csforecast.asgi import create_serving_app

app = create_serving_app()
