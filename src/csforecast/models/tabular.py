"""Tabular helpers for the estimators: time-ordered slices of rows and column encoding.

* :func:`time_key` turns a ``sample_time`` column (datetimes, date strings or numbers) into a sortable array;
* :func:`time_split` cuts rows into consecutive time slices without splitting equal times;
* :func:`as_float` / :func:`as_str` encode one column as floats (datetimes as days) or as strings;
* :func:`linear_inputs` is the design of every linear candidate (the churn model's logistic regressions, the
  expansion model's ridge): imputed, rank-gaussed and standardised numbers, one-hot levels at unit variance.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, QuantileTransformer, StandardScaler

__all__ = ["time_key", "time_split", "as_float", "as_str", "dataframe_input_tags", "linear_inputs", "linear_frame",
           "MISSING"]

MISSING = "__missing__"  # explicit missing level in the one-hot encoding of a linear candidate


def dataframe_input_tags(tags):
    """Mark ``tags`` (an sklearn ``Tags``) as taking DataFrames with missing values and categorical / string
    columns, as our estimators do (they impute and encode themselves); returns ``tags``."""
    tags.input_tags.allow_nan = True
    tags.input_tags.categorical = True
    tags.input_tags.string = True
    return tags


def time_key(sample_time, n: int) -> tuple[np.ndarray, bool]:
    """Convert ``sample_time`` (datetimes, date strings or numbers) to a sortable array:
    float64 for numbers, int64 nanoseconds since epoch (UTC) for datetimes. Returns
    ``(key, is_datetime)``."""
    t = sample_time.reset_index(drop=True) if isinstance(sample_time, pd.Series) else pd.Series(sample_time)
    if len(t) != n:
        raise ValueError(f"sample_time has length {len(t)}, expected {n} (one per row of X)")
    if t.isna().any():
        raise ValueError("sample_time contains missing values")
    if ptypes.is_numeric_dtype(t) and not ptypes.is_bool_dtype(t):
        return t.to_numpy(dtype="float64"), False
    if not ptypes.is_datetime64_any_dtype(t):
        try:
            t = pd.to_datetime(t, utc=True)
        except (TypeError, ValueError) as exc:
            raise ValueError("sample_time must hold datetimes or numbers") from exc
    if getattr(t.dt, "tz", None) is not None:
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    return t.to_numpy(dtype="datetime64[ns]").astype("int64"), True


def _tie_safe_cut(t_sorted: np.ndarray, k: int) -> int:
    """Cut position nearest to ``k`` such that equal times never straddle the cut."""
    if k <= 0 or k >= len(t_sorted):
        return k
    lo = int(np.searchsorted(t_sorted, t_sorted[k], side="left"))
    hi = int(np.searchsorted(t_sorted, t_sorted[k], side="right"))
    return lo if (k - lo <= hi - k and lo > 0) or hi >= len(t_sorted) else hi


def time_split(t: np.ndarray, fractions) -> list[np.ndarray]:
    """Split row indices into consecutive time slices.

    ``t``: sortable 1-D array of times (one per row). ``fractions``: slice sizes that
    sum to 1. Returns one index array per slice, each sorted by time. Cuts are placed
    at time thresholds (as close as possible to the requested fractions), so rows with
    equal ``t`` are always in the same slice. Raises ``ValueError`` if a slice would be
    empty (too few rows or distinct times).
    """
    t = np.asarray(t)
    order = np.argsort(t, kind="stable")
    ts = t[order]
    n = len(t)
    bounds = [0]
    for cum in np.cumsum(fractions)[:-1]:
        bounds.append(_tie_safe_cut(ts, int(round(cum * n))))
    bounds.append(n)
    if any(b1 <= b0 for b0, b1 in zip(bounds[:-1], bounds[1:])):
        raise ValueError(
            f"cannot split {n} rows into time slices {list(fractions)}: too few rows or distinct sample_time values"
        )
    return [order[b0:b1] for b0, b1 in zip(bounds[:-1], bounds[1:])]


def as_float(s: pd.Series, kind: str) -> np.ndarray:
    """Column as a new float array: datetimes as days since 1970-01-01 (UTC), timedeltas
    in days, anything unparseable or infinite as NaN."""
    if kind == "datetime" and not ptypes.is_datetime64_any_dtype(s):
        s = pd.to_datetime(s, errors="coerce", utc=True)
    elif kind == "timedelta" and not ptypes.is_timedelta64_dtype(s):
        s = pd.to_timedelta(s, errors="coerce")
    if ptypes.is_datetime64_any_dtype(s):
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        return ((s - pd.Timestamp(0)) / pd.Timedelta(days=1)).to_numpy(dtype="float64", na_value=np.nan)
    if ptypes.is_timedelta64_dtype(s):
        return (s / pd.Timedelta(days=1)).to_numpy(dtype="float64", na_value=np.nan)
    if not ptypes.is_numeric_dtype(s):
        s = pd.to_numeric(s, errors="coerce")
    v = s.to_numpy(dtype="float64", na_value=np.nan)
    return np.where(np.isfinite(v), v, np.nan)  # always a copy: never touch the caller's data


def as_str(s: pd.Series) -> pd.Series:
    """Values as strings (so mixed-type object columns compare consistently), NaN kept."""
    s = s.astype(object)
    missing = s.isna().to_numpy()
    out = s.astype(str)
    out[missing] = np.nan
    return out


def linear_inputs(numeric: list[str], categorical: list[str], discrete: list[str] = ()) -> ColumnTransformer:
    """The design matrix of a linear candidate, as an unfitted ColumnTransformer over the named columns:

    * `numeric`: median-imputed with a missing indicator, rank-gaussed (heavy-tailed counts and money enter on a
      comparable, bounded scale), standardised;
    * `discrete`: numeric columns with a few values (a contract's term: 30, 91, 365) also one level per value,
      since the target need not be monotone in them;
    * `categorical`: one-hot with an explicit ``MISSING`` level, at unit variance like the numbers (an unscaled
      0/1 column of a 15 % level would be penalised ~8x harder, shrinking e.g. a segment effect toward zero).

    Columns not named are dropped. Categorical columns must hold objects, not pandas categoricals
    (:func:`linear_frame`)."""
    parts = []
    if numeric:
        parts.append(("num", Pipeline([
            ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
            ("rank", QuantileTransformer(output_distribution="normal", n_quantiles=200, subsample=50_000,
                                         random_state=0)),
            ("scale", StandardScaler()),
        ]), list(numeric)))
    if discrete:
        parts.append(("disc", Pipeline([
            ("impute", SimpleImputer(strategy="constant", fill_value=-1.0, keep_empty_features=True)),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
            ("scale", StandardScaler(with_mean=False)),
        ]), list(discrete)))
    if categorical:
        parts.append(("cat", Pipeline([
            ("impute", SimpleImputer(strategy="constant", fill_value=MISSING, keep_empty_features=True)),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
            ("scale", StandardScaler(with_mean=False)),
        ]), list(categorical)))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.3)


def linear_frame(X: pd.DataFrame) -> pd.DataFrame:
    """`X` with its pandas categorical columns as object columns, as :func:`linear_inputs` takes them (its
    SimpleImputer wants objects, not categoricals, for string levels)."""
    return X.apply(lambda s: s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s)
