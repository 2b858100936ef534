"""Voice of the customer (metrics/voc.py): NPS and its interval, classes, coverage and the VoC matrix on
hand-made tables whose answers are known, and on a simulated portfolio against the simulator's truth."""
from datetime import date

import numpy as np
import pandas as pd
import pytest

from csforecast.metrics.voc import ces_class, csat_class, nps_class, nps_estimate, voc_report

AS_OF = date(2026, 1, 1)


def _tables():
    accounts = pd.DataFrame({"account_id": ["a", "b", "c", "d"], "name": ["A", "B", "C", "D"],
                             "segment": ["SMB", "SMB", "Enterprise", "Enterprise"]})
    contracts = pd.DataFrame({
        "contract_id": ["c1", "c2", "c3", "c4"], "account_id": ["a", "b", "c", "d"],
        "start_date": pd.to_datetime(["2025-03-01"] * 3 + ["2024-01-01"]),
        "end_date": pd.to_datetime(["2026-03-01"] * 3 + ["2025-01-01"]),   # d churned a year ago: not active
        "arr": [100.0, 200.0, 700.0, 50.0], "renewed_by": [None] * 4})
    rows = [("a", "2025-06-01", "nps", 10, "user"), ("a", "2025-06-01", "nps", 9, "admin"),
            ("a", "2025-09-01", "nps", 3, "user"),                      # a's latest NPS: detractor
            ("a", "2025-09-01", "ces", 2, "user"), ("a", "2025-08-01", "csat", 1, None),
            ("b", "2025-07-01", "nps", 7, "executive"), ("b", "2025-07-01", "csat", 5, "user"),
            ("b", "2025-07-01", "ces", 6, "admin"),
            ("c", "2024-06-01", "nps", 10, "user"),                      # outside a 365-day window
            ("d", "2025-02-01", "nps", 0, "user"),                       # counts in NPS, d not active
            ("b", "2026-01-01", "nps", 0, "user")]                       # on the as-of date: excluded
    surveys = pd.DataFrame(rows, columns=["account_id", "responded_at", "kind", "score", "respondent_role"])
    surveys["responded_at"] = pd.to_datetime(surveys["responded_at"])
    return surveys, accounts, contracts


def test_classes_follow_the_definitions():
    assert list(nps_class([0, 6, 6.5, 7, 8, 8.9, 9, 10, np.nan])) == [
        "detractor", "detractor", "passive", "passive", "passive", "passive", "promoter", "promoter", "na"]
    assert list(ces_class([1, 4, 4.9, 5, 7, np.nan])) == ["poor", "poor", "poor", "good", "good", "na"]
    assert list(csat_class([1, 2.9, 3, 3.9, 4, 5, np.nan])) == ["red", "red", "normal", "normal", "green", "green",
                                                                "na"]


def test_nps_is_promoters_minus_detractors_over_responses():
    s, acc, con = _tables()
    r = voc_report(s, acc, con, AS_OF, window_days=365)
    # window responses: 10, 9, 3 (a), 7 (b), 0 (d): 2 promoters, 2 detractors of 5
    assert r["n_responses"] == {"nps": 5, "csat": 2, "ces": 2}
    assert r["nps"] == pytest.approx(0.0)
    assert r["promoters"] == 2 and r["detractors"] == 2 and r["passives"] == 1
    lo, hi = r["nps_ci"]
    assert lo < 0 < hi and -100 <= lo and hi <= 100
    assert r["csat_mean"] == pytest.approx(3.0) and r["ces_mean"] == pytest.approx(4.0)
    assert r["distributions"]["nps"] == {"0": 1, "3": 1, "7": 1, "9": 1, "10": 1}


