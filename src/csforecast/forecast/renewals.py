"""Renewal-window forecast: what is due in [start, end), what will renew, the spread (Monte Carlo).

Definitions (docs/forecast.md is the prose version):

* **Due in the window**: contracts that started before ``as_of`` with ``start_date <= end_date`` and a
  renewal date ``end_date`` in ``[start, end)``. Contracts of one account with the same ``end_date`` (a main
  contract and its co-termed add-ons) are one **renewal decision**: they renew or churn together.
  Contracts signed on or after ``as_of`` are new business, not part of the renewal forecast.
* **Status as of as_of**: *renewed* when a successor (``renewed_by``) started before ``as_of`` (or the
  successor is not in the table and the renewal date has passed), or, in a forecast as of the data end, when
  the successor is in the table with a later start (*booked* ahead); *churned (so far)* when the renewal date
  is before ``as_of`` and it is not renewed; *pending* otherwise. Only pending decisions are forecast.
* ``GRR_window = renewed ARR (at the ARR due) / ARR due``;
  ``NRR_window = successor ARR of the renewed decisions / ARR due`` (expansion and contraction included).

The decision book is ``forecast.book``; the Monte Carlo engine and interval calibration ``forecast.montecarlo``;
the baselines ``forecast.baselines``.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd

from csforecast.errors import UnavailableError
from csforecast.forecast import baselines
from csforecast.forecast.book import (  # noqa: F401 (re-exported)
    GROUP_BY,
    GROUP_SEP,
    UNASSIGNED,
    group_columns,
    project_chains,
    renewal_book,
    to_day,
)
from csforecast.forecast.montecarlo import (  # noqa: F401 (re-exported: backtest, tests)
    EXACT_BUDGET,
    MethodInput,
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
from csforecast.forecast.calls import blend_inputs, call_scenarios, pending_calls
from csforecast.jsonsafe import finite_float
from csforecast.models.snapshot_survival import CHURN_MODEL_HORIZON_DAYS, beyond_churn_horizon

__all__ = [
    "METHODS",
    "NoChampionError",
    "Simulation",
    "forecast_window",
    "dict_memo",
    "estimate_tau",
    "shock_evidence",
    "renewal_book",
    "simulate_renewals",
    "summarise",
]

METHODS = ("model", "last_year", "time_series")
AT_RISK_THRESHOLD = 0.3
TOP_AT_RISK = 25
EXPANSION_QUARTERS = 4           # quarterly snapshots the on-the-fly expansion model learns from
MODEL_HORIZON_DAYS = CHURN_MODEL_HORIZON_DAYS   # the churn model learns from snapshots <= 365 days before a renewal


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


def predict_churn_interval(estimator, rows: pd.DataFrame, found: np.ndarray, p: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray] | None:
    """(P10, P90) of each P(churn) from the estimator's ``predict_interval`` (ChurnClassifier: its bootstrapped
    calibration maps); None when the estimator has none. Rows without a snapshot get (p, p)."""
    fn = getattr(estimator, "predict_interval", None)
    if fn is None or getattr(estimator, "calibration_maps_", None) is None:
        return None
    lo, hi = np.array(p, dtype=float), np.array(p, dtype=float)
    if found.any():
        X = rows.loc[found]
        names = getattr(estimator, "feature_names_in_", None)
        if names is not None:
            X = X[list(names)]
        lo_f, hi_f = fn(X)
        lo[found], hi[found] = lo_f, hi_f
    return lo, hi


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


def expansion_grid(source, as_of: date, quarters: int = EXPANSION_QUARTERS) -> list[date]:
    """Snapshot dates for fitting the expansion model on the fly: every 3 months back from as_of (4 by
    default: each date costs a point-in-time snapshot of the whole book, and a year of renewals is enough), not earlier than 90 days after the first activity (trailing usage windows need history)."""
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
    """The expansion model fitted on the renewed decisions among `rows` (deterministic: the same rows give the
    same model, which is why a caller may keep it, ``forecast_window(memo=)``)."""
    from csforecast.models.expansion import ExpansionModel

    r = rows[rows["label_arr_change"].notna()]
    return ExpansionModel().fit(r[features], r["label_arr_change"].to_numpy(float), sample_time=r["renewal_date"])


def dict_memo() -> Callable:
    """A ``memo`` for :func:`forecast_window` kept in a dict for as long as the caller keeps it: ``memo(key,
    compute)`` is ``compute()`` the first time a key is asked for, the same value after. For one source only."""
    kept: dict = {}

    def memo(key, compute):
        if key not in kept:
            kept[key] = compute()
        return kept[key]

    return memo


def optional_champion(family: str):
    """The champion of ``family`` (estimator, version) from the registry, or (None, None) when there is none or
    the registry cannot say. For the models the forecast can go without: the blend (no blend method then) and
    survival (renewals beyond the churn model's horizon keep the churn model, with a warning)."""
    from csforecast.tracking.champions import load_champion

    try:
        return load_champion(family)
    except Exception:  # noqa: BLE001 - an addition to the forecast, never a reason to fail it
        return None, None


def survival_beyond_horizon(estimator, rows: pd.DataFrame, found: np.ndarray, p_churn: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
    """P(churn) with the decisions beyond the churn model's horizon scored by the survival model, by the rule
    the score set uses (``models.snapshot_survival.beyond_churn_horizon``: 1 - S(days_to_renewal + 1)).

    ``rows``: the decisions' snapshot rows (``scoring_rows``: days_to_renewal = days to that decision's
    renewal); ``found``: rows with a snapshot. Returns (probabilities, mask of the decisions the survival model
    scored). ``estimator`` None (no survival model) or a row without a snapshot keeps ``p_churn``."""
    p = np.array(p_churn, dtype=float)
    mask = np.zeros(len(p), dtype=bool)
    days = pd.to_numeric(rows["days_to_renewal"], errors="coerce").to_numpy(float) if "days_to_renewal" in rows \
        else np.full(len(p), np.nan)
    cand = found & (days > CHURN_MODEL_HORIZON_DAYS)
    if estimator is None or not cand.any():
        return p, mask
    est = getattr(estimator, "estimator", estimator)          # accept an EstimatorModel too
    s = np.asarray(est.renewal_survival(rows.loc[cand]), dtype=float)
    far, p_far = beyond_churn_horizon(days[cand], s)
    idx = np.flatnonzero(cand)[far]
    p[idx] = p_far[far]
    mask[idx] = True
    return p, mask


# ------------------------------------------------------------------------------------------------------
# the window forecast
# ------------------------------------------------------------------------------------------------------
def _load_champion():
    from csforecast.tracking.champions import load_champion

    est, version = load_champion("churn")
    if est is None:
        raise NoChampionError("no champion churn model is registered: run `csforecast train --family churn` first")
    return est, version


def chain_roots(n_pending: int, projected: pd.DataFrame | None) -> np.ndarray:
    """For every decision of "pending, then projected" order, the pending decision its chain starts from."""
    n_proj = 0 if projected is None else len(projected)
    root = np.arange(n_pending + n_proj)
    if n_proj:
        prev = projected["prev"].to_numpy(int)
        for j in range(n_proj):
            root[n_pending + j] = root[prev[j]]
    return root


def extend(values, root: np.ndarray) -> np.ndarray:
    """Per-pending-decision values repeated for the projected decisions of each chain."""
    v = np.asarray(values)
    return v[root]


def method_inputs(p_pending, ratio_mean, ratio_var, root: np.ndarray, *, split=None, maps=None, tau=0.0,
                  addon=None) -> MethodInput:
    """A method's MethodInput for "pending, then projected" decisions from its per-pending-decision values:
    a projected decision takes the probabilities and ratio moments of the decision its chain starts from."""
    sp = None if split is None else tuple(extend(x, root) for x in split)
    tau_v = extend(tau, root) if np.ndim(tau) else float(tau)
    return MethodInput(extend(p_pending, root), extend(ratio_mean, root), extend(ratio_var, root), sp, maps, tau_v,
                       addon)


def tau_per_decision(cal_tau, method: str, segments: np.ndarray):
    """tau of ``method`` for each decision from a calibration ({method: float} or {method: {"overall": x,
    "segments": {segment: y}}}): the segment's value when calibrated, else the method's overall value."""
    t = cal_tau.get(method, 0.0) if isinstance(cal_tau, dict) else cal_tau
    if isinstance(t, dict):
        seg = t.get("segments") or {}
        overall = float(t.get("overall", 0.0))
        return np.array([float(seg.get(str(s), overall)) for s in segments], dtype=float)
    return float(t or 0.0)


def _kept_off_pipeline(source, compute, start, end, as_of, pipeline_settings: dict) -> dict:
    """``compute()`` (the off-pipeline factor: several past windows of add-on and pipeline work), kept on disk
    (``diskcache``) by the data's content hash, the window, as_of, the pipeline settings and the forecast code,
    so a repeated forecast of the same window does not redo it. Spark sources: computed every time."""
    import json

    from csforecast.config import get_settings
    from csforecast.diskcache import DiskCache, code_digest, key_digest

    if getattr(source, "engine", None) != "duckdb":
        return compute()
    key = key_digest("off_pipeline", source.data_hash, str(start.date()), str(end.date()), str(as_of.date()),
                     pipeline_settings, code_digest("csforecast.forecast"))
    store = DiskCache(get_settings().home / "cache" / "pipeline", ".json")
    return store.get_or_compute(key, compute, load=lambda path: json.loads(path.read_text()),
                                dump=lambda value, path: path.write_text(json.dumps(value)))


def forecast_window(source, start, end, group_by: str | None = None, as_of=None, churn_estimator=None, *,
                    model_version: str | None = None, draws: int | None = None, seed: int | None = None,
                    tau: float | dict | None = None, at_risk_threshold: float = AT_RISK_THRESHOLD,
                    top: int = TOP_AT_RISK, exact_budget: int = EXACT_BUDGET, progress=None, calls=None,
                    blend_estimator=None, blend_version: str | None = None, survival_estimator=None,
                    survival_version: str | None = None, memo: Callable | None = None) -> dict:
    """Forecast the renewals due in [start, end) as of ``as_of`` (default: the data end). See
    docs/forecast.md for every key of the result.

    group_by          one or two columns ("segment", "segment,csm_id"; see ``book.GROUP_BY``).
    churn_estimator   anything with ``predict_proba`` (column 1 = P(churn)); default: the champion churn
                      model from the registry (NoChampionError when there is none and something is pending).
                      When it has ``calibration_maps_`` (ChurnClassifier), each Monte Carlo draw applies one
                      of its bootstrapped calibration maps to every decision.
    tau               common-shock sd on the churn logit (float, or {method: float | {"overall", "segments"}});
                      default: the values written by the last ``csforecast backtest`` (forecast_calibration.json),
                      else 0.
    progress          optional callable(str) told each step.
    calls             CSM calls (``features.calls.calls_with_due_date``); default: the source's forecast_calls.
                      They give the ``scenarios`` (forecast/calls.py).
    blend_estimator   the blend (``models.CallBlend``) for the ``blend`` method; default: the blend champion
                      when the churn model is the champion too (none: no blend method).
    survival_estimator the survival model (``SnapshotSurvivalModel``) that scores renewals more than 365 days
                      after as_of, as the score set does (``beyond_churn_horizon``); default: the survival
                      champion when the churn model is the champion too (none: the churn model, with a warning).
    memo              ``memo(key, compute)``: a caller's store of what windows as of one date share (the
                      expansion model, fitted on the decisions resolved before as_of), for a caller that forecasts
                      several windows of one source (one memo per source: the key is the as_of date):
                      ``dict_memo()`` for a loop, the server's per-source cache. None: fitted for this window.
    """
    from csforecast.config import get_settings
    from csforecast.features.snapshot import build_snapshots, data_end, feature_columns
    from csforecast.forecast.addons import addon_forecast, with_pipeline
    from csforecast.forecast.pipeline import off_pipeline_factor, pipeline_addons

    tell = progress or (lambda _msg: None)
    fs = get_settings().forecast
    draws = int(draws or fs.draws)
    seed = int(fs.seed if seed is None else seed)
    cols = group_columns(group_by)
    group_by = ",".join(cols) if cols else None
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
    # at the data end (a live forecast) every successor in the export is signed: a renewal booked ahead is renewed
    book = renewal_book(contracts, accounts, start_ts, end_ts, as_of_ts, group_by, booked=as_of_ts == to_day(de))
    pend = (book["status"] == "pending").to_numpy()
    pending = book[pend]
    n_p = int(pend.sum())
    projected = project_chains(book, contracts, end_ts)
    root = chain_roots(n_p, projected)
    seg_all = extend(pending["segment"].astype(str).to_numpy(), root) if n_p else np.zeros(0, dtype=object)
    addons, addon_rates = addon_forecast(contracts, accounts, start_ts, end_ts, as_of_ts, group_by)
    opps = source.frame("opportunities") if source.has("opportunities") else None
    opp_history = source.frame("opportunity_history") if source.has("opportunity_history") else None
    pset = get_settings().pipeline
    pipe_frame, pipe_info = pipeline_addons(opps, opp_history, start_ts, end_ts, as_of_ts,
                                            stage_probabilities=pset.stage_probabilities,
                                            renewals=pending[["account_id", "renewal_date"]], level=pset.level)
    off_pipe = (_kept_off_pipeline(source, lambda: off_pipeline_factor(
                    contracts, accounts, opps, opp_history, start_ts, end_ts, as_of_ts,
                    stage_probabilities=pset.stage_probabilities, level=pset.level),
                    start_ts, end_ts, as_of_ts, pset.model_dump(mode="json"))
                if len(pipe_frame) else {"factor": 1.0, "windows": 0, "forecast": 0.0, "actual": 0.0})
    pipe_info = {**pipe_info, "off_pipeline": off_pipe}
    addons, addon_source = with_pipeline(addons, pipe_frame, off_pipe["factor"])
    addon = (addons["mean"].to_numpy(float), addons["var"].to_numpy(float), addons["group"].astype(str).to_numpy())

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

    # --- per-method probabilities and ratio moments for the pending decisions --------------------------
    inputs: dict[str, MethodInput] = {}
    blend_input: MethodInput | None = None
    details: dict[str, dict] = {m: {} for m in METHODS}
    history = baselines.renewal_history(contracts, accounts, as_of_ts)
    p_model = np.zeros(0)
    by_survival = np.zeros(0, dtype=bool)
    interval = None
    if calls is None:
        from csforecast.features.calls import source_calls
        calls = source_calls(source)
    called = pending_calls(calls, pending, as_of_ts)
    if n_p:
        far = pending["days_ahead"].to_numpy() > MODEL_HORIZON_DAYS
        if churn_estimator is None:
            tell("loading the champion churn model")
            churn_estimator, model_version = _load_champion()
            if blend_estimator is None and len(calls):
                blend_estimator, blend_version = optional_champion("blend")
            if survival_estimator is None and far.any():
                survival_estimator, survival_version = optional_champion("survival")
        tell("building point-in-time snapshots")
        grid = expansion_grid(source, as_of_ts.date())
        snaps = build_snapshots(source, grid + [as_of_ts.date()], end=as_of_ts.date(), cache=True)
        now = snaps[snaps["as_of"] == as_of_ts]
        rows, found = scoring_rows(pending, now, as_of_ts)
        hist_rate = baselines.overall_churn_rate(history)
        tell("scoring the pending renewals")
        p_model = predict_churn(churn_estimator, rows, found, hist_rate)
        interval = predict_churn_interval(churn_estimator, rows, found, p_model)
        if far.any() and survival_estimator is not None:
            tell("scoring the renewals beyond the churn model's horizon with the survival model")
        p_model, by_survival = survival_beyond_horizon(survival_estimator, rows, found, p_model)
        if interval is not None:      # the survival model gives a point probability (the score set: NaN P10/P90)
            interval = (np.where(by_survival, p_model, interval[0]), np.where(by_survival, p_model, interval[1]))
        if (~found).any():
            warn.append(f"{int((~found).sum())} pending renewal(s) have no snapshot row as of {as_of_ts.date()} "
                        f"(account missing from accounts or created later): scored at the historical churn "
                        f"rate {hist_rate:.3f}")
        if by_survival.any():
            warn.append(f"{int(by_survival.sum())} renewal(s) ({pending.loc[by_survival, 'arr'].sum():,.0f} ARR) "
                        f"are more than {MODEL_HORIZON_DAYS} days after as_of, beyond the churn model's training "
                        f"range: scored by the survival model (P(churn by the renewal) = 1 - S(days to renewal)), "
                        f"as in the score set")
        left = far & ~by_survival
        if left.any():
            warn.append(f"{int(left.sum())} renewal(s) ({pending.loc[left, 'arr'].sum():,.0f} ARR) are more than "
                        f"{MODEL_HORIZON_DAYS} days after as_of: the churn model is out of its training range "
                        f"there (it learns from snapshots at most {MODEL_HORIZON_DAYS} days before a renewal) and "
                        f"no survival model was available to score them")
        def fit():
            tell("fitting the expansion model")
            return fit_expansion(decision_rows(snaps[snaps["as_of"] < as_of_ts], as_of_ts), feature_columns(snaps))

        exp_model = memo(("expansion", str(as_of_ts.date())), fit) if memo is not None else fit()
        m, v = exp_model.ratio_moments(rows)
        split = exp_model.split_moments(rows)
        maps = getattr(churn_estimator, "calibration_maps_", None)
        inputs["model"] = method_inputs(p_model, m, v, root, split=split, maps=maps,
                                        tau=tau_per_decision(tau, "model", seg_all), addon=addon)
        details["model"] = {"expansion_model": exp_model.summary(),
                            "calibration_maps": 0 if maps is None else int(len(maps))}
        if blend_estimator is not None and called["call_category"].notna().any():
            p_blend = blend_estimator.predict_proba(blend_inputs(p_model, called, pending["days_ahead"]))[:, 1]
            blend_input = method_inputs(p_blend, m, v, root, split=split, tau=tau_per_decision(tau, "model", seg_all),
                                        addon=addon)
        resid_var = exp_model.var_exp_resid_ / max(exp_model.mean_exp_resid_, 1e-12) ** 2
        for name, fn in (("last_year", baselines.last_year), ("time_series", baselines.time_series)):
            pc, ratio, info = fn(pending, history, start_ts, end_ts, as_of_ts)
            inputs[name] = method_inputs(pc, ratio, ratio * ratio * resid_var, root,
                                         tau=tau_per_decision(tau, name, seg_all), addon=addon)
            details[name] = info
    else:
        for name in METHODS:
            inputs[name] = MethodInput(np.zeros(0), np.zeros(0), np.zeros(0), addon=addon)
    if len(projected):
        warn.append(f"{len(projected)} renewal(s) are projected, not on the books: contracts shorter than the "
                    f"window renew (or churn) into successors due before {end_ts.date()}")

    # --- simulate every method ------------------------------------------------------------------------
    tell("simulating the renewals")
    results = {}
    for k, name in enumerate(METHODS):
        results[name] = method_results(book, projected, inputs[name], draws=draws, seed=seed + k,
                                       exact_budget=exact_budget)
    main = results["model"]
    blend_result = None
    if blend_input is not None:
        blend_result = method_results(book, projected, blend_input, draws=draws, seed=seed + len(METHODS),
                                      exact_budget=exact_budget)

    # --- disagreement ---------------------------------------------------------------------------------
    share = float(fs.disagreement_share)
    risk = disagreements({m: results[m]["overall"]["expected"]["renewed_arr"] for m in METHODS}, share)
    if group_by is not None:
        for g in main["groups"]:
            risk += disagreements({m: results[m]["groups"][g]["expected"]["renewed_arr"] for m in METHODS},
                                  share, scope=f"{group_by}={g}")

    # --- at risk, worst and best case -----------------------------------------------------------------
    at_risk = []
    if n_p:
        pm = p_model
        ar = pending.assign(p_churn=pm, expected_churned_arr=pm * pending["arr"].to_numpy(float),
                            p_source=np.where(by_survival, "survival", "model"))
        if interval is not None:
            ar = ar.assign(p_lo=interval[0], p_hi=interval[1])
        top_rows = ar.sort_values(["expected_churned_arr", "arr"], ascending=False).head(top)
        for r in top_rows.itertuples(index=False):
            item = {"account_id": r.account_id, "contract_id": r.contract_id, "arr": _f(r.arr, 2),
                    "p_churn": _f(r.p_churn, 6), "expected_churned_arr": _f(r.expected_churned_arr, 2),
                    "renewal_date": pd.Timestamp(r.renewal_date).date().isoformat(), "segment": r.segment,
                    "p_churn_source": r.p_source}
            if interval is not None:
                item["p_churn_interval"] = [_f(r.p_lo, 6), _f(r.p_hi, 6)]
            for c in cols:
                item[c] = _group_part(r.group, cols, c)
            at_risk.append(item)
    o = main["overall"]
    scen = scenario_cases(book, projected, inputs["model"], o, at_risk_threshold)
    scenarios = call_scenarios(pending, called, o["renewals_due"]["renewed_so_far_arr"])
    scenarios["model"] = o["intervals"]["renewed_arr"]
    scenarios["blend"] = blend_result["overall"]["intervals"]["renewed_arr"] if blend_result else None
    methods = {m: {**flat_result(results[m]["overall"]), **({"detail": details[m]} if details[m] else {})}
               for m in METHODS}
    if blend_result is not None:
        methods["blend"] = {**flat_result(blend_result["overall"]),
                            "detail": {"blend_version": blend_version,
                                       "pending_with_call": scenarios["pending_called"]}}

    def _group_obj(g):
        r = main["groups"][g]
        keys = {c: _group_part(g, cols, c) for c in cols}
        return {"group": g, **keys, **r, "methods": {m: flat_result(results[m]["groups"][g]) for m in METHODS}}

    return {
        "window": {"start": start_ts.date().isoformat(), "end": end_ts.date().isoformat(),
                   "end_exclusive": True, "group_by": group_by, "data_end": str(de)},
        "as_of": as_of_ts.date().isoformat(),
        "renewals_due": o["renewals_due"],
        "expected": o["expected"],
        "intervals": o["intervals"],
        "groups": [_group_obj(g) for g in main["groups"]] if group_by is not None else [],
        "methods": methods,
        "scenarios": scenarios,
        "forecast_risk": risk,
        "at_risk": at_risk,
        "worst_case": scen["worst_case"],
        "best_case": scen["best_case"],
        "midterm_expansion": {"rates": addon_rates, "accounts": int(len(addons)),
                              "expected_arr": _f(float(addons["mean"].sum())), "addon_source": addon_source,
                              "pipeline": {**pipe_info, **_source_split(addons)}},
        "model_version": model_version,
        "scored_by_survival": scored_by_survival(pending, by_survival, survival_version, group_by),
        "simulation": {"draws": draws, "seed": seed, "tau": _tau_summary(tau), "tau_source": tau_source,
                       "n_exact": main["simulation"]["n_exact"], "n_pending": n_p, "n_projected": int(len(projected)),
                       "shock_nodes": main["simulation"]["n_nodes"]},
        "warnings": warn,
    }


def _source_split(addons: pd.DataFrame) -> dict:
    """Accounts and expected add-on ARR of the window by the method that forecast them."""
    pipe = (addons["source"] == "pipeline").to_numpy()
    m = addons["mean"].to_numpy(float)
    return {"pipeline_accounts": int(pipe.sum()), "pipeline_expected_arr": _f(float(m[pipe].sum())),
            "history_accounts": int((~pipe).sum()), "history_expected_arr": _f(float(m[~pipe].sum()))}


def scored_by_survival(pending: pd.DataFrame, mask: np.ndarray, version: str | None, group_by: str | None) -> dict:
    """How many pending decisions (and how much ARR due) of the window the survival model scored (beyond the
    churn model's horizon), with the survival model's version and, with ``group_by``, per group."""
    m = np.asarray(mask, dtype=bool)
    a = pending["arr"].to_numpy(float) if len(pending) else np.zeros(0)
    out = {"decisions": int(m.sum()), "arr": _f(float(a[m].sum()), 2), "horizon_days": MODEL_HORIZON_DAYS,
           "survival_version": version if m.any() else None}
    if group_by is not None:
        g = pending["group"].astype(str).to_numpy() if len(pending) else np.zeros(0, dtype=object)
        out["groups"] = {str(k): {"decisions": int(m[g == k].sum()), "arr": _f(float(a[(g == k) & m].sum()), 2)}
                         for k in sorted(set(g[m]))}
    return out


def _group_part(label: str, cols: tuple[str, ...], col: str) -> str:
    """The value of ``col`` in a group label of ``cols`` ("Enterprise / CSM-001")."""
    parts = str(label).split(GROUP_SEP) if len(cols) > 1 else [str(label)]
    return parts[cols.index(col)] if len(parts) == len(cols) else str(label)


def _tau_summary(tau) -> dict:
    if isinstance(tau, dict):
        return {m: (t if isinstance(t, dict) else float(t)) for m, t in tau.items() if m in METHODS}
    return {m: float(tau) for m in METHODS}


def scenario_cases(book: pd.DataFrame, projected: pd.DataFrame | None, inputs: MethodInput, overall: dict,
                   threshold: float) -> dict:
    """``worst_case``: every pending decision with P(churn) > threshold churns, the others (and the projected
    ones) at their expected outcome; ``best_case``: those decisions all renew (at their expected ARR change).
    Known outcomes and mid-term add-ons as they are. By construction worst <= expected <= best for churned
    ARR (reversed), GRR and NRR (docs/forecast.md)."""
    e = overall["expected"]
    d = overall["renewals_due"]
    due = d["arr"] or 0.0
    so_far = d["churned_so_far_arr"] or 0.0
    pend = (book["status"] == "pending").to_numpy()
    n_p = int(pend.sum())
    a = book.loc[pend, "arr"].to_numpy(float)
    p = np.asarray(inputs.p_churn[:n_p], dtype=float)
    split = inputs.split if inputs.split is not None else None
    risky = p > threshold
    if split is not None:
        cm, em = np.asarray(split[0][:n_p], float), np.asarray(split[2][:n_p], float)
    else:
        from csforecast.forecast.montecarlo import ratio_split_normal
        cm, _, em, _ = ratio_split_normal(inputs.ratio_mean[:n_p], inputs.ratio_var[:n_p])
    at_risk_arr = float(a[risky].sum())
    out = {}
    for name, renew_prob in (("worst_case", 0.0), ("best_case", 1.0)):
        # change vs the expectation: the at-risk decisions' renewal probability set to 0 (worst) or 1 (best)
        dq = renew_prob - (1 - p[risky])
        d_ren = float((a[risky] * dq).sum())
        d_con = float((a[risky] * dq * cm[risky]).sum())
        d_exp = float((a[risky] * dq * em[risky]).sum())
        churned = (e["churned_arr"] or 0.0) - d_ren
        con = (e["contraction_arr"] or 0.0) + d_con
        exp_ = (e["expansion_arr"] or 0.0) + d_exp
        renewed = due - churned
        out[name] = {"threshold": threshold, "churned_so_far_arr": _f(so_far), "at_risk_arr": _f(at_risk_arr),
                     "churned_arr": _f(churned), "renewed_arr": _f(renewed), "contraction_arr": _f(con),
                     "expansion_arr": _f(exp_),
                     "grr": _f((renewed - con) / due) if due > 0 else None,
                     "nrr": _f((renewed - con + exp_) / due) if due > 0 else None}
    return out
