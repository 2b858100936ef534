"""Renewal-window forecast: what is due in [start, end), what will renew, the spread (Monte Carlo).

Definitions (docs/forecast.md is the prose version):

* **Due in the window**: contracts that started before ``as_of`` with ``start_date <= end_date`` and a
  renewal date ``end_date`` in ``[start, end)``. Contracts of one account with the same ``end_date`` (a main
  contract and its co-termed add-ons) are one **renewal decision**: they renew or churn together.
  Contracts signed on or after ``as_of`` are new business, not part of the renewal forecast.
* **Status as of as_of**: *renewed* when a successor (``renewed_by``) started before ``as_of`` (or the
  successor is not in the table and the renewal date has passed); *churned (so far)* when the renewal date
  is before ``as_of`` and it is not renewed; *pending* otherwise. Only pending decisions are forecast.
* ``GRR_window = renewed ARR (at the ARR due) / ARR due``;
  ``NRR_window = successor ARR of the renewed decisions / ARR due`` (expansion and contraction included).

The decision book is ``forecast.book``; the Monte Carlo engine and interval calibration ``forecast.montecarlo``;
the baselines ``forecast.baselines``.
"""
from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from csforecast.errors import UnavailableError
from csforecast.forecast import baselines
from csforecast.forecast.book import GROUP_BY, UNASSIGNED, renewal_book, to_day  # noqa: F401 (re-exported)
from csforecast.forecast.montecarlo import (  # noqa: F401 (re-exported: backtest, tests)
    EXACT_BUDGET,
    Simulation,
    disagreements,
    estimate_tau,
    flat_result,
    load_calibration,
    method_results,
    save_calibration,
    shock_evidence,
    simulate_renewals,
    summarise,
)
from csforecast.jsonsafe import finite_float

__all__ = [
    "METHODS",
    "NoChampionError",
    "Simulation",
    "forecast_window",
    "estimate_tau",
    "shock_evidence",
    "renewal_book",
    "simulate_renewals",
    "summarise",
]

METHODS = ("model", "last_year", "time_series")
AT_RISK_THRESHOLD = 0.3
TOP_AT_RISK = 25
MODEL_HORIZON_DAYS = 365          # the churn model learns from snapshots <= 365 days before a renewal


class NoChampionError(UnavailableError, RuntimeError):
    """No champion churn model is registered (train one first)."""


def _f(x, nd: int | None = None):
    """JSON-safe float (None for NaN/inf)."""
    return finite_float(x, nd)


# ------------------------------------------------------------------------------------------------------
# scoring rows
# ------------------------------------------------------------------------------------------------------
def scoring_rows(pending: pd.DataFrame, snapshot: pd.DataFrame, as_of) -> tuple[pd.DataFrame, np.ndarray]:
    """Snapshot rows (as of as_of) for the pending decisions, in the book's order. A decision whose renewal
    date is not the account's next renewal gets that decision's contract_id / renewal_date /
    days_to_renewal. Returns (rows, found mask); rows of accounts missing from the snapshot are NaN."""
    snap = snapshot.drop_duplicates("account_id").set_index("account_id")
    found = pending["account_id"].astype(str).isin(snap.index.astype(str)).to_numpy()
    snap.index = snap.index.astype(str)
    rows = snap.reindex(pending["account_id"].astype(str).to_numpy()).reset_index()
    rows["account_id"] = pending["account_id"].astype(str).to_numpy()
    rows["as_of"] = to_day(as_of)
    rows["contract_id"] = pending["contract_id"].to_numpy()
    rows["renewal_date"] = pd.to_datetime(pending["renewal_date"]).to_numpy()
    if "days_to_renewal" in rows.columns:
        rows["days_to_renewal"] = pending["days_ahead"].to_numpy(float)
    return rows, found


def predict_churn(estimator, rows: pd.DataFrame, found: np.ndarray, fallback: float) -> np.ndarray:
    """P(churn) from any object with predict_proba (uses feature_names_in_ when it has them)."""
    p = np.full(len(rows), np.nan)
    if found.any():
        X = rows.loc[found]
        names = getattr(estimator, "feature_names_in_", None)
        if names is not None:
            X = X[list(names)]
        p[found] = np.asarray(estimator.predict_proba(X))[:, 1]
    p = np.where(np.isfinite(p), p, fallback)
    return np.clip(p, 0.0, 1.0)


def expansion_grid(source, as_of: date, quarters: int = 8) -> list[date]:
    """Snapshot dates for fitting the expansion model on the fly: every 3 months back from as_of (8 by
    default), not earlier than 90 days after the first activity (trailing usage windows need history)."""
    from datetime import timedelta

    col = ("usage", "date") if source.has("usage") else ("contracts", "start_date")
    first = source.table(col[0])[col[1]].min().to_pyarrow().as_py()
    first = pd.Timestamp(first).date() + timedelta(days=90)
    dates = [(pd.Timestamp(as_of) - pd.DateOffset(months=3 * k)).date() for k in range(1, quarters + 1)]
    return sorted(d for d in dates if d >= first)


