"""ARR change at renewal, given that the renewal happens (the "expansion model").

Target: ``log(successor ARR / ARR due)`` (= ``log1p(label_arr_change)``) on snapshot rows of *renewed*
decisions. Two candidates give the mean log ratio ``mu(x)``, both fitted on all but the latest quarter of
renewal dates (the holdout) and scored there: a ridge regression (the design of every linear candidate,
:func:`csforecast.models.tabular.linear_inputs`; its penalty chosen on the holdout) and a LightGBM regressor
(small trees, early stopping on the holdout; below ``bag_below_rows`` rows, the mean of a bag of them). The
ridge is kept unless LightGBM's squared error on the holdout is lower by more than one standard error of the
paired difference, clustered by renewal date (:func:`csforecast.models.choice.one_se_choice`): a few hundred
renewals cannot tell the two apart within that noise, and the trees then move with cent-level changes of their
inputs (benchmarks/RESULTS.md, "expansion model"). The chosen candidate is refitted on all rows; the residual
distribution is the empirical set of its out-of-sample residuals on the holdout (scored by the model fitted
without it). For a renewal with features x:

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
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from csforecast.models.choice import one_se_choice
from csforecast.models.tabular import dataframe_input_tags, linear_frame, linear_inputs

__all__ = ["ExpansionModel"]

ALGORITHMS = ("auto", "ridge", "lightgbm")
CLIP = (-3.0, 3.0)          # log ratios beyond x20 / x0.05 are data errors for this purpose
PREFERRED = "ridge"         # kept unless LightGBM beats it by more than one standard error on the holdout


class ExpansionModel(RegressorMixin, BaseEstimator):
    """Mean and spread of successor ARR / ARR due for renewed decisions.

    ``fit(X, arr_change, sample_time)`` learns ``log(1 + arr_change)``; :meth:`predict` answers the expected
    ARR change ``E[ratio] - 1`` (the target's scale), :meth:`expected_ratio` / :meth:`ratio_moments` the
    ratio's mean and variance under the empirical residual law. Columns missing at predict time are treated
    as missing values (the model was fitted with them possibly missing too). Single-threaded (fast on the few
    thousand rows it sees; threads contend on small data).

    Parameters
    ----------
    algorithm : {"auto", "ridge", "lightgbm"}
        ``"auto"`` chooses between the two candidates by the one-standard-error rule; the others force one.
    alphas : tuple of float
        Ridge penalties tried (the one with the lowest holdout squared error is used).
    n_bags : int
        LightGBM models averaged (seeds ``random_state + k``, each early-stopped on the holdout) when there are
        fewer than ``bag_below_rows`` rows: one boosted model on a few hundred renewals moves with cent-level
        changes of its inputs, a bag of them much less.
    bag_below_rows : int
        From this many rows on, one LightGBM model: its spread across seeds is then already small (a tenth of
        that on 400 rows, benchmarks/RESULTS.md "expansion model"), and a bag would cost five fits.
    min_rows : int
        Fewer renewed rows than this -> the constant model.
    holdout_fraction : float
        Latest share of renewal dates used for the choice, the ridge penalty, early stopping and the residual law.
    n_estimators, learning_rate, num_leaves, min_child_samples, random_state :
        LightGBM settings (``n_estimators`` is the maximum number of rounds).

    Attributes
    ----------
    kind_ : str
        ``"ridge"``, ``"lightgbm"``, ``"constant"`` or ``"none (no renewed decisions: ratio 1)"``.
    model_ : Pipeline (ridge), list of LGBMRegressor (the bag) or None
    alpha_ : float or None
        The ridge penalty chosen on the holdout.
    candidate_scores_ : dict
        Candidate -> mean squared log-ratio error on the holdout (the candidate fitted without it).
    choice_margin_ : dict
        When LightGBM scored best: ``best``, ``difference`` (the ridge's holdout error minus LightGBM's) and ``se``
        (clustered by renewal date); LightGBM is kept only if ``difference > se``. Empty otherwise.
    constant_ : float
        Mean training log ratio (the constant model's prediction).
    residuals_ : ndarray
        The residual law: out-of-sample log-ratio residuals (or the training residuals of the constant).
    mean_exp_resid_, var_exp_resid_, residual_sd_ : float
        Mean and variance of ``exp(residual)``, sd of the residuals.
    feature_names_in_ : ndarray of str
        Training columns (``features_`` is the same list). ``n_features_in_`` their number.
    n_rows_ : int
    best_iteration_ : int
        The median of the LightGBM bag's numbers of rounds (0 without the LightGBM candidate).
    categories_ : dict
        Categorical column -> levels seen in training.
    """

    def __init__(self, *, algorithm: str = "auto", alphas: tuple = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5),
                 n_bags: int = 5, bag_below_rows: int = 2000, min_rows: int = 200, holdout_fraction: float = 0.25,
                 n_estimators: int = 400, learning_rate: float = 0.05, num_leaves: int = 7,
                 min_child_samples: int = 40, random_state: int = 0):
        self.algorithm = algorithm
        self.alphas = alphas
        self.n_bags = n_bags
        self.bag_below_rows = bag_below_rows
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

    def _design(self):
        return linear_inputs([c for c in self.features_ if c not in self.categories_], list(self.categories_))

    def _lgbm(self, n: int, member: int = 0):
        from lightgbm import LGBMRegressor

        return LGBMRegressor(n_estimators=n, learning_rate=self.learning_rate, num_leaves=self.num_leaves,
                             min_child_samples=self.min_child_samples, subsample=0.8, subsample_freq=1,
                             colsample_bytree=0.8, reg_lambda=1.0, n_jobs=1,
                             random_state=self.random_state + member, verbose=-1)

    # ------------------------------------------------------------------ fit
    def fit(self, X: pd.DataFrame, arr_change, sample_time=None) -> "ExpansionModel":
        """X: feature frame; arr_change: successor ARR / ARR due - 1 (NaN rows are dropped);
        sample_time: renewal dates (the holdout is the latest ``holdout_fraction`` of them)."""
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        # a renewal to no ARR (change -1) has no log ratio: it is left out (churn in all but name), quietly
        with np.errstate(divide="ignore", invalid="ignore"):
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
        self.model_ = self.alpha_ = None
        self.best_iteration_ = 0
        self.candidate_scores_, self.choice_margin_ = {}, {}
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
        Xl = linear_frame(Xe)
        residuals, refit = {}, {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.algorithm in ("auto", "ridge"):
                # the design is fitted once, on the rows before the holdout, and kept for the refit (its
                # quantiles and levels from three quarters of the rows); only the regression sees every row
                prep = self._design().fit(Xl[~hold])
                Z = prep.transform(Xl)
                errors = {a: y[hold] - Ridge(alpha=a).fit(Z[~hold], y[~hold]).predict(Z[hold]) for a in self.alphas}
                self.alpha_ = float(min(errors, key=lambda a: float(np.mean(errors[a] ** 2))))
                residuals["ridge"] = errors[self.alpha_]
                refit["ridge"] = lambda: Pipeline([("prep", prep), ("ridge", Ridge(alpha=self.alpha_).fit(Z, y))])
            if self.algorithm in ("auto", "lightgbm"):
                rounds, residuals["lightgbm"] = self._early_stopped(Xe, y, hold)
                refit["lightgbm"] = lambda: [self._lgbm(n, member).fit(Xe, y) for member, n in enumerate(rounds)]
                self.best_iteration_ = int(np.median(rounds))
        self.candidate_scores_ = {k: float(np.mean(r ** 2)) for k, r in residuals.items()}
        self.kind_, self.choice_margin_ = one_se_choice(
            self.candidate_scores_, {k: r ** 2 for k, r in residuals.items()}, t[hold].to_numpy(),
            preferred=PREFERRED, held=("lightgbm",))
        self.residuals_ = residuals[self.kind_]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model_ = refit[self.kind_]()
        return self._finish()

    def _early_stopped(self, Xe: pd.DataFrame, y: np.ndarray, hold: np.ndarray) -> tuple[list[int], np.ndarray]:
        """The bag's numbers of rounds, each member early-stopped on the holdout, and the residuals of the bag's
        mean there."""
        import lightgbm

        rounds, predicted = [], []
        for member in range(self.n_bags if len(y) < self.bag_below_rows else 1):
            m = self._lgbm(self.n_estimators, member)
            if "eval_X" in inspect.signature(m.fit).parameters:     # lightgbm >= 4.7
                evals = {"eval_X": (Xe[hold],), "eval_y": (y[hold],)}
            else:
                evals = {"eval_set": [(Xe[hold], y[hold])]}
            m.fit(Xe[~hold], y[~hold], callbacks=[lightgbm.early_stopping(30, verbose=False)], **evals)
            rounds.append(max(1, int(m.best_iteration_ or self.n_estimators)))
            predicted.append(m.predict(Xe[hold], num_iteration=rounds[-1]))
        return rounds, y[hold] - np.mean(predicted, axis=0)

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
        Xe = self._encode(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.kind_ == "ridge":
                return np.asarray(self.model_.predict(linear_frame(Xe)), dtype=float)
            return np.mean([m.predict(Xe) for m in self.model_], axis=0).astype(float)

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
        """Kind, rows, the served model's setting (``rounds`` for LightGBM, ``alpha`` for the ridge; None for the
        other kinds), each candidate's (``lightgbm_rounds``, ``ridge_alpha``: None when it was not fitted), the
        candidates' holdout errors and the residual spread (JSON-safe)."""
        check_is_fitted(self)
        served = {"rounds": self.best_iteration_ if self.kind_ == "lightgbm" else None,
                  "alpha": self.alpha_ if self.kind_ == "ridge" else None}
        return {"kind": self.kind_, "n_rows": self.n_rows_, **served,
                "lightgbm_rounds": self.best_iteration_ or None, "ridge_alpha": self.alpha_,
                "candidate_mse_log": {k: round(v, 6) for k, v in self.candidate_scores_.items()},
                "choice_margin": {k: (round(v, 6) if isinstance(v, float) else v)
                                  for k, v in self.choice_margin_.items()},
                "residual_sd_log": round(self.residual_sd_, 6),
                "n_residuals": int(len(self.residuals_))}
