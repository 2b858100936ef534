"""Forecast error metrics (definitions in docs/metrics.md).

All functions take array-likes of equal length, aligned by POSITION (pandas indexes are ignored). Pairs
where any input is NaN are dropped; a result with nothing to average (or a zero denominator) is NaN.

    wape(a, f)               = sum|a - f| / sum|a|
    mape(a, f)               = mean(|a - f| / |a|) over the pairs with a != 0
    bias(a, f)               = sum(f - a) / sum|a|       (> 0: over-forecast)
    interval_coverage(a,l,h) = share of pairs with l <= a <= h (bounds inclusive)
"""
from __future__ import annotations

import numpy as np

__all__ = ["bias", "interval_coverage", "mape", "wape"]


def _aligned(*arrays, names: tuple[str, ...]) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=np.float64).ravel() for a in arrays]
    n = len(out[0])
    for a, name in zip(out[1:], names[1:]):
        if len(a) != n:
            raise ValueError(f"{name} has {len(a)} values, {names[0]} has {n}")
    keep = np.ones(n, dtype=bool)
    for a in out:
        keep &= ~np.isnan(a)
    return [a[keep] for a in out]


def wape(actual, forecast) -> float:
    """Weighted absolute percentage error: sum|actual - forecast| / sum|actual| (NaN if sum|actual| = 0)."""
    a, f = _aligned(actual, forecast, names=("actual", "forecast"))
    den = np.abs(a).sum()
    return float(np.abs(a - f).sum() / den) if den > 0 else float("nan")


def mape(actual, forecast) -> float:
    """Mean absolute percentage error over the pairs with actual != 0 (those with actual = 0 are skipped)."""
    a, f = _aligned(actual, forecast, names=("actual", "forecast"))
    nz = a != 0
    return float(np.mean(np.abs(a[nz] - f[nz]) / np.abs(a[nz]))) if nz.any() else float("nan")


def bias(actual, forecast) -> float:
    """Relative bias: sum(forecast - actual) / sum|actual|; positive = over-forecast, negative = under."""
    a, f = _aligned(actual, forecast, names=("actual", "forecast"))
    den = np.abs(a).sum()
    return float((f - a).sum() / den) if den > 0 else float("nan")


def interval_coverage(actual, lo, hi) -> float:
    """Share of actuals inside their interval, bounds included: mean(lo <= actual <= hi).

    Raises ValueError when some lo > hi. For a well-calibrated 80 % interval this is about 0.80.
    """
    a, l, h = _aligned(actual, lo, hi, names=("actual", "lo", "hi"))
    if (l > h).any():
        raise ValueError(f"{int((l > h).sum())} interval(s) have lo > hi")
    return float(np.mean((a >= l) & (a <= h))) if len(a) else float("nan")
