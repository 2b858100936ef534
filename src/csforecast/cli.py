"""The csforecast command line. Each command parses, calls one function, and formats the result."""
from __future__ import annotations

import os

# LightGBM's OpenMP workers busy-wait by default, which starves everything else on a small machine
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import json
import sys
from datetime import date
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="csforecast: calibrated churn, survival, health and renewal forecasts for CS teams.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

DataOpt = typer.Option(..., "--data", help="Folder of CSV/Parquet tables, a .duckdb file or a database URL.")
AsOfOpt = typer.Option(None, "--as-of", help="As-of date (YYYY-MM-DD). Default: the day after the data ends.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout.")


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _fail(message: str, code: int = 2) -> None:
    console.print(f"error: {message}", style="red", markup=False, highlight=False)
    raise typer.Exit(code)


def _open_valid(data: str):
    """Open and validate a source; exit 2 (writing nothing) when it has errors."""
    from csforecast.config import get_settings
    from csforecast.data.sources import SourceError, open_source
    from csforecast.data.validate import validate

    try:
        src = open_source(data, get_settings().column_map)
    except SourceError as e:
        _fail(str(e))
    report = validate(src)  # dates after today are errors; as-of cuts are the commands' own business
    if not report.ok:
        for p in report.errors:
            console.print(str(p), style="red", markup=False, highlight=False)
        _fail(f"{len(report.errors)} data error(s) in {data}; nothing was written "
              f"(run `csforecast validate --data {data}` for the full report)")
    return src


@app.command()
def simulate(out_dir: Path = typer.Option(..., "--out", help="Folder to write the tables and truth/ into."),
             accounts: int = typer.Option(2000, "--accounts", min=10),
             years: int = typer.Option(3, "--years", min=1, max=10),
             seed: int = typer.Option(0, "--seed"),
             fmt: str = typer.Option("parquet", "--format", help="parquet or csv")):
    """Simulate a portfolio (accounts, contracts, usage, tickets, surveys, touches) with ground truth."""
    from rich.progress import Progress

    from csforecast.simulate import simulate_portfolio

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("simulating", total=6)
        pf = simulate_portfolio(accounts, years, seed,
                                progress=lambda step: progress.update(task, advance=1, description=step))
        progress.update(task, description="writing")
        pf.write(out_dir, fmt)
    counts = ", ".join(f"{k} {len(v):,}" for k, v in pf.tables.items())
    console.print(f"wrote {out_dir}: {counts}; truth/ beside them")


@app.command("validate")
def validate_cmd(data: str = DataOpt, as_of: Optional[str] = AsOfOpt, as_json: bool = JsonOpt):
    """Check every table against the data contract; report every problem. Exit 0 clean, 2 on errors."""
    from csforecast.config import get_settings
    from csforecast.data.sources import SourceError, open_source
    from csforecast.data.validate import validate

    try:
        src = open_source(data, get_settings().column_map)
    except SourceError as e:
        if as_json:
            _print_json({"source": data, "ok": False, "errors": 1, "problems": [
                {"level": "error", "table": None, "column": None, "rule": "source", "message": str(e)}]})
        _fail(str(e))
    report = validate(src, date.fromisoformat(as_of) if as_of else None)
    if as_json:
        _print_json(report.to_dict())
    else:
        for p in report.problems:
            out.print(str(p), style="red" if p.level == "error" else "yellow", markup=False, highlight=False)
        rows = ", ".join(f"{k} {v:,}" for k, v in report.row_counts.items())
        out.print(f"{len(report.errors)} error(s), {len(report.warnings)} warning(s); rows: {rows}", highlight=False)
    raise typer.Exit(0 if report.ok else 2)


@app.command()
def features(data: str = DataOpt,
             as_of: str = typer.Option(..., "--as-of", help="As-of date (YYYY-MM-DD); features use rows before it."),
             out_file: Path = typer.Option(..., "--out", help="Parquet (or .csv) file to write."),
             labels: bool = typer.Option(True, "--labels/--no-labels", help="Include label_* columns.")):
    """Write one point-in-time feature snapshot (one row per active account)."""
    from csforecast.features.snapshot import build_snapshots

    d = date.fromisoformat(as_of)
    src = _open_valid(data)
    df = build_snapshots(src, [d], labels=labels)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + ".tmp")
    df.to_csv(tmp, index=False) if out_file.suffix == ".csv" else df.to_parquet(tmp, index=False)
    tmp.replace(out_file)
    console.print(f"wrote {len(df):,} accounts × {df.shape[1]} columns as of {d} to {out_file}")


