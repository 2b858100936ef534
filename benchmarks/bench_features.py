"""Features on DuckDB and on Spark: N accounts × 3 years of simulated usage → 36 monthly point-in-time snapshots.

  .venv/bin/python benchmarks/bench_features.py [--accounts 10000] [--master local[2]] [--no-spark]

The same `features.snapshot.build_snapshots` (the same Ibis expressions) on the in-process DuckDB engine
(the baseline; target < 60 s for 10,000 accounts) and on a Spark session (`--master`, default local[2]) reading
the same Parquet folder; the Spark snapshot is checked equal to DuckDB's. Spark's session start is timed
apart. The last line is ``features N accounts: duckdb X s; spark Y s; ratio R``.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from csforecast.data.sources import open_source, spark_session
from csforecast.features.snapshot import build_snapshots, monthly_grid
from csforecast.simulate import simulate_portfolio


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--no-spark", action="store_true")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    pf = simulate_portfolio(a.accounts, 3, seed=2)
    pf.write(tmp / "feat")
    n_usage = len(pf.tables["usage"])
    del pf
    grid = monthly_grid(date(2023, 10, 1), date(2026, 9, 1))
    t = time.perf_counter()
    duck = build_snapshots(open_source(tmp / "feat"), grid)
    duck_s = time.perf_counter() - t
    print(f"duckdb: {a.accounts:,} accounts × 3 years ({n_usage:,} usage rows) → {len(grid)} snapshots, "
          f"{len(duck):,} rows × {duck.shape[1]} columns in {duck_s:.1f} s (target < 60 s)")
    if a.no_spark:
        print(f"features {a.accounts} accounts: duckdb {duck_s:.1f} s")
        return
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    t = time.perf_counter()
    spark = spark_session(a.master, {"spark.sql.shuffle.partitions": "8"})
    start_s = time.perf_counter() - t
    t = time.perf_counter()
    got = build_snapshots(open_source(tmp / "feat", engine="spark", spark=spark), grid)
    spark_s = time.perf_counter() - t
    spark.stop()
    key = ["as_of", "account_id"]
    d, g = duck.sort_values(key, ignore_index=True), got.sort_values(key, ignore_index=True)
    num = [c for c in d.columns if c not in key and np.issubdtype(d[c].dtype, np.number)]
    same = len(d) == len(g) and all(np.allclose(d[c].astype(float), g[c].astype(float), rtol=1e-9, atol=1e-9,
                                                equal_nan=True) for c in num)
    print(f"spark {a.master}: session start {start_s:.1f} s; snapshots {spark_s:.1f} s; equal to duckdb: {same}")
    print(f"features {a.accounts} accounts: duckdb {duck_s:.1f} s; spark {spark_s:.1f} s; "
          f"ratio {spark_s / duck_s:.2f}")


if __name__ == "__main__":
    main()
