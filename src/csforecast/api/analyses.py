"""The analyses the API and the dashboard serve from the data source (issue 17): voice of the customer, churn
reasons, the expansion pipeline. Each is computed once per serving state and arguments (the data context's
cache) by the one function that defines it (metrics.voc, metrics.reasons, forecast.pipeline) with the
settings' options; the routers and the dashboard pages only format the result.

Errors: ValueError for a bad argument (the caller's 422); `DataUnavailable` when the data cannot give the
analysis (503).
"""
from __future__ import annotations

from datetime import date

from csforecast.api.datacontext import DataContext
from csforecast.api.errors import DataUnavailable
from csforecast.jsonsafe import error_text, jsonable

__all__ = ["voc", "churn_reasons", "pipeline"]


def _data_fault(what: str, data: DataContext, e: Exception) -> DataUnavailable:
    return DataUnavailable(f"{what} cannot be computed from {data.location}: {error_text(e)}")


def voc(data: DataContext, as_of: date | None = None, window_days: int | None = None,
        group_by: str | None = None) -> dict:
    """`metrics.voc.voc_report` on the data source (defaults from `[voc]`), with the data hash."""
    from csforecast.config import get_settings
    from csforecast.metrics.voc import VOC_GROUP_BY, voc_report

    if group_by is not None and group_by not in VOC_GROUP_BY:
        raise ValueError(f"group_by must be one of {', '.join(VOC_GROUP_BY)}, not {group_by!r}")
    st = get_settings().voc

    def run() -> dict:
        try:
            out = voc_report(data.optional_frame("surveys"), data.frame("accounts"), data.frame("contracts"),
                             as_of or data.data_end(), window_days or st.window_days, group_by, st.level)
        except (ValueError, KeyError, TypeError) as e:   # arguments were checked: the data is at fault
            raise _data_fault("the VoC report", data, e) from e
        return {"data_hash": data.data_hash(), **jsonable(out)}

    return data.cached(("voc", as_of, window_days, group_by), run)


def churn_reasons(data: DataContext, period: str | None = None, group_by: str | None = None) -> dict:
    """`metrics.reasons.reasons_report` on the data source with the `[churn_reasons]` mapping."""
    from csforecast.config import get_settings
    from csforecast.metrics.reasons import check_period, reasons_report

    mapping = get_settings().churn_reasons
    check_period(period)     # a bad period is the caller's fault: say so before touching the data

    def run() -> dict:
        try:
            out = reasons_report(data.frame("contracts"), data.frame("accounts"), data.data_end(), period=period,
                                 group_by=group_by, avoidable=mapping.avoidable, unavoidable=mapping.unavoidable)
        except (ValueError, KeyError, TypeError) as e:
            raise _data_fault("churn reasons", data, e) from e
        return {"data_hash": data.data_hash(), **jsonable(out)}

    return data.cached(("churn-reasons", period, group_by), run)


def pipeline(data: DataContext, group_by: str | None = None) -> dict:
    """`forecast.pipeline.pipeline_report` on the data source with the `[pipeline]` settings."""
    from csforecast.config import get_settings
    from csforecast.forecast.pipeline import pipeline_report

    st = get_settings().pipeline

    def run() -> dict:
        try:
            out = pipeline_report(data.optional_frame("opportunities"), data.optional_frame("opportunity_history"),
                                  data.data_end(), stage_probabilities=st.stage_probabilities, windows=st.windows,
                                  backtest_quarters=st.backtest_quarters, level=st.level,
                                  accounts=data.frame("accounts"), contracts=data.frame("contracts"),
                                  group_by=group_by)
        except (ValueError, KeyError, TypeError) as e:   # the settings or the data, not the request
            raise _data_fault("the expansion pipeline", data, e) from e
        return {"data_hash": data.data_hash(), **jsonable(out)}

    return data.cached(("pipeline", group_by), run)
