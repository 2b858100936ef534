"""The blend of the churn model with the CSM's call: a calibrated combination, per-CSM bias partially pooled.

Three steps, each small and each a documented figure (docs/metrics.md, "blend"):

1. **The call's probability** (``mean_p_call``): the historical churn rate of each call category (a Beta prior
   centred on the base rate, ``prior_strength`` pseudo-renewals, keeps a rare category finite).
2. **Each CSM's bias**: per CSM an offset ``delta`` on the call's log-odds, ``y ~ Bernoulli(sigmoid(logit(
   mean_p_call) + delta))``, with a Normal(0, tau^2) prior (a random intercept: partial pooling). tau^2 is
   estimated from the spread of the CSMs' own estimates beyond their sampling noise (method of moments,
   floored at ``min_tau``); each delta is the posterior mode by Newton steps and its interval comes from the
   posterior curvature (Laplace). ``bias = -delta``: positive when the CSM's calls imply more churn than
   happened (pessimistic), negative when less (optimistic).
3. **The blend**: a logistic regression of the outcome on the churn model's logit, the CSM-adjusted call
   log-odds and that log-odds times the call's closeness to the renewal (a call a month before the renewal
   knows more than one four months before), fitted on the later rows only (``sample_time >= blend_start``),
   so the weights are learned on model probabilities the churn model did not see in training.

Inputs (columns of X): ``model_logit`` (the churn model's log-odds), ``call_category``, ``call_csm_id`` and
``days_to_renewal``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from csforecast.data.contract import CALL_CATEGORIES

__all__ = ["CallBlend", "BLEND_INPUTS"]

BLEND_INPUTS = ("model_logit", "call_category", "call_csm_id", "days_to_renewal")
CALL_HORIZON_DAYS = 120.0
EPS = 1e-4


def _check_inputs(X: pd.DataFrame) -> None:
    missing = [c for c in BLEND_INPUTS if c not in X.columns]
    if missing:
        raise ValueError(f"CallBlend needs the columns {', '.join(missing)}")


class CallBlend(ClassifierMixin, BaseEstimator):
    """Calibrated combination of the churn model's logit with the CSM's call.

    Parameters
    ----------
    prior_strength : float
        Pseudo-renewals of the Beta prior of each call category's churn rate (centred on the base rate).
    min_tau : float
        Floor of the prior sd of the per-CSM offsets (some pooling, never none).
    max_tau : float
        Ceiling of that sd.
    C : float
        Inverse L2 strength of the blend's logistic regression.
    blend_start : datetime-like or None
        Rows with ``sample_time`` on or after it fit the blend's weights (step 3); all rows fit steps 1-2.
        None: every row fits every step.

    Attributes
    ----------
    category_rate_ : dict, the churn rate per call category (``mean_p_call``)
    base_rate_ : float
    tau_ : float, the prior sd of the per-CSM offsets
    csm_table_ : DataFrame, one row per CSM: ``csm_id``, ``n``, ``churn_rate``, ``mean_p_call``, ``bias``,
        ``bias_low``, ``bias_high`` (95 %), ``brier`` (of the CSM's calls as probabilities)
    coef_ : ndarray (model logit, call log-odds, call log-odds x closeness), intercept_ : float
    n_blend_rows_ : int
    """

    def __init__(self, *, prior_strength: float = 20.0, min_tau: float = 0.05, max_tau: float = 2.0,
                 C: float = 10.0, blend_start=None):
        self.prior_strength = prior_strength
        self.min_tau = min_tau
        self.max_tau = max_tau
        self.C = C
        self.blend_start = blend_start

    # -- steps ----------------------------------------------------------------------------------------
    def _category_rates(self, cat: np.ndarray, y: np.ndarray) -> dict:
        rates = {}
        for c in CALL_CATEGORIES:
            k = cat == c
            rates[c] = float((y[k].sum() + self.prior_strength * self.base_rate_) / (k.sum() + self.prior_strength))
        return rates

    def _csm_offsets(self, csm: np.ndarray, base: np.ndarray, y: np.ndarray) -> tuple[dict, dict, float]:
        """Per-CSM posterior mode of the offset, its posterior sd and tau (see the module docstring)."""
        ids = pd.unique(csm)
        raw, var = [], []
        for c in ids:
            k = csm == c
            d, info = self._mode(base[k], y[k], prior_var=np.inf)
            raw.append(d)
            var.append(1.0 / max(info, 1e-9))
        raw, var = np.array(raw), np.array(var)
        ok = np.isfinite(raw) & (var < 25)
        tau2 = float(np.var(raw[ok]) - np.mean(var[ok])) if ok.sum() >= 3 else 0.0
        tau = float(np.clip(np.sqrt(max(tau2, 0.0)), self.min_tau, self.max_tau))
        mode, sd = {}, {}
        for c in ids:
            k = csm == c
            d, info = self._mode(base[k], y[k], prior_var=tau * tau)
            mode[c], sd[c] = d, float(1.0 / np.sqrt(info))
        return mode, sd, tau

    @staticmethod
    def _mode(base: np.ndarray, y: np.ndarray, prior_var: float, steps: int = 25) -> tuple[float, float]:
        """Posterior mode of an offset d in logit p = base + d (prior N(0, prior_var); inf: the likelihood's
        mode, bounded to +-5) and the curvature (information) there."""
        d = 0.0
        prec = 0.0 if not np.isfinite(prior_var) else 1.0 / prior_var
        for _ in range(steps):
            p = expit(base + d)
            grad = float((y - p).sum()) - prec * d
            info = float((p * (1 - p)).sum()) + prec
            step = grad / max(info, 1e-9)
            d = float(np.clip(d + step, -5.0, 5.0))
            if abs(step) < 1e-8:
                break
        p = expit(base + d)
        return d, float((p * (1 - p)).sum()) + prec

    def _design(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The blend's design matrix and the call's (CSM-adjusted) probability per row."""
        cat = X["call_category"].astype(object).to_numpy()
        p_call = np.array([self.category_rate_.get(c, self.base_rate_) for c in cat], dtype=float)
        off = np.array([self.csm_offset_.get(c, 0.0) for c in X["call_csm_id"].astype(object).to_numpy()])
        call_logit = logit(np.clip(p_call, EPS, 1 - EPS)) + off
        close = 1.0 - np.clip(X["days_to_renewal"].to_numpy(float), 0.0, CALL_HORIZON_DAYS) / CALL_HORIZON_DAYS
        close = np.nan_to_num(close, nan=0.0)
        model_logit = np.nan_to_num(X["model_logit"].to_numpy(float), nan=logit(self.base_rate_))
        return np.column_stack([model_logit, call_logit, call_logit * close]), p_call

    # -- fit / predict --------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y, sample_time=None):
        """Fit the three steps on rows with a call (``call_category`` not missing). ``sample_time``: when each
        row was known (for ``blend_start``). ValueError without rows, without both outcomes, or when no row
        is on or after ``blend_start``."""
        _check_inputs(X)
        y = np.asarray(y, dtype=float)
        has = X["call_category"].notna().to_numpy()
        if not has.any():
            raise ValueError("no rows with a CSM call to fit the blend on")
        X, y = X[has], y[has]
        t = None if sample_time is None else pd.to_datetime(pd.Series(np.asarray(sample_time)[has]))
        if len(np.unique(y)) < 2:
            raise ValueError("the rows with a CSM call have a single outcome: the blend needs both")
        self.base_rate_ = float(y.mean())
        cat = X["call_category"].astype(object).to_numpy()
        self.category_rate_ = self._category_rates(cat, y)
        p_cat = np.array([self.category_rate_.get(c, self.base_rate_) for c in cat])
        base = logit(np.clip(p_cat, EPS, 1 - EPS))
        csm = X["call_csm_id"].astype(object).fillna("(none)").to_numpy()
        self.csm_offset_, sd, self.tau_ = self._csm_offsets(csm, base, y)
        rows = []
        for c in sorted(self.csm_offset_, key=str):
            k = csm == c
            d = self.csm_offset_[c]
            rows.append({"csm_id": str(c), "n": int(k.sum()), "churn_rate": float(y[k].mean()),
                         "mean_p_call": float(p_cat[k].mean()), "bias": -d, "bias_low": -d - 1.96 * sd[c],
                         "bias_high": -d + 1.96 * sd[c], "brier": float(np.mean((p_cat[k] - y[k]) ** 2))})
        self.csm_table_ = pd.DataFrame(rows)
        late = np.ones(len(y), dtype=bool)
        if self.blend_start is not None and t is not None:
            late = (t >= pd.Timestamp(self.blend_start)).to_numpy()
        if not late.any() or len(np.unique(y[late])) < 2:
            raise ValueError("no rows with both outcomes on or after blend_start to fit the blend's weights on")
        Z, _ = self._design(X)
        self.lr_ = LogisticRegression(C=self.C, max_iter=1000).fit(Z[late], y[late])
        self.coef_, self.intercept_ = self.lr_.coef_[0].copy(), float(self.lr_.intercept_[0])
        self.n_blend_rows_ = int(late.sum())
        self.classes_ = np.array([0, 1])
        self.feature_names_in_ = np.array(BLEND_INPUTS, dtype=object)
        return self

    def predict_components(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per row: ``p_model`` (the churn model's probability), ``p_call`` (the call category's churn rate,
        NaN without a call), ``p_blend`` (the blend; the model's probability where there is no call) and
        ``csm_bias`` (the CSM's bias, NaN for an unknown CSM or no call)."""
        check_is_fitted(self, "lr_")
        _check_inputs(X)
        has = X["call_category"].notna().to_numpy()
        p_model = expit(X["model_logit"].to_numpy(float))
        Z, p_call = self._design(X)
        p_blend = np.where(has, self.lr_.predict_proba(Z)[:, 1], p_model)
        bias = np.array([-self.csm_offset_[c] if c in self.csm_offset_ else np.nan
                         for c in X["call_csm_id"].astype(object).to_numpy()])
        return pd.DataFrame({"p_model": p_model, "p_call": np.where(has, p_call, np.nan), "p_blend": p_blend,
                             "csm_bias": np.where(has, bias, np.nan)}, index=X.index)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.predict_components(X)["p_blend"].to_numpy(float)
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags
