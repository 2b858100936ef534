"""Monitoring through the served home: the session home was scored a year before its data end and then at the
data end, so the served score set holds the earlier set's renewals that have resolved since, and its drift
against the champion's training data. The CLI, the API and /metrics report the same figures."""
from __future__ import annotations

import json
import re

import httpx


def test_monitor_cli_api_and_metrics_agree(api, tools, tmp_path):
    with api.client() as c:
        r = c.get("/v1/models/monitoring")
        assert r.status_code == 200, r.text
        rep = r.json()
        assert c.get("/v1/models/monitoring", headers={"X-API-Key": "nope"}).status_code == 401
    fam = rep["families"]["churn"]
    cal = fam["calibration"]
    # the earlier set's renewals due in the year since have resolved: a few hundred outcomes on 400 accounts
    assert cal is not None and 50 <= cal["overall"]["n"] <= 400, cal["overall"]
    assert 0 < cal["overall"]["decisions"] <= cal["overall"]["n"]       # a renewal served in several sets counts once
    assert 0 < cal["overall"]["mean_p"] < 1 and 0 <= cal["overall"]["observed_rate"] <= 1
    assert set(cal["by_horizon"]) <= {"0-30", "31-90", "91-180", "181-365", ">365"} and cal["by_segment"]
    # every feature of the champion and its prediction compared with the training data
    cols = {d["column"] for d in fam["drift"]}
    assert "churn_probability" in cols and len(cols) > 5
    assert all(d["psi"] is None or d["psi"] >= 0 for d in fam["drift"])
    assert fam["psi_warnings"] == [d["column"] for d in fam["drift"] if d["warning"]]
    assert rep["flagged_families"] == (["churn"] if fam["drifted"] else [])

    cli = json.loads(tools.run_cli(["monitor", "--json"], api.env, tmp_path / "monitor.log"))
    assert cli["families"]["churn"]["calibration"]["overall"] == cal["overall"]
    assert cli["score_set"] == rep["score_set"]
    text = tools.run_cli(["monitor"], api.env, tmp_path / "monitor-text.log")
    assert "resolved outcomes" in text and "overall" in text and "PSI" in text

    prom = httpx.get(api.url + "/metrics").text
    m = re.search(r'csforecast_calibration_outcomes\{family="churn",scope="overall"\} ([0-9.e+]+)', prom)
    assert m and float(m.group(1)) == cal["overall"]["n"]
    assert 'csforecast_calibration_ece{family="churn",scope="overall"}' in prom
    assert 'csforecast_feature_psi{column="churn_probability",family="churn"}' in prom
    assert re.search(r'csforecast_calibration_drifted\{family="churn"\} [01]', prom)
