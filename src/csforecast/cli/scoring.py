"""`csforecast score`: score every active account with the champions and write a versioned score set
(in process, or on Spark with `--engine spark`: Parquet written by the executors, then loaded into the store)."""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Optional

import typer

from csforecast.cli.common import (AsOfOpt, DataOpt, EngineOpt, JsonOpt, QuietOpt, fail, open_valid, out,
                                   parse_date, print_json, progress)


def run_score(src, as_of: Optional[date], quiet: bool = False, forecasts: bool = True) -> dict:
    """Score ``src`` with the champion (or pinned) models into the scores store, with a progress display; the
    new score set's summary. Fails (exit 2) when there is nothing to score with or nothing to score, and
    (a `StorageError`, exit 1, before any scoring) when the store is damaged or cannot be written."""
    from csforecast.config import get_settings
    from csforecast.scoring.batch import run_scoring
    from csforecast.scoring.store import check_store

    settings = get_settings()
    check_store(settings.scores_db)   # a damaged, read-only or full store fails now, not after the scoring
    with progress("score", quiet) as tell:
        try:
            return run_scoring(src, settings.scores_db, as_of, settings.serve.pinned_versions, progress=tell,
                               forecasts=forecasts)
        except (RuntimeError, ValueError) as e:
            fail(str(e))


def run_score_spark(src, as_of: Optional[date], out_dir: Optional[Path], store: bool, quiet: bool = False) -> dict:
    """Score on Spark into the Parquet folder ``out_dir`` (default CSFORECAST_HOME/spark_scores/AS_OF), then
    (``store``) load it into the scores store as a new score set."""
    from csforecast.config import get_settings
    from csforecast.features.snapshot import data_end
    from csforecast.scoring.batch import load_champions, monitoring_reference
    from csforecast.scoring.spark import load_into_store, score_on_spark

    settings = get_settings()
    with progress("score (spark)", quiet) as tell:
        try:
            tell("loading the champion models")
            champs = load_champions(settings.serve.pinned_versions)
            day = as_of or data_end(src)
            folder = out_dir or settings.home / "spark_scores" / day.isoformat()
            res = score_on_spark(src, champs, folder, day, batch_rows=settings.spark.batch_rows, progress=tell)
            if store:
                tell(f"loading {res['accounts']:,} scored accounts into the scores store")
                res = {**load_into_store(folder, settings.scores_db, src, monitoring_reference(champs), settings),
                       "spark_scores": str(folder)}
            return res
        except (RuntimeError, ValueError) as e:
            fail(str(e))


def print_score(res: dict) -> None:
    """The one-line summary of a new score set (or of Spark scores written without a store)."""
    if "version" not in res:
        out.print(f"{res['accounts']:,} accounts as of {res['as_of']} with models {res['models']} → {res['out']} "
                  "(Parquet; not loaded into the scores store)", markup=False)
        return
    where = f" (Parquet: {res['spark_scores']})" if res.get("spark_scores") else ""
    out.print(f"score set v{res['version']}: {res['accounts']:,} accounts as of {res['as_of']} "
              f"with models {res['models']} → {res['scores_db']}{where}", markup=False)


def score(data: str = DataOpt, as_of: Optional[str] = AsOfOpt, as_json: bool = JsonOpt,
          engine: Optional[str] = EngineOpt,
          out_dir: Optional[Path] = typer.Option(None, "--out", help="Spark only: the Parquet folder to write "
                                                 "(default CSFORECAST_HOME/spark_scores/AS_OF)."),
          store: bool = typer.Option(True, "--store/--no-store", help="Spark only: load the Parquet scores into "
                                     "the scores store as a new score set (default) or only write them."),
          forecasts: bool = typer.Option(True, "--forecasts/--no-forecasts", help="Then precompute the renewal "
                                         "forecasts of the next 4 quarters for the server (kept under "
                                         "CSFORECAST_HOME/cache)."),
          quiet: bool = QuietOpt):
    """Score every active account with the champion models; write the scores table atomically."""
    day = parse_date(as_of, "--as-of")
    if store:
        # a damaged, read-only or full store fails now, before the data is read and validated
        from csforecast.config import get_settings
        from csforecast.scoring.store import check_store

        check_store(get_settings().scores_db)
    src = open_valid(data, engine)
    if src.engine == "spark":
        res = run_score_spark(src, day, out_dir, store, quiet)
    else:
        if out_dir is not None or not store:
            fail("--out and --no-store apply to --engine spark only")
        res = run_score(src, day, quiet, forecasts)
    if as_json:
        print_json(res)
    else:
        print_score(res)
