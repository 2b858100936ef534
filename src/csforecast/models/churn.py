"""Calibrated churn classifier for arbitrary tabular data.

:class:`ChurnClassifier` fits two models on time-ordered data (LightGBM and a
regularised logistic regression), tunes them on a later "selection" slice, and keeps
the candidate (LightGBM, logistic, or the mean of their logits) with the best
calibrated log loss on the latest "calibration" slice, calibrated there.
Every prediction can be decomposed exactly into per-column contributions on the
log-odds scale (:meth:`ChurnClassifier.explain`).

Time split (``sample_time`` or row order)::

    |<-- fit (60 %) -->|<-- selection (20 %) -->|<-- calibration (20 %) -->|
     train candidates    early stopping, C        model choice, Platt / isotonic

Rows that share a ``sample_time`` always land in the same slice.
"""
from __future__ import annotations

import inspect
import warnings

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from csforecast.models import choice
from csforecast.models.calibrators import (EPS, apply_calibrator, bootstrap_maps, choose_calibration,
                                          clipped_log_loss, crossval_halves, cv_row_losses, map_quantiles,
                                          shrunk_level_offset, support_bounds)
from csforecast.models.tabular import (as_float, as_str, dataframe_input_tags, linear_frame, linear_inputs, time_key,
                                      time_split)

__all__ = ["ChurnClassifier", "time_split", "one_se_choice"]

ALGORITHMS = ("auto", "lightgbm", "logistic", "blend", "contract")
BLEND_WEIGHT = 0.5  # weight of the LightGBM logit in the "blend" candidate
# the "contract" candidate: a logistic regression on these contract fields only (those present in X)
CONTRACT_FIELDS = ("term_days", "auto_renew", "renewals_so_far", "segment")
MAX_DISCRETE_LEVELS = 12  # a numeric contract field with at most this many values also enters as levels
N_CALIBRATION_MAPS = 100
# the candidate kept unless another beats it by more than one standard error on the calibration slice
PREFERRED = "logistic"
TREE_CANDIDATES = ("lightgbm", "blend")  # the candidates held to that rule (the contract model wins outright)
OTHER = "__other__"  # level for categories that are rare at fit time or unseen


def one_se_choice(scores: dict, row_losses: dict, clusters) -> tuple[str, dict]:
    """The churn candidate to keep: :func:`csforecast.models.choice.one_se_choice` with the logistic regression
    (``PREFERRED``) kept unless LightGBM or the blend (``TREE_CANDIDATES``) beats it by more than one standard
    error; the contract model wins outright. A calibration slice of a few hundred decisions cannot tell apart
    models within that noise, and the smooth model then ranks later decisions as well or better
    (benchmarks/RESULTS.md, "one-standard-error rule")."""
    return choice.one_se_choice(scores, row_losses, clusters, preferred=PREFERRED, held=TREE_CANDIDATES)


