"""The NRR forecast's mid-term expansion part with the pipeline vs the history method vs contract actuals
(issue 17), on simulated portfolios where every add-on contract is a won opportunity.

For each of the last QUARTERS complete quarters before the data end, as of the quarter's first day (only rows
known that day: `pipeline_addons` takes the stage each opportunity was in that day and learns the stage
probabilities from opportunities closed before it; the history rate uses the 365 days before it):
the add-on ARR forecast by the history method alone (`addon_forecast`), by the pipeline where an account has
one (`with_pipeline`, what `csforecast forecast` does), and what the add-on contracts show (`addon_actual`).
Differences are printed in points of the ARR due in the quarter (the NRR forecast's denominator).

    python benchmarks/bench_pipeline_addons.py --seeds 7 3 11 --accounts 3000 --years 3
"""
from __future__ import annotations

import argparse
import time

import pandas as pd


def measure(seed: int, n: int, years: int, quarters: int) -> list[dict]:
    from csforecast.config import get_settings
    from csforecast.forecast.addons import addon_actual, addon_forecast, with_pipeline
    from csforecast.forecast.book import renewal_book
    from csforecast.forecast.pipeline import off_pipeline_factor, pipeline_addons
    from csforecast.simulate import simulate_portfolio

    t = time.time()
    pf = simulate_portfolio(n, years, seed=seed)
    print(f"seed {seed}: simulated {n} x {years} in {time.time() - t:.0f} s", flush=True)
    c, a = pf.tables["contracts"], pf.tables["accounts"]
    o, h = pf.tables["opportunities"], pf.tables["opportunity_history"]
    end = pd.Timestamp(pf.truth_meta["data_end"]).to_period("Q").start_time   # first quarter not complete
    ps = get_settings().pipeline
    rows = []
    for k in range(quarters, 0, -1):
        s = end - pd.DateOffset(months=3 * k)
        e = s + pd.DateOffset(months=3)
        book = renewal_book(c, a, s, e, s)
        pending = book[book["status"] == "pending"]
        hist, _ = addon_forecast(c, a, s, e, s)
        pipe, info = pipeline_addons(o, h, s, e, s, stage_probabilities=ps.stage_probabilities,
                                     renewals=pending[["account_id", "renewal_date"]], level=ps.level)
        raw, _ = with_pipeline(hist, pipe)          # before the fix: the history rate on the other accounts
        off = off_pipeline_factor(c, a, o, h, s, e, s, stage_probabilities=ps.stage_probabilities, level=ps.level)
        mixed, _ = with_pipeline(hist, pipe, off["factor"])
        actual = addon_actual(c, s, e, s)
        due = float(book["arr"].sum())
        on_pipe = mixed["source"] == "pipeline"
        act_acc = actual.reindex(mixed["account_id"].astype(str)).fillna(0.0).to_numpy()
        rows.append({"seed": seed, "quarter": str(s.to_period("Q")), "due": due,
                     "history": float(hist["mean"].sum()), "pipeline": float(mixed["mean"].sum()),
                     "pipeline_unscaled": float(raw["mean"].sum()), "factor": off["factor"],
                     "actual": float(actual.sum()), "n_pipe_accounts": int(on_pipe.sum()),
                     "pipe_part": float(mixed.loc[on_pipe, "mean"].sum()),
                     "pipe_actual": float(act_acc[on_pipe].sum()),
                     "rest_part": float(mixed.loc[~on_pipe, "mean"].sum()),
                     "rest_actual": float(act_acc[~on_pipe].sum()), "excluded": info["excluded_at_renewal"]})
        r = rows[-1]
        print(f"  {r['quarter']}: due {due / 1e6:.2f} M; history {r['history'] / 1e6:.3f} M, pipeline "
              f"{r['pipeline'] / 1e6:.3f} M (unscaled {r['pipeline_unscaled'] / 1e6:.3f} M, factor "
              f"{r['factor']:.3f}), actual {r['actual'] / 1e6:.3f} M; points of due: history "
              f"{100 * (r['history'] - r['actual']) / due:+.2f}, pipeline "
              f"{100 * (r['pipeline'] - r['actual']) / due:+.2f}"
              f" | {r['n_pipe_accounts']} accounts on the pipeline: {r['pipe_part'] / 1e6:.3f} M vs actual "
              f"{r['pipe_actual'] / 1e6:.3f} M; the rest on history {r['rest_part'] / 1e6:.3f} M vs "
              f"{r['rest_actual'] / 1e6:.3f} M", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 3, 11])
    ap.add_argument("--accounts", type=int, default=3000)
    ap.add_argument("--years", type=int, default=3)
    ap.add_argument("--quarters", type=int, default=4)
    args = ap.parse_args()
    rows = [r for s in args.seeds for r in measure(s, args.accounts, args.years, args.quarters)]
    df = pd.DataFrame(rows)
    g = df.groupby("seed", sort=False)[["due", "history", "pipeline", "pipeline_unscaled", "actual"]].sum()
    print("\nper seed, the quarters pooled (points of ARR due; mean absolute error per quarter beside):")
    for seed, r in g.iterrows():
        d = df[df["seed"] == seed]
        mae = lambda col: 100 * ((d[col] - d["actual"]).abs() / d["due"]).mean()   # noqa: E731
        print(f"  seed {seed}: history {100 * (r.history - r.actual) / r.due:+.2f} (MAE {mae('history'):.2f}), "
              f"pipeline {100 * (r.pipeline - r.actual) / r.due:+.2f} (MAE {mae('pipeline'):.2f}), unscaled "
              f"{100 * (r.pipeline_unscaled - r.actual) / r.due:+.2f} (MAE {mae('pipeline_unscaled'):.2f}); "
              f"actual {100 * r.actual / r.due:.2f} points of {r.due / 1e6:.1f} M due")


if __name__ == "__main__":
    main()
