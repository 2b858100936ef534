"""`csforecast score`: score every active account with the champions and write a versioned score set."""
from __future__ import annotations

from datetime import date
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    from csforecast.cli import AsOfOpt, DataOpt, JsonOpt, _fail, _open_valid, _print_json, console, out

    @app.command()
    def score(data: str = DataOpt, as_of: Optional[str] = AsOfOpt, as_json: bool = JsonOpt):
        """Score every active account with the champion models; write the scores table atomically."""
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from csforecast.config import get_settings
        from csforecast.scoring.batch import run_scoring

        src = _open_valid(data)
        settings = get_settings()
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                      transient=True) as progress:
            progress.add_task("scoring accounts", total=None)
            try:
                res = run_scoring(src, settings.scores_db, date.fromisoformat(as_of) if as_of else None,
                                  settings.serve.pinned_versions)
            except (RuntimeError, ValueError) as e:
                _fail(str(e))
        if as_json:
            _print_json(res)
        else:
            out.print(f"score set v{res['version']}: {res['accounts']:,} accounts as of {res['as_of']} "
                      f"with models {res['models']} → {res['scores_db']}", markup=False)
