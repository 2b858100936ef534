"""CSM renewal calls for the simulated portfolio (the ``forecast_calls`` table) and what each call knew.

A CSM calls each renewal of an account they own monthly in the ``days_ahead`` days before it is due (on
E - 120, E - 90, E - 60 and E - 30 for a renewal due on E), as long as the day is inside the data window.
What a CSM sees is not what the data tables show:

* the account's latent health on the decision day (E - notice) when the call is after it, else on the call
  day, seen with noise of sd ``info_sd`` (a budget cut heard in a meeting, a champion's mood): information the
  usage, ticket and survey tables carry only partly and later;
* once the customer has decided (the call is on or after the decision day), with probability ``knows_outcome``
  the CSM has been told the decision;
* every CSM has an optimism (Normal(0, ``optimism_sd``) on the churn log-odds, drawn once per CSM; positive:
  the CSM sees less churn than there is).

The CSM's perceived churn probability (the simulator's churn formula on the perceived health, shifted by the
CSM's optimism) is turned into a category by fixed thresholds (``THRESHOLDS``). The truth keeps, per call, the
health the CSM saw, the true health, whether the CSM knew the outcome, the perceived probability and the CSM's
optimism, so the value of a call can be measured (docs/forecast.md, "CSM calls").

The draws come from their own random stream ([seed, 301]): adding calls never changes the other tables.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["CallParams", "THRESHOLDS", "simulate_calls"]

# perceived P(churn) below each threshold -> that category; above the last -> "churn"
THRESHOLDS = (("commit", 0.06), ("most_likely", 0.15), ("at_risk", 0.40))


@dataclass(frozen=True)
class CallParams:
    """How the simulated CSMs call their renewals (written to truth/params.json under ``calls``)."""
    days_ahead: int = 120          # calls for renewals due within this many days, monthly
    every_days: int = 30
    info_sd: float = 0.45          # noise on the health a CSM perceives
    knows_outcome: float = 0.5     # P(the CSM was told the decision | the call is after the decision day)
    optimism_sd: float = 0.8       # per-CSM optimism on the churn log-odds
    amount_missing: float = 0.1    # share of calls without an amount


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def simulate_calls(seed: int, p, accounts: pd.DataFrame, contracts: pd.DataFrame, terms: pd.DataFrame,
                   renewals: pd.DataFrame, h: np.ndarray, origin, n_days: int, w0: int, shift_day: int,
                   cp: CallParams | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The ``forecast_calls`` table, its truth (one row per call) and each CSM's optimism.

    p: the portfolio's Params; terms / renewals: the simulator's truth (every contract term; the decided
    renewals with their base logit and outcome); h: latent health (accounts x days since ``origin``); calls
    only on days in [w0, n_days) (the data window)."""
    cp = cp or CallParams()
    rng = np.random.default_rng([seed, 301])
    origin = pd.Timestamp(origin)
    csm = accounts.set_index("account_id")["csm_id"]
    csms = sorted(str(c) for c in csm.dropna().unique())
    optimism = {c: float(v) for c, v in zip(csms, rng.normal(0.0, cp.optimism_sd, len(csms)).round(3))}
    if not csms or terms.empty:
        return _empty_calls(), pd.DataFrame(), {}
    t = terms[["contract_id", "account_id", "start_date", "end_date"]].copy()
    t["renewals_before"] = t.groupby("account_id").cumcount()
    t["csm_id"] = t["account_id"].map(csm).astype(object)
    t = t[t["csm_id"].notna()]
    seg = accounts.set_index("account_id")["segment"]
    auto = contracts.set_index("contract_id")["auto_renew"]
    due = contracts.groupby(["account_id", "end_date"])["arr"].sum()
    t["due_arr"] = [due.get((a, e), np.nan) for a, e in zip(t["account_id"], t["end_date"])]
    end_day = ((pd.to_datetime(t["end_date"]) - origin).dt.days).to_numpy()
    dec_day = end_day - p.notice_days
    base = (p.b0 + seg.reindex(t["account_id"]).map(p.b_segment).to_numpy(float)
            + p.b_first_renewal * (t["renewals_before"].to_numpy() == 0)
            + p.b_auto_renew * auto.reindex(t["contract_id"]).fillna(False).to_numpy(bool)
            + np.where(dec_day >= shift_day, p.churn_shift, 0.0))
    ren = renewals.set_index("contract_id")
    decided = ren["churned"].reindex(t["contract_id"])
    t = t.assign(end_day=end_day, dec_day=dec_day, base_logit=base,
                 churned=decided.to_numpy(dtype=object))
    idx = t["account_id"].str[1:].astype(int).to_numpy() - 1
    rows = []
    for k in range(cp.days_ahead // cp.every_days, 0, -1):
        day = end_day - k * cp.every_days
        ok = (day >= w0) & (day < n_days) & (day >= (pd.to_datetime(t["start_date"]) - origin).dt.days.to_numpy())
        if ok.any():
            rows.append(t[ok].assign(call_day=day[ok], acc_idx=idx[ok]))
    if not rows:
        return _empty_calls(), pd.DataFrame(), optimism
    c = pd.concat(rows, ignore_index=True).sort_values(["call_day", "account_id"], ignore_index=True)
    n = len(c)
    seen_day = np.minimum(c["call_day"].to_numpy(), c["dec_day"].to_numpy())
    h_true = h[c["acc_idx"].to_numpy(), np.clip(seen_day, 0, h.shape[1] - 1)]
    h_seen = h_true + rng.normal(0.0, cp.info_sd, n)
    opt = c["csm_id"].map(optimism).to_numpy(float)
    logit = c["base_logit"].to_numpy(float) + p.b_health * h_seen - opt
    p_seen = p.p_unavoidable + (1 - p.p_unavoidable) * _sigmoid(logit)
    after = c["call_day"].to_numpy() >= c["dec_day"].to_numpy()
    churned = c["churned"]
    known = after & churned.notna().to_numpy() & (rng.random(n) < cp.knows_outcome)
    told_churn = known & np.array([v is True or v is np.True_ for v in churned], dtype=bool)
    p_seen = np.where(known, np.where(told_churn, _sigmoid(2.2 - opt), _sigmoid(-4.0 - opt)), p_seen)
    cat = np.full(n, "churn", dtype=object)
    for name, cut in reversed(THRESHOLDS):
        cat[p_seen < cut] = name
    factor = np.exp(rng.normal(0.02, 0.05, n))
    amount = np.where(cat == "churn", 0.0, np.round(c["due_arr"].to_numpy(float) * factor, 2))
    amount = np.where(rng.random(n) < cp.amount_missing, np.nan, amount)
    note = np.full(n, None, dtype=object)
    note[known & told_churn] = "customer said they will not renew"
    note[known & ~told_churn] = "verbal commit from the customer"
    called_at = origin + pd.to_timedelta(c["call_day"].to_numpy(), unit="D")
    calls = pd.DataFrame({"account_id": c["account_id"].to_numpy(), "contract_id": c["contract_id"].to_numpy(),
                          "called_at": called_at, "csm_id": c["csm_id"].astype(str).to_numpy(),
                          "category": cat, "amount": amount,
                          "note": pd.array(note, dtype="string")})
    calls["category"] = calls["category"].astype(str)
    truth = calls[["account_id", "contract_id", "called_at", "csm_id", "category"]].assign(
        health_true=h_true.astype(float), health_seen=h_seen.astype(float), knew_outcome=known,
        p_perceived=p_seen.astype(float), csm_optimism=opt,
        churned=pd.array(churned.to_numpy(dtype=object), dtype="boolean"))
    return calls, truth, optimism


def _empty_calls() -> pd.DataFrame:
    return pd.DataFrame({"account_id": pd.Series(dtype=str), "contract_id": pd.Series(dtype=str),
                         "called_at": pd.Series(dtype="datetime64[ns]"), "csm_id": pd.Series(dtype=str),
                         "category": pd.Series(dtype=str), "amount": pd.Series(dtype=float),
                         "note": pd.Series(dtype="string")})
