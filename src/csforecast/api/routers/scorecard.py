"""The editable health scorecard (issue 17): weight sets scored on the served health model's validation rows.

GET /v1/health/scorecard lists the learned, equal, configured (``[scorecard] weights``), saved (dashboard) and
named (saved through this API) weight sets with their AUC, top-decile lift and churn by band; POST
/v1/health/scorecard/evaluate scores the weight set in the body on the same rows; PUT and DELETE
/v1/health/scorecard/weights/{name} store and remove a named set (scope write or admin; the dashboard's save
path, `scoring.scorecard.SavedWeights`). Definitions: docs/health.md, docs/metrics.md ("Scorecard").
"""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from csforecast.api.auth import Principal
from csforecast.api.deps import ModelsDep, require_read, require_write
from csforecast.api.schemas import ErrorResponse
from csforecast.jsonsafe import error_text, jsonable
from csforecast.models.scorecard import WeightSetError
from csforecast.scoring.scorecard import (SavedWeights, champion_reference, check_set_name, evaluate_weights,
                                          scorecard_report)

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
    if e.field == "name":
        loc = ("path", "name")
    else:
        loc = ("body", "weights", e.field) if e.field else ("body", "weights")
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": str(e), "input": jsonable(e.value)}])


@router.get("/scorecard", summary="Weight sets scored on the health model's validation rows")
async def scorecard(request: Request, state: ModelsDep) -> dict:
    """Per weight set (`learned`: the served model; `equal_weight`; `configured`: `[scorecard] weights` in
    csforecast.toml; `saved`: the set saved on the dashboard; and each set saved with `PUT
    /v1/health/scorecard/weights/{name}` under its name) its component weights and, on the validation rows
    the served health model was checked on: `auc`, `top_decile_lift`, churn rate and count by three bands
    (`bands3`) and by five bands (`bands5`). `available` is false (with `reason`) for a model trained before
    its validation rows were logged."""
    settings = request.app.state.settings

    def build():
        est, ref = _reference(state, settings)
        saved = SavedWeights(settings.home)
        return jsonable(scorecard_report(ref, est, settings, saved.load(), saved.named()))
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


WriteKey = Annotated[Principal, Depends(require_write)]
NAME_DOC = ("1-64 letters, digits, '_', '.' or '-', starting with a letter or digit; not learned, equal_weight, "
            "configured, saved or yours")


@router.put("/scorecard/weights/{name}", summary="Save a named weight set",
            responses={403: {"model": ErrorResponse, "description": "The key's scope is read"},
                       422: {"description": "A negative, non-finite or non-numeric weight, an unknown component, "
                                            "no positive weight, or a bad name (the field is named)"}})
async def save_weights(request: Request, body: WeightSet, state: ModelsDep, who: WriteKey,
                       name: str = Path(description=NAME_DOC)) -> dict:
    """Validate the weight set in the body (as `POST /v1/health/scorecard/evaluate`), score it on the served
    health model's validation rows and store it under `name` in CSFORECAST_HOME/scorecard.json (atomically,
    through the dashboard's save path; a set of the same name is replaced). Returns `name`, `weights`,
    `saved_at`, `saved_by` (the key id), `missing_components`, `metrics` and `n_rows`; `GET
    /v1/health/scorecard` then lists it under its name. Nothing is stored when the set or the name is bad, or
    when no health model can score it (503)."""
    settings = request.app.state.settings

    def run():
        try:
            check_set_name(name)
        except WeightSetError as e:
            raise _field_error(e) from None
        est, ref = _reference(state, settings)
        if ref is None:
            raise HTTPException(503, detail=scorecard_report(None, est, settings)["reason"])
        try:
            out = evaluate_weights(ref, body.weights, settings)   # decide (every check) before the write
        except WeightSetError as e:
            raise _field_error(e) from None
        except ValueError as e:     # names only components the served model does not score
            raise RequestValidationError([{"type": "value_error", "loc": ("body", "weights"), "msg": str(e),
                                           "input": jsonable(body.weights)}]) from None
        try:
            rec = SavedWeights(settings.home).save(out["weights"], who.key_id, name=name)
        except OSError as e:
            raise HTTPException(503, detail=f"the weights could not be saved: {error_text(e)}") from None
        return jsonable({"name": name, **rec, "missing_components": out["missing_components"],
                         "metrics": out["metrics"], "n_rows": int(len(ref))})
    return await run_in_threadpool(run)


@router.delete("/scorecard/weights/{name}", summary="Delete a named weight set",
               dependencies=[Depends(require_write)],
               responses={403: {"model": ErrorResponse, "description": "The key's scope is read"},
                          404: {"model": ErrorResponse, "description": "No weight set of that name was saved"}})
async def delete_weights(request: Request, name: str = Path(description=NAME_DOC)) -> dict:
    """Remove the named set `name` saved with `PUT`; 404 when there is none. Returns `{"deleted": name}`."""
    settings = request.app.state.settings

    def run():
        try:
            removed = SavedWeights(settings.home).delete(name)
        except OSError as e:
            raise HTTPException(503, detail=f"the weights could not be deleted: {error_text(e)}") from None
        if not removed:
            raise HTTPException(404, detail=f"no weight set named '{name}' was saved")
        return {"deleted": name}
    return await run_in_threadpool(run)
