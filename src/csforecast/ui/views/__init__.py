"""Data shaping for the dashboard pages: pure functions from the served score set (and results computed in
the background: ARR movements, renewal forecasts, backtests, registry artifacts) to plain dicts that the
templates only print. One module per page (portfolio, account, csm, models, glossary, status), plus the portfolio
frame and filters (frame) and the number formatting (format).

Nothing here reads files, the registry or the data source; nothing invents a number. A value that is not
known is ``None`` and shown as "—"; a section whose input is missing carries a ``missing`` message saying
why. Numbers are formatted here (strings), so the templates hold no logic and the 10,000-account pages stay
fast (no macro call per cell).

The portfolio frame (`build_frame`) is built once per score set from the pre-serialised API items and
details; the page functions then filter and aggregate it with pandas.
"""
from csforecast.ui.views.account import account_view
from csforecast.ui.views.csm import CSM_PAGE_SIZE, csm_list_view, csm_view
from csforecast.ui.views.format import DASH, chart, day, finite, intc, money, money_full, num, pct, signed
from csforecast.ui.views.frame import (ARR_BAND_LABELS, ARR_BANDS, BAND_COLORS, BANDS, HIGH_ARR, HIGH_RISK,
                                       LOW_TIER_ARR, UNASSIGNED, Filters, account_row, arr_band, build_frame,
                                       filter_options, last_changes, trend_explanations)
from csforecast.ui.views.glossary import GLOSSARY, glossary_view, term
from csforecast.ui.views.models import (FAMILY_ARTIFACTS, HEADLINE_METRICS, HEALTH_REPORT, markdown_html, models_view,
                                        monitoring_view)
from csforecast.ui.views.process import disagreements_view, ledger_view, worklist_view
from csforecast.ui.views.scorecard import scorecard_view
from csforecast.ui.views.voc import pipeline_view, reasons_section, voc_view
from csforecast.ui.views.portfolio import (BACKTEST_METHOD, MOVEMENT_QUARTERS, TOP_RISK, backtest_section,
                                           coverage_anomalies, forecast_section, health_by_segment, metrics_matrix,
                                           movements_section, portfolio_view, renewals_due, risk_list)
from csforecast.ui.views.status import status_view

__all__ = ["ARR_BANDS", "ARR_BAND_LABELS", "BACKTEST_METHOD", "BANDS", "BAND_COLORS", "CSM_PAGE_SIZE", "DASH",
           "FAMILY_ARTIFACTS", "Filters", "GLOSSARY", "HEADLINE_METRICS", "HEALTH_REPORT", "HIGH_ARR", "HIGH_RISK",
           "LOW_TIER_ARR", "MOVEMENT_QUARTERS", "TOP_RISK", "UNASSIGNED", "account_row", "account_view", "arr_band",
           "backtest_section", "build_frame", "chart", "coverage_anomalies", "csm_list_view", "csm_view", "day",
           "filter_options", "finite", "forecast_section", "glossary_view", "health_by_segment", "intc",
           "last_changes", "markdown_html", "metrics_matrix", "models_view", "monitoring_view", "money", "money_full",
           "movements_section", "num", "pct", "portfolio_view", "renewals_due", "risk_list", "signed",
           "status_view", "term",
           "trend_explanations", "worklist_view", "disagreements_view", "ledger_view", "scorecard_view",
           "voc_view", "reasons_section", "pipeline_view"]
