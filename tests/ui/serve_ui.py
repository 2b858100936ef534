"""Launch the served app (the API with the dashboard under /ui, as `csforecast serve` runs it):
``python tests/ui/serve_ui.py PORT`` (settings from CSFORECAST_* / MLFLOW_* environment variables)."""
import sys

import uvicorn

from csforecast.asgi import create_serving_app

app = create_serving_app()

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="info", access_log=True)
