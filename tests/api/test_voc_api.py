"""GET /v1/voc, /v1/metrics/churn-reasons and /v1/forecast/pipeline on the session's served home (the api
fixture: a real server on 127.0.0.1 over a simulated portfolio): the issue's JSON keys, the same figures the
analysis functions give on the same data, 422 for bad arguments, 401 without a key."""
import pandas as pd
import pytest


def test_voc_endpoint(api):
    with api.client() as c:
        r = c.get("/v1/voc", params={"window_days": 365})
        g = c.get("/v1/voc", params={"group_by": "segment"})
        bad = [c.get("/v1/voc", params=p).status_code for p in
               ({"group_by": "planet"}, {"window_days": 0}, {"as_of": "yesterday"}, {"window_days": 10 ** 9})]
    with api.client(key=None) as c:
        assert c.get("/v1/voc").status_code == 401
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"nps", "nps_ci", "n_responses", "response_coverage", "csat_mean", "ces_mean", "matrix", "trend"} <= set(body)
    s = pd.read_parquet(api.data / "surveys.parquet")
    end = pd.Timestamp(body["as_of"])
    w = s[(s.kind == "nps") & (s.responded_at < end) & (s.responded_at >= end - pd.Timedelta(days=365))]
    assert body["nps"] == pytest.approx(100 * ((w.score >= 9).mean() - (w.score <= 6).mean()), abs=0.01)
    assert body["n_responses"]["nps"] == len(w)
    assert sum(c["accounts"] for c in body["matrix"]) == body["response_coverage"]["active_accounts"]
    assert {x["group"] for x in g.json()["groups"]} >= {"Enterprise", "SMB"}
    assert bad == [422, 422, 422, 422]


def test_churn_reasons_endpoint(api):
    with api.client() as c:
        r = c.get("/v1/metrics/churn-reasons")
        g = c.get("/v1/metrics/churn-reasons", params={"group_by": "segment", "period": "year"})
        bad = [c.get("/v1/metrics/churn-reasons", params=p).status_code for p in
               ({"group_by": "planet"}, {"period": "fortnight"}, {"period": "2025Q7"})]
    assert r.status_code == 200, r.text
    body = r.json()
    rows = body["reasons"]
    assert rows and {"reason", "avoidable", "logos", "arr", "logo_share", "arr_share"} <= set(rows[0])
    assert sum(x["logo_share"] for x in rows) == pytest.approx(1) and 0 <= body["avoidable_arr_share"] <= 1
    truth = pd.read_parquet(api.data / "truth" / "renewals.parquet")
    assert body["logos"] == int(truth.churned.sum())
    assert sum(x["logos"] for x in g.json()["groups"]) == body["logos"] and g.json()["periods"]
    assert bad == [422, 422, 422]


def test_pipeline_endpoint(api):
    with api.client() as c:
        r = c.get("/v1/forecast/pipeline")
        assert c.get("/v1/forecast/pipeline", params={"group_by": "planet"}).status_code == 422
    assert r.status_code == 200, r.text
    body = r.json()
    sp = body["stage_probabilities"]
    assert {s: v["default"] for s, v in sp.items()} == {"emailed": 0.0, "discussion": 0.2, "contract_sent": 0.5,
                                                        "verbal": 0.8, "signed": 1.0, "lost": 0.0}
    assert all({"learned", "ci_low", "ci_high", "n"} <= set(v) for v in sp.values())
    assert body["windows"] and all({"start", "end", "open_amount", "weighted_default", "weighted_learned"} <= set(w)
                                   for w in body["windows"])
    assert body["backtest"] and all({"weighted_default", "weighted_learned", "won_amount"} <= set(b)
                                    for b in body["backtest"])
