"""GET /v1/metrics/churn-reasons: churned logos and ARR by reason, avoidable vs unavoidable, by band.

The figures are `metrics.reasons.reasons_report`'s (definitions: docs/metrics.md), computed from the data
source with the `[churn_reasons]` mapping and cached per serving state and arguments.
"""
from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from csforecast.api import analyses
from csforecast.api.deps import StateDep, require_read
from csforecast.api.errors import DataUnavailable
from csforecast.api.schemas import ErrorResponse, RetentionGroup
from csforecast.api.state import ServingState

router = APIRouter(prefix="/v1/metrics", tags=["metrics"], dependencies=[Depends(require_read)],
                   responses={401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
                              503: {"model": ErrorResponse, "description": "No data source, or it cannot be read"}})
PERIOD_PATTERN = r"^(quarter|month|year|\d{4}|\d{4}-\d{2}|\d{4}[Qq][1-4])$"


def _compute(state: ServingState, period: str | None, group_by: str | None) -> bytes:
    try:
        body = analyses.churn_reasons(state.data, period, group_by)
    except ValueError as e:
        raise RequestValidationError([{"type": "value_error", "loc": ("query", "period"), "msg": str(e),
                                       "input": period}]) from e
    return json.dumps(body, allow_nan=False, separators=(",", ":"), default=str).encode()


@router.get("/churn-reasons", summary="Churn reasons: logos and ARR by reason, avoidable share",
            responses={422: {"description": "Unknown period or group_by"}})
async def churn_reasons(state: StateDep,
                        period: Annotated[str | None, Query(
                            pattern=PERIOD_PATTERN, examples=["quarter", "2026Q2", "2026"],
                            description="quarter | month | year (per period as well), or one period (2026Q2, "
                                        "2026-05, 2026); default every churned renewal")] = None,
                        group_by: Annotated[RetentionGroup | None, Query(
                            description="segment | region | csm_id | industry | cohort")] = None) -> Response:
    """Churned renewals by reason (logos, ARR and their shares; unknown reasons counted), avoidable vs
    unavoidable shares (mapping: `[churn_reasons]` in csforecast.toml), by segment, tenure band and ARR band
    with counts beside every share, contraction reasons where the data records them (docs/metrics.md)."""
    if not state.data.location:
        raise HTTPException(503, detail="no data source configured: start the server with `csforecast serve "
                                        "--data SRC` or set CSFORECAST_DATA")
    try:
        content = await run_in_threadpool(_compute, state, period, group_by)
    except DataUnavailable as e:
        raise HTTPException(503, detail=str(e)) from e
    return Response(content, media_type="application/json")
