"""The dashboard (/ui).

In-process tests on a small synthetic score set (no training): the pure view functions, sessions, and every
page's "missing" paths. Then, against a real uvicorn server with real trained models, a real score set and a
real backtest (conftest.py): login and sessions, every page, filters, the offline rule, and a real headless
Chromium that logs in, opens the portfolio, clicks the riskiest account, reads its drivers, opens the CSM book,
the models page and the glossary, with no JavaScript console error and no request leaving 127.0.0.1.
Screenshots go to test-artifacts/ui/ (and docs/ui-*.png with CSFORECAST_UI_DOCS_SCREENSHOTS=1).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from csforecast.features.catalogue import render_drivers

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "src" / "csforecast" / "ui" / "templates"
PAGES = ["/ui/", "/ui/portfolio", "/ui/accounts/A00001", "/ui/csm", "/ui/csm/x", "/ui/models", "/ui/glossary",
         "/ui/status", "/ui/models/churn/artifacts/calibration_curve.png", "/ui/backtest/fan_chart.png"]
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(https?:)?//(?!(localhost|127\.0\.0\.1|\[::1\])[:/"'])""", re.I)



@pytest.fixture(scope="module")
def warm(ui):
    return ui.wait_warm()


@pytest.fixture(scope="module")
def scores(ui):
    from csforecast.scoring.store import load_latest

    meta, df, _ = load_latest(ui.home / "scores.duckdb")
    return meta, df


# ------------------------------------------------------------------------------------------- auth
@pytest.mark.parametrize("path", PAGES)
def test_every_page_redirects_to_login_without_a_session(ui, path):
    r = httpx.get(ui.url + path, follow_redirects=False)
    assert r.status_code == 303
    loc = r.headers["location"]
    assert loc.startswith("/ui/login?next=")
    assert "http" not in loc


def test_login_sets_a_signed_httponly_cookie_and_never_the_key(ui, form_login):
    with httpx.Client(base_url=ui.url) as c:
        assert "API key" in c.get("/ui/login").text
        r = form_login(c, ui.read_key, "/ui/csm")
    assert r.status_code == 303 and r.headers["location"] == "/ui/csm"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    secret = ui.read_key.split("_", 2)[2]
    assert secret not in cookie and ui.read_key not in cookie
    assert ui.read_key not in ui.output() and secret not in ui.output()     # nor in the server's log


@pytest.mark.parametrize("key", ["", "nonsense", "csf_000000000000_wrong"])
def test_login_refuses_bad_keys(ui, key, form_login):
    with httpx.Client(base_url=ui.url) as c:
        r = form_login(c, key)
        assert r.status_code == 401 and "not valid" in r.text
        assert "csforecast_ui=" not in r.headers.get("set-cookie", "")
        assert c.get("/ui/portfolio", follow_redirects=False).status_code == 303


def test_open_redirects_are_refused(ui, form_login):
    with httpx.Client(base_url=ui.url) as c:
        for target in ("https://evil.example/", "//evil.example/ui", "/v1/accounts", "/ui\\..\\x"):
            r = form_login(c, ui.read_key, target)
            assert r.status_code == 303 and r.headers["location"] == "/ui/", target


def test_tampered_or_forged_sessions_are_refused(ui):
    with ui.login() as c:
        token = c.cookies.get("csforecast_ui")
    kid, exp, sid, sig = token.split(".")
    for bad in (f"{kid}.{int(exp) + 1000}.{sid}.{sig}", f"{kid}.{exp}.{sid}.{'0' * 64}",
                f"ffffffffffff.{exp}.{sid}.{sig}", f"{kid}.1.{sid}.{sig}", f"{kid}.{exp}.{'0' * 16}.{sig}",
                f"{kid}.{exp}.{sig}", "garbage", "a.b.c", "a.b.c.d"):
        r = httpx.get(ui.url + "/ui/portfolio", cookies={"csforecast_ui": bad}, follow_redirects=False)
        assert r.status_code == 303, bad


def _logout_token(html: str) -> str:
    return re.search(r'action="/ui/logout"><input type="hidden" name="csrf" value="([0-9a-f]+)"', html).group(1)


def test_logout_clears_the_session(ui):
    with ui.login() as c:
        page = c.get("/ui/glossary")
        assert page.status_code == 200
        r = c.post("/ui/logout", data={"csrf": _logout_token(page.text)})
        assert r.status_code == 303
        assert c.get("/ui/portfolio", follow_redirects=False).status_code == 303


