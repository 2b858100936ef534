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
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from csforecast.data.sources import Source

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


class EffectError(ValueError):
    """The effect analysis cannot run on this data (no interventions, unknown playbook, too few units)."""


# ------------------------------------------------------------------------------------------------
# small statistics
# ------------------------------------------------------------------------------------------------
def wilson(k: float, n: float, z: float = 1.959964) -> tuple[float, float]:
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    den = 1 + z * z / n
    c = (p + z * z / (2 * n)) / den
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return c - h, c + h


def newcombe_diff(k1: int, n1: int, k0: int, n0: int) -> tuple[float, float, float]:
    """p1 - p0 and its Newcombe hybrid-score 95 % CI (method 10 of Newcombe 1998)."""
    p1, p0 = k1 / n1, k0 / n0
    l1, u1 = wilson(k1, n1)
    l0, u0 = wilson(k0, n0)
    d = p1 - p0
    return d, d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)


def welch_diff(x1, x0) -> tuple[float, float, float]:
    x1, x0 = np.asarray(x1, float), np.asarray(x0, float)
    d = x1.mean() - x0.mean()
    v1, v0 = x1.var(ddof=1) / len(x1), x0.var(ddof=1) / len(x0)
    se = math.sqrt(v1 + v0)
    dof = (v1 + v0) ** 2 / (v1 ** 2 / (len(x1) - 1) + v0 ** 2 / (len(x0) - 1)) if se > 0 else 1.0
    q = stats.t.ppf(0.975, dof)
    return d, d - q * se, d + q * se


def _f(x, nd: int = 6):
    if x is None:
        return None
    x = float(x)
    return None if not math.isfinite(x) else round(x, nd)


def smd(x: np.ndarray, t: np.ndarray, w: np.ndarray | None = None) -> float:
    """Standardised mean difference treated vs control (pooled unweighted sd), optionally weighted."""
    w = np.ones(len(x)) if w is None else w
    ok = np.isfinite(x)
    x, t, w = x[ok], t[ok], w[ok]
    if t.sum() < 2 or (~t).sum() < 2:
        return float("nan")
    m1 = np.average(x[t], weights=w[t])
    m0 = np.average(x[~t], weights=w[~t])
    sd = math.sqrt((x[t].var(ddof=1) + x[~t].var(ddof=1)) / 2)
    return float((m1 - m0) / sd) if sd > 0 else 0.0


# ------------------------------------------------------------------------------------------------
# units and outcomes
# ------------------------------------------------------------------------------------------------
@dataclass
class Units:
    frame: pd.DataFrame           # account_id, index_date, treated, seats, renewal_date, renewed, known, T, E
    randomised: bool
    arms: list[str]
    n_assigned: int
    n_not_customers: int
    comparison: str


