"""Cohort retention curves: Kaplan–Meier logo retention and ARR-weighted retention.

* :func:`spells_from_contracts` turns the ``accounts`` / ``contracts`` tables of the
  data contract into one customer spell per account (``duration``, ``event``, ``cohort``,
  ``arr`` and the account attributes).
* :func:`cohort_curves` fits a Kaplan–Meier curve per group (lifelines) and returns a
  tidy frame ``group, time, survival, ci_low, ci_high, at_risk``.
* :func:`plot_cohort_curves` draws those curves with shaded confidence bands.

Definitions and caveats are in ``docs/retention.md``.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["cohort_curves", "plot_cohort_curves", "spells_from_contracts"]

ALL_GROUP = "all"
CURVE_COLUMNS = ["group", "time", "survival", "ci_low", "ci_high", "at_risk"]


# ---------------------------------------------------------------------------
# spells from the data-contract tables
# ---------------------------------------------------------------------------
def _cohort_label(ts: pd.Series, cohort_freq: str) -> pd.Series:
    if cohort_freq in ("year", "Y", "A"):
        return ts.dt.year.astype(str)
    if cohort_freq in ("quarter", "Q"):
        return ts.dt.year.astype(str) + "Q" + ts.dt.quarter.astype(str)
    if cohort_freq in ("month", "M"):
        return ts.dt.strftime("%Y-%m")
    raise ValueError("cohort_freq must be 'year', 'quarter' or 'month'")


def spells_from_contracts(contracts: pd.DataFrame, accounts: pd.DataFrame, data_end,
                          cohort_freq: str = "year") -> pd.DataFrame:
    """Build one customer spell per account from the ``contracts`` and ``accounts`` tables.

    Rules (``end_date`` is exclusive: a contract covers ``start_date <= day < end_date``):

    * only contracts with ``start_date <= data_end`` are used (what was known at ``data_end``);
    * an account is a customer from its first contract start (``start_date`` column of the output);
    * it **churned** on the ``end_date`` of a contract that has ended (``end_date <= data_end``),
      was not renewed (``renewed_by`` null) and after which no other contract of the account is
      active (no contract ends later).  In practice: every contract has ended by ``data_end``, and
      the contract(s) ending last have no successor.  The churn date is that last ``end_date``;
    * otherwise the spell is censored at ``data_end`` (a contract is still active, or the last
      contract records a successor).  A missing ``end_date`` means open-ended (censored);
    * a gap followed by a new contract (a win-back) is *not* a churn: tenure runs to the final churn;
    * ``cohort`` is the start year as a string (``cohort_freq='quarter'`` gives ``"2023Q1"``,
      ``'month'`` gives ``"2023-01"``); ``arr`` is the summed ARR of the contracts active at the
      customer start (e.g. a base contract and a simultaneous add-on).

    Returns
    -------
    DataFrame with one row per customer: ``account_id, start_date, churn_date`` (NaT if censored),
    ``duration`` (days from start to churn or to ``data_end``), ``event`` (1 churned, 0 censored),
    ``cohort``, ``arr``, ``n_contracts`` and the account attributes (``name, segment, industry,
    region, csm_id``, whichever are present).
    """
    need_c = {"contract_id", "account_id", "start_date", "end_date", "arr", "renewed_by"}
    missing = need_c - set(contracts.columns)
    if missing:
        raise ValueError(f"contracts is missing columns: {sorted(missing)}")
    if "account_id" not in accounts.columns:
        raise ValueError("accounts is missing column 'account_id'")
    data_end = pd.Timestamp(data_end)
    if pd.isna(data_end):
        raise ValueError("data_end must be a date")

    c = contracts[list(need_c)].copy()
    c["start_date"] = pd.to_datetime(c["start_date"])
    c["end_date"] = pd.to_datetime(c["end_date"])
    if c["start_date"].isna().any():
        raise ValueError("contracts.start_date has missing values")
    bad = c["end_date"].notna() & (c["end_date"] <= c["start_date"])
    if bad.any():
        raise ValueError("contracts with end_date <= start_date: "
                         f"{c.loc[bad, 'contract_id'].astype(str).tolist()[:5]}")
    c = c[c["start_date"] <= data_end]
    if c.empty:
        return _empty_spells(accounts)

    # open-ended contracts never end
    c["end_eff"] = c["end_date"].fillna(pd.Timestamp.max)
    c["has_successor"] = c["renewed_by"].notna() & (c["renewed_by"].astype(str).str.len() > 0)
    c["arr"] = pd.to_numeric(c["arr"], errors="coerce")

    g = c.groupby("account_id", sort=True)
    start = g["start_date"].min().rename("start_date")
    last_end = g["end_eff"].max().rename("last_end")
    n_contracts = g.size().rename("n_contracts")
    cc = c.join(last_end, on="account_id")
    # successor recorded on any contract that ends last?
    last_has_succ = (cc[cc["end_eff"] == cc["last_end"]].groupby("account_id")["has_successor"].any()
                     .rename("last_has_successor"))
    # ARR of the contracts active at the customer start
    # (the customer start is the earliest start_date, and end_date > start_date, so these are
    # exactly the contracts starting on the customer start date)
    first = cc["start_date"].groupby(cc["account_id"]).transform("min")
    at_start = cc[(cc["start_date"] <= first) & (cc["end_eff"] > first)]
    arr0 = at_start.groupby("account_id")["arr"].sum(min_count=1).rename("arr")

    s = pd.concat([start, last_end, last_has_succ, arr0, n_contracts], axis=1).reset_index()
    churned = (s["last_end"] <= data_end) & ~s["last_has_successor"]
    s["churn_date"] = s["last_end"].where(churned).astype("datetime64[ns]")
    stop = s["churn_date"].where(churned, data_end)
    s["duration"] = (stop - s["start_date"]).dt.days.astype(int)
    s["event"] = churned.astype(int)
    s["cohort"] = _cohort_label(s["start_date"], cohort_freq)

    attrs = [col for col in ("name", "segment", "industry", "region", "csm_id") if col in accounts.columns]
    acc = accounts[["account_id", *attrs]].drop_duplicates("account_id")
    s = s.merge(acc, on="account_id", how="left")
    cols = ["account_id", "start_date", "churn_date", "duration", "event", "cohort", "arr",
            "n_contracts", *attrs]
    return s[cols].sort_values(["start_date", "account_id"]).reset_index(drop=True)


def _empty_spells(accounts: pd.DataFrame) -> pd.DataFrame:
    attrs = [col for col in ("name", "segment", "industry", "region", "csm_id") if col in accounts.columns]
    return pd.DataFrame({k: pd.Series(dtype=t) for k, t in [
        ("account_id", object), ("start_date", "datetime64[ns]"), ("churn_date", "datetime64[ns]"),
        ("duration", int), ("event", int), ("cohort", object), ("arr", float), ("n_contracts", int),
    ]} | {a: pd.Series(dtype=object) for a in attrs})


# ---------------------------------------------------------------------------
# Kaplan–Meier curves per group
# ---------------------------------------------------------------------------
def _validate_spells(spells: pd.DataFrame, by, weight, duration_col, event_col) -> list[str]:
    if not isinstance(spells, pd.DataFrame):
        raise TypeError("spells must be a pandas DataFrame")
    by_cols = [] if by is None else ([by] if isinstance(by, str) else list(by))
    need = [duration_col, event_col, *by_cols] + ([weight] if weight else [])
    missing = [col for col in need if col not in spells.columns]
    if missing:
        raise ValueError(f"spells is missing columns: {missing}")
    if len(spells) == 0:
        raise ValueError("spells is empty")
    dur = pd.to_numeric(spells[duration_col], errors="coerce")
    if dur.isna().any() or (dur < 0).any():
        raise ValueError(f"{duration_col!r} must be non-negative numbers without missing values")
    ev = spells[event_col]
    if ev.isna().any() or not set(pd.unique(ev.astype(float))) <= {0.0, 1.0}:
        raise ValueError(f"{event_col!r} must be 0 (censored) or 1 (churned)")
    for col in by_cols:
        if spells[col].isna().any():
            raise ValueError(f"grouping column {col!r} has missing values")
    if weight:
        w = pd.to_numeric(spells[weight], errors="coerce")
        if w.isna().any() or (w < 0).any() or not np.isfinite(w).all():
            raise ValueError(f"weight column {weight!r} must be non-negative numbers without missing values")
    return by_cols


def _step_lookup(timeline: np.ndarray, values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Right-continuous step function: value at the last timeline point <= t."""
    idx = np.searchsorted(timeline, times, side="right") - 1
    out = np.where(idx >= 0, values[np.clip(idx, 0, None)], np.nan)
    return out


