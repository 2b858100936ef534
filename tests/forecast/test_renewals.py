"""The window forecast on a tiny portfolio with known probabilities: every number checked by hand.

Window [2024-07-01, 2024-10-01) as of 2024-08-01:
  C 550 renewed before as_of (successor 605), D 440 churned before as_of,
  A 1100 (p 0.1), B 2200 + 300 add-on = 2500 (p 0.5), F 880 (p 0.3) pending; a9 is due on the end (excluded).
  ARR due 5470; expected renewed = 550 + 990 + 1250 + 616 = 3406; churned = 440 + 110 + 1250 + 264 = 2064;
  every past renewal grew 10 % -> successor = 605 + 1.1 * 2856 = 3746.6.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from csforecast.forecast import baselines
from csforecast.forecast.renewals import forecast_window, renewal_book


AS_OF = "2024-08-01"
WINDOW = ("2024-07-01", "2024-10-01")
P_CHURN = {"A": 0.1, "B": 0.5, "F": 0.3}


def tiny_tables():
    accounts = pd.DataFrame({
        "account_id": list("ABCDFG"),
        "name": [f"Acct {x}" for x in "ABCDFG"],
        "segment": ["Enterprise", "Enterprise", "SMB", "SMB", "Mid-Market", "SMB"],
        "industry": "Software", "region": ["EMEA", "EMEA", "APAC", "APAC", "EMEA", "APAC"],
        "csm_id": "CSM-1", "created_at": pd.Timestamp("2022-06-01"),
    })
    rows = [
        # every past renewal grew ARR by exactly 10 %
        ("a0", "A", "2022-08-01", "2023-08-01", 1000.0, "a1"),
        ("a1", "A", "2023-08-01", "2024-08-01", 1100.0, None),      # due on as_of: pending, p 0.1
        ("b0", "B", "2022-09-01", "2023-09-01", 2000.0, "b1"),
        ("b1", "B", "2023-09-01", "2024-09-01", 2200.0, None),      # pending, p 0.5 ...
        ("b2", "B", "2024-01-01", "2024-09-01", 300.0, None),       # ... with a co-termed add-on: due 2500
        ("c0", "C", "2022-07-15", "2023-07-15", 500.0, "c1"),
        ("c1", "C", "2023-07-15", "2024-07-15", 550.0, "c2"),       # renewed before as_of
        ("c2", "C", "2024-07-15", "2025-07-15", 605.0, None),
        ("d0", "D", "2022-07-20", "2023-07-20", 400.0, "d1"),
        ("d1", "D", "2023-07-20", "2024-07-20", 440.0, None),       # churned before as_of
        ("f0", "F", "2022-09-15", "2023-09-15", 800.0, "f1"),
        ("f1", "F", "2023-09-15", "2024-09-15", 880.0, None),       # pending, p 0.3
        ("g1", "G", "2024-07-31", "2025-07-31", 100.0, None),       # new business; sets the data end
        ("a9", "A", "2024-02-01", "2024-10-01", 50.0, None),        # due on the window end: outside
    ]
    contracts = pd.DataFrame(rows, columns=["contract_id", "account_id", "start_date", "end_date", "arr",
                                            "renewed_by"])
    contracts["start_date"] = pd.to_datetime(contracts["start_date"])
    contracts["end_date"] = pd.to_datetime(contracts["end_date"])
    contracts["seats"] = 10.0
    contracts["auto_renew"] = False
    contracts["churn_reason"] = None
    return accounts, contracts


@pytest.fixture()
def tiny_source(tmp_path):
    from csforecast.data.sources import open_source

    accounts, contracts = tiny_tables()
    accounts.to_csv(tmp_path / "accounts.csv", index=False)
    contracts.to_csv(tmp_path / "contracts.csv", index=False)
    return open_source(str(tmp_path))


class KnownProbabilities:
    """A churn 'model' with known probabilities per account (no feature_names_in_: gets every column)."""

    def predict_proba(self, X):
        import numpy as np

        p = X["account_id"].map(P_CHURN).to_numpy(dtype=float)
        return np.column_stack([1 - p, p])


def test_renewal_book_statuses():
    accounts, contracts = tiny_tables()
    b = renewal_book(contracts, accounts, *WINDOW, AS_OF, "segment").set_index("account_id")
    assert sorted(b.index) == ["A", "B", "C", "D", "F"]
    assert b.loc["B", "arr"] == 2500 and b.loc["B", "n_contracts"] == 2 and b.loc["B", "contract_id"] == "b1"
    assert b["status"].to_dict() == {"A": "pending", "B": "pending", "C": "renewed", "D": "churned",
                                     "F": "pending"}
    assert b.loc["C", "succ_arr"] == 605 and np.isnan(b.loc["A", "succ_arr"])
    assert not b.loc["A", "final_renewed"] and b.loc["C", "final_renewed"]
    # as of the window start nothing is known yet (hindsight columns unchanged)
    b0 = renewal_book(contracts, accounts, *WINDOW, "2024-07-01").set_index("account_id")
    assert set(b0["status"]) == {"pending"} and b0.loc["C", "final_succ_arr"] == 605


def test_hand_checked_forecast(tiny_source):
    r = forecast_window(tiny_source, *WINDOW, group_by="segment", as_of=AS_OF,
                        churn_estimator=KnownProbabilities(), tau=0.0, draws=20_000)
    assert r["as_of"] == AS_OF and r["window"] == {"start": "2024-07-01", "end": "2024-10-01",
                                                  "end_exclusive": True, "group_by": "segment",
                                                  "data_end": "2024-08-01"}
    d = r["renewals_due"]
    assert (d["count"], d["arr"], d["pending_count"], d["pending_arr"]) == (5, 5470, 3, 4480)
    assert d["renewed_so_far_arr"] == 550 and d["churned_so_far_arr"] == 440
    e = r["expected"]
    assert e["renewed_arr"] == pytest.approx(3406)
    assert e["churned_arr"] == pytest.approx(2064)
    assert e["grr"] == pytest.approx(3406 / 5470)
    assert e["successor_arr"] == pytest.approx(3746.6, rel=1e-9)
    assert e["arr_change"] == pytest.approx(3746.6 - 3406, rel=1e-9)
    # every renewal grew 10 %: no contraction, expansion at renewal = 3746.6 - 3406
    assert e["contraction_arr"] == pytest.approx(0, abs=1e-9)
    assert e["expansion_at_renewal_arr"] == pytest.approx(3746.6 - 3406, rel=1e-9)
    # mid-term add-ons: b2 (300) and a9 (50) were signed in the year before as_of, both under the 20 a segment
    # needs, so every account gets the portfolio rate; the customers on 2024-07-31 hold 1150 + 2500 + 605 +
    # 880 + 100 = 5235 ARR, and the window has 61 days left after as_of
    rates = r["midterm_expansion"]["rates"]["portfolio"]
    assert rates["addons"] == 2 and rates["rate_per_day"] * rates["exposure_arr_days"] == pytest.approx(350)
    assert e["midterm_expansion_arr"] == pytest.approx(rates["rate_per_day"] * 5235 * 61, rel=1e-9)
    assert e["expansion_arr"] == pytest.approx(e["expansion_at_renewal_arr"] + e["midterm_expansion_arr"])
    assert e["nrr"] == pytest.approx((3746.6 + e["midterm_expansion_arr"]) / 5470, rel=1e-9)
    assert e["nrr"] == pytest.approx((5470 - e["churned_arr"] - e["contraction_arr"] + e["expansion_arr"]) / 5470)
    # the renewed ARR draws live on the 8 subsets of {1100, 2500, 880} (+ 550 known)
    support = 550 + np.array([x + y + z for x in (0, 1100) for y in (0, 2500) for z in (0, 880)])
    iv = r["intervals"]["renewed_arr"]
    assert support.min() <= iv["p10"] <= iv["p50"] <= iv["p90"] <= support.max()
    # exact quantiles of the discrete distribution: P10 = 1650 (cdf .05 -> .185), P90 = 5030 (cdf .685 -> 1)
    assert (iv["p10"], iv["p90"]) == (1650, 5030)
    assert r["intervals"]["grr"]["p50"] == pytest.approx(iv["p50"] / 5470)
    # groups add up
    groups = {g["group"]: g for g in r["groups"]}
    assert set(groups) == {"Enterprise", "Mid-Market", "SMB"}
    assert groups["Enterprise"]["expected"]["renewed_arr"] == pytest.approx(990 + 1250)
    assert groups["SMB"]["expected"]["renewed_arr"] == pytest.approx(550)
    assert groups["SMB"]["expected"]["churned_arr"] == pytest.approx(440)
    assert sum(g["expected"]["renewed_arr"] for g in groups.values()) == pytest.approx(3406)
    # at risk: high risk x high ARR first
    assert [x["account_id"] for x in r["at_risk"]] == ["B", "F", "A"]
    assert r["at_risk"][0] == {"account_id": "B", "contract_id": "b1", "arr": 2500.0, "p_churn": 0.5,
                               "expected_churned_arr": 1250.0, "renewal_date": "2024-09-01",
                               "segment": "Enterprise", "p_churn_source": "model"}
    # worst case: churned so far + the ARR with p > 0.3 (B) lost + the others at their expected loss (A 0.1 x 1100,
    # F 0.3 x 880); best case: B renews
    assert r["worst_case"]["churned_arr"] == pytest.approx(440 + 2500 + 110 + 264)
    assert r["best_case"]["churned_arr"] == pytest.approx(440 + 110 + 264)
    for k in ("grr", "nrr"):
        assert r["worst_case"][k] <= e[k] <= r["best_case"][k]
    # last year everything renewed: last_year disagrees with the model and is flagged
    ly = r["methods"]["last_year"]
    assert ly["renewed_arr"] == pytest.approx(550 + 4480)
    assert any(set(x["methods"]) == {"model", "last_year"} for x in r["forecast_risk"])
    assert r["methods"]["model"]["renewed_arr"] == pytest.approx(3406)
    assert r["model_version"] is None
    assert r["scored_by_survival"] == {"decisions": 0, "arr": 0.0, "horizon_days": 365, "survival_version": None,
                                       "groups": {}}


def test_window_in_the_past_is_all_known(tiny_source):
    r = forecast_window(tiny_source, "2023-07-01", "2023-10-01", as_of=AS_OF, churn_estimator=KnownProbabilities(),
                        tau=0.0)
    assert r["renewals_due"]["pending_count"] == 0
    assert r["expected"]["grr"] == pytest.approx(1.0) and r["expected"]["nrr"] == pytest.approx(1.1)
    assert r["intervals"]["renewed_arr"]["p10"] == r["intervals"]["renewed_arr"]["p90"] == 4700


def test_last_year_and_time_series_baselines():
    accounts, contracts = tiny_tables()
    hist = baselines.renewal_history(contracts, accounts, AS_OF)
    pend = renewal_book(contracts, accounts, *WINDOW, AS_OF, "segment")
    pend = pend[pend["status"] == "pending"]
    p, ratio, info = baselines.last_year(pend, hist, *WINDOW, AS_OF)
    np.testing.assert_allclose(p, 0.0)
    np.testing.assert_allclose(ratio, 1.1)
    assert info["reference_window"] == {"start": "2023-07-01", "end": "2023-10-01"}
    p, ratio, info = baselines.time_series(pend, hist, *WINDOW, AS_OF)
    assert np.all((p >= 0) & (p <= 1)) and len(p) == len(pend)


def test_time_series_follows_a_constant_rate():
    # 20 quarters of 100 renewals, 90 % renewed each quarter, +5 % on renewal
    rows = []
    for q in pd.period_range("2019Q1", "2023Q4", freq="Q"):
        for i in range(100):
            rows.append({"renewal_date": q.start_time + pd.Timedelta(days=10), "arr": 100.0, "segment": "SMB",
                         "renewed": i < 90, "succ_arr": 105.0 if i < 90 else np.nan})
    hist = pd.DataFrame(rows)
    hist["quarter"] = hist["renewal_date"].dt.to_period("Q")
    pend = pd.DataFrame({"renewal_date": pd.to_datetime(["2024-02-01", "2024-08-01"]), "segment": "SMB",
                         "arr": 100.0})
    p, ratio, info = baselines.time_series(pend, hist, "2024-01-01", "2024-10-01", "2024-01-01")
    np.testing.assert_allclose(p, 0.1, atol=1e-3)
    np.testing.assert_allclose(ratio, 1.05, atol=1e-3)
    assert info["horizon_quarters"] == 3


def test_the_expansion_fit_is_deterministic():
    """Why a caller may keep it (`forecast_window(memo=)`): the same rows give the same model."""
    from csforecast.forecast.renewals import fit_expansion

    rng = np.random.default_rng(3)
    n = 260
    rows = pd.DataFrame({"seats_used": rng.uniform(0, 1, n), "segment": rng.choice(["SMB", "ENT"], n),
                         "label_arr_change": rng.normal(0.03, 0.1, n),
                         "renewal_date": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 500, n), "D")})
    first, again = (fit_expansion(rows.copy(), ["seats_used", "segment"]) for _ in range(2))
    assert again is not first and again.summary() == first.summary()
    np.testing.assert_array_equal(again.ratio_moments(rows)[0], first.ratio_moments(rows)[0])


def test_windows_forecast_with_one_memo_fit_the_expansion_model_once(tiny_source, isolated_home):
    """What `score` does for its four windows: one memo, one expansion fit, and each window's forecast the same
    as computed on its own."""
    import json

    from csforecast.forecast.renewals import dict_memo

    computed, kept = [], dict_memo()

    def memo(key, compute):
        return kept(key, lambda: computed.append(key) or compute())

    kw = dict(as_of=AS_OF, churn_estimator=KnownProbabilities(), tau=0.0, draws=2000)
    for window in (WINDOW, ("2024-10-01", "2025-01-01")):
        shared = forecast_window(tiny_source, *window, memo=memo, **kw)
        alone = forecast_window(tiny_source, *window, **kw)
        assert json.dumps(shared, sort_keys=True, default=str) == json.dumps(alone, sort_keys=True, default=str)
    assert [k[0] for k in computed] == ["expansion"] and computed[0][-1] == AS_OF