def build_units(source: Source, playbook: str, renewal_lag_days: int = 0, seed: int = 0) -> Units:
    from csforecast.features.snapshot import account_churn_dates, data_end

    if not source.has("interventions"):
        raise EffectError("the source has no interventions table (account_id, date, playbook, arm)")
    iv = source.frame("interventions")
    known = sorted(iv["playbook"].dropna().unique())
    iv = iv[iv["playbook"] == playbook]
    if iv.empty:
        raise EffectError(f"no interventions for playbook {playbook!r}; playbooks in the data: {', '.join(known)}")
    arms = sorted(iv["arm"].dropna().unique())
    randomised = "treatment" in arms and "control" in arms
    if "treatment" not in arms:
        raise EffectError(f"playbook {playbook!r} has no treatment arm (arms: {', '.join(arms)})")
    first = iv.sort_values(["date", "account_id"]).groupby("account_id", as_index=False).first()
    end = pd.Timestamp(data_end(source))
    if randomised:
        u = first[first["arm"].isin(["treatment", "control"])].copy()
        comparison = "randomised control arm"
    else:
        tr = first[first["arm"] == "treatment"]
        if "none" in arms:
            ctl = first[first["arm"] == "none"]
            comparison = "accounts in arm 'none' at their own dates"
        else:
            accounts = source.frame("accounts")[["account_id"]]
            others = accounts[~accounts["account_id"].isin(first["account_id"])].copy()
            dates = tr["date"].to_numpy()
            if len(np.unique(dates)) == 1:
                others["date"] = dates[0]
                comparison = f"every other customer on {pd.Timestamp(dates[0]).date()}"
            else:
                rng = np.random.default_rng(seed)
                others["date"] = rng.choice(dates, size=len(others))
                comparison = "every other customer, at dates drawn from the treated accounts' dates"
            others["arm"] = "none"
            ctl = others
        u = pd.concat([tr[["account_id", "date", "arm"]], ctl[["account_id", "date", "arm"]]], ignore_index=True)
    u = u.rename(columns={"date": "index_date"})[["account_id", "index_date", "arm"]]
    u["index_date"] = pd.to_datetime(u["index_date"])
    u["treated"] = u["arm"] == "treatment"
    n_assigned = int(len(u))

    c = source.frame("contracts")[["contract_id", "account_id", "start_date", "end_date", "seats", "renewed_by"]]
    m = u[["account_id", "index_date"]].merge(c, on="account_id")
    cover = m[(m["start_date"] <= m["index_date"]) & (m["end_date"] > m["index_date"])]
    seats = cover.groupby("account_id")["seats"].sum()
    u = u[u["account_id"].isin(seats.index)].copy()
    n_not = n_assigned - len(u)
    u["seats"] = u["account_id"].map(seats).astype(float)

    lag = pd.Timedelta(days=int(renewal_lag_days))
    m = m.assign(ref=m["index_date"] + lag)
    cov2 = m[(m["start_date"] <= m["ref"]) & (m["end_date"] > m["ref"])]
    ren = cov2.groupby("account_id")["end_date"].min().rename("renewal_date")
    u = u.merge(ren, left_on="account_id", right_index=True, how="left")
    due = c.merge(u[["account_id", "renewal_date"]], left_on=["account_id", "end_date"],
                  right_on=["account_id", "renewal_date"])
    renewed = due.groupby("account_id")["renewed_by"].apply(lambda s: bool(s.notna().any()))
    u["renewed"] = u["account_id"].map(renewed)
    u["known"] = u["renewal_date"].notna() & (u["renewal_date"] < end)

    churn = account_churn_dates(source.frame("contracts"), end)
    cd = pd.to_datetime(u["account_id"].map(churn))
    event = cd.notna() & (cd > u["index_date"])
    u["E"] = event.astype(int)
    u["T"] = np.where(event, (cd - u["index_date"]).dt.days, (end - u["index_date"]).dt.days).astype(float)
    u = u[u["T"] > 0].reset_index(drop=True)
    return Units(u, randomised, arms, n_assigned, n_not, comparison)


def usage_change(source: Source, units: pd.DataFrame, metric: str, window_days: int) -> pd.DataFrame:
    """Per unit: before / after window means of the metric and their difference (NaN when too few days)."""
    import ibis

    raw = "active_users" if metric == "seat_utilisation" else metric
    if not source.has("usage"):
        raise EffectError("the source has no usage table")
    t = source.table("usage")
    metrics = set(t.select("metric").distinct().to_pandas()["metric"])
    if raw not in metrics:
        raise EffectError(f"usage metric {raw!r} is not in the usage table (metrics: {', '.join(sorted(metrics))})")
    w = pd.Timedelta(days=int(window_days))
    lo, hi = units["index_date"].min() - w, units["index_date"].max() + w
    ids = list(units["account_id"].unique())
    df = t.filter([t.metric == raw, t.account_id.isin(ids), t.date >= ibis.literal(lo.date()),
                   t.date < ibis.literal(hi.date())]).select("account_id", "date", "value").to_pandas()
    df["date"] = pd.to_datetime(df["date"])
    df = df.merge(units[["account_id", "index_date", "seats"]], on="account_id")
    if metric == "seat_utilisation":
        df["value"] = df["value"] / df["seats"].where(df["seats"] > 0)
    before = df[(df["date"] >= df["index_date"] - w) & (df["date"] < df["index_date"])]
    after = df[(df["date"] >= df["index_date"]) & (df["date"] < df["index_date"] + w)]
    b = before.groupby("account_id")["value"].agg(["mean", "size"])
    a = after.groupby("account_id")["value"].agg(["mean", "size"])
    out = units[["account_id"]].copy()
    out["before"] = out["account_id"].map(b["mean"])
    out["after"] = out["account_id"].map(a["mean"])
    enough = (out["account_id"].map(b["size"]).fillna(0) >= window_days / 3) & \
             (out["account_id"].map(a["size"]).fillna(0) >= window_days / 3)
    out["change"] = np.where(enough, out["after"] - out["before"], np.nan)
    return out