@app.command()
def train(data: str = DataOpt, as_of: Optional[str] = AsOfOpt, as_json: bool = JsonOpt,
          family: Optional[list[str]] = typer.Option(None, "--family", help="Train only these families.")):
    """Train every model family on point-in-time snapshots; log to MLflow; register with the champion guard."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from csforecast.pipelines.train import available_families, train_all

    src = _open_valid(data)
    fams = family or available_families()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task("starting", total=None)
        results = train_all(src, date.fromisoformat(as_of) if as_of else None, fams,
                            progress=lambda msg: progress.update(task, description=msg))
    if as_json:
        _print_json(results)
        return
    for fam, res in results.items():
        t = Table(title=f"{fam}: run {res.get('run_id')}, version {res.get('version')} → {res.get('alias')}")
        t.add_column("metric")
        t.add_column("model", justify="right")
        t.add_column("oracle (truth)", justify="right")
        oracle = res.get("oracle") or {}
        for k, text in _metric_cells(res.get("metrics") or {}):
            o = oracle.get(k)
            t.add_row(k, text, f"{o:.4f}" if isinstance(o, (int, float)) and not isinstance(o, bool) else "—")
        out.print(t)
        out.print(f"guard: {res.get('guard')}", markup=False)


def _metric_cells(metrics: dict):
    """(name, text) for the metrics a table can show: numbers, yes/no, [low, high] intervals, and one level of
    {name: interval} (e.g. auc_gain_ci.equal_weight); nested per-component detail stays in --json."""
    def interval(v):
        return (isinstance(v, (list, tuple)) and len(v) == 2
                and all(x is None or (isinstance(x, (int, float)) and not isinstance(x, bool)) for x in v))

    def show(v):
        return "—" if v[0] is None or v[1] is None else f"[{v[0]:.4f}, {v[1]:.4f}]"

    for k, v in metrics.items():
        if isinstance(v, bool):
            yield k, "yes" if v else "no"
        elif isinstance(v, (int, float)):
            yield k, f"{v:.4f}"
        elif interval(v):
            yield k, show(v)
        elif isinstance(v, dict) and v and all(interval(x) for x in v.values()):
            for name, x in v.items():
                yield f"{k}.{name}", show(x)


@app.command()
def demo(accounts: int = typer.Option(2000, "--accounts", min=50), years: int = typer.Option(3, "--years", min=2),
         seed: int = typer.Option(7, "--seed"), serve: bool = typer.Option(True, "--serve/--no-serve"),
         host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8000, "--port")):
    """The main job on embedded defaults: simulate a demo portfolio, train, score, then serve it."""
    from csforecast.config import get_settings

    settings = get_settings()
    data = settings.home / "demo" / f"portfolio-{accounts}x{years}-seed{seed}"
    if not (data / "accounts.parquet").exists():
        simulate(out_dir=data, accounts=accounts, years=years, seed=seed, fmt="parquet")
    console.print(f"training on {data} (MLflow: {settings.tracking_uri})", markup=False)
    train(data=str(data), as_of=None, as_json=False, family=None)
    score_cmd = app.registered_commands
    for cmd in score_cmd:
        if cmd.name == "score" or getattr(cmd.callback, "__name__", "") == "score":
            cmd.callback(data=str(data), as_of=None, as_json=False)
    if serve:
        for cmd in app.registered_commands:
            if cmd.name == "serve" or getattr(cmd.callback, "__name__", "") == "serve":
                console.print(f"serving on http://{host}:{port} (docs at /docs); "
                              "create a key with `csforecast apikey create --scope read`", markup=False)
                cmd.callback(host=host, port=port, data=str(data))
                return
        console.print("the API server is not part of this build yet; stopping after training and scoring")


# Commands that live with their own area register themselves here.
for _mod in ("csforecast.cli_scoring", "csforecast.cli_forecast", "csforecast.cli_serve",
             "csforecast.cli_experiments", "csforecast.cli_retention"):
    try:
        __import__(_mod, fromlist=["register"]).register(app)
    except ModuleNotFoundError as _e:
        if _e.name != _mod:
            raise


def main():  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
