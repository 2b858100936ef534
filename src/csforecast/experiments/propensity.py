"""The propensity model of the observational playbook analysis: the design matrix of pre-assignment snapshot
features, L2 logistic propensity scores (strength chosen by covariate balance), IPW / overlap weights, the
outcome model and the doubly robust ATT."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

__all__ = ["E_CLIP", "C_GRID", "design_matrix", "logit_fit", "propensity", "ipw_weights", "balance_score",
           "choose_c", "outcome_model", "dr_att", "weighted_diff", "effective_n"]

def design_matrix(snap: pd.DataFrame) -> tuple[np.ndarray, list[str], pd.DataFrame]:
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


def logit_fit(X: np.ndarray, y: np.ndarray, C: float, init=None):
    """L2 logistic regression; `init` (a fitted model) warm-starts the solver (bootstrap refits)."""
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(C=C, max_iter=2000, warm_start=init is not None)
    if init is not None:
        m.coef_, m.intercept_ = init.coef_.copy(), init.intercept_.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m.fit(X, y.astype(int))


def propensity(X: np.ndarray, t: np.ndarray, C: float = 1.0, init=None) -> tuple[np.ndarray, object]:
    m = logit_fit(X, t, C, init)
    return m.predict_proba(X)[:, 1], m


E_CLIP = (1e-6, 0.99)          # propensities are clipped here before weighting (caps a control's ATT weight)
C_GRID = (0.01, 0.1, 1.0)      # L2 strength of the propensity model, chosen by covariate balance


def ipw_weights(e: np.ndarray, t: np.ndarray, kind: str) -> np.ndarray:
    e = np.clip(e, *E_CLIP)
    if kind == "att":
        return np.where(t, 1.0, e / (1 - e))
    if kind == "ate":
        return np.where(t, 1 / e, 1 / (1 - e))
    if kind == "overlap":
        return np.where(t, 1 - e, e)
    raise ValueError(f"unknown weighting {kind!r}: att, ate or overlap")


def balance_score(Z: np.ndarray, t: np.ndarray, w: np.ndarray) -> float:
    """Mean |standardised mean difference| over the design columns after weighting (sd over all rows)."""
    sd = Z.std(axis=0)
    ok = sd > 1e-9
    m1 = np.average(Z[t], axis=0, weights=w[t])
    m0 = np.average(Z[~t], axis=0, weights=w[~t])
    return float(np.mean(np.abs((m1 - m0)[ok] / sd[ok])))


def choose_c(X: np.ndarray, t: np.ndarray, kind: str) -> tuple[float, dict]:
    scores = {}
    for C in C_GRID:
        scores[C] = balance_score(X, t, ipw_weights(propensity(X, t, C)[0], t, kind))
    best = min(scores, key=scores.get)
    return best, {str(k): round(v, 4) for k, v in scores.items()}


def outcome_model(X: np.ndarray, y: np.ndarray, binary: bool, init=None) -> tuple[np.ndarray, object]:
    """Predictions for every row from a model fitted on the rows with finite y (the comparison group)."""
    from sklearn.linear_model import Ridge

    ok = np.isfinite(y)
    if binary:
        if len(np.unique(y[ok])) < 2:
            return np.full(len(y), float(np.nanmean(y))), None
        m = logit_fit(X[ok], y[ok], 0.1, init)
        return m.predict_proba(X)[:, 1], m
    return Ridge(alpha=10.0).fit(X[ok], y[ok]).predict(X), None


def dr_att(y: np.ndarray, t: np.ndarray, w: np.ndarray, X: np.ndarray, binary: bool, init=None
            ) -> tuple[float, object]:
    """Doubly robust ATT (augmented IPW): treated mean minus [outcome-model prediction for the treated plus the
    ATT-weighted residual of the comparison group]. Returns (estimate, fitted outcome model)."""
    ok = np.isfinite(y)
    if not (ok & t).any() or not (ok & ~t).any():
        return float("nan"), None
    yc = np.where(~t, y, np.nan)
    mu0, model = outcome_model(X, yc, binary, init)
    c = ok & ~t
    resid = np.sum(w[c] * (y[c] - mu0[c])) / np.sum(w[c])
    return float(y[ok & t].mean() - (mu0[ok & t].mean() + resid)), model


def weighted_diff(y: np.ndarray, t: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    ok = np.isfinite(y)
    y, t, w = y[ok], t[ok], w[ok]
    m1 = np.average(y[t], weights=w[t])
    m0 = np.average(y[~t], weights=w[~t])
    return m1 - m0, m1, m0


def effective_n(w: np.ndarray) -> float:
    return float(w.sum() ** 2 / (w ** 2).sum()) if len(w) else 0.0
