"""`csforecast demo`: the main job end to end on embedded defaults (simulate, train, score, serve)."""
from __future__ import annotations

import typer

from csforecast.cli.common import QuietOpt, console, open_valid
from csforecast.cli.data import simulate_to
from csforecast.cli.scoring import print_score, run_score
from csforecast.cli.serve import run_server
from csforecast.cli.train import print_training, run_training


def demo(accounts: int = typer.Option(2000, "--accounts", min=50), years: int = typer.Option(3, "--years", min=2),
         seed: int = typer.Option(7, "--seed"), serve: bool = typer.Option(True, "--serve/--no-serve"),
         host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8000, "--port"),
         quiet: bool = QuietOpt):
    """The main job on embedded defaults: simulate a demo portfolio, train, score, then serve it."""
    from csforecast.config import get_settings

    settings = get_settings()
    data = settings.home / "demo" / f"portfolio-{accounts}x{years}-seed{seed}"
    if not (data / "accounts.parquet").exists():
        simulate_to(data, accounts, years, seed, "parquet", quiet)
    console.print(f"training on {data} (MLflow: {settings.tracking_uri})", markup=False)
    src = open_valid(str(data))
    print_training(run_training(src, None, None, quiet))
    print_score(run_score(src, None, quiet))
    if serve:
        console.print(f"serving on http://{host}:{port} (docs at /docs); "
                      "create a key with `csforecast apikey create --scope read`", markup=False)
        run_server(host, port, str(data))
