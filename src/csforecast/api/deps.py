"""FastAPI dependencies: settings, the current serving state, and API-key auth.

All are `async def` and non-blocking (a stat and an HMAC at most), so they run on the event loop instead
of costing a threadpool hop per request.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from csforecast.api.auth import KeyStore, Principal
from csforecast.api.state import ServingState, StateHolder
from csforecast.config import Settings

API_KEY_HEADER = "X-API-Key"
api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                              description="An API key from `csforecast apikey create --scope read|write|admin`.")


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_holder(request: Request) -> StateHolder:
    return request.app.state.holder


async def get_state(request: Request) -> ServingState:
    """The state object this request uses from start to end (a reload swaps the holder's reference only)."""
    return request.app.state.holder.current


async def get_keystore(request: Request) -> KeyStore:
    return request.app.state.keys


async def authenticated(request: Request, key: Annotated[str | None, Security(api_key_header)]) -> Principal:
    principal = request.app.state.keys.verify(key)
    if principal is None:
        raise HTTPException(401, detail=f"missing or invalid API key (send it in the {API_KEY_HEADER} header)",
                            headers={"WWW-Authenticate": "APIKey"})
    request.state.principal = principal
    return principal


require_read = authenticated  # every valid key may read (no wrapper: one dependency less per request)


async def require_admin(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    if not principal.allows("admin"):
        raise HTTPException(403, detail="this endpoint needs an API key with scope 'admin'")
    return principal


async def require_write(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    if not principal.allows("write"):
        raise HTTPException(403, detail="this endpoint needs an API key with scope 'write' (or 'admin')")
    return principal


async def require_scores(request: Request) -> ServingState:
    state = request.app.state.holder.current
    if state.scores is None:
        raise HTTPException(503, detail="no score set loaded: " + ("; ".join(state.problems) or "not loaded"))
    return state


async def require_models(request: Request) -> ServingState:
    state = request.app.state.holder.current
    if state.models is None or state.churn is None:
        raise HTTPException(503, detail="no models loaded: " + ("; ".join(state.problems) or "not loaded"))
    return state


SettingsDep = Annotated[Settings, Depends(get_settings)]
StateDep = Annotated[ServingState, Depends(get_state)]
ScoresDep = Annotated[ServingState, Depends(require_scores)]
ModelsDep = Annotated[ServingState, Depends(require_models)]
ReadKey = Annotated[Principal, Depends(require_read)]
AdminKey = Annotated[Principal, Depends(require_admin)]
