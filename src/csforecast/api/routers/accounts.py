"""GET /v1/accounts/{account_id} and the paged, filtered GET /v1/accounts (both from pre-serialised scores)."""
from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from csforecast.api.deps import ScoresDep, require_read
from csforecast.api.schemas import AccountDetail, AccountPage, Band, ErrorResponse, SortKey
from csforecast.api.cursors import decode_cursor, encode_cursor, query_fingerprint
from csforecast.api.scoreset import SORT_DESC

router = APIRouter(prefix="/v1/accounts", tags=["accounts"], dependencies=[Depends(require_read)],
                   responses={401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
                              503: {"model": ErrorResponse, "description": "No score set loaded"}})

_JSON = "application/json"


# `:path`: an account id may hold a slash ("EMEA/0042"), which the client sends as %2F and the server decodes
@router.get("/{account_id:path}", response_model=AccountDetail, summary="Latest scores of one account",
            responses={404: {"model": ErrorResponse, "description": "Unknown account"}})
async def get_account(state: ScoresDep,
                      account_id: Annotated[str, Path(description="The account id, as in the accounts table.",
                                                      examples=["A00001"])]) -> Response:
    """Churn probability at the next renewal with its top drivers in plain words, the survival summary and
    health score/band/components/triggers/weekly trend when those models are served, the model versions,
    as-of date and data hash of the score set."""
    body = state.scores.details.get(account_id)
    if body is None:
        shown = account_id if len(account_id) <= 64 else account_id[:64] + "…"
        raise HTTPException(404, detail=f"account {shown!r} not found in score set v{state.scores.version}")
    return Response(body, media_type=_JSON)


@router.get("", response_model=AccountPage, summary="List accounts (filtered, sorted, paged)",
            responses={422: {"description": "Invalid filter, sort, limit or cursor"}})
async def list_accounts(
        state: ScoresDep,
        segment: Annotated[str | None, Query(max_length=200, examples=["Enterprise"])] = None,
        csm_id: Annotated[str | None, Query(max_length=200, examples=["CSM03"])] = None,
        band: Annotated[Band | None, Query(description="Health band (accounts without a health score never match).")] = None,
        renewal_before: Annotated[date | None, Query(description="Only accounts renewing before this date.",
                                                     examples=["2027-01-01"])] = None,
        sort: Annotated[SortKey, Query(description="risk_arr, churn_probability and arr sort descending; "
                                                   "health_score and renewal_date ascending (see `order`).")] = "risk_arr",
        order: Annotated[str | None, Query(pattern="^(asc|desc)$",
                                           description="Override the sort key's natural direction.")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page.")] = None,
) -> Response:
    scores = state.scores
    desc = SORT_DESC[sort] if order is None else order == "desc"
    fingerprint = query_fingerprint(segment, csm_id, band, renewal_before, sort, desc)
    offset = 0
    if cursor is not None:
        try:
            c = decode_cursor(cursor)
        except ValueError as e:
            raise RequestValidationError([{"type": "value_error", "loc": ("query", "cursor"), "msg": str(e),
                                           "input": cursor[:200]}]) from e
        if c["v"] != scores.version:
            raise RequestValidationError([{"type": "value_error", "loc": ("query", "cursor"), "input": cursor,
                                           "msg": f"cursor belongs to score set v{c['v']} but scores were reloaded "
                                                  f"(now v{scores.version}); start again without a cursor"}])
        if c["q"] != fingerprint:
            raise RequestValidationError([{"type": "value_error", "loc": ("query", "cursor"), "input": cursor,
                                           "msg": "cursor was issued for other filters or sort order"}])
        offset = c["o"]
    page, total = scores.page(sort=sort, desc=desc, segment=segment, csm_id=csm_id, band=band,
                              renewal_before=renewal_before, offset=offset, limit=limit)
    nxt = offset + len(page)
    next_cursor = encode_cursor(nxt, scores.version, fingerprint) if nxt < total else None
    body = b"".join([b'{"items":[', b",".join(page), b'],"next_cursor":',
                     (b'"' + next_cursor.encode() + b'"') if next_cursor else b"null",
                     b',"total":', str(total).encode(), b"}"])
    return Response(body, media_type=_JSON)
