"""JSON-safe values for responses: numpy scalars unwrapped, non-finite floats and missing values as null.

Pure functions, no I/O. The API serialises with ``allow_nan=False``, so everything that reaches a response
goes through `py_value` (or `jsonable` for whole results) first.
"""
from __future__ import annotations

import contextlib
import math
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd


def py_value(v: Any) -> Any:
    """A JSON-safe Python value: numpy scalars unwrapped, NaN/inf/NaT → None, containers recursed.

    Timestamps at midnight become ISO dates, other timestamps ISO date-times; anything else unknown its str.
    """
    if v is None or v is pd.NaT:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, str):
        return v
    if isinstance(v, pd.Timestamp):
        return v.date().isoformat() if v == v.normalize() else v.isoformat()
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): py_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [py_value(x) for x in v]
    with contextlib.suppress(TypeError, ValueError):
        if pd.isna(v):
            return None
    return str(v)


def iso_date(v: Any) -> str | None:
    """The ISO date (YYYY-MM-DD) of a date-like value, None when missing."""
    if v is None or v is pd.NaT:
        return None
    with contextlib.suppress(TypeError, ValueError):
        if pd.isna(v):
            return None
    return pd.Timestamp(v).date().isoformat()


def finite_or_none(x: Any) -> float | None:
    """float(x) when finite, else None."""
    x = float(x)
    return x if math.isfinite(x) else None


def jsonable(obj: Any) -> Any:
    """A whole result (dicts, lists, arrays, frames as lists of row dicts) → JSON-safe values."""
    if isinstance(obj, pd.DataFrame | pd.Series):
        from csforecast.metrics.arr import to_records

        return to_records(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    return py_value(obj)


def error_text(e: BaseException, limit: int = 300) -> str:
    """``"<Type>: <message>"`` on one line, cut to ``limit`` characters (for logs and client messages)."""
    text = f"{type(e).__name__}: {e}".replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"
