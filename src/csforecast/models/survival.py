"""Time-to-churn survival model: a scikit-learn-shaped wrapper around lifelines' Cox and Weibull AFT fitters.

``SurvivalModel`` is a thin, scikit-learn-shaped wrapper around two lifelines
regressors:

* ``kind="cox"``     -> :class:`lifelines.CoxPHFitter` (semi-parametric, Breslow baseline)
* ``kind="weibull"`` -> :class:`lifelines.WeibullAFTFitter` (parametric accelerated failure time)

What the wrapper adds on top of lifelines
-----------------------------------------
Design-matrix encoding, fixed at ``fit`` time and re-applied at predict time:

* **numeric** columns (int/float, not bool) are passed through unchanged.
  Missing values (NaN, None, pd.NA, +/-inf) are imputed with the *training
  median*.  Only if the column had missing values at fit time is a 0/1 missing
  indicator ``"<col>__missing"`` added right after it.  A numeric column that was
  complete at fit but has missing values at predict time is silently imputed
  with the training median (no indicator exists for it).
* **categorical** columns (object, string, category, bool, nullable boolean) are
  one-hot encoded with drop-first.  Levels are the values observed at fit time,
  in the dtype's category order for ``category`` columns, otherwise sorted
  (falling back to sorting by ``str``); the first level is the reference and
  gets no dummy.  Dummies are named ``"<col>[<level>]"``.  If the column had
  missing values at fit time an extra ``"<col>[<missing>]"`` dummy is added.
  At predict time unseen levels (and missing values when none were seen at fit)
  get all-zero dummies, i.e. are treated like the reference level.
* **constant** covariates (one distinct value, NaN counted as a value) are
  dropped with a ``UserWarning`` and listed in ``dropped_columns_``; encoded
  columns that end up constant (e.g. a numeric column whose only non-missing
  value is imputed everywhere) are dropped the same way (by encoded name).
* Datetime / timedelta covariates are rejected: convert them to numbers first.
* Non-string column names are converted with ``str`` in the design matrix.

When every covariate is numeric, complete and non-constant the data frame
handed to lifelines is exactly the input (cast to float, same column order),
so coefficients, standard errors and p-values are *identical* to fitting
lifelines directly.

Prediction conventions
----------------------
* Time is in whatever unit ``duration_col`` uses (days in this project).
* ``conditional_after`` = time already survived ``c``; conditional predictions
  are ``P(T > c + t | T > c) = S(c + t) / S(c)``.  Use ``entry_col`` (left
  truncation / delayed entry) at fit time when training rows only became
  observable after some tenure, and ``conditional_after`` at predict time.
* Cox survival curves are computed by this module from lifelines' fitted
  coefficients and a Breslow baseline cumulative hazard ``H0`` (see
  ``baseline_cumulative_hazard_``) which, unlike lifelines' own baseline,
  respects ``entry_col`` (subject j is in the risk set at t iff
  ``entry_j < t <= T_j``).  Without ``entry_col`` it equals lifelines'
  ``baseline_cumulative_hazard_`` (to float rounding).  As in lifelines, H0 is
  linearly interpolated between training times and held flat after the last
  training time (the Cox model cannot extrapolate).  Unlike lifelines, a point
  ``H0(0) = 0`` is prepended, so ``S(0) = 1`` and times before the first
  training time are interpolated from 0 instead of being clamped to
  ``H0(t_min)``.  For t >= the first training time the values coincide with
  ``CoxPHFitter.predict_survival_function``.
* Weibull curves come straight from ``WeibullAFTFitter.predict_survival_function``.

The survival metrics (Kaplan-Meier, Brier, IBS, C-index, calibration error) are in
:mod:`csforecast.metrics.survival`.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from csforecast.models.tabular import dataframe_input_tags

__all__ = ["SurvivalModel"]

_KINDS = ("cox", "weibull")
_MISSING_SUFFIX = "__missing"
_MISSING_LEVEL_LABEL = "<missing>"


# --------------------------------------------------------------------------------------
# design-matrix encoding
# --------------------------------------------------------------------------------------
def _is_categorical_dtype(s: pd.Series) -> bool:
    dt = s.dtype
    return (
        isinstance(dt, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(dt)
        or pd.api.types.is_object_dtype(dt)
        or pd.api.types.is_string_dtype(dt)
    )


def _numeric_values(s: pd.Series) -> np.ndarray:
    try:
        x = pd.to_numeric(s, errors="raise")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"column {s.name!r} must be numeric (it was numeric at fit time)") from exc
    x = pd.Series(x).to_numpy(dtype=float, na_value=np.nan)
    x[~np.isfinite(x)] = np.nan
    return x


def _sorted_levels(s: pd.Series) -> list:
    if isinstance(s.dtype, pd.CategoricalDtype):
        observed = set(s.dropna().unique().tolist())
        return [c for c in s.cat.categories.tolist() if c in observed]
    observed = pd.unique(s.dropna().astype(object)).tolist()
    try:
        return sorted(observed)
    except TypeError:
        return sorted(observed, key=str)


class _Encoder:
    """Fit-once design-matrix encoder (plain attributes so it pickles)."""

    def fit(self, df: pd.DataFrame, covariates: Sequence[Any]) -> "_Encoder":
        self.specs: list[dict] = []
        self.dropped: list[str] = []
        for col in covariates:
            s = df[col]
            if pd.api.types.is_datetime64_any_dtype(s.dtype) or pd.api.types.is_timedelta64_dtype(s.dtype):
                raise TypeError(f"covariate {col!r} is datetime/timedelta; convert it to a number (e.g. tenure in days)")
            name = str(col)
            if s.nunique(dropna=False) <= 1:
                self.dropped.append(name)
                continue
            if _is_categorical_dtype(s):
                levels = _sorted_levels(s)
                has_missing = bool(s.isna().any())
                features = [f"{name}[{lvl}]" for lvl in levels[1:]]
                if has_missing:
                    features.append(f"{name}[{_MISSING_LEVEL_LABEL}]")
                self.specs.append(
                    dict(col=col, name=name, kind="categorical", levels=levels, has_missing=has_missing, features=features)
                )
            elif pd.api.types.is_numeric_dtype(s.dtype):
                x = _numeric_values(s)
                miss = np.isnan(x)
                if miss.all():  # e.g. all +/-inf
                    self.dropped.append(name)
                    continue
                median = float(np.median(x[~miss]))
                has_missing = bool(miss.any())
                features = [name] + ([name + _MISSING_SUFFIX] if has_missing else [])
                self.specs.append(
                    dict(col=col, name=name, kind="numeric", median=median, has_missing=has_missing, features=features)
                )
            else:
                raise TypeError(f"covariate {col!r} has unsupported dtype {s.dtype}")
        self.feature_to_column = {f: sp["name"] for sp in self.specs for f in sp["features"]}
        names = [f for sp in self.specs for f in sp["features"]]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"encoded covariate names collide: {dup}; rename the input columns")
        return self

    @property
    def features(self) -> list[str]:
        return [f for sp in self.specs for f in sp["features"]]

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        missing_cols = [sp["col"] for sp in self.specs if sp["col"] not in df.columns]
        if missing_cols:
            raise ValueError(f"input is missing covariate column(s) used at fit time: {missing_cols}")
        out: dict[str, np.ndarray] = {}
        for sp in self.specs:
            s = df[sp["col"]]
            if sp["kind"] == "numeric":
                x = _numeric_values(s)
                miss = np.isnan(x)
                out[sp["name"]] = np.where(miss, sp["median"], x)
                if sp["has_missing"]:
                    out[sp["name"] + _MISSING_SUFFIX] = miss.astype(float)
            else:
                lookup = {lvl: i for i, lvl in enumerate(sp["levels"])}
                isna = s.isna().to_numpy()
                codes = np.array(
                    [(-1 if na else lookup.get(v, -1)) for v, na in zip(s.astype(object).tolist(), isna)], dtype=int
                )
                for i, lvl in enumerate(sp["levels"][1:], start=1):
                    out[f"{sp['name']}[{lvl}]"] = (codes == i).astype(float)
                if sp["has_missing"]:
                    out[f"{sp['name']}[{_MISSING_LEVEL_LABEL}]"] = isna.astype(float)
        # select (and order) the fitted features; encoded columns dropped as constant are skipped
        return pd.DataFrame({f: out[f] for f in self.features}, index=df.index, columns=self.features)


# --------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------
class SurvivalModel(BaseEstimator):
    """Cox PH / Weibull AFT time-to-churn model on arbitrary DataFrames.

    Parameters (stored verbatim, validated in ``fit``)
    ----------
    kind : {"cox", "weibull"}
    penalizer, l1_ratio : passed to the lifelines fitter (elastic-net penalty).
    alpha : float, default 0.05. Confidence level of the summary intervals (1 - alpha).
    robust : bool, default False. Sandwich standard errors (lifelines ``robust=``);
        recommended with non-integer ``weights_col``.
    fit_options : dict or None. Passed to lifelines ``fit(fit_options=...)``.

    Learned attributes
    ------------------
    lifelines_model_ : the fitted ``CoxPHFitter`` / ``WeibullAFTFitter``.
    covariates_ : original covariate column names used (after dropping constants).
    feature_names_ : encoded design-matrix column names, in lifelines' order.
    feature_to_column_ : dict encoded name -> original column name.
    dropped_columns_ : names of constant columns dropped (original or encoded names).
    imputation_medians_ : dict numeric column -> training median used for imputation.
    missing_indicator_columns_ : numeric columns that got a ``__missing`` indicator.
    category_levels_ : dict categorical column -> fitted levels (first = reference).
    baseline_means_ : Series, unweighted training mean of each design column
        (for cox this is lifelines' centring vector).
    coef_ : Series of covariate coefficients indexed by ``feature_names_``
        (cox: log hazard ratios; weibull: lambda_ coefficients on log time scale,
        intercept excluded).
    intercept_ : weibull only, lambda_ intercept (else None).
    rho_ : weibull only, Weibull shape ``exp(rho_ Intercept)`` (else None).
    baseline_cumulative_hazard_ : cox only, Series H0(t) at 0 and every training
        time, centred at ``baseline_means_``, entry-aware (else None).
    concordance_index_ : lifelines' training concordance.
    n_samples_, n_events_ : training size and (unweighted) number of events.
    duration_col_, event_col_, weights_col_, entry_col_ : the column names given to fit.
    """

    def __init__(
        self,
        *,
        kind: str = "cox",
        penalizer: float = 0.0,
        l1_ratio: float = 0.0,
        alpha: float = 0.05,
        robust: bool = False,
        fit_options: dict | None = None,
    ):
        self.kind = kind
        self.penalizer = penalizer
        self.l1_ratio = l1_ratio
        self.alpha = alpha
        self.robust = robust
        self.fit_options = fit_options

    # ---------------------------------------------------------------- fit
    def fit(
        self,
        df: pd.DataFrame,
        duration_col: str,
        event_col: str | None,
        weights_col: str | None = None,
        entry_col: str | None = None,
    ) -> "SurvivalModel":
        from lifelines import CoxPHFitter, WeibullAFTFitter

        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {self.kind!r}")
        if not isinstance(df, pd.DataFrame):
            raise TypeError("df must be a pandas DataFrame")
        special = [c for c in (duration_col, event_col, weights_col, entry_col) if c is not None]
        absent = [c for c in special if c not in df.columns]
        if absent:
            raise ValueError(f"column(s) not in df: {absent}")
        if len(set(special)) != len(special):
            raise ValueError("duration/event/weights/entry columns must be distinct")
        if df.columns.duplicated().any():
            raise ValueError("df has duplicated column names")
        if len(df) == 0:
            raise ValueError("df is empty")

        T = pd.to_numeric(df[duration_col]).to_numpy(dtype=float)
        if not np.all(np.isfinite(T)):
            raise ValueError(f"{duration_col!r} has missing or infinite values")
        if event_col is None:
            E = np.ones(len(df), dtype=bool)
        else:
            if df[event_col].isna().any():
                raise ValueError(f"{event_col!r} has missing values")
            E = df[event_col].to_numpy().astype(bool)
        for c in (weights_col, entry_col):
            if c is not None and not np.all(np.isfinite(pd.to_numeric(df[c]).to_numpy(dtype=float))):
                raise ValueError(f"{c!r} has missing or infinite values")

        covariates = [c for c in df.columns if c not in special]
        enc = _Encoder().fit(df, covariates)
        X = enc.transform(df)
        const = [f for f in X.columns if X[f].nunique() <= 1]
        if const:
            for sp in enc.specs:
                sp["features"] = [f for f in sp["features"] if f not in const]
            enc.specs = [sp for sp in enc.specs if sp["features"]]
            enc.dropped.extend(const)
            enc.feature_to_column = {f: sp["name"] for sp in enc.specs for f in sp["features"]}
            X = X.drop(columns=const)
        if enc.dropped:
            warnings.warn(f"SurvivalModel: dropped constant column(s) {enc.dropped}", UserWarning, stacklevel=2)
        if X.shape[1] == 0:
            raise ValueError("no usable (non-constant) covariates")
        reserved = {str(c) for c in special} | ({"Intercept"} if self.kind == "weibull" else set())
        clash = sorted(set(X.columns) & reserved)
        if clash:
            raise ValueError(f"encoded covariate name(s) {clash} clash with reserved names; rename them")

        fit_df = X.copy()
        cols = {}
        for c in special:
            cols[str(c)] = df[c].to_numpy()
        fit_df = pd.concat([fit_df, pd.DataFrame(cols, index=df.index)], axis=1)
        fit_kwargs = dict(
            duration_col=str(duration_col),
            event_col=None if event_col is None else str(event_col),
            weights_col=None if weights_col is None else str(weights_col),
            entry_col=None if entry_col is None else str(entry_col),
            robust=self.robust,
            fit_options=self.fit_options,
        )
        if self.kind == "cox":
            fitter = CoxPHFitter(penalizer=self.penalizer, l1_ratio=self.l1_ratio, alpha=self.alpha)
        else:
            fitter = WeibullAFTFitter(penalizer=self.penalizer, l1_ratio=self.l1_ratio, alpha=self.alpha)
        fitter.fit(fit_df, **fit_kwargs)

        self.lifelines_model_ = fitter
        self._encoder = enc
        self.covariates_ = [sp["name"] for sp in enc.specs]
        self.feature_names_ = list(X.columns)
        self.feature_to_column_ = dict(enc.feature_to_column)
        self.dropped_columns_ = list(enc.dropped)
        self.imputation_medians_ = {sp["name"]: sp["median"] for sp in enc.specs if sp["kind"] == "numeric"}
        self.missing_indicator_columns_ = [
            sp["name"] for sp in enc.specs if sp["kind"] == "numeric" and sp["has_missing"]
        ]
        self.category_levels_ = {sp["name"]: list(sp["levels"]) for sp in enc.specs if sp["kind"] == "categorical"}
        self.baseline_means_ = X.mean(0)
        self.duration_col_, self.event_col_ = duration_col, event_col
        self.weights_col_, self.entry_col_ = weights_col, entry_col
        self.n_samples_ = int(len(df))
        self.n_events_ = int(E.sum())
        self.concordance_index_ = float(fitter.concordance_index_)

        if self.kind == "cox":
            self.coef_ = fitter.params_.reindex(self.feature_names_).astype(float)
            self.coef_.index.name = "covariate"
            self.intercept_ = None
            self.rho_ = None
            w = np.ones(len(df)) if weights_col is None else pd.to_numeric(df[weights_col]).to_numpy(dtype=float)
            entry = None if entry_col is None else pd.to_numeric(df[entry_col]).to_numpy(dtype=float)
            self.baseline_cumulative_hazard_ = self._breslow(T, E, w, entry, self._log_partial_hazard(X))
        else:
            lam = fitter.params_.loc["lambda_"]
            self.coef_ = lam.reindex(self.feature_names_).astype(float)
            self.coef_.index.name = "covariate"
            self.intercept_ = float(lam["Intercept"])
            self.rho_ = float(np.exp(fitter.params_.loc["rho_"]["Intercept"]))
            self.baseline_cumulative_hazard_ = None
        return self

    @staticmethod
    def _breslow(T, E, w, entry, lph) -> pd.Series:
        """Breslow cumulative baseline hazard with optional delayed entry.

        h0(t) = sum_{i: T_i = t} w_i E_i / sum_{j: entry_j < t <= T_j} w_j exp(lph_j)
        """
        wph = w * np.exp(lph)
        times = np.unique(T)
        d = np.bincount(np.searchsorted(times, T), weights=w * E, minlength=len(times))
        order = np.argsort(T, kind="mergesort")
        cum_T = np.concatenate(([0.0], np.cumsum(wph[order])))
        total = cum_T[-1]
        at_risk = total - cum_T[np.searchsorted(T[order], times, side="left")]
        if entry is not None:
            eorder = np.argsort(entry, kind="mergesort")
            cum_e = np.concatenate(([0.0], np.cumsum(wph[eorder])))
            # subtract those not yet entered: entry_j >= t
            not_entered = total - cum_e[np.searchsorted(entry[eorder], times, side="left")]
            at_risk = at_risk - not_entered
        hazard = np.divide(d, at_risk, out=np.zeros_like(d), where=(d > 0) & (at_risk > 0))
        H = np.cumsum(hazard)
        if times[0] > 0:
            times = np.concatenate(([0.0], times))
            H = np.concatenate(([0.0], H))
        return pd.Series(H, index=pd.Index(times, name="time"), name="baseline cumulative hazard")

    # ---------------------------------------------------------------- sklearn protocol
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "lifelines_model_")

    def __sklearn_tags__(self):
        # NaN: the training median (+ missing indicator); categories and strings: one-hot with drop-first
        tags = dataframe_input_tags(super().__sklearn_tags__())
        tags.target_tags.required = False         # the outcome columns are named in fit, inside df
        return tags

    # ---------------------------------------------------------------- helpers
    def _design(self, df: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self)
        if not isinstance(df, pd.DataFrame):
            raise TypeError("df must be a pandas DataFrame")
        return self._encoder.transform(df)

    def _log_partial_hazard(self, X: pd.DataFrame) -> np.ndarray:
        # centred exactly as lifelines: (x - mean) . beta
        return (X.to_numpy(dtype=float) - self.baseline_means_.to_numpy()) @ self.coef_.to_numpy()

    def _conditional_after(self, df: pd.DataFrame, conditional_after) -> np.ndarray | None:
        if conditional_after is None:
            return None
        n = len(df)
        if isinstance(conditional_after, str) and conditional_after in df.columns:
            c = pd.to_numeric(df[conditional_after]).to_numpy(dtype=float)
        elif np.ndim(conditional_after) == 0:
            c = np.full(n, float(conditional_after))
        else:
            c = np.asarray(conditional_after, dtype=float).reshape(-1)
            if len(c) != n:
                raise ValueError(f"conditional_after has length {len(c)}, expected {n}")
        if not np.all(np.isfinite(c)) or np.any(c < 0):
            raise ValueError("conditional_after must be finite and >= 0")
        return c

    @staticmethod
    def _times(times) -> tuple[np.ndarray, pd.Index]:
        labels = pd.Index(np.atleast_1d(np.asarray(times)), name="time")
        t = labels.to_numpy(dtype=float)
        if t.ndim != 1 or len(t) == 0 or not np.all(np.isfinite(t)) or np.any(t < 0):
            raise ValueError("times must be a non-empty 1-D array of finite values >= 0")
        return t, labels

    def _survival_matrix(self, X: pd.DataFrame, t: np.ndarray, c: np.ndarray | None) -> np.ndarray:
        n = len(X)
        if self.kind == "cox":
            H0 = self.baseline_cumulative_hazard_
            knots, vals = H0.index.to_numpy(dtype=float), H0.to_numpy()
            ph = np.exp(self._log_partial_hazard(X))
            c_ = np.zeros(n) if c is None else c
            H = np.interp(c_[:, None] + t[None, :], knots, vals) - np.interp(c_, knots, vals)[:, None]
            return np.exp(-np.clip(H, 0.0, np.inf) * ph[:, None])
        Xl = X.reset_index(drop=True)
        sf = self.lifelines_model_.predict_survival_function(Xl, times=t, conditional_after=c)
        return sf.to_numpy().T

    # ---------------------------------------------------------------- public API
    @property
    def summary(self) -> pd.DataFrame:
        """Coefficient table indexed by covariate.

        Columns: coef, se, ci_low, ci_high, p, exp_coef, z (from the lifelines summary;
        interval level 1 - alpha).  For weibull the rows are the lambda_ (scale)
        parameters, *including* the ``Intercept`` row; the shape parameter is in
        ``ancillary_summary``.
        """
        check_is_fitted(self)
        s = self.lifelines_model_.summary
        if self.kind == "weibull":
            s = s.loc["lambda_"]
        return self._format_summary(s)

    @property
    def ancillary_summary(self) -> pd.DataFrame:
        """Weibull: the rho_ (log-shape) parameter row(s) in ``summary`` format
        (index ``Intercept``; shape = exp(coef)).  Cox: an empty frame."""
        check_is_fitted(self)
        if self.kind == "weibull":
            return self._format_summary(self.lifelines_model_.summary.loc["rho_"])
        return self._format_summary(self.lifelines_model_.summary.iloc[:0])

    @staticmethod
    def _format_summary(s: pd.DataFrame) -> pd.DataFrame:
        lo = next(c for c in s.columns if c.startswith("coef lower"))
        hi = next(c for c in s.columns if c.startswith("coef upper"))
        out = pd.DataFrame(
            {
                "coef": s["coef"],
                "se": s["se(coef)"],
                "ci_low": s[lo],
                "ci_high": s[hi],
                "p": s["p"],
                "exp_coef": s["exp(coef)"],
                "z": s["z"],
            },
            index=s.index,
        )
        out.index.name = "covariate"
        return out

    def predict_survival(self, df: pd.DataFrame, times, conditional_after=None) -> pd.DataFrame:
        """P(T > t) -- or P(T > c + t | T > c) with ``conditional_after`` -- per row.

        ``times`` in duration units (>= 0); ``conditional_after`` is None, a scalar,
        an array of len(df) or the name of a column of ``df``.
        Returns a DataFrame with index ``df.index`` and one column per time.
        """
        check_is_fitted(self)
        X = self._design(df)
        t, labels = self._times(times)
        c = self._conditional_after(df, conditional_after)
        S = self._survival_matrix(X, t, c)
        return pd.DataFrame(S, index=df.index, columns=labels)

    def predict_risk(self, df: pd.DataFrame) -> pd.Series:
        """Risk score, higher = churns sooner (for C-index).

        cox: partial hazard exp((x - mean).beta); weibull: minus the predicted median lifetime.
        """
        check_is_fitted(self)
        X = self._design(df)
        if self.kind == "cox":
            r = np.exp(self._log_partial_hazard(X))
        else:
            r = -self.lifelines_model_.predict_median(X.reset_index(drop=True)).to_numpy(dtype=float)
        return pd.Series(r, index=df.index, name="risk")

    def expected_residual_lifetime(
        self, df: pd.DataFrame, horizon: float, conditional_after=None, step: float | None = None
    ) -> pd.Series:
        """Restricted mean residual lifetime  int_0^horizon S(t | survived c) dt.

        Units are the units of ``duration_col`` (days in this project), so the result
        lies in [0, horizon].  Trapezoid rule on a regular grid 0..horizon with spacing
        ``step``; default ``step`` = 1 duration unit (daily for days), but at least 100
        and at most 5000 intervals.
        """
        check_is_fitted(self)
        X = self._design(df)
        horizon = float(horizon)
        if not np.isfinite(horizon) or horizon <= 0:
            raise ValueError("horizon must be a positive finite number")
        if step is None:
            n_steps = int(min(max(math.ceil(horizon), 100), 5000))
        else:
            if step <= 0:
                raise ValueError("step must be > 0")
            n_steps = max(int(math.ceil(horizon / float(step))), 1)
        grid = np.linspace(0.0, horizon, n_steps + 1)
        c = self._conditional_after(df, conditional_after)
        out = np.empty(len(X))
        chunk = max(1, 2_000_000 // len(grid))
        for start in range(0, len(X), chunk):
            sl = slice(start, start + chunk)
            S = self._survival_matrix(X.iloc[sl], grid, None if c is None else c[sl])
            out[sl] = np.trapezoid(S, grid, axis=1)
        return pd.Series(out, index=df.index, name="expected_residual_lifetime")

    def contributions(self, df: pd.DataFrame, hazard_scale: bool = False) -> pd.DataFrame:
        """Per-covariate additive contributions, one column per original covariate.

        cox: ``coef_j * (x_j - mean_j)`` summed over the dummies / missing indicator of
        each original column; the row sum equals ``log(partial hazard)`` (lifelines'
        ``predict_log_partial_hazard``), i.e. the log hazard ratio versus the
        training-mean profile.

        weibull: ``-coef_j * (x_j - mean_j)`` (lambda_ coefficients), so positive =
        shorter expected lifetime; the row sum is ``-(log lambda(x) - log lambda(mean))``
        (minus the log time-acceleration factor).  With ``hazard_scale=True`` these are
        multiplied by the shape ``rho_`` and then are exact log hazard ratio
        contributions (Weibull AFT is also proportional hazards).  Ignored for cox.

        Constant (dropped) columns are not included.
        """
        check_is_fitted(self)
        X = self._design(df)
        centred = X.to_numpy(dtype=float) - self.baseline_means_.to_numpy()
        contrib = centred * self.coef_.to_numpy()[None, :]
        if self.kind == "weibull":
            contrib = -contrib * (self.rho_ if hazard_scale else 1.0)
        per_feature = pd.DataFrame(contrib, index=df.index, columns=self.feature_names_)
        out = per_feature.T.groupby(pd.Index([self.feature_to_column_[f] for f in self.feature_names_]), sort=False).sum().T
        out = out.reindex(columns=self.covariates_)
        out.index = df.index
        return out
