"""GET /v1/forecast/renewals: the renewal forecast for a window, from the configured data source."""
from __future__ import annotations

import json
import logging
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from csforecast.api.deps import StateDep, require_read
from csforecast.api.errors import DataUnavailable
from csforecast.jsonsafe import jsonable
from csforecast.api.schemas import FORECAST_GROUP_PATTERN, ErrorResponse, ForecastResponse
from csforecast.api.state import ServingState

log = logging.getLogger("csforecast.api")
router = APIRouter(prefix="/v1/forecast", tags=["forecast"], dependencies=[Depends(require_read)],
                   responses={401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
                              503: {"model": ErrorResponse,
                                    "description": "No data source configured, or the forecast is unavailable"}})

FORECAST_MODULE = "csforecast.forecast.renewals"
MAX_WINDOW_DAYS = 3 * 366
MIN_DATE, MAX_DATE = date(1900, 1, 1), date(2200, 12, 31)


def _forecast_fn():
    """`forecast_window`, imported when first needed: a build without it answers 503, not a failed start."""
    try:
        from csforecast.forecast.renewals import forecast_window
    except ModuleNotFoundError as e:
        if e.name and FORECAST_MODULE.startswith(e.name):
            raise HTTPException(503, detail="renewal forecasts are not available in this build "
                                            f"({FORECAST_MODULE} is not installed)") from e
        raise HTTPException(503, detail=f"renewal forecasts are unavailable: {FORECAST_MODULE} cannot be "
                                        f"imported ({type(e).__name__}: {e})") from e
    except ImportError as e:
        raise HTTPException(503, detail=f"renewal forecasts are unavailable: {FORECAST_MODULE}.forecast_window "
                                        f"cannot be imported ({type(e).__name__})") from e
    return forecast_window


def _compute(state: ServingState, start: date, end: date, group_by: str | None) -> bytes:
    """The response body of a forecast, cached per serving state (score set and models) and arguments; the
    forecast itself comes from the data context's caches (memory, disk) or is computed there."""
    data = state.data
    est = state.models.estimators.get("churn") if state.models else None
    version = state.models.versions.get("churn") if est is not None else None
    versions = {"churn": version} if est is not None else {}
    blend = served_blend(state)
    if blend:
        versions["blend"] = blend[1]
    survival = served_survival(state)
    if survival:
        versions["survival"] = survival[1]
    scores_version = state.scores.version if state.scores is not None else None

    def run() -> bytes:
        try:
            out = data.forecast(start, end, group_by, est, version, scores_version, blend, survival)
        except (ValueError, TypeError) as e:
            raise RequestValidationError([{"type": "value_error", "loc": ("query",), "msg": str(e)[:500],
                                           "input": {"start": str(start), "end": str(end), "group_by": group_by}}])
        except DataUnavailable:
            raise
        except Exception as e:  # noqa: BLE001 - the forecast failing is a service problem, not the client's
            log.exception("renewal forecast failed for %s..%s group_by=%s", start, end, group_by)
            raise HTTPException(503, detail=f"the renewal forecast failed ({type(e).__name__}); see the server log")
        body = {"start": start.isoformat(), "end": end.isoformat(), "group_by": group_by,
                "data_hash": data.data_hash(), "model_versions": versions,
                "forecast": jsonable(out if isinstance(out, dict) else {"result": out})}
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()

    return data.cached(("forecast-body", start, end, group_by), run)


def served_blend(state: ServingState) -> tuple | None:
    """The served blend model as (estimator, version), None when there is none."""
    if state.models is None or state.models.estimators.get("blend") is None:
        return None
    return state.models.estimators["blend"], state.models.versions.get("blend")


def served_survival(state: ServingState) -> tuple | None:
    """The served survival model as (estimator, version), None when there is none (it scores the renewals beyond
    the churn model's horizon in a forecast, as in the score set)."""
    if state.models is None or state.models.estimators.get("survival") is None:
        return None
    return state.models.estimators["survival"], state.models.versions.get("survival")


def warm(state: ServingState) -> None:
    """Start computing the forecasts the new state's score set determines (the quarters of the next year)."""
    if state.scores is None or state.models is None or not state.data.location:
        return
    est = state.models.estimators.get("churn")
    if est is not None:
        state.data.precompute_forecasts(est, state.models.versions.get("churn"), state.scores.version,
                                        served_blend(state), served_survival(state))


@router.get("/renewals", response_model=ForecastResponse, summary="Renewal forecast for a window",
            responses={422: {"description": "Bad dates, start ≥ end, or unknown group_by"}})
async def renewals(state: StateDep,
                   start: Annotated[date, Query(description="First day of the window (inclusive).",
                                                examples=["2026-10-01"])],
                   end: Annotated[date, Query(description="End of the window (exclusive).",
                                              examples=["2027-01-01"])],
                   group_by: Annotated[str | None, Query(
                       pattern=FORECAST_GROUP_PATTERN, examples=["segment", "segment,csm_id"],
                       description="segment, region, csm_id or industry; or two of them: segment,csm_id")] = None,
                   ) -> Response:
    """Renewals due in [start, end): expected renewed ARR and its uncertainty, per group when asked. Uses the
    data source given by `--data` / CSFORECAST_DATA and the served churn model."""
    for name, d in (("start", start), ("end", end)):
        if not MIN_DATE <= d <= MAX_DATE:
            raise RequestValidationError([{"type": "value_error", "loc": ("query", name), "input": d.isoformat(),
                                           "msg": f"{name} must be between {MIN_DATE} and {MAX_DATE}"}])
    if start >= end:
        raise RequestValidationError([{"type": "value_error", "loc": ("query", "end"), "msg": "end must be after start",
                                       "input": end.isoformat()}])
    if (end - start).days > MAX_WINDOW_DAYS:
        raise RequestValidationError([{"type": "value_error", "loc": ("query", "end"),
                                       "msg": f"the window may span at most {MAX_WINDOW_DAYS} days",
                                       "input": end.isoformat()}])
    if not state.data.location:
        raise HTTPException(503, detail="no data source configured: start the server with `csforecast serve "
                                        "--data SRC` or set CSFORECAST_DATA")
    _forecast_fn()
    try:
        content = await run_in_threadpool(_compute, state, start, end, group_by)
    except DataUnavailable as e:
        raise HTTPException(503, detail=str(e)) from e
    return Response(content, media_type="application/json")
