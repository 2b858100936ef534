"""Number, date and chart formatting for the dashboard pages: values become display strings once, here.

A value that is not known (None, NaN, ±inf, not a number) is shown as `DASH`; negative amounts use the
typographic minus. Pure functions.
"""
from __future__ import annotations

import math
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

DASH = "—"


def finite(x: Any) -> float | None:
    """float(x) when it is a finite number (not a bool), else None."""
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def money(x: Any) -> str:
    """Compact amount: 1.23M, 45.6k, 950 (no currency: the data's)."""
    f = finite(x)
    if f is None:
        return DASH
    a = abs(f)
    if a >= 1e9:
        s = f"{f / 1e9:.2f}B"
    elif a >= 1e6:
        s = f"{f / 1e6:.2f}M"
    elif a >= 1e4:
        s = f"{f / 1e3:.0f}k"
    elif a >= 1e3:
        s = f"{f / 1e3:.1f}k"
    else:
        s = f"{f:.0f}"
    return s.replace("-", "−")


def money_full(x: Any) -> str:
    f = finite(x)
    return DASH if f is None else f"{f:,.2f}".replace("-", "−")


def pct(x: Any, nd: int = 1) -> str:
    f = finite(x)
    return DASH if f is None else f"{100 * f:.{nd}f} %".replace("-", "−")


def num(x: Any, nd: int = 1) -> str:
    f = finite(x)
    return DASH if f is None else f"{f:,.{nd}f}".replace("-", "−")


def signed(x: Any, nd: int = 1) -> str:
    f = finite(x)
    if f is None:
        return DASH
    s = f"{f:+.{nd}f}"
    return s.replace("-", "−")


def intc(x: Any) -> str:
    f = finite(x)
    return DASH if f is None else f"{int(round(f)):,}"


def day(x: Any) -> str:
    if x is None:
        return DASH
    try:
        ts = pd.Timestamp(x)
    except (TypeError, ValueError):
        return str(x)
    return DASH if ts is pd.NaT else ts.date().isoformat()


def _clean(v: Any) -> Any:
    """JSON-safe (NaN/inf -> None) values for chart specs."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, (pd.Timestamp, date)):
        return day(v)
    return v


def chart(chart_id: str, data: list[dict], layout: dict | None = None) -> dict:
    """A Plotly figure spec ({"id", "spec"}) the page script draws; the template also prints its table."""
    base = {"margin": {"l": 60, "r": 20, "t": 30, "b": 50}, "height": 320,
            "legend": {"orientation": "h", "y": -0.2}, "font": {"size": 12},
            "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)"}
    return {"id": chart_id, "spec": _clean({"data": data, "layout": {**base, **(layout or {})}})}
