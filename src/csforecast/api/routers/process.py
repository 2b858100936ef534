"""The renewal forecast as CS teams run it: CSM calls (record and list), model-vs-call disagreements, the
forecast ledger and each CSM's work list (docs/forecast.md; issue 16).

POST /v1/forecast/calls needs a key with scope ``write`` (``admin`` implies it); every other endpoint here
reads. Recorded calls go to the forecast-process store (``scoring.process``) and count from the next score set
(``csforecast score`` or a reload scores them with the blend).
"""
from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from csforecast.api.deps import ScoresDep, StateDep, get_settings, require_read, require_write
from csforecast.config import Settings
from csforecast.api.errors import DataUnavailable
from csforecast.api.schemas import ErrorResponse
from csforecast.jsonsafe import finite_float, iso_date, json_safe, jsonable

_ERRORS = {401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
           503: {"model": ErrorResponse, "description": "No score set loaded or no data source configured"}}
router = APIRouter(prefix="/v1/forecast", tags=["forecast process"], responses=_ERRORS)
csm_router = APIRouter(prefix="/v1/csms", tags=["forecast process"], dependencies=[Depends(require_read)],
                       responses=_ERRORS)

Category = Literal["commit", "most_likely", "at_risk", "churn"]


class CallIn(BaseModel):
    """A CSM's call on a renewal (the forecast_calls columns)."""
    account_id: str = Field(min_length=1, max_length=200, examples=["A00001"])
    contract_id: str = Field(min_length=1, max_length=200, description="The renewing contract.",
                             examples=["C000004"])
    called_at: date | None = Field(None, description="When the call was made (default: today).")
    csm_id: str = Field(min_length=1, max_length=200, examples=["CSM-003"])
    category: Category
    amount: float | None = Field(None, ge=0, allow_inf_nan=False,
                                 description="The CSM's expected renewal ARR (optional).")
    note: str | None = Field(None, max_length=2000)


def _invalid(field: str, msg: str, value) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("body", field), "msg": msg,
                                    "input": value}])


def _known_contract(state, call: CallIn) -> None:
    """422 unless the call's contract is one of the account's: in the data source's contracts when one is
    configured, else the account's renewing contract in the served score set."""
    if state.data.location:
        try:
            c = state.data.frame("contracts")
        except DataUnavailable:
            c = None
        if c is not None:
            row = c[c["contract_id"].astype(str) == call.contract_id]
            if row.empty:
                raise _invalid("contract_id", f"contract {call.contract_id!r} is not in the contracts table",
                               call.contract_id)
            if str(row["account_id"].iloc[0]) != call.account_id:
                raise _invalid("contract_id", f"contract {call.contract_id!r} belongs to account "
                                              f"{row['account_id'].iloc[0]!r}, not {call.account_id!r}",
                               call.contract_id)
            return
    f = state.scores.frame if state.scores is not None else None
    if f is None or "contract_id" not in f:
        raise HTTPException(503, detail="no data source and no score set to check the call's contract against")
    row = f[f["account_id"].astype(str) == call.account_id]
    if row.empty:
        raise _invalid("account_id", f"account {call.account_id!r} is not in the served score set", call.account_id)
    if str(row["contract_id"].iloc[0]) != call.contract_id:
        raise _invalid("contract_id", f"contract {call.contract_id!r} is not the renewing contract of account "
                                      f"{call.account_id!r} ({row['contract_id'].iloc[0]!r})", call.contract_id)


@router.post("/calls", status_code=201, summary="Record a CSM call on a renewal",
             dependencies=[Depends(require_write)],
             responses={403: {"model": ErrorResponse, "description": "The key's scope is not write or admin"},
                        422: {"description": "Unknown category, negative amount, unknown contract"}})
async def post_call(state: StateDep, settings: Annotated[Settings, Depends(get_settings)], call: CallIn) -> dict:
    """Store a call (commit, most_likely, at_risk or churn) in the forecast-process store; the blend and the
    scenarios read it from the next score set and forecast on."""
    from csforecast.scoring.process import process_db, record_call

    if call.called_at is not None and call.called_at > date.today():
        raise _invalid("called_at", "called_at is in the future", call.called_at.isoformat())
    await run_in_threadpool(_known_contract, state, call)
    row = call.model_dump()
    row["called_at"] = call.called_at or date.today()
    return await run_in_threadpool(record_call, process_db(settings.home), row)


