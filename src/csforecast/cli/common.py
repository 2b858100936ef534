"""What every command shares: the two consoles, the common options, and the ways a command fails or prints.

Human messages, progress and errors go to stderr (`console`); results go to stdout (`out`, or one JSON
document with `print_json`), so ``--json`` output can be piped.
"""
from __future__ import annotations

import json
import sys
from datetime import date
from typing import NoReturn, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from csforecast.errors import CsforecastError, exit_code

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

DataOpt = typer.Option(..., "--data", help="Folder of CSV/Parquet tables, a .duckdb file or a database URL.")
AsOfOpt = typer.Option(None, "--as-of", help="As-of date (YYYY-MM-DD). Default: the day after the data ends.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout.")
EngineOpt = typer.Option(None, "--engine", help="Where to compute: duckdb (in process) or spark. Default: the "
                                               "`engine` setting (duckdb).")


def print_json(obj) -> None:
    """``obj`` as one indented JSON document on stdout (values JSON cannot hold as their str)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit with ``code``."""
    console.print(f"error: {message}", style="red", markup=False, highlight=False)
    raise typer.Exit(code)


class CommandGroup(TyperGroup):
    """The app's command group: an error csforecast raises on purpose (:class:`CsforecastError`) that a command
    did not handle ends as one ``error: …`` line and its exit code (errors.exit_code), never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CsforecastError as e:
            console.print(f"error: {e.user_message}", style="red", markup=False, highlight=False)
            raise typer.Exit(exit_code(e)) from None


def parse_date(value: Optional[str], name: str) -> Optional[date]:
    """The date of a YYYY-MM-DD option value (None stays None); fails naming the option otherwise."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{name} must be a date YYYY-MM-DD, not {value!r}")


def wide(console: Console) -> Console:
    """Tables are wide: when stdout is not a terminal (a pipe, a file) print them 160 columns wide instead of
    squeezing them into rich's default 80."""
    if console.is_terminal:
        return console
    return Console(soft_wrap=True, width=160)


def open_data(data: str, engine: Optional[str] = None):
    """Open a source on `engine` (default: the `engine` setting; a spark:// URL is always Spark), the Spark
    session built from the `[spark]` settings; exit 2 with one error line when it cannot be opened."""
    from csforecast.config import get_settings
    from csforecast.data.sources import ENGINES, SPARK_SCHEME, SourceError, open_source, spark_session

    settings = get_settings()
    engine = (engine or settings.engine).lower()
    if engine not in ENGINES:
        fail(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if str(data).lower().startswith(f"{SPARK_SCHEME}://"):
        engine = "spark"
    try:
        spark = None
        if engine == "spark":
            sp = settings.spark
            spark = spark_session(sp.master, sp.config, sp.app_name)
        return open_source(data, settings.column_map, engine=engine, spark=spark)
    except SourceError as e:
        fail(str(e))


def open_valid(data: str, engine: Optional[str] = None):
    """Open (on `engine`, see `open_data`) and validate a source; exit 2 (writing nothing) when it has errors."""
    from csforecast.data.sources import redact
    from csforecast.data.validate import validate

    src = open_data(data, engine)
    report = validate(src)  # dates after today are errors; as-of cuts are the commands' own business
    shown = redact(data)
    if not report.ok:
        for p in report.errors:
            console.print(str(p), style="red", markup=False, highlight=False)
        fail(f"{len(report.errors)} data error(s) in {shown}; nothing was written "
             f"(run `csforecast validate --data {shown}` for the full report)")
    for p in report.warnings:  # e.g. an optional table missing or empty, and what goes without it
        console.print(str(p), style="yellow", markup=False, highlight=False)
    return src
