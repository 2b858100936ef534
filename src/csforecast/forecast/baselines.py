"""Baseline renewal forecasts that need no churn model: `last_year` and `time_series`.

Both work on the history of renewal decisions resolved before as_of (`renewal_history`: the same decision
book as the forecast, point in time) and give, per pending decision, P(churn) = 1 - the segment's
forecast ARR renewal rate and an expected successor ARR / ARR due ratio:

* ``last_year``: the segment's ARR renewal rate (renewed ARR due / ARR due) and net ratio (successor ARR /
  renewed ARR due) over the same window one year earlier ([start - 1y, end - 1y)); a segment with nothing
  due then uses the whole portfolio's last-year rate; with nothing due last year at all, the all-history rate.
* ``time_series``: quarterly ARR renewal rates per segment (quarter of the renewal date, complete quarters
  before as_of, at most the last 16), modelled on the logit scale by Holt's exponential smoothing with a
  damped additive trend (>= 10 quarters) or simple exponential smoothing (>= 6 quarters), statsmodels
  ExponentialSmoothing; a segment with fewer quarters uses the whole portfolio's series. The forecast for a
  decision is h steps ahead, h = quarters from the last complete quarter to the decision's quarter. The
  net ratio is forecast the same way on the log scale (simple smoothing).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from csforecast.forecast.book import renewal_book

__all__ = ["last_year", "overall_churn_rate", "quarterly_series", "renewal_history", "time_series"]

MAX_QUARTERS = 16
MIN_SEGMENT_QUARTERS = 6
TREND_QUARTERS = 10


def renewal_history(contracts: pd.DataFrame, accounts: pd.DataFrame | None, as_of) -> pd.DataFrame:
    """Renewal decisions due before as_of with their outcome as known on as_of (renewed / churned)."""
    b = renewal_book(contracts, accounts, None, as_of, as_of)
    b = b[b["status"] != "pending"].copy()
    b["renewed"] = b["status"] == "renewed"
    b["quarter"] = b["renewal_date"].dt.to_period("Q")
    return b


def _rates(h: pd.DataFrame) -> tuple[float, float, float]:
    """(ARR renewal rate, net ratio successor / renewed due, ARR due)."""
    due = float(h["arr"].sum())
    ren = float(h.loc[h["renewed"], "arr"].sum())
    succ = float(h.loc[h["renewed"], "succ_arr"].sum())
    rate = ren / due if due > 0 else np.nan
    ratio = succ / ren if ren > 0 else np.nan
    return rate, ratio, due


def overall_churn_rate(history: pd.DataFrame) -> float:
    rate = _rates(history)[0] if len(history) else np.nan
    return float(1 - rate) if np.isfinite(rate) else 0.0


def last_year(pending: pd.DataFrame, history: pd.DataFrame, start, end, as_of) -> tuple[np.ndarray, np.ndarray, dict]:
    s0 = pd.Timestamp(start) - pd.DateOffset(years=1)
    e0 = pd.Timestamp(end) - pd.DateOffset(years=1)
    ly = history[(history["renewal_date"] >= s0) & (history["renewal_date"] < e0)]
    all_rate, all_ratio, _ = _rates(history) if len(history) else (np.nan, np.nan, 0.0)
    ly_rate, ly_ratio, ly_due = _rates(ly) if len(ly) else (np.nan, np.nan, 0.0)
    if not np.isfinite(ly_rate):
        ly_rate, ly_ratio = all_rate, all_ratio
    fallback_rate = ly_rate if np.isfinite(ly_rate) else 1.0
    fallback_ratio = ly_ratio if np.isfinite(ly_ratio) else (all_ratio if np.isfinite(all_ratio) else 1.0)
    info = {"reference_window": {"start": s0.date().isoformat(), "end": e0.date().isoformat()},
            "segments": {}}
    p = np.empty(len(pending))
    r = np.empty(len(pending))
    seg = pending["segment"].astype(str).to_numpy()
    for s in np.unique(seg):
        rate, ratio, due = _rates(ly[ly["segment"].astype(str) == s]) if len(ly) else (np.nan, np.nan, 0.0)
        src = "segment"
        if not np.isfinite(rate):
            rate, src = fallback_rate, "portfolio"
        if not np.isfinite(ratio):
            ratio = fallback_ratio
        k = seg == s
        p[k], r[k] = 1 - rate, ratio
        info["segments"][s] = {"renewal_rate": round(float(rate), 6), "net_ratio": round(float(ratio), 6),
                               "arr_due_last_year": round(due, 2), "source": src}
    return np.clip(p, 0, 1), r, info


def quarterly_series(history: pd.DataFrame, as_of, segment: str | None = None) -> pd.DataFrame:
    """ARR renewal rate and net ratio per complete quarter before as_of (quarter_end <= as_of)."""
    h = history if segment is None else history[history["segment"].astype(str) == segment]
    last = pd.Timestamp(as_of).to_period("Q") - 1          # the last quarter that ended on or before as_of
    h = h[h["quarter"] <= last]
    if h.empty:
        return pd.DataFrame(columns=["quarter", "due", "renewed", "succ", "rate", "ratio"])
    h = h.assign(_ren=np.where(h["renewed"], h["arr"], 0.0), _succ=np.where(h["renewed"], h["succ_arr"], 0.0))
    q = h.groupby("quarter").agg(due=("arr", "sum"), renewed=("_ren", "sum"), succ=("_succ", "sum"))
    full = pd.period_range(q.index.min(), last, freq="Q")
    q = q.reindex(full, fill_value=0.0).tail(MAX_QUARTERS)
    q["rate"] = np.where(q["due"] > 0, q["renewed"] / q["due"].where(q["due"] > 0), np.nan)
    q["ratio"] = np.where(q["renewed"] > 0, q["succ"] / q["renewed"].where(q["renewed"] > 0), np.nan)
    return q.rename_axis("quarter").reset_index()


def _smooth(y: np.ndarray, h: int, trend: bool) -> np.ndarray:
    """h-step forecasts of a series (NaNs dropped) by exponential smoothing; the mean when very short."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    y = y[np.isfinite(y)]
    if len(y) == 0:
        return np.full(h, np.nan)
    if len(y) < 4 or np.ptp(y) < 1e-12:
        return np.full(h, float(np.mean(y)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if trend and len(y) >= TREND_QUARTERS:
                fit = ExponentialSmoothing(y, trend="add", damped_trend=True,
                                           initialization_method="estimated").fit()
            else:
                fit = ExponentialSmoothing(y, initialization_method="estimated").fit()
            f = np.asarray(fit.forecast(h), dtype=float)
        if not np.all(np.isfinite(f)):
            raise ValueError("non-finite forecast")
        return f
    except Exception:  # noqa: BLE001 - a failed fit falls back to the mean of the series
        return np.full(h, float(np.mean(y)))


def time_series(pending: pd.DataFrame, history: pd.DataFrame, start, end, as_of) -> tuple[np.ndarray, np.ndarray, dict]:
    last = pd.Timestamp(as_of).to_period("Q") - 1
    dq = pending["renewal_date"].dt.to_period("Q")
    steps = np.array([(q - last).n for q in dq], dtype=int) if len(pending) else np.zeros(0, int)
    steps = np.maximum(steps, 1)
    H = int(steps.max()) if len(steps) else 1
    overall = quarterly_series(history, as_of)
    o_rate = _smooth(logit(np.clip(overall["rate"].to_numpy(float), 1e-3, 1 - 1e-3)), H, True)
    o_ratio = _smooth(np.log(np.clip(overall["ratio"].to_numpy(float), 1e-3, None)), H, False)
    info = {"last_complete_quarter": str(last), "horizon_quarters": H, "segments": {}}
    p = np.empty(len(pending))
    r = np.empty(len(pending))
    seg = pending["segment"].astype(str).to_numpy()
    for s in np.unique(seg):
        qs = quarterly_series(history, as_of, s)
        n_obs = int(np.isfinite(qs["rate"].to_numpy(float)).sum()) if len(qs) else 0
        if n_obs >= MIN_SEGMENT_QUARTERS:
            fr = _smooth(logit(np.clip(qs["rate"].to_numpy(float), 1e-3, 1 - 1e-3)), H, True)
            fx = _smooth(np.log(np.clip(qs["ratio"].to_numpy(float), 1e-3, None)), H, False)
            src = "segment"
        else:
            fr, fx, src = o_rate, o_ratio, "portfolio"
        fr = np.where(np.isfinite(fr), fr, o_rate)
        fx = np.where(np.isfinite(fx), fx, np.where(np.isfinite(o_ratio), o_ratio, 0.0))
        fr = np.where(np.isfinite(fr), fr, logit(0.9))
        k = seg == s
        p[k] = 1 - expit(fr[steps[k] - 1])
        r[k] = np.exp(fx[steps[k] - 1])
        info["segments"][s] = {"quarters": n_obs, "source": src,
                               "renewal_rate": [round(float(x), 6) for x in expit(fr)],
                               "net_ratio": [round(float(x), 6) for x in np.exp(fx)]}
    return np.clip(p, 0, 1), r, info
