"""ARR change at renewal, given that the renewal happens (the "expansion model").

Target: ``log(successor ARR / ARR due)`` (= ``log1p(label_arr_change)``) on snapshot rows of *renewed*
decisions. A LightGBM regressor (small trees, early stopping on the latest quarter of renewal dates, then
refitted on all rows with the chosen number of rounds) gives the mean log ratio ``mu(x)``; the residual
distribution is the empirical set of out-of-sample residuals on that latest slice (the holdout, scored by
the model fitted without it). For a renewal with features x:

    ratio = exp(mu(x) + e),  e ~ the empirical residuals
    E[ratio]   = exp(mu(x)) * mean(exp(e))                  (exact under the empirical residual law)
    Var[ratio] = exp(2 mu(x)) * var(exp(e))

With too few renewed rows (< ``min_rows``) the model is a constant: the mean log ratio, same residual law.
"""
from __future__ import annotations

import inspect
import warnings

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from csforecast.models.tabular import dataframe_input_tags

__all__ = ["ExpansionModel"]

CLIP = (-3.0, 3.0)          # log ratios beyond x20 / x0.05 are data errors for this purpose


class ExpansionModel(RegressorMixin, BaseEstimator):
    """Mean and spread of successor ARR / ARR due for renewed decisions.

    ``fit(X, arr_change, sample_time)`` learns ``log(1 + arr_change)``; :meth:`predict` answers the expected
    ARR change ``E[ratio] - 1`` (the target's scale), :meth:`expected_ratio` / :meth:`ratio_moments` the
    ratio's mean and variance under the empirical residual law. Columns missing at predict time are treated
    as missing values (the model was fitted with them possibly missing too). Single-threaded (fast on the few
    thousand rows it sees; threads contend on small data).

    Parameters
    ----------
    min_rows : int
        Fewer renewed rows than this -> the constant model.
    holdout_fraction : float
        Latest share of renewal dates used for early stopping and the residual law.
    n_estimators, learning_rate, num_leaves, min_child_samples, random_state :
        LightGBM settings (``n_estimators`` is the maximum number of rounds).

    Attributes
    ----------
    kind_ : str
        ``"lightgbm"``, ``"constant"`` or ``"none (no renewed decisions: ratio 1)"``.
    model_ : LGBMRegressor or None
    constant_ : float
        Mean training log ratio (the constant model's prediction).
    residuals_ : ndarray
        The residual law: out-of-sample log-ratio residuals (or the training residuals of the constant).
    mean_exp_resid_, var_exp_resid_, residual_sd_ : float
        Mean and variance of ``exp(residual)``, sd of the residuals.
    feature_names_in_ : ndarray of str
        Training columns (``features_`` is the same list). ``n_features_in_`` their number.
    n_rows_, best_iteration_ : int
    categories_ : dict
        Categorical column -> levels seen in training.
    """

    def __init__(self, *, min_rows: int = 200, holdout_fraction: float = 0.25, n_estimators: int = 400,
                 learning_rate: float = 0.05, num_leaves: int = 7, min_child_samples: int = 40,
                 random_state: int = 0):
        self.min_rows = min_rows
        self.holdout_fraction = holdout_fraction
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.random_state = random_state

    # ------------------------------------------------------------------ encoding
    def _encode(self, X: pd.DataFrame) -> pd.DataFrame:
        data = {}
        for col in self.features_:
            s = X[col] if col in X.columns else pd.Series(np.nan, index=X.index)
            if col in self.categories_:
                v = s.astype(object).where(s.notna(), None)
                v = v.map(lambda x: None if x is None else str(x))
                data[col] = pd.Categorical(v.to_numpy(), categories=self.categories_[col])
            elif ptypes.is_datetime64_any_dtype(s):
                data[col] = ((s - pd.Timestamp(0)) / pd.Timedelta(days=1)).to_numpy(dtype=float, na_value=np.nan)
            else:
                data[col] = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        return pd.DataFrame(data, index=X.index)

    def _lgbm(self, n: int):
        from lightgbm import LGBMRegressor

        return LGBMRegressor(n_estimators=n, learning_rate=self.learning_rate, num_leaves=self.num_leaves,
                             min_child_samples=self.min_child_samples, subsample=0.8, subsample_freq=1,
                             colsample_bytree=0.8, reg_lambda=1.0, n_jobs=1, random_state=self.random_state,
                             verbose=-1)

    # ------------------------------------------------------------------ fit
    def fit(self, X: pd.DataFrame, arr_change, sample_time=None) -> "ExpansionModel":
        """X: feature frame; arr_change: successor ARR / ARR due - 1 (NaN rows are dropped);
        sample_time: renewal dates (the holdout is the latest ``holdout_fraction`` of them)."""
        y = np.log1p(pd.to_numeric(pd.Series(np.asarray(arr_change, dtype=float)), errors="coerce").to_numpy())
        ok = np.isfinite(y)
        X = X.reset_index(drop=True).loc[ok].reset_index(drop=True)
        y = np.clip(y[ok], *CLIP)
        t = (pd.to_datetime(pd.Series(np.asarray(sample_time))).reset_index(drop=True)[ok].reset_index(drop=True)
             if sample_time is not None else pd.Series(np.arange(len(y))))
        self.features_ = list(X.columns)
        self.feature_names_in_ = np.asarray(self.features_, dtype=object)
        self.n_features_in_ = len(self.features_)
        self.categories_ = {c: sorted(X[c].dropna().astype(str).unique().tolist())
                            for c in X.columns
                            if not (ptypes.is_numeric_dtype(X[c]) or ptypes.is_datetime64_any_dtype(X[c])
                                    or ptypes.is_bool_dtype(X[c]))}
        self.n_rows_ = int(len(y))
        self.model_ = None
        self.best_iteration_ = 0
        if len(y) == 0:
            self.constant_, self.residuals_ = 0.0, np.zeros(1)
            self.kind_ = "none (no renewed decisions: ratio 1)"
            return self._finish()
        self.constant_ = float(np.mean(y))
        if len(y) < self.min_rows:
            self.residuals_ = y - self.constant_
            self.kind_ = "constant"
            return self._finish()
        order = np.argsort(t.to_numpy(), kind="stable")
        cut = t.iloc[order[int(len(y) * (1 - self.holdout_fraction))]]
        hold = (t >= cut).to_numpy()
        if hold.sum() < 30 or (~hold).sum() < 30:
            hold = np.zeros(len(y), dtype=bool)
            hold[order[int(len(y) * (1 - self.holdout_fraction)):]] = True
        Xe = self._encode(X)
        import lightgbm

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = self._lgbm(self.n_estimators)
            if "eval_X" in inspect.signature(m.fit).parameters:     # lightgbm >= 4.7
                evals = {"eval_X": (Xe[hold],), "eval_y": (y[hold],)}
            else:
                evals = {"eval_set": [(Xe[hold], y[hold])]}
            m.fit(Xe[~hold], y[~hold], callbacks=[lightgbm.early_stopping(30, verbose=False)], **evals)
            best = max(1, int(m.best_iteration_ or self.n_estimators))
            self.residuals_ = y[hold] - m.predict(Xe[hold], num_iteration=best)
            self.model_ = self._lgbm(best).fit(Xe, y)
        self.best_iteration_ = best
        self.kind_ = "lightgbm"
        return self._finish()

    def _finish(self) -> "ExpansionModel":
        r = np.asarray(self.residuals_, dtype=float)
        self.residuals_ = r
        er = np.exp(r)
        self.mean_exp_resid_ = float(er.mean())
        self.var_exp_resid_ = float(er.var())
        self.residual_sd_ = float(r.std())
        return self

    # ------------------------------------------------------------------ sklearn protocol
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "mean_exp_resid_")

    def __sklearn_tags__(self):
        return dataframe_input_tags(super().__sklearn_tags__())

    # ------------------------------------------------------------------ predict
    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Expected ARR change at renewal, ``E[successor ARR / ARR due | renewed, x] - 1``."""
        check_is_fitted(self)
        return self.expected_ratio(X) - 1.0

    def predict_log_ratio(self, X: pd.DataFrame) -> np.ndarray:
        """mu(x): the model's mean log(successor ARR / ARR due)."""
        check_is_fitted(self)
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"X must be a pandas DataFrame, got {type(X).__name__}")
        if self.model_ is None:
            return np.full(len(X), self.constant_)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(self.model_.predict(self._encode(X)), dtype=float)

    def expected_ratio(self, X: pd.DataFrame) -> np.ndarray:
        """E[successor ARR / ARR due | renewed, x]."""
        check_is_fitted(self)
        return np.exp(self.predict_log_ratio(X)) * self.mean_exp_resid_

    def ratio_moments(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(E[ratio], Var[ratio]) per row, under the empirical residual law."""
        check_is_fitted(self)
        e = np.exp(self.predict_log_ratio(X))
        return e * self.mean_exp_resid_, e * e * self.var_exp_resid_

    def split_moments(self, X: pd.DataFrame, max_residuals: int = 400
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The ARR change given renewal split into contraction ``c = max(0, 1 - ratio)`` and expansion
        ``e = max(0, ratio - 1)`` (per unit of ARR due): (E[c], Var[c], E[e], Var[e]) per row under the
        empirical residual law (at most ``max_residuals`` evenly spaced quantiles of it). E[e] - E[c] =
        E[ratio] - 1 up to that discretisation; P(contraction) = P(ratio < 1) is :meth:`split_probabilities`."""
        check_is_fitted(self)
        mu = self.predict_log_ratio(X)
        e = self._residual_grid(max_residuals)
        r = np.exp(mu[:, None] + e[None, :])
        c_, x_ = np.maximum(1.0 - r, 0.0), np.maximum(r - 1.0, 0.0)
        return c_.mean(axis=1), c_.var(axis=1), x_.mean(axis=1), x_.var(axis=1)

    def split_probabilities(self, X: pd.DataFrame, max_residuals: int = 400) -> tuple[np.ndarray, np.ndarray]:
        """(P(ratio < 1), P(ratio > 1)) per row given renewal: the chance of contraction and of expansion."""
        check_is_fitted(self)
        mu = self.predict_log_ratio(X)
        e = self._residual_grid(max_residuals)
        z = mu[:, None] + e[None, :]
        return (z < 0).mean(axis=1), (z > 0).mean(axis=1)

    def _residual_grid(self, k: int) -> np.ndarray:
        r = np.asarray(self.residuals_, dtype=float)
        if len(r) <= k:
            return r
        return np.quantile(r, (np.arange(k) + 0.5) / k)

    def summary(self) -> dict:
        """Kind, rows, boosting rounds and residual spread (JSON-safe)."""
        check_is_fitted(self)
        return {"kind": self.kind_, "n_rows": self.n_rows_, "rounds": self.best_iteration_,
                "residual_sd_log": round(self.residual_sd_, 6),
                "n_residuals": int(len(self.residuals_))}
