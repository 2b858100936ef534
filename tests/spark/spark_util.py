"""Equality of frames computed on two engines: numbers to 1e-9 (relative or absolute), nested JSON values
(drivers, components) compared element by element with the same tolerance, everything else exactly."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd


def _missing(x) -> bool:
    return x is None or x is pd.NA or x is pd.NaT or (isinstance(x, float) and math.isnan(x))


def same_value(a, b, tol: float = 1e-9) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k], tol) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y, tol) for x, y in zip(a, b))
    if _missing(a) or _missing(b):      # None, NaN and pandas' NA are the same missing value
        return _missing(a) == _missing(b)
    if isinstance(a, (int, float, np.number)) and isinstance(b, (int, float, np.number)) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(float(a), float(b), rel_tol=tol, abs_tol=tol)
    return a == b


def differing_columns(a: pd.DataFrame, b: pd.DataFrame, tol: float = 1e-9) -> list[str]:
    """Columns of `a` whose values differ in `b` (rows aligned by position)."""
    bad = []
    for c in a.columns:
        if c not in b.columns:
            bad.append(f"{c} (missing)")
            continue
        x, y = a[c], b[c]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            ok = np.allclose(x.astype(float), y.astype(float), rtol=tol, atol=tol, equal_nan=True)
        elif pd.api.types.is_datetime64_any_dtype(x) or pd.api.types.is_datetime64_any_dtype(y):
            u = pd.to_datetime(x).dt.tz_localize(None).values.astype("datetime64[ns]")
            v = pd.to_datetime(y).dt.tz_localize(None).values.astype("datetime64[ns]")
            ok = ((u == v) | (np.isnat(u) & np.isnat(v))).all()     # NaT != NaT, but both missing is equal
        else:
            ok = all(same_value(u, v, tol) for u, v in zip(x, y))
        if not ok:
            bad.append(c)
    return bad


SPARK_TIMINGS: dict[str, float] = {}   # what the Spark tests cost, printed at the end of the session
