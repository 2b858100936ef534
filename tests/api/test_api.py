"""The HTTP API against a real uvicorn server, real trained models in a real MLflow sqlite registry and a
real score set (see conftest.py). Covers auth, every endpoint, validation errors, paging, reload (ok,
forbidden, failed-and-kept), the model cache fallback, /metrics and /readyz."""
from __future__ import annotations

import json
import math
import shutil
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from csforecast.features.catalogue import render_drivers
from csforecast.jsonsafe import json_safe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scores(api):
    from csforecast.scoring.store import load_latest

    meta, df, hist = load_latest(api.home / "scores.duckdb")
    return meta, df.set_index("account_id", drop=False), hist


V1 = [("GET", "/v1/accounts/A00001", None), ("GET", "/v1/accounts", None),
      ("POST", "/v1/score", {"rows": [{}]}), ("GET", "/v1/forecast/renewals?start=2026-10-01&end=2027-01-01", None),
      ("GET", "/v1/metrics/retention", None), ("GET", "/v1/models", None), ("POST", "/v1/admin/reload", None)]


# ---------------------------------------------------------------------------------------------- ops
def test_healthz_and_readyz_need_no_key(api, scores):
    meta, df, _ = scores
    with api.client(key=None) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        r = c.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["ready"] is True and body["model_source"] == "registry"
    assert body["models"]["churn"] == meta["models"]["churn"]
    assert body["score_set"]["n_accounts"] == len(df)


def test_nothing_is_written_into_the_working_directory(api, tools):
    # simulate, train, score (twice), apikey create and serve ran in tools.workdir with CSFORECAST_HOME set: every
    # state file (keys, session secret, calibration, locks, the log) belongs in the home
    assert (api.home / "apikeys.json").exists() and (api.home / "scores.duckdb").exists()
    assert sorted(p.name for p in tools.workdir.iterdir()) == []


def test_prometheus_metrics(api):
    with api.client() as c:
        c.get("/v1/accounts", params={"limit": 1})
        c.get("/v1/accounts/does-not-exist")
    with api.client(key=None) as c:
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'csforecast_http_requests_total{method="GET",route="/v1/accounts",status="200"}' in text
    assert 'route="/v1/accounts/{account_id}",status="404"' in text   # route templates, not raw paths
    assert "does-not-exist" not in text
    assert "csforecast_http_request_duration_seconds_bucket" in text
    assert 'csforecast_model_info{family="churn"' in text
    assert "csforecast_ready 1.0" in text


