"""Launch the API app with the dashboard router included, as `create_app` will once the one-line hook is in:
``python tests/ui/serve_ui.py PORT`` (settings from CSFORECAST_* / MLFLOW_* environment variables)."""
import sys

import uvicorn

from csforecast.api.app import create_app
from csforecast.ui.router import router as ui_router

app = create_app()
if not any(getattr(r, "path", "").startswith("/ui") for r in app.routes):   # create_app may include it already
    app.include_router(ui_router)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="info", access_log=True)
