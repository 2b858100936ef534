"""What every command shares: the two consoles, the common options, and the ways a command fails or prints.

Human messages, progress and errors go to stderr (`console`); results go to stdout (`out`, or one JSON
document with `print_json`), so ``--json`` output can be piped.
"""
from __future__ import annotations

import json
import logging
import sys
from datetime import date
from typing import NoReturn, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from csforecast.errors import CsforecastError, exit_code, storage_error

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

DataOpt = typer.Option(..., "--data", help="Folder of CSV/Parquet tables, a .duckdb file or a database URL.")
AsOfOpt = typer.Option(None, "--as-of", help="As-of date (YYYY-MM-DD). Default: the day after the data ends.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout.")


def print_json(obj) -> None:
    """``obj`` as one indented JSON document on stdout (values JSON cannot hold as their str)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit with ``code``."""
    console.print(f"error: {message}", style="red", markup=False, highlight=False)
    raise typer.Exit(code)


class CommandGroup(TyperGroup):
    """The app's command group: an error csforecast raises on purpose (:class:`CsforecastError`) that a command
    did not handle ends as one ``error: …`` line and its exit code (errors.exit_code), never a traceback; so
    does a disk or permission fault raised from a library (MLflow's SQLite store, DuckDB, the OS): a full
    disk, a read-only file system, no permission (`errors.storage_error`, naming the path and the cause)."""

    def invoke(self, ctx):
        # MLflow logs every database error with its traceback before raising it; the error itself still
        # reaches this handler (one line) or, when it is not ours to explain, Python's own traceback
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
        try:
            return super().invoke(ctx)
        except CsforecastError as e:
            console.print(f"error: {e.user_message}", style="red", markup=False, highlight=False)
            raise typer.Exit(exit_code(e)) from None
        except Exception as e:
            fault = storage_error(e, _home())
            if fault is None:
                raise
            console.print(f"error: {fault.user_message}", style="red", markup=False, highlight=False)
            raise typer.Exit(exit_code(fault)) from None


def _home() -> str:
    """CSFORECAST_HOME, to name where a disk fault happened when the fault does not name its file."""
    from csforecast.config import get_settings

    try:
        return f"under {get_settings().home}"
    except Exception:  # noqa: BLE001 - settings that cannot be read: the message still gives the cause
        return "under CSFORECAST_HOME"


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


def open_valid(data: str):
    """Open and validate a source; exit 2 (writing nothing) when it has errors."""
    from csforecast.config import get_settings
    from csforecast.data.sources import SourceError, open_source, redact
    from csforecast.data.validate import validate

    try:
        src = open_source(data, get_settings().column_map)
    except SourceError as e:
        fail(str(e))
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
