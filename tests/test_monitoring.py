"""Calibration monitoring on a portfolio where the simulator shifts churn halfway: the probabilities a model
trained before the shift would serve stay calibrated before it, and the monitor flags them after it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit

from csforecast.metrics.monitoring import calibration_monitor, horizon_bucket, psi, psi_table
from csforecast.simulate import Params, simulate_portfolio


@pytest.fixture(scope="module")
def shifted():
    pf = simulate_portfolio(400, 3, seed=4, params=Params(churn_shift=1.2, churn_shift_at=0.5))
    r = pf.truth["renewals"].copy()
    r = r[r["churned"].notna()]
    # what a model fitted before the shift serves: the simulator's probability without the shift
    r["p_served"] = expit(logit(r["p_churn"].clip(1e-6, 1 - 1e-6)) - r["churn_shift"])
    return r


def test_monitor_flags_the_shifted_half_only(shifted):
    r = shifted
    seg = np.where(r["due_arr"].to_numpy(float) > r["due_arr"].median(), "large", "small")
    days = np.random.default_rng(0).uniform(0, 400, len(r))
    before, after = (r["churn_shift"] == 0).to_numpy(), (r["churn_shift"] > 0).to_numpy()
    assert before.sum() >= 200 and after.sum() >= 200
    m0 = calibration_monitor(r.loc[before, "churned"], r.loc[before, "p_served"], segment=seg[before],
                             days_to_renewal=days[before], bound=0.05)
    m1 = calibration_monitor(r.loc[after, "churned"], r.loc[after, "p_served"], segment=seg[after],
                             days_to_renewal=days[after], bound=0.05)
    assert not m0["drifted"], m0["flagged"]
    assert m1["drifted"] and any(f["scope"] == "overall" for f in m1["flagged"])
    assert m1["overall"]["observed_rate"] > m1["overall"]["mean_p"] + 0.05
    assert set(m1["by_segment"]) == {"large", "small"} and set(m1["by_horizon"]) <= {
        "0-30", "31-90", "91-180", "181-365", ">365"}
    # the served probabilities themselves moved little; PSI of the predictions is small, of a shifted one large
    assert psi(r.loc[before, "p_served"], r.loc[before, "p_served"]) == pytest.approx(0, abs=1e-12)
    assert psi(r.loc[before, "p_served"], r.loc[before, "p_served"] + 0.3) > 0.2


def test_psi_table_and_buckets():
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000)})
    cur = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(1.0, 1.0, 2000)})
    t = psi_table(ref, cur, ["a", "b", "missing"])
    assert set(t) == {"a", "b"} and not t["a"]["warning"] and t["b"]["warning"]
    assert list(horizon_bucket([0, 30, 31, 365, 400, np.nan])) == ["0-30", "0-30", "31-90", "181-365", ">365",
                                                                   "unknown"]
    with pytest.raises(ValueError, match="p must lie"):
        calibration_monitor([0, 1], [0.2, 1.5])


def _served_monthly(rng, n_decisions: int, months: int, shift: float = 0.0):
    """Calibrated probabilities of renewal decisions, each served in ``months`` monthly score sets (its
    probability moving a little from set to set) and resolved once; ``shift`` moves every outcome's logit."""
    q = rng.uniform(0.05, 0.4, n_decisions)
    y = (rng.random(n_decisions) < expit(logit(q) + shift)).astype(float)
    p = np.clip(np.repeat(q, months) + rng.normal(0, 0.02, n_decisions * months), 0.01, 0.99)
    return np.repeat(y, months), p, np.repeat(np.arange(n_decisions), months)


def test_one_decision_served_in_many_sets_counts_once():
    # 12 monthly sets of the same 400 calibrated decisions: counted as 4,800 independent outcomes their z is
    # ~sqrt(12) too large and flags noise; grouped by decision, a calibrated book is rarely flagged and a shifted
    # one still is
    false_rows = false_decisions = 0
    for rep in range(60):
        y, p, d = _served_monthly(np.random.default_rng(rep), 400, 12)
        rows = calibration_monitor(y, p, bound=0.0)
        grouped = calibration_monitor(y, p, decisions=d, bound=0.0)
        assert grouped["overall"]["decisions"] == 400 and grouped["overall"]["n"] == 4800
        assert abs(grouped["overall"]["z"]) == pytest.approx(abs(rows["overall"]["z"]) / np.sqrt(12), rel=0.1)
        false_rows += rows["drifted"]
        false_decisions += grouped["drifted"]
    assert false_decisions <= 2 < false_rows      # |z| > 3: 0.3 % of calibrated books in theory
    y, p, d = _served_monthly(np.random.default_rng(99), 400, 12, shift=1.0)
    assert calibration_monitor(y, p, decisions=d)["drifted"]
    from csforecast.metrics.monitoring import z_threshold

    assert z_threshold(1) == pytest.approx(3.0) and z_threshold(9) == pytest.approx(3.62, abs=0.01)
    m = calibration_monitor(y, p, decisions=d, segment=np.where(d % 2 == 0, "a", "b"))
    assert m["z_threshold"] == pytest.approx(z_threshold(3))        # overall and two segments tested
    with pytest.raises(ValueError, match="decisions 3"):
        calibration_monitor([0, 1], [0.2, 0.3], decisions=["a", "b", "c"])