def _calls_frame(state, home) -> pd.DataFrame:
    from csforecast.features.calls import calls_with_due_date
    from csforecast.scoring.process import process_db, recorded_calls

    parts = []
    if state.data.location:
        try:
            parts.append(calls_with_due_date(state.data.frame("forecast_calls"), state.data.frame("contracts")))
        except DataUnavailable:   # no forecast_calls table: only the recorded calls
            pass
    rec = recorded_calls(process_db(home))
    if len(rec):
        if state.data.location:
            parts.append(calls_with_due_date(rec, state.data.frame("contracts")))
        else:
            parts.append(rec.assign(due_date=pd.NaT))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


@router.get("/calls", summary="CSM calls, filtered", dependencies=[Depends(require_read)])
async def get_calls(state: StateDep, settings: Annotated[Settings, Depends(get_settings)],
                    csm_id: Annotated[str | None, Query(max_length=200, examples=["CSM-003"])] = None,
                    renewal_before: Annotated[date | None, Query(description="Only calls on renewals due before "
                                                                            "this date.")] = None,
                    limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> dict:
    """Calls from the data source's forecast_calls table and those recorded through the API, newest first."""
    f = await run_in_threadpool(_calls_frame, state, settings.home)
    if len(f):
        if csm_id is not None:
            f = f[f["csm_id"].astype(str) == csm_id]
        if renewal_before is not None:
            f = f[pd.to_datetime(f["due_date"]) < pd.Timestamp(renewal_before)]
        f = f.sort_values("called_at", ascending=False)
    total = int(len(f))
    items = [{"account_id": str(r["account_id"]), "contract_id": str(r["contract_id"]),
              "called_at": iso_date(r["called_at"]), "csm_id": json_safe(r["csm_id"]), "category": r["category"],
              "amount": finite_float(r.get("amount"), 2), "note": json_safe(r.get("note")),
              "renewal_date": iso_date(r.get("due_date"))} for r in f.head(limit).to_dict("records")]
    return {"items": items, "total": total}


@router.get("/disagreements", summary="Renewals where the model and the CSM's call differ most",
            dependencies=[Depends(require_read)])
async def get_disagreements(state: ScoresDep,
                            within_days: Annotated[int, Query(ge=1, le=730)] = 90,
                            limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
    """Renewals due within ``within_days`` with a call, ordered by |model probability - call probability| x
    ARR (docs/forecast.md, "Disagreements")."""
    from csforecast.scoring.worklist import disagreements

    items = disagreements(state.scores.frame, within_days, limit)
    return {"items": jsonable(items), "within_days": within_days, "as_of": state.scores.as_of,
            "score_set_version": state.scores.version}


@router.get("/ledger", summary="Frozen forecasts and their accuracy", dependencies=[Depends(require_read)])
async def get_ledger(state: StateDep, settings: Annotated[Settings, Depends(get_settings)]) -> dict:
    """Every frozen forecast (`csforecast forecast --freeze`, `csforecast score`) and, once its window has closed
    in the served data source, the actual, the error and whether P10-P90 held it. Read on every request, so a
    new freeze shows without a reload."""
    return await run_in_threadpool(ledger_doc, state, settings.home)


def ledger_doc(state, home) -> dict:
    """The ledger report measured against the served data source (entries stay open without one)."""
    from csforecast.forecast.ledger import ledger_report
    from csforecast.scoring.process import ledger_entries, process_db

    frames = None
    if state.data.location:
        try:
            frames = (state.data.frame("contracts"), state.data.frame("accounts"), state.data.data_end())
        except DataUnavailable:
            frames = None
    return jsonable(ledger_report(ledger_entries(process_db(home)), lambda _where: frames))


@csm_router.get("/{csm_id}/worklist", summary="A CSM's accounts to act on this week")
async def get_worklist(state: ScoresDep,
                       csm_id: Annotated[str, Path(max_length=200, examples=["CSM-003"])],
                       horizon_days: Annotated[int, Query(ge=1, le=730)] = 90,
                       limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
    """The CSM's renewals within ``horizon_days`` ordered by expected ARR lost x soonness, each with its top
    reason in plain words and its lever (docs/forecast.md, "Work list"). 404 for a CSM with no accounts."""
    from csforecast.scoring.worklist import worklist

    f = state.scores.frame
    if f is None or "csm_id" not in f or not (f["csm_id"].astype(str) == csm_id).any():
        raise HTTPException(404, detail=f"CSM {csm_id!r} has no accounts in score set v{state.scores.version}")
    items = worklist(f, csm_id, horizon_days, limit)
    return {"csm_id": csm_id, "horizon_days": horizon_days, "items": jsonable(items), "as_of": state.scores.as_of,
            "score_set_version": state.scores.version}
