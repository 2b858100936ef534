"""Churn reasons (metrics/reasons.py): every churned renewal once, shares add up, unknown counted, the
avoidable mapping overridable; and the simulator's reasons follow the account's state."""
from datetime import date

import numpy as np
import pandas as pd
import pytest

from csforecast.config import ChurnReasonSettings
from csforecast.metrics.reasons import normalise_reason, reasons_report

END = date(2026, 1, 1)
MAP = ChurnReasonSettings()


def _tables():
    accounts = pd.DataFrame({"account_id": list("abcdef"), "segment": ["SMB"] * 3 + ["Enterprise"] * 3})
    d = pd.to_datetime
    contracts = pd.DataFrame([
        # a: churned, main + co-termed add-on (one renewal), reason on the add-on only
        ("a1", "a", d("2024-03-01"), d("2025-03-01"), 1000.0, None, None),
        ("a2", "a", d("2024-09-01"), d("2025-03-01"), 500.0, None, " Low Adoption "),
        ("b1", "b", d("2024-05-01"), d("2025-05-01"), 2000.0, None, "acquired"),
        ("c1", "c", d("2024-06-01"), d("2025-06-01"), 3000.0, None, None),             # unknown reason
        ("d1", "d", d("2024-07-01"), d("2025-07-01"), 60000.0, None, "competitor"),
        ("e1", "e", d("2024-01-01"), d("2025-01-01"), 4000.0, "e2", "budget"),        # renewed smaller
        ("e2", "e", d("2025-01-01"), d("2026-01-01"), 3000.0, None, None),            # due on END: pending
        ("f1", "f", d("2025-02-01"), d("2026-02-01"), 9000.0, None, "weird thing"),   # not due yet
    ], columns=["contract_id", "account_id", "start_date", "end_date", "arr", "renewed_by", "churn_reason"])
    return accounts, contracts


def test_every_churned_renewal_once_shares_add_up():
    acc, con = _tables()
    r = reasons_report(con, acc, END, avoidable=MAP.avoidable, unavoidable=MAP.unavoidable)
    rows = {x["reason"]: x for x in r["reasons"]}
    assert set(rows) == {"low_adoption", "acquired", "unknown", "competitor"}
    assert rows["low_adoption"]["logos"] == 1 and rows["low_adoption"]["arr"] == 1500.0
    assert r["logos"] == 4 and r["arr"] == 66500.0
    assert sum(x["logo_share"] for x in r["reasons"]) == pytest.approx(1)
    assert sum(x["arr_share"] for x in r["reasons"]) == pytest.approx(1)
    assert rows["unknown"]["avoidable"] is None and rows["acquired"]["avoidable"] is False
    assert r["avoidable_logo_share"] == pytest.approx(2 / 4)
    assert r["avoidable_arr_share"] == pytest.approx(61500 / 66500, rel=1e-5)
    assert r["unknown_logos"] == 1 and r["unknown_arr"] == 3000.0
    assert {g["group"]: g["logos"] for g in r["by_segment"]} == {"SMB": 3, "Enterprise": 1}
    assert {g["group"]: g["logos"] for g in r["by_arr_band"]} == {"<10k": 3, "50k-100k": 1}
    assert {g["group"] for g in r["by_tenure_band"]} == {"<1y"}
    con_ = r["contraction"]
    assert con_["available"] and con_["renewals"] == 1 and con_["reasons"][0]["reason"] == "budget"
    assert con_["arr_lost"] == 1000.0


def test_mapping_override_period_and_groups():
    acc, con = _tables()
    r = reasons_report(con, acc, END, avoidable=["acquired"], unavoidable=["low_adoption"])
    rows = {x["reason"]: x for x in r["reasons"]}
    assert rows["acquired"]["avoidable"] is True and rows["low_adoption"]["avoidable"] is False
    assert rows["competitor"]["avoidable"] is None            # in neither list: unmapped
    only = reasons_report(con, acc, END, period="2025Q2", avoidable=MAP.avoidable, unavoidable=MAP.unavoidable)
    # a renewal's period holds its last covered day: due 2025-07-01 is a Q2 renewal
    assert only["logos"] == 3 and {x["reason"] for x in only["reasons"]} == {"acquired", "unknown", "competitor"}
    per = reasons_report(con, acc, END, period="quarter", group_by="segment", avoidable=MAP.avoidable,
                         unavoidable=MAP.unavoidable)
    assert [p["group"] for p in per["periods"]] == ["2025Q1", "2025Q2"]
    assert sum(g["logos"] for g in per["groups"]) == 4
    with pytest.raises(ValueError, match="period"):
        reasons_report(con, acc, END, period="last tuesday")


def test_normalise_reason():
    assert list(normalise_reason(["Champion Left", "champion-left", None, "  ", np.nan])) == [
        "champion_left", "champion_left", "unknown", "unknown", "unknown"]


def test_simulated_reasons_follow_the_accounts_state(small_portfolio):
    """The simulator draws a churn reason from the account's state at the decision: low adoption (and product
    gap) when health is low, champion left after a drop, acquired / bankrupt exactly when unavoidable; the
    analysis finds it: low-adoption churns have lower health than budget churns."""
    ren = pd.read_parquet(small_portfolio / "truth" / "renewals.parquet")
    churned = ren[ren.churned]
    assert churned["reason"].notna().all()
    unav = churned.reason.isin(["acquired", "bankrupt"])
    assert (unav == churned.unavoidable).all()
    h = churned.groupby("reason").health_at_decision.mean()
    assert h["low_adoption"] < h["budget"] - 0.5
    # the reported reasons: some missing (counted as unknown), the rest as drawn
    rep = churned.reason_reported
    assert 0 < rep.isna().mean() < 0.25 and (rep.dropna() == churned.reason[rep.notna()]).all()
    from csforecast.data.sources import open_source
    from csforecast.features.snapshot import data_end

    src = open_source(small_portfolio)
    r = reasons_report(src.frame("contracts"), src.frame("accounts"), data_end(src), avoidable=MAP.avoidable,
                       unavoidable=MAP.unavoidable)
    assert r["logos"] == len(churned)
    truth_share = (~churned.unavoidable).mean()
    known = 1 - r["unknown_logos"] / r["logos"]
    assert r["avoidable_logo_share"] == pytest.approx(truth_share * known, abs=0.05)
