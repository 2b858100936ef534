"""CSM calls as of a date: the latest call on each snapshot row's renewal, from calls made strictly before it.

A call names the renewing contract; the renewal it is about is that contract's ``end_date`` (co-termed add-ons
renew with it), so a call is matched to a snapshot row by account and renewal date. Point in time like every
feature: a row as of D sees the calls with ``called_at < D`` only. Calls are not model features (the churn
model never reads them); the blend family and the call scenarios do (docs/forecast.md, "CSM calls").
"""
from __future__ import annotations

import pandas as pd

from csforecast.data.contract import CALL_CATEGORIES

__all__ = ["CALL_COLUMNS", "CALL_CATEGORIES", "calls_with_due_date", "latest_calls", "source_calls"]

# the columns latest_calls adds to a row
CALL_COLUMNS = ("call_category", "call_csm_id", "call_amount", "called_at", "call_note")


def calls_with_due_date(calls: pd.DataFrame, contracts: pd.DataFrame) -> pd.DataFrame:
    """``calls`` (the forecast_calls columns) with ``due_date``: the end date of the contract each call names
    (calls naming no known contract are dropped: validation reports them)."""
    end = contracts.set_index("contract_id")["end_date"]
    out = calls.copy()
    out["due_date"] = pd.to_datetime(out["contract_id"].map(end))
    out["called_at"] = pd.to_datetime(out["called_at"])
    return out[out["due_date"].notna()]


def source_calls(source) -> pd.DataFrame:
    """The source's forecast_calls with their due dates; an empty frame when the source has none."""
    cols = ["account_id", "contract_id", "called_at", "csm_id", "category", "amount", "note", "due_date"]
    if not source.has("forecast_calls"):
        return pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c in ("called_at", "due_date") else object)
                             for c in cols})
    return calls_with_due_date(source.frame("forecast_calls"), source.frame("contracts"))[cols]


def latest_calls(calls: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """For each of ``rows`` (``account_id``, ``renewal_date``, ``as_of``; index kept), the latest call on
    that renewal made strictly before ``as_of``: ``call_category``, ``call_csm_id``, ``call_amount``,
    ``called_at``, ``call_note`` (missing where there is none). ``calls``: from :func:`calls_with_due_date`.
    Two calls on the same day: the later row wins."""
    out = pd.DataFrame(index=rows.index, columns=list(CALL_COLUMNS), dtype=object)
    out["called_at"] = pd.NaT
    out["call_amount"] = float("nan")
    if calls is None or calls.empty or rows.empty:
        return out
    key = pd.DataFrame({"_row": range(len(rows)), "account_id": rows["account_id"].to_numpy(),
                        "due_date": pd.to_datetime(rows["renewal_date"]).to_numpy(),
                        "as_of": pd.to_datetime(rows["as_of"]).to_numpy()})
    c = calls.reset_index(drop=True).reset_index(names="_order")
    m = key.merge(c, on=["account_id", "due_date"])
    m = m[m["called_at"] < m["as_of"]]
    if m.empty:
        return out
    m = m.sort_values(["_row", "called_at", "_order"]).drop_duplicates("_row", keep="last")
    pos = m["_row"].to_numpy()
    idx = rows.index[pos]
    out.loc[idx, "call_category"] = m["category"].astype(object).to_numpy()
    out.loc[idx, "call_csm_id"] = m["csm_id"].astype(object).to_numpy()
    out.loc[idx, "call_amount"] = pd.to_numeric(m["amount"], errors="coerce").to_numpy(float)
    out.loc[idx, "called_at"] = m["called_at"].to_numpy()
    out.loc[idx, "call_note"] = m["note"].astype(object).where(m["note"].notna(), None).to_numpy()
    out["call_amount"] = out["call_amount"].astype(float)
    out["called_at"] = pd.to_datetime(out["called_at"])
    return out
