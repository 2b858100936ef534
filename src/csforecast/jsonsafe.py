"""JSON-safe values: the one definition of how numbers, dates and frames become JSON.

Lowest level of the package (imports nothing from csforecast), so every layer can use it.

* :func:`finite_float` - a number as a Python float, rounded if asked; ``None`` for None, NaN, +-inf and
  anything that is not a number; booleans stay booleans.
* :func:`json_safe` - any value: NaN / NA / NaT / inf -> None, numpy scalars -> Python scalars, dates ->
  ISO strings ("2024-04-01", or a full ISO timestamp when there is a time of day), Periods -> "2024Q1",
  containers recursed, anything else -> ``str``.
* :func:`to_records` - a DataFrame (or Series) as a list of JSON-safe row dicts.
* :func:`jsonable` - a whole result (dicts, lists, arrays, frames) made JSON-safe.
* :func:`iso_date` - the ISO date of a date-like value; :func:`error_text` - an exception on one short line.
"""
from __future__ import annotations

import datetime as _dt
import math
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["finite_float", "json_safe", "to_records", "jsonable", "iso_date", "error_text"]


def finite_float(x: Any, decimals: int | None = None, *, digits: int | None = None) -> float | bool | None:
    """``x`` as a finite Python float, or None.

    ``decimals`` rounds to that many decimal places (``round``); ``digits`` keeps that many significant
    digits (``%.{digits}g``); give at most one. None, NaN, +-inf and values ``float()`` cannot convert give
    None; a bool (Python or numpy) is returned as a Python bool."""
    if x is None:
        return None
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f):
        return None
    if digits is not None:
        return float(f"{f:.{digits}g}")
    return round(f, decimals) if decimals is not None else f


def json_safe(v: Any) -> Any:
    """A JSON-safe Python value (see the module docstring)."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating, Decimal)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, str):
        return v
    if isinstance(v, (pd.Timestamp, _dt.datetime, np.datetime64)):
        ts = pd.Timestamp(v)
        if ts is pd.NaT:
            return None
        if ts.tzinfo is None and ts == ts.normalize():
            return ts.date().isoformat()
        return ts.isoformat()
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, (pd.Timedelta, np.timedelta64)):
        td = pd.Timedelta(v)
        return None if td is pd.NaT else td.isoformat()
    if isinstance(v, pd.Period):
        return str(v)
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [json_safe(x) for x in v]
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return str(v)


def to_records(df: pd.DataFrame | pd.Series) -> list[dict]:
    """JSON-safe list of row dicts (values as :func:`json_safe`). A named index (e.g. account_id of
    ``account_arr_at``) becomes column(s); an unnamed index is dropped."""
    if isinstance(df, pd.Series):
        df = df.to_frame(df.name if df.name is not None else "value")
    if any(name is not None for name in df.index.names):
        df = df.reset_index()
    cols = [str(col) for col in df.columns]
    return [{col: json_safe(v) for col, v in zip(cols, row)} for row in df.itertuples(index=False, name=None)]


def jsonable(obj: Any) -> Any:
    """A whole result (dicts, lists, arrays, frames as lists of row dicts) -> JSON-safe values."""
    if isinstance(obj, (pd.DataFrame, pd.Series)):
        return to_records(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    return json_safe(obj)


def iso_date(v: Any) -> str | None:
    """The ISO date (YYYY-MM-DD) of a date-like value; None when missing."""
    if v is None or v is pd.NaT:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return pd.Timestamp(v).date().isoformat()


def error_text(e: BaseException, limit: int = 300) -> str:
    """``"<Type>: <message>"`` on one line, cut to ``limit`` characters (for logs and client messages)."""
    text = f"{type(e).__name__}: {e}".replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "\u2026"