def test_openapi_has_examples_and_security(api):
    with api.client(key=None) as c:
        spec = c.get("/openapi.json").json()
        assert c.get("/docs").status_code == 200
    assert "APIKeyHeader" in spec["components"]["securitySchemes"]
    assert spec["components"]["schemas"]["AccountDetail"]["examples"]
    ex = spec["paths"]["/v1/score"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert ex["served_model"]["value"]["rows"][0]                      # built from the served model's inputs


# ---------------------------------------------------------------------------------------------- auth
@pytest.mark.parametrize("method,path,body", V1)
def test_every_v1_endpoint_needs_a_valid_key(api, method, path, body):
    bad = [None, "", "nonsense", "csf_", "csf__x", "csf_000000000000_wrong",
           api.read_key[:-1] + ("A" if api.read_key[-1] != "A" else "B"),          # right id, wrong secret
           api.read_key.split("_")[0] + "_ffffffffffff_" + api.read_key.split("_", 2)[2]]  # unknown id
    for key in bad:
        with api.client(key=key) as c:
            r = c.request(method, path, json=body)
        assert r.status_code == 401, (key, r.status_code, r.text)
        assert "API key" in r.json()["detail"]
        assert api.read_key not in r.text


def test_key_is_checked_before_the_body(api):
    with api.client(key=None) as c:
        for content in (b"{not json", b'{"rows": "garbage"}', b'{"rows": [{}]}'):
            r = c.post("/v1/score", content=content, headers={"content-type": "application/json"})
            assert r.status_code == 401, (content, r.text)


def test_read_key_cannot_use_admin_endpoints(api):
    with api.client("read") as c:
        r = c.post("/v1/admin/reload")
    assert r.status_code == 403 and "admin" in r.json()["detail"]


def test_keys_are_stored_hashed_and_never_logged(api):
    stored = (api.home / "apikeys.json").read_text()
    assert api.read_key not in stored and api.admin_key not in stored
    assert api.read_key.split("_", 2)[2] not in stored
    assert (api.home / "apikeys.json").stat().st_mode & 0o077 == 0
    assert api.read_key not in api.server.output() and api.admin_key not in api.server.output()


# ---------------------------------------------------------------------------------------------- accounts
def test_account_detail(api, scores):
    meta, df, hist = scores
    aid = df.sort_values("risk_arr", ascending=False).index[0]
    with api.client() as c:
        r = c.get(f"/v1/accounts/{aid}")
    assert r.status_code == 200
    d = r.json()
    row = df.loc[aid]
    assert d["account_id"] == aid
    assert d["churn_probability"] == pytest.approx(row["churn_probability"], abs=1e-12)
    assert d["renewal_date"] == pd.Timestamp(row["renewal_date"]).date().isoformat()
    assert d["as_of"] == pd.Timestamp(meta["as_of"]).date().isoformat() and d["data_hash"] == meta["data_hash"]
    assert d["score_set_version"] == int(meta["version"])
    assert d["model_versions"]["churn"] == meta["models"]["churn"]
    assert d["drivers"] and all(isinstance(x["text"], str) and x["text"] for x in d["drivers"])
    assert d["drivers"] == json_safe(render_drivers(row["churn_drivers"]))   # the one rendering, in the API
    # families that are not served are null, never invented
    if "p_active_90d" in df.columns:
        assert d["survival"]["p_active_90d"] == pytest.approx(row["p_active_90d"])
    else:
        assert d["survival"] is None
    if "health_score" in df.columns:
        assert d["health"]["score"] == pytest.approx(row["health_score"])
        assert d["health"]["band"] == row["health_band"]
        assert isinstance(d["triggers"], list)
        # the scorecard beside the score (issue 17): sub-scores are the pillar means of the components served
        comps = {c["component"]: c["score"] for c in d["health"]["components"]}
        outcomes = [comps[c] for c in ("deployment", "adoption", "engagement", "value") if c in comps]
        experience = [comps[c] for c in ("nps", "support", "sentiment") if c in comps]
        assert d["outcomes_score"] == pytest.approx(np.mean(outcomes)) if outcomes else d["outcomes_score"] is None
        assert (d["experience_score"] == pytest.approx(np.mean(experience)) if experience
                else d["experience_score"] is None)
        o, e = d["outcomes_score"], d["experience_score"]
        assert d["health_quadrant"] == (None if o is None or e is None else
                                        {(True, True): "healthy", (False, True): "false_positive",
                                         (True, False): "quiet_value", (False, False): "at_risk"}[(o >= 50, e >= 50)])
        s = d["health"]["score"]
        assert d["health_band5"] == ("critical" if s < 20 else "poor" if s < 40 else "fair" if s < 60
                                     else "good" if s < 80 else "excellent")
        if len(hist):
            assert d["health_trend"] and d["health_trend"][-1]["week"] >= d["health_trend"][0]["week"]
    else:
        assert d["health"] is None and d["triggers"] is None and d["health_trend"] is None


def test_an_account_id_that_is_not_url_safe_is_served(api, scores):
    """An id with a slash, a space and a non-ASCII letter ("EMEA/A00025 Ü", as the fixture writes some): its
    detail at its URL (percent-encoded, or with the slash as it is), and its page on the dashboard."""
    from urllib.parse import quote

    _meta, df, _hist = scores
    odd = [a for a in df.index if "/" in a]
    assert odd, "the fixture's renamed accounts are scored"
    with api.client() as c:
        for path in (quote(odd[0], safe=""), quote(odd[0])):
            r = c.get(f"/v1/accounts/{path}")
            assert r.status_code == 200 and r.json()["account_id"] == odd[0], (path, r.text[:300])
        assert c.get(f"/v1/accounts/{quote('EMEA/NOPE', safe='')}").status_code == 404
        # the dashboard's account page is routed (to the sign-in, without a session), not a 404
        r = c.get(f"/ui/accounts/{quote(odd[0])}", follow_redirects=False)
        assert r.status_code in (303, 307), r.status_code


def test_unknown_account_is_404_json(api):
    with api.client() as c:
        r = c.get("/v1/accounts/NOPE-123")
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    assert "NOPE-123" in r.json()["detail"]


def _all_pages(c, **params):
    items, cursor, totals = [], None, set()
    while True:
        r = c.get("/v1/accounts", params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        items += page["items"]
        totals.add(page["total"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items, totals


def test_list_paging_covers_every_account_once_in_order(api, scores):
    _, df, _ = scores
    with api.client() as c:
        items, totals = _all_pages(c, limit=37)
    assert totals == {len(df)}
    ids = [i["account_id"] for i in items]
    assert len(ids) == len(set(ids)) == len(df)
    risk = [i["risk_arr"] for i in items]
    assert risk == sorted(risk, reverse=True)
    keys = {"account_id", "name", "segment", "csm_id", "arr", "renewal_date", "churn_probability", "health_score",
            "health_band", "risk_arr", "outcomes_score", "experience_score", "health_quadrant", "health_band5"}
    assert keys <= set(items[0])
    if "health_score" in df.columns:   # every scored account carries the scorecard, as in the score set
        by_id = {i["account_id"]: i for i in items}
        for aid, row in df.iterrows():
            assert by_id[aid]["health_band5"] == row["health_band5"]
            assert by_id[aid]["health_quadrant"] == row["health_quadrant"]
            assert by_id[aid]["outcomes_score"] == pytest.approx(row["outcomes_score"], abs=1e-9)
        assert {i["health_band5"] for i in items} <= {"critical", "poor", "fair", "good", "excellent"}
        assert {i["health_quadrant"] for i in items} <= {"healthy", "false_positive", "quiet_value", "at_risk"}


def test_list_items_carry_the_provenance_of_the_account_response(api):
    """Issue 20: every list item says where its numbers come from, as GET /v1/accounts/{id} does; day counts
    are integers."""
    with api.client() as c:
        items = c.get("/v1/accounts", params={"limit": 5}).json()["items"]
        for item in items:
            detail = c.get(f"/v1/accounts/{item['account_id']}").json()
            for k in ("as_of", "data_hash", "model_versions", "fallback", "score_set_version"):
                assert item[k] == detail[k], k
            assert item["model_versions"] and item["as_of"]
            assert isinstance(item["days_to_renewal"], int) and isinstance(detail["days_to_renewal"], int)
            assert item["days_to_renewal"] == detail["days_to_renewal"]
            assert detail["tenure_days"] is None or isinstance(detail["tenure_days"], int)


@pytest.mark.parametrize("sort,desc", [("churn_probability", True), ("arr", True), ("renewal_date", False),
                                       ("health_score", False)])
def test_list_sorts(api, sort, desc):
    with api.client() as c:
        items = c.get("/v1/accounts", params={"sort": sort, "limit": 500}).json()["items"]
        asc = c.get("/v1/accounts", params={"sort": sort, "order": "asc", "limit": 500}).json()["items"]
    vals = [i[sort] for i in items if i[sort] is not None]
    assert vals == sorted(vals, reverse=desc)
    assert [i[sort] for i in items][len(vals):] == [None] * (len(items) - len(vals))  # nulls last
    avals = [i[sort] for i in asc if i[sort] is not None]
    assert avals == sorted(avals)


def test_list_filters(api, scores):
    _, df, _ = scores
    seg = df["segment"].value_counts().index[0]
    csm = df["csm_id"].dropna().value_counts().index[0]
    cut = pd.Timestamp(df["renewal_date"].median()).date()
    with api.client() as c:
        by_seg = c.get("/v1/accounts", params={"segment": seg, "limit": 500}).json()
        by_csm = c.get("/v1/accounts", params={"csm_id": csm, "limit": 500}).json()
        soon = c.get("/v1/accounts", params={"renewal_before": cut.isoformat(), "limit": 500}).json()
        both = c.get("/v1/accounts", params={"segment": seg, "renewal_before": cut.isoformat(), "limit": 500}).json()
        red = c.get("/v1/accounts", params={"band": "red", "limit": 500}).json()
        none = c.get("/v1/accounts", params={"segment": "no-such-segment"}).json()
    assert by_seg["total"] == (df["segment"] == seg).sum() and {i["segment"] for i in by_seg["items"]} == {seg}
    assert by_csm["total"] == (df["csm_id"] == csm).sum() and {i["csm_id"] for i in by_csm["items"]} == {csm}
    assert soon["total"] == (pd.to_datetime(df["renewal_date"]) < pd.Timestamp(cut)).sum()
    assert all(i["renewal_date"] < cut.isoformat() for i in soon["items"])
    assert both["total"] == ((df["segment"] == seg) & (pd.to_datetime(df["renewal_date"]) < pd.Timestamp(cut))).sum()
    expected_red = (df["health_band"] == "red").sum() if "health_band" in df.columns else 0
    assert red["total"] == expected_red and all(i["health_band"] == "red" for i in red["items"])
    assert none == {"items": [], "next_cursor": None, "total": 0}


@pytest.mark.parametrize("params", [{"sort": "name"}, {"sort": "risk"}, {"limit": 0}, {"limit": 501},
                                    {"limit": "ten"}, {"band": "purple"}, {"renewal_before": "next week"},
                                    {"order": "sideways"}, {"cursor": "!!!"}, {"cursor": "eyJvIjoiYSJ9"},
                                    {"cursor": "bm90IGpzb24"}])
def test_list_rejects_bad_parameters(api, params):
    with api.client() as c:
        r = c.get("/v1/accounts", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][0] == "query"


def test_cursor_is_bound_to_its_query(api):
    with api.client() as c:
        cursor = c.get("/v1/accounts", params={"limit": 5}).json()["next_cursor"]
        assert c.get("/v1/accounts", params={"limit": 5, "cursor": cursor}).status_code == 200
        r = c.get("/v1/accounts", params={"limit": 5, "cursor": cursor, "sort": "arr"})
    assert r.status_code == 422 and "cursor" in r.json()["detail"][0]["msg"]


# ---------------------------------------------------------------------------------------------- scoring
@pytest.fixture(scope="module")
def snapshot_rows(api, scores):
    """Real feature rows of the scored accounts (the same snapshot batch scoring used)."""
    from csforecast.data.sources import open_source
    from csforecast.features.snapshot import build_snapshots

    meta, df, _ = scores
    snap = build_snapshots(open_source(str(api.data)), [pd.Timestamp(meta["as_of"]).date()], labels=False)
    with api.client() as c:
        families = c.get("/v1/models").json()["families"]
    churn_inputs = families["churn"]["inputs"]
    feats = list(dict.fromkeys(churn_inputs + (families["health"]["inputs"] if "health" in families else [])))
    snap = snap.set_index("account_id").loc[df.index]

    def clean(v):
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return None
        return v.item() if isinstance(v, np.generic) else v
    rows = [{f: clean(v) for f, v in zip(feats, vals)} for vals in snap[feats].astype(object).to_numpy()]
    return list(df.index), rows, churn_inputs


def test_on_demand_scoring_matches_batch_scores(api, scores, snapshot_rows):
    _, df, _ = scores
    ids, rows, _ = snapshot_rows
    with api.client() as c:
        one = c.post("/v1/score", json={"rows": rows[:1]})
        hundred = c.post("/v1/score", json={"rows": rows[:100]})
    assert one.status_code == 200 and hundred.status_code == 200, hundred.text
    body = hundred.json()
    assert body["model_versions"]["churn"] == df["churn_model_version"].iloc[0]
    got = [r["churn_probability"] for r in body["results"]]
    # on-demand scoring is the churn model's; the score set serves the blend (calls) or the survival model
    # (renewals beyond the churn model's horizon) for some accounts and keeps the model's beside it
    model_col = "model_churn_probability" if "model_churn_probability" in df.columns else "churn_probability"
    assert got == pytest.approx(df.loc[ids[:100], model_col].tolist(), abs=1e-9)
    assert one.json()["results"][0]["churn_probability"] == pytest.approx(got[0], abs=1e-12)
    if "health_score" in df.columns:   # the rows carry the health model's inputs too
        assert body["model_versions"]["health"] == df["health_model_version"].iloc[0]
        health = [r["health_score"] for r in body["results"]]
        assert health == pytest.approx(df.loc[ids[:100], "health_score"].tolist(), abs=1e-6)
        for k in ("outcomes_score", "experience_score"):
            assert [r[k] for r in body["results"]] == pytest.approx(df.loc[ids[:100], k].tolist(), abs=1e-6)
        for k in ("health_quadrant", "health_band5"):
            assert [r[k] for r in body["results"]] == df.loc[ids[:100], k].tolist()
    else:
        assert all(set(r) == {"churn_probability"} for r in body["results"])


def test_no_health_score_without_the_health_inputs(api, snapshot_rows):
    _, rows, churn_inputs = snapshot_rows
    with api.client() as c:
        families = c.get("/v1/models").json()["families"]
        only_churn = [{k: r[k] for k in churn_inputs} for r in rows[:5]]
        body = c.post("/v1/score", json={"rows": only_churn}).json()
    health_inputs = set(families.get("health", {}).get("inputs", []))
    if not health_inputs or not health_inputs <= set(churn_inputs):
        assert all("health_score" not in r for r in body["results"]) and "health" not in body["model_versions"]
    if health_inputs:   # rows missing one health input, or health switched off: no health score
        some = sorted(health_inputs)[0]
        partial = [{k: v for k, v in r.items() if k != some} for r in rows[:3]]
        with api.client() as c:
            for payload in ({"rows": partial}, {"rows": rows[:3], "health": False}):
                b = c.post("/v1/score", json=payload).json()
                assert all(set(r) <= {"churn_probability", "warnings"} for r in b["results"]), payload
                assert set(b["model_versions"]) == {"churn"}


def test_contributions_add_up_to_the_logit(api, snapshot_rows):
    _, rows, feats = snapshot_rows
    with api.client() as c:
        res = c.post("/v1/score", json={"rows": rows[:3], "contributions": True}).json()["results"]
    for r in res:
        assert set(r["contributions"]) == set(feats)
        total = r["base_value"] + sum(v for v in r["contributions"].values() if v is not None)
        assert total == pytest.approx(math.log(r["churn_probability"] / (1 - r["churn_probability"])), abs=1e-6)


def test_missing_features_are_missing_values(api):
    with api.client() as c:
        r = c.post("/v1/score", json={"rows": [{"arr": None}, {"arr": None, "seats": None},
                                               {"arr": 50000, "segment": "never-seen"}]})
    assert r.status_code == 200
    res = r.json()["results"]
    ps = [x["churn_probability"] for x in res]
    assert all(0 < p < 1 for p in ps) and ps[0] == ps[1]
    assert all(any(w["type"] == "missing_inputs" for w in x["warnings"]) for x in res)


@pytest.mark.parametrize("body,loc,words", [
    ({"rows": [{"arr": 1, "favourite_colour": "blue"}]}, ["body", "rows", 0, "favourite_colour"], "unknown column"),
    ({"rows": [{"arr": 1}, {"arr": "lots"}]}, ["body", "rows", 1, "arr"], "expected a number"),
    ({"rows": [{}, {}, {"segment": 3}]}, ["body", "rows", 2, "segment"], "expected a string"),
    ({"rows": [{"arr": {"nested": 1}}]}, ["body", "rows", 0, "arr"], ""),
    ({"rows": [{"arr": [1, 2]}]}, ["body", "rows", 0, "arr"], ""),
    ({"rows": "garbage"}, ["body", "rows"], ""),
    ({"rows": []}, ["body", "rows"], ""),
    ({"rows": ["x"]}, ["body", "rows", 0], ""),
    ({"rows": [{}], "contributions": "maybe"}, ["body", "contributions"], ""),
    ({"rows": [{}], "colour": 1}, ["body", "colour"], ""),
    ({}, ["body", "rows"], ""),
])
def test_score_validation_errors_name_the_field(api, body, loc, words):
    with api.client() as c:
        r = c.post("/v1/score", json=body)
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    hit = [e for e in errors if e["loc"][:len(loc)] == loc]
    assert hit, errors
    assert words in hit[0]["msg"]


def test_score_rejects_non_json_and_huge_numbers(api):
    with api.client() as c:
        assert c.post("/v1/score", content=b"{not json", headers={"content-type": "application/json"}
                      ).status_code == 422
        assert c.post("/v1/score", content=b"rows=1", headers={"content-type": "text/plain"}).status_code == 422
        r = c.post("/v1/score", content=b'{"rows": [{"arr": 1' + b"0" * 400 + b"}]}",
                   headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "rows", 0, "arr"], r.text
        r = c.post("/v1/score", content=b'{"rows": [{"arr": NaN, "seats": Infinity}]}',
                   headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert [e["loc"][-1] for e in r.json()["detail"]] == ["arr", "seats"]


def test_oversized_batch_is_413(api):
    with api.client() as c:
        r = c.post("/v1/score", json={"rows": [{"arr": 1000.0}] * 1001})
        assert r.status_code == 413 and "1000" in r.json()["detail"]
        assert c.post("/v1/score", json={"rows": [{"arr": 1000.0}] * 1000}).status_code == 200
        big = b'{"rows": [{"arr": 1}], "pad": "' + b"x" * (17 << 20) + b'"}'
        assert c.post("/v1/score", content=big, headers={"content-type": "application/json"}).status_code == 413


# ---------------------------------------------------------------------------------------------- forecast / metrics
def test_forecast(api):
    from importlib.util import find_spec

    with api.client() as c:
        r = c.get("/v1/forecast/renewals", params={"start": "2026-10-01", "end": "2027-01-01"})
        if find_spec("csforecast.forecast.renewals") is None:
            assert r.status_code == 503 and "not available" in r.json()["detail"]
        else:
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["start"] == "2026-10-01" and body["model_versions"]["churn"] and body["forecast"]
            f = body["forecast"]
            for part in ("churned_arr", "contraction_arr", "expansion_arr"):
                assert part in f["expected"] and {"p10", "p50", "p90"} <= set(f["intervals"][part])
            # two group columns: one group per pair, adding up to the portfolio
            r2 = c.get("/v1/forecast/renewals", params={"start": "2026-10-01", "end": "2027-01-01",
                                                        "group_by": "segment,csm_id"})
            assert r2.status_code == 200, r2.text
            g2 = r2.json()["forecast"]["groups"]
            assert g2 and all({"segment", "csm_id"} <= set(g) for g in g2)
            assert sum(g["expected"]["churned_arr"] for g in g2) == pytest.approx(f["expected"]["churned_arr"])
        for params in ({"start": "2027-01-01", "end": "2026-10-01"}, {"start": "2026-10-01", "end": "2026-10-01"},
                       {"start": "2026-13-01", "end": "2027-01-01"}, {"start": "soon", "end": "2027-01-01"},
                       {"end": "2027-01-01"}, {"start": "2026-10-01", "end": "2027-01-01", "group_by": "planet"},
                       {"start": "2026-10-01", "end": "2027-01-01", "group_by": "segment,planet"},
                       {"start": "2026-10-01", "end": "2027-01-01", "group_by": "segment,segment"}):
            r = c.get("/v1/forecast/renewals", params=params)
            assert r.status_code == 422, (params, r.text)


def test_retention_metrics(api):
    with api.client() as c:
        q = c.get("/v1/metrics/retention").json()
        seg = c.get("/v1/metrics/retention", params={"period": "year", "group_by": "segment"}).json()
        for params in ({"period": "week"}, {"group_by": "planet"}):
            assert c.get("/v1/metrics/retention", params=params).status_code == 422
    assert q["period"] == "quarter" and q["rows"] and {"grr", "nrr", "starting_arr", "ending_arr"} <= set(q["rows"][0])
    r0 = q["rows"][-1]
    bridge = r0["starting_arr"] + r0["new_arr"] + r0["expansion_arr"] - r0["contraction_arr"] - r0["churned_arr"]
    assert bridge == pytest.approx(r0["ending_arr"], abs=0.01)
    assert {r["group"] for r in seg["rows"]} >= {"Enterprise", "SMB"}


# ---------------------------------------------------------------------------------------------- models
def test_models(api, scores):
    meta, _, _ = scores
    with api.client() as c:
        body = c.get("/v1/models").json()
    churn = body["families"]["churn"]
    assert body["registry_reachable"] is True
    assert churn["served_version"] == meta["models"]["churn"] and churn["source"] == "registry"
    assert "champion" in churn["aliases"]
    assert {"auc", "log_loss", "ece"} <= set(churn["metrics"])
    assert churn["versions"][0]["version"] == churn["served_version"]


def test_health_scorecard_weight_sets_on_the_validation_rows(api):
    """Issue 17: the learned and equal weights scored on the health model's validation rows (logged with its
    run), and any weight set in a request scored on the same rows; bad sets are 422 naming the field."""
    with api.client() as c:
        r = c.get("/v1/health/scorecard")
        assert r.status_code == 200, r.text
        card = r.json()
        mine = c.post("/v1/health/scorecard/evaluate", json={"weights": {"deployment": 1}})
        same = c.post("/v1/health/scorecard/evaluate", json={"weights": card["weight_sets"]["learned"]["weights"]})
        bad = {name: c.post("/v1/health/scorecard/evaluate", json=body) for name, body in {
            "negative": {"weights": {"nps": -1}}, "unknown": {"weights": {"vibes": 1}},
            "text": {"weights": {"nps": "lots"}}, "zero": {"weights": {"nps": 0}},
            "extra": {"weights": {"nps": 1}, "name": "x"}}.items()}
        nan = c.post("/v1/health/scorecard/evaluate", content=b'{"weights": {"support": NaN}}',
                     headers={"content-type": "application/json"})
    assert card["available"] is True and card["n_rows"] > 50 and 0 < card["n_churned"] < card["n_rows"]
    assert {"value", "sentiment"} <= set(card["components"])   # the simulator writes both optional tables
    sets = card["weight_sets"]
    assert {"learned", "equal_weight"} <= set(sets)
    learned = sets["learned"]
    assert sum(learned["weights"].values()) == pytest.approx(1.0)
    for s in sets.values():
        m = s["metrics"]
        assert 0.5 < m["auc"] < 1 and m["top_decile_lift"] > 1
        assert sum(b["n"] for b in m["bands5"].values()) == card["n_rows"] == sum(b["n"] for b in m["bands3"].values())
    assert mine.status_code == 200, mine.text
    assert mine.json()["n_rows"] == card["n_rows"] and mine.json()["weights"] == {"deployment": 1.0}
    assert mine.json()["metrics"]["auc"] != sets["equal_weight"]["metrics"]["auc"]
    # the learned weights as a weight set rank the rows as the model does: the same AUC on the same rows
    assert same.json()["metrics"]["auc"] == pytest.approx(learned["metrics"]["auc"], abs=1e-9)
    for name, resp in {**bad, "nan": nan}.items():
        assert resp.status_code == 422, (name, resp.text)
    assert bad["negative"].json()["detail"][0]["loc"] == ["body", "weights", "nps"]
    assert bad["unknown"].json()["detail"][0]["loc"] == ["body", "weights", "vibes"]
    assert bad["text"].json()["detail"][0]["loc"] == ["body", "weights", "nps"]
    assert nan.json()["detail"][0]["loc"] == ["body", "weights", "support"]


def test_a_named_weight_set_is_saved_listed_and_deleted_through_the_api(api):
    """PUT /v1/health/scorecard/weights/{name} stores a set (scope write or admin; the dashboard's save path)
    and returns it scored; GET /v1/health/scorecard lists it under its name; bad sets or names are 422 naming
    the field and store nothing; DELETE removes it (404 when absent)."""
    body = {"weights": {"adoption": 2, "nps": 1}}
    with api.client("admin") as admin, api.client() as reader:
        refused = reader.put("/v1/health/scorecard/weights/leader-q4", json=body)
        put = admin.put("/v1/health/scorecard/weights/leader-q4", json=body)
        evaluated = admin.post("/v1/health/scorecard/evaluate", json=body)
        listed = reader.get("/v1/health/scorecard").json()["weight_sets"]
        bad = {case: admin.put(f"/v1/health/scorecard/weights/{n}", json=b) for case, (n, b) in {
            "negative": ("x1", {"weights": {"nps": -1}}), "unknown": ("x2", {"weights": {"vibes": 1}}),
            "zero": ("x3", {"weights": {"nps": 0, "adoption": 0}}), "reserved": ("learned", body),
            "bad name": ("no%20spaces", body)}.items()}
        nan = admin.put("/v1/health/scorecard/weights/x4", content=b'{"weights": {"support": Infinity}}',
                        headers={"content-type": "application/json"})
        after_bad = reader.get("/v1/health/scorecard").json()["weight_sets"]
        deleted = admin.delete("/v1/health/scorecard/weights/leader-q4")
        again = admin.delete("/v1/health/scorecard/weights/leader-q4")
        gone = reader.get("/v1/health/scorecard").json()["weight_sets"]
    assert refused.status_code == 403
    assert put.status_code == 200, put.text
    saved = put.json()
    assert saved["name"] == "leader-q4" and saved["weights"] == {"adoption": 2.0, "nps": 1.0}
    assert saved["saved_by"] and saved["saved_at"] and saved["n_rows"] > 50
    assert saved["metrics"] == evaluated.json()["metrics"]       # scored as /evaluate scores it
    assert listed["leader-q4"]["weights"] == saved["weights"] and listed["leader-q4"]["metrics"] == saved["metrics"]
    assert {"learned", "equal_weight"} <= set(listed)
    for case, resp in {**bad, "infinite": nan}.items():
        assert resp.status_code == 422, (case, resp.text)
    assert bad["negative"].json()["detail"][0]["loc"] == ["body", "weights", "nps"]
    assert bad["unknown"].json()["detail"][0]["loc"] == ["body", "weights", "vibes"]
    assert bad["reserved"].json()["detail"][0]["loc"] == ["path", "name"]
    assert bad["bad name"].json()["detail"][0]["loc"] == ["path", "name"]
    assert not {"x1", "x2", "x3", "x4"} & set(after_bad) and after_bad["learned"] == listed["learned"]
    assert deleted.status_code == 200 and deleted.json() == {"deleted": "leader-q4"}
    assert again.status_code == 404 and "leader-q4" not in gone


# ---------------------------------------------------------------------------------------------- reload
def test_reload_swaps_in_a_new_score_set_without_dropping_requests(api, scores):
    from csforecast.scoring.store import load_latest, write_scores

    meta, df, hist = scores
    aid = df.index[0]
    before = httpx.get(api.url + "/readyz").json()["score_set"]["version"]
    # a new score set, written with the real store (what `csforecast score` does)
    m, s, h = load_latest(api.home / "scores.duckdb")
    new_version = write_scores(api.home / "scores.duckdb", s.drop(columns=["version"]), as_of=m["as_of"],
                               data_hash=m["data_hash"], models=m["models"],
                               history=h.drop(columns=["version"]) if len(h) else None)
    statuses, stop = [], threading.Event()

    def hammer():
        with api.client() as c:
            while not stop.is_set():
                statuses.append(c.get(f"/v1/accounts/{aid}").status_code)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        with api.client("admin") as c:
            r = c.post("/v1/admin/reload")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "reloaded" and body["score_set"]["version"] == new_version
    assert body["changed"] == ["score_set"]                  # the models were not reloaded
    assert body["previous_score_set"] == before and body["models"]["churn"] == meta["models"]["churn"]
    assert statuses and set(statuses) == {200}
    with api.client() as c:
        assert c.get(f"/v1/accounts/{aid}").json()["score_set_version"] == new_version


def test_failed_reload_keeps_serving_the_old_set(api):
    db = api.home / "scores.duckdb"
    hidden = api.home / "scores.duckdb.hidden"
    with api.client() as c:
        before = c.get("/v1/accounts", params={"limit": 3}).json()
        ready_before = c.get("/readyz").json()
    db.rename(hidden)
    try:
        with api.client("admin") as c:
            r = c.post("/v1/admin/reload")
        with api.client() as c:
            after = c.get("/v1/accounts", params={"limit": 3}).json()
            ready_after = c.get("/readyz")
    finally:
        hidden.rename(db)
    assert r.status_code == 503, r.text
    assert "reload failed" in r.json()["detail"] and "still serving" in r.json()["detail"]
    assert after == before
    assert ready_after.status_code == 200 and ready_after.json()["score_set"] == ready_before["score_set"]
    with api.client(key=None) as c:
        assert 'csforecast_reloads_total{outcome="failed"}' in c.get("/metrics").text
    with api.client("admin") as c:
        assert c.post("/v1/admin/reload").status_code == 200


def test_unreachable_registry_falls_back_to_the_model_cache(api, tools, tmp_path):
    """Registry down at start: served from the local cache written after the last good load, with a warning.
    Without a cache the server refuses to start, saying why. (This server also has no data source:
    forecasts and retention metrics answer 503 saying how to configure one.)"""
    assert (api.home / "model_cache" / "champions.pkl").exists()
    env = tools.base_env(api.home)
    env.update({"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"})
    srv = tools.start_server(env, tmp_path / "cached.log", data=None)
    try:
        with httpx.Client(base_url=srv.url, headers={"X-API-Key": api.read_key}, timeout=60) as c:
            ready = c.get("/readyz").json()
            models = c.get("/v1/models").json()
            p = c.post("/v1/score", json={"rows": [{"arr": 1000}]})
            f = c.get("/v1/forecast/renewals", params={"start": "2026-10-01", "end": "2027-01-01"})
            m = c.get("/v1/metrics/retention")
    finally:
        srv.stop()
    assert f.status_code == 503 and "--data" in f.json()["detail"]
    assert m.status_code == 503 and "--data" in m.json()["detail"]
    assert ready["ready"] and ready["model_source"] == "cache"
    assert any("cached" in p for p in ready["problems"])
    assert models["families"]["churn"]["source"] == "cache" and models["registry_reachable"] is False
    assert p.status_code == 200
    assert "CACHED" in srv.output()

    empty = tmp_path / "empty_home"
    empty.mkdir()
    shutil.copy(api.home / "scores.duckdb", empty / "scores.duckdb")
    env2 = tools.base_env(empty)
    env2.update({k: env[k] for k in ("MLFLOW_TRACKING_URI", "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                                     "MLFLOW_HTTP_REQUEST_TIMEOUT")})
    srv = tools.start_server(env2, tmp_path / "nocache.log", wait_ready=False)
    code = srv.proc.wait(120)
    assert code != 0
    out = srv.output()
    assert "not reachable" in out and "no cached model set" in out


def _processes_with(mark: str) -> list[int]:
    """Pids of the live processes whose environment holds `mark`."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if mark.encode() in (d / "environ").read_bytes():
                    found.append(int(d.name))
            except OSError:   # gone, or not ours to read
                pass
    return found


def test_a_killed_server_leaves_no_helper_process_behind(api, tools, tmp_path):
    """The score-set builder is a helper process (api/scoreset.py). A server killed outright (no shutdown) while
    the helper is still starting must not leave it running: it watches for its server and exits."""
    import signal
    import uuid

    mark = f"CSF_TEST_MARK={uuid.uuid4().hex}"
    env = {**tools.base_env(api.home), mark.split("=")[0]: mark.split("=")[1]}
    srv = tools.start_server(env, tmp_path / "killed.log", data=None)
    assert len(_processes_with(mark)) >= 2, "the server and its helper"
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    deadline = time.monotonic() + 30
    while _processes_with(mark) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_with(mark), "a helper process outlived its server"


def test_apikey_cli_json(tools, tmp_path):
    env = tools.base_env(tmp_path)
    out = json.loads(tools.run_cli(["apikey", "create", "--scope", "admin", "--json"], env, tmp_path / "log"))
    assert set(out) == {"key", "scope", "id"} and out["scope"] == "admin" and out["key"].startswith("csf_")
    with pytest.raises(RuntimeError):
        tools.run_cli(["apikey", "create", "--scope", "superuser"], env, tmp_path / "log")
