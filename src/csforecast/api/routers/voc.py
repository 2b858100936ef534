"""GET /v1/voc: voice of the customer (NPS with its interval, coverage, CSAT, CES, the VoC matrix, trend).

The figures are `metrics.voc.voc_report`'s (definitions: docs/metrics.md), computed from the data source and
cached per serving state and arguments.
"""
from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from csforecast.api import analyses
from csforecast.api.deps import StateDep, require_read
from csforecast.api.errors import DataUnavailable
from csforecast.api.schemas import ErrorResponse
from csforecast.api.state import ServingState

router = APIRouter(prefix="/v1", tags=["voice of the customer"], dependencies=[Depends(require_read)],
                   responses={401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
                              503: {"model": ErrorResponse, "description": "No data source, or it cannot be read"}})

VocGroup = Literal["segment", "region", "csm_id", "industry", "cohort", "respondent_role"]
MIN_DATE, MAX_DATE = date(1900, 1, 1), date(2200, 12, 31)


def _compute(state: ServingState, as_of: date | None, window_days: int | None, group_by: str | None) -> bytes:
    body = analyses.voc(state.data, as_of, window_days, group_by)
    return json.dumps(body, allow_nan=False, separators=(",", ":"), default=str).encode()


@router.get("/voc", summary="Voice of the customer: NPS, coverage, CSAT, CES, the VoC matrix",
            responses={422: {"description": "Bad as_of, window_days or group_by"}})
async def voc(state: StateDep,
              as_of: Annotated[date | None, Query(description="As-of date (default: the day after the data ends).")]
              = None,
              window_days: Annotated[int | None, Query(ge=1, le=36_500, description="Responses in the last N days "
                                                       "before as_of (default: settings, 365).")] = None,
              group_by: Annotated[VocGroup | None, Query(description="segment | region | csm_id | industry | cohort "
                                                         "| respondent_role")] = None) -> Response:
    """NPS (% promoters − % detractors) with its interval over the window's responses, response counts and
    coverage (share of active accounts and ARR with a response, by segment and respondent role), CSAT and CES
    means and distributions, the VoC matrix of active accounts (CES × NPS × CSAT classes, accounts and ARR per
    cell, the act-first and advocacy lists) and the quarterly trend (docs/metrics.md)."""
    if as_of is not None and not MIN_DATE <= as_of <= MAX_DATE:
        raise RequestValidationError([{"type": "value_error", "loc": ("query", "as_of"), "input": as_of.isoformat(),
                                       "msg": f"as_of must be between {MIN_DATE} and {MAX_DATE}"}])
    if not state.data.location:
        raise HTTPException(503, detail="no data source configured: start the server with `csforecast serve "
                                        "--data SRC` or set CSFORECAST_DATA")
    try:
        content = await run_in_threadpool(_compute, state, as_of, window_days, group_by)
    except DataUnavailable as e:
        raise HTTPException(503, detail=str(e)) from e
    return Response(content, media_type="application/json")