# ------------------------------------------------------------------------------------------------
# survival pieces
# ------------------------------------------------------------------------------------------------
def _cox_hr(T, E, treated, weights=None) -> dict:
    from lifelines import CoxPHFitter

    df = pd.DataFrame({"T": T, "E": E, "treated": treated.astype(float)})
    kw = {}
    if weights is not None:
        df["w"] = weights
        kw = {"weights_col": "w", "robust": True}
    if df["E"].sum() < 3:
        return {"hazard_ratio": None, "ci": [None, None], "note": "fewer than 3 churns"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cph = CoxPHFitter().fit(df, "T", "E", **kw)
    except Exception as e:  # noqa: BLE001 - e.g. no churn in one arm: no finite hazard ratio
        return {"hazard_ratio": None, "ci": [None, None], "note": f"Cox model not estimable: {e}"[:200]}
    s = cph.summary.loc["treated"]
    return {"hazard_ratio": _f(math.exp(s["coef"])), "ci": [_f(math.exp(s["coef lower 95%"])),
                                                           _f(math.exp(s["coef upper 95%"]))],
            "p_value": _f(s["p"], 8)}


def _km_at(T, E, t: float, w=None) -> float | None:
    from lifelines import KaplanMeierFitter

    if len(T) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # lifelines warns that weighted KM variances are naive; we use none
        km = KaplanMeierFitter().fit(T, E, weights=w)
    return _f(float(km.survival_function_at_times(t).iloc[0]))


# ------------------------------------------------------------------------------------------------
# propensity
# ------------------------------------------------------------------------------------------------
def _design(snap: pd.DataFrame) -> tuple[np.ndarray, list[str], pd.DataFrame]:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from csforecast.features.snapshot import feature_columns

    cols = [c for c in feature_columns(snap) if snap[c].notna().any()]
    num = [c for c in cols if pd.api.types.is_numeric_dtype(snap[c]) or pd.api.types.is_bool_dtype(snap[c])]
    cat = [c for c in cols if c not in num]
    Xn = snap[num].astype(float).replace([np.inf, -np.inf], np.nan)
    ct = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), num),
        ("cat", OneHotEncoder(handle_unknown="ignore", min_frequency=10), cat)])
    X = ct.fit_transform(pd.concat([Xn, snap[cat].astype(str)], axis=1))
    X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
    return X, num + cat, Xn


def _logit_fit(X: np.ndarray, y: np.ndarray, C: float, init=None):
    """L2 logistic regression; `init` (a fitted model) warm-starts the solver (bootstrap refits)."""
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(C=C, max_iter=2000, warm_start=init is not None)
    if init is not None:
        m.coef_, m.intercept_ = init.coef_.copy(), init.intercept_.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m.fit(X, y.astype(int))


def _propensity(X: np.ndarray, t: np.ndarray, C: float = 1.0, init=None) -> tuple[np.ndarray, object]:
    m = _logit_fit(X, t, C, init)
    return m.predict_proba(X)[:, 1], m


E_CLIP = (1e-6, 0.99)          # propensities are clipped here before weighting (caps a control's ATT weight)
C_GRID = (0.01, 0.1, 1.0)      # L2 strength of the propensity model, chosen by covariate balance