def test_login_and_logout_forms_need_their_csrf_token(ui):
    """A form posted from another site (no token, a token of another browser, a token without its nonce
    cookie, a logout token of another session) is refused and changes nothing."""
    with httpx.Client(base_url=ui.url) as c:
        r = c.post("/ui/login", data={"api_key": ui.read_key, "next": "/ui/"})             # no token at all
        assert r.status_code == 403 and "csforecast_ui=" not in r.headers.get("set-cookie", "")
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', c.get("/ui/login").text).group(1)
        with httpx.Client(base_url=ui.url) as other:                                     # token, other cookie
            r = other.post("/ui/login", data={"api_key": ui.read_key, "csrf": token})
            assert r.status_code == 403 and "csforecast_ui=" not in r.headers.get("set-cookie", "")
            other.get("/ui/login")
            r = other.post("/ui/login", data={"api_key": ui.read_key, "csrf": token})
            assert r.status_code == 403
        r = c.post("/ui/login", data={"api_key": ui.read_key, "csrf": "0" * 64})
        assert r.status_code == 403
        assert c.get("/ui/portfolio", follow_redirects=False).status_code == 303
    with ui.login() as c, ui.login() as other:
        mine = _logout_token(c.get("/ui/glossary").text)
        for bad in ({}, {"csrf": "0" * 64}, {"csrf": _logout_token(other.get("/ui/glossary").text)}):
            r = c.post("/ui/logout", data=bad, follow_redirects=False)
            assert r.status_code == 403, bad
            assert c.get("/ui/glossary", follow_redirects=False).status_code == 200     # still signed in
        assert c.post("/ui/logout", data={"csrf": mine}).status_code == 303


# ------------------------------------------------------------------------------------------- pages
def test_portfolio_shows_every_section_from_real_data(ui, warm, scores):
    meta, df = scores
    with ui.login() as c:
        r = c.get("/ui/portfolio")
    assert r.status_code == 200
    html = r.text
    for section in ("renewals", "forecast", "backtest", "movements", "health", "matrix", "anomalies", "risk"):
        assert f'id="{section}"' in html, section
    assert "being computed" not in html and "not available" not in html
    assert 'id="chart-forecast-fan"' in html and 'id="chart-forecast-rates"' in html
    assert 'id="chart-backtest"' in html and 'id="chart-movements"' in html
    assert f"score set v{meta['version']}" in html
    # the riskiest account by churn probability × ARR heads the high-risk list
    top = df.sort_values(["risk_arr", "arr"], ascending=False).iloc[0]
    risk = html.split('id="risk"', 1)[1]
    assert risk.index(f'/ui/accounts/{top["account_id"]}') < risk.index("</tr>", risk.index("<tbody>"))
    # every chart has a table fallback
    assert html.count('class="chart"') <= html.count("<details")


def test_portfolio_forecast_numbers_are_forecast_window_numbers(ui, warm):
    with ui.login() as c:
        html = c.get("/ui/portfolio").text
    forecast = html.split('id="forecast"', 1)[1].split("</section>", 1)[0]
    spec = json.loads(re.search(r'<script type="application/json" id="spec-forecast-fan">(.*?)</script>',
                                forecast, re.S).group(1))
    p50 = next(t for t in spec["data"] if t["name"] == "P50")
    assert len(p50["x"]) == 4 and all(v is not None and v > 0 for v in p50["y"])
    # the same quarter through the API's forecast endpoint (same function, same served model, same seed)
    q0 = p50["x"][0]
    year, q = int(q0[:4]), int(q0[-1])
    start = f"{year}-{3 * q - 2:02d}-01"
    end = f"{year + (q == 4)}-{(3 * q) % 12 + 1:02d}-01"
    with httpx.Client(base_url=ui.url, headers={"X-API-Key": ui.read_key}, timeout=300) as api:
        body = api.get("/v1/forecast/renewals", params={"start": start, "end": end}).json()
    assert body["forecast"]["intervals"]["renewed_arr"]["p50"] == pytest.approx(p50["y"][0])


@pytest.mark.parametrize("param", ["segment", "region", "csm"])
def test_portfolio_filters(ui, warm, scores, param):
    _, df = scores
    col = {"segment": "segment", "region": "region", "csm": "csm_id"}[param]
    value = df[col].dropna().value_counts().index[0]
    with ui.login() as c:
        r = c.get("/ui/portfolio", params={param: value})
        assert r.status_code == 200
        n = int((df[col] == value).sum())
        assert f'<span class="v">{n:,}</span>' in r.text
        assert f'<option value="{value}" selected>' in r.text
        both = c.get("/ui/portfolio", params={"segment": df["segment"].iloc[0], "region": df["region"].iloc[0]})
        assert "one filter at a time" in both.text
        none = c.get("/ui/portfolio", params={param: "no-such-value"})
        assert none.status_code == 200 and "No scored account matches" in none.text


