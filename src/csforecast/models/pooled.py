"""Pooled churn models: the small-book fallbacks of the churn family (docs/operations.md).

A book with few renewal decisions cannot support ``ChurnClassifier``'s three time slices and dozens of
features. These two estimators use what such a book can support, and serve like any churn model
(``predict_proba``, ``explain`` summing to the logit of the prediction, so drivers still work):

* :class:`PooledChurnModel` - each segment's churn rate at renewal, shrunk toward the portfolio's rate;
* :class:`RetentionChurnModel` - the shifted-beta-geometric cohort retention (``models/sbg.py``) by renewal
  number, for sources with contracts and no activity tables.

Both count renewal *decisions*, not snapshot rows: rows of one decision (``decisions=``, e.g. the contract
id) count once.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import logit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from csforecast.models.sbg import ShiftedBetaGeometric
from csforecast.models.tabular import as_str, dataframe_input_tags

__all__ = ["PooledChurnModel", "RetentionChurnModel"]


def _decision_table(X: pd.DataFrame, y, decisions, cols: list[str]) -> pd.DataFrame:
    """One row per decision: its ``cols`` (first row's values) and ``y`` (churned if any of its rows says so)."""
    y = np.asarray(y, dtype=float)
    if len(y) != len(X):
        raise ValueError(f"y has {len(y)} values for {len(X)} rows of X")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y must be 0/1 (churned at the renewal)")
    df = X[cols].reset_index(drop=True).copy()
    df["_y"] = y
    if decisions is None:
        return df
    ids = np.asarray(decisions)
    if len(ids) != len(X):
        raise ValueError(f"decisions has {len(ids)} values for {len(X)} rows of X")
    df["_d"] = ids
    out = df.groupby("_d", sort=False).agg({**{c: "first" for c in cols}, "_y": "max"})
    return out.reset_index(drop=True)


class _LogitExplained(ClassifierMixin, BaseEstimator):
    """Shared serving protocol: ``predict_proba`` from ``_proba`` and an ``explain`` whose contributions sum
    to the logit of the prediction (base value: the portfolio rate's logit)."""

    def __sklearn_tags__(self):
        tags = dataframe_input_tags(super().__sklearn_tags__())
        tags.classifier_tags.multi_class = False
        return tags

    def _check_X(self, X) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise ValueError("X must be a pandas DataFrame")
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise ValueError(f"X is missing training columns: {missing}")
        return X

    def predict_proba(self, X) -> np.ndarray:
        """[P(renew), P(churn)] at the next renewal, shape (n, 2)."""
        check_is_fitted(self)
        p = self._proba(self._check_X(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        """1 where P(churn) >= 0.5, else 0."""
        check_is_fitted(self)
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def explain(self, X) -> pd.DataFrame:
        """Per-column contributions to the churn log-odds and ``base_value`` (the portfolio rate's logit):
        ``contributions.sum(axis=1) + base_value == logit(predict_proba(X)[:, 1])``. The one column the model
        reads carries the whole difference from the portfolio rate."""
        check_is_fitted(self)
        X = self._check_X(X)
        z = logit(self._proba(X))
        out = pd.DataFrame({c: 0.0 for c in self.feature_names_in_}, index=X.index)
        base = float(logit(self.base_rate_))
        if len(self.feature_names_in_):
            out[self.feature_names_in_[0]] = z - base
        out["base_value"] = base
        return out


class PooledChurnModel(_LogitExplained):
    """Churn at the next renewal from each segment's rate, shrunk toward the portfolio's rate.

    With ``n_g`` renewal decisions and ``k_g`` churns in level ``g`` of ``group``, and the portfolio rate
    ``p0 = (k + 0.5) / (n + 1)`` (a Jeffreys estimate, never 0 or 1), the level's rate is the beta-binomial
    posterior mean with ``prior_strength`` pseudo-decisions at ``p0``::

        p_g = (k_g + m * p0) / (n_g + m)

    so a level with few decisions stays near the portfolio rate and a large one near its own rate. Unseen or
    missing levels get ``p0``.

    Parameters
    ----------
    group : str or None, default "segment"
        The column whose levels get their own rate; None: the portfolio rate for every row.
    prior_strength : float, default 20.0
        ``m`` above, in renewal decisions.

    Attributes
    ----------
    feature_names_in_ : ndarray  (``[group]``, or empty)
    n_features_in_ : int
    base_rate_ : float           ``p0``
    rates_ : dict                level -> ``p_g``
    counts_ : dict               level -> (decisions, churns)
    n_decisions_, n_churns_ : int
    fallback_ : str              what this model is, in words (the served model's ``fallback`` flag)
    """

    def __init__(self, *, group: str | None = "segment", prior_strength: float = 20.0):
        self.group = group
        self.prior_strength = prior_strength

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "rates_")

    def __sklearn_tags__(self):
        return super().__sklearn_tags__()

    def fit(self, X: pd.DataFrame, y, *, decisions=None) -> "PooledChurnModel":
        """``X`` holds ``group``; ``y`` 0/1 churned at the renewal; ``decisions`` the decision of each row
        (rows of one decision count once; default: every row is a decision)."""
        if self.prior_strength < 0:
            raise ValueError("prior_strength must be >= 0")
        cols = [self.group] if self.group else []
        if not isinstance(X, pd.DataFrame) or any(c not in X.columns for c in cols):
            raise ValueError(f"X must be a DataFrame with the column {self.group!r}")
        d = _decision_table(X, y, decisions, cols)
        n, k = len(d), float(d["_y"].sum())
        if n == 0:
            raise ValueError("no renewal decisions to fit")
        p0 = (k + 0.5) / (n + 1.0)
        rates, counts = {}, {}
        if self.group:
            levels = as_str(d[self.group])
            for g, sub in d.groupby(levels, dropna=True):
                ng, kg = len(sub), float(sub["_y"].sum())
                rates[str(g)] = float((kg + self.prior_strength * p0) / (ng + self.prior_strength))
                counts[str(g)] = (int(ng), int(kg))
        self.feature_names_in_ = np.array(cols, dtype=object)
        self.n_features_in_ = len(cols)
        self.classes_ = np.array([0, 1])
        self.base_rate_ = float(p0)
        self.counts_ = counts
        self.n_decisions_, self.n_churns_ = int(n), int(k)
        self.fallback_ = (f"pooled churn rates by {self.group}, shrunk toward the portfolio rate"
                          if self.group else "the portfolio churn rate")
        self.rates_ = rates
        return self

    def _proba(self, X: pd.DataFrame) -> np.ndarray:
        if not self.group:
            return np.full(len(X), self.base_rate_)
        v = as_str(X[self.group])
        return v.map(self.rates_).astype(float).fillna(self.base_rate_).to_numpy()


class RetentionChurnModel(_LogitExplained):
    """Churn at the next renewal from the shifted-beta-geometric cohort retention by renewal number.

    The upcoming renewal of a row is renewal number ``t = renewals_so_far + 1``; the sBG model
    (:class:`csforecast.models.ShiftedBetaGeometric`, fitted on the renewal decisions with
    ``fit_decisions``) gives ``P(churn at t | renewed t - 1 times) = 1 - r(t) = alpha / (alpha + beta + t - 1)``:
    churn falls with every renewal because the customers likeliest to leave leave first. Needs only
    contracts. ``base_rate_`` is the mean fitted probability over the training decisions.

    Parameters
    ----------
    column : str, default "renewals_so_far"
        The column with the renewals made before the upcoming one (missing counts as 0).

    Attributes
    ----------
    feature_names_in_, n_features_in_, base_rate_, n_decisions_, n_churns_, fallback_ : as PooledChurnModel
    sbg_ : ShiftedBetaGeometric   the fitted cohort model
    """

    def __init__(self, *, column: str = "renewals_so_far"):
        self.column = column

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "sbg_")

    def __sklearn_tags__(self):
        return super().__sklearn_tags__()

    def fit(self, X: pd.DataFrame, y, *, decisions=None) -> "RetentionChurnModel":
        """``X`` holds ``column``; ``y`` 0/1 churned at the renewal; ``decisions`` as PooledChurnModel.
        ValueError when no decision churned (the sBG likelihood has no maximum)."""
        if not isinstance(X, pd.DataFrame) or self.column not in X.columns:
            raise ValueError(f"X must be a DataFrame with the column {self.column!r}")
        d = _decision_table(X, y, decisions, [self.column])
        t = self._period(d)
        self.sbg_ = ShiftedBetaGeometric().fit_decisions(t, d["_y"].to_numpy())
        self.feature_names_in_ = np.array([self.column], dtype=object)
        self.n_features_in_ = 1
        self.classes_ = np.array([0, 1])
        self.n_decisions_, self.n_churns_ = int(len(d)), int(d["_y"].sum())
        self.base_rate_ = float(np.mean(1.0 - self.sbg_.retention_rate(t)))
        self.fallback_ = "sBG cohort retention by renewal number"
        return self

    def _period(self, X: pd.DataFrame) -> np.ndarray:
        done = pd.to_numeric(X[self.column], errors="coerce").fillna(0.0).clip(lower=0.0)
        return np.floor(done.to_numpy(dtype=float)) + 1.0

    def _proba(self, X: pd.DataFrame) -> np.ndarray:
        if len(X) == 0:
            return np.empty(0)
        return np.clip(1.0 - np.asarray(self.sbg_.retention_rate(self._period(X)), dtype=float), 1e-6, 1 - 1e-6)
