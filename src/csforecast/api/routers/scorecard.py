"""The editable health scorecard (issue 17): weight sets scored on the served health model's validation rows.

GET /v1/health/scorecard lists the learned, equal, configured (``[scorecard] weights``) and saved (dashboard)
weight sets with their AUC, top-decile lift and churn by band; POST /v1/health/scorecard/evaluate scores the
weight set in the body on the same rows. Definitions: docs/health.md, docs/metrics.md ("Scorecard").
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from csforecast.api.deps import ModelsDep, require_read
from csforecast.api.schemas import ErrorResponse
from csforecast.jsonsafe import error_text, jsonable
from csforecast.models.scorecard import WeightSetError
from csforecast.scoring.scorecard import SavedWeights, champion_reference, evaluate_weights, scorecard_report

router = APIRouter(prefix="/v1/health", tags=["health scorecard"], dependencies=[Depends(require_read)],
                   responses={401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
                              503: {"model": ErrorResponse, "description": "No health model is served, or its "
                                                                          "validation rows cannot be read"}})


class WeightSet(BaseModel):
    weights: dict[str, Any] = Field(description="component → weight ≥ 0 (deployment, adoption, engagement, value, "
                                                "nps, support, sentiment); at least one above 0.")
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"weights": {"deployment": 2, "adoption": 2, "engagement": 1, "nps": 1, "support": 1}}]})


def _reference(state, settings):
    est = state.models.estimators.get("health")
    if est is None:
        raise HTTPException(503, detail="no health model is served, so there is no scorecard to evaluate")
    run_id = (state.models.info.get("health") or {}).get("run_id")
    try:
        return est, champion_reference(run_id)
    except Exception as e:  # noqa: BLE001 - an unreachable tracking store is the server's problem, said so
        raise HTTPException(503, detail=f"the health model's validation rows cannot be read: {error_text(e)}") from None


def _field_error(e: WeightSetError) -> RequestValidationError:
    loc = ("body", "weights", e.field) if e.field else ("body", "weights")
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": str(e), "input": jsonable(e.value)}])


@router.get("/scorecard", summary="Weight sets scored on the health model's validation rows")
async def scorecard(request: Request, state: ModelsDep) -> dict:
    """Per weight set (`learned`: the served model; `equal_weight`; `configured`: `[scorecard] weights` in
    csforecast.toml; `saved`: the set saved on the dashboard) its component weights and, on the validation rows
    the served health model was checked on: `auc`, `top_decile_lift`, churn rate and count by three bands
    (`bands3`) and by five bands (`bands5`). `available` is false (with `reason`) for a model trained before
    its validation rows were logged."""
    settings = request.app.state.settings

    def build():
        est, ref = _reference(state, settings)
        return jsonable(scorecard_report(ref, est, settings, SavedWeights(settings.home).load()))
    return await run_in_threadpool(build)


@router.post("/scorecard/evaluate", summary="Score a weight set on the health model's validation rows",
             responses={422: {"description": "A negative, non-finite or non-numeric weight, an unknown component "
                                             "or no positive weight (the field is named)"}})
async def evaluate(request: Request, body: WeightSet, state: ModelsDep) -> dict:
    """The weight set in the body scored on the same validation rows as `GET /v1/health/scorecard`'s sets:
    `weights` (as read), `missing_components` (named but not scored by the served model), `metrics` (`auc`,
    `top_decile_lift`, `bands3`, `bands5`) and `n_rows`. Nothing is stored."""
    settings = request.app.state.settings

    def run():
        est, ref = _reference(state, settings)
        if ref is None:
            raise HTTPException(503, detail=scorecard_report(None, est, settings)["reason"])
        try:
            out = evaluate_weights(ref, body.weights, settings)
        except WeightSetError as e:
            raise _field_error(e) from None
        except ValueError as e:     # names only components the served model does not score
            raise RequestValidationError([{"type": "value_error", "loc": ("body", "weights"), "msg": str(e),
                                           "input": jsonable(body.weights)}]) from None
        return jsonable({**out, "n_rows": int(len(ref))})
    return await run_in_threadpool(run)
