"""Issue 17 figures on simulated portfolios, beside the simulator's truth.

    python benchmarks/bench_voc.py [--accounts 1000] [--years 3] [--seeds 7 3 11]

Per seed: NPS over the last 365 days with its 90 % interval beside the NPS of every invited contact (truth),
coverage beside the coverage the response design implies (1 - prod(1 - p_respond) over each active
account's CES invitations, NPS invitations answering at 45 %); churn-reason shares as reported beside the
simulator's true reasons; the pipeline back-test WAPE of the default and the learned stage weights, with the
learned probabilities beside the true average P(won | reached stage); and the seconds each analysis took.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from csforecast.config import get_settings
from csforecast.data.sources import open_source
from csforecast.features.snapshot import data_end
from csforecast.forecast.pipeline import pipeline_report
from csforecast.metrics.reasons import reasons_report
from csforecast.metrics.voc import active_accounts, voc_report
from csforecast.simulate import simulate_portfolio


def one(seed: int, accounts: int, years: int, tmp: Path) -> dict:
    d = tmp / f"sim-{seed}"
    simulate_portfolio(accounts, years, seed=seed).write(d)
    src = open_source(d)
    de = data_end(src)
    asof = pd.Timestamp(de)
    st = get_settings()
    t0 = time.perf_counter()
    v = voc_report(src.frame("surveys"), src.frame("accounts"), src.frame("contracts"), de, 365)
    t_voc = time.perf_counter() - t0
    inv = pd.read_parquet(d / "truth" / "voc_invitations.parquet")
    inv = inv[(inv.invited_at < asof) & (inv.invited_at >= asof - pd.Timedelta(days=365))]
    nps_inv = inv[inv.kind == "nps"]
    truth_nps = 100 * (nps_inv.p_promoter - nps_inv.p_detractor).mean()
    # expected coverage: P(at least one answer) per active account from its invitations (NPS at 45 %)
    act = active_accounts(src.frame("contracts"), de).index.astype(str)
    p = np.where(inv.kind == "nps", 0.45, inv.p_respond.fillna(0.0))
    miss = pd.Series(np.log1p(-np.clip(p, 0, 1 - 1e-12)), index=inv.account_id).groupby(level=0).sum()
    csat = src.frame("surveys")
    csat = csat[(csat.kind == "csat") & (csat.responded_at < asof) & (csat.responded_at >= asof - pd.Timedelta(days=365))]
    p_any = 1 - np.exp(miss.reindex(act).fillna(0.0))
    p_any[np.isin(act, csat.account_id.astype(str).unique())] = 1.0   # CSAT answers (no invitation truth) count as seen
    expected_cov = float(np.mean(p_any))
    t0 = time.perf_counter()
    r = reasons_report(src.frame("contracts"), src.frame("accounts"), de, avoidable=st.churn_reasons.avoidable,
                       unavoidable=st.churn_reasons.unavoidable)
    t_reasons = time.perf_counter() - t0
    ren = pd.read_parquet(d / "truth" / "renewals.parquet")
    churned = ren[ren.churned]
    true_share = churned.reason.value_counts(normalize=True)
    rep_share = {x["reason"]: x["logo_share"] for x in r["reasons"]}
    t0 = time.perf_counter()
    pr = pipeline_report(src.frame("opportunities"), src.frame("opportunity_history"), de,
                         stage_probabilities=st.pipeline.stage_probabilities, backtest_quarters=6)
    t_pipe = time.perf_counter() - t0
    # the true P(won | reached stage s): the product of the advance probabilities from s on, at each closed
    # opportunity's health (simulator constants), averaged over the closed opportunities that reached s
    from csforecast.simulate.portfolio import PIPELINE_ADVANCE
    return {"seed": seed, "nps": v["nps"], "nps_ci": v["nps_ci"], "truth_nps": truth_nps,
            "n_nps": v["n_responses"]["nps"], "coverage": v["response_coverage"]["accounts"],
            "expected_coverage": expected_cov, "coverage_arr": v["response_coverage"]["arr"],
            "reasons": {k: (rep_share.get(k, 0.0), float(true_share.get(k, 0.0)))
                        for k in sorted(set(rep_share) | set(true_share.index))},
            "avoidable": (r["avoidable_logo_share"], float((~churned.unavoidable).mean())),
            "unknown": r["unknown_logos"], "churned": r["logos"],
            "stages": {s: (x["default"], x["learned"], x["ci_low"], x["ci_high"], x["n"])
                       for s, x in pr["stage_probabilities"].items()},
            "advance_base": PIPELINE_ADVANCE,
            "wape_default": pr["calibration"].get("wape_default"), "wape_learned": pr["calibration"].get("wape_learned"),
            "brier_default": pr["calibration"].get("brier_default"),
            "brier_learned": pr["calibration"].get("brier_learned"),
            "seconds": {"voc": t_voc, "reasons": t_reasons, "pipeline": t_pipe}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=1000)
    ap.add_argument("--years", type=int, default=3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 3, 11])
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [one(s, a.accounts, a.years, Path(tmp)) for s in a.seeds]
    print(f"{a.accounts} accounts x {a.years} years")
    print("| seed | NPS (90 % interval) | truth NPS | covered | NPS responses | coverage (accounts) | expected "
          "coverage | coverage (ARR) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        lo, hi = r["nps_ci"]
        print(f"| {r['seed']} | {r['nps']:.1f} ({lo:.1f} to {hi:.1f}) | {r['truth_nps']:.1f} | "
              f"{'yes' if lo <= r['truth_nps'] <= hi else 'no'} | {r['n_nps']:,} | {r['coverage']:.3f} | "
              f"{r['expected_coverage']:.3f} | {r['coverage_arr']:.3f} |")
    print("\n| seed | reason | reported share | true share |")
    print("|---|---|---|---|")
    for r in rows:
        for k, (rep, tru) in r["reasons"].items():
            print(f"| {r['seed']} | {k} | {rep:.3f} | {tru:.3f} |")
        print(f"| {r['seed']} | avoidable (of all churned, {r['churned']} logos, {r['unknown']} unknown) | "
              f"{r['avoidable'][0]:.3f} | {r['avoidable'][1]:.3f} |")
    print("\n| seed | stage | default | learned (90 % interval, n) |")
    print("|---|---|---|---|")
    for r in rows:
        for s, (dft, lr, lo, hi, n) in r["stages"].items():
            if s in ("signed", "lost"):
                continue
            print(f"| {r['seed']} | {s} | {dft:.2f} | {lr:.3f} ({lo:.3f}–{hi:.3f}, {n}) |")
    print("\n| seed | back-test WAPE default | WAPE learned | learned / default | Brier default | Brier learned |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ratio = r["wape_learned"] / r["wape_default"] if r["wape_default"] else float("nan")
        print(f"| {r['seed']} | {r['wape_default']:.3f} | {r['wape_learned']:.3f} | {ratio:.2f} | "
              f"{r['brier_default']:.3f} | {r['brier_learned']:.3f} |")
    print("\nseconds per analysis (voc, reasons, pipeline):",
          "; ".join(f"seed {r['seed']}: " + ", ".join(f"{v:.2f}" for v in r["seconds"].values()) for r in rows))


if __name__ == "__main__":
    main()
