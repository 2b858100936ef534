"""Mid-term expansion: add-on ARR signed between renewals, forecast for a window from history
(docs/forecast.md, "Mid-term expansion").

* An **add-on** is a contract that starts while its account already has another contract covering that day
  and that is nobody's successor (no ``renewed_by`` names it): seats or products bought mid-term. Renewals
  (successors) and first contracts (new logos) are not add-ons.
* **History**: per segment, the add-on ARR signed in the ``LOOKBACK_DAYS`` before as_of divided by the
  segment's ARR exposure over the same days (ARR x days, from month-start ARR), i.e. add-on ARR per unit of
  ARR per day; a segment with fewer than ``MIN_ADDONS`` add-ons uses the portfolio's rate. The typical size
  of one add-on relative to its account's ARR (``size_ratio``) comes from the same add-ons.
* **Forecast** for an account that is a customer on the day before as_of: ``rate x ARR x days`` of the
  window from as_of on; its variance is that of one add-on of size ``size_ratio x ARR`` taken with the
  matching probability (Bernoulli), so the group sums get a spread.
* **Pipeline** (``with_pipeline``): where the source has ``opportunities``, an account with open opportunities
  expected to close in the window takes their weighted amount (``forecast.pipeline.pipeline_addons``) instead
  of its history forecast: both estimate the same flow (add-on ARR signed between renewals), so never both;
  the other accounts' history forecast is scaled by what such accounts signed against it in past windows
  (``forecast.pipeline.off_pipeline_factor``), since the history rate also counts the pipeline's add-ons.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from csforecast.forecast.book import group_labels, to_day

__all__ = ["LOOKBACK_DAYS", "addon_contracts", "addon_rates", "addon_forecast", "addon_actual", "with_pipeline"]

LOOKBACK_DAYS = 365
MIN_ADDONS = 20


def addon_contracts(contracts: pd.DataFrame) -> pd.DataFrame:
    """The add-on contracts (see the module doc): ``contract_id, account_id, start_date, arr``."""
    c = contracts[["contract_id", "account_id", "start_date", "end_date", "arr"]].copy()
    c["contract_id"] = c["contract_id"].astype(str)
    c["account_id"] = c["account_id"].astype(str)
    c["start_date"] = pd.to_datetime(c["start_date"])
    c["end_date"] = pd.to_datetime(c["end_date"])
    succ = set(contracts["renewed_by"].dropna().astype(str)) if "renewed_by" in contracts.columns else set()
    cand = c[~c["contract_id"].isin(succ)]
    pairs = cand.merge(c, on="account_id", suffixes=("", "_o"))
    covered = pairs[(pairs["contract_id_o"] != pairs["contract_id"]) & (pairs["start_date_o"] <= pairs["start_date"])
                    & (pairs["end_date_o"] > pairs["start_date"])
                    & ((pairs["start_date_o"] < pairs["start_date"]) | (pairs["contract_id_o"] < pairs["contract_id"]))]
    ids = set(covered["contract_id"])
    return cand[cand["contract_id"].isin(ids)][["contract_id", "account_id", "start_date", "arr"]].reset_index(drop=True)


def _customers_arr(contracts: pd.DataFrame, as_of) -> pd.Series:
    """ARR of every account that is a customer on the day before as_of (contracts started before as_of)."""
    from csforecast.metrics.arr import account_arr_at

    as_of = to_day(as_of)
    c = contracts[pd.to_datetime(contracts["start_date"]) < as_of]
    if c.empty:
        return pd.Series(dtype=float, name="arr")
    s = account_arr_at(c, as_of - pd.Timedelta(days=1))
    s.index = s.index.astype(str)
    return s


def addon_rates(contracts: pd.DataFrame, accounts: pd.DataFrame | None, as_of) -> dict:
    """{"segments": {segment: {"rate_per_day", "size_ratio", "addons", "exposure_arr_days", "source"}},
    "portfolio": {...}, "lookback_days"} from the add-ons signed in the LOOKBACK_DAYS before as_of."""
    from csforecast.metrics.arr import account_arr_panel

    as_of = to_day(as_of)
    lo = as_of - pd.Timedelta(days=LOOKBACK_DAYS)
    c = contracts[pd.to_datetime(contracts["start_date"]) < as_of]
    add = addon_contracts(c)
    add = add[(add["start_date"] >= lo) & (add["start_date"] < as_of)]
    months = pd.date_range(lo, as_of, freq="MS")
    if len(c) == 0 or len(months) == 0:
        return {"segments": {}, "portfolio": {"rate_per_day": 0.0, "size_ratio": 0.2, "addons": 0,
                                              "exposure_arr_days": 0.0}, "lookback_days": LOOKBACK_DAYS}
    panel = account_arr_panel(c, months)
    panel.index = panel.index.astype(str)
    days = np.diff(np.append(months.to_numpy(), np.datetime64(as_of))).astype("timedelta64[D]").astype(float)
    exposure = panel.to_numpy() @ days                                    # ARR x days per account
    seg = pd.Series(group_labels(accounts, c, panel.index, "segment") if accounts is not None
                    and "segment" in accounts.columns else np.full(len(panel), "unassigned"), index=panel.index)
    # size of an add-on relative to its account's ARR just before it was signed
    before = np.full(len(add), np.nan)
    if len(add):
        eve = add["start_date"] - pd.Timedelta(days=1)
        days_u = pd.DatetimeIndex(sorted(eve.unique()))
        then = account_arr_panel(c, days_u)                  # the add-on itself starts the day after
        then.index = then.index.astype(str)
        ri = then.index.get_indexer(add["account_id"])
        ci = days_u.get_indexer(eve)
        ok = ri >= 0
        before[ok] = then.to_numpy()[ri[ok], ci[ok]]
    add = add.assign(ratio=add["arr"].to_numpy() / np.where(before > 0, before, np.nan),
                     segment=add["account_id"].map(seg).fillna("unassigned"))

    def rate(mask_acc, mask_add) -> dict:
        e = float(exposure[mask_acc].sum())
        a = add[mask_add]
        r = a["ratio"].replace([np.inf, -np.inf], np.nan).dropna()
        return {"rate_per_day": float(a["arr"].sum() / e) if e > 0 else 0.0,
                "size_ratio": float(np.clip(r.median(), 0.01, 5.0)) if len(r) else 0.2,
                "addons": int(len(a)), "exposure_arr_days": e}

    portfolio = rate(np.ones(len(panel), dtype=bool), np.ones(len(add), dtype=bool))
    segments = {}
    for s in sorted(seg.unique()):
        r = rate((seg == s).to_numpy(), (add["segment"] == s).to_numpy())
        if r["addons"] < MIN_ADDONS:
            r = {**portfolio, "addons": r["addons"], "exposure_arr_days": r["exposure_arr_days"],
                 "source": "portfolio"}
        else:
            r["source"] = "segment"
        segments[s] = r
    return {"segments": segments, "portfolio": portfolio, "lookback_days": LOOKBACK_DAYS}


def addon_forecast(contracts: pd.DataFrame, accounts: pd.DataFrame | None, start, end, as_of,
                   group_by: str | None = None, rates: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """Expected add-on ARR signed in [max(start, as_of), end) per customer account (see the module doc).

    Returns (frame with ``account_id, segment, group, arr, mean, var``, the rates used)."""
    as_of = to_day(as_of)
    lo, hi = max(to_day(start), as_of), to_day(end)
    days = max(0.0, float((hi - lo).days))
    rates = rates if rates is not None else addon_rates(contracts, accounts, as_of)
    arr = _customers_arr(contracts, as_of)
    arr = arr[arr > 0]
    ids = arr.index.to_numpy()
    seg = (group_labels(accounts, contracts, ids, "segment") if accounts is not None and "segment" in accounts.columns
           else np.full(len(ids), "unassigned", dtype=object))
    port = rates["portfolio"]
    r = np.array([rates["segments"].get(s, port)["rate_per_day"] for s in seg], dtype=float)
    size = np.array([rates["segments"].get(s, port)["size_ratio"] for s in seg], dtype=float) * arr.to_numpy()
    mean = r * arr.to_numpy() * days
    prob = np.clip(np.divide(mean, size, out=np.zeros_like(mean), where=size > 0), 0.0, 1.0)
    var = prob * (1 - prob) * size * size
    frame = pd.DataFrame({"account_id": ids, "segment": seg, "group": group_labels(accounts, contracts, ids, group_by),
                          "arr": arr.to_numpy(), "mean": mean, "var": var})
    return frame, rates


def with_pipeline(history: pd.DataFrame, pipeline: pd.DataFrame, off_pipeline_factor: float = 1.0
                  ) -> tuple[pd.DataFrame, str]:
    """The add-on forecast per customer account with the pipeline where it exists: an account of ``history``
    (``addon_forecast``'s frame) that has a row in ``pipeline`` (``pipeline_addons``' frame: ``account_id, mean,
    var``) takes the pipeline's mean and var; the others keep the history method. Accounts of ``pipeline`` that
    are not customers on the day before as_of are not in the window's ARR base and are left out. When at least
    one account uses the pipeline, the others' history mean (and variance) are scaled by ``off_pipeline_factor``
    (``forecast.pipeline.off_pipeline_factor``: what accounts without pipeline signed against the history
    forecast in past windows), so add-ons the pipeline forecasts are not counted again through the rate.

    Returns (the frame with a ``source`` column, "pipeline" | "history", and the window's ``addon_source``:
    "pipeline" when at least one account used the pipeline, else "history")."""
    out = history.copy()
    out["source"] = "history"
    if pipeline is None or pipeline.empty or out.empty:
        return out, "history"
    p = pipeline.set_index(pipeline["account_id"].astype(str))
    ids = out["account_id"].astype(str)
    hit = ids.isin(p.index).to_numpy()
    if not hit.any():
        return out, "history"
    out.loc[hit, "mean"] = p["mean"].reindex(ids[hit]).to_numpy(float)
    out.loc[hit, "var"] = p["var"].reindex(ids[hit]).to_numpy(float)
    out.loc[hit, "source"] = "pipeline"
    f = max(0.0, float(off_pipeline_factor))
    out.loc[~hit, "mean"] = out.loc[~hit, "mean"].to_numpy(float) * f
    out.loc[~hit, "var"] = out.loc[~hit, "var"].to_numpy(float) * f
    return out, "pipeline"


def addon_actual(contracts: pd.DataFrame, start, end, as_of) -> pd.Series:
    """Add-on ARR actually signed in [max(start, as_of), end) by the accounts that were customers on the day
    before as_of, per account (hindsight; for back-tests)."""
    as_of = to_day(as_of)
    lo, hi = max(to_day(start), as_of), to_day(end)
    cust = _customers_arr(contracts, as_of)
    add = addon_contracts(contracts)
    add = add[(add["start_date"] >= lo) & (add["start_date"] < hi) & add["account_id"].isin(cust[cust > 0].index)]
    return add.groupby("account_id")["arr"].sum()