def test_account_page(ui, warm, scores):
    _, df = scores
    row = df.sort_values("risk_arr", ascending=False).iloc[0]
    aid = row["account_id"]
    with ui.login() as c:
        html = c.get(f"/ui/accounts/{aid}").text
        assert c.get("/ui/accounts/does-not-exist").status_code == 404
    for d in render_drivers(row["churn_drivers"]):
        assert d["lever"] in html
        assert d["text"].split(" (")[0] in html
    assert "associations" in html and "not causes" in html
    assert f"{100 * row['churn_probability']:.1f} %" in html
    assert str(row["renewal_date"].date()) in html
    for t in row["triggers"] or []:
        assert t["trigger"].replace("_", " ") in html
    for section in ("drivers", "triggers", "health", "survival", "trend", "contracts", "arr-history", "versions"):
        assert f'id="{section}"' in html, section
    assert "Contracts are not shown" not in html and "No ARR history" not in html
    assert "What moved it" in html and "not recorded in this score set" not in html
    # the scorecard beside the score (issue 17): sub-scores, quadrant and five-band label of the score set
    card = html.split('id="scorecard"', 1)[1].split("</div>", 1)[0]
    assert f"{row['outcomes_score']:.0f}" in card and f"{row['experience_score']:.0f}" in card
    assert row["health_quadrant"].replace("_", " ") in card and row["health_band5"] in card


def test_csm_book_is_sorted_by_risk_times_arr(ui, warm, scores):
    _, df = scores
    csm = df["csm_id"].dropna().value_counts().index[0]
    with ui.login() as c:
        assert csm in c.get("/ui/csm").text
        html = c.get(f"/ui/csm/{csm}").text
        assert c.get("/ui/csm/nobody").status_code == 404
        assert "unassigned" in c.get("/ui/csm").text and c.get("/ui/csm/unassigned").status_code == 200
    mine = df[df["csm_id"] == csm].sort_values(["risk_arr", "arr"], ascending=False)
    book = html.split('id="book"', 1)[1]
    pos = [book.index(f'/ui/accounts/{a}"') for a in mine["account_id"]]
    assert pos == sorted(pos)
    assert "This week" in html and "Largest drops" in html
    # the five-band label and the 2x2 cell beside each health score (issue 17)
    first = book.split(f'/ui/accounts/{mine["account_id"].iloc[0]}"', 1)[1].split("</tr>", 1)[0]
    top = mine.iloc[0]
    assert f'{top["health_band5"]} · {top["health_quadrant"].replace("_", " ")}' in first


def test_models_page(ui, warm):
    with ui.login() as c:
        html = c.get("/ui/models").text
        img = c.get("/ui/models/churn/artifacts/calibration_curve.png")
        assert c.get("/ui/models/churn/artifacts/../../x").status_code == 404
        fan = c.get("/ui/backtest/fan_chart.png")
    for fam in ("churn", "survival", "health"):
        assert f'id="family-{fam}"' in html
    assert img.status_code == 200 and img.content.startswith(b"\x89PNG")
    assert fan.status_code == 200 and fan.content.startswith(b"\x89PNG")
    assert "Health score validation report" in html and "validation AUC" in html
    assert "auc_gain_vs_equal_weight_ci_low" in html and "bootstrap resamples of accounts" in html
    assert re.search(r'href="http://127\.0\.0\.1:5000/#/experiments/\d+/runs/[0-9a-f]{32}"', html)
    m = re.search(r"<tr><td[^>]*>auc</td><td class=\"n\">([0-9.]+)</td><td class=\"n\">([0-9.]+)</td>", html)
    assert m, "churn AUC beside the oracle's"
    assert "Renewal forecast backtest" in html and "oracle" in html
    # monitoring: one score set, so nothing has resolved yet (said so); the drift against the training data shown
    assert 'id="monitoring"' in html and "No served probability has resolved yet" in html and 'id="drift"' in html


def test_glossary_defines_the_numbers(ui):
    with ui.login() as c:
        html = c.get("/ui/glossary").text
    for name in ("GRR", "NRR", "Churn probability", "ECE", "WAPE", "Health score", "Health band", "P10 / P50 / P90",
                 "Oracle", "Risk × ARR"):
        assert f"<dt>{name}</dt>" in html, name
    assert "red below 40.0" in html


def test_static_assets_are_local(ui):
    r = httpx.get(ui.url + "/ui/static/plotly.min.js")
    assert r.status_code == 200 and len(r.content) > 1_000_000 and "javascript" in r.headers["content-type"]
    assert httpx.get(ui.url + "/ui/static/ui.css").status_code == 200
    assert httpx.get(ui.url + "/ui/static/../router.py").status_code == 404


