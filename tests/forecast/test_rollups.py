"""Roll-ups on a small simulated portfolio: expected values by group add up to the portfolio's, group intervals
come from the same joint draws (never narrower than the group's own Bernoulli spread), worst <= expected <= best."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from csforecast.forecast.montecarlo import simulate_renewals
from csforecast.forecast.renewals import forecast_window, renewal_book

KEYS = ("renewed_arr", "churned_arr", "contraction_arr", "expansion_at_renewal_arr", "midterm_expansion_arr",
        "expansion_arr", "successor_arr")


class SegmentProbabilities:
    """A churn 'model' with known probabilities: by segment, raised for low seat counts (real varied p)."""

    BASE = {"Enterprise": 0.08, "Mid-Market": 0.15, "SMB": 0.25}

    def predict_proba(self, X):
        p = X["segment"].astype(str).map(self.BASE).fillna(0.2).to_numpy(float)
        p = np.clip(p + 0.1 * (X["account_id"].astype(str).str[-1].isin(list("0123"))).to_numpy(float), 0, 1)
        return np.column_stack([1 - p, p])


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    from csforecast.data.sources import open_source
    from csforecast.simulate import simulate_portfolio

    out = tmp_path_factory.mktemp("sim")
    simulate_portfolio(150, 2, seed=5).write(out)
    return open_source(str(out))


@pytest.fixture(scope="module")
def window(source):
    from csforecast.features.snapshot import data_end

    end = pd.Timestamp(data_end(source))
    return end.date(), (end + pd.Timedelta(days=91)).date()


@pytest.fixture(scope="module")
def forecasts(source, window):
    est = SegmentProbabilities()
    return {g: forecast_window(source, *window, group_by=g, churn_estimator=est, tau=0.3, draws=4000, seed=1)
            for g in ("segment", "segment,csm_id")}


@pytest.mark.parametrize("group_by", ["segment", "segment,csm_id"])
def test_expected_values_add_up_across_groups(forecasts, group_by):
    top, r = forecasts["segment"], forecasts[group_by]   # the portfolio's figures do not depend on the grouping
    assert len(r["groups"]) >= 2
    for k in KEYS:
        assert r["expected"][k] == pytest.approx(top["expected"][k], rel=1e-9, abs=1e-6)
        assert sum(g["expected"][k] for g in r["groups"]) == pytest.approx(top["expected"][k], rel=1e-9, abs=1e-6)
    assert sum(g["renewals_due"]["arr"] for g in r["groups"]) == pytest.approx(r["renewals_due"]["arr"])
    # NRR from its parts, in every group (outcome-split)
    for g in r["groups"] + [r]:
        e, due = g["expected"], g["renewals_due"]["arr"]
        if due:
            assert e["nrr"] == pytest.approx((due - e["churned_arr"] - e["contraction_arr"] + e["expansion_arr"])
                                             / due, abs=1e-9)
    if group_by == "segment,csm_id":
        assert all(set(g) >= {"segment", "csm_id"} for g in r["groups"])


def test_worst_expected_best_ordered(forecasts):
    for r in forecasts.values():
        w, e, b = r["worst_case"], r["expected"], r["best_case"]
        assert w["churned_arr"] >= e["churned_arr"] >= b["churned_arr"]
        for k in ("grr", "nrr"):
            assert w[k] <= e[k] + 1e-12 and e[k] <= b[k] + 1e-12
        for part in ("churned_arr", "contraction_arr", "expansion_arr"):
            iv = r["intervals"][part]
            assert iv["p10"] <= iv["p50"] <= iv["p90"]


def test_group_intervals_from_one_joint_draw():
    """Groups are slices of one simulation: their draws add up to the portfolio's draw by draw, and a group's
    P10-P90 is never narrower than its own Bernoulli spread (the common shock only widens it)."""
    rng = np.random.default_rng(4)
    n = 600
    a = rng.lognormal(9, 1, n)
    p = rng.beta(1.5, 8, n)
    g = rng.choice(["Enterprise", "Mid-Market", "SMB"], n, p=[0.15, 0.35, 0.5])
    sim = simulate_renewals(a, p, np.full(n, 1.02), np.full(n, 0.003), g, draws=20_000, seed=2, tau=0.4)
    total, _ = sim.total()
    np.testing.assert_allclose(sim.renewed.sum(axis=0), total)
    z = norm.ppf(0.9) - norm.ppf(0.1)
    for k, lab in enumerate(sim.groups):
        mk = g == lab
        width = np.quantile(sim.renewed[k], 0.9) - np.quantile(sim.renewed[k], 0.1)
        bernoulli = z * np.sqrt((a[mk] ** 2 * p[mk] * (1 - p[mk])).sum())
        assert width >= 0.95 * bernoulli, lab
    # and the groups are correlated through the shared shock: the portfolio's spread exceeds the independent sum
    var_sum = sum(sim.renewed[k].var() for k in range(len(sim.groups)))
    assert total.var() > 1.05 * var_sum


def test_grouped_book_matches_the_portfolio_book(source, window):
    from csforecast.features.snapshot import data_end

    c, acc = source.frame("contracts"), source.frame("accounts")
    as_of = pd.Timestamp(data_end(source))
    b0 = renewal_book(c, acc, *map(pd.Timestamp, window), as_of, None)
    b2 = renewal_book(c, acc, *map(pd.Timestamp, window), as_of, "segment,csm_id")
    assert len(b0) == len(b2) and b0["arr"].sum() == pytest.approx(b2["arr"].sum())
