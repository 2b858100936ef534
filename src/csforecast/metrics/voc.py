"""Voice of the customer: NPS with its interval, CSAT and CES, response coverage, and the VoC matrix.

Every figure is defined in docs/metrics.md ("Voice of the customer"); this module is the reference
implementation. Inputs are the contract's tables as data frames (`surveys`, `accounts`, `contracts`), so the
CLI, the API and the dashboard compute the same numbers.

* Responses in the window are those with ``as_of - window_days <= responded_at < as_of``.
* NPS = 100 x (share of promoters (9-10) - share of detractors (0-6)) over the window's NPS responses (every
  response counts; an account answering three times counts three times). Its interval treats responses of
  one account as a cluster (linearised variance of a ratio of totals over accounts), normal, clipped to
  [-100, 100]; None with fewer than 2 responding accounts.
* Active accounts: ARR > 0 on the day before ``as_of`` (the last day the data covers).
* Coverage: the share of active accounts (and of their ARR) with at least one response in the window.
* The VoC matrix classifies every active account once by its latest response of each kind in the window
  (several responses on that day: their mean): CES ``good`` (>= 5 on 1-7, 7 = very easy) | ``poor`` (< 5),
  NPS ``promoter`` (>= 9) | ``passive`` | ``detractor`` (<= 6), CSAT ``green`` (>= 4) | ``normal`` (3 to < 4) |
  ``red`` (< 3); ``na`` when the account has no response of that kind.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from csforecast.forecast.book import UNASSIGNED, group_labels, to_day
from csforecast.jsonsafe import finite_float
from csforecast.metrics.arr import account_arr_at

__all__ = ["VOC_GROUP_BY", "nps_class", "ces_class", "csat_class", "nps_estimate", "active_accounts", "voc_report",
           "ACT_FIRST", "ADVOCACY"]

VOC_GROUP_BY = ("segment", "region", "csm_id", "industry", "cohort", "respondent_role")
UNKNOWN_ROLE = "unknown"
ACT_FIRST = {"ces_class": "poor", "nps_class": "detractor", "csat_class": "red"}
ADVOCACY = {"ces_class": "good", "nps_class": "promoter", "csat_class": "green"}
CLASSES = {"ces_class": ("good", "poor", "na"), "nps_class": ("promoter", "passive", "detractor", "na"),
           "csat_class": ("green", "normal", "red", "na")}
MAX_WINDOW_DAYS = 36_500   # a century: anything longer is a typo
LIST_LIMIT = 50   # accounts listed per action cell


def nps_class(score) -> np.ndarray:
    """promoter (>= 9) | passive (> 6 and < 9) | detractor (<= 6) | na (missing)."""
    s = np.asarray(score, dtype=float)
    return np.where(np.isnan(s), "na", np.where(s >= 9, "promoter", np.where(s <= 6, "detractor", "passive")))


def ces_class(score) -> np.ndarray:
    """good (>= 5 on 1-7) | poor (< 5) | na (missing)."""
    s = np.asarray(score, dtype=float)
    return np.where(np.isnan(s), "na", np.where(s >= 5, "good", "poor"))


def csat_class(score) -> np.ndarray:
    """green (>= 4 on 1-5) | normal (3 to < 4) | red (< 3) | na (missing)."""
    s = np.asarray(score, dtype=float)
    return np.where(np.isnan(s), "na", np.where(s >= 4, "green", np.where(s >= 3, "normal", "red")))


def nps_estimate(scores, clusters, level: float = 0.90) -> dict:
    """NPS of ``scores`` (0-10) with a cluster-robust normal interval, responses clustered by ``clusters``
    (account ids). Returns nps, ci_low, ci_high (None when undefined), n, promoters, passives, detractors.

    The estimator is a ratio of totals over clusters, sum(y_i) / sum(n_i) with y = +1 promoter, -1 detractor,
    0 passive; its linearised variance is k/(k-1) * sum((y_i - nps * n_i)^2) / (sum n_i)^2 over k clusters."""
    s = np.asarray(scores, dtype=float)
    ok = ~np.isnan(s)
    s, cl = s[ok], np.asarray(clusters, dtype=object)[ok]
    n = int(len(s))
    out = {"nps": None, "ci_low": None, "ci_high": None, "n": n, "promoters": int((s >= 9).sum()),
           "passives": int(((s > 6) & (s < 9)).sum()), "detractors": int((s <= 6).sum())}
    if n == 0:
        return out
    y = np.where(s >= 9, 1.0, np.where(s <= 6, -1.0, 0.0))
    est = float(y.mean())
    out["nps"] = 100 * est
    per = pd.DataFrame({"c": cl, "y": y}).groupby("c")["y"].agg(["sum", "size"])
    k = len(per)
    if k >= 2:
        resid = per["sum"].to_numpy() - est * per["size"].to_numpy()
        se = float(np.sqrt(k / (k - 1) * np.sum(resid ** 2)) / n)
        z = float(norm.ppf(0.5 + level / 2))
        out["ci_low"] = max(-100.0, 100 * (est - z * se))
        out["ci_high"] = min(100.0, 100 * (est + z * se))
    return out


def active_accounts(contracts: pd.DataFrame, as_of) -> pd.Series:
    """ARR per active account: accounts with ARR > 0 on the day before ``as_of``."""
    as_of = to_day(as_of)
    known = contracts[pd.to_datetime(contracts["start_date"]) < as_of]   # point in time: nothing started later
    if known.empty:
        return pd.Series(dtype=float, name="arr")
    arr = account_arr_at(known, as_of - pd.Timedelta(days=1))
    return arr[arr > 0].rename("arr")


def _window(surveys: pd.DataFrame, as_of: pd.Timestamp, window_days: int | None) -> pd.DataFrame:
    """The responses with a score in [as_of - window_days, as_of) (no lower bound when window_days is None);
    kind lower-cased, a missing respondent role ``unknown``."""
    s = surveys.copy()
    s["responded_at"] = pd.to_datetime(s["responded_at"])
    s["account_id"] = s["account_id"].astype(str)
    s["kind"] = s["kind"].astype(str).str.lower()
    s["score"] = pd.to_numeric(s["score"], errors="coerce")
    role = s["respondent_role"] if "respondent_role" in s.columns else pd.Series(None, index=s.index)
    s["respondent_role"] = role.astype(object).where(role.notna(), UNKNOWN_ROLE).astype(str)
    keep = (s["responded_at"] < as_of) & s["score"].notna()
    if window_days is not None:
        keep &= s["responded_at"] >= as_of - pd.Timedelta(days=window_days)
    return s[keep]


def _mean(x) -> float | None:
    x = pd.to_numeric(pd.Series(x), errors="coerce").dropna()
    return finite_float(x.mean(), 4) if len(x) else None


def _distribution(x) -> dict[str, int]:
    x = pd.to_numeric(pd.Series(x), errors="coerce").dropna().round().astype(int)
    return {str(k): int(v) for k, v in x.value_counts().sort_index().items()}


def _summary(w: pd.DataFrame, level: float) -> dict:
    """NPS (with interval), response counts, CSAT and CES means of the responses ``w``."""
    nps = w[w["kind"] == "nps"]
    est = nps_estimate(nps["score"], nps["account_id"], level)
    return {"nps": finite_float(est["nps"], 2), "nps_ci": [finite_float(est["ci_low"], 2),
                                                            finite_float(est["ci_high"], 2)],
            "n_responses": {k: int((w["kind"] == k).sum()) for k in ("nps", "csat", "ces")},
            "promoters": est["promoters"], "passives": est["passives"], "detractors": est["detractors"],
            "responding_accounts": int(nps["account_id"].nunique()),
            "csat_mean": _mean(w.loc[w["kind"] == "csat", "score"]),
            "ces_mean": _mean(w.loc[w["kind"] == "ces", "score"])}


def _coverage(w: pd.DataFrame, active: pd.Series, segments: pd.Series) -> dict:
    """Share of active accounts (and ARR) with at least one response; per kind, segment and respondent role."""
    ids = active.index.astype(str)
    arr = active.to_numpy(dtype=float)
    total_arr = float(arr.sum())

    def share(responding: set) -> dict:
        hit = np.array([i in responding for i in ids], dtype=bool)
        return {"accounts": finite_float(hit.mean(), 6) if len(ids) else None,
                "arr": finite_float(arr[hit].sum() / total_arr, 6) if total_arr > 0 else None,
                "responding_accounts": int(hit.sum())}

    out = {**share(set(w["account_id"])), "active_accounts": int(len(ids)), "active_arr": finite_float(total_arr, 2),
           "by_kind": {k: share(set(w.loc[w["kind"] == k, "account_id"])) for k in ("nps", "csat", "ces")}}
    seg = segments.reindex(ids).fillna(UNASSIGNED).astype(str).to_numpy()
    rows = []
    for g in sorted(set(seg)):
        m = seg == g
        resp = set(w["account_id"])
        hit = np.array([i in resp for i in ids[m]], dtype=bool)
        a = arr[m]
        rows.append({"segment": g, "active_accounts": int(m.sum()), "responding_accounts": int(hit.sum()),
                     "accounts": finite_float(hit.mean(), 4),
                     "arr": finite_float(a[hit].sum() / a.sum(), 4) if a.sum() > 0 else None,
                     "responses": int(w["account_id"].isin(ids[m]).sum())})
    out["by_segment"] = rows
    out["by_role"] = [{"respondent_role": r, "responses": int((w["respondent_role"] == r).sum()),
                       **share(set(w.loc[w["respondent_role"] == r, "account_id"]))}
                      for r in sorted(w["respondent_role"].unique())]
    return out


def _latest(w: pd.DataFrame, kind: str) -> pd.Series:
    """Per account, the mean score of its latest day with a response of ``kind``."""
    k = w[w["kind"] == kind]
    if k.empty:
        return pd.Series(dtype=float)
    last = k.groupby("account_id")["responded_at"].transform("max")
    return k[k["responded_at"] == last].groupby("account_id")["score"].mean()


def _matrix(w: pd.DataFrame, active: pd.Series, names: pd.Series) -> tuple[list[dict], dict]:
    ids = active.index.astype(str)
    acc = pd.DataFrame({"account_id": ids, "arr": active.to_numpy(dtype=float)})
    for kind, col, fn in (("ces", "ces_class", ces_class), ("nps", "nps_class", nps_class),
                          ("csat", "csat_class", csat_class)):
        latest = _latest(w, kind)
        acc[kind] = acc["account_id"].map(latest).astype(float)
        acc[col] = fn(acc[kind])
    cells = (acc.groupby(["ces_class", "nps_class", "csat_class"]).agg(accounts=("account_id", "size"),
                                                                        arr=("arr", "sum")).reset_index()
             .sort_values(["accounts", "arr"], ascending=False))
    matrix = [{"ces_class": r.ces_class, "nps_class": r.nps_class, "csat_class": r.csat_class,
               "accounts": int(r.accounts), "arr": finite_float(r.arr, 2)} for r in cells.itertuples()]
    lists = {}
    for name, cell in (("act_first", ACT_FIRST), ("advocacy", ADVOCACY)):
        m = np.ones(len(acc), dtype=bool)
        for col, v in cell.items():
            m &= acc[col].to_numpy() == v
        sel = acc[m].sort_values("arr", ascending=False)
        lists[name] = {"cell": cell, "accounts": int(len(sel)), "arr": finite_float(sel["arr"].sum(), 2),
                       "list": [{"account_id": r.account_id, "name": names.get(r.account_id),
                                 "arr": finite_float(r.arr, 2), "nps": finite_float(r.nps, 2),
                                 "csat": finite_float(r.csat, 2), "ces": finite_float(r.ces, 2)}
                                for r in sel.head(LIST_LIMIT).itertuples()]}
    return matrix, lists


def _trend(surveys: pd.DataFrame, as_of: pd.Timestamp, level: float) -> list[dict]:
    """NPS, CSAT and CES per calendar quarter of the responses before ``as_of`` (the last one may be partial)."""
    s = _window(surveys, as_of, None)
    if s.empty:
        return []
    q = s["responded_at"].dt.to_period("Q")
    rows = []
    for per in pd.period_range(q.min(), q.max(), freq="Q"):
        part = s[q == per]
        rows.append({"period": str(per), "start": per.start_time.date().isoformat(),
                     "end": (per.end_time.normalize() + pd.Timedelta(days=1)).date().isoformat(),
                     "complete": bool(per.end_time.normalize() + pd.Timedelta(days=1) <= as_of),
                     **{k: v for k, v in _summary(part, level).items()
                        if k in ("nps", "nps_ci", "n_responses", "csat_mean", "ces_mean")}})
    return rows


def voc_report(surveys: pd.DataFrame | None, accounts: pd.DataFrame, contracts: pd.DataFrame, as_of,
               window_days: int = 365, group_by: str | None = None, level: float = 0.90) -> dict:
    """The voice-of-the-customer report as of ``as_of`` over the last ``window_days`` days (docs/metrics.md).

    ``surveys`` may be None or empty (a source without surveys): the figures are then null, coverage 0 and
    every active account sits in the all-``na`` cell. ``group_by``: one of ``VOC_GROUP_BY`` (ValueError
    otherwise). JSON-safe result with the keys nps, nps_ci, n_responses, response_coverage, csat_mean,
    ces_mean, matrix, trend (and groups, distributions, act_first, advocacy, window)."""
    if group_by is not None and group_by not in VOC_GROUP_BY:
        raise ValueError(f"group_by must be one of {', '.join(VOC_GROUP_BY)}, not {group_by!r}")
    if not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise ValueError(f"window_days must be between 1 and {MAX_WINDOW_DAYS}, not {window_days}")
    as_of_ts = to_day(as_of)
    cols = ["account_id", "responded_at", "kind", "score", "respondent_role"]
    if surveys is None:
        surveys = pd.DataFrame(columns=cols)
    w = _window(surveys, as_of_ts, window_days)
    active = active_accounts(contracts, as_of_ts)
    acc = accounts.assign(account_id=accounts["account_id"].astype(str)).drop_duplicates("account_id")
    segments = acc.set_index("account_id")["segment"] if "segment" in acc.columns else pd.Series(dtype=object)
    names = acc.set_index("account_id")["name"].dropna() if "name" in acc.columns else pd.Series(dtype=object)
    matrix, lists = _matrix(w, active, names)
    start = (as_of_ts - pd.Timedelta(days=window_days)).date()
    out = {"as_of": as_of_ts.date().isoformat(),
           "window": {"start": start.isoformat(), "end": as_of_ts.date().isoformat(), "days": int(window_days)},
           "level": level, **_summary(w, level), "response_coverage": _coverage(w, active, segments),
           "distributions": {k: _distribution(w.loc[w["kind"] == k, "score"]) for k in ("nps", "csat", "ces")},
           "matrix": matrix, **lists, "trend": _trend(surveys, as_of_ts, level), "group_by": group_by}
    if group_by is not None:
        out["groups"] = _groups(w, active, acc, contracts, group_by, level)
    return out


def _groups(w: pd.DataFrame, active: pd.Series, accounts: pd.DataFrame, contracts: pd.DataFrame, group_by: str,
            level: float) -> list[dict]:
    if group_by == "respondent_role":
        labels = w["respondent_role"].to_numpy()
        act_labels = None
    else:
        labels = group_labels(accounts, contracts, w["account_id"], group_by)
        act_labels = group_labels(accounts, contracts, active.index.astype(str), group_by)
    rows = []
    for g in sorted(set(labels) | (set(act_labels) if act_labels is not None else set())):
        part = w[labels == g]
        row = {"group": str(g), **_summary(part, level)}
        if act_labels is not None:
            ids = active.index.astype(str)[act_labels == g]
            arr = active.to_numpy(dtype=float)[act_labels == g]
            hit = np.isin(ids, part["account_id"].unique())
            row["response_coverage"] = {"accounts": finite_float(hit.mean(), 6) if len(ids) else None,
                                        "arr": finite_float(arr[hit].sum() / arr.sum(), 4) if arr.sum() > 0 else None,
                                        "active_accounts": int(len(ids))}
        rows.append(row)
    return rows

