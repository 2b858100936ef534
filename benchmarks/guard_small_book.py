"""Issue 18's promotion-guard figure: a small portfolio trained over a home whose champions came from a large one.

    python benchmarks/guard_small_book.py [--large 600] [--small 150] [--unseen 600] [--seed 7]

1. ``--large`` accounts x 3 years (seed S) are simulated and trained into a fresh home: v1 champions.
2. ``--small`` accounts x 3 years (seed S+1, another portfolio) are trained into the same home, first as is
   (the data-profile guard must block: accounts and rows lost), then with ``--accept-data-change`` (the paired
   bootstrap must still refuse a challenger its interval does not support).
3. Every registered churn version is scored on a third, unseen portfolio (``--unseen`` accounts, seed S+2):
   monthly decision rows in the 365 days before each renewal resolved in its last two years, beside the
   simulator's oracle. Brier to oracle = mean (p - p_oracle)^2; log loss against the outcomes; the share of rows
   served below 1e-3 or above 1 - 1e-3 (what an unbounded isotonic map did before the fix).

Prints the exit codes and messages of the two small trainings, the champion before and after, and a Markdown
table per churn version. Run on a quiet machine (~5 minutes).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np

CLI = [sys.executable, "-c", "import sys; sys.argv[0] = 'csforecast'; from csforecast.cli import app; app()"]


def run(args: list[str], env: dict, check: bool = True) -> subprocess.CompletedProcess:
    print(f"$ csforecast {' '.join(args)}", file=sys.stderr, flush=True)
    p = subprocess.run(CLI + args, env=env, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise SystemExit(f"csforecast {args[0]} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return p


def error_line(p: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    return lines[-1] if lines else (p.stderr.strip().splitlines() or [""])[-1]


def evaluate(home: Path, unseen: Path) -> list[dict]:
    os.environ.update({"CSFORECAST_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"})
    from mlflow import MlflowClient

    from csforecast.data.sources import open_source
    from csforecast.features.snapshot import build_snapshots, data_end, monthly_grid
    from csforecast.forecast.renewals import decision_rows
    from csforecast.metrics.calibration import brier_score as brier, clipped_log_loss as log_loss
    from csforecast.simulate.truth import Truth
    from csforecast.tracking import store

    src = open_source(unseen)
    end = data_end(src)
    snaps = build_snapshots(src, monthly_grid(end - timedelta(days=3 * 365), end))
    rows = decision_rows(snaps, end)
    rows = rows[rows["renewal_date"] >= rows["renewal_date"].max() - np.timedelta64(730, "D")]
    p_oracle = Truth.load(unseen / "truth").churn_probability(rows)
    ok = np.isfinite(p_oracle)
    rows, p_oracle = rows[ok], p_oracle[ok]
    y = rows["label_churn"].to_numpy(float)
    client = MlflowClient()
    name = store.model_name("churn")
    champion = client.get_model_version_by_alias(name, "champion").version
    out = []
    for mv in sorted(client.search_model_versions(f"name='{name}'"), key=lambda m: int(m.version)):
        est = store.load_estimator(f"models:/{name}/{mv.version}")
        p = est.predict_proba(rows[list(est.feature_names_in_)])[:, 1]
        out.append({"version": mv.version, "champion": mv.version == champion, "trained_on": mv.tags.get("data_accounts")
                    or mv.tags.get("data_hash", "")[:8], "rows": int(len(rows)),
                    "brier_to_oracle": float(np.mean((p - p_oracle) ** 2)), "log_loss": float(log_loss(y, p)),
                    "brier": float(brier(y, p)), "extreme_share": float(np.mean((p < 1e-3) | (p > 1 - 1e-3))),
                    "p_min": float(p.min()), "p_max": float(p.max())})
    out.append({"version": "oracle", "champion": False, "trained_on": "truth", "rows": int(len(rows)),
                "brier_to_oracle": 0.0, "log_loss": float(log_loss(y, p_oracle)), "brier": float(brier(y, p_oracle)),
                "extreme_share": float(np.mean((p_oracle < 1e-3) | (p_oracle > 1 - 1e-3))),
                "p_min": float(p_oracle.min()), "p_max": float(p_oracle.max())})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--large", type=int, default=600)
    ap.add_argument("--small", type=int, default=150)
    ap.add_argument("--unseen", type=int, default=600)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, help="keep the portfolios and the home here (default: a temp dir)")
    a = ap.parse_args()
    tmp = a.workdir or Path(tempfile.mkdtemp(prefix="guard_small_book_"))
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSFORECAST_", "MLFLOW_"))}
    env.update({"CSFORECAST_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
                "MLFLOW_DISABLE_TELEMETRY": "true"})
    books = {"large": (a.large, a.seed), "small": (a.small, a.seed + 1), "unseen": (a.unseen, a.seed + 2)}
    for name, (n, seed) in books.items():
        if not (tmp / name).exists():
            run(["simulate", "--out", str(tmp / name), "--accounts", str(n), "--years", "3", "--seed", str(seed),
                 "--quiet"], env)
    run(["train", "--data", str(tmp / "large"), "--quiet"], env)
    plain = run(["train", "--data", str(tmp / "small"), "--json", "--quiet"], env, check=False)
    accepted = run(["train", "--data", str(tmp / "small"), "--accept-data-change", "--json", "--quiet"], env,
                   check=False)
    print(f"\nlarge book {a.large} accounts (seed {a.seed}), small book {a.small} (seed {a.seed + 1}), unseen "
          f"{a.unseen} (seed {a.seed + 2})\n")
    print(f"small book, plain train: exit {plain.returncode}; {error_line(plain)}")
    decisions = {f: (r.get("decision"), r.get("guard")) for f, r in json.loads(accepted.stdout or "{}").items()
                 if isinstance(r, dict)}
    print(f"small book, --accept-data-change: exit {accepted.returncode}; decisions: "
          + "; ".join(f"{f}: {d}" for f, (d, _) in decisions.items()))
    for f, (_, g) in decisions.items():
        print(f"  {f} guard: {g}")
    print("\n| churn version | champion now | rows | Brier to oracle | log loss | Brier | served < 1e-3 or > 1-1e-3 "
          "| min p | max p |\n|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in evaluate(home, tmp / "unseen"):
        print(f"| {r['version']} | {'yes' if r['champion'] else 'no'} | {r['rows']} | {r['brier_to_oracle']:.4f} "
              f"| {r['log_loss']:.4f} | {r['brier']:.4f} | {r['extreme_share']:.3f} | {r['p_min']:.4f} "
              f"| {r['p_max']:.4f} |")


if __name__ == "__main__":
    main()
