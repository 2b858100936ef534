"""Forecast error metrics (definitions in docs/metrics.md).

All functions take array-likes of equal length, aligned by POSITION (pandas indexes are ignored). Pairs
where any input is NaN are dropped; a result with nothing to average (or a zero denominator) is NaN.

    wape(a, f)               = sum|a - f| / sum|a|
    mape(a, f)               = mean(|a - f| / |a|) over the pairs with a != 0
    bias(a, f)               = sum(f - a) / sum|a|       (> 0: over-forecast)
    interval_coverage(a,l,h) = share of pairs with l <= a <= h (bounds inclusive, up to rounding: within_interval)
"""
from __future__ import annotations

import numpy as np

__all__ = ["bias", "interval_coverage", "mape", "wape", "within_interval"]

# relative: well above single precision's rounding of a sum of a window's renewals (a few 1e-7), far below any
# difference between two ARR totals that matters ($1 in $1M)
TIE_TOLERANCE = 1e-6


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


def within_interval(actual, lo, hi):
    """Elementwise ``lo <= actual <= hi``, bounds included, up to rounding (a relative ``TIE_TOLERANCE``).

    An actual equal to a bound happens where a window holds a few large renewals (the renewed total takes few
    values, and a bound is often one of them); it counts as inside however it was summed. The same ARR amounts
    summed in another order, or in single precision as the Monte Carlo sums its draws
    (``forecast.montecarlo``), differ by up to a few parts in 10^7, and by how much depends on the CPU's
    arithmetic: a tolerance below that (1e-9 before) made such a tie inside on one machine and outside on
    another. A bool for scalars, else a bool array.
    """
    a, l, h = (np.asarray(x, dtype=float) for x in (actual, lo, hi))
    tol = TIE_TOLERANCE * np.maximum(np.maximum(np.abs(a), np.abs(l)), np.abs(h))
    inside = (a >= l - tol) & (a <= h + tol)
    return bool(inside) if inside.ndim == 0 else inside


def interval_coverage(actual, lo, hi) -> float:
    """Share of actuals inside their interval, bounds included (`within_interval`): mean(lo <= actual <= hi).

    Raises ValueError when some lo > hi. For a well-calibrated 80 % interval this is about 0.80 (further from it,
    either way, where the actual takes few values, e.g. the renewed ARR of a few large renewals).
    """
    a, l, h = _aligned(actual, lo, hi, names=("actual", "lo", "hi"))
    if (l > h).any():
        raise ValueError(f"{int((l > h).sum())} interval(s) have lo > hi")
    return float(np.mean(within_interval(a, l, h))) if len(a) else float("nan")
