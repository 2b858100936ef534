"""POST /v1/score: score rows on demand with the served churn model (and the health model when it can)."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from csforecast.api.deps import ModelsDep, require_read
from csforecast.api.errors import RowErrors
from csforecast.api.fastscore import health_inputs, score_rows
from csforecast.api.schemas import ErrorResponse, ScoreRequest, ScoreResponse
from csforecast.api.state import ServingState

log = logging.getLogger("csforecast.api")
router = APIRouter(prefix="/v1", tags=["scoring"], dependencies=[Depends(require_read)],
                   responses={401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
                              503: {"model": ErrorResponse, "description": "No models loaded"}})

INLINE_CELLS = 20_000          # rows × features scored on the event loop; bigger batches go to a thread
ROW_BYTES = 16_384             # request body budget per row (a 71-feature row is ~3 KB of JSON)


def _score(state: ServingState, rows: list[dict], contributions: bool, health: list[str] | None,
           strict: bool, settings=None) -> bytes:
    try:
        return score_rows(state, rows, contributions, health, strict, settings)
    except RowErrors as e:
        raise RequestValidationError(e.errors) from None


SCORE_BODY = {"required": True,
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ScoreRequest"}}}}


@router.post("/score", response_model=ScoreResponse, summary="Score rows on demand",
             responses={413: {"model": ErrorResponse, "description": "More rows than serve.max_batch"},
                        422: {"description": "Unknown columns, wrong types, non-finite numbers, a row with none "
                                                "of the model's inputs (row index and field named), a bad "
                                                "body; with strict=true also rows with warnings"}},
             openapi_extra={"requestBody": SCORE_BODY})
async def score(request: Request, state: ModelsDep) -> Response:
    """Body: `ScoreRequest`. Rows use the churn model's input names (`GET /v1/models` → the churn model's
    `inputs`). Inputs left out and nulls are missing values; the result holds the calibrated churn
    probability per row, `warnings` for a row that leaves inputs out or sends a level the model never saw
    (`strict=true` rejects such rows instead), `contributions` (log-odds per feature + `base_value`) when
    asked, and a `health_score` (with `outcomes_score`, `experience_score`, `health_quadrant` and
    `health_band5` beside it) only when a health model is served and the rows carry all of its inputs."""
    # The body is parsed and validated in one pass by pydantic-core (not json.loads, then validation):
    # for 100-row batches that halves the request cost. Errors keep FastAPI's 422 format.
    try:
        body = ScoreRequest.model_validate_json(await request.body())
    except ValidationError as e:
        raise RequestValidationError([{**err, "loc": ("body", *err["loc"])}
                                      for err in e.errors(include_url=False)]) from None
    max_batch = request.app.state.settings.serve.max_batch
    if len(body.rows) > max_batch:
        raise HTTPException(413, detail=f"{len(body.rows)} rows: at most {max_batch} per request (serve.max_batch)")
    rows = body.rows
    health = health_inputs(state.models, rows) if body.health else None
    settings = request.app.state.settings
    if not body.contributions and len(rows) * max(len(state.churn.features), 1) <= INLINE_CELLS:
        # a few milliseconds at most (health included: one pass over its columns): cheaper than a thread hop
        content = _score(state, rows, False, health, body.strict, settings)
    else:
        content = await run_in_threadpool(_score, state, rows, body.contributions, health, body.strict, settings)
    return Response(content, media_type="application/json")


def body_limit(max_batch: int) -> int:
    return max(1 << 20, max_batch * ROW_BYTES)
