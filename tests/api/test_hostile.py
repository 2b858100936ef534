"""Hostile input against the real server (beside the schemathesis fuzz, which only sends valid JSON): JSON
bodies with NaN / Infinity literals and over-long numbers in every position, raw bytes, and secrets in query
strings. Never a 5xx, every 422 is JSON that names the field, and nothing non-finite is scored. Also the
score rows' warnings (unknown levels, inputs left out), `strict`, the no-input row, and the public OpenAPI
example (synthetic values only)."""
from __future__ import annotations

import json

import httpx
import pytest

from csforecast.features.catalogue import render_drivers

pytestmark = pytest.mark.slow

NON_FINITE = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1" + b"0" * 400, b"-" + b"9" * 5000,
              b"1." + b"5" * 5000 + b"e309"]
# bodies with a hole (@) where a hostile literal goes; @ covers every place a number can stand
TEMPLATES = [b'{"rows": [{"arr": @}]}', b'{"rows": [{"segment": @}]}', b'{"rows": [{"arr": 1, "days_to_renewal": @}]}',
             b'{"rows": @}', b'{"rows": [@]}', b'{"rows": [{"arr": 1}, @]}', b'{"rows": [{"arr": 1}], "health": @}',
             b'{"rows": [{"arr": 1}], "contributions": @}', b'{"rows": [{"arr": 1}], "strict": @}',
             b'{"rows": [{"arr": 1, "no_such_input": @}]}', b'{"rows": [{"arr": 1}], "extra": @}', b'@',
             b'{"rows": [{"arr": [@]}]}', b'{"rows": [{"arr": {"x": @}}]}', b'[@]']


def _post(c: httpx.Client, body: bytes) -> httpx.Response:
    return c.post("/v1/score", content=body, headers={"content-type": "application/json"})


def _assert_422_names_a_field(r: httpx.Response, body: bytes) -> list[dict]:
    assert r.status_code == 422, (body[:120], r.status_code, r.text[:300])
    detail = r.json()["detail"]                            # the 422 itself is valid JSON, whatever came in
    assert detail and all(e["loc"] and e["loc"][0] == "body" and e["msg"] for e in detail), detail
    json.dumps(r.json(), allow_nan=False)                  # no NaN echoed back
    return detail


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.decode()[:40])
def test_non_finite_literals_and_over_long_numbers_are_422s(api, template):
    with api.client() as c:
        for lit in NON_FINITE:
            body = template.replace(b"@", lit)
            _assert_422_names_a_field(_post(c, body), body)


@pytest.mark.parametrize("lit", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"1" + b"0" * 400])
def test_a_non_finite_feature_value_is_rejected_naming_row_and_field(api, lit):
    with api.client() as c:
        body = b'{"rows": [{"arr": 1000}, {"arr": 2000, "seats": ' + lit + b'}]}'
        detail = _assert_422_names_a_field(_post(c, body), body)
    hit = [e for e in detail if e["loc"] == ["body", "rows", 1, "seats"]]
    assert hit and "finite" in hit[0]["msg"] and hit[0]["input"] in ("NaN", "Infinity", "-Infinity"), detail


def test_raw_bytes_and_broken_json_are_422s(api):
    bodies = [b"\xff\xfe\x00garbage", b'{"rows": [{"arr": "\xff\xfe"}]}', b'{"rows": [{"arr": 1}', b"",
              b'{"rows": [{"arr": 1e99999999999999999999}]}', b'{"rows": [{"arr": 1}]}' + b" " * 10 + b"x",
              b'{"rows": [{"' + b"k" * 100_000 + b'": 1}]}', b'{"rows": [' + b"[" * 5000 + b"]" * 5000 + b"]}"]
    with api.client() as c:
        for body in bodies:
            r = _post(c, body)
            assert r.status_code == 422, (body[:60], r.status_code, r.text[:300])
            json.dumps(r.json(), allow_nan=False)


@pytest.mark.parametrize("path", ["/v1/accounts?limit=NaN", "/v1/accounts?limit=Infinity",
                                  "/v1/accounts?limit=1" + "0" * 400, "/v1/accounts?limit=-Infinity",
                                  "/v1/accounts?renewal_before=NaN",
                                  "/v1/forecast/renewals?start=NaN&end=Infinity",
                                  "/v1/metrics/retention?period=NaN"])
def test_non_finite_query_values_are_422s(api, path):
    with api.client() as c:
        r = c.get(path)
    assert r.status_code == 422, r.text
    json.dumps(r.json(), allow_nan=False)


# ---------------------------------------------------------------------------------------------- rows
def test_a_row_with_none_of_the_inputs_is_a_422_naming_the_row(api):
    with api.client() as c:
        r = c.post("/v1/score", json={"rows": [{"arr": 1000}, {}, {"arr": 5}]})
    assert r.status_code == 422
    hit = [e for e in r.json()["detail"] if e["loc"] == ["body", "rows", 1]]
    assert hit and "none of the churn model's" in hit[0]["msg"] and "row 1" in hit[0]["msg"]