def _weighted_km_ci(dur: np.ndarray, ev: np.ndarray, w: np.ndarray, timeline: np.ndarray,
                    surv: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise log(-log) band for a weighted KM curve, with a robust (sandwich) variance.

    ``Var(log S(t)) = sum_i w_i^2 U_i(t)^2`` with the influence of account ``i``
    ``U_i(t) = sum_{t_j <= t} (dN_i(t_j) - Y_i(t_j) h_j) / (N_j - D_j)``, where ``N_j`` / ``D_j`` are
    the weighted numbers at risk / churning at ``t_j`` and ``h_j = D_j / N_j``; the weights are
    treated as fixed constants.  With all weights equal this is exactly Greenwood's formula, so the
    band coincides with lifelines' unweighted band.  It is invariant to rescaling the weights.
    """
    from scipy.stats import norm

    lo = np.ones_like(surv)
    hi = np.ones_like(surv)
    is_ev = ev == 1
    if not is_ev.any():
        return lo, hi
    ev_times = np.unique(dur[is_ev])
    order = np.argsort(dur, kind="stable")
    d_sorted, w_sorted = dur[order], w[order]
    w_from_end = np.concatenate([np.cumsum(w_sorted[::-1])[::-1], [0.0]])
    n_j = w_from_end[np.searchsorted(d_sorted, ev_times, side="left")]      # weighted at risk
    d_j = np.bincount(np.searchsorted(ev_times, dur[is_ev]), weights=w[is_ev],
                      minlength=len(ev_times))                             # weighted churned
    with np.errstate(divide="ignore", invalid="ignore"):
        g_j = 1.0 / (n_j - d_j)                 # inf once everyone still at risk churns (S = 0)
        b_j = np.cumsum(d_j / n_j * g_j)        # B(t_j) = sum_{k <= j} h_k g_k

    def b_at(t):
        k = np.searchsorted(ev_times, t, side="right") - 1
        return np.where(k >= 0, b_j[np.clip(k, 0, None)], 0.0)

    # influence of account i once its spell is over: c_i = e_i g(x_i) - B(x_i)
    g_i = np.zeros_like(dur)
    g_i[is_ev] = g_j[np.searchsorted(ev_times, dur[is_ev])]
    with np.errstate(invalid="ignore"):
        contrib = (w * (g_i - b_at(dur))) ** 2
    # V(t) = sum_{x_i <= t} w_i^2 c_i^2 + B(t)^2 sum_{x_i > t} w_i^2
    cum_done = np.concatenate([[0.0], np.cumsum(contrib[order])])
    w2_from_end = np.concatenate([np.cumsum((w_sorted ** 2)[::-1])[::-1], [0.0]])
    n_done = np.searchsorted(d_sorted, timeline, side="right")
    with np.errstate(invalid="ignore"):
        var_log = cum_done[n_done] + b_at(timeline) ** 2 * w2_from_end[n_done]

    z = norm.ppf(1 - alpha / 2)
    inner = (surv > 0) & (surv < 1)
    v = np.log(surv[inner])
    se = np.sqrt(var_log[inner])
    lo[inner] = np.exp(-np.exp(np.log(-v) - z * se / v))
    hi[inner] = np.exp(-np.exp(np.log(-v) + z * se / v))
    zero = surv <= 0
    lo[zero] = hi[zero] = 0.0
    bad = inner.copy()
    bad[inner] = ~np.isfinite(lo[inner]) | ~np.isfinite(hi[inner])
    lo[bad], hi[bad] = 0.0, 1.0
    return lo, hi


def _km_one(dur: np.ndarray, ev: np.ndarray, w: np.ndarray | None, times, alpha: float) -> pd.DataFrame:
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter(alpha=alpha)
    if w is None:
        kmf.fit(dur, event_observed=ev)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lifelines' StatisticalWarning about non-integer weights
            kmf.fit(dur, event_observed=ev, weights=w)
    timeline = kmf.survival_function_.index.to_numpy(dtype=float)
    surv = kmf.survival_function_.iloc[:, 0].to_numpy(dtype=float)
    if w is None:
        ci = kmf.confidence_interval_survival_function_
        lo, hi = ci.iloc[:, 0].to_numpy(dtype=float), ci.iloc[:, 1].to_numpy(dtype=float)
    else:
        # lifelines' weighted Greenwood treats each unit of weight (each dollar) as a subject,
        # which makes ARR-weighted bands absurdly narrow; use the robust variance instead.
        lo, hi = _weighted_km_ci(dur, ev, w, timeline, surv, alpha)

    t_eval = timeline if times is None else np.asarray(times, dtype=float)
    s_eval = _step_lookup(timeline, surv, t_eval)
    lo_eval = _step_lookup(timeline, lo, t_eval)
    hi_eval = _step_lookup(timeline, hi, t_eval)
    # not estimable beyond the last observation (unless the curve already hit 0)
    beyond = t_eval > dur.max()
    if surv[-1] > 0:
        s_eval[beyond] = lo_eval[beyond] = hi_eval[beyond] = np.nan
    # at risk at t: durations >= t
    sorted_d = np.sort(dur)
    pos = np.searchsorted(sorted_d, t_eval, side="left")
    out = pd.DataFrame({"time": t_eval, "survival": s_eval, "ci_low": lo_eval, "ci_high": hi_eval,
                        "at_risk": (len(dur) - pos).astype(int)})
    if w is not None:
        w_sorted = w[np.argsort(dur, kind="stable")]
        w_from_end = np.concatenate([np.cumsum(w_sorted[::-1])[::-1], [0.0]])
        out["at_risk_weight"] = w_from_end[pos]
    return out


def cohort_curves(spells: pd.DataFrame, by: str | list[str] | None = None, weight: str | None = None,
                  times=None, alpha: float = 0.05, duration_col: str = "duration",
                  event_col: str = "event") -> pd.DataFrame:
    """Kaplan–Meier retention curve per group, as a tidy DataFrame.

    Parameters
    ----------
    spells : one row per account with ``duration`` (days from customer start to churn or to the
        end of data), ``event`` (1 churned, 0 censored) and grouping columns (``cohort``,
        ``segment``, ...), e.g. the output of :func:`spells_from_contracts`.
    by : grouping column (or list of columns; the labels are joined with ``" / "``).
        ``None`` gives a single curve labelled ``"all"``.
    weight : optional weight column, e.g. ``"arr"``: the ARR-weighted KM curve, i.e. the share of
        starting ARR held by accounts that have not churned (logo churn weighted by ARR; no
        expansion/contraction).  Its confidence band is approximate: a robust (sandwich) variance
        that treats the weights as fixed, reducing to Greenwood's formula for equal weights.
    times : optional grid (same unit as ``duration``) at which to evaluate the step curves.
        Default: every distinct time in the group's KM timeline (0 and each observed duration).
        Times after a group's last observation give NaN (not estimable) unless the curve reached 0.
    alpha : 1 - confidence level of the pointwise band (lifelines' default log(-log) Greenwood band).

    Returns
    -------
    DataFrame with columns ``group, time, survival, ci_low, ci_high, at_risk`` (``at_risk``:
    number of accounts with ``duration >= time``), plus ``at_risk_weight`` (weight still at risk)
    when ``weight`` is given.  Groups appear in sorted order.
    """
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    by_cols = _validate_spells(spells, by, weight, duration_col, event_col)
    if times is not None:
        times = np.asarray(times, dtype=float)
        if times.ndim != 1 or not np.isfinite(times).all() or (times < 0).any():
            raise ValueError("times must be a 1-D sequence of non-negative numbers")
        times = np.unique(times)

    df = spells
    if by_cols:
        groups = df.groupby(by_cols, sort=True, observed=True)
        items = [(" / ".join(str(k) for k in (key if isinstance(key, tuple) else (key,))), sub)
                 for key, sub in groups]
    else:
        items = [(ALL_GROUP, df)]

    frames = []
    for label, sub in items:
        dur = pd.to_numeric(sub[duration_col]).to_numpy(dtype=float)
        ev = sub[event_col].to_numpy(dtype=float).astype(int)
        w = None
        if weight:
            w = pd.to_numeric(sub[weight]).to_numpy(dtype=float)
            keep = w > 0
            if not keep.any():
                raise ValueError(f"group {label!r}: all weights are zero")
            dur, ev, w = dur[keep], ev[keep], w[keep]
        res = _km_one(dur, ev, w, times, alpha)
        res.insert(0, "group", label)
        frames.append(res)
    out = pd.concat(frames, ignore_index=True)
    return out


# ---------------------------------------------------------------------------
# plotting
# ---------------------------------------------------------------------------
def plot_cohort_curves(curves: pd.DataFrame, path, title: str | None = None,
                       xlabel: str = "days since customer start", ylabel: str = "retention",
                       time_scale: float = 1.0) -> Path:
    """Save a PNG of the step curves from :func:`cohort_curves` with shaded confidence bands.

    Uses matplotlib's Agg canvas directly (no global backend switch). ``time_scale`` divides the
    time axis (e.g. ``365.25`` with ``xlabel="years"``).  Returns the written path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    missing = [c for c in ("group", "time", "survival", "ci_low", "ci_high") if c not in curves.columns]
    if missing:
        raise ValueError(f"curves is missing columns: {missing}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    fig = Figure(figsize=(8, 5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, sub in curves.groupby("group", sort=False):
        sub = sub.dropna(subset=["survival"]).sort_values("time")
        if sub.empty:
            continue
        t = sub["time"].to_numpy(dtype=float) / time_scale
        (line,) = ax.step(t, sub["survival"], where="post", label=str(label), linewidth=1.6)
        ax.fill_between(t, sub["ci_low"], sub["ci_high"], step="post", alpha=0.2,
                        color=line.get_color(), linewidth=0)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if curves["group"].nunique() > 1:
        ax.legend(title="group", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path
