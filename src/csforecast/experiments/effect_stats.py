"""Small statistics of the playbook effect analysis: Wilson and Newcombe intervals for proportions, Welch's
interval for a difference in means, standardised mean differences, and the survival pieces (Cox hazard ratio,
Kaplan-Meier at a time) with JSON-safe results."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from csforecast.jsonsafe import finite_float

__all__ = ["wilson", "newcombe_diff", "welch_diff", "smd", "cox_hr", "km_at"]


def _f(x, nd: int = 6):
    return finite_float(x, nd)


def wilson(k: float, n: float, z: float = 1.959964) -> tuple[float, float]:
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    den = 1 + z * z / n
    c = (p + z * z / (2 * n)) / den
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return c - h, c + h


def newcombe_diff(k1: int, n1: int, k0: int, n0: int) -> tuple[float, float, float]:
    """p1 - p0 and its Newcombe hybrid-score 95 % CI (method 10 of Newcombe 1998)."""
    p1, p0 = k1 / n1, k0 / n0
    l1, u1 = wilson(k1, n1)
    l0, u0 = wilson(k0, n0)
    d = p1 - p0
    return d, d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)


def welch_diff(x1, x0) -> tuple[float, float, float]:
    x1, x0 = np.asarray(x1, float), np.asarray(x0, float)
    d = x1.mean() - x0.mean()
    v1, v0 = x1.var(ddof=1) / len(x1), x0.var(ddof=1) / len(x0)
    se = math.sqrt(v1 + v0)
    dof = (v1 + v0) ** 2 / (v1 ** 2 / (len(x1) - 1) + v0 ** 2 / (len(x0) - 1)) if se > 0 else 1.0
    q = stats.t.ppf(0.975, dof)
    return d, d - q * se, d + q * se


def smd(x: np.ndarray, t: np.ndarray, w: np.ndarray | None = None) -> float:
    """Standardised mean difference treated vs control (pooled unweighted sd), optionally weighted."""
    w = np.ones(len(x)) if w is None else w
    ok = np.isfinite(x)
    x, t, w = x[ok], t[ok], w[ok]
    if t.sum() < 2 or (~t).sum() < 2:
        return float("nan")
    m1 = np.average(x[t], weights=w[t])
    m0 = np.average(x[~t], weights=w[~t])
    sd = math.sqrt((x[t].var(ddof=1) + x[~t].var(ddof=1)) / 2)
    return float((m1 - m0) / sd) if sd > 0 else 0.0


def cox_hr(T, E, treated, weights=None) -> dict:
    from lifelines import CoxPHFitter

    df = pd.DataFrame({"T": T, "E": E, "treated": treated.astype(float)})
    kw = {}
    if weights is not None:
        df["w"] = weights
        kw = {"weights_col": "w", "robust": True}
    if df["E"].sum() < 3:
        return {"hazard_ratio": None, "ci": [None, None], "note": "fewer than 3 churns"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cph = CoxPHFitter().fit(df, "T", "E", **kw)
    except Exception as e:  # noqa: BLE001 - e.g. no churn in one arm: no finite hazard ratio
        return {"hazard_ratio": None, "ci": [None, None], "note": f"Cox model not estimable: {e}"[:200]}
    s = cph.summary.loc["treated"]
    return {"hazard_ratio": _f(math.exp(s["coef"])), "ci": [_f(math.exp(s["coef lower 95%"])),
                                                           _f(math.exp(s["coef upper 95%"]))],
            "p_value": _f(s["p"], 8)}


def km_at(T, E, t: float, w=None) -> float | None:
    from lifelines import KaplanMeierFitter

    if len(T) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # lifelines warns that weighted KM variances are naive; we use none
        km = KaplanMeierFitter().fit(T, E, weights=w)
    return _f(float(km.survival_function_at_times(t).iloc[0]))
