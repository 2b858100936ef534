"""`csforecast serve` (the HTTP API and dashboard under uvicorn) and `csforecast apikey create|list|revoke`."""
from __future__ import annotations

import logging
from typing import Annotated, Optional

import typer

from csforecast.cli.common import JsonOpt, console, fail, out, print_json

ScopeOpt = typer.Option(..., "--scope", help="read (all /v1 reads and scoring), write (also records CSM calls: "
                                              "POST /v1/forecast/calls) or admin (also /v1/admin/*).")


def run_server(host: Optional[str], port: Optional[int], data: Optional[str], log_level: str = "info",
               access_log: bool = True) -> None:
    """Load the models and scores (failing with a clear message before binding the port if the server cannot
    start), then serve `csforecast.asgi.create_serving_app` under uvicorn until stopped.

    ``host``/``port``/``data`` override the settings when given.
    """
    import uvicorn

    from csforecast.api.errors import StartupError
    from csforecast.asgi import create_serving_app
    from csforecast.config import get_settings

    settings = get_settings()
    serve_cfg = settings.serve.model_copy(update={k: v for k, v in (("host", host), ("port", port))
                                                   if v is not None})
    settings = settings.model_copy(update={"serve": serve_cfg, **({"data": data} if data else {})})
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("csforecast.api").setLevel(getattr(logging, log_level.upper(), logging.INFO))
    api = create_serving_app(settings)
    console.print(f"loading models from {settings.tracking_uri} and scores from {settings.scores_db}",
                  markup=False, highlight=False)
    try:
        state = api.state.holder.start()
    except StartupError as e:
        fail(str(e))
    if not state.ready:
        console.print("warning: starting NOT READY (/readyz answers 503): " + "; ".join(state.problems),
                      style="yellow", markup=False, highlight=False)
    console.print(f"serving on http://{serve_cfg.host}:{serve_cfg.port} (docs at /docs)", markup=False,
                  highlight=False)
    uvicorn.run(api, host=serve_cfg.host, port=serve_cfg.port, log_level=log_level.lower(),
                access_log=access_log, server_header=False)


def serve(host: Annotated[Optional[str], typer.Option(
              "--host", help="Interface to bind (default serve.host, 127.0.0.1).")] = None,
          port: Annotated[Optional[int], typer.Option(
              "--port", min=0, max=65535, help="Port (default serve.port, 8000).")] = None,
          data: Annotated[Optional[str], typer.Option(
              "--data", help="Data source for forecasts and retention metrics (default CSFORECAST_DATA).")] = None,
          log_level: Annotated[str, typer.Option(
              "--log-level", help="critical|error|warning|info|debug")] = "info",
          access_log: Annotated[bool, typer.Option(
              "--access-log/--no-access-log",
              help="Log one line per request (method, path, status; never headers).")] = True):
    """Serve the HTTP API: latest scores, on-demand scoring, forecasts, retention metrics (docs at /docs)."""
    run_server(host, port, data, log_level, access_log)


apikey_app = typer.Typer(help="Manage API keys (stored hashed in CSFORECAST_HOME/apikeys.json).",
                         no_args_is_help=True)


def _store():
    from csforecast.api.auth import KeyStore
    from csforecast.config import get_settings

    return KeyStore(get_settings().apikeys_file)


@apikey_app.command("create")
def apikey_create(scope: str = ScopeOpt,
                  name: Optional[str] = typer.Option(None, "--name", help="A label to recognise the key by."),
                  as_json: bool = JsonOpt):
    """Create a key and print it once: it is stored only as a salted hash and cannot be shown again."""
    store = _store()
    try:
        key, rec = store.create(scope.strip().lower(), name)
    except ValueError as e:
        fail(str(e))
    if as_json:
        print_json({"key": key, "scope": rec["scope"], "id": rec["id"]})
        return
    out.print(key, markup=False, highlight=False)
    console.print(f"created {rec['scope']} key {rec['id']} in {store.path}; copy it now: it is not shown again",
                  markup=False, highlight=False)


@apikey_app.command("list")
def apikey_list(as_json: bool = JsonOpt):
    """List keys (id, scope, name, created_at; never the key)."""
    recs = _store().list()
    if as_json:
        print_json(recs)
        return
    for r in recs:
        out.print(f"{r['id']}  {r['scope']:<5}  {r.get('created_at', '')}  {r.get('name') or ''}", markup=False,
                  highlight=False)


@apikey_app.command("revoke")
def apikey_revoke(key_id: str = typer.Argument(..., help="The key id (from `apikey list`).")):
    """Revoke a key; running servers stop accepting it on their next request."""
    if not _store().revoke(key_id):
        fail(f"no key with id {key_id}")
    console.print(f"revoked {key_id}", markup=False, highlight=False)
