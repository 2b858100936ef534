"""GET /v1/metrics/retention: GRR / NRR / ARR movements per period (and group), from the data source."""
from __future__ import annotations

import json
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from csforecast.api.deps import StateDep, require_read
from csforecast.api.schemas import ErrorResponse, Period, RetentionGroup, RetentionResponse
from csforecast.api.errors import DataUnavailable
from csforecast.jsonsafe import error_text
from csforecast.api.state import ServingState

log = logging.getLogger("csforecast.api")
router = APIRouter(prefix="/v1/metrics", tags=["metrics"], dependencies=[Depends(require_read)],
                   responses={401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
                              503: {"model": ErrorResponse, "description": "No data source, or it cannot be read"}})


def _compute(state: ServingState, period: str, group_by: str | None) -> bytes:
    from csforecast.metrics.arr import arr_movements, to_records

    data = state.data

    def run() -> bytes:
        contracts = data.frame("contracts")
        accounts = data.frame("accounts") if group_by not in (None, "cohort") else None
        end = data.data_end()
        try:
            df = arr_movements(contracts, accounts, period=period, group_by=group_by, data_end=end)
        except (ValueError, KeyError) as e:  # the data, not the request, is at fault
            raise DataUnavailable(f"retention metrics cannot be computed from {data.location}: {error_text(e)}") from e
        body = {"period": period, "group_by": group_by, "data_end": end.isoformat(), "data_hash": data.data_hash(),
                "rows": to_records(df)}
        return json.dumps(body, allow_nan=False, separators=(",", ":"), default=str).encode()

    return data.cached(("retention", period, group_by), run)


@router.get("/retention", response_model=RetentionResponse, summary="GRR, NRR and ARR movements",
            responses={422: {"description": "Unknown period or group_by"}})
async def retention(state: StateDep,
                    period: Annotated[Period, Query(description="month | quarter | year")] = "quarter",
                    group_by: Annotated[RetentionGroup | None, Query(
                        description="segment | region | csm_id | industry | cohort (first-contract period)")] = None,
                    ) -> Response:
    """The ARR bridge (starting, new, expansion, contraction, churned, ending), GRR, NRR, logo retention and
    renewal rate of every complete period up to where the data ends (definitions: docs/metrics.md)."""
    try:
        content = await run_in_threadpool(_compute, state, period, group_by)
    except DataUnavailable as e:
        raise HTTPException(503, detail=str(e)) from e
    return Response(content, media_type="application/json")