def test_unknown_levels_and_left_out_inputs_are_warned_per_row(api):
    with api.client() as c:
        inputs = c.get("/v1/models").json()["families"]["churn"]["inputs"]
        r = c.post("/v1/score", json={"rows": [{"arr": 50000, "segment": "Enterprize"}, {"arr": 50000}]})
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    kinds = {w["type"]: w for w in first["warnings"]}
    assert kinds["unknown_level"]["field"] == "segment" and kinds["unknown_level"]["value"] == "Enterprize"
    assert "Enterprize" in kinds["unknown_level"]["msg"] and "'Enterprise'" in kinds["unknown_level"]["msg"]
    left_out = set(inputs) - {"arr", "segment"}
    assert set(kinds["missing_inputs"]["fields"]) == left_out
    assert [w["type"] for w in second["warnings"]] == ["missing_inputs"]
    assert set(second["warnings"][0]["fields"]) == set(inputs) - {"arr"}


def test_null_is_a_known_missing_value_and_a_full_row_has_no_warnings(api):
    with api.client() as c:
        inputs = c.get("/v1/models").json()["families"]["churn"]["inputs"]
        r = c.post("/v1/score", json={"rows": [{f: None for f in inputs} | {"arr": 1000.0}]})
    assert r.status_code == 200 and "warnings" not in r.json()["results"][0], r.text


def test_strict_turns_warnings_into_a_422(api):
    with api.client() as c:
        inputs = c.get("/v1/models").json()["families"]["churn"]["inputs"]
        full = {f: None for f in inputs}
        r = c.post("/v1/score", json={"rows": [full, {**full, "segment": "Enterprize"}], "strict": True})
        assert r.status_code == 422
        assert [e["loc"] for e in r.json()["detail"]] == [["body", "rows", 1, "segment"]]
        r = c.post("/v1/score", json={"rows": [{"arr": 1000}], "strict": True})
        assert r.status_code == 422
        assert {e["loc"][3] for e in r.json()["detail"]} == set(inputs) - {"arr"}
        assert c.post("/v1/score", json={"rows": [full], "strict": True}).status_code == 200


# ---------------------------------------------------------------------------------------------- public schema
def test_the_public_score_example_is_synthetic(api):
    """/openapi.json is served without a key: its POST /v1/score example holds made-up values only, never
    a scored account's."""
    from csforecast.api.schemas import ScoreRequest
    from csforecast.scoring.store import load_latest

    with api.client(key=None) as c:
        spec = c.get("/openapi.json").json()
    row = spec["paths"]["/v1/score"]["post"]["requestBody"]["content"]["application/json"]["examples"][
        "served_model"]["value"]["rows"][0]
    synthetic = ScoreRequest.model_config["json_schema_extra"]["examples"][0]["rows"][0]
    assert row and all(v == synthetic.get(k, 1.0) for k, v in row.items()), row
    _, scores, _ = load_latest(api.home / "scores.duckdb")
    for rec in scores.to_dict("records"):   # no account's own values (its drivers show them) in the example
        values = {d["feature"]: d.get("value") for d in render_drivers(rec["churn_drivers"])}
        assert not (len(row) > 2 and all(values.get(k) == v for k, v in row.items())), rec["account_id"]
    with api.client() as c:
        assert c.post("/v1/score", json={"rows": [row]}).status_code == 200


# ---------------------------------------------------------------------------------------------- logs
def test_secret_query_parameters_are_redacted_in_the_access_log(api, tools, tmp_path):
    srv = tools.start_server(api.env, tmp_path / "access.log", data=None, access_log=True)
    leaked = "csf_0123456789ab_ThisIsASecretSentByMistake"
    try:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            c.get(f"/v1/accounts?api_key={leaked}&limit=3")
            c.get(f"/v1/accounts?limit=3&token={leaked}&X-API-Key={leaked}", headers={"X-API-Key": api.read_key})
            c.get(f"/ui/login?next=/ui/&password={leaked}")
            c.get("/healthz?plain=visible")
    finally:
        srv.stop()
    log = srv.output()
    assert "plain=visible" in log and "api_key=REDACTED" in log and "token=REDACTED" in log
    assert "password=REDACTED" in log and "limit=3" in log
    assert leaked not in log and "ThisIsASecret" not in log
    assert api.read_key not in log


def test_health_columns_read_as_pandas_to_numeric_reads():
    """Plain JSON numbers (an int beyond int64 too) take the direct path; anything else (numeric text,
    booleans, text) reads as ``pd.to_numeric(errors="coerce")`` does."""
    import numpy as np
    import pandas as pd

    from csforecast.api.fastscore import health_columns

    cols = {"plain": [1, 2.5, None], "text": ["3", "x", None], "flags": [True, 1, None],
            "big": [2 ** 70, 1, None]}
    rows = [{c: v[i] for c, v in cols.items()} for i in range(3)]
    got = health_columns(rows, list(cols))
    for c, v in cols.items():
        want = pd.to_numeric(pd.Series(v, dtype=object), errors="coerce").to_numpy(dtype=float)
        np.testing.assert_array_equal(got[c], want, err_msg=c)
        assert got[c].dtype == float
    parsed = {"plain": np.array([7.0, 8.0, 9.0])}
    assert health_columns(rows, ["plain"], parsed)["plain"] is parsed["plain"]
