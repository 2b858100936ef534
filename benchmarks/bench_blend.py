"""The blend of the churn model with CSM calls on simulated portfolios, several seeds: validation log loss and
AUC of the model alone, the calls alone and the blend beside the oracle's, and how well the per-CSM biases
recover the simulator's optimistic and pessimistic CSMs.

    python benchmarks/bench_blend.py train-7.json train-3.json ...   # `csforecast train --json` outputs
    python benchmarks/bench_blend.py --seeds 7 3 11 --accounts 3000 --years 3 --work /tmp/blend

Ratios are against the best single source (model or calls) of the same run."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


def _load(path: Path) -> dict:
    text = path.read_text()
    return json.loads(text[text.index("{"):])


def _train(seed: int, accounts: int, years: int, work: Path) -> Path:
    data, home, out = work / f"sim-{seed}", work / f"home-{seed}", work / f"train-{seed}.json"
    if out.exists():
        return out
    env = {**os.environ, "CSFORECAST_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    cli = [sys.executable, "-m", "csforecast.cli"]
    if not (data / "accounts.parquet").exists():
        subprocess.run(cli + ["simulate", "--out", str(data), "--accounts", str(accounts), "--years", str(years),
                              "--seed", str(seed)], env=env, check=True, capture_output=True)
    home.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(cli + ["train", "--data", str(data), "--json", "--quiet"], env=env, check=True,
                         capture_output=True, text=True)
    out.write_text(res.stdout)
    return out


def row(name: str, doc: dict) -> str:
    b = doc["blend"]
    m, o, d = b["metrics"], b["oracle"] or {}, b["detail"]
    best = min(m["log_loss_model"], m["log_loss_csm"])
    rec = d.get("csm_recovery") or {}
    return (f"| {name} | {m['n_calls']} | {m['log_loss_model']:.4f} | {m['log_loss_csm']:.4f} | "
            f"**{m['log_loss_blend']:.4f}** | {o.get('log_loss', float('nan')):.4f} | {m['log_loss_blend'] / best:.3f} | "
            f"{m['auc_model']:.3f} / {m['auc_csm']:.3f} / {m['auc_blend']:.3f} ({o.get('auc', float('nan')):.3f}) | "
            f"{m['ece_blend']:.4f} | {len(d['csm_calibration'])} | {rec.get('spearman_bias_vs_pessimism')} | "
            f"{rec.get('sign_agreement_clear')} of {rec.get('clear_csms')} | {rec.get('clear_csms_interval_excludes_0')} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--seeds", nargs="*", type=int, default=[])
    ap.add_argument("--accounts", type=int, default=3000)
    ap.add_argument("--years", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_blend"))
    a = ap.parse_args()
    docs = [(f.name, _load(f)) for f in a.files]
    for s in a.seeds:
        docs.append((f"seed {s}", _load(_train(s, a.accounts, a.years, a.work))))
    print("| run | n_calls | log loss model | calls | blend | oracle | blend ÷ best single | AUC model / calls / "
          "blend (oracle) | ECE blend | CSMs | Spearman(bias, −optimism) | sign right (abs optimism ≥ 0.5) | "
          "intervals excluding 0 |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|")
    for name, doc in docs:
        print(row(name, doc))


if __name__ == "__main__":
    main()
