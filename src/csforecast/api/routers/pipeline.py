"""GET /v1/forecast/pipeline: the expansion pipeline weighted by default and learned stage probabilities.

The figures are `forecast.pipeline.pipeline_report`'s (definitions: docs/metrics.md), computed from the data
source with the `[pipeline]` settings and cached per serving state and arguments.
"""
from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from csforecast.api import analyses
from csforecast.api.deps import StateDep, require_read
from csforecast.api.errors import DataUnavailable
from csforecast.api.schemas import ErrorResponse, RetentionGroup
from csforecast.api.state import ServingState

router = APIRouter(prefix="/v1/forecast", tags=["forecast"], dependencies=[Depends(require_read)],
                   responses={401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
                              503: {"model": ErrorResponse, "description": "No data source, or it cannot be read"}})


def _compute(state: ServingState, group_by: str | None) -> bytes:
    body = analyses.pipeline(state.data, group_by)
    return json.dumps(body, allow_nan=False, separators=(",", ":"), default=str).encode()


@router.get("/pipeline", summary="Expansion pipeline: weighted by default and learned stage probabilities")
async def pipeline(state: StateDep,
                   group_by: Annotated[RetentionGroup | None, Query(
                       description="segment | region | csm_id | industry | cohort")] = None) -> Response:
    """Stage probabilities (the handbook's defaults from `[pipeline]`, learned ones with intervals and the
    number of closed opportunities behind them), the open pipeline per quarter of expected close weighted by
    each (per group when asked), and the back-test of both weightings on past quarters (docs/metrics.md)."""
    if not state.data.location:
        raise HTTPException(503, detail="no data source configured: start the server with `csforecast serve "
                                        "--data SRC` or set CSFORECAST_DATA")
    try:
        content = await run_in_threadpool(_compute, state, group_by)
    except DataUnavailable as e:
        raise HTTPException(503, detail=str(e)) from e
    return Response(content, media_type="application/json")
