"""Churn calibration level: the ChurnClassifier as `csforecast train` fits it, with and without the level
shrinkage (docs/churn.md, "Level"), beside the simulator's oracle on the same validation decisions.

    python benchmarks/bench_churn_level.py --seeds 3 7 11 5 13 --accounts 3000 --years 3

One fit per seed (the shrinkage changes neither the model nor its map, only one log-odds offset after it, so
"before" is the same fit with the offset set to 0). Prints, per seed: the chosen candidate and calibration,
AUC beside the oracle's, ECE / Brier / log loss before → after beside the oracle's, the root mean square
distance of the served probabilities to the oracle's (free of the validation period's own luck), the mean
probability beside the churned share and the oracle's mean, and the weight kept on the slice's own level."""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from csforecast.data.sources import open_source  # noqa: E402
from csforecast.features.catalogue import DEFAULT_EXCLUDE  # noqa: E402
from csforecast.metrics.calibration import classification_metrics  # noqa: E402
from csforecast.models.churn import ChurnClassifier  # noqa: E402
from csforecast.pipelines.churn import default_params  # noqa: E402
from csforecast.pipelines.context import TrainingContext  # noqa: E402
from csforecast.simulate import simulate_portfolio  # noqa: E402
from csforecast.simulate.truth import oracle_for  # noqa: E402


def one_seed(seed: int, accounts: int, years: int, work: Path) -> str:
    d = work / f"sim-{seed}"
    simulate_portfolio(accounts, years, seed=seed).write(d)
    src = open_source(d)
    ctx = TrainingContext.build(src, oracle=oracle_for(src))
    rows = ctx.decision_rows()
    train, valid = ctx.split(rows)
    feats = [f for f in ctx.features(rows) if f not in DEFAULT_EXCLUDE]
    t0 = time.perf_counter()
    est = ChurnClassifier(**default_params(len(train))).fit(train[feats], train["label_churn"].astype(int),
                                                            sample_time=train["renewal_date"])
    fit_s = time.perf_counter() - t0
    y = valid["label_churn"].astype(int).to_numpy()
    p_after = est.predict_proba(valid[feats])[:, 1]
    offset, est.level_offset_ = est.level_offset_, 0.0
    p_before = est.predict_proba(valid[feats])[:, 1]
    after, before = classification_metrics(y, p_after), classification_metrics(y, p_before)
    est.level_offset_ = offset
    po = ctx.oracle.churn_probability(valid)
    ok = po == po
    o = classification_metrics(y[ok], po[ok])
    # distance to the truth: free of the validation period's own sampling luck
    rmse = [float(np.sqrt(np.mean((q[ok] - po[ok]) ** 2))) for q in (p_before, p_after)]
    w = est.level_detail_.get("weight", float("nan"))
    return (f"| {seed} | {est.chosen_} / {est.calibration_} | {after['auc']:.4f} | {o['auc']:.4f} | "
            f"{o['auc'] - after['auc']:.4f} | {before['ece']:.4f} → {after['ece']:.4f} | {o['ece']:.4f} | "
            f"{before['brier']:.4f} → {after['brier']:.4f} | {o['brier']:.4f} | "
            f"{before['log_loss']:.4f} → {after['log_loss']:.4f} | {rmse[0]:.4f} → {rmse[1]:.4f} | "
            f"{p_before.mean():.4f} → {p_after.mean():.4f} | "
            f"{y.mean():.4f} | {po[ok].mean():.4f} | {w:.2f} | {fit_s:.0f} s |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 7, 11, 5, 13])
    ap.add_argument("--accounts", type=int, default=3000)
    ap.add_argument("--years", type=int, default=3)
    a = ap.parse_args()
    print("| seed | chosen / calibration | AUC | oracle AUC | gap | ECE before → after | oracle ECE | "
          "Brier before → after | oracle Brier | log loss before → after | RMSE to the oracle's p before → after | "
          "mean p before → after | churned | oracle mean p | w (slice kept) | fit |")
    print("|---|---|---:|---:|---:|---|---:|---|---:|---|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for seed in a.seeds:
            print(one_seed(seed, a.accounts, a.years, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
