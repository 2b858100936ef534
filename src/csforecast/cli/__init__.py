"""The csforecast command line (`csforecast = "csforecast.cli:app"`).

One module per command group, each command a few lines (parse, call one function, format); the commands
are wired here, explicitly and in the order `csforecast --help` lists them:

- data.py        simulate, validate, features
- train.py       train
- demo.py        demo (calls the plain functions behind simulate, train, score and serve)
- scoring.py     score
- monitor.py     monitor
- forecast.py    metrics, forecast, backtest, ledger
- serve.py       serve, apikey create|list|revoke
- experiments.py experiment run|promote|effect
- voc.py         voc, reasons, pipeline (voice of the customer, churn reasons, the expansion pipeline)
- common.py      the consoles, shared options, fail / print_json / open_valid
- examples.py    the examples under every command's --help
"""
from __future__ import annotations

import os

# LightGBM's OpenMP workers busy-wait by default, which starves everything else on a small machine
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import typer  # noqa: E402

from csforecast.cli import data, demo, examples, experiments, forecast, monitor, scoring, serve, train, voc  # noqa: E402
from csforecast.cli.common import CommandGroup, route_library_output  # noqa: E402

app = typer.Typer(help="csforecast: calibrated churn, survival, health and renewal forecasts for CS teams.",
                  epilog=examples.APP, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  cls=CommandGroup)



@app.callback()
def _library_output() -> None:
    """Libraries' log lines and warnings go to CSFORECAST_HOME/csforecast.log, not the console."""
    route_library_output()


app.command()(data.simulate)
app.command("validate")(data.validate_cmd)
app.command()(data.features)
app.command()(train.train)
app.command()(demo.demo)
app.command()(scoring.score)
app.command()(monitor.monitor)
app.command("metrics")(forecast.metrics_cmd)
app.command("forecast")(forecast.forecast_cmd)
app.command("backtest")(forecast.backtest_cmd)
app.command("ledger")(forecast.ledger_cmd)
app.command("voc")(voc.voc_cmd)
app.command("reasons")(voc.reasons_cmd)
app.command("pipeline")(voc.pipeline_cmd)
app.command()(serve.serve)
app.add_typer(serve.apikey_app, name="apikey")
app.add_typer(experiments.experiment_app, name="experiment")
examples.add_examples(app)    # an example under every command's --help (cli/examples.py)


def main():  # pragma: no cover
    app()


__all__ = ["app", "main"]
