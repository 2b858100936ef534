"""The portfolio frame: one row per scored account, built once per score set, and the page filters.

`build_frame` turns the API's pre-serialised list items and details into a pandas frame with the keys and
display strings every page needs, so a page is a few vectorised group-bys.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from csforecast.data.contract import UNASSIGNED
from csforecast.ui.views.format import DASH, day, finite, money, money_full, num, pct

ARR_BANDS = (0.0, 10_000.0, 50_000.0, 200_000.0, math.inf)
ARR_BAND_LABELS = ("<10k", "10k–50k", "50k–200k", "≥200k")
HIGH_ARR = 50_000.0                 # "high-ARR": ARR at or above this (the two top ARR bands)
LOW_TIER_ARR = 10_000.0             # "low-tier": ARR below this (the lowest ARR band)
HIGH_RISK = 0.3                     # churn probability flagged "high risk" (the forecast's at-risk threshold)
BANDS = ("red", "yellow", "green")
BAND_COLORS = {"red": "#c62828", "yellow": "#f9a825", "green": "#2e7d32", "none": "#9e9e9e"}


FRAME_COLUMNS = ["account_id", "name", "segment", "industry", "region", "csm_id", "arr", "renewal_date",
                 "days_to_renewal", "churn_probability", "health_score", "health_band", "risk_arr",
                 "health_band5", "health_quadrant"]


def arr_band(arr: pd.Series) -> pd.Series:
    cut = pd.cut(pd.to_numeric(arr, errors="coerce"), list(ARR_BANDS), right=False, labels=list(ARR_BAND_LABELS))
    return cut.astype(object).where(cut.notna(), "unknown")


def build_frame(items: Iterable[bytes], details: Mapping[str, bytes] | None = None) -> pd.DataFrame:
    """One row per scored account from the API's pre-serialised list items (AccountSummary JSON) and details
    (AccountDetail JSON: triggers and the weekly trend give n_triggers, week_change, prev_week)."""
    rows = [json.loads(b) for b in items]
    df = pd.DataFrame(rows, columns=FRAME_COLUMNS) if rows else pd.DataFrame(columns=FRAME_COLUMNS)
    for c in ("arr", "days_to_renewal", "churn_probability", "health_score", "risk_arr"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    df["renewal_date"] = pd.to_datetime(df["renewal_date"], errors="coerce")
    for c in ("segment", "region", "industry", "name", "health_band"):
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    df["has_csm"] = df["csm_id"].notna() & (df["csm_id"].astype(str) != "")
    df["csm"] = np.where(df["has_csm"], df["csm_id"].astype(str), UNASSIGNED)
    df["arr_band"] = arr_band(df["arr"])
    df["band"] = df["health_band"].fillna("none")
    n_trig = np.full(len(df), np.nan)
    change = np.full(len(df), np.nan)
    has_health = np.zeros(len(df), dtype=bool)
    if details:
        for i, aid in enumerate(df["account_id"].astype(str)):
            raw = details.get(aid)
            if raw is None:
                continue
            d = json.loads(raw)
            trig = d.get("triggers")
            if trig is not None:
                n_trig[i] = len(trig)
                has_health[i] = True
            trend = [p.get("health_score") for p in (d.get("health_trend") or [])]
            if len(trend) >= 2 and trend[-1] is not None and trend[-2] is not None:
                change[i] = float(trend[-1]) - float(trend[-2])
    df["n_triggers"] = n_trig
    df["week_change"] = change
    df["high_arr"] = (df["arr"] >= HIGH_ARR).to_numpy()
    df["low_tier"] = (df["arr"] < LOW_TIER_ARR).to_numpy()
    # precomputed keys so that a page is a few vectorised group-bys over 10,000 rows
    df["seg"] = df["segment"].fillna("(none)").astype(str)
    df["csm_assigned"] = np.where(df["has_csm"], "yes", "no")
    rd = df["renewal_date"]
    ok = rd.notna().to_numpy()
    y = rd.dt.year.fillna(0).to_numpy(dtype=np.int64)
    m = rd.dt.month.fillna(1).to_numpy(dtype=np.int64)
    df["renew_m"] = np.where(ok, y * 12 + m - 1, -1)
    df["renew_q"] = np.where(ok, y * 4 + (m - 1) // 3, -1)
    risk = df["risk_arr"].to_numpy(dtype=float)
    null = np.isnan(risk)
    order = np.lexsort((df["account_id"].astype(str).to_numpy(), -df["arr"].fillna(0).to_numpy(),
                        np.where(null, 0.0, -risk), null))
    rank = np.empty(len(df), dtype=np.int64)
    rank[order] = np.arange(len(df))
    df["risk_rank"] = rank            # 0 = largest churn probability × ARR (nulls last; ties: ARR, id)
    # display strings, formatted once per score set
    df["arr_s"] = [money(x) for x in df["arr"]]
    df["arr_full"] = [money_full(x) for x in df["arr"]]
    df["p_s"] = [pct(x) for x in df["churn_probability"]]
    df["risk_s"] = [money(x) for x in df["risk_arr"]]
    df["renewal_s"] = [day(x) for x in df["renewal_date"]]
    df["health_s"] = [num(x, 0) for x in df["health_score"]]
    df["high_risk"] = (df["churn_probability"] >= HIGH_RISK).to_numpy()
    return df


def last_changes(history: pd.DataFrame | None) -> dict[str, tuple[str | None, float | None, str | None]]:
    """account_id -> (week, change vs the week before, explanation) of the latest week of the health history."""
    if history is None or history.empty or not {"account_id", "week"} <= set(history.columns):
        return {}
    h = history.sort_values(["account_id", "week"]).groupby("account_id", sort=False).tail(1)
    ch = h["change"] if "change" in h else pd.Series(np.nan, index=h.index)
    ex = h["change_explanation"] if "change_explanation" in h else pd.Series(None, index=h.index)
    return {str(a): (day(w), finite(c), e if isinstance(e, str) else None)
            for a, w, c, e in zip(h["account_id"], h["week"], ch, ex)}


def trend_explanations(history: pd.DataFrame | None) -> dict[str, dict[str, str]]:
    """account_id -> {week (ISO) -> change explanation}."""
    if history is None or history.empty or "change_explanation" not in history.columns:
        return {}
    out: dict[str, dict[str, str]] = {}
    h = history[history["change_explanation"].notna()]
    for a, w, e in zip(h["account_id"].astype(str), h["week"], h["change_explanation"]):
        out.setdefault(a, {})[day(w)] = str(e)
    return out


@dataclass(frozen=True)
class Filters:
    segment: str | None = None
    region: str | None = None
    csm: str | None = None          # a csm_id, or UNASSIGNED

    @classmethod
    def parse(cls, segment: str | None, region: str | None, csm: str | None) -> "Filters":
        def norm(v):
            v = (v or "").strip()
            return v[:200] or None
        return cls(norm(segment), norm(region), norm(csm))

    def active(self) -> dict[str, str]:
        return {k: v for k, v in (("segment", self.segment), ("region", self.region), ("csm", self.csm)) if v}

    def mask(self, df: pd.DataFrame) -> np.ndarray:
        m = np.ones(len(df), dtype=bool)
        if self.segment:
            m &= (df["segment"] == self.segment).to_numpy()
        if self.region:
            m &= (df["region"] == self.region).to_numpy()
        if self.csm:
            m &= (df["csm"] == self.csm).to_numpy()
        return m

    def forecast_group(self) -> tuple[str | None, str | None, str | None]:
        """(group_by, group value, note) for the renewal forecast: it can be sliced by one dimension only."""
        act = self.active()
        if not act:
            return None, None, None
        if len(act) > 1:
            return None, None, ("the renewal forecast is sliced by one filter at a time (segment, region or CSM): "
                                "clear the others to see it for this selection")
        (k, v), = act.items()
        return {"segment": "segment", "region": "region", "csm": "csm_id"}[k], v, None

    def account_ids(self, accounts: pd.DataFrame) -> set[str] | None:
        """Ids of the accounts (the data source's accounts table) that match; None when no filter is set."""
        if not self.active():
            return None
        m = np.ones(len(accounts), dtype=bool)
        if self.segment:
            m &= (accounts["segment"].astype(str) == self.segment).to_numpy() if "segment" in accounts else False
        if self.region:
            m &= (accounts["region"].astype(str) == self.region).to_numpy() if "region" in accounts else False
        if self.csm:
            if "csm_id" not in accounts:
                m &= self.csm == UNASSIGNED
            else:
                c = accounts["csm_id"]
                has = c.notna() & (c.astype(str) != "")
                m &= (~has).to_numpy() if self.csm == UNASSIGNED else (has & (c.astype(str) == self.csm)).to_numpy()
        return set(accounts.loc[m, "account_id"].astype(str))


def filter_options(df: pd.DataFrame) -> dict:
    def opts(col):
        return sorted({str(v) for v in df[col].dropna().unique()})
    csms = sorted({str(v) for v in df.loc[df["has_csm"], "csm_id"].unique()})
    return {"segment": opts("segment"), "region": opts("region"),
            "csm": csms + ([UNASSIGNED] if (~df["has_csm"]).any() else [])}



def account_row(r) -> dict:
    """The display fields of one frame row (an itertuples row) in account lists."""
    return {"account_id": r.account_id, "name": r.name or DASH, "segment": r.segment or DASH,
            "region": r.region or DASH, "csm": r.csm, "arr": r.arr_s, "arr_full": r.arr_full, "p": r.p_s,
            "risk_arr": r.risk_s, "renewal_date": r.renewal_s, "band": r.band, "health": r.health_s,
            "band5": r.health_band5 if isinstance(r.health_band5, str) else None,
            "quadrant": r.health_quadrant.replace("_", " ") if isinstance(r.health_quadrant, str) else None,
            "high_risk": bool(r.high_risk)}
