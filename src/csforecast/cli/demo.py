"""`csforecast demo`: the main job end to end on embedded defaults (simulate, train, a short backtest, score,
serve), ending with where to look: the dashboard's URL and a read key to sign in with, the API docs and the MLflow
UI command."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import typer

from csforecast.cli.common import QuietOpt, console, open_valid, out
from csforecast.cli.data import simulate_to
from csforecast.cli.forecast import run_backtest_logged
from csforecast.cli.scoring import print_score, run_score
from csforecast.cli.serve import run_server
from csforecast.cli.train import print_training, run_training

DEMO_KEY_FILE = "read-key"      # under CSFORECAST_HOME/demo/, owner-only, like apikeys.json
DEMO_KEY_NAME = "demo"


def demo_read_key(home: Path) -> tuple[str, Path, bool]:
    """A read key for the demo home, ready to paste into the dashboard's sign-in form: the one kept in
    ``home/demo/read-key`` while it is still valid, else a new one (``csforecast apikey create --scope read
    --name demo``) written there. Returns (key, file, created).

    The key store keeps salted hashes only (api/auth.py), so a key cannot be shown again from it; the demo keeps
    its own key in an owner-only file (mode 0600, written atomically) so every run can print it. A revoked or
    deleted demo key is replaced on the next run."""
    from csforecast.api.auth import KeyStore
    from csforecast.config import get_settings

    keys = KeyStore(get_settings().apikeys_file)
    path = Path(home) / "demo" / DEMO_KEY_FILE
    with contextlib.suppress(OSError):
        kept = path.read_text().strip()
        p = keys.verify(kept)
        if p is not None and p.scope == "read":
            return kept, path, False
    key, _ = keys.create("read", DEMO_KEY_NAME)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=DEMO_KEY_FILE + ".", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return key, path, True


def mlflow_ui_command(tracking_uri: str) -> str:
    """The command that starts MLflow's UI where the dashboard's MLflow links point (CSFORECAST_MLFLOW_UI,
    default http://127.0.0.1:5000)."""
    from urllib.parse import urlparse

    from csforecast.ui.router import MLFLOW_UI_DEFAULT, MLFLOW_UI_ENV

    u = urlparse(os.environ.get(MLFLOW_UI_ENV, MLFLOW_UI_DEFAULT))
    return (f"mlflow ui --backend-store-uri {tracking_uri} --host {u.hostname or '127.0.0.1'} "
            f"--port {u.port or 5000}")


def print_where_to_look(home: Path, tracking_uri: str, host: str, port: int, data: Path, serving: bool) -> str:
    """The demo's closing lines: the dashboard URL and a read key to sign in with (:func:`demo_read_key`), the
    API docs and the MLflow UI command. Returns the key."""
    key, path, created = demo_read_key(home)
    base = f"http://{host}:{port}"
    if not serving:
        console.print(f"serve it with: csforecast serve --data {data} --port {port}", markup=False, highlight=False)
    console.print(f"dashboard: {base}/ui/ - sign in with this read key "
                  f"({'new, ' if created else ''}kept in {path}; `csforecast apikey revoke {key.split('_')[1]}` "
                  "ends it):",
                  markup=False, highlight=False)
    out.print(key, markup=False, highlight=False, soft_wrap=True)
    console.print(f"API docs: {base}/docs (send the key as the X-API-Key header); MLflow runs: "
                  f"{mlflow_ui_command(tracking_uri)}", markup=False, highlight=False)
    return key


def demo(accounts: int = typer.Option(2000, "--accounts", min=50), years: int = typer.Option(3, "--years", min=2),
         seed: int = typer.Option(7, "--seed"), serve: bool = typer.Option(True, "--serve/--no-serve"),
         host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8000, "--port"),
         backtest_quarters: int = typer.Option(2, "--backtest-quarters", min=0,
                                               help="Quarters of the short backtest the demo runs after training "
                                                    "(the dashboard's forecast-vs-actual section; 0: none)."),
         quiet: bool = QuietOpt):
    """The main job on embedded defaults: simulate a demo portfolio, train, run a short backtest, score (which
    freezes the current and next quarter's forecasts in the ledger), then serve it, and print the dashboard's URL
    with a read key to sign in with."""
    from csforecast.config import get_settings

    settings = get_settings()
    data = settings.home / "demo" / f"portfolio-{accounts}x{years}-seed{seed}"
    if not (data / "accounts.parquet").exists():
        simulate_to(data, accounts, years, seed, "parquet", quiet)
    console.print(f"training on {data} (MLflow: {settings.tracking_uri})", markup=False)
    src = open_valid(str(data))
    print_training(run_training(src, None, None, quiet))
    if backtest_quarters:
        bt = run_backtest_logged(src, backtest_quarters, 1, None, quiet)
        console.print(f"backtest of {backtest_quarters} quarter(s) logged (run {bt['run_id']})", markup=False)
    print_score(run_score(src, None, quiet))
    print_where_to_look(settings.home, settings.tracking_uri, host, port, data, serve)
    if serve:
        run_server(host, port, str(data))
