"""Churn reasons: churned logos and ARR by reason, avoidable vs unavoidable, by segment, tenure and ARR band.

Definitions in docs/metrics.md ("Churn reasons"); this module is the reference implementation.

* A churned renewal is a renewal decision (an account's contracts due on one date, ``forecast.book``) due
  before the data end with no successor; its ARR is the ARR due. Its reason is the first non-empty
  ``contracts.churn_reason`` among its contracts (main contract first), normalised (trimmed, lower case,
  spaces as ``_``); none is ``unknown`` -- counted, never dropped.
* ``avoidable`` is true for a reason in the avoidable list, false for one in the unavoidable list (settings
  ``[churn_reasons]``, documented defaults), null otherwise (``unknown`` and unmapped reasons). The
  avoidable shares divide by every churned renewal, unknown ones included.
* Contraction reasons: a renewal renewed with less ARR than was due (successor ARR < ARR due) whose
  contracts carry a ``churn_reason`` has that reason as its contraction reason.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from csforecast.forecast.book import renewal_book, to_day
from csforecast.jsonsafe import finite_float

__all__ = ["UNKNOWN", "PERIOD_KINDS", "TENURE_BANDS", "ARR_BANDS", "normalise_reason", "churned_renewals",
           "select_period", "check_period", "reasons_report"]

UNKNOWN = "unknown"
PERIOD_KINDS = {"quarter": "Q", "month": "M", "year": "Y"}
TENURE_BANDS = ((0, 365, "<1y"), (365, 730, "1-2y"), (730, 1095, "2-3y"), (1095, np.inf, "3y+"))
ARR_BANDS = ((0, 10_000, "<10k"), (10_000, 50_000, "10k-50k"), (50_000, 100_000, "50k-100k"),
             (100_000, np.inf, "100k+"))


def normalise_reason(values) -> pd.Series:
    """Reasons as compared and reported: trimmed, lower case, inner spaces and dashes as ``_``; missing or
    empty -> ``unknown``."""
    s = pd.Series(values, dtype=object)
    out = s.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA
                else "_".join(str(v).strip().lower().replace("-", " ").split()) or None)
    return out.fillna(UNKNOWN).astype(str)


def _band(values, bands) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    out = np.full(len(v), "unknown", dtype=object)
    for lo, hi, label in bands:
        out[(v >= lo) & (v < hi)] = label
    return out


def churned_renewals(contracts: pd.DataFrame, accounts: pd.DataFrame | None, data_end,
                     group_by: str | None = None) -> pd.DataFrame:
    """One row per renewal decision due before ``data_end`` (churned or renewed) with its reason, segment,
    tenure band, ARR band and group. Columns: account_id, renewal_date, arr, status, final_succ_arr, reason,
    segment, tenure_band, arr_band, group."""
    book = renewal_book(contracts, accounts, None, data_end, data_end, group_by)
    book = book[book["status"] != "pending"].copy()
    c = contracts.assign(account_id=contracts["account_id"].astype(str),
                         end_date=pd.to_datetime(contracts["end_date"]),
                         start_date=pd.to_datetime(contracts["start_date"]))
    raw = c["churn_reason"] if "churn_reason" in c.columns else pd.Series(None, index=c.index, dtype=object)
    c["reason"] = normalise_reason(raw.to_numpy(dtype=object)).to_numpy()
    c = c[c["reason"] != UNKNOWN].sort_values(["account_id", "end_date", "start_date"], kind="stable")
    first = c.drop_duplicates(["account_id", "end_date"]).set_index(["account_id", "end_date"])["reason"]
    key = pd.MultiIndex.from_arrays([book["account_id"].astype(str), pd.to_datetime(book["renewal_date"])])
    book["reason"] = pd.Series(first.reindex(key).to_numpy(), index=book.index).fillna(UNKNOWN).astype(str)
    starts = contracts.assign(account_id=contracts["account_id"].astype(str)).groupby("account_id")["start_date"]
    first_start = pd.to_datetime(book["account_id"].map(pd.to_datetime(starts.min())))
    # tenure: from the account's first contract start to the renewal's last covered day (a first-year renewal is <1y)
    book["tenure_band"] = _band((book["renewal_date"] - pd.Timedelta(days=1) - first_start).dt.days, TENURE_BANDS)
    book["arr_band"] = _band(book["arr"], ARR_BANDS)
    return book


def _avoidable(reason: str, avoidable: set, unavoidable: set):
    return True if reason in avoidable else False if reason in unavoidable else None


def _table(rows: pd.DataFrame, avoidable: set, unavoidable: set) -> dict:
    """Reasons of the churned renewals ``rows``: counts and shares, the avoidable shares."""
    n, total = len(rows), float(rows["arr"].sum())
    g = rows.groupby("reason").agg(logos=("arr", "size"), arr=("arr", "sum")).reset_index()
    g = g.sort_values(["logos", "arr", "reason"], ascending=[False, False, True])
    reasons = [{"reason": r.reason, "avoidable": _avoidable(r.reason, avoidable, unavoidable),
                "logos": int(r.logos), "arr": finite_float(r.arr, 2),
                "logo_share": finite_float(r.logos / n) if n else None,
                "arr_share": finite_float(r.arr / total) if total > 0 else None} for r in g.itertuples()]
    av = rows["reason"].map(lambda r: _avoidable(r, avoidable, unavoidable) is True).to_numpy(dtype=bool)
    unav = rows["reason"].map(lambda r: _avoidable(r, avoidable, unavoidable) is False).to_numpy(dtype=bool)
    arr = rows["arr"].to_numpy(dtype=float)
    return {"logos": int(n), "arr": finite_float(total, 2), "reasons": reasons,
            "avoidable_logo_share": finite_float(av.mean()) if n else None,
            "avoidable_arr_share": finite_float(arr[av].sum() / total) if total > 0 else None,
            "unavoidable_logo_share": finite_float(unav.mean()) if n else None,
            "unavoidable_arr_share": finite_float(arr[unav].sum() / total) if total > 0 else None,
            "unknown_logos": int((rows["reason"] == UNKNOWN).sum()),
            "unknown_arr": finite_float(arr[(rows["reason"] == UNKNOWN).to_numpy()].sum(), 2)}


def _by(rows: pd.DataFrame, col: str, avoidable: set, unavoidable: set, order=None) -> list[dict]:
    keys = order if order is not None else sorted(rows[col].astype(str).unique())
    return [{"group": k, **_table(rows[rows[col].astype(str) == k], avoidable, unavoidable)}
            for k in keys if (rows[col].astype(str) == k).any()]


def select_period(rows: pd.DataFrame, period: str | None) -> tuple[pd.DataFrame, str | None]:
    """(rows due in the period named by ``period``, its kind); ``period`` a kind (quarter | month | year: every
    row, broken down per period) or a label (2025Q3, 2025-07, 2025)."""
    if period is None or period.lower() in PERIOD_KINDS:
        return rows, (period.lower() if period else None)
    label = period.strip().upper()
    freq = "Q" if "Q" in label else "M" if "-" in label else "Y"
    try:
        p = pd.Period(label, freq=freq)
    except (ValueError, TypeError):
        raise ValueError(f"period must be quarter, month, year or a period such as 2025Q3, 2025-07 or 2025, "
                         f"not {period!r}") from None
    # the period of a renewal is the one holding its last covered day (renewal date - 1 day), as in metrics/arr
    last_day = pd.to_datetime(rows["renewal_date"]) - pd.Timedelta(days=1)
    return rows[last_day.dt.to_period(freq) == p], None


def check_period(period: str | None) -> None:
    """ValueError naming ``period`` when it is neither a period kind nor a period label."""
    select_period(pd.DataFrame({"renewal_date": pd.to_datetime(pd.Series([], dtype="datetime64[ns]"))}), period)


def reasons_report(contracts: pd.DataFrame, accounts: pd.DataFrame | None, data_end, *,
                   period: str | None = None, group_by: str | None = None, avoidable=(), unavoidable=()) -> dict:
    """Churn reasons over the churned renewals due before ``data_end`` (docs/metrics.md "Churn reasons").

    ``period``: None (every churned renewal), quarter | month | year (also per period, key ``periods``) or
    one period's label (2025Q3, 2025-07, 2025: only the renewals due in it). ``group_by``: a column of
    ``forecast.book.GROUP_BY`` (key ``groups``). ``avoidable`` / ``unavoidable``: the reason lists (normalised
    like the data). ValueError naming the value for an unknown period or group."""
    av = set(normalise_reason(list(avoidable)))
    unav = set(normalise_reason(list(unavoidable))) - av
    book = churned_renewals(contracts, accounts, data_end, group_by)
    book, per_kind = select_period(book, period)
    churned = book[book["status"] == "churned"]
    out = {"data_end": to_day(data_end).date().isoformat(), "period": period, "group_by": group_by,
           "mapping": {"avoidable": sorted(av), "unavoidable": sorted(unav)},
           **_table(churned, av, unav),
           "by_segment": _by(churned, "segment", av, unav),
           "by_tenure_band": _by(churned, "tenure_band", av, unav, [b[2] for b in TENURE_BANDS] + ["unknown"]),
           "by_arr_band": _by(churned, "arr_band", av, unav, [b[2] for b in ARR_BANDS] + ["unknown"]),
           "contraction": _contraction(book, av, unav)}
    if group_by is not None:
        out["groups"] = _by(churned, "group", av, unav)
    if per_kind is not None:
        freq = PERIOD_KINDS[per_kind]
        lab = (pd.to_datetime(churned["renewal_date"]) - pd.Timedelta(days=1)).dt.to_period(freq).astype(str)
        out["periods"] = _by(churned.assign(_period=lab.to_numpy()), "_period", av, unav)
    return out


def _contraction(book: pd.DataFrame, av: set, unav: set) -> dict:
    """Renewals that came back with less ARR, by their reason (where the data records one)."""
    shrank = book[(book["status"] == "renewed") & (book["final_succ_arr"] < book["arr"])].copy()
    renewed_with_reason = bool(((book["status"] == "renewed") & (book["reason"] != UNKNOWN)).any())
    shrank["lost"] = shrank["arr"] - shrank["final_succ_arr"]
    total = float(shrank["lost"].sum())
    g = shrank.groupby("reason").agg(renewals=("lost", "size"), arr_lost=("lost", "sum")).reset_index()
    g = g.sort_values(["renewals", "arr_lost"], ascending=False)
    n = len(shrank)
    return {"available": renewed_with_reason, "renewals": int(n), "arr_lost": finite_float(total, 2),
            "reasons": [{"reason": r.reason, "avoidable": _avoidable(r.reason, av, unav),
                         "renewals": int(r.renewals), "arr_lost": finite_float(r.arr_lost, 2),
                         "renewal_share": finite_float(r.renewals / n) if n else None,
                         "arr_share": finite_float(r.arr_lost / total) if total > 0 else None}
                        for r in g.itertuples()] if renewed_with_reason else []}



