"""The book of renewal decisions: what is due in a window, grouped into decisions, and each one's status as
of a date (definitions in docs/forecast.md and ``forecast.renewals``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["GROUP_BY", "UNASSIGNED", "to_day", "group_labels", "renewal_book"]

GROUP_BY = ("segment", "region", "csm_id", "industry", "cohort")
UNASSIGNED = "unassigned"


def to_day(d) -> pd.Timestamp:
    """``d`` as a timezone-naive midnight Timestamp (ValueError when it is not a date)."""
    ts = pd.Timestamp(d)
    if ts is pd.NaT:
        raise ValueError(f"not a date: {d!r}")
    return ts.tz_localize(None).normalize() if ts.tzinfo else ts.normalize()


def _ids(s: pd.Series) -> pd.Series:
    out = s.astype(object).where(s.notna(), None)
    return out.map(lambda v: None if v is None or str(v) == "" else str(v))


def group_labels(accounts: pd.DataFrame | None, contracts: pd.DataFrame, account_ids, group_by: str | None,
                 ) -> np.ndarray:
    """Group label per account id: an accounts column (null / unknown account -> "unassigned") or
    "cohort" (quarter of the account's first contract start)."""
    ids = pd.Series(np.asarray(account_ids, dtype=object)).astype(str)
    if group_by is None:
        return np.full(len(ids), "all", dtype=object)
    if group_by == "cohort":
        first = contracts.groupby(contracts["account_id"].astype(str))["start_date"].min()
        lab = pd.to_datetime(ids.map(first)).dt.to_period("Q").astype(str)
        return lab.where(lab != "NaT", UNASSIGNED).to_numpy(dtype=object)
    if accounts is None or group_by not in accounts.columns:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)} (a column of accounts or 'cohort'), "
                         f"not {group_by!r}")
    attr = accounts.assign(_id=accounts["account_id"].astype(str)).drop_duplicates("_id").set_index("_id")[group_by]
    v = ids.map(attr)
    return np.where(v.isna(), UNASSIGNED, v.astype(str)).astype(object)


def renewal_book(contracts: pd.DataFrame, accounts: pd.DataFrame | None, start, end, as_of,
                 group_by: str | None = None) -> pd.DataFrame:
    """One row per renewal decision (account, renewal date) due in [start, end) among contracts started
    before as_of. ``start``/``end`` may be None (unbounded).

    Columns: account_id, contract_id (main = earliest start), renewal_date, arr (ARR due), n_contracts,
    segment, group, status ("renewed" | "churned" | "pending", as known on as_of), succ_arr (successor ARR
    when renewed as of as_of, else NaN), final_renewed / final_succ_arr (with hindsight: whatever the
    table says now; for back-tests), days_ahead (renewal_date - as_of in days).
    """
    as_of = to_day(as_of)
    c = contracts.copy()
    c["contract_id"] = c["contract_id"].astype(str)
    c["account_id"] = c["account_id"].astype(str)
    c["start_date"] = pd.to_datetime(c["start_date"])
    c["end_date"] = pd.to_datetime(c["end_date"])
    info = c.set_index("contract_id")[["start_date", "arr"]]
    rb = _ids(c["renewed_by"]) if "renewed_by" in c.columns else pd.Series(None, index=c.index, dtype=object)
    rb = rb.where(rb != c["contract_id"], None)
    c["_rb"] = rb
    keep = c["end_date"].notna() & (c["end_date"] > c["start_date"]) & (c["start_date"] < as_of)
    if start is not None:
        keep &= c["end_date"] >= to_day(start)
    if end is not None:
        keep &= c["end_date"] < to_day(end)
    c = c[keep]
    cols = ["account_id", "contract_id", "renewal_date", "arr", "n_contracts", "segment", "group", "status",
            "succ_arr", "final_renewed", "final_succ_arr", "days_ahead"]
    if c.empty:
        return pd.DataFrame({k: pd.Series(dtype="datetime64[ns]" if k == "renewal_date" else
                                          float if k in ("arr", "succ_arr", "final_succ_arr", "days_ahead") else
                                          bool if k == "final_renewed" else int if k == "n_contracts" else object)
                             for k in cols})
    has = c["_rb"].notna()
    found = c["_rb"].isin(info.index)
    s_start = c["_rb"].map(info["start_date"])
    known = has & ((found & (s_start < as_of)) | (~found & (c["end_date"] < as_of)))
    c = c.assign(_has=has, _known=known, _found=found)
    c = c.sort_values(["account_id", "end_date", "start_date", "contract_id"], kind="stable")
    key = ["account_id", "end_date"]
    g = c.groupby(key, sort=False)
    book = g.agg(contract_id=("contract_id", "first"), arr=("arr", "sum"), n_contracts=("contract_id", "size"),
                 final_renewed=("_has", "any"), known_renewed=("_known", "any")).reset_index()
    # successor ARR: each distinct successor once; a successor missing from the table renews flat
    fs = c[c["_has"] & c["_found"]].drop_duplicates(key + ["_rb"])
    fs = fs.assign(_sa=fs["_rb"].map(info["arr"]).astype(float))
    flat = c[c["_has"] & ~c["_found"]]
    succ = pd.concat([fs.groupby(key)["_sa"].sum(), flat.groupby(key)["arr"].sum()], axis=1).fillna(0.0).sum(axis=1)
    book = book.merge(succ.rename("final_succ_arr").reset_index(), on=key, how="left")
    book = book.rename(columns={"end_date": "renewal_date"})
    book["final_succ_arr"] = np.where(book["final_renewed"], book["final_succ_arr"].fillna(0.0), np.nan)
    book["status"] = np.where(book["known_renewed"], "renewed",
                              np.where(book["renewal_date"] < as_of, "churned", "pending"))
    book["succ_arr"] = np.where(book["status"] == "renewed", book["final_succ_arr"], np.nan)
    book["segment"] = group_labels(accounts, contracts, book["account_id"], "segment") \
        if accounts is not None and "segment" in accounts.columns else UNASSIGNED
    book["group"] = group_labels(accounts, contracts, book["account_id"], group_by)
    book["days_ahead"] = (book["renewal_date"] - as_of).dt.days.astype(float)
    return book[cols].reset_index(drop=True)
