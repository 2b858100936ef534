"""Monitoring end to end on a portfolio whose churn shifts halfway (docs/metrics.md, "Monitoring").

Simulates two portfolios with the same seed, one whose renewal decisions from the middle of the window on get
``churn_shift`` added to their churn logit and one without; trains the churn model as of the shift date (it has
seen no shifted decision), scores the active accounts monthly from then to the data end with that champion, and
prints what `csforecast monitor` reports at the end: the shifted portfolio must be flagged, the control not.

    .venv/bin/python benchmarks/monitor_shift.py [--accounts 800] [--seed 4] [--shift 1.2]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def run(accounts: int, seed: int, shift: float, work: Path) -> dict:
    home = work / "home"
    os.environ["CSFORECAST_HOME"] = str(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    home.mkdir(parents=True)
    from csforecast.config import get_settings, reset_settings
    from csforecast.data.sources import open_source
    from csforecast.features.snapshot import data_end
    from csforecast.pipelines.train import train_all
    from csforecast.scoring.batch import run_scoring
    from csforecast.scoring.monitor import monitor_report
    from csforecast.simulate import Params, simulate_portfolio
    from csforecast.tracking import store

    reset_settings()
    store.configure(get_settings())
    pf = simulate_portfolio(accounts, 3, seed=seed, params=Params(churn_shift=shift, churn_shift_at=0.5))
    pf.write(work / "data")
    src = open_source(work / "data")
    r = pf.truth["renewals"]
    shifted = r[r["churn_shift"] > 0]
    # the shift date: the first decision with the shift (the control has the same date from the shifted twin)
    shift_day = (pd.Timestamp(shifted["decision_date"].min()).date() if len(shifted)
                 else _shift_day_of_twin(accounts, seed))
    t0 = time.perf_counter()
    train_all(src, as_of=shift_day, families=["churn"])
    end = data_end(src)
    days = pd.date_range(pd.Timestamp(shift_day) + pd.offsets.MonthBegin(1), pd.Timestamp(end), freq="MS")
    for d in days:
        run_scoring(src, get_settings().scores_db, as_of=d.date())
    run_scoring(src, get_settings().scores_db, as_of=end)
    rep = monitor_report(get_settings().scores_db, get_settings())
    rep["seconds"] = time.perf_counter() - t0
    rep["shift_day"] = str(shift_day)
    return rep


def _shift_day_of_twin(accounts: int, seed: int):
    """The control's shift date: the shifted twin's (same seed, so the same accounts and dates)."""
    from csforecast.simulate import Params, simulate_portfolio

    r = simulate_portfolio(accounts, 3, seed=seed, params=Params(churn_shift=1.0, churn_shift_at=0.5)).truth["renewals"]
    return pd.Timestamp(r.loc[r["churn_shift"] > 0, "decision_date"].min()).date()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=800)
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--shift", type=float, default=1.2)
    ap.add_argument("--case", choices=["shifted", "control"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.case:   # one portfolio per process: settings and the MLflow store are per process
        with tempfile.TemporaryDirectory(prefix="csforecast-monitor-") as tmp:
            rep = run(a.accounts, a.seed, a.shift if a.case == "shifted" else 0.0, Path(tmp))
        cal = rep["families"]["churn"]["calibration"] or {"overall": {}, "flagged": []}
        o = cal["overall"]
        print(f"{a.case}: shift from {rep['shift_day']}; {o.get('n', 0):,} resolved outcomes; mean served p "
              f"{o.get('mean_p', float('nan')):.3f}, observed {o.get('observed_rate', float('nan')):.3f}, ECE "
              f"{o.get('ece', float('nan')):.3f}, z {o.get('z', float('nan')):+.1f}; flagged scopes: "
              f"{', '.join(f['scope'] + ' (ECE ' + format(f['ece'], '.3f') + ', z ' + format(f['z'], '+.1f') + ', ' + str(f.get('decisions', f['n'])) + ' renewals)' for f in cal['flagged']) or 'none'}; family flagged: "
              f"{bool(rep['flagged_families'])}; PSI warnings: {rep['families']['churn']['psi_warnings'] or 'none'}"
              f" ({rep['seconds']:.0f} s)")
        return 0 if bool(rep["flagged_families"]) == (a.case == "shifted") else 1
    import subprocess

    rc = 0
    for case in ("shifted", "control"):
        rc |= subprocess.call([sys.executable, __file__, "--case", case, "--accounts", str(a.accounts),
                               "--seed", str(a.seed), "--shift", str(a.shift)])
    print("OK: the shifted portfolio is flagged and the control is not" if rc == 0 else "FAILED")
    return rc


if __name__ == "__main__":
    sys.exit(main())
