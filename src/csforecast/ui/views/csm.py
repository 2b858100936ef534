"""The CSM pages: the list of books and one CSM's book with this week's health changes."""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from csforecast.ui.views.format import DASH, intc, money, signed
from csforecast.ui.views.frame import account_row


def csm_list_view(df: pd.DataFrame) -> list[dict]:
    g = df.assign(red=(df["band"] == "red").to_numpy(), drop=(df["week_change"] <= -5).to_numpy()).groupby(
        "csm", sort=True).agg(n=("account_id", "size"), arr=("arr", "sum"), risk=("risk_arr", "sum"),
                              red=("red", "sum"), drops=("drop", "sum"))
    return [{"csm": csm, "n": intc(r.n), "arr": money(r.arr), "risk": money(r.risk), "red": intc(r.red),
             "drops": intc(r.drops)} for csm, r in zip(g.index, g.itertuples(index=False))]


CSM_PAGE_SIZE = 250


def csm_view(df: pd.DataFrame, csm: str, changes: Mapping[str, tuple] | None, page: int = 1,
             page_size: int = CSM_PAGE_SIZE) -> dict | None:
    """A CSM's book sorted by risk × ARR (`page_size` rows per page), with the health change vs last week and
    what moved it; the week's largest drops and rises are over the whole book."""
    sub = df[(df["csm"] == csm).to_numpy()]
    if sub.empty:
        return None
    sub = sub.sort_values("risk_rank")
    changes = changes or {}
    ids = sub["account_id"].astype(str).tolist()
    fallback = sub["week_change"].to_numpy(dtype=float)
    ch = np.full(len(ids), np.nan)
    why: list[str | None] = [None] * len(ids)
    for i, a in enumerate(ids):
        c = changes.get(a)
        if c is not None and c[1] is not None:
            ch[i], why[i] = c[1], c[2]
        else:
            ch[i] = fallback[i]
    pages = max(1, -(-len(ids) // page_size))
    page = min(max(1, page), pages)
    lo, hi = (page - 1) * page_size, min(page * page_size, len(ids))

    def row(i: int, r) -> dict:
        c = None if np.isnan(ch[i]) else float(ch[i])
        return {**account_row(r), "change": signed(c, 1), "why": why[i] or (DASH if c is None else ""),
                "triggers": intc(r.n_triggers)}
    rows = [row(lo + k, r) for k, r in enumerate(sub.iloc[lo:hi].itertuples(index=False))]
    known = np.flatnonzero(~np.isnan(ch))
    order = known[np.argsort(ch[known], kind="stable")]
    drops = [i for i in order[:5] if ch[i] <= -1]
    rises = [i for i in order[::-1][:5] if ch[i] >= 1]
    tops = {i: row(i, r) for i, r in zip(drops + rises, sub.iloc[drops + rises].itertuples(index=False))}
    return {"csm": csm, "rows": rows, "n": intc(len(sub)), "arr": money(sub["arr"].sum()),
            "risk": money(sub["risk_arr"].sum()), "red": intc((sub["band"] == "red").sum()),
            "drops": [tops[i] for i in drops], "rises": [tops[i] for i in rises],
            "has_trend": bool(len(known)), "explained": bool(changes),
            "page": page, "pages": pages, "first": lo + 1, "last": hi, "total": len(ids)}
