"""Foundation benchmarks: simulator and point-in-time feature snapshots.

  .venv/bin/python benchmarks/bench_foundation.py [--accounts 5000] [--feature-accounts 10000]

Prints seconds against the targets (simulate 5,000 accounts × 3 years < 60 s; 10,000 accounts × 3 years →
36 monthly snapshots < 60 s on DuckDB) and, as a baseline measured in the same run, a straightforward
pandas computation of only the trailing 30/90-day usage means for the same snapshots (a small part of what
the Ibis builder computes).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd

from csforecast.data.sources import open_source
from csforecast.features.snapshot import build_snapshots, monthly_grid
from csforecast.simulate import simulate_portfolio


def pandas_baseline(folder: Path, grid) -> float:
    t = time.perf_counter()
    u = pd.read_parquet(folder / "usage.parquet")
    u["date"] = pd.to_datetime(u["date"])
    for d in grid:
        d = pd.Timestamp(d)
        w = u[(u.date < d) & (u.date >= d - pd.Timedelta(days=90))]
        age = (d - w.date).dt.days
        w.assign(v30=w.value.where(age <= 30, 0.0)).groupby(["account_id", "metric"]).agg(
            v30=("v30", "sum"), v90=("value", "sum"))
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=5000)
    ap.add_argument("--feature-accounts", type=int, default=10000)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    t = time.perf_counter()
    pf = simulate_portfolio(a.accounts, 3, seed=1)
    pf.write(tmp / "sim")
    sim_s = time.perf_counter() - t
    rows = len(pf.tables["usage"])
    del pf
    pf = simulate_portfolio(a.feature_accounts, 3, seed=2)
    pf.write(tmp / "feat")
    n_usage = len(pf.tables["usage"])
    del pf
    src = open_source(tmp / "feat")
    grid = monthly_grid(date(2023, 10, 1), date(2026, 9, 1))
    t = time.perf_counter()
    snaps = build_snapshots(src, grid)
    feat_s = time.perf_counter() - t
    base_s = pandas_baseline(tmp / "feat", grid)
    print("| benchmark | size | seconds | target | baseline (pandas 30/90-day means only) | ratio |")
    print("|---|---|---|---|---|---|")
    print(f"| simulate + write | {a.accounts:,} accounts × 3 years ({rows:,} usage rows) | {sim_s:.1f} | < 60 | — | "
          f"{sim_s / 60:.2f} of budget |")
    print(f"| features (Ibis/DuckDB) | {a.feature_accounts:,} accounts × 3 years ({n_usage:,} usage rows) → "
          f"{len(grid)} snapshots, {len(snaps):,} rows × {snaps.shape[1]} cols | {feat_s:.1f} | < 60 | {base_s:.1f} | "
          f"{base_s / feat_s:.2f}× faster than baseline |")


if __name__ == "__main__":
    main()
