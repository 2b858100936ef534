"""`csforecast train`: fit every model family, log to MLflow, register with the champion guard."""
from __future__ import annotations

from datetime import date
from typing import Optional

import typer
from rich.table import Table

from csforecast.simulate.truth import oracle_for
from csforecast.cli.common import AsOfOpt, DataOpt, JsonOpt, QuietOpt, open_valid, out, parse_date, print_json, progress


def run_training(src, as_of: Optional[date], families: Optional[list[str]], quiet: bool = False) -> dict:
    """Train ``families`` (default: every available family) on ``src`` with a progress display; the results
    per family (run, version, alias, metrics, oracle, guard)."""
    from csforecast.pipelines.train import available_families, train_all

    fams = families or available_families()
    with progress("train", quiet) as tell:
        return train_all(src, as_of, fams, progress=tell, oracle=oracle_for(src))


def print_training(results: dict) -> None:
    """One table per family: its metrics beside the oracle's, then the guard's decision."""
    for fam, res in results.items():
        t = Table(title=f"{fam}: run {res.get('run_id')}, version {res.get('version')} → {res.get('alias')}")
        t.add_column("metric")
        t.add_column("model", justify="right")
        t.add_column("oracle (truth)", justify="right")
        oracle = res.get("oracle") or {}
        for k, text in metric_cells(res.get("metrics") or {}):
            o = oracle.get(k)
            t.add_row(k, text, f"{o:.4f}" if isinstance(o, (int, float)) and not isinstance(o, bool) else "—")
        out.print(t)
        out.print(f"guard: {res.get('guard')}", markup=False)


def metric_cells(metrics: dict):
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


def train(data: str = DataOpt, as_of: Optional[str] = AsOfOpt, as_json: bool = JsonOpt,
          family: Optional[list[str]] = typer.Option(None, "--family", help="Train only these families."),
          quiet: bool = QuietOpt):
    """Train every model family on point-in-time snapshots; log to MLflow; register with the champion guard."""
    src = open_valid(data)
    results = run_training(src, parse_date(as_of, "--as-of"), family, quiet)
    if as_json:
        print_json(results)
        return
    print_training(results)
