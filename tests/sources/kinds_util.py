"""Helpers of the source-kind tests: a simulated portfolio's tables, written into other kinds of source."""
from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd


def portfolio_tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}


def write_duckdb(path: Path, folder: Path) -> Path:
    con = duckdb.connect(str(path))
    for p in sorted(folder.glob("*.parquet")):
        con.execute(f"CREATE TABLE {p.stem} AS SELECT * FROM read_parquet('{p}')")
    con.close()
    return path
