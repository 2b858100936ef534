"""`csforecast demo`: the main job end to end on embedded defaults (simulate, train, a short backtest, score,
serve)."""
from __future__ import annotations

import typer

from csforecast.cli.common import QuietOpt, console, open_valid
from csforecast.cli.data import simulate_to
from csforecast.cli.forecast import run_backtest_logged
from csforecast.cli.scoring import print_score, run_score
from csforecast.cli.serve import run_server
from csforecast.cli.train import print_training, run_training


def demo(accounts: int = typer.Option(2000, "--accounts", min=50), years: int = typer.Option(3, "--years", min=2),
         seed: int = typer.Option(7, "--seed"), serve: bool = typer.Option(True, "--serve/--no-serve"),
         host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8000, "--port"),
         backtest_quarters: int = typer.Option(2, "--backtest-quarters", min=0,
                                               help="Quarters of the short backtest the demo runs after training "
                                                    "(the dashboard's forecast-vs-actual section; 0: none)."),
         quiet: bool = QuietOpt):
    """The main job on embedded defaults: simulate a demo portfolio, train, run a short backtest, score (which
    freezes the current and next quarter's forecasts in the ledger), then serve it."""
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
    if serve:
        console.print(f"serving on http://{host}:{port} (docs at /docs); "
                      "create a key with `csforecast apikey create --scope read`", markup=False)
        run_server(host, port, str(data))
