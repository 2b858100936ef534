"""`csforecast simulate`, `validate` and `features`: make, check and snapshot the data."""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Optional

import typer

from csforecast.cli.common import (AsOfOpt, DataOpt, EngineOpt, JsonOpt, QuietOpt, console, fail, open_valid, out,
                                   parse_date, print_json, progress)


SIMULATION_STEPS = 6   # the steps simulate_portfolio reports


def simulate_to(out_dir: Path, accounts: int, years: int, seed: int, fmt: str, quiet: bool = False) -> None:
    """Simulate a portfolio with a progress display, write it (tables + truth/) and say what was written."""
    from csforecast.simulate import simulate_portfolio

    with progress("simulate", quiet) as tell:
        done = [0]

        def step(name: str) -> None:
            tell(name, done[0], SIMULATION_STEPS + 1)
            done[0] += 1

        pf = simulate_portfolio(accounts, years, seed, progress=step)
        tell(f"writing {out_dir}", SIMULATION_STEPS, SIMULATION_STEPS + 1)
        pf.write(out_dir, fmt)
    counts = ", ".join(f"{k} {len(v):,}" for k, v in pf.tables.items())
    console.print(f"wrote {out_dir}: {counts}; truth/ beside them")


def simulate(out_dir: Path = typer.Option(..., "--out", help="Folder to write the tables and truth/ into."),
             accounts: int = typer.Option(2000, "--accounts", min=10),
             years: int = typer.Option(3, "--years", min=1, max=10),
             seed: int = typer.Option(0, "--seed"),
             fmt: str = typer.Option("parquet", "--format", help="parquet or csv"),
             quiet: bool = QuietOpt):
    """Simulate a portfolio (accounts, contracts, usage, tickets, surveys, touches) with ground truth."""
    simulate_to(out_dir, accounts, years, seed, fmt, quiet)


def validate_cmd(data: str = DataOpt, as_of: Optional[str] = AsOfOpt, as_json: bool = JsonOpt):
    """Check every table against the data contract; report every problem. Exit 0 clean, 2 on errors."""
    from csforecast.config import get_settings
    from csforecast.data.sources import SourceError, open_source, redact
    from csforecast.data.validate import validate

    try:
        src = open_source(data, get_settings().column_map)
    except SourceError as e:
        if as_json:
            print_json({"source": redact(data), "ok": False, "errors": 1, "problems": [
                {"level": "error", "table": None, "column": None, "rule": "source", "message": str(e)}]})
        fail(str(e))
    report = validate(src, parse_date(as_of, "--as-of"))
    report.problems.extend(champion_data_changes(src))
    if as_json:
        print_json(report.to_dict())
    else:
        styles = {"error": "red", "warning": "yellow", "info": "dim"}
        for level, text in report.lines():
            out.print(text, style=styles.get(level), markup=False, highlight=False)
    raise typer.Exit(0 if report.ok else 2)


def champion_data_changes(src) -> list:
    """Warnings (``validate.Problem``, rule ``data_change``) for every change from the data a family's champion
    was trained on that would block its promotion (``PromotionPolicy.data_changes``, docs/operations.md); none
    when there is no registry or no champion with a profile. A registry that cannot be read is a warning too."""
    from csforecast.tracking.location import has_registry

    if not has_registry():      # before importing MLflow and the guard (~3 s of a 5 s validate)
        return []
    from csforecast.data.profile import profile_source
    from csforecast.data.validate import Problem
    from csforecast.pipelines.champion import PromotionPolicy
    from csforecast.scoring.families import names
    from csforecast.tracking import store

    policy = PromotionPolicy.from_settings()
    profile, out = None, []
    for fam in names():
        try:
            champ = store.read_champion(fam)
        except store.RegistryError as e:
            return [Problem("warning", "source", None, "data_change", 0,
                            f"the champions' data could not be compared: {e}")]
        if champ is None or champ.profile is None:
            continue
        profile = profile or profile_source(src)
        for c in policy.data_changes(champ.profile, profile):
            out.append(Problem("warning", c.table, None, "data_change", 0,
                               f"since the {fam} champion v{champ.version} was trained: {c.message}; `csforecast train` "
                               "will not promote on this data (--accept-data-change overrides)"))
    return out


def features(data: str = DataOpt,
             as_of: str = typer.Option(..., "--as-of", help="As-of date (YYYY-MM-DD); features use rows before it."),
             out_file: Path = typer.Option(..., "--out", help="Parquet (or .csv) file to write."),
             labels: bool = typer.Option(True, "--labels/--no-labels", help="Include label_* columns."),
             engine: Optional[str] = EngineOpt):
    """Write one point-in-time feature snapshot (one row per active account)."""
    from csforecast.cli.train import print_usage_metrics
    from csforecast.features.snapshot import build_snapshots

    d = parse_date(as_of, "--as-of")
    src = open_valid(data, engine)
    print_usage_metrics(src)
    df = build_snapshots(src, [d], labels=labels)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + ".tmp")
    df.to_csv(tmp, index=False) if out_file.suffix == ".csv" else df.to_parquet(tmp, index=False)
    tmp.replace(out_file)
    console.print(f"wrote {len(df):,} accounts × {df.shape[1]} columns as of {d} to {out_file}")
