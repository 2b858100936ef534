"""Reading a source as users export it: validation, then point-in-time snapshots, in one process.

  .venv/bin/python benchmarks/bench_reading.py FOLDER [--dates 12] [--engine spark]

Times `validate` (every rule, one pass) and `build_snapshots` on FOLDER's tables at DATES monthly dates ending at
the data end, and prints ``reading FOLDER: validate X s; snapshots Y s; rows R``. Run it with `farm-bench --vs`
against the same script on the commit before (PYTHONPATH=<that commit's src>) for the cost of a change to the
data layer (benchmarks/RESULTS.md). ``--engine spark`` reads on a local[2] Spark session (started before the clock
starts; SPARK_LOCAL_IP=127.0.0.1), where every query is a Spark job of ~0.3 s.
"""
from __future__ import annotations

import argparse
import time

import pandas as pd

from csforecast.data.sources import open_source
from csforecast.data.validate import validate
from csforecast.features.snapshot import build_snapshots, data_end


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--dates", type=int, default=12)
    ap.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb")
    a = ap.parse_args()
    spark = None
    if a.engine == "spark":
        from csforecast.data.sources import spark_session

        spark = spark_session("local[2]", {"spark.sql.shuffle.partitions": "4"})
    src = open_source(a.folder, engine=a.engine, spark=spark)
    t = time.perf_counter()
    report = validate(src)
    v = time.perf_counter() - t
    assert report.ok, [str(e) for e in report.errors][:3]
    end = pd.Timestamp(data_end(src))
    grid = [(end - pd.DateOffset(months=m)).date() for m in range(a.dates)][::-1]
    t = time.perf_counter()
    snaps = build_snapshots(src, grid)
    s = time.perf_counter() - t
    print(f"reading {a.folder} on {a.engine}: validate {v:.2f} s; snapshots {s:.2f} s; rows {len(snaps)}")


if __name__ == "__main__":
    main()
