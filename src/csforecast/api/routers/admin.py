"""POST /v1/admin/reload: load the current champions and the latest score set (only what changed), swap
them in atomically; concurrent reloads coalesce (api/state.py)."""
from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from csforecast.api.deps import require_admin
from csforecast.api.schemas import ErrorResponse, ReloadResponse
from csforecast.api.errors import LoadError
from csforecast.jsonsafe import error_text

log = logging.getLogger("csforecast.api")
router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)],
                   responses={401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
                              403: {"model": ErrorResponse, "description": "The key's scope is not admin"}})


@router.post("/reload", response_model=ReloadResponse, summary="Reload champions and scores",
             responses={503: {"model": ErrorResponse,
                              "description": "The new set could not be loaded; the previous one is still served"}})
async def reload(request: Request):
    """Loads the `champion` (or pinned) version of every family from the registry and the latest score set,
    builds the new serving state completely, then swaps it in with one reference assignment: requests in
    flight finish on the old state. Only what changed is loaded (`changed` says what; empty when the
    served versions and score set are already the latest, and then the state and its `generation` stay).
    Reloads asked for at the same time share one load. If anything fails, nothing changes and the answer
    is 503."""
    holder = request.app.state.holder
    metrics = request.app.state.metrics
    who = getattr(request.state, "principal", None)
    t0 = time.perf_counter()
    try:
        outcome = await run_in_threadpool(holder.reload)
    except Exception as e:  # noqa: BLE001 - LoadError or anything else: the old set stays, never a 500
        metrics.reloads.labels(outcome="failed").inc()
        cur = holder.current
        kept = (f"still serving models {cur.versions or 'none'} and score set "
                f"v{cur.scores.version if cur.scores else 'none'}")
        msg = str(e) if isinstance(e, LoadError) else f"unexpected error: {error_text(e)}"
        log.error("reload requested by key %s failed: %s; %s", who.key_id if who else "?", msg, kept)
        return JSONResponse({"detail": f"reload failed: {msg}; {kept}"}, status_code=503)
    new, old = outcome.new, outcome.old
    metrics.reloads.labels(outcome="ok").inc()
    if "models" in outcome.changed:
        request.app.openapi_schema = None  # the example in the schema uses the served model's inputs
    secs = round(time.perf_counter() - t0, 3)
    log.info("reload by key %s in %.2fs: %s; models %s → %s, score set v%s → v%s", who.key_id if who else "?",
             secs, ", ".join(outcome.changed) or "nothing changed", old.versions, new.versions,
             old.scores.version if old.scores else None, new.scores.version)
    return {"status": "reloaded", "generation": new.generation, "changed": list(outcome.changed),
            "models": new.versions, "score_set": new.scores.info(), "previous_models": old.versions,
            "previous_score_set": old.scores.version if old.scores else None, "seconds": secs}
