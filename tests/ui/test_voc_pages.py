"""The "Customer voice" (/ui/voc: voice of the customer and churn reasons) and "Pipeline" (/ui/pipeline) pages
on the session's served portfolio (the ui fixture): the numbers are the analyses' numbers, and a real headless
Chromium opens both pages from the navigation, draws their charts, with no console error and no request
leaving 127.0.0.1."""
from __future__ import annotations

import pandas as pd
import pytest


@pytest.mark.parametrize("path", ["/ui/voc", "/ui/pipeline"])
def test_pages_need_a_session(ui, path):
    import httpx

    r = httpx.get(ui.url + path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next=")


def test_voc_page_shows_the_reports_numbers(ui):
    from csforecast.metrics.voc import voc_report
    from csforecast.data.sources import open_source
    from csforecast.features.snapshot import data_end
    from csforecast.ui.views import num, pct

    src = open_source(ui.data)
    r = voc_report(src.frame("surveys"), src.frame("accounts"), src.frame("contracts"), data_end(src), 365)
    with ui.login() as c:
        page = c.get("/ui/voc")
        pipe = c.get("/ui/pipeline")
    assert page.status_code == 200, page.text[-2000:]
    html = page.text
    assert f'<td class="n" id="nps">{num(r["nps"])}</td>' in html
    assert f'<td class="n" id="coverage">{pct(r["response_coverage"]["accounts"])}</td>' in html
    for section in ("voc-coverage", "voc-trend", "voc-matrix", "churn-reasons", "list-act_first", "list-advocacy"):
        assert f'id="{section}"' in html
    assert "Tenure at renewal" in html and "Contraction reasons" in html
    assert pipe.status_code == 200 and 'id="stages"' in pipe.text and 'id="pipeline-backtest"' in pipe.text
    opps = pd.read_parquet(ui.data / "opportunities.parquet")
    assert f'<span id="open-n">{int(opps.won.isna().sum()):,}</span>' in pipe.text


def test_browser_opens_customer_voice_and_pipeline(ui, browser_page):
    browser_page.sign_in(ui.read_key, "/ui/glossary")
    page = browser_page.page
    page.click("header nav >> text=Customer voice")
    page.wait_for_url("**/ui/voc")
    page.wait_for_selector("#chart-nps-trend .main-svg")
    page.wait_for_selector("#chart-churn-reasons .main-svg")
    assert page.locator("#voc-matrix tbody tr").count() >= 2
    assert page.locator("#reasons-table tbody tr").count() >= 3
    page.click("header nav >> text=Pipeline")
    page.wait_for_url("**/ui/pipeline")
    page.wait_for_selector("#chart-pipeline-backtest .main-svg")
    assert page.locator("#stages tbody tr").count() == 6
    browser_page.assert_clean()
