"""Churn benchmarks: train on 10,000 accounts' snapshots (< 60 s); score and explain 100,000 accounts (< 30 s).

  .venv/bin/python benchmarks/bench_churn.py [--accounts 10000]

Baselines measured in the same run: a single plain LightGBM fit (library defaults, 100 trees) on the same
rows, and predict_proba alone (no explanation) on the same 100,000 rows.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from csforecast.data.sources import open_source  # noqa: E402
from csforecast.models.churn import ChurnClassifier  # noqa: E402
from csforecast.pipelines.churn import DEFAULT_EXCLUDE, default_params  # noqa: E402
from csforecast.pipelines.context import TrainingContext  # noqa: E402
from csforecast.simulate import simulate_portfolio  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=10_000)
    a = ap.parse_args()
    d = Path(tempfile.mkdtemp()) / "sim"
    simulate_portfolio(a.accounts, 3, seed=5).write(d)
    ctx = TrainingContext.build(open_source(d))
    t = time.perf_counter()
    rows = ctx.decision_rows()
    snap_s = time.perf_counter() - t
    train, valid = ctx.split(rows)
    feats = [f for f in ctx.features(rows) if f not in DEFAULT_EXCLUDE]
    t = time.perf_counter()
    est = ChurnClassifier(**default_params(len(train))).fit(train[feats], train["label_churn"].astype(int),
                                                            sample_time=train["renewal_date"])
    fit_s = time.perf_counter() - t
    import lightgbm as lgb
    Xb = train[feats].copy()
    for c in Xb.columns[Xb.dtypes == object]:
        Xb[c] = Xb[c].astype("category")
    t = time.perf_counter()
    lgb.LGBMClassifier(verbose=-1, n_jobs=2).fit(Xb, train["label_churn"].astype(int))
    base_fit_s = time.perf_counter() - t
    big = pd.concat([valid[feats]] * int(np.ceil(100_000 / len(valid))), ignore_index=True).iloc[:100_000]
    t = time.perf_counter()
    est.predict_proba(big)
    pred_s = time.perf_counter() - t
    t = time.perf_counter()
    est.predict_proba(big)
    est.explain(big)
    expl_s = time.perf_counter() - t
    print(f"| benchmark | size | seconds | target | baseline | ratio |")
    print("|---|---|---|---|---|---|")
    print(f"| snapshots for training | {a.accounts:,} accounts × 3 years, {len(ctx.grid)} monthly as-of dates, "
          f"{len(rows):,} decision rows | {snap_s:.1f} | — | — | — |")
    print(f"| ChurnClassifier.fit ({est.chosen_}, {est.calibration_}) | {len(train):,} rows × {len(feats)} features "
          f"| {fit_s:.1f} | < 60 | plain LightGBM fit {base_fit_s:.1f} s | {fit_s / base_fit_s:.1f}× baseline |")
    print(f"| score + explain | 100,000 accounts | {expl_s:.1f} | < 30 | predict only {pred_s:.1f} s | "
          f"{expl_s / pred_s:.1f}× baseline |")


if __name__ == "__main__":
    main()