def test_no_external_urls_in_templates_or_pages(ui, warm):
    for f in TEMPLATES.glob("*.html"):
        assert not EXTERNAL.search(f.read_text()), f
    with ui.login() as c:
        for path in ("/ui/portfolio", "/ui/accounts/A00001", "/ui/csm", "/ui/models", "/ui/glossary"):
            r = c.get(path)
            assert not EXTERNAL.search(r.text), path
            assert "default-src 'none'" in r.headers["content-security-policy"]


def test_ui_is_not_in_the_openapi_schema(ui):
    spec = httpx.get(ui.url + "/openapi.json").json()
    assert not any(p.startswith("/ui") for p in spec["paths"])


def test_revoked_key_ends_its_dashboard_sessions(ui):
    out = json.loads(ui.cli(["apikey", "create", "--scope", "read", "--json"]))
    with ui.login(out["key"]) as c:
        assert c.get("/ui/glossary").status_code == 200
        ui.cli(["apikey", "revoke", out["id"]])
        assert c.get("/ui/glossary", follow_redirects=False).status_code == 303


# ------------------------------------------------------------------------------------------- the browser
def test_browser_walkthrough(ui, warm, scores, browser_page):
    _, df = scores
    top = df.sort_values(["risk_arr", "arr"], ascending=False).iloc[0]
    page = browser_page.page
    page.goto(ui.url + "/ui/")
    assert "/ui/login" in page.url
    browser_page.shot("login")
    page.fill("#api_key", ui.read_key)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/")
    page.wait_for_selector("#chart-forecast-fan .main-svg")
    page.wait_for_selector("#chart-renewals-due .main-svg")
    page.wait_for_selector("#chart-movements .main-svg")
    assert page.locator("#forecast table").count() == 1
    browser_page.shot("portfolio")

    # the riskiest account: first row of the high-risk high-ARR list
    first = page.locator("#risk tbody tr").first.locator("a")
    assert first.get_attribute("href").endswith(f"/ui/accounts/{top['account_id']}")
    first.click()
    page.wait_for_url(f"**/ui/accounts/{top['account_id']}")
    page.wait_for_selector("#chart-components .main-svg")
    page.wait_for_selector("#chart-survival .main-svg")
    drivers = page.locator("#drivers").inner_text()
    assert "not causes" in drivers
    for d in render_drivers(top["churn_drivers"]):
        assert d["lever"] in drivers
    browser_page.shot("account")

    # CSM book: from the account's CSM link, or the first book
    page.click("header nav >> text=CSM books")
    page.wait_for_url("**/ui/csm")
    page.locator("table.data tbody tr").first.locator("a").click()
    page.wait_for_selector("#book tbody tr")
    assert "This week" in page.locator("#week").inner_text()
    browser_page.shot("csm")

    page.click("header nav >> text=Models")
    page.wait_for_url("**/ui/models")
    page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator("#family-churn img").count() >= 1
    browser_page.shot("models")

    page.click("header nav >> text=Glossary")
    page.wait_for_url("**/ui/glossary")
    assert page.locator("dl.glossary div").count() >= 30
    browser_page.shot("glossary")

    # a filter applied through the form (submitted by the page script on change)
    page.goto(ui.url + "/ui/portfolio")
    seg = df["segment"].value_counts().index[0]
    with page.expect_navigation():
        page.select_option("select[name=segment]", seg)
    assert f"segment={seg}" in page.url.replace("+", " ").replace("%20", " ")
    page.wait_for_selector("#chart-health-bands .main-svg")
    browser_page.assert_clean()