def _weights(e: np.ndarray, t: np.ndarray, kind: str) -> np.ndarray:
    e = np.clip(e, *E_CLIP)
    if kind == "att":
        return np.where(t, 1.0, e / (1 - e))
    if kind == "ate":
        return np.where(t, 1 / e, 1 / (1 - e))
    if kind == "overlap":
        return np.where(t, 1 - e, e)
    raise ValueError(f"unknown weighting {kind!r}: att, ate or overlap")


def _balance_score(Z: np.ndarray, t: np.ndarray, w: np.ndarray) -> float:
    """Mean |standardised mean difference| over the design columns after weighting (sd over all rows)."""
    sd = Z.std(axis=0)
    ok = sd > 1e-9
    m1 = np.average(Z[t], axis=0, weights=w[t])
    m0 = np.average(Z[~t], axis=0, weights=w[~t])
    return float(np.mean(np.abs((m1 - m0)[ok] / sd[ok])))


def _choose_c(X: np.ndarray, t: np.ndarray, kind: str) -> tuple[float, dict]:
    scores = {}
    for C in C_GRID:
        scores[C] = _balance_score(X, t, _weights(_propensity(X, t, C)[0], t, kind))
    best = min(scores, key=scores.get)
    return best, {str(k): round(v, 4) for k, v in scores.items()}


def _outcome_model(X: np.ndarray, y: np.ndarray, binary: bool, init=None) -> tuple[np.ndarray, object]:
    """Predictions for every row from a model fitted on the rows with finite y (the comparison group)."""
    from sklearn.linear_model import Ridge

    ok = np.isfinite(y)
    if binary:
        if len(np.unique(y[ok])) < 2:
            return np.full(len(y), float(np.nanmean(y))), None
        m = _logit_fit(X[ok], y[ok], 0.1, init)
        return m.predict_proba(X)[:, 1], m
    return Ridge(alpha=10.0).fit(X[ok], y[ok]).predict(X), None


def _dr_att(y: np.ndarray, t: np.ndarray, w: np.ndarray, X: np.ndarray, binary: bool, init=None
            ) -> tuple[float, object]:
    """Doubly robust ATT (augmented IPW): treated mean minus [outcome-model prediction for the treated plus the
    ATT-weighted residual of the comparison group]. Returns (estimate, fitted outcome model)."""
    ok = np.isfinite(y)
    if not (ok & t).any() or not (ok & ~t).any():
        return float("nan"), None
    yc = np.where(~t, y, np.nan)
    mu0, model = _outcome_model(X, yc, binary, init)
    c = ok & ~t
    resid = np.sum(w[c] * (y[c] - mu0[c])) / np.sum(w[c])
    return float(y[ok & t].mean() - (mu0[ok & t].mean() + resid)), model


