"""GET /v1/models: the served version of each family, its MLflow metrics and aliases, all registered versions."""
from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from csforecast.api.deps import ModelsDep, ScoresDep, require_read
from csforecast.api.schemas import ErrorResponse, ModelsResponse
from csforecast.jsonsafe import error_text
from csforecast.api.registry import family_info, registry_client
from csforecast.api.state import ServingState
from csforecast.scoring.families import fallback_of

log = logging.getLogger("csforecast.api")
router = APIRouter(prefix="/v1", tags=["models"], dependencies=[Depends(require_read)],
                   responses={401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
                              503: {"model": ErrorResponse, "description": "No models loaded"}})

LIVE_TTL = 5.0   # seconds a live registry answer is reused
_live: dict = {}


def _describe(state: ServingState) -> dict:
    models = state.models
    key = (id(models), state.generation)
    hit = _live.get(key)
    if hit and time.monotonic() - hit[0] < LIVE_TTL:
        return hit[1]
    reachable = True
    infos = {}
    from csforecast.tracking import store

    try:
        registry_client()     # not store.configure(): that would create an empty registry where the file went
        for fam in models.versions:
            infos[fam] = family_info(fam, models.versions[fam], models.info.get(fam, {}).get("pinned", False))
        if not any(i["versions"] for i in infos.values()):
            raise RuntimeError("the registry lists none of the served models")
    except Exception as e:  # noqa: BLE001 - fall back to the snapshot taken at load
        log.warning("registry not reachable for /v1/models, showing the load-time snapshot: %s", error_text(e))
        reachable, infos = False, models.info
    fams = {}
    for fam, v in models.versions.items():
        i = infos.get(fam) or {}
        served = next((x for x in i.get("versions") or [] if str(x.get("version")) == str(v)), {})
        fams[fam] = {"family": fam, "registered_model": store.model_name(fam), "served_version": str(v),
                     "source": models.source, "pinned": bool(i.get("pinned")), "run_id": i.get("run_id"),
                     "aliases": list(i.get("aliases") or []), "metrics": dict(i.get("metrics") or {}),
                     "inputs": list(models.info.get(fam, {}).get("inputs") or []),
                     "versions": list(i.get("versions") or []),
                     # the served version's data and whether it is a small-book fallback (the estimator knows)
                     "fallback": fallback_of(models.estimators.get(fam)) or served.get("fallback"),
                     "data_hash": served.get("data_hash"), "data_profile": served.get("data_profile"),
                     "dropped_components": served.get("dropped_components")}
    out = {"families": fams, "registry_reachable": reachable, "loaded_at": models.loaded_at}
    _live.clear()
    _live[key] = (time.monotonic(), out)
    return out


@router.get("/models", response_model=ModelsResponse, summary="Served model versions, metrics and aliases")
async def list_models(state: ModelsDep) -> dict:
    """What is being served: per family the version, where it was loaded from (registry or local cache),
    whether it is pinned, its current aliases (a served version that lost `champion` shows it), the MLflow
    metrics of its training run, whether it is a small-book fallback, the hash and profile of the data it was
    trained on, and every registered version with the promotion guard's decision."""
    return await run_in_threadpool(_describe, state)


@router.get("/models/monitoring", summary="Calibration and drift of what was served")
async def monitoring(state: ScoresDep) -> dict:
    """As `csforecast monitor --json`, as of the served score set: per family the ECE, Brier and calibration
    slope of the probabilities served by earlier score sets against the renewals resolved since (overall, by
    segment, by days to renewal when served) with the flagged scopes, and the PSI of each feature and of the
    prediction against the champion's training data with the warnings (docs/metrics.md, "Monitoring")."""
    return state.scores.monitoring
