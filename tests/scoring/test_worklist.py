"""The CSM work list and the disagreements list: ordering, plain-words reasons, grouping, actionable first."""
import json
import re

import numpy as np
import pandas as pd

from csforecast.scoring.worklist import disagreements, reasons, worklist


def drv(feature, value, c, component, lever):
    return {"feature": feature, "value": value, "contribution": c, "text": f"{feature} ({c:+.2f} log-odds)",
            "component": component, "lever": lever}


ADOPT = "run an adoption workshop / enable unused features"
DRIVERS = [drv("segment", "SMB", 0.9, "Profile", "none (account profile)"),
           drv("active_users_6m", 3.0, 0.5, "Adoption", ADOPT),
           drv("active_users_12m", 4.0, 0.3, "Adoption", ADOPT),
           drv("tickets_p1_90d", 2.0, 0.2, "Support", "escalate open tickets with Support"),
           drv("nps_latest", 9.0, -0.4, "Sentiment", "close the loop with detractors")]


def test_reasons_group_near_duplicates_put_actionable_first_and_speak_plainly():
    rs = reasons(DRIVERS)
    assert [r["component"] for r in rs] == ["Adoption", "Support", "Profile"]   # no-lever last, despite 0.9
    assert rs[0]["features"] == ["active_users_6m", "active_users_12m"] and rs[0]["weight"] == 0.8
    assert "1 related measure" in rs[0]["text"] and rs[0]["lever"] == ADOPT
    assert rs[-1]["lever"] is None and rs[-1]["actionable"] is False
    assert all("log-odds" not in r["text"] and not re.search(r"[+−-]\d\.\d\d", r["text"]) for r in rs)
    assert "nps_latest" not in {f for r in rs for f in r["features"]}     # lowers the risk: not a reason
    assert reasons(json.dumps(DRIVERS)) == rs and reasons(None) == []


def frame():
    return pd.DataFrame({
        "account_id": ["A1", "A2", "A3", "A4", "A5"], "name": list("abcde"), "segment": ["SMB"] * 5,
        "csm_id": ["S1", "S1", "S1", "S2", "S1"], "contract_id": ["C1", "C2", "C3", "C4", "C5"],
        "arr": [10_000.0, 50_000.0, 50_000.0, 90_000.0, 5_000.0],
        "renewal_date": pd.to_datetime(["2026-10-20", "2026-12-15", "2026-10-10", "2026-10-15", "2027-09-01"]),
        "days_to_renewal": [19.0, 75.0, 9.0, 14.0, 335.0],
        "churn_probability": [0.5, 0.2, 0.2, 0.9, 0.9], "churn_probability_source": ["blend", "model", "blend",
                                                                                     "model", "model"],
        "model_churn_probability": [0.1, 0.2, 0.6, 0.9, 0.9], "call_probability": [0.7, np.nan, 0.05, np.nan,
                                                                                 np.nan],
        "blend_probability": [0.5, 0.2, 0.2, 0.9, 0.9], "call_category": ["churn", None, "commit", None, None],
        "call_csm_id": ["S1", None, "S1", None, None], "called_at": pd.to_datetime(["2026-09-20", None,
                                                                                    "2026-09-25", None, None]),
        "churn_drivers": [DRIVERS, [], DRIVERS[:1], DRIVERS, DRIVERS]})


def test_worklist_orders_by_expected_loss_times_soonness_within_the_horizon():
    items = worklist(frame(), "S1", horizon_days=90)
    assert [i["account_id"] for i in items] == ["A3", "A2", "A1"]        # A5 is beyond the horizon, A4 is S2's
    # A3: 0.2 x 50k x 1/(1 + 9/90); A2: 0.2 x 50k x 1/(1 + 75/90); A1: 0.5 x 10k x 1/(1 + 19/90)
    assert items[0]["priority"] == round(10_000 / (1 + 9 / 90), 2)
    assert items[2]["top_reason"].startswith("daily active users") and items[2]["lever"] == ADOPT
    assert items[1]["top_reason"] is None and items[0]["lever"] is None   # a profile driver has no lever
    assert worklist(frame(), "S1", horizon_days=400)[0]["account_id"] == "A3"
    assert worklist(frame(), "NOPE") == []


def test_disagreements_weight_the_gap_by_arr():
    items = disagreements(frame(), within_days=90)
    assert [i["account_id"] for i in items] == ["A3", "A1"]              # |0.6-0.05| x 50k > |0.1-0.7| x 10k
    assert items[0]["direction"].startswith("the model sees more risk")
    assert items[1]["direction"].startswith("the call sees more risk")
    assert items[0]["weighted_gap"] == round(0.55 * 50_000, 2)
    assert disagreements(frame(), within_days=5) == []
