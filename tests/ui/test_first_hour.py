"""Issue 20: the first hour of a new user, on the session's served home (conftest.py), which `csforecast demo
--no-serve` built on a small portfolio.

A real headless Chromium, with every request that leaves 127.0.0.1 blocked, opens `/`, follows the link to the
dashboard, signs in with the read key the demo printed, then opens `/docs` (Swagger UI) and `/redoc` (ReDoc),
served offline, with no console error. MLflow holds runs named by family, as-of and data hash and registered
versions described with their data, metrics and the guard's decision, one alias each. The demo's output says
where the dashboard is, and no data command printed pandas' fragmentation warning or MLflow's "already exists".
"""
from __future__ import annotations

import re

import httpx
import pytest

FAMILIES = ("churn", "survival", "health")


def test_demo_says_where_the_dashboard_is_and_prints_a_working_key(ui):
    out = ui.demo_output
    if not out:
        pytest.skip("prebuilt session home (CSFORECAST_UI_TEST_PREBUILT): the demo did not run")
    assert "dashboard: http://127.0.0.1:8000/ui/" in out
    assert ui.demo_key in out and "/docs" in out
    assert "mlflow ui --backend-store-uri sqlite:///" in out and "--port 5000" in out
    r = httpx.get(ui.url + "/v1/accounts", params={"limit": 1}, headers={"X-API-Key": ui.demo_key})
    assert r.status_code == 200 and r.json()["items"]
    setup = (ui.tmp / "setup.log").read_text()
    assert "highly fragmented" not in setup                  # the snapshot builder frames its columns once
    assert "already exists" not in setup                     # the registered model is created once


def test_landing_page_links_the_dashboard_docs_and_health(ui):
    r = httpx.get(ui.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for href in ("/ui/", "/docs", "/redoc", "/healthz", "/readyz", "/metrics"):
        assert f'href="{href}"' in r.text, href
    assert "API key" in r.text and "csforecast apikey create --scope read" in r.text
    for path in ("/docs", "/redoc"):
        page = httpx.get(ui.url + path).text
        assert "cdn" not in page.lower() and "fonts.googleapis" not in page
        for asset in re.findall(r'(?:src|href)="(/docs/static/[^"]+)"', page):
            r = httpx.get(ui.url + asset)
            assert r.status_code == 200, asset
            assert b"cdn.redoc.ly" not in r.content, asset         # ReDoc's remote logo is replaced


def test_browser_first_hour_offline(ui, browser_page):
    page = browser_page.page          # every request that leaves the server is blocked (conftest.py)
    page.goto(ui.url + "/")
    page.click("#dashboard")
    page.wait_for_url("**/ui/login**")
    page.fill("#api_key", ui.demo_key)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/")
    page.wait_for_selector("#risk tbody tr")
    assert "Portfolio" in page.title()

    page.goto(ui.url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "csforecast API" in page.locator(".swagger-ui .info .title").inner_text()
    page.wait_for_selector(".opblock-tag-section")       # the operations, from /openapi.json
    assert page.locator(".opblock").count() >= 10
    browser_page.shot("docs")

    page.goto(ui.url + "/redoc")
    page.wait_for_selector("h1:has-text('csforecast API')")
    page.wait_for_selector("h2:has-text('List accounts (filtered, sorted, paged)')")   # an operation

    page.goto(ui.url + "/ui/status")
    page.wait_for_selector("#jobs tbody tr")
    browser_page.assert_clean()


def test_mlflow_runs_are_named_and_versions_described_after_the_demo(ui):
    from mlflow import MlflowClient

    uri = f"sqlite:///{ui.home / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    for fam in FAMILIES:
        exp = client.get_experiment_by_name(f"csforecast-{fam}")
        runs = client.search_runs([exp.experiment_id])
        assert runs, fam
        for run in runs:
            assert re.fullmatch(rf"{fam} as-of \d{{4}}-\d\d-\d\d data [0-9a-f]{{8}}", run.info.run_name), \
                run.info.run_name
            assert run.data.tags["data_hash"].startswith(run.info.run_name.rsplit(" ", 1)[1])
            assert "as of" in run.data.tags["mlflow.note.content"]
        name = f"csforecast-{fam}"
        aliases = client.get_registered_model(name).aliases
        assert "champion" in aliases
        holders = {}
        for a, v in aliases.items():
            holders.setdefault(str(v), []).append(a)
        assert all(len(a) == 1 for a in holders.values()), holders    # never champion and challenger at once
        for mv in client.search_model_versions(f"name='{name}'"):
            text = mv.description or ""
            assert "trained on the data as of" in text and "Validation metrics:" in text, text
            assert ("Promoted: alias `champion`" in text) == (holders.get(str(mv.version)) == ["champion"]), text
            assert mv.tags["guard"] in text
