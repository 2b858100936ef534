"""Reading a source as users export it: validation, then point-in-time snapshots, in one process.

  .venv/bin/python benchmarks/bench_reading.py FOLDER [--dates 12]

Times `validate` (every rule, one pass) and `build_snapshots` on FOLDER's tables at DATES monthly dates ending at
the data end, and prints ``reading FOLDER: validate X s; snapshots Y s; rows R``. Run it with `farm-bench --vs`
against the same script on the commit before (PYTHONPATH=<that commit's src>) for the cost of a change to the
data layer (benchmarks/RESULTS.md).
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
    a = ap.parse_args()
    src = open_source(a.folder)
    t = time.perf_counter()
    report = validate(src)
    v = time.perf_counter() - t
    assert report.ok, [str(e) for e in report.errors][:3]
    end = pd.Timestamp(data_end(src))
    grid = [(end - pd.DateOffset(months=m)).date() for m in range(a.dates)][::-1]
    t = time.perf_counter()
    snaps = build_snapshots(src, grid)
    s = time.perf_counter() - t
    print(f"reading {a.folder}: validate {v:.2f} s; snapshots {s:.2f} s; rows {len(snaps)}")


if __name__ == "__main__":
    main()
