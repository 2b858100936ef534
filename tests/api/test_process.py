"""The forecast process over HTTP on the session's trained, scored, served portfolio (conftest.py): the blend
served where a CSM call exists, model / call / blend side by side, consistency of probability, survival curve
and expected lifetime on every served account, CSM calls (write scope), disagreements, the ledger picked up
without a reload, and the CSM work list."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(api):
    from csforecast.scoring.store import load_latest

    meta, df, _ = load_latest(api.home / "scores.duckdb")
    return meta, df.set_index("account_id", drop=False)


@pytest.fixture(scope="module")
def write_key(api, tools):
    out = tools.run_cli(["apikey", "create", "--scope", "write", "--json"], api.env, api.tmp / "process.log")
    return json.loads(out)["key"]


def test_blend_is_served_where_a_call_exists_and_shown_beside_model_and_call(api, served):
    meta, df = served
    assert "blend" in meta["models"], "the session's portfolio has CSM calls: the blend family is trained"
    called = df[df["call_category"].notna() & (df["churn_probability_source"] == "blend")]
    assert len(called) > 0
    np.testing.assert_allclose(called["churn_probability"], called["blend_probability"], atol=1e-12)
    plain = df[df["churn_probability_source"] == "model"]
    np.testing.assert_allclose(plain["churn_probability"], plain["model_churn_probability"], atol=1e-12)
    aid = called.index[0]
    with api.client() as c:
        d = c.get(f"/v1/accounts/{aid}").json()
    assert d["churn_probability_source"] == "blend"
    call = d["call"]
    assert call["category"] == called.loc[aid, "call_category"] and call["p_blend"] == pytest.approx(
        d["churn_probability"])
    assert call["p_model"] == pytest.approx(called.loc[aid, "model_churn_probability"])
    assert 0 < call["p_call"] < 1 and call["called_at"] < d["as_of"]


def test_probability_survival_curve_and_lifetime_never_contradict(served):
    """On every served account: the survival curve never rises; the restricted expected lifetime lies between
    the lower and upper sums of that curve; a renewal beyond the churn model's 365-day horizon is scored by the
    survival model (1 - survival to the renewal) and says so; probabilities are probabilities."""
    _, df = served
    assert df["churn_probability"].between(0, 1).all()
    s90, s180, s365 = (df[f"p_active_{t}d"].to_numpy(float) for t in (90, 180, 365))
    assert (s90 >= s180 - 1e-12).all() and (s180 >= s365 - 1e-12).all()
    life = df["expected_lifetime_days"].to_numpy(float)
    lower = 90 * s90 + 90 * s180 + 185 * s365
    upper = 90 + 90 * s90 + 185 * s180 + 730 * s365
    assert (life >= lower - 1e-6).all() and (life <= upper + 1e-6).all()
    far = df["days_to_renewal"] > 365
    assert (df.loc[far, "churn_probability_source"] == "survival").all()
    np.testing.assert_allclose(df.loc[far, "churn_probability"], 1 - df.loc[far, "p_renewal_survival"], atol=1e-12)
    near = df[~far & (df["days_to_renewal"] <= 365)]
    assert not (near["churn_probability_source"] == "survival").any()
    # a renewal within a horizon: churning by the renewal means not active after it
    within90 = near[near["days_to_renewal"] < 90]
    assert (within90["p_renewal_survival"] >= within90["p_active_90d"] - 1e-9).all()


def test_calls_need_the_write_scope_and_are_validated(api, served, write_key):
    _, df = served
    row = df.sort_values("days_to_renewal").iloc[0]
    body = {"account_id": row["account_id"], "contract_id": row["contract_id"], "csm_id": "CSM-T",
            "category": "at_risk", "amount": 1234.5, "note": "budget cut mentioned in the QBR"}
    with api.client() as c:
        assert c.post("/v1/forecast/calls", json=body).status_code == 403
    with api.client(key=write_key) as c:
        r = c.post("/v1/forecast/calls", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["category"] == "at_risk" and r.json()["recorded_at"]
        bad = c.post("/v1/forecast/calls", json={**body, "category": "maybe"})
        assert bad.status_code == 422 and "category" in bad.text
        neg = c.post("/v1/forecast/calls", json={**body, "amount": -1})
        assert neg.status_code == 422 and "amount" in neg.text
        other = c.post("/v1/forecast/calls", json={**body, "contract_id": "C999999"})
        assert other.status_code == 422 and "C999999" in other.text
        assert c.get("/v1/accounts?limit=1").status_code == 200          # write implies read
    with api.client(key="admin") as c:
        assert c.post("/v1/forecast/calls", json={**body, "category": "commit"}).status_code == 201
    with api.client() as c:
        got = c.get("/v1/forecast/calls", params={"csm_id": "CSM-T"}).json()
        assert got["total"] == 2 and {i["category"] for i in got["items"]} == {"at_risk", "commit"}
        assert all(i["renewal_date"] == pd.Timestamp(row["renewal_date"]).date().isoformat() for i in got["items"])
        before = c.get("/v1/forecast/calls", params={"renewal_before": "2000-01-01"}).json()
        assert before["total"] == 0
        assert c.get("/v1/forecast/calls", params={"renewal_before": "nope"}).status_code == 422


def test_disagreements_are_ordered_by_arr_weighted_gap(api):
    with api.client() as c:
        r = c.get("/v1/forecast/disagreements", params={"within_days": 120})
        assert c.get("/v1/forecast/disagreements", params={"within_days": 0}).status_code == 422
    assert r.status_code == 200
    items = r.json()["items"]
    assert items, "renewals within 120 days carry calls in the simulated portfolio"
    gaps = [i["weighted_gap"] for i in items]
    assert gaps == sorted(gaps, reverse=True)
    for i in items[:5]:
        assert i["weighted_gap"] == pytest.approx(abs(i["p_model"] - i["p_call"]) * i["arr"], rel=1e-4, abs=0.02)
        assert i["days_to_renewal"] <= 120


def test_worklist_orders_by_expected_loss_and_speaks_plainly(api, served):
    _, df = served
    csm = df[df["days_to_renewal"] <= 90]["csm_id"].dropna().value_counts().index[0]
    with api.client() as c:
        r = c.get(f"/v1/csms/{csm}/worklist", params={"horizon_days": 90})
        assert c.get("/v1/csms/NO-SUCH-CSM/worklist").status_code == 404
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items
    pri = [i["priority"] for i in items]
    assert pri == sorted(pri, reverse=True)
    for i in items:
        assert i["days_to_renewal"] <= 90
        # churn_probability is served to 4 decimals: the product is known to within 0.5e-4 x ARR
        assert i["expected_arr_lost"] == pytest.approx(i["churn_probability"] * i["arr"], abs=0.5e-4 * i["arr"] + 0.01)
        if i["top_reason"]:
            assert "log-odds" not in i["top_reason"] and not re.search(r"[+−]\d\.\d\d", i["top_reason"])
    assert any(i["lever"] for i in items)


def test_ledger_holds_the_score_freezes_and_picks_up_a_new_freeze_without_reload(api, tools):
    with api.client() as c:
        first = c.get("/v1/forecast/ledger").json()
    assert first["summary"]["entries"] >= 2                                # `score` froze two quarters
    assert {e["trigger"] for e in first["entries"]} == {"score"}
    e = first["entries"][0]
    assert {"window", "as_of", "expected", "intervals", "scenarios", "model_versions", "data_hash"} <= set(e)
    out = tools.run_cli(["forecast", "--data", str(api.data), "--start", e["window"]["start"], "--end",
                         e["window"]["end"], "--freeze", "--json", "--draws", "200", "--quiet"], api.env,
                        api.tmp / "process.log")
    fc = json.loads(out)
    sc = fc["scenarios"]
    assert sc["commit"] <= sc["most_likely"] <= sc["best_case"] and fc["frozen"]
    with api.client() as c:
        after = c.get("/v1/forecast/ledger").json()
    assert after["summary"]["entries"] == first["summary"]["entries"] + len(fc["frozen"])
    assert after["entries"][-1]["trigger"] == "forecast --freeze"


def test_api_forecast_has_scenarios_beside_the_model_and_the_blend(api, served):
    from csforecast.data.sources import open_source
    from csforecast.features.snapshot import data_end
    from csforecast.scoring.forecasts import next_quarters

    meta, _ = served
    start, end = next_quarters(data_end(open_source(api.data)))[0]
    with api.client() as c:
        body = c.get("/v1/forecast/renewals", params={"start": str(start), "end": str(end)}).json()
    f = body["forecast"]
    sc = f["scenarios"]
    assert sc["commit"] <= sc["most_likely"] <= sc["best_case"] and sc["pending_called"] > 0
    assert sc["model"]["p10"] <= sc["model"]["p50"] <= sc["model"]["p90"]
    assert body["model_versions"]["blend"] == meta["models"]["blend"]
    assert sc["blend"]["p10"] <= sc["blend"]["p50"] <= sc["blend"]["p90"]
    assert f["methods"]["blend"]["detail"]["blend_version"] == meta["models"]["blend"]
    assert f["worst_case"]["grr"] <= f["expected"]["grr"] <= f["best_case"]["grr"]
