"""The true effect of a playbook, from the simulator's truth/ folder (evaluation only; never used to estimate).

The simulator's renewal decision for a contract ending at E is made on the latent health h at the decision
date D = E - notice_days:

    P(churn) = p_unavoidable + (1 - p_unavoidable) * sigmoid(base_logit + b_health * h(D))

A playbook shifts the account's long-run level mu (so h) by `effect_on_health_mu` from its assignment day on.
For an analysed account i (assigned at t_i, first renewal after t_i decided at D_i) the two potential
churn probabilities are

    treated:  h_1 = h(D_i) + effect * [D_i >= t_i]      (for a treated account h(D_i) is already h_1)
    control:  h_0 = h(D_i) - effect * [D_i >= t_i]      (for a control account h(D_i) is already h_0)

and the true effect on the renewal rate is P0(churn) - P1(churn) (renewal rate treated minus control),
averaged over the treated (ATT) or over everyone analysed (ATE). The usage effect is computed the same way
from the simulator's utilisation curve (see `usage_effect`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from csforecast.simulate.truth import Truth


def _p_churn(params: dict, base_logit, h):
    return params["p_unavoidable"] + (1 - params["p_unavoidable"]) * expit(base_logit + params["b_health"] * h)


def playbook_effect_size(truth: Truth, playbook: str) -> float | None:
    pb = truth.playbook_effects().get(playbook)
    return None if pb is None else float(pb["effect_on_health_mu"])


def renewal_effect(truth: Truth, playbook: str, units: pd.DataFrame) -> dict | None:
    """True effect on the renewal rate at each unit's first renewal after assignment.

    units: one row per analysed account with account_id, index_date (assignment date), renewal_date (the
    first renewal's end date) and treated (bool). Returns {"att", "ate", "n_matched", ...} or None when the
    playbook is not in truth."""
    effect = playbook_effect_size(truth, playbook)
    if effect is None or units.empty:
        return None
    p = truth.params
    ren = truth.renewals[["account_id", "end_date", "decision_date", "health_at_decision", "base_logit",
                          "p_churn"]]
    u = units[["account_id", "index_date", "renewal_date", "treated"]].copy()
    u["renewal_date"] = pd.to_datetime(u["renewal_date"])
    u["index_date"] = pd.to_datetime(u["index_date"])
    m = u.merge(ren, left_on=["account_id", "renewal_date"], right_on=["account_id", "end_date"], how="inner")
    if m.empty:
        return None
    after = (m["decision_date"] >= m["index_date"]).to_numpy()
    treated = m["treated"].to_numpy(bool)
    h = m["health_at_decision"].to_numpy(float)
    shift = effect * after
    h1 = np.where(treated, h, h + shift)
    h0 = np.where(treated, h - shift, h)
    base = m["base_logit"].to_numpy(float)
    p1, p0 = _p_churn(p, base, h1), _p_churn(p, base, h0)
    # sanity: the recomputed probability of what happened equals the simulator's own p_churn
    p_obs = np.where(treated, p1, p0)
    max_err = float(np.max(np.abs(p_obs - m["p_churn"].to_numpy(float)))) if len(m) else 0.0
    d = p0 - p1   # renewal-rate difference: (1 - p1) - (1 - p0)
    return {"att": float(d[treated].mean()) if treated.any() else None,
            "ate": float(d.mean()),
            "control_mean_effect": float(d[~treated].mean()) if (~treated).any() else None,
            "n_matched": int(len(m)), "n_treated_matched": int(treated.sum()),
            "share_decided_after_assignment": float(after.mean()),
            "renewal_rate_treated_if_untreated": float(1 - p0[treated].mean()) if treated.any() else None,
            "renewal_rate_treated_as_treated": float(1 - p1[treated].mean()) if treated.any() else None,
            "check_max_abs_error_p_churn": max_err,
            "effect_on_health_mu": effect}


# utilisation in the simulator: sigmoid(0.2 + 1.1 h) * (1 - 0.5 exp(-tenure / 45)) * weekday factor
_UTIL_A, _UTIL_B, _ONBOARD_TAU, _WEEKEND = 0.2, 1.1, 45.0, 0.35
_LOGINS_PER_ACTIVE = 2.2


def usage_effect(truth: Truth, playbook: str, units: pd.DataFrame, window_days: int, metric: str,
                 created_at: pd.Series | None = None) -> dict | None:
    """True effect on the mean of `metric` over the `window_days` after assignment (= the effect on the
    after-minus-before change, since the before window is untouched by the playbook).

    units: account_id, index_date, treated, seats (seats under contract at assignment). Supported metrics:
    seat_utilisation (active users / seats at assignment), active_users, logins. Approximation: seat changes
    inside the window (renewals, add-ons) are ignored."""
    effect = playbook_effect_size(truth, playbook)
    if effect is None or units.empty or metric not in ("seat_utilisation", "active_users", "logins"):
        return None
    hd = truth.health
    ids = set(units["account_id"])
    hd = hd[hd["account_id"].isin(ids)]
    u = units[["account_id", "index_date", "treated", "seats"]].copy()
    u["index_date"] = pd.to_datetime(u["index_date"])
    m = hd.merge(u, on="account_id")
    lo = m["index_date"]
    m = m[(m["date"] >= lo) & (m["date"] < lo + pd.Timedelta(days=window_days))]
    if m.empty:
        return None
    wd = m["date"].dt.dayofweek.to_numpy() < 5
    wf = np.where(wd, 1.0, _WEEKEND)
    tf = np.ones(len(m))
    if created_at is not None:
        ca = pd.to_datetime(m["account_id"].map(created_at))
        tenure = (m["date"] - ca).dt.days.clip(lower=0).to_numpy(float)
        tf = 1 - 0.5 * np.exp(-tenure / _ONBOARD_TAU)
    h = m["health"].to_numpy(float)
    treated = m["treated"].to_numpy(bool)
    h1 = np.where(treated, h, h + effect)
    h0 = np.where(treated, h - effect, h)
    du = (expit(_UTIL_A + _UTIL_B * h1) - expit(_UTIL_A + _UTIL_B * h0)) * wf * tf
    if metric == "active_users":
        du = du * m["seats"].to_numpy(float)
    elif metric == "logins":
        du = du * m["seats"].to_numpy(float) * _LOGINS_PER_ACTIVE
    per = pd.DataFrame({"account_id": m["account_id"].to_numpy(), "treated": treated, "d": du}) \
        .groupby("account_id").agg(d=("d", "mean"), treated=("treated", "first"))
    t = per["treated"].to_numpy(bool)
    return {"att": float(per.loc[t, "d"].mean()) if t.any() else None, "ate": float(per["d"].mean()),
            "n_matched": int(len(per)), "metric": metric,
            "approximation": "seat changes inside the window are ignored"}
