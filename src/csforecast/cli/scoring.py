"""`csforecast score`: score every active account with the champions and write a versioned score set."""
from __future__ import annotations

from datetime import date
from typing import Optional

from csforecast.cli.common import AsOfOpt, DataOpt, JsonOpt, console, fail, open_valid, out, parse_date, print_json


def run_score(src, as_of: Optional[date]) -> dict:
    """Score ``src`` with the champion (or pinned) models into the scores store, with a progress display; the
    new score set's summary. Fails (exit 2) when there is nothing to score with or nothing to score, and
    (a `StorageError`, exit 1, before any scoring) when the store is damaged or cannot be written."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from csforecast.config import get_settings
    from csforecast.scoring.batch import run_scoring
    from csforecast.scoring.store import check_store

    settings = get_settings()
    check_store(settings.scores_db)   # a damaged, read-only or full store fails now, not after the scoring
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        progress.add_task("scoring accounts", total=None)
        try:
            return run_scoring(src, settings.scores_db, as_of, settings.serve.pinned_versions)
        except (RuntimeError, ValueError) as e:
            fail(str(e))


def print_score(res: dict) -> None:
    """The one-line summary of a new score set."""
    out.print(f"score set v{res['version']}: {res['accounts']:,} accounts as of {res['as_of']} "
              f"with models {res['models']} → {res['scores_db']}", markup=False)


def score(data: str = DataOpt, as_of: Optional[str] = AsOfOpt, as_json: bool = JsonOpt):
    """Score every active account with the champion models; write the scores table atomically."""
    day = parse_date(as_of, "--as-of")
    src = open_valid(data)
    res = run_score(src, day)
    if as_json:
        print_json(res)
    else:
        print_score(res)