# ------------------------------------------------------------------------ estimator
class ChurnClassifier(ClassifierMixin, BaseEstimator):
    """Calibrated binary churn classifier for any pandas DataFrame.

    Fit procedure (``fit(X, y, sample_time=None)``):

    1. Rows are ordered by ``sample_time`` (or taken in row order) and cut at time
       thresholds into fit / selection / calibration slices
       (``fit_fraction`` / ``selection_fraction`` / remainder).
    2. Columns are encoded: numeric, bool, datetime (days since epoch) and timedelta
       (days) columns become floats (inf -> NaN); any other column is categorical,
       with levels fixed from the fit+selection rows. Levels seen fewer than
       ``min_category_count`` times there, and levels never seen, map to one
       ``"__other__"`` level; missing stays missing.
    3. Candidates are trained on the fit slice and scored (log loss) on the selection
       slice: LightGBM (native categoricals, early stopping on the selection slice)
       and an L2 logistic regression (median impute + missing indicators +
       standardise; one-hot with explicit missing level; ``C`` from
       ``logistic_Cs``: the strongest penalty within one standard error of the
       best Platt-calibrated, time-cross-validated log loss on the selection
       slice). The lower log loss wins (``algorithm="auto"``). Both
       candidates are tuned on that same slice (rounds / ``C``), so these scores
       (``candidate_scores_``) are optimistic, LightGBM's more so (hundreds of rounds
       against a handful of ``C`` values). With ``algorithm="auto"`` (or ``"blend"``) a
       third candidate, ``"blend"``, averages the two raw logits.
    4. If ``refit`` (default), both models are refitted on fit+selection rows with the
       chosen number of boosting rounds / ``C`` (no early stopping). The calibration
       slice is never used for training, so it stays out-of-sample.
    5. Model choice: each candidate's best cross-validated calibrated log loss on the
       calibration slice (step 6's procedure; ``choice_scores_``); the lowest wins.
       Nothing was tuned on that slice, so no candidate is favoured by it; but the slice holds only a few
       hundred decisions, so LightGBM or the blend must beat the logistic regression by more than one
       standard error of the paired difference (``choice_margin_``), else the simpler logistic regression
       is kept (the one-standard-error rule). If the slice
       cannot be cross-validated, the selection-slice scores decide. With
       ``algorithm="blend"`` the blend is kept whatever the scores (the scores are
       still reported), so a caller can force any of the three candidates.
    6. Calibration on the calibration slice, as a map of the raw logit: Platt
       (``sigmoid(a*z + b)``, its slope shrunk toward 1 by as much as it is sampling noise:
       ``calibrators.shrunk_platt``) or isotonic regression smoothed by Platt (the mean of the
       two). With ``calibration="auto"`` the method is chosen by time-ordered 2-fold
       cross-validation inside the slice (fit on the earlier half, score the later one,
       and vice versa), then refitted on the whole slice (Platt if the halves are too
       small to cross-validate; isotonic only with at least
       ``calibrators.ISOTONIC_MIN_CLASS_ROWS`` rows of each class). If the slice holds a
       single class, no calibration is done (with a warning). Probabilities are clipped
       to what the slice's ``n`` rows support, ``[1/(n+1), n/(n+1)]`` (``prob_bounds_``).
    7. With ``level_shrinkage`` (default), the calibrated level is moved from the slice's churn rate toward
       the level the training history implies, by as much as the slice's rate is sampling noise rather than
       drift (:func:`csforecast.models.calibrators.shrunk_level_offset`): one log-odds offset added after the
       map (``level_offset_``). A slice of a few hundred decisions is often a few points off by chance.

    At prediction time ``X`` must contain every training column (``ValueError``
    naming the missing ones otherwise); columns are reordered, extra columns are
    ignored, and a 2-D array is matched to the training columns by position.
    Unseen categories map to ``"__other__"``; missing values are allowed anywhere.

    Cost: :meth:`explain` on a LightGBM winner runs exact TreeSHAP, which is ~20x
    the cost of :meth:`predict_proba` (~0.4 ms of CPU per row for ~300 trees of 15
    leaves); explain the rows you need, or use :meth:`mean_abs_contribution`, which
    subsamples.

    Parameters
    ----------
    algorithm : {"auto", "lightgbm", "logistic", "blend"}
        ``"auto"`` chooses among the three candidates; the others force one.
    calibration : {"auto", "platt", "isotonic", "none"}
    fit_fraction, selection_fraction : float
        Time fractions of the fit and selection slices; the calibration slice gets
        the rest (must be > 0).
    refit : bool
        Refit the chosen candidate on fit+selection rows before calibrating.
    level_shrinkage : bool
        Shrink the calibrated level toward the training history's (step 7); False keeps the slice's level.
    n_estimators, early_stopping_rounds, learning_rate, num_leaves,
    min_child_samples, subsample, colsample_bytree, reg_lambda :
        LightGBM settings (``n_estimators`` is the maximum number of rounds).
        Categorical splits are regularised (``max_cat_threshold=8, cat_l2=50,
        cat_smooth=50, min_data_per_group=200``) so that high-cardinality columns do
        not overfit.
    lgbm_params : dict or None
        Extra ``LGBMClassifier`` keyword arguments; they override the above.
    logistic_Cs : sequence of float
        Inverse L2 strengths tried for the logistic regression.
    min_category_count : int
        Categorical levels rarer than this (in fit+selection rows) are pooled.
    threshold : float
        Probability cut-off used by :meth:`predict`.
    n_jobs : int
        Threads for LightGBM. If the machine is oversubscribed (more busy threads
        than cores), OpenMP's default busy-waiting can make ``n_jobs > 1`` 10x slower
        than ``n_jobs=1``; run with ``OMP_WAIT_POLICY=PASSIVE`` set in the
        environment, or ``n_jobs=1``.
    random_state : int
        Seed for LightGBM's bagging / column sampling.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        Original labels; ``classes_[1]`` is the positive (churn) class.
    feature_names_in_ : ndarray of str/object
        Training column names, in order (``x0, x1, ...`` for numpy input).
    n_features_in_ : int
    feature_kinds_ : dict
        Column -> ``"numeric"`` | ``"datetime"`` | ``"timedelta"`` | ``"categorical"``.
    categories_ : dict
        Categorical column -> list of levels (strings) known to the model; the last
        level is always ``"__other__"``.
    split_sizes_ : dict
        Rows in the ``"fit"``, ``"selection"`` and ``"calibration"`` slices.
    split_times_ : dict
        Earliest time in the ``"selection"`` and ``"calibration"`` slices: a naive
        UTC ``pd.Timestamp`` for datetime ``sample_time``, else a number (the row
        position when ``sample_time`` is None). Each slice holds exactly the rows
        with time >= its threshold and < the next one.
    candidate_scores_ : dict
        Candidate name -> log loss on the selection slice (raw, uncalibrated).
    choice_scores_ : dict
        Candidate -> cross-validated calibrated log loss on the calibration slice.
    choice_margin_ : dict
        When LightGBM or the blend scored best on the calibration slice (``algorithm="auto"``): that
        candidate (``best``), its log loss advantage over the logistic regression (``difference``) and the
        standard error of that advantage (``se``, paired per row, cluster-robust by sample time). It wins only
        if ``difference > se`` (the one-standard-error rule); empty otherwise.
    chosen_ : str
        ``"lightgbm"``, ``"logistic"`` or ``"blend"`` (mean of the two logits).
    blend_weight_ : float
        Weight of the LightGBM logit in the raw logit (1, 0 or ``BLEND_WEIGHT``).
    best_iteration_ : int or None
        Boosting rounds used by the LightGBM candidate (early-stopping optimum).
    best_C_ : float or None
        ``C`` chosen for the logistic candidate.
    logistic_scores_ : dict
        ``C`` -> the logistic candidate's selection-slice log loss after a Platt map (time-ordered 2-fold
        cross-validated inside the slice; the raw log loss when the slice cannot be split), the score
        ``best_C_`` was chosen by (with the one-standard-error rule toward the stronger penalty).
    model_ : LGBMClassifier or sklearn Pipeline
        The fitted winning model (uncalibrated); the LightGBM part of a blend.
    linear_model_ : sklearn Pipeline or None
        The logistic model when it is part of the winner (itself or the blend).
    design_mean_ : ndarray or None
        Logistic (or blend) only: mean of each design column on the training rows.
    design_source_ : ndarray of int or None
        Logistic only: input column index each design column comes from.
    calibration_ : str
        ``"platt"`` | ``"isotonic"`` | ``"none"``.
    calibration_scores_ : dict
        Cross-validated calibration-slice log loss per method (``"auto"`` only).
    platt_ : tuple (a, b) or None
        Platt parameters: ``p = sigmoid(a * z + b)`` for raw logit ``z``.
    isotonic_ : calibrators.SmoothedIsotonic or None
        Isotonic map from raw logit to probability, averaged with a Platt curve.
    level_offset_ : float
        Log-odds offset added after the calibration map (step 7; 0 without ``level_shrinkage``).
    level_detail_ : dict
        How it was set: the slice's deviation from the history-implied rate, its sampling variance, the
        between-period variance, the weight kept and the target rate (empty when not applied).
    prob_bounds_ : tuple (low, high)
        The clip of every probability: ``calibrators.support_bounds`` of the
        calibration slice.
    base_rate_ : float
        Positive rate over all training rows.
    """

    def __init__(
        self,
        *,
        algorithm: str = "auto",
        calibration: str = "auto",
        fit_fraction: float = 0.6,
        selection_fraction: float = 0.2,
        refit: bool = True,
        level_shrinkage: bool = True,
        n_estimators: int = 2000,
        early_stopping_rounds: int = 100,
        learning_rate: float = 0.04,
        num_leaves: int = 15,
        min_child_samples: int = 50,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        lgbm_params: dict | None = None,
        logistic_Cs=(0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 1.0),
        min_category_count: int = 10,
        threshold: float = 0.5,
        n_jobs: int = 2,
        random_state: int = 0,
    ):
        self.algorithm = algorithm
        self.calibration = calibration
        self.fit_fraction = fit_fraction
        self.selection_fraction = selection_fraction
        self.refit = refit
        self.level_shrinkage = level_shrinkage
        self.n_estimators = n_estimators
        self.early_stopping_rounds = early_stopping_rounds
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.lgbm_params = lgbm_params
        self.logistic_Cs = logistic_Cs
        self.min_category_count = min_category_count
        self.threshold = threshold
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------------ sklearn protocol
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "base_rate_")          # set last in fit

    def __sklearn_tags__(self):
        tags = dataframe_input_tags(super().__sklearn_tags__())   # NaN: LightGBM natively, the logistic part imputes
        tags.classifier_tags.multi_class = False    # churn / no churn
        return tags

    # ------------------------------------------------------------------ input handling
    @staticmethod
    def _to_frame(X) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            return X
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise ValueError(f"X must be a pandas DataFrame or a 2-D array; got shape {arr.shape}")
        return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])

    def _check_X(self, X) -> pd.DataFrame:
        """Return X with the training columns in training order (validating them)."""
        if not isinstance(X, pd.DataFrame):
            arr = np.asarray(X)
            if arr.ndim != 2 or arr.shape[1] != self.n_features_in_:
                raise ValueError(f"X has shape {arr.shape}; expected (n, {self.n_features_in_})")
            return pd.DataFrame(arr, columns=list(self.feature_names_in_))  # positional
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise ValueError(f"X is missing training columns: {missing}")
        return X[list(self.feature_names_in_)]

    def _learn_encoding(self, X: pd.DataFrame) -> None:
        kinds, cats = {}, {}
        for col in X.columns:
            s = X[col]
            if ptypes.is_datetime64_any_dtype(s):
                kinds[col] = "datetime"
            elif ptypes.is_timedelta64_dtype(s):
                kinds[col] = "timedelta"
            elif ptypes.is_numeric_dtype(s) and not isinstance(s.dtype, pd.CategoricalDtype):
                kinds[col] = "numeric"
            else:
                kinds[col] = "categorical"
                counts = as_str(s).value_counts(dropna=True)
                keep = counts[counts >= self.min_category_count].index
                cats[col] = sorted(str(v) for v in keep if v != OTHER) + [OTHER]
        self.feature_kinds_, self.categories_ = kinds, cats

    def _encode(self, X: pd.DataFrame) -> pd.DataFrame:
        """Model frame with internal column names ``f0..f{p-1}``: float columns and
        pandas categoricals with the fixed fit-time levels."""
        data = {}
        for i, col in enumerate(self.feature_names_in_):
            s = X[col]
            if self.feature_kinds_[col] == "categorical":
                levels = self.categories_[col]
                v = as_str(s)
                v = v.where(v.isin(levels) | v.isna(), OTHER)
                data[f"f{i}"] = pd.Categorical(v.to_numpy(), categories=levels)
            else:
                data[f"f{i}"] = as_float(s, self.feature_kinds_[col])
        return pd.DataFrame(data, index=X.index)

    # --------------------------------------------------------------------- candidates
    def _lgbm(self, n_estimators: int):
        from lightgbm import LGBMClassifier

        params = dict(
            n_estimators=n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            subsample=self.subsample,
            subsample_freq=1,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            # categorical regularisation: keeps high-cardinality columns from overfitting
            max_cat_threshold=8,
            cat_l2=50.0,
            cat_smooth=50.0,
            min_data_per_group=200,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
            verbose=-1,
        )
        params.update(self.lgbm_params or {})
        return LGBMClassifier(**params)

    def _logistic(self, C: float, columns=None, discrete=()) -> Pipeline:
        use = set(columns) if columns is not None else None
        num = [f"f{i}" for i, c in enumerate(self.feature_names_in_)
               if self.feature_kinds_[c] != "categorical" and (use is None or f"f{i}" in use)]
        cat = [f"f{i}" for i, c in enumerate(self.feature_names_in_)
               if self.feature_kinds_[c] == "categorical" and (use is None or f"f{i}" in use)]
        return Pipeline([("prep", linear_inputs(num, cat, list(discrete))),
                         ("clf", LogisticRegression(C=C, max_iter=2000))])

    _logistic_input = staticmethod(linear_frame)

    def _fit_lightgbm(self, Xf, yf, Xs, ys):
        import lightgbm

        m = self._lgbm(self.n_estimators)
        # lightgbm >= 4.7 takes eval_X/eval_y (eval_set is deprecated there)
        if "eval_X" in inspect.signature(m.fit).parameters:
            evals = {"eval_X": (Xs,), "eval_y": (ys,)}
        else:
            evals = {"eval_set": [(Xs, ys)]}
        m.fit(
            Xf,
            yf,
            eval_metric="binary_logloss",
            callbacks=[lightgbm.early_stopping(self.early_stopping_rounds, verbose=False)],
            **evals,
        )
        best = int(m.best_iteration_ or self.n_estimators)
        p = m.booster_.predict(Xs, num_iteration=best)
        return m, best, clipped_log_loss(ys, p)

    def _fit_logistic(self, Xf, yf, Xs, ys, ts, columns=None, discrete=(), simplest=True):
        """The logistic candidate: each ``C`` fitted on the fit slice and scored on the selection slice (``Xs``,
        ``ys``, times ``ts``) as the model will be served, calibrated: its log loss after a Platt map,
        time-ordered 2-fold cross-validated inside the slice (:func:`calibrators.cv_row_losses`). The strongest
        penalty within one standard error of the best score is kept (:func:`choice.simplest_within_one_se`), or
        with ``simplest=False`` the best-scoring one.
        The raw log loss favours weak penalties, whose logits spread as wide as the outcomes vary, though a
        stronger one ranks later rows better, and a slice of a few hundred decisions cannot tell apart scores
        within their noise (benchmarks/RESULTS.md, seventeenth session). When the slice cannot be split in time
        the raw log loss decides. Returns (model of the kept ``C``, that ``C``, ``C`` -> score, ``C`` -> raw
        log loss, the kept model's logits on the selection slice)."""
        scores, raw_scores, row_losses, models, logits = {}, {}, {}, {}, {}
        halves = crossval_halves(ts, ys)
        for C in sorted(float(c) for c in self.logistic_Cs):
            m = self._logistic(C, columns=columns, discrete=discrete)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ConvergenceWarning on tiny / separable data
                m.fit(Xf, yf)
            z = m.decision_function(Xs)
            raw_scores[C] = clipped_log_loss(ys, expit(z))
            if halves is not None:
                row_losses[C] = cv_row_losses("platt", z, ys, ts, halves)
            scores[C] = float(row_losses[C].mean()) if halves is not None else raw_scores[C]
            models[C], logits[C] = m, z
        if halves is not None and simplest:
            best = choice.simplest_within_one_se(row_losses, ts)
        else:
            best = min(scores, key=scores.get)
        return models[best], best, scores, raw_scores, logits[best]

    # -------------------------------------------------------------------------- fit
    def fit(self, X, y, sample_time=None):
        """Fit on time-ordered data (see the class docstring). Returns ``self``.

        Parameters
        ----------
        X : pandas DataFrame (or 2-D array, whose columns become ``x0, x1, ...``)
        y : array-like of two distinct labels; the larger (``np.unique`` order) is
            the positive class, e.g. 1 / True.
        sample_time : array-like, optional
            Observation time of each row (datetimes, date strings or numbers), aligned
            by position with ``X``. If None, row order is time order.
        """
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        if self.calibration not in ("auto", "platt", "isotonic", "none"):
            raise ValueError(f"calibration must be 'auto', 'platt', 'isotonic' or 'none', got {self.calibration!r}")
        cal_fraction = 1.0 - self.fit_fraction - self.selection_fraction
        if min(self.fit_fraction, self.selection_fraction) <= 0 or cal_fraction < 1e-9:
            raise ValueError("fit_fraction and selection_fraction must be > 0 and sum to < 1")

        X = self._to_frame(X)
        if X.columns.duplicated().any():
            raise ValueError(f"X has duplicate column names: {list(X.columns[X.columns.duplicated()])}")
        if X.shape[1] == 0:
            raise ValueError("X has no columns")
        y_arr = np.asarray(y).ravel()
        if len(y_arr) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(y_arr)}")
        if pd.isna(y_arr).any():
            raise ValueError("y contains missing values")
        classes = np.unique(y_arr)
        if len(classes) == 1:
            raise ValueError(f"y has a single class ({classes[0]!r}); need both churners and non-churners")
        if len(classes) != 2:
            raise ValueError(f"y must be binary; found {len(classes)} distinct values")
        self.classes_ = classes
        yb = (y_arr == classes[1]).astype(int)

        if sample_time is None:
            t, is_dt = np.arange(len(X)), False
        else:
            t, is_dt = time_key(sample_time, len(X))
        fit_idx, sel_idx, cal_idx = time_split(t, [self.fit_fraction, self.selection_fraction, cal_fraction])
        for name, idx in (("fit", fit_idx), ("selection", sel_idx)):
            if len(np.unique(yb[idx])) < 2:
                raise ValueError(f"the {name} time slice has a single class; more data or other fractions needed")
        self.split_sizes_ = {"fit": len(fit_idx), "selection": len(sel_idx), "calibration": len(cal_idx)}
        first = (lambda i: pd.Timestamp(int(t[i]))) if is_dt else (lambda i: t[i].item())
        self.split_times_ = {"selection": first(sel_idx[0]), "calibration": first(cal_idx[0])}

        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        train_idx = np.concatenate([fit_idx, sel_idx])
        self._learn_encoding(X.iloc[train_idx])
        Xe = self._encode(X)
        Xl = self._logistic_input(Xe) if self.algorithm != "lightgbm" else None
        both = self.algorithm in ("auto", "blend")

        # candidates: trained on fit slice, scored on selection slice
        self.candidate_scores_, self.best_iteration_, self.best_C_, self.logistic_scores_ = {}, None, None, {}
        self.contract_C_, self.contract_columns_ = None, []
        models, sel_logits, best_c = {}, {}, {}
        self.level_offset_, self.level_detail_ = 0.0, {}
        if both or self.algorithm == "lightgbm":
            m, self.best_iteration_, score = self._fit_lightgbm(
                Xe.iloc[fit_idx], yb[fit_idx], Xe.iloc[sel_idx], yb[sel_idx]
            )
            models["lightgbm"], self.candidate_scores_["lightgbm"] = m, score
            sel_logits["lightgbm"] = m.booster_.predict(Xe.iloc[sel_idx], num_iteration=self.best_iteration_,
                                                        raw_score=True)
        if both or self.algorithm == "logistic":
            m, self.best_C_, self.logistic_scores_, raw_scores, sel_logits["logistic"] = self._fit_logistic(
                Xl.iloc[fit_idx], yb[fit_idx], Xl.iloc[sel_idx], yb[sel_idx], t[sel_idx]
            )
            models["logistic"], self.candidate_scores_["logistic"] = m, raw_scores[self.best_C_]
            best_c["logistic"] = self.best_C_
        contract_cols = [f"f{i}" for i, c in enumerate(self.feature_names_in_) if c in CONTRACT_FIELDS]
        if contract_cols and self.algorithm in ("auto", "blend", "contract"):
            self.contract_columns_ = [c for c in self.feature_names_in_ if c in CONTRACT_FIELDS]
            discrete = [f for f in contract_cols if self.feature_kinds_[self.feature_names_in_[int(f[1:])]]
                        != "categorical" and Xl[f].iloc[fit_idx].nunique() <= MAX_DISCRETE_LEVELS]
            # its C is the best-scoring one, not the strongest within one standard error: a handful of contract
            # levels are the signal itself, and a strong penalty pulls a rare term's rate toward the mean (on
            # term-only churn with 4% annual terms, C = 3e-4 served annual terms 0.146 where 0.21 churn)
            m, self.contract_C_, _, raw_c, _ = self._fit_logistic(
                Xl.iloc[fit_idx], yb[fit_idx], Xl.iloc[sel_idx], yb[sel_idx], t[sel_idx], columns=contract_cols,
                discrete=discrete, simplest=False
            )
            models["contract"], self.candidate_scores_["contract"] = m, raw_c[self.contract_C_]
            best_c["contract"] = self.contract_C_
        elif self.algorithm == "contract":
            raise ValueError(f"algorithm='contract' needs at least one of the columns {list(CONTRACT_FIELDS)}")
        if "lightgbm" in sel_logits and "logistic" in sel_logits:
            # the two models err differently (trees: steps and interactions; logistic: smooth main effects),
            # so the mean of their logits is often better than either
            z = BLEND_WEIGHT * sel_logits["lightgbm"] + (1 - BLEND_WEIGHT) * sel_logits["logistic"]
            self.candidate_scores_["blend"] = clipped_log_loss(yb[sel_idx], expit(z))

        # refit every candidate's model(s) on fit + selection rows
        fitted = {}
        for part in models:
            if not self.refit:
                fitted[part] = models[part]
            elif part == "lightgbm":
                fitted[part] = self._lgbm(self.best_iteration_).fit(Xe.iloc[train_idx], yb[train_idx])
            else:
                fitted[part] = (self._logistic(best_c[part], columns=contract_cols, discrete=discrete)
                                if part == "contract" else self._logistic(best_c[part]))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fitted[part].fit(Xl.iloc[train_idx], yb[train_idx])
        if not self.refit:
            train_idx = fit_idx

        def raw(name, rows):
            Xr = Xe.iloc[rows]
            if name == "lightgbm":
                return fitted["lightgbm"].booster_.predict(Xr, raw_score=True)
            if name in ("logistic", "contract"):
                return fitted[name].decision_function(self._logistic_input(Xr))
            return BLEND_WEIGHT * raw("lightgbm", rows) + (1 - BLEND_WEIGHT) * raw("logistic", rows)

        # the winner: lowest calibrated log loss on the calibration slice (cross-validated in time inside it),
        # which no candidate was tuned on; the selection slice decides when that slice cannot be split
        zc = {name: raw(name, cal_idx) for name in self.candidate_scores_}
        self.choice_scores_, row_losses = {}, {}
        for name, z in zc.items():
            self._fit_calibration(z, yb[cal_idx], t[cal_idx])
            if self.calibration_scores_:
                method = min(self.calibration_scores_, key=self.calibration_scores_.get)
                self.choice_scores_[name] = self.calibration_scores_[method]
                row_losses[name] = cv_row_losses(method, z, yb[cal_idx], t[cal_idx],
                                                 crossval_halves(t[cal_idx], yb[cal_idx]))
        crossvalidated = len(self.choice_scores_) == len(zc)
        scores = self.choice_scores_ if crossvalidated else self.candidate_scores_
        forced = {"blend": "blend", "contract": "contract"}.get(self.algorithm)
        if crossvalidated:
            best, self.choice_margin_ = one_se_choice(scores, row_losses, t[cal_idx])
        else:
            best, self.choice_margin_ = min(scores, key=scores.get), {}
        self.chosen_ = forced or best
        self.blend_weight_ = {"lightgbm": 1.0, "logistic": 0.0, "contract": 0.0, "blend": BLEND_WEIGHT}[self.chosen_]
        linear = {"logistic": "logistic", "blend": "logistic", "contract": "contract"}.get(self.chosen_)
        self.model_ = fitted["lightgbm"] if self.blend_weight_ > 0 else fitted[linear]
        self.linear_model_ = fitted[linear] if linear else None
        self.design_mean_ = self.design_source_ = None
        if self.linear_model_ is not None:
            self._prepare_linear_explainer(Xl.iloc[train_idx])
        self._fit_calibration(zc[self.chosen_], yb[cal_idx], t[cal_idx])
        # how uncertain the calibration is: Platt maps of the calibrated logit refitted on bootstrap resamples
        # of the calibration slice (whole groups of rows that share a sample time), for predict_interval
        p_cal = self._calibrate(zc[self.chosen_])
        self.calibration_maps_ = bootstrap_maps(logit(p_cal), yb[cal_idx], clusters=t[cal_idx],
                                                n_maps=N_CALIBRATION_MAPS, seed=self.random_state)
        if self.level_shrinkage and len(np.unique(yb[cal_idx])) == 2:
            self.level_offset_, self.level_detail_ = shrunk_level_offset(
                p_cal, expit(zc[self.chosen_]), yb[cal_idx], t[cal_idx],
                expit(raw(self.chosen_, train_idx)), yb[train_idx], t[train_idx])
        self.base_rate_ = float(yb.mean())
        return self

    def _fit_calibration(self, z, y, t) -> None:
        self.prob_bounds_ = support_bounds(len(z))
        method, fitted, self.calibration_scores_ = choose_calibration(self.calibration, z, y, t)
        self.calibration_ = method
        self.platt_ = fitted if method == "platt" else None
        self.isotonic_ = fitted if method == "isotonic" else None

    # ---------------------------------------------------------------------- predict
    def set_predict_threads(self, n: int | None) -> "ChurnClassifier":
        """Threads LightGBM uses when predicting and explaining (``None``: ``n_jobs``, as trained).

        A Spark executor runs one task per core in parallel, each in its own Python worker; each task's
        TreeSHAP must use the cores of its task (``TaskContext.cpus()``, 1 by default), or the tasks'
        threads oversubscribe the executor's cores. Outputs do not depend on it: each row is computed by one
        thread. Returns ``self``.
        """
        self.predict_threads_ = None if n is None else max(1, int(n))
        return self

    def _booster_predict(self, Xe: pd.DataFrame, **kw) -> np.ndarray:
        """``booster_.predict`` with the prediction thread count (:meth:`set_predict_threads`)."""
        n = getattr(self, "predict_threads_", None)   # models pickled before it existed have none
        if n is not None:
            kw["num_threads"] = n
        return self.model_.booster_.predict(Xe, **kw)

    def _raw_logit(self, Xe: pd.DataFrame) -> np.ndarray:
        if len(Xe) == 0:
            return np.empty(0)
        w = self.blend_weight_
        z = np.zeros(len(Xe))
        if w > 0:
            z += w * self._booster_predict(Xe, raw_score=True)
        if w < 1:
            z += (1 - w) * self.linear_model_.decision_function(self._logistic_input(Xe))
        return z

    def _calibrate(self, z: np.ndarray) -> np.ndarray:
        cal = {"platt": self.platt_, "isotonic": self.isotonic_, "none": None}[self.calibration_]
        # models pickled before the support bounds (or the level offset) existed keep their clip (and level)
        bounds = getattr(self, "prob_bounds_", (EPS, 1 - EPS))
        p = apply_calibrator(self.calibration_, cal, z, bounds)
        offset = getattr(self, "level_offset_", 0.0)
        if offset and len(p):
            p = np.clip(expit(logit(p) + offset), bounds[0], bounds[1])
        return p

    def predict_proba(self, X) -> np.ndarray:
        """Calibrated probabilities, shape (n, 2); column 1 is P(churn), within ``prob_bounds_``."""
        check_is_fitted(self)
        p = self._calibrate(self._raw_logit(self._encode(self._check_X(X))))
        return np.column_stack([1.0 - p, p])

    def predict_interval(self, X, coverage: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of an interval for each P(churn): the central ``coverage`` quantiles of the
        probability under the bootstrapped calibration maps (``calibration_maps_``; see
        :func:`csforecast.models.calibrators.bootstrap_maps`). It reflects how well the calibration slice
        pins down the probability's level and slope, not the full model variance."""
        check_is_fitted(self)
        return self.interval_of(self.predict_proba(X)[:, 1], coverage)

    def interval_of(self, p, coverage: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict_interval` for probabilities ``p`` this model has already given (e.g. read from its
        calibrated contributions, :meth:`explain`), without a second pass of the model."""
        check_is_fitted(self)
        p = np.asarray(p, dtype=float)
        lo, hi = map_quantiles(p, getattr(self, "calibration_maps_", np.empty((0, 2))),
                               ((1 - coverage) / 2, (1 + coverage) / 2))
        return np.minimum(lo, p), np.maximum(hi, p)

    def predict(self, X) -> np.ndarray:
        """Class labels: ``classes_[1]`` where P(churn) >= ``threshold``."""
        check_is_fitted(self)
        return self.classes_[(self.predict_proba(X)[:, 1] >= self.threshold).astype(int)]

    # ---------------------------------------------------------------------- explain
    def _prepare_linear_explainer(self, Xl_train: pd.DataFrame) -> None:
        prep = self.linear_model_.named_steps["prep"]
        names = prep.get_feature_names_out()
        # design names look like "num__f3", "num__missingindicator_f3", "cat__f5_<level>"
        src = []
        for nm in names:
            rest = nm.split("__", 1)[1]
            if rest.startswith("missingindicator_"):
                rest = rest[len("missingindicator_"):]
            digits = rest[1:].split("_", 1)[0]
            src.append(int(digits))
        self.design_source_ = np.asarray(src)
        D = prep.transform(Xl_train)
        self.design_mean_ = np.asarray(D.mean(axis=0)).ravel()

    def explain_raw(self, X) -> pd.DataFrame:
        """Exact contributions to the *uncalibrated* logit.

        Columns: ``feature_names_in_`` then ``base_value``; rows sum to the raw logit.
        LightGBM: TreeSHAP (``pred_contrib=True``). Logistic: ``coef * (x - mean)`` on
        the design matrix (means over the model's training rows), summed per source
        column; ``base_value = intercept + coef . mean``. Blend: the weighted sum of the two
        (still exact: both parts are additive).
        """
        contrib, index = self._raw_contributions(X)
        return pd.DataFrame(contrib, index=index, columns=[*self.feature_names_in_, "base_value"])

    def _raw_contributions(self, X) -> tuple[np.ndarray, pd.Index]:
        """:meth:`explain_raw` as an (n, p + 1) array (base value last) and the rows' index."""
        check_is_fitted(self)
        Xc = self._check_X(X)
        Xe = self._encode(Xc)
        w = self.blend_weight_
        contrib = np.zeros((len(Xe), self.n_features_in_ + 1))
        if len(Xe) and w > 0:
            contrib += w * np.asarray(self._booster_predict(Xe, pred_contrib=True))
        if len(Xe) and w < 1:
            prep, clf = self.linear_model_.named_steps["prep"], self.linear_model_.named_steps["clf"]
            coef = clf.coef_.ravel()
            M = np.zeros((len(coef), self.n_features_in_))
            M[np.arange(len(coef)), self.design_source_] = coef
            offset = self.design_mean_ @ M  # per input column: sum of coef * mean
            D = prep.transform(self._logistic_input(Xe))
            phi = np.asarray(D @ M) - offset
            base = float(clf.intercept_[0] + coef @ self.design_mean_)
            contrib += (1 - w) * np.column_stack([phi, np.full(len(phi), base)])
        return contrib, Xc.index

    def explain(self, X) -> pd.DataFrame:
        """Exact per-column contributions to the *calibrated* log-odds.

        Returns a DataFrame indexed like ``X`` with one column per training column
        (``feature_names_in_`` order) and a final ``base_value`` column, such that for
        every row ``contributions.sum(axis=1) + base_value == logit(predict_proba(X)[:, 1])``
        (to ~1e-9).

        The raw contributions (:meth:`explain_raw`, summing to the raw logit ``z`` with
        base ``z0``) are mapped through the calibrated logit ``g(z)``
        (= ``logit(clip(calibrated p))``):

        * ``base_value = g(z0)``;
        * each row's contributions are multiplied by ``(g(z) - g(z0)) / (z - z0)``.
          For Platt (``g(z) = a*z + b``) this factor is simply ``a`` (so that is what is
          used, except on rows whose probability was clipped); for isotonic it varies
          by row and is always >= 0 (``g`` is monotone), so signs are preserved;
        * on rows with ``|z - z0| < 1e-9`` the factor is undefined: contributions are
          kept unscaled and the residual ``g(z) - g(z0) - sum(contributions)`` is
          added to the column with the largest absolute raw contribution.
        """
        out, base, index = self._calibrated_contributions(X)
        res = pd.DataFrame(out, index=index, columns=list(self.feature_names_in_))
        res["base_value"] = base
        return res

    def explain_arrays(self, X) -> tuple[np.ndarray, float]:
        """:meth:`explain` as arrays, for callers that work on them (batch scoring): the (n, p) calibrated
        contributions in ``feature_names_in_`` order and the base value, the same numbers without the frame."""
        out, base, _ = self._calibrated_contributions(X)
        return out, base

    def _calibrated_contributions(self, X) -> tuple[np.ndarray, float, pd.Index]:
        check_is_fitted(self)
        raw, index = self._raw_contributions(X)
        phi = raw[:, :-1]
        z0 = float(raw[0, -1]) if len(raw) else 0.0
        z = phi.sum(axis=1) + z0
        gz = logit(self._calibrate(z))
        g0 = float(logit(self._calibrate(np.array([z0]))[0]))
        dz = z - z0
        small = np.abs(dz) < 1e-9
        linear = np.zeros(len(z), dtype=bool)
        if self.calibration_ == "platt":  # g is exactly a*z + b wherever nothing was clipped
            a, b = self.platt_
            b += getattr(self, "level_offset_", 0.0)
            lo, hi = (logit(v) for v in getattr(self, "prob_bounds_", (EPS, 1 - EPS)))
            if lo < a * z0 + b < hi:
                g0 = a * z0 + b
                linear = (a * z + b > lo) & (a * z + b < hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(small, 1.0, (gz - g0) / dz)
        if linear.any():
            scale[linear & ~small] = self.platt_[0]
        out = phi * scale[:, None]
        if small.any():
            rows = np.flatnonzero(small)
            cols = np.abs(phi[rows]).argmax(axis=1) if phi.shape[1] else None
            out[rows, cols] += (gz[rows] - g0) - out[rows].sum(axis=1)
        return out, g0, index

    def mean_abs_contribution(self, X, max_rows: int | None = 20_000, random_state: int = 0) -> pd.Series:
        """Mean |calibrated contribution| per column over ``X``, largest first.

        A global importance summary. If ``X`` has more than ``max_rows`` rows, a
        random subsample of ``max_rows`` rows (seeded by ``random_state``) is used,
        because TreeSHAP is the expensive part of :meth:`explain`.
        """
        check_is_fitted(self)
        X = self._check_X(X)
        if max_rows is not None and len(X) > max_rows:
            X = X.sample(n=max_rows, random_state=random_state)
        contrib = self.explain(X).drop(columns="base_value")
        return contrib.abs().mean().sort_values(ascending=False).rename("mean_abs_contribution")