def test_browser_forecast_process(ui, warm, scores, browser_page):
    """Chromium: the CSM work list (ordered, plain-words reasons, levers), the model-vs-call disagreements list,
    and the forecast-accuracy section reading the ledger and the latest backtest, both picked up on the next
    page view after a new freeze and a new backtest run, without a reload of the server."""
    import pandas as pd

    _, df = scores
    near = df[df["days_to_renewal"] <= 90]
    csm = near["csm_id"].dropna().value_counts().index[0]
    browser_page.sign_in(ui.read_key, "/ui/")
    page = browser_page.page
    # the work list of a CSM with renewals in the next 90 days
    page.goto(ui.url + f"/ui/csm/{csm}")
    rows = page.locator("#worklist tbody tr")
    assert rows.count() >= 1
    text = page.locator("#worklist").inner_text()
    assert "log-odds" not in text and "Expected ARR lost" in text
    ids = [rows.nth(i).locator("a").get_attribute("href").rsplit("/", 1)[-1] for i in range(rows.count())]
    mine = near[near["csm_id"] == csm].set_index("account_id")
    assert set(ids) <= set(mine.index)
    prio = [mine.loc[a, "churn_probability"] * mine.loc[a, "arr"] / (1 + mine.loc[a, "days_to_renewal"] / 90)
            for a in ids]
    assert prio == sorted(prio, reverse=True)
    browser_page.shot("csm-worklist")

    # disagreements and the accuracy section on the portfolio page
    page.goto(ui.url + "/ui/portfolio")
    assert page.locator("#disagreements tbody tr").count() >= 1
    assert "Who sees more risk" in page.locator("#disagreements").inner_text()
    ledger_rows = page.locator("#accuracy tbody tr").count()
    assert ledger_rows >= 2                                        # `score` froze two quarters
    bt_before = page.locator("#backtest").inner_text()
    browser_page.shot("portfolio-process")

    start = str(pd.Timestamp(df["as_of"].iloc[0]).date())
    end = str((pd.Timestamp(start) + pd.Timedelta(days=91)).date())
    ui.cli(["forecast", "--data", str(ui.data), "--start", start, "--end", end, "--freeze", "--quiet",
            "--draws", "200"])
    new_run = subprocess.run([sys.executable, "-c", RELOG_BACKTEST], env=ui.env, capture_output=True,
                             text=True, timeout=300)
    assert new_run.returncode == 0, new_run.stderr[-2000:]
    run_id = new_run.stdout.strip().splitlines()[-1]
    page.reload()
    assert page.locator("#accuracy tbody tr").count() > ledger_rows
    deadline = time.monotonic() + 120                # the new backtest's section is computed off the request
    while run_id not in page.locator("#backtest").inner_text() and time.monotonic() < deadline:
        time.sleep(1)
        page.reload()
    assert run_id in page.locator("#backtest").inner_text() and run_id not in bt_before
    browser_page.assert_clean()


# a new backtest run (the latest backtest's result logged again), as `csforecast backtest` would log one
RELOG_BACKTEST = """
from csforecast.config import get_settings
from csforecast.forecast.backtest import log_backtest
from csforecast.tracking.runs import latest_backtest
bt = latest_backtest(get_settings())
print(log_backtest(bt["result"], "relogged"))
"""


# ============================================================================ in-process, synthetic score set
def _synthetic_scores(n: int = 60, seed: int = 3):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    as_of = pd.Timestamp("2026-10-01")
    segs = np.array(["SMB", "Mid-Market", "Enterprise"])[rng.integers(0, 3, n)]
    arr = np.round(np.exp(rng.normal(10.5, 1.2, n)), 2)
    p = rng.uniform(0.01, 0.6, n)
    score = rng.uniform(5, 95, n)
    rows = []
    for i in range(n):
        rows.append({
            "account_id": f"S{i:03d}", "name": f"Synthetic {i}" if i else "Evil <script>alert(1)</script>",
            "segment": segs[i], "industry": "Software",
            "region": ["EMEA", "APAC"][i % 2], "csm_id": None if i % 4 == 0 else f"CSM-{i % 3}", "arr": arr[i],
            "seats": 10.0, "renewal_date": as_of + pd.Timedelta(days=int(rng.integers(-5, 500))),
            "days_to_renewal": 100.0, "contract_id": f"C{i}", "tenure_days": 400.0, "as_of": as_of,
            "churn_probability": p[i], "churn_base_logit": -2.0, "risk_arr": p[i] * arr[i],
            "churn_drivers": [{"feature": "seat_utilisation", "value": 0.3, "contribution": 0.4,
                               "text": "seat utilisation 30 % (+0.40 log-odds; associated with higher churn risk)",
                               "component": "Deployment", "lever": "drive seat activation"}],
            "churn_model_version": "1", "p_active_90d": 0.99, "p_active_180d": 0.95, "p_active_365d": 0.9,
            "expected_lifetime_days": 900.0, "survival_model_version": "1", "health_score": score[i],
            "health_band": "red" if score[i] < 40 else "yellow" if score[i] < 70 else "green",
            "health_components": [{"component": "deployment", "score": 40.0, "band": "yellow",
                                   "contribution": score[i] - 50, "lever": "drive seat activation"}],
            "triggers": [{"trigger": "champion_left", "evidence": "champion left 30 days ago"}] if i % 5 == 0 else [],
            "health_model_version": "1"})
    scores = pd.DataFrame(rows)
    hist = []
    for i in range(n):
        for w in range(3):
            hist.append({"account_id": f"S{i:03d}", "week": as_of - pd.Timedelta(weeks=2 - w),
                         "health_score": score[i] - 3 * (2 - w), "components": {}})
    meta = {"version": 7, "as_of": as_of, "data_hash": "synthetic", "models": {"churn": "1"}}
    return meta, scores, pd.DataFrame(hist)