def decision_rows(snaps: pd.DataFrame, cutoff) -> pd.DataFrame:
    """Snapshot rows in the 365 days before a renewal resolved before ``cutoff`` (pipelines/churn rows)."""
    cut = to_day(cutoff)
    s = snaps
    return s[(s["renewal_date"] < cut) & s["label_churn"].notna() & (s["days_to_renewal"] <= MODEL_HORIZON_DAYS)
             & (s["days_to_renewal"] >= 0)]


def fit_expansion(rows: pd.DataFrame, features: list[str]):
    from csforecast.models.expansion import ExpansionModel

    r = rows[rows["label_arr_change"].notna()]
    return ExpansionModel().fit(r[features], r["label_arr_change"].to_numpy(float), sample_time=r["renewal_date"])


# ------------------------------------------------------------------------------------------------------
# the window forecast
# ------------------------------------------------------------------------------------------------------
def _load_champion():
    from csforecast.tracking import store

    mv = store.champion_version("churn")
    if mv is None:
        raise NoChampionError("no champion churn model is registered: run `csforecast train --family churn` first")
    est = store.load_estimator(f"models:/{store.model_name('churn')}@champion")
    return est, str(mv.version)


def forecast_window(source, start, end, group_by: str | None = None, as_of=None, churn_estimator=None, *,
                    model_version: str | None = None, draws: int | None = None, seed: int | None = None,
                    tau: float | dict | None = None, at_risk_threshold: float = AT_RISK_THRESHOLD,
                    top: int = TOP_AT_RISK, exact_budget: int = EXACT_BUDGET) -> dict:
    """Forecast the renewals due in [start, end) as of ``as_of`` (default: the data end). See
    docs/forecast.md for every key of the result.

    churn_estimator   anything with ``predict_proba`` (column 1 = P(churn)); default: the champion churn
                      model from the registry (NoChampionError when there is none and something is pending).
    tau               common-shock sd on the churn logit (float, or {method: float}); default: the values
                      written by the last ``csforecast backtest`` (forecast_calibration.json), else 0.
    """
    from csforecast.config import get_settings
    from csforecast.features.snapshot import build_snapshots, data_end, feature_columns

    fs = get_settings().forecast
    draws = int(draws or fs.draws)
    seed = int(fs.seed if seed is None else seed)
    if group_by is not None and group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)}, not {group_by!r}")
    start_ts, end_ts = to_day(start), to_day(end)
    if end_ts <= start_ts:
        raise ValueError(f"the window is empty: end {end_ts.date()} is not after start {start_ts.date()}")
    de = data_end(source)
    warn: list[str] = []
    as_of_ts = to_day(as_of) if as_of is not None else to_day(de)
    if as_of_ts > to_day(de):
        warn.append(f"as_of {as_of_ts.date()} is after the data end {de}: using {de}")
        as_of_ts = to_day(de)
    contracts = source.frame("contracts")
    accounts = source.frame("accounts")
    book = renewal_book(contracts, accounts, start_ts, end_ts, as_of_ts, group_by)
    pend = (book["status"] == "pending").to_numpy()
    pending = book[pend]
    n_p = int(pend.sum())

    # --- per-method probabilities and ratio moments for the pending decisions --------------------------
    probs: dict[str, np.ndarray] = {}
    ratios: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    details: dict[str, dict] = {m: {} for m in METHODS}
    history = baselines.renewal_history(contracts, accounts, as_of_ts)
    if n_p:
        if churn_estimator is None:
            churn_estimator, model_version = _load_champion()
        grid = expansion_grid(source, as_of_ts.date())
        snaps = build_snapshots(source, grid + [as_of_ts.date()], end=as_of_ts.date())
        now = snaps[snaps["as_of"] == as_of_ts]
        rows, found = scoring_rows(pending, now, as_of_ts)
        hist_rate = baselines.overall_churn_rate(history)
        probs["model"] = predict_churn(churn_estimator, rows, found, hist_rate)
        if (~found).any():
            warn.append(f"{int((~found).sum())} pending renewal(s) have no snapshot row as of {as_of_ts.date()} "
                        f"(account missing from accounts or created later): scored at the historical churn "
                        f"rate {hist_rate:.3f}")
        far = pending["days_ahead"].to_numpy() > MODEL_HORIZON_DAYS
        if far.any():
            warn.append(f"{int(far.sum())} renewal(s) ({pending.loc[far, 'arr'].sum():,.0f} ARR) are more than "
                        f"{MODEL_HORIZON_DAYS} days after as_of: the churn model is out of its training range "
                        f"there (it learns from snapshots at most {MODEL_HORIZON_DAYS} days before a renewal)")
        train = decision_rows(snaps[snaps["as_of"] < as_of_ts], as_of_ts)
        exp_model = fit_expansion(train, feature_columns(snaps))
        m, v = exp_model.ratio_moments(rows)
        ratios["model"] = (m, v)
        details["model"] = {"expansion_model": exp_model.summary()}
        resid_var = exp_model.var_exp_resid_ / max(exp_model.mean_exp_resid_, 1e-12) ** 2
        for name, fn in (("last_year", baselines.last_year), ("time_series", baselines.time_series)):
            pc, ratio, info = fn(pending, history, start_ts, end_ts, as_of_ts)
            probs[name] = pc
            ratios[name] = (ratio, ratio * ratio * resid_var)
            details[name] = info
    else:
        for name in METHODS:
            probs[name] = np.zeros(0)
            ratios[name] = (np.zeros(0), np.zeros(0))

    # --- tau ------------------------------------------------------------------------------------------
    tau_source = "argument"
    if tau is None:
        cal = load_calibration()
        if cal and isinstance(cal.get("tau"), dict):
            tau = cal["tau"]
            tau_source = f"backtest of {cal.get('created', '?')} (data {cal.get('data_hash', '?')})"
        else:
            tau = 0.0
            tau_source = "none"
            if n_p:
                warn.append("intervals assume independent renewals (no common shock): run `csforecast "
                            "backtest` to calibrate them on past quarters")
    taus = {m: float(tau.get(m, 0.0) if isinstance(tau, dict) else tau) for m in METHODS}

    # --- simulate every method ------------------------------------------------------------------------
    results = {}
    for k, name in enumerate(METHODS):
        results[name] = method_results(book, probs[name], *ratios[name], draws=draws, seed=seed + k,
                                       tau=taus[name], exact_budget=exact_budget)
    main = results["model"]

    # --- disagreement ---------------------------------------------------------------------------------
    share = float(fs.disagreement_share)
    risk = disagreements({m: results[m]["overall"]["expected"]["renewed_arr"] for m in METHODS}, share)
    if group_by is not None:
        for g in main["groups"]:
            risk += disagreements({m: results[m]["groups"][g]["expected"]["renewed_arr"] for m in METHODS},
                                  share, scope=f"{group_by}={g}")

    # --- at risk and worst case -----------------------------------------------------------------------
    at_risk = []
    worst_at_risk = 0.0
    if n_p:
        pm = probs["model"]
        ar = pending.assign(p_churn=pm, expected_churned_arr=pm * pending["arr"].to_numpy(float))
        worst_at_risk = float(ar.loc[ar["p_churn"] > at_risk_threshold, "arr"].sum())
        top_rows = ar.sort_values(["expected_churned_arr", "arr"], ascending=False).head(top)
        for r in top_rows.itertuples(index=False):
            item = {"account_id": r.account_id, "contract_id": r.contract_id, "arr": _f(r.arr, 2),
                    "p_churn": _f(r.p_churn, 6), "expected_churned_arr": _f(r.expected_churned_arr, 2),
                    "renewal_date": pd.Timestamp(r.renewal_date).date().isoformat(), "segment": r.segment}
            if group_by is not None:
                item[group_by] = r.group
            at_risk.append(item)
    o = main["overall"]
    due = o["renewals_due"]["arr"] or 0.0
    churned_so_far = o["renewals_due"]["churned_so_far_arr"] or 0.0
    worst = churned_so_far + worst_at_risk

    def _group_obj(g):
        r = main["groups"][g]
        return {"group": g, **r, "methods": {m: flat_result(results[m]["groups"][g]) for m in METHODS}}

    return {
        "window": {"start": start_ts.date().isoformat(), "end": end_ts.date().isoformat(),
                   "end_exclusive": True, "group_by": group_by, "data_end": str(de)},
        "as_of": as_of_ts.date().isoformat(),
        "renewals_due": {"count": o["renewals_due"]["count"], "arr": o["renewals_due"]["arr"],
                         **{k: v for k, v in o["renewals_due"].items() if k not in ("count", "arr")}},
        "expected": o["expected"],
        "intervals": o["intervals"],
        "groups": [_group_obj(g) for g in main["groups"]] if group_by is not None else [],
        "methods": {m: {**flat_result(results[m]["overall"]), **({"detail": details[m]} if details[m] else {})}
                    for m in METHODS},
        "forecast_risk": risk,
        "at_risk": at_risk,
        "worst_case": {"threshold": at_risk_threshold, "churned_so_far_arr": _f(churned_so_far),
                       "at_risk_arr": _f(worst_at_risk), "churned_arr": _f(worst),
                       "renewed_arr": _f(due - worst), "grr": _f((due - worst) / due) if due > 0 else None},
        "model_version": model_version,
        "simulation": {"draws": draws, "seed": seed, "tau": taus, "tau_source": tau_source,
                       "n_exact": main["simulation"]["n_exact"], "n_pending": n_p,
                       "shock_nodes": main["simulation"]["n_nodes"]},
        "warnings": warn,
    }

