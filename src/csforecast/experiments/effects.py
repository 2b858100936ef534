"""Playbook effect analysis: what did a CS playbook do to renewals, usage and time to churn?

Units: every account that got the playbook (``interventions`` rows, first assignment per account) and was a
customer on its assignment date (a contract with start_date <= date < end_date).

Outcomes, measured from each account's assignment date t:
* **renewal**: did the account renew at its first renewal after t (+ ``renewal_lag_days``)? The renewal is
  the earliest end date of the contracts covering t + lag; renewed when one of the contracts ending then has a
  successor (``renewed_by``). Renewals due on or after the data end are unknown and left out.
* **usage**: change in the mean daily value of a usage metric, the ``window_days`` after t minus the
  ``window_days`` before t (``seat_utilisation`` = daily active users / seats under contract at t; or any
  metric of the usage table). Accounts with fewer than a third of the window's days in either window are
  left out.
* **time to churn**: days from t to the account's churn (the end of a contract with no successor and no other
  contract covering it), censored at the data end.

Randomised playbooks (both ``treatment`` and ``control`` arms present): difference in proportions (Newcombe
hybrid-score 95 % CI), difference in mean change (Welch t CI), log-rank test and a Cox hazard ratio (95 % CI).

Non-randomised playbooks (only ``treatment``, or ``treatment`` and ``none``): the comparison group is every
other account that was a customer on the assignment date (or the ``none`` rows with their dates). A logistic
propensity model on the point-in-time snapshot at the assignment date (features from data before t only)
weights the comparison group to look like the treated (ATT odds weights e/(1-e); overlap weights as a
sensitivity check); percentile-bootstrap CIs refit the propensity in every resample. The naive (unweighted)
comparison is shown beside it. The weighted estimate is only as good as its assumptions, which are listed
in the output.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from csforecast.data.sources import Source
from csforecast.experiments import truth_effects
from csforecast.experiments.effect_stats import _f, cox_hr, km_at, newcombe_diff, smd, welch_diff, wilson  # noqa: F401
from csforecast.experiments.effect_units import EffectError, Units, build_units, usage_change  # noqa: F401
from csforecast.experiments.propensity import (
    E_CLIP,
    choose_c,
    design_matrix,
    dr_att,
    effective_n,
    ipw_weights,
    propensity,
    weighted_diff,
)
from csforecast.simulate.truth import Truth

RANDOMISED_ASSUMPTIONS = [
    "randomisation: the arm was assigned at random, independently of the account's health (check the "
    "pre-assignment balance table)",
    "no interference (SUTVA): one account's playbook does not change another account's outcome",
    "consistency: the playbook was delivered the same way to every treated account; the estimate is the "
    "effect of being assigned (intention to treat), whatever was actually delivered",
    "missing outcomes are ignorable: renewals due after the data end and accounts without enough usage "
    "days are left out in both arms alike",
]
OBSERVATIONAL_ASSUMPTIONS = [
    "no unmeasured confounding: given the pre-assignment snapshot features, who got the playbook is as good "
    "as random. Untestable; it fails when CSMs chose accounts on information the data does not hold (a "
    "call, a gut feeling, the latent health itself)",
    "positivity / overlap: every kind of treated account also had a chance not to be treated (check the "
    "propensity range, the largest weights and the effective sample size)",
    "correct propensity model: a main-effects logistic regression on the snapshot features balances them "
    "(check the weighted standardised mean differences; |SMD| < 0.1 is the usual bar)",
    "no interference (SUTVA) and consistency: one version of the playbook, no spill-over between accounts",
    "the comparison group's index date is the assignment date; accounts treated later are not controls",
]


# ------------------------------------------------------------------------------------------------
# the analysis
# ------------------------------------------------------------------------------------------------
WEIGHTING_LABEL = {"att": "IPW for the treated (ATT odds weights e/(1-e))",
                   "ate": "IPW (ATE weights 1/e, 1/(1-e))",
                   "overlap": "overlap weights (ATO: 1-e for treated, e for controls)"}


def playbook_effect(source: Source, playbook: str, *, window_days: int = 90, usage_metric: str = "seat_utilisation",
                    renewal_lag_days: int = 0, weighting: str = "att", n_boot: int = 200, seed: int = 0,
                    with_truth: bool = True, oracle=None) -> dict:
    """The effect of `playbook` on renewal, usage and time to churn (see the module docstring).

    ``oracle``: the simulator's truth (a Truth, or None for real data); when it knows the playbook's true
    effect, the result gets a ``truth`` block comparing the estimates with it (``with_truth=False`` leaves it
    out)."""
    from threadpoolctl import threadpool_limits

    truth = oracle if with_truth else None
    # the many small logistic fits are much faster on one BLAS thread (and do not crowd a shared machine)
    with threadpool_limits(limits=1, user_api="blas"):
        return _playbook_effect(source, playbook, window_days=window_days, usage_metric=usage_metric,
                                renewal_lag_days=renewal_lag_days, weighting=weighting, n_boot=n_boot, seed=seed,
                                truth=truth)


def _playbook_effect(source: Source, playbook: str, *, window_days: int, usage_metric: str, renewal_lag_days: int,
                     weighting: str, n_boot: int, seed: int, truth: Truth | None) -> dict:
    if weighting not in WEIGHTING_LABEL:
        raise EffectError(f"weighting must be one of {', '.join(WEIGHTING_LABEL)}")
    un = build_units(source, playbook, renewal_lag_days, seed)
    u = un.frame
    if u["treated"].sum() < 5 or (~u["treated"]).sum() < 5:
        raise EffectError(f"too few customers in one arm on the assignment date ({int(u['treated'].sum())} treated, "
                          f"{int((~u['treated']).sum())} comparison)")
    uc = usage_change(source, u, usage_metric, window_days)
    u["usage_change"] = uc["change"].to_numpy()
    u["usage_before"] = uc["before"].to_numpy()
    notes = [f"{un.n_not_customers} assigned account(s) were not customers on their assignment date and are "
             f"left out"] if un.n_not_customers else []
    if renewal_lag_days:
        notes.append(f"renewal = first renewal at least {renewal_lag_days} days after assignment")
    out = {"playbook": playbook, "randomised": un.randomised, "arms": un.arms, "comparison": un.comparison}
    if un.randomised:
        out.update(_randomised(u, usage_metric, window_days))
        out["assumptions"] = RANDOMISED_ASSUMPTIONS
        out["balance"] = _balance(source, u)
    else:
        res, extra_notes = _observational(source, u, usage_metric, window_days, weighting, n_boot, seed)
        out.update(res)
        notes += extra_notes
        out["assumptions"] = OBSERVATIONAL_ASSUMPTIONS
    out["notes"] = notes
    out["settings"] = {"window_days": window_days, "usage_metric": usage_metric,
                       "renewal_lag_days": renewal_lag_days, "weighting": None if un.randomised else weighting,
                       "bootstrap": None if un.randomised else n_boot, "seed": seed}
    units = out.pop("_units", None)
    if truth is not None:
        t = _truth(truth, source, playbook, units, usage_metric, window_days, out)
        if t is not None:
            out["truth"] = t
    return out


def _renewal_block(u: pd.DataFrame) -> dict:
    k = u[u["known"]]
    t = k["treated"].to_numpy(bool)
    y = k["renewed"].astype(float).to_numpy()
    n1, n0 = int(t.sum()), int((~t).sum())
    if n1 == 0 or n0 == 0:
        return {"treated": None, "control": None, "difference": None, "ci": [None, None], "n_treated": n1,
                "n_control": n0, "method": "difference in proportions", "note": "an arm has no known renewals"}
    k1, k0 = int(y[t].sum()), int(y[~t].sum())
    d, lo, hi = newcombe_diff(k1, n1, k0, n0)
    z = stats.norm.sf(abs(d) / math.sqrt(max(1e-12, (k1 + k0) / (n1 + n0) * (1 - (k1 + k0) / (n1 + n0))
                                                * (1 / n1 + 1 / n0)))) * 2
    return {"treated": _f(k1 / n1), "control": _f(k0 / n0), "difference": _f(d), "ci": [_f(lo), _f(hi)],
            "p_value": _f(z, 8), "n_treated": n1, "n_control": n0,
            "method": "difference in proportions, Newcombe hybrid-score 95 % CI; two-proportion z-test"}


def _usage_block(u: pd.DataFrame, metric: str, window_days: int) -> dict:
    ok = u["usage_change"].notna()
    t = u["treated"].to_numpy(bool)
    x1 = u.loc[ok & t, "usage_change"].to_numpy(float)
    x0 = u.loc[ok & ~t, "usage_change"].to_numpy(float)
    base = {"metric": metric, "window_days": window_days, "n_treated": int(len(x1)), "n_control": int(len(x0))}
    if len(x1) < 2 or len(x0) < 2:
        return {**base, "treated": None, "control": None, "difference": None, "ci": [None, None],
                "method": "difference in mean change", "note": "too few accounts with usage in both windows"}
    d, lo, hi = welch_diff(x1, x0)
    p = stats.ttest_ind(x1, x0, equal_var=False).pvalue
    return {**base, "treated": _f(x1.mean()), "control": _f(x0.mean()), "difference": _f(d), "ci": [_f(lo), _f(hi)],
            "p_value": _f(p, 8),
            "method": f"difference in mean change of {metric} ({window_days} days after minus {window_days} "
                      "days before assignment), Welch t 95 % CI"}


def _time_block(u: pd.DataFrame) -> dict:
    from lifelines.statistics import logrank_test

    t = u["treated"].to_numpy(bool)
    T, E = u["T"].to_numpy(float), u["E"].to_numpy(int)
    lr = logrank_test(T[t], T[~t], E[t], E[~t])
    cox = cox_hr(T, E, t)
    return {"n_treated": int(t.sum()), "n_control": int((~t).sum()), "churns_treated": int(E[t].sum()),
            "churns_control": int(E[~t].sum()), "logrank_p_value": _f(lr.p_value, 8),
            "logrank_statistic": _f(lr.test_statistic), "hazard_ratio": cox["hazard_ratio"], "ci": cox["ci"],
            "cox_p_value": cox.get("p_value"),
            "retained_365d_treated": km_at(T[t], E[t], 365), "retained_365d_control": km_at(T[~t], E[~t], 365),
            "method": "log-rank test; Cox proportional hazards, treated vs control (HR < 1 = churns later)"}


def _randomised(u: pd.DataFrame, metric: str, window_days: int) -> dict:
    return {"n_treated": int(u["treated"].sum()), "n_control": int((~u["treated"]).sum()),
            "renewal_rate": _renewal_block(u), "usage": _usage_block(u, metric, window_days),
            "time_to_churn": _time_block(u), "_units": u}


def _balance(source: Source, u: pd.DataFrame, keys=("seat_utilisation", "active_users_30d", "arr", "tenure_days",
                                                     "tickets_90d", "nps_latest", "days_since_exec_meeting")) -> dict:
    """Pre-assignment standardised mean differences on a few snapshot features (randomised check)."""
    try:
        snap = _snapshot(source, u)
    except Exception as e:  # noqa: BLE001 - balance is a diagnostic; the estimate does not depend on it
        return {"error": str(e)[:200]}
    t = snap["treated"].to_numpy(bool)
    return {"smd": {k: _f(smd(snap[k].to_numpy(float), t), 4) for k in keys if k in snap},
            "usage_before_smd": _f(smd(u["usage_before"].to_numpy(float), u["treated"].to_numpy(bool)), 4)}


def _snapshot(source: Source, u: pd.DataFrame) -> pd.DataFrame:
    from csforecast.features.snapshot import build_snapshots

    dates = sorted({d.date() for d in u["index_date"]})
    snap = build_snapshots(source, dates, labels=False)
    snap = snap.merge(u[["account_id", "index_date", "treated"]],
                      left_on=["account_id", "as_of"], right_on=["account_id", "index_date"])
    return snap


def _observational(source: Source, u: pd.DataFrame, metric: str, window_days: int, weighting: str, n_boot: int,
                   seed: int) -> tuple[dict, list[str]]:
    notes = []
    snap = _snapshot(source, u)
    lost = len(u) - len(snap)
    if lost:
        notes.append(f"{lost} account(s) have no point-in-time snapshot at their index date (not a customer on "
                     f"the day before) and are left out")
    u = u.merge(snap[["account_id", "index_date"]], on=["account_id", "index_date"]).reset_index(drop=True)
    snap = u[["account_id", "index_date"]].merge(snap, on=["account_id", "index_date"])
    X, names, Xn = design_matrix(snap)
    t = u["treated"].to_numpy(bool)
    C, c_scores = choose_c(X, t, weighting)
    e, prop_model = propensity(X, t, C)
    w = ipw_weights(e, t, weighting)
    y_ren = np.where(u["known"], u["renewed"].astype(float), np.nan)
    y_use = u["usage_change"].to_numpy(float)
    has_use = bool(np.isfinite(y_use[t]).any() and np.isfinite(y_use[~t]).any())

    def estimates(Xb, tb, yr, yu, eb, init=None):
        wb, wo = ipw_weights(eb, tb, weighting), ipw_weights(eb, tb, "overlap")
        wa = ipw_weights(eb, tb, "att")
        r, s = weighted_diff(yr, tb, wb), (weighted_diff(yu, tb, wb) if has_use else (np.nan,) * 3)
        rdr_, om = dr_att(yr, tb, wa, Xb, True, init)
        return (r, s, weighted_diff(yr, tb, wo)[0], weighted_diff(yu, tb, wo)[0] if has_use else np.nan,
                rdr_, dr_att(yu, tb, wa, Xb, False)[0] if has_use else np.nan, om)

    (r_d, r1, r0), (s_d, s1, s0), ro_d, so_d, rdr, sdr, out_model = estimates(X, t, y_ren, y_use, e)
    # bootstrap: resample treated and comparison accounts separately, refit the propensity each time
    rng = np.random.default_rng(seed)
    i1, i0 = np.nonzero(t)[0], np.nonzero(~t)[0]
    boots = []
    for _ in range(int(n_boot)):
        idx = np.concatenate([rng.choice(i1, len(i1)), rng.choice(i0, len(i0))])
        tb = t[idx]
        eb, _ = propensity(X[idx], tb, C, prop_model)
        rb, sb, rob, sob, rdrb, sdrb, _ = estimates(X[idx], tb, y_ren[idx], y_use[idx], eb, out_model)
        boots.append((rb[0], sb[0], rob, sob, rdrb, sdrb))
    B = np.array(boots) if boots else np.full((1, 6), np.nan)

    def pci(col):
        v = B[:, col]
        v = v[np.isfinite(v)]
        return [_f(np.quantile(v, 0.025)), _f(np.quantile(v, 0.975))] if len(v) >= 20 else [None, None]

    known = np.isfinite(y_ren)
    method = (f"{WEIGHTING_LABEL[weighting]}; L2 logistic propensity (C={C:g}, chosen for covariate balance) on "
              f"{len(names)} point-in-time snapshot features at the assignment date; 95 % percentile bootstrap "
              f"({n_boot} resamples by account within arm, propensity refitted in each)")
    renewal = {"treated": _f(r1), "control": _f(r0), "difference": _f(r_d), "ci": pci(0),
               "n_treated": int((known & t).sum()), "n_control": int((known & ~t).sum()),
               "method": method, "control_is": "weighted comparison group (estimated treated-if-untreated rate)",
               "overlap_weighted": {"difference": _f(ro_d), "ci": pci(2)},
               "doubly_robust": {"difference": _f(rdr), "ci": pci(4),
                                 "method": "augmented IPW for the treated: logistic outcome model on the comparison "
                                           "group + ATT-weighted residuals"}}
    okx = np.isfinite(y_use)
    usage = {"metric": metric, "window_days": window_days, "treated": _f(s1), "control": _f(s0),
             "difference": _f(s_d), "ci": pci(1), "n_treated": int((okx & t).sum()),
             "n_control": int((okx & ~t).sum()), "method": method,
             "overlap_weighted": {"difference": _f(so_d), "ci": pci(3)},
             "doubly_robust": {"difference": _f(sdr), "ci": pci(5),
                               "method": "augmented IPW for the treated: ridge outcome model on the comparison "
                                         "group + ATT-weighted residuals"}}
    T, Ev = u["T"].to_numpy(float), u["E"].to_numpy(int)
    cox_w = cox_hr(T, Ev, t, w)
    time = {"n_treated": int(t.sum()), "n_control": int((~t).sum()), "churns_treated": int(Ev[t].sum()),
            "churns_control": int(Ev[~t].sum()), "hazard_ratio": cox_w["hazard_ratio"], "ci": cox_w["ci"],
            "cox_p_value": cox_w.get("p_value"),
            "retained_365d_treated": km_at(T[t], Ev[t], 365, w[t]),
            "retained_365d_control": km_at(T[~t], Ev[~t], 365, w[~t]),
            "method": f"weighted Cox proportional hazards ({weighting} weights, robust sandwich 95 % CI that "
                      "ignores the propensity's own uncertainty)"}
    # the naive comparison
    naive_t = _time_block(u)
    naive = {"renewal_rate": _renewal_block(u), "usage": _usage_block(u, metric, window_days),
             "time_to_churn": {k: naive_t[k] for k in ("hazard_ratio", "ci", "logrank_p_value",
                                                       "retained_365d_treated", "retained_365d_control")},
             "method": "unweighted comparison of treated accounts with every comparison account (biased when "
                       "the playbook was targeted)"}
    # diagnostics
    key = [c for c in ("seat_utilisation", "active_users_30d", "key_feature_breadth", "nps_latest", "tickets_90d",
                       "days_since_exec_meeting", "arr", "tenure_days", "days_to_renewal") if c in Xn]
    all_smd_before = {c: smd(Xn[c].to_numpy(float), t) for c in Xn.columns}
    all_smd_after = {c: smd(Xn[c].to_numpy(float), t, w) for c in Xn.columns}
    worst = sorted(all_smd_after, key=lambda c: -abs(all_smd_after[c]) if np.isfinite(all_smd_after[c]) else 0)[:5]
    ct = w[~t]
    diagnostics = {
        "propensity_treated": {"min": _f(e[t].min(), 4), "median": _f(np.median(e[t]), 4), "max": _f(e[t].max(), 4)},
        "propensity_control": {"min": _f(e[~t].min(), 4), "median": _f(np.median(e[~t]), 4),
                               "max": _f(e[~t].max(), 4)},
        "clipped_at": list(E_CLIP), "propensity_C": C, "balance_by_C": c_scores,
        "n_clipped": int(((e < E_CLIP[0]) | (e > E_CLIP[1])).sum()),
        "share_treated_above_0.9": _f((e[t] > 0.9).mean(), 4),
        "effective_control_n": _f(effective_n(ct), 1), "control_n": int((~t).sum()),
        "largest_control_weight_share": _f(ct.max() / ct.sum(), 4) if ct.sum() > 0 else None,
        "smd_before": {c: _f(all_smd_before[c], 4) for c in key},
        "smd_after": {c: _f(all_smd_after[c], 4) for c in key},
        "max_abs_smd_before": _f(np.nanmax(np.abs(list(all_smd_before.values()))), 4),
        "max_abs_smd_after": _f(np.nanmax(np.abs(list(all_smd_after.values()))), 4),
        "worst_after_weighting": {c: _f(all_smd_after[c], 4) for c in worst},
    }
    if diagnostics["max_abs_smd_after"] is not None and diagnostics["max_abs_smd_after"] > 0.1:
        notes.append(f"weighting leaves some features imbalanced (max |SMD| {diagnostics['max_abs_smd_after']:.2f}"
                     f" > 0.1): the propensity model does not fully balance the groups")
    if (e[t] > 0.9).mean() > 0.5 or (e[~t] < 0.01).mean() > 0.9:
        notes.append("near-deterministic assignment: most treated accounts have propensity > 0.9 and the comparison "
                     "accounts < 0.01, so the groups hardly overlap (positivity is close to violated) and the weighted "
                     "and doubly robust estimates rest on extrapolation: read them as less biased than the naive "
                     "comparison, not as the effect. A randomised hold-out is the reliable way to measure this playbook")
    if diagnostics["effective_control_n"] is not None and diagnostics["effective_control_n"] < 0.1 * (~t).sum():
        notes.append(f"the weighted comparison group rests on few accounts (effective n "
                     f"{diagnostics['effective_control_n']:.0f} of {int((~t).sum())}): weak overlap")
    res = {"n_treated": int(t.sum()), "n_control": int((~t).sum()), "renewal_rate": renewal, "usage": usage,
           "time_to_churn": time, "naive": naive, "diagnostics": diagnostics, "_units": u}
    return res, notes


def _truth(truth: Truth, source: Source, playbook: str, u: pd.DataFrame, metric: str, window_days: int,
           out: dict) -> dict | None:
    """The simulator's true effect of the playbook on the analysed units and whether the estimates' CIs cover
    it (None when truth/ does not know the playbook)."""
    if u is None or playbook not in truth.playbook_effects():
        return None
    k = u[u["known"]]
    ren = truth_effects.renewal_effect(truth, playbook, k)
    ok = u["usage_change"].notna()
    created = source.frame("accounts").set_index("account_id")["created_at"]
    use = truth_effects.usage_effect(truth, playbook, u[ok], window_days, metric, created)
    target = "ate" if out["randomised"] else {"att": "att", "ate": "ate", "overlap": "att"}[
        out["settings"]["weighting"]]
    res = {"effect_on_health_mu": truth_effects.playbook_effect_size(truth, playbook),
           "estimand": "ATE over the analysed accounts (randomised)" if out["randomised"]
           else "ATT: the effect on the accounts that got the playbook",
           "renewal_rate_difference": {k2: _f(v) if isinstance(v, float) else v for k2, v in (ren or {}).items()},
           "usage_difference": {k2: _f(v) if isinstance(v, float) else v for k2, v in (use or {}).items()},
           "source": "truth/ (simulator): renewal probabilities recomputed with and without the health shift"}
    cover = {}
    for key, blk, tr in (("renewal_rate", out["renewal_rate"], ren), ("usage", out["usage"], use)):
        if tr and tr.get(target) is not None and blk.get("ci") and None not in blk["ci"]:
            cover[key] = bool(blk["ci"][0] <= tr[target] <= blk["ci"][1])
            cover[f"{key}_error"] = _f(blk["difference"] - tr[target])
            if "naive" in out:
                cover[f"{key}_naive_error"] = _f(out["naive"][key]["difference"] - tr[target])
            dr = (blk.get("doubly_robust") or {}).get("difference")
            if dr is not None and tr.get("att") is not None:
                cover[f"{key}_doubly_robust_error"] = _f(dr - tr["att"])
    res["ci_covers_truth"] = cover
    res["compared_with"] = target
    return res