@pytest.fixture()
def local(tmp_path, monkeypatch):
    """The dashboard router on a bare app holding a synthetic score set: no models, no data source, no registry."""
    from types import SimpleNamespace

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from csforecast.api.auth import KeyStore
    from csforecast.api.datacontext import DataContext
    from csforecast.api.scoreset import build_score_set
    from csforecast.api.state import ServingState
    from csforecast.config import Settings
    from csforecast.ui.router import router

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    settings = Settings(home=tmp_path)
    meta, scores, hist = _synthetic_scores()
    state = ServingState(1, None, build_score_set(meta, scores, hist), None, DataContext(None), ())
    app = FastAPI()
    app.state.settings = settings
    app.state.keys = KeyStore(settings.apikeys_file)
    app.state.holder = SimpleNamespace(current=state)
    app.include_router(router)
    key, _ = app.state.keys.create("read")
    with TestClient(app) as c:
        yield SimpleNamespace(client=c, key=key, app=app, scores=scores)
        if getattr(app.state, "ui_data", None):
            app.state.ui_data.wait_idle(60)
            app.state.ui_data.close()


def _login(local):
    import re

    token = re.search(r'name="csrf" value="([0-9a-f]+)"', local.client.get("/ui/login").text).group(1)
    r = local.client.post("/ui/login", data={"api_key": local.key, "next": "/ui/portfolio", "csrf": token},
                          follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/portfolio"


def test_local_pages_say_what_is_missing(local):
    c = local.client
    assert c.get("/ui/portfolio", follow_redirects=False).status_code == 303
    _login(local)
    from csforecast.ui.background import ui_data_for

    ui_data_for(local.app).wait_idle(60)
    html = c.get("/ui/portfolio").text
    assert "no data source configured" in html                  # forecast and movements: said, not invented
    assert "no backtest run yet" in html
    assert 'id="chart-renewals-due"' in html and 'id="chart-health-bands"' in html
    acc = c.get("/ui/accounts/S000").text
    assert "drive seat activation" in acc and "not causes" in acc and "champion left 30 days ago" in acc
    assert "Contracts are not shown: no data source configured" in acc
    assert "<script>alert" not in acc and "&lt;script&gt;alert(1)" in acc       # escaped
    assert "<script>alert" not in html
    assert c.get("/ui/csm/CSM-1").status_code == 200 and c.get("/ui/csm/unassigned").status_code == 200
    assert c.get("/ui/models").status_code == 503               # no models loaded: said so
    assert "GRR" in c.get("/ui/glossary").text
    st = c.get("/ui/status").json()
    assert st["jobs"]["forecast:"]["status"] == "unavailable"
    # issue 20: a browser gets the status as a readable page, scripts still get JSON
    page = c.get("/ui/status", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.headers["content-type"].startswith("text/html")
    assert '<table class="data" id="jobs">' in page.text
    assert "renewal forecast of the next 4 quarters" in page.text and "unavailable" in page.text
    assert c.get("/ui/status", params={"format": "json"}, headers={"Accept": "text/html"}).json()["jobs"]


def test_models_page_shows_flags_as_yes_or_no():
    from csforecast.ui.views.models import _metric_rows

    head, _ = _metric_rows({"auc": 0.71, "oracle_auc": 0.74, "decile_churn_monotone": 0.0})
    rows = {r["metric"]: r["model"] for r in head}
    assert rows == {"auc": "0.7100", "decile_churn_monotone": "no"}
    head, _ = _metric_rows({"decile_churn_monotone": 1.0})
    assert head[0]["model"] == "yes"


def test_local_portfolio_numbers_match_the_scores(local):
    _login(local)
    df = local.scores
    html = local.client.get("/ui/portfolio", params={"segment": "SMB"}).text
    n = int((df["segment"] == "SMB").sum())
    assert f'<span class="v">{n:,}</span>' in html
    html = local.client.get("/ui/portfolio").text
    top = df.sort_values("risk_arr", ascending=False)["account_id"].iloc[0]
    risk = html.split('id="risk"', 1)[1]
    assert risk.index(f"/ui/accounts/{top}") < risk.index("</tr>", risk.index("<tbody>"))


def test_views_pure_functions():
    import numpy as np

    from csforecast.api.scoreset import build_score_set
    from csforecast.ui import views

    meta, scores, hist = _synthetic_scores()
    sc = build_score_set(meta, scores, hist)
    df = views.build_frame(sc.items, sc.details)
    assert len(df) == len(scores)
    assert df["week_change"].dropna().eq(3.0).all()                    # from the weekly trend in the details
    # renewals due: months add up to the quarters they cover, past renewal dates excluded
    r = views.renewals_due(df, meta["as_of"].date())
    assert sum(m["count"] for m in r["months"][:3]) == r["quarters"][0]["count"]
    start = meta["as_of"]
    due = df[(df["renewal_date"] >= start) & (df["renewal_date"] < start + np.timedelta64(92, "D"))]
    assert r["quarters"][0]["count"] == len(due)
    assert r["quarters"][0]["arr"] == pytest.approx(due["arr"].sum())
    # the matrix flags coverage anomalies
    m = views.metrics_matrix(df)
    assert sum(int(x["n"].replace(",", "")) for x in m["rows"]) == len(df)
    for row in m["rows"]:
        if row["csm"] == "no" and row["arr_band"] in ("50k–200k", "≥200k"):
            assert row["anomaly"] == "high-ARR without a CSM"
        elif row["csm"] == "yes" and row["arr_band"] == "<10k":
            assert row["anomaly"] == "low-tier with a CSM"
        else:
            assert row["anomaly"] is None
    # the risk list is sorted by churn probability × ARR
    ids = [x["account_id"] for x in views.risk_list(df)]
    assert ids == list(scores.sort_values("risk_arr", ascending=False)["account_id"].head(len(ids)))
    # sections without input say so
    assert views.backtest_section(None, None)["missing"].startswith("no backtest run yet")
    assert views.movements_section(None)["missing"]
    assert views.Filters.parse("SMB", "EMEA", None).forecast_group()[2]     # two filters: no forecast slice
    assert views.Filters.parse(None, None, "CSM-1").forecast_group()[:2] == ("csm_id", "CSM-1")
    # CSM book: sorted, paged
    book = views.csm_view(df, "CSM-1", None, page=1, page_size=5)
    mine = scores[scores["csm_id"] == "CSM-1"].sort_values("risk_arr", ascending=False)
    assert [x["account_id"] for x in book["rows"]] == list(mine["account_id"].head(5))
    assert book["pages"] == -(-len(mine) // 5)


def test_forecast_section_shapes_forecast_window_output():
    from csforecast.ui import views

    def res(q, grr):
        return {"window": {"start": f"2026-{q:02d}-01", "end": "x"},
                "renewals_due": {"count": 3, "arr": 100.0}, "expected": {"renewed_arr": 90.0, "grr": grr, "nrr": 1.0},
                "intervals": {"renewed_arr": {"p10": 80.0, "p50": 91.0, "p90": 99.0},
                              "grr": {"p10": 0.8, "p50": 0.9, "p90": 0.99}, "nrr": {"p10": 0.9, "p50": 1, "p90": 1.1}},
                "groups": [{"group": "SMB", "renewals_due": {"count": 1, "arr": 10.0},
                            "expected": {"renewed_arr": 9.0, "grr": 0.9, "nrr": 0.95},
                            "intervals": {"renewed_arr": {"p10": 8.0, "p50": 9.0, "p90": 10.0}}}]}
    out = views.forecast_section([res(10, 0.9), res(1, 0.8)], None, None)
    assert [r["quarter"] for r in out["rows"]] == ["2026Q4", "2026Q1"]
    fan = {t["name"]: t for t in out["fan"]["spec"]["data"]}
    assert fan["P10–P90"]["y"] == [80.0, 80.0] and fan["P90"]["y"] == [99.0, 99.0]
    seg = views.forecast_section([res(10, 0.9)], "segment", "SMB")
    assert seg["rows"][0]["p50"] == 9.0
    assert views.forecast_section([res(10, 0.9)], "segment", "Enterprise")["rows"][0]["empty"]


def test_markdown_is_escaped():
    from csforecast.ui.views import markdown_html

    html = markdown_html("# T <script>\n\n| a | b |\n|---|---|\n| <img src=x> | **bold** |\n\ntext [l](http://x)")
    assert "<script>" not in html and "<img" not in html and "&lt;script&gt;" in html
    assert "<strong>bold</strong>" in html and "<table" in html and "<a " not in html


def test_session_tokens():
    import time as _t

    from csforecast.ui.sessions import check_session, make_session, safe_next

    rec = {"id": "abc", "scope": "read", "hash": "h1"}
    secret = b"s" * 32
    tok = make_session(secret, rec)
    assert check_session(secret, {"abc": rec}, tok).key_id == "abc"
    assert check_session(b"t" * 32, {"abc": rec}, tok) is None                    # other server secret
    assert check_session(secret, {"abc": {**rec, "hash": "h2"}}, tok) is None     # key re-created
    assert check_session(secret, {"abc": {**rec, "scope": "admin"}}, tok) is None  # scope changed
    assert check_session(secret, {}, tok) is None                                 # revoked
    assert check_session(secret, {"abc": rec}, tok, now=_t.time() + 9 * 3600) is None   # expired
    assert make_session(secret, rec) != make_session(secret, rec)                  # two sign-ins, two sessions
    assert safe_next("/ui/csm?x=1") == "/ui/csm?x=1"
    for bad in ("https://x", "//x/ui", "/v1/x", None, "/ui\\x", "/ui\n"):
        assert safe_next(bad) == "/ui/"


def test_scorecard_form_needs_write_scope_and_csrf_and_names_bad_weights(ui, warm):
    """The models page's editable scorecard: a read key sees the weight sets but no form; the form posts only
    with its CSRF token; a bad weight is shown (422) and nothing is saved; saving replaces scorecard.json and
    the saved set is then reported beside the learned one (page and GET /v1/health/scorecard agree)."""
    saved = ui.home / "scorecard.json"
    saved.unlink(missing_ok=True)
    with ui.login() as c:
        html = c.get("/ui/models").text
        assert 'id="weight-sets"' in html and 'data-set="learned"' in html and 'data-set="equal_weight"' in html
        assert 'id="scorecard-form"' not in html and "scope write or admin" in html
    with ui.login(ui.admin_key) as c:
        html = c.get("/ui/models").text
        token = re.search(r'id="scorecard-form".*?name="csrf" value="([0-9a-f]+)"', html, re.S).group(1)
        fields = dict(re.findall(r'name="(w_[a-z]+)" value="([^"]*)"', html))
        assert {"w_deployment", "w_value", "w_sentiment"} <= set(fields)
        assert c.post("/ui/models/scorecard", data={**fields, "action": "save"}).status_code == 403
        bad = c.post("/ui/models/scorecard", data={**fields, "w_nps": "-2", "csrf": token, "action": "save"})
        assert bad.status_code == 422 and "nps must be a finite number" in bad.text and not saved.exists()
        typo = c.post("/ui/models/scorecard", data={**fields, "w_support": "lots", "csrf": token, "action": "evaluate"})
        assert typo.status_code == 422 and 'value="lots"' in typo.text
        mine = {**{k: "0" for k in fields}, "w_deployment": "3", "w_nps": "1"}
        shown = c.post("/ui/models/scorecard", data={**mine, "csrf": token, "action": "evaluate"})
        assert shown.status_code == 200 and 'data-set="yours"' in shown.text and not saved.exists()
        done = c.post("/ui/models/scorecard", data={**mine, "csrf": token, "action": "save"}, follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"].endswith("/ui/models#scorecard")
        assert json.loads(saved.read_text())["weights"] == {**{k[2:]: 0.0 for k in fields}, "deployment": 3.0,
                                                            "nps": 1.0}
        page = c.get("/ui/models").text
    api = httpx.get(ui.url + "/v1/health/scorecard", headers={"X-API-Key": ui.read_key}, timeout=60).json()
    auc = api["weight_sets"]["saved"]["metrics"]["auc"]
    row = re.search(r'data-set="saved">.*?class="n auc">([0-9.]+)<', page, re.S)
    assert row and float(row.group(1)) == pytest.approx(auc, abs=5e-4)
    saved.unlink()


def test_browser_scorecard(ui, warm, browser_page):
    """Chromium: an admin enters weights on the models page, evaluates them and sees their AUC, lift and churn
    by band beside the learned and equal weights; saving keeps them as the saved set."""
    saved = ui.home / "scorecard.json"
    saved.unlink(missing_ok=True)
    browser_page.sign_in(ui.admin_key, "/ui/models")
    page = browser_page.page
    form = page.locator("#scorecard-form")
    for inp in form.locator("input[type=number]").all():
        inp.fill("0")
    form.locator("input[name=w_adoption]").fill("2")
    form.locator("input[name=w_support]").fill("1")
    form.locator("button[value=evaluate]").click()
    page.wait_for_selector('#weight-sets tr[data-set="yours"]')
    yours = page.locator('#weight-sets tr[data-set="yours"]')
    assert float(yours.locator("td.auc").inner_text()) > 0.5
    assert float(yours.locator("td.lift").inner_text()) > 0
    assert page.locator('#weight-sets tr[data-set="learned"] td.auc').inner_text()
    assert "67 %" in yours.inner_text() and "33 %" in yours.inner_text()
    auc = yours.locator("td.auc").inner_text()
    browser_page.shot("scorecard")
    page.locator("#scorecard-form button[value=save]").click()
    page.wait_for_selector('#weight-sets tr[data-set="saved"]')
    assert page.locator('#weight-sets tr[data-set="saved"] td.auc').inner_text() == auc
    browser_page.assert_clean()
    assert json.loads(saved.read_text())["weights"]["adoption"] == 2.0
    saved.unlink()