def _wdiff(y: np.ndarray, t: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    ok = np.isfinite(y)
    y, t, w = y[ok], t[ok], w[ok]
    m1 = np.average(y[t], weights=w[t])
    m0 = np.average(y[~t], weights=w[~t])
    return m1 - m0, m1, m0


def _ess(w: np.ndarray) -> float:
    return float(w.sum() ** 2 / (w ** 2).sum()) if len(w) else 0.0


# ------------------------------------------------------------------------------------------------
# the analysis
# ------------------------------------------------------------------------------------------------
WEIGHTING_LABEL = {"att": "IPW for the treated (ATT odds weights e/(1-e))",
                   "ate": "IPW (ATE weights 1/e, 1/(1-e))",
                   "overlap": "overlap weights (ATO: 1-e for treated, e for controls)"}


def playbook_effect(source: Source, playbook: str, *, window_days: int = 90, usage_metric: str = "seat_utilisation",
                    renewal_lag_days: int = 0, weighting: str = "att", n_boot: int = 200, seed: int = 0,
                    with_truth: bool = True) -> dict:
    """The effect of `playbook` on renewal, usage and time to churn (see the module docstring)."""
    from threadpoolctl import threadpool_limits

    # the many small logistic fits are much faster on one BLAS thread (and do not crowd a shared machine)
    with threadpool_limits(limits=1, user_api="blas"):
        return _playbook_effect(source, playbook, window_days=window_days, usage_metric=usage_metric,
                                renewal_lag_days=renewal_lag_days, weighting=weighting, n_boot=n_boot, seed=seed,
                                with_truth=with_truth)


def _playbook_effect(source: Source, playbook: str, *, window_days: int, usage_metric: str, renewal_lag_days: int,
                     weighting: str, n_boot: int, seed: int, with_truth: bool) -> dict:
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
    if with_truth:
        t = _truth(source, playbook, out.pop("_units"), usage_metric, window_days, out)
        if t is not None:
            out["truth"] = t
    else:
        out.pop("_units", None)
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
    cox = _cox_hr(T, E, t)
    return {"n_treated": int(t.sum()), "n_control": int((~t).sum()), "churns_treated": int(E[t].sum()),
            "churns_control": int(E[~t].sum()), "logrank_p_value": _f(lr.p_value, 8),
            "logrank_statistic": _f(lr.test_statistic), "hazard_ratio": cox["hazard_ratio"], "ci": cox["ci"],
            "cox_p_value": cox.get("p_value"),
            "retained_365d_treated": _km_at(T[t], E[t], 365), "retained_365d_control": _km_at(T[~t], E[~t], 365),
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
    X, names, Xn = _design(snap)
    t = u["treated"].to_numpy(bool)
    C, c_scores = _choose_c(X, t, weighting)
    e, prop_model = _propensity(X, t, C)
    w = _weights(e, t, weighting)
    y_ren = np.where(u["known"], u["renewed"].astype(float), np.nan)
    y_use = u["usage_change"].to_numpy(float)
    has_use = bool(np.isfinite(y_use[t]).any() and np.isfinite(y_use[~t]).any())

    def estimates(Xb, tb, yr, yu, eb, init=None):
        wb, wo = _weights(eb, tb, weighting), _weights(eb, tb, "overlap")
        wa = _weights(eb, tb, "att")
        r, s = _wdiff(yr, tb, wb), (_wdiff(yu, tb, wb) if has_use else (np.nan,) * 3)
        rdr_, om = _dr_att(yr, tb, wa, Xb, True, init)
        return (r, s, _wdiff(yr, tb, wo)[0], _wdiff(yu, tb, wo)[0] if has_use else np.nan,
                rdr_, _dr_att(yu, tb, wa, Xb, False)[0] if has_use else np.nan, om)

    (r_d, r1, r0), (s_d, s1, s0), ro_d, so_d, rdr, sdr, out_model = estimates(X, t, y_ren, y_use, e)
    # bootstrap: resample treated and comparison accounts separately, refit the propensity each time
    rng = np.random.default_rng(seed)
    i1, i0 = np.nonzero(t)[0], np.nonzero(~t)[0]
    boots = []
    for _ in range(int(n_boot)):
        idx = np.concatenate([rng.choice(i1, len(i1)), rng.choice(i0, len(i0))])
        tb = t[idx]
        eb, _ = _propensity(X[idx], tb, C, prop_model)
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
    cox_w = _cox_hr(T, Ev, t, w)
    time = {"n_treated": int(t.sum()), "n_control": int((~t).sum()), "churns_treated": int(Ev[t].sum()),
            "churns_control": int(Ev[~t].sum()), "hazard_ratio": cox_w["hazard_ratio"], "ci": cox_w["ci"],
            "cox_p_value": cox_w.get("p_value"),
            "retained_365d_treated": _km_at(T[t], Ev[t], 365, w[t]),
            "retained_365d_control": _km_at(T[~t], Ev[~t], 365, w[~t]),
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
        "effective_control_n": _f(_ess(ct), 1), "control_n": int((~t).sum()),
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


def _truth(source: Source, playbook: str, u: pd.DataFrame, metric: str, window_days: int, out: dict) -> dict | None:
    from csforecast.experiments import truth_effects
    from csforecast.simulate.truth import load_truth

    truth = load_truth(source.location)
    if truth is None or playbook not in truth.playbook_effects():
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
