"""`csforecast train`: fit every model family, log to MLflow, register with the promotion guard.

Prints, per family, the book size against the small-book thresholds and the model chosen, the metrics beside
the oracle and the guard's decision; the usage metrics left out of the features, if any. Exits 2 when a data
change blocked a promotion (the champions stay; ``--accept-data-change`` overrides it on purpose)."""
from __future__ import annotations

from datetime import date
from typing import Optional

import typer
from rich.table import Table

from csforecast.errors import ConflictError
from csforecast.cli.common import (AsOfOpt, DataOpt, JsonOpt, QuietOpt, console, open_valid, oracle_of, out, parse_date,
                                   print_json, progress)


class PromotionBlocked(ConflictError):
    """A data change blocked a promotion: the champions stay (exit 2)."""


def run_training(src, as_of: Optional[date], families: Optional[list[str]], accept_data_change: bool = False,
                 quiet: bool = False) -> dict:
    """Train ``families`` (default: every available family) on ``src`` with a progress display; the results
    per family (run, version, alias, metrics, oracle, guard, decision, fallback)."""
    from csforecast.pipelines.champion import PromotionPolicy
    from csforecast.pipelines.train import available_families, train_all

    fams = families or available_families()
    policy = PromotionPolicy.from_settings(accept_data_change=accept_data_change)
    with progress("train", quiet) as tell:
        return train_all(src, as_of, fams, progress=tell, oracle=oracle_of(src), policy=policy)


def print_usage_metrics(src) -> None:
    """Say which usage metrics the features leave out (the cap ``features.max_usage_metrics``), if any."""
    from csforecast.config import get_settings
    from csforecast.features.snapshot import usage_metric_choice

    used, left = usage_metric_choice(src)
    if left:
        console.print(f"usage metrics: {len(used)} used as features; {len(left)} left out (features.max_usage_metrics "
                      f"= {get_settings().features.max_usage_metrics}, kept by accounts covered): {', '.join(left)}",
                      style="yellow", markup=False, highlight=False)


def model_choice_line(fam: str, res: dict) -> str | None:
    """``<family>: <book size vs thresholds>: <model chosen>`` from a result's ``detail.model_choice``."""
    choice = (res.get("detail") or {}).get("model_choice")
    if not choice:
        return None
    what = f"fallback {choice['chosen']} ({choice['fallback']})" if choice.get("fallback") else choice["chosen"]
    return f"{fam}: {choice['reason']}: {what}"


def print_training(results: dict) -> None:
    """One table per family: the model chosen, its metrics beside the oracle's, then the guard's decision."""
    for fam, res in results.items():
        if res.get("decision") in ("blocked", "skipped"):
            out.print(f"{fam}: {res.get('guard')}", style="red" if res["decision"] == "blocked" else "yellow",
                      markup=False, highlight=False)
            continue
        line = model_choice_line(fam, res)
        if line:
            out.print(line, markup=False, highlight=False)
        t = Table(title=f"{fam}: run {res.get('run_id')}, version {res.get('version')} → {res.get('alias')}")
        t.add_column("metric")
        t.add_column("model", justify="right")
        t.add_column("oracle (truth)", justify="right")
        oracle = res.get("oracle") or {}
        for k, text in metric_cells(res.get("metrics") or {}):
            o = oracle.get(k)
            t.add_row(k, text, f"{o:.4f}" if isinstance(o, (int, float)) and not isinstance(o, bool) else "—")
        out.print(t)
        out.print(f"guard ({res.get('decision')}): {res.get('guard')}", markup=False)


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



def blocked_message(results: dict) -> str | None:
    """The error line when a data change blocked a promotion (None when nothing was blocked)."""
    blocked = {f: r for f, r in results.items() if r.get("decision") == "blocked"}
    if not blocked:
        return None
    changes = list(dict.fromkeys(c["message"] for r in blocked.values()
                                 for c in (r.get("detail") or {}).get("changes") or []))
    what = "; ".join(changes) if changes else " | ".join(str(r.get("guard")) for r in blocked.values())
    return (f"the data changed since the champion{'s' if len(blocked) > 1 else ''} of {', '.join(blocked)} "
            f"{'were' if len(blocked) > 1 else 'was'} trained: {what}; no champion moved (pass --accept-data-change "
            "to train and promote anyway)")


def train(data: str = DataOpt, as_of: Optional[str] = AsOfOpt, as_json: bool = JsonOpt,
          family: Optional[list[str]] = typer.Option(None, "--family", help="Train only these families."),
          accept_data_change: bool = typer.Option(
              False, "--accept-data-change",
              help="The data changed on purpose (a table emptied, rows or accounts lost, a shorter date range, "
                   "another base rate): train and let the promotion guard's other rules decide; recorded as a "
                   "tag on the new versions."),
          quiet: bool = QuietOpt):
    """Train every model family on point-in-time snapshots; log to MLflow; register with the promotion guard
    (docs/operations.md). Exits 2 when a data change blocked a promotion."""
    from csforecast.tracking.location import check_writable_store   # no MLflow import: fails in ~2 s

    check_writable_store()   # a read-only or full home fails now, not after the models are fitted
    src = open_valid(data)
    print_usage_metrics(src)
    results = run_training(src, parse_date(as_of, "--as-of"), family, accept_data_change, quiet)
    if as_json:
        print_json(results)
    else:
        print_training(results)
    blocked = blocked_message(results)
    if blocked:
        raise PromotionBlocked(blocked)