def test_matrix_classifies_every_active_account_once_by_its_latest_responses():
    s, acc, con = _tables()
    r = voc_report(s, acc, con, AS_OF, window_days=365)
    cells = {(c["ces_class"], c["nps_class"], c["csat_class"]): (c["accounts"], c["arr"]) for c in r["matrix"]}
    assert cells == {("poor", "detractor", "red"): (1, 100.0), ("good", "passive", "green"): (1, 200.0),
                     ("na", "na", "na"): (1, 700.0)}
    assert [a["account_id"] for a in r["act_first"]["list"]] == ["a"]
    assert r["advocacy"]["accounts"] == 0
    cov = r["response_coverage"]
    assert cov["active_accounts"] == 3 and cov["accounts"] == pytest.approx(2 / 3, abs=1e-4)
    assert cov["arr"] == pytest.approx(300 / 1000, abs=1e-4)
    seg = {x["segment"]: x for x in cov["by_segment"]}
    assert seg["SMB"]["accounts"] == 1.0 and seg["Enterprise"]["accounts"] == 0.0
    roles = {x["respondent_role"]: x for x in cov["by_role"]}
    assert roles["unknown"]["responding_accounts"] == 1 and roles["executive"]["responding_accounts"] == 1


def test_groups_trend_and_no_surveys():
    s, acc, con = _tables()
    r = voc_report(s, acc, con, AS_OF, window_days=365, group_by="respondent_role")
    g = {x["group"]: x for x in r["groups"]}
    assert g["user"]["n_responses"]["nps"] == 3 and g["user"]["nps"] == pytest.approx(100 * (1 - 2) / 3, abs=0.01)
    assert [t["period"] for t in r["trend"]][0] == "2024Q2" and r["trend"][-1]["period"] == "2025Q3"
    empty = voc_report(None, acc, con, AS_OF)
    assert empty["nps"] is None and empty["nps_ci"] == [None, None] and empty["response_coverage"]["accounts"] == 0
    assert sum(c["accounts"] for c in empty["matrix"]) == 3
    with pytest.raises(ValueError, match="group_by"):
        voc_report(s, acc, con, AS_OF, group_by="colour")
    with pytest.raises(ValueError, match="window_days"):
        voc_report(s, acc, con, AS_OF, window_days=0)


def test_nps_interval_clusters_responses_by_account():
    """Ten accounts answering 20 times each, identically within an account: the clustered interval is as wide
    as for ten independent answers, far wider than for 200."""
    scores = np.repeat([10, 10, 10, 10, 10, 0, 0, 0, 0, 8], 20)
    clustered = nps_estimate(scores, np.repeat(np.arange(10), 20))
    independent = nps_estimate(scores, np.arange(200))
    assert clustered["nps"] == independent["nps"] == pytest.approx(10.0)
    assert (clustered["ci_high"] - clustered["ci_low"]) > 3 * (independent["ci_high"] - independent["ci_low"])


def test_nps_on_a_simulated_portfolio_matches_the_truth(small_portfolio):
    """The simulator's invited contacts answer at random (45 %), so the NPS of the responses estimates the NPS
    of every invited contact (truth): the 90 % interval covers it."""
    from csforecast.data.sources import open_source
    from csforecast.features.snapshot import data_end

    src = open_source(small_portfolio)
    de = data_end(src)
    r = voc_report(src.frame("surveys"), src.frame("accounts"), src.frame("contracts"), de, 365)
    inv = pd.read_parquet(small_portfolio / "truth" / "voc_invitations.parquet")
    inv = inv[(inv.kind == "nps") & (inv.invited_at < pd.Timestamp(de))
              & (inv.invited_at >= pd.Timestamp(de) - pd.Timedelta(days=365))]
    truth = 100 * (inv.p_promoter - inv.p_detractor).mean()
    lo, hi = r["nps_ci"]
    assert lo <= truth <= hi, (truth, r["nps"], r["nps_ci"])
    assert r["n_responses"]["nps"] == int(inv.responded.sum())
    assert sum(c["accounts"] for c in r["matrix"]) == r["response_coverage"]["active_accounts"]
