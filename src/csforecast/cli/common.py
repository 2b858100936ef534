"""What every command shares: the two consoles, the common options, and the ways a command fails or prints.

Human messages, progress and errors go to stderr (`console`); results go to stdout (`out`, or one JSON
document with `print_json`), so ``--json`` output can be piped.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import NoReturn, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from csforecast.errors import CsforecastError, exit_code, storage_error

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

DataOpt = typer.Option(..., "--data", help="Folder of CSV/Parquet/Excel tables, an Excel workbook with a sheet per "
                       "table, a .duckdb file or a database URL.")
AsOfOpt = typer.Option(None, "--as-of", help="As-of date (YYYY-MM-DD). Default: the day after the data ends.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress display (results and errors still print).")
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

    from csforecast.config import get_settings

    src = open_data(data, engine)
    # dates after today are errors; as-of cuts are the commands' own business. Unchanged data is not validated
    # twice on the same day (the report is kept by content hash).
    report = validate(src, cache_dir=get_settings().home / "cache" / "validation")
    shown = redact(data)
    if not report.ok:
        for p in report.errors:
            console.print(str(p), style="red", markup=False, highlight=False)
        fail(f"{len(report.errors)} data error(s) in {shown}; nothing was written "
             f"(run `csforecast validate --data {shown}` for the full report)")
    for p in report.warnings:  # e.g. an optional table missing or empty, and what goes without it
        console.print(str(p), style="yellow", markup=False, highlight=False)
    return src


# ------------------------------------------------------------------------------------------ progress
Tell = Callable[..., None]   # tell(message) or tell(message, done, total)


@contextlib.contextmanager
def progress(title: str, quiet: bool = False) -> Iterator[Tell]:
    """The progress display of a long command, as a callback for the functions it calls (their
    ``progress=`` argument): ``tell("training churn")`` or ``tell("scoring", done, total)``.

    On a terminal: a rich display (spinner, the current step, a bar with counts when given, the elapsed time)
    that disappears at the end. Not a terminal (a pipe, a log file, CI): one plain line per step on stderr,
    ``[ 12.3 s] step``. ``quiet``: nothing."""
    if quiet:
        yield lambda *_a, **_k: None
        return
    t0 = time.perf_counter()
    if not console.is_terminal:
        last: list[str] = []

        def line(message: str, done: int | None = None, total: int | None = None) -> None:
            text = f"{title}: {message}" + (f" ({done:,}/{total:,})" if total else "")
            if last and last[0] == text:
                return
            last[:] = [text]
            console.print(f"[{time.perf_counter() - t0:6.1f} s] {text}", markup=False, highlight=False)

        yield line
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("[bold]{task.fields[title]}[/]: {task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None, title=title)

        def update(message: str, done: int | None = None, total: int | None = None) -> None:
            bar.update(task, description=message, completed=done or 0, total=total)

        yield update


# ------------------------------------------------------------------------------ library logs and warnings
LOG_FILE = "csforecast.log"
QUIET_LOGGERS = ("mlflow", "alembic", "py4j", "urllib3", "git", "numexpr", "lightgbm")


class _LibraryLogFile(logging.FileHandler):
    """The library log file, opened on the first record. A home that turns out read-only or full loses the
    library's log lines, never the command: FileHandler opens its file outside its own error handling."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            super().emit(record)
        except Exception:  # noqa: BLE001 - losing a library's INFO line is better than failing the command
            pass

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def route_library_output(home: Path | None = None) -> Path | None:
    """Keep what libraries log (MLflow's INFO lines, alembic's migrations, Spark's py4j chatter) and the warnings
    they raise out of the user's console: into CSFORECAST_HOME/csforecast.log instead. csforecast's own
    warnings still print. Returns the log file (None when it cannot be opened: then nothing is rerouted)."""
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")   # MLflow's own stderr handler
    if home is None:
        from csforecast.config import get_settings

        try:
            home = get_settings().home
        except Exception:  # noqa: BLE001 - a broken setting is reported by the command itself
            return None
    path = Path(home) / LOG_FILE
    try:
        handler = _LibraryLogFile(path, encoding="utf-8", delay=True)
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in QUIET_LOGGERS:
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                lg.removeHandler(h)
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        lg.propagate = False
    warn_log = logging.getLogger("csforecast.warnings")
    warn_log.addHandler(handler)
    warn_log.propagate = False
    shown = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if "csforecast" in str(filename).replace("\\", "/").split("/site-packages/")[-1].split("/"):
            shown(message, category, filename, lineno, file, line)
        else:
            warn_log.warning("%s:%s: %s: %s", filename, lineno, category.__name__, message)

    warnings.showwarning = showwarning
    return path


def oracle_of(src):
    """The simulator's oracle when ``src`` has a truth/ folder, else None (``simulate.truth.oracle_for``). Imported
    on use: the simulator and scipy.stats cost seconds at start-up, which every other command would pay."""
    from csforecast.simulate.truth import oracle_for

    return oracle_for(src)
