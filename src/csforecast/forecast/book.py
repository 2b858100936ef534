"""The book of renewal decisions: what is due in a window, grouped into decisions, and each one's status as
of a date (definitions in docs/forecast.md and ``forecast.renewals``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from csforecast.data.contract import UNASSIGNED

__all__ = ["GROUP_BY", "GROUP_SEP", "UNASSIGNED", "to_day", "group_columns", "group_labels", "renewal_book",
           "project_chains"]

GROUP_BY = ("segment", "region", "csm_id", "industry", "cohort")
GROUP_SEP = " / "          # label of a group of several columns: "Enterprise / CSM-001"
MAX_GROUP_COLUMNS = 2


def group_columns(group_by: str | None) -> tuple[str, ...]:
    """The columns of a ``group_by`` value: None -> (), "segment" -> ("segment",), "segment,csm_id" ->
    ("segment", "csm_id"). ValueError naming the value when a column is unknown, repeated, or there are more
    than two."""
    if group_by is None:
        return ()
    cols = tuple(c.strip() for c in str(group_by).split(","))
    bad = [c for c in cols if c not in GROUP_BY]
    if bad or not cols:
        raise ValueError(f"group_by must be one or two of {', '.join(GROUP_BY)} separated by a comma, not "
                         f"{group_by!r}")
    if len(cols) > MAX_GROUP_COLUMNS or len(set(cols)) != len(cols):
        raise ValueError(f"group_by takes at most {MAX_GROUP_COLUMNS} different columns, not {group_by!r}")
    return cols


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
    "cohort" (quarter of the account's first contract start); two columns ("segment,csm_id") give
    "<segment> / <csm_id>" (``GROUP_SEP``)."""
    ids = pd.Series(np.asarray(account_ids, dtype=object)).astype(str)
    if group_by is None:
        return np.full(len(ids), "all", dtype=object)
    cols = group_columns(group_by)
    if len(cols) > 1:
        parts = [group_labels(accounts, contracts, ids, c).astype(str) for c in cols]
        out = parts[0].astype(object)
        for p in parts[1:]:
            out = out + GROUP_SEP + p
        return out.astype(object)
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
                 group_by: str | None = None, *, booked: bool = False) -> pd.DataFrame:
    """One row per renewal decision (account, renewal date) due in [start, end) among contracts started
    before as_of. ``start``/``end`` may be None (unbounded).

    Columns: account_id, contract_id (main = earliest start), renewal_date, arr (ARR due), n_contracts,
    segment, group, status ("renewed" | "churned" | "pending", as known on as_of), succ_arr (successor ARR
    when renewed as of as_of, else NaN), final_renewed / final_succ_arr (with hindsight: whatever the
    table says now; for back-tests), days_ahead (renewal_date - as_of in days), booked (renewed by a successor
    that starts on or after as_of: a renewal signed ahead).

    ``booked``: a successor in the table that starts on or after as_of counts as signed, so its decision is
    renewed (``booked`` True) rather than pending. Right only when as_of is the export's present (the data end:
    every row of the table was known then); in a back-test (as_of in the past) a successor that starts after
    as_of may have been signed after it, so the default leaves its decision pending.
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
            "succ_arr", "final_renewed", "final_succ_arr", "days_ahead", "booked"]
    if c.empty:
        return pd.DataFrame({k: pd.Series(dtype="datetime64[ns]" if k == "renewal_date" else
                                          float if k in ("arr", "succ_arr", "final_succ_arr", "days_ahead") else
                                          bool if k in ("final_renewed", "booked") else
                                          int if k == "n_contracts" else object)
                             for k in cols})
    has = c["_rb"].notna()
    found = c["_rb"].isin(info.index)
    s_start = c["_rb"].map(info["start_date"])
    ahead = has & found & (s_start >= as_of) & booked
    known = has & ((found & (s_start < as_of)) | (~found & (c["end_date"] < as_of))) | ahead
    c = c.assign(_has=has, _known=known, _found=found, _ahead=ahead)
    c = c.sort_values(["account_id", "end_date", "start_date", "contract_id"], kind="stable")
    key = ["account_id", "end_date"]
    g = c.groupby(key, sort=False)
    book = g.agg(contract_id=("contract_id", "first"), arr=("arr", "sum"), n_contracts=("contract_id", "size"),
                 final_renewed=("_has", "any"), known_renewed=("_known", "any"),
                 booked=("_ahead", "any")).reset_index()
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


def project_chains(book: pd.DataFrame, contracts: pd.DataFrame, end) -> pd.DataFrame:
    """Renewal decisions not yet on the books that fall due before ``end``: each pending decision whose
    contract term is shorter than the rest of the window renews into a successor of the same term and ARR,
    due one term later, and so on (monthly plans renew or churn month after month).

    Returns rows like the book's (status "projected", hindsight columns NaN, the chain's account, contract_id,
    ARR and groups) plus ``prev``: the position, in "pending decisions in book order, then the projected rows"
    order, of the decision each projected one follows (so a projected row always comes after its
    predecessor), and ``term_days``. Empty when no term is shorter than the rest of the window."""
    cols = list(book.columns) + ["prev", "term_days"]
    pend = book[book["status"] == "pending"].reset_index(drop=True)
    if pend.empty:
        return pd.DataFrame(columns=cols)
    c = contracts.assign(contract_id=contracts["contract_id"].astype(str))
    span = (pd.to_datetime(c["end_date"]) - pd.to_datetime(c["start_date"])).dt.days
    term = pd.Series(span.to_numpy(dtype=float), index=c["contract_id"].to_numpy()).groupby(level=0).first()
    t = pend["contract_id"].astype(str).map(term).to_numpy(dtype=float)
    r = pd.to_datetime(pend["renewal_date"])
    gap = (to_day(end) - r).dt.days.to_numpy(dtype=float)
    ok = np.isfinite(t) & (t > 0)
    k_max = np.where(ok, np.ceil(gap / np.where(ok, t, 1.0)) - 1, 0).clip(min=0).astype(int)
    if k_max.max(initial=0) == 0:
        return pd.DataFrame(columns=cols)
    last = np.arange(len(pend))
    nxt = len(pend)
    parts = []
    for k in range(1, int(k_max.max()) + 1):
        live = np.flatnonzero(k_max >= k)
        part = pend.iloc[live].copy()
        part["renewal_date"] = r.iloc[live].to_numpy() + pd.to_timedelta(k * t[live], unit="D").to_numpy()
        part["days_ahead"] = part["days_ahead"].to_numpy(dtype=float) + k * t[live]
        part["status"] = "projected"
        part["succ_arr"] = np.nan
        part["final_renewed"] = np.nan
        part["final_succ_arr"] = np.nan
        part["prev"] = last[live]
        part["term_days"] = t[live]
        last[live] = np.arange(nxt, nxt + len(live))
        nxt += len(live)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)[cols]
