"""Monitoring of served probabilities after the fact (docs/metrics.md, "Monitoring"): calibration of the
probabilities served in earlier score sets against the outcomes that have since resolved, by segment and by
horizon (days to renewal when served), with a drift flag; and the population stability index (PSI) of a
feature or prediction distribution against a reference (the champion's training data)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from csforecast.metrics.calibration import brier_score, calibration_slope, expected_calibration_error

__all__ = ["HORIZON_EDGES", "horizon_bucket", "calibration_monitor", "z_threshold", "psi", "psi_table"]

HORIZON_EDGES = (0, 30, 90, 180, 365)     # days-to-renewal buckets: 0-30, 31-90, 91-180, 181-365, >365
ECE_BOUND = 0.05                           # default drift bound on the ECE of a scope
PSI_WARNING = 0.2                          # the usual "significant shift" threshold of the PSI
MIN_N = 50                                 # a scope with fewer resolved outcomes is reported, never flagged
Z_FLAG = 3.0                               # |observed - expected churns| in sds needed to flag one scope alone
# Many scopes are tested at once (overall, each segment, each horizon): each scope's |z| must pass the
# Bonferroni threshold that keeps the chance that a calibrated model gets any scope flagged at the one-scope
# 3-sd level (0.27 %), e.g. 3.6 sd for 9 scopes.
FAMILY_FALSE_ALARM = 2 * float(norm.sf(Z_FLAG))


def z_threshold(scopes: int) -> float:
    """The |z| a scope needs when ``scopes`` scopes are tested together (``Z_FLAG`` for one)."""
    return float(norm.isf(FAMILY_FALSE_ALARM / (2 * max(int(scopes), 1))))


def horizon_bucket(days) -> np.ndarray:
    """Label of each days-to-renewal value: "0-30", "31-90", "91-180", "181-365", ">365" ("unknown" for NaN)."""
    d = np.asarray(days, dtype=float)
    labels = np.full(len(d), "unknown", dtype=object)
    lo = -np.inf
    for hi in HORIZON_EDGES[1:]:
        labels[(d > lo) & (d <= hi)] = f"{0 if lo == -np.inf else int(lo) + 1}-{hi}"
        lo = hi
    labels[d > HORIZON_EDGES[-1]] = f">{HORIZON_EDGES[-1]}"
    return labels


def _scope(y: np.ndarray, p: np.ndarray, clusters: np.ndarray | None = None) -> dict:
    n = int(len(y))
    out = {"n": n, "mean_p": float(p.mean()) if n else np.nan, "observed_rate": float(y.mean()) if n else np.nan}
    two = n > 1 and y.min() != y.max()
    out["ece"] = expected_calibration_error(y, p) if n else np.nan
    out["brier"] = brier_score(y, p) if n else np.nan
    out["calibration_slope"] = calibration_slope(y, p) if two else np.nan
    # calibration in the large in standard deviations: ECE alone is noisy on a few hundred outcomes. One renewal
    # decision is served in many score sets (monthly, for up to a year) and resolves once: its m rows share one
    # outcome, so under calibration their residuals sum to m*y - sum(p), of variance m^2 q(1 - q) (q = their mean
    # p), not sum p(1 - p): counting the rows as independent would inflate z by about sqrt(m).
    if clusters is None or n == 0:
        var = float((p * (1 - p)).sum())
        out["decisions"] = n
    else:
        codes = pd.factorize(pd.Series(clusters, dtype=object))[0]
        m = np.bincount(codes).astype(float)
        q = np.bincount(codes, weights=p) / m
        var = float((m ** 2 * q * (1 - q)).sum())
        out["decisions"] = int(len(m))
    sd = np.sqrt(var)
    out["z"] = float((y - p).sum() / sd) if sd > 0 else np.nan
    return out


def calibration_monitor(y, p, *, segment=None, days_to_renewal=None, decisions=None, bound: float = ECE_BOUND,
                        min_n: int = MIN_N) -> dict:
    """ECE, Brier and calibration slope of served probabilities ``p`` against resolved outcomes ``y`` (1 =
    churned): ``overall``, ``by_segment`` and ``by_horizon`` (:func:`horizon_bucket` of ``days_to_renewal``).
    ``decisions`` names the renewal decision of each row (e.g. account and renewal date): the rows of one
    decision, served in several score sets, share its one outcome, and both ``z`` and the ``min_n`` count treat
    them as one (``decisions`` per scope; without it every row is a decision of its own). A scope is listed in
    ``flagged`` when it has at least ``min_n`` decisions, its ECE exceeds ``bound`` and its calibration in the
    large is off by more than ``z_threshold`` standard deviations (:func:`z_threshold` of the number of scopes
    tested, reported as ``z_threshold``; 3 for one scope) (``z`` = (observed − expected churns) / sd, with
    sd² = Σ over decisions of m² q(1 − q) for a decision's m rows of mean probability q; the ECE of a few
    hundred perfectly calibrated outcomes is often above 0.05 by chance); ``drifted`` is True when any is.
    ValueError when lengths differ or p is outside [0, 1]."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if len(y) != len(p) or (decisions is not None and len(decisions) != len(p)):
        raise ValueError(f"y has {len(y)} values and p {len(p)}"
                         + ("" if decisions is None else f", decisions {len(decisions)}"))
    if len(p) and (np.nanmin(p) < 0 or np.nanmax(p) > 1):
        raise ValueError("p must lie in [0, 1]")
    d = None if decisions is None else np.asarray(decisions, dtype=object)
    out = {"bound": bound, "min_n": min_n, "overall": _scope(y, p, d), "by_segment": {}, "by_horizon": {}}
    for key, groups in (("by_segment", segment), ("by_horizon", None if days_to_renewal is None
                                                  else horizon_bucket(days_to_renewal))):
        if groups is None:
            continue
        g = pd.Series(np.asarray(groups, dtype=object)).fillna("unknown").astype(str)
        for label, idx in g.groupby(g, sort=True).indices.items():
            out[key][label] = _scope(y[idx], p[idx], None if d is None else d[idx])
    scopes = [("overall", out["overall"])] + [(f"{k}={lab}", m) for k in ("by_segment", "by_horizon")
                                               for lab, m in out[k].items()]
    tested = [(name, m) for name, m in scopes if m["decisions"] >= min_n]
    out["z_threshold"] = zt = z_threshold(len(tested))
    flagged = [{"scope": name, "ece": m["ece"], "z": m["z"], "n": m["n"], "decisions": m["decisions"]}
               for name, m in tested if np.isfinite(m["ece"]) and m["ece"] > bound and abs(m["z"]) > zt]
    out["flagged"] = flagged
    out["drifted"] = bool(flagged)
    return out


def psi(reference, current, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``: Σ (c − r)·ln(c / r) over the
    reference's quantile bins (``bins``; ties merged), shares floored at 1e-4. NaN values form their own bin.
    0 = same distribution; > 0.2 is the usual warning. NaN when the reference is empty."""
    r = np.asarray(reference, dtype=float)
    c = np.asarray(current, dtype=float)
    if len(r) == 0 or len(c) == 0:
        return float("nan")
    rf, cf = r[np.isfinite(r)], c[np.isfinite(c)]
    edges = np.unique(np.quantile(rf, np.linspace(0, 1, bins + 1))) if len(rf) else np.array([0.0])
    inner = edges[1:-1]
    rc = np.bincount(np.searchsorted(inner, rf, side="right"), minlength=len(inner) + 1)
    cc = np.bincount(np.searchsorted(inner, cf, side="right"), minlength=len(inner) + 1)
    rs = np.append(rc, len(r) - len(rf)) / len(r)
    cs = np.append(cc, len(c) - len(cf)) / len(c)
    rs, cs = np.maximum(rs, 1e-4), np.maximum(cs, 1e-4)
    return float(np.sum((cs - rs) * np.log(cs / rs)))


def psi_table(reference: pd.DataFrame, current: pd.DataFrame, columns, bins: int = 10,
              warning: float = PSI_WARNING) -> dict:
    """{column: {"psi", "warning"}} for the numeric ``columns`` present in both frames."""
    out = {}
    for col in columns:
        if col in reference.columns and col in current.columns:
            v = psi(pd.to_numeric(reference[col], errors="coerce"), pd.to_numeric(current[col], errors="coerce"),
                    bins)
            out[col] = {"psi": v, "warning": bool(np.isfinite(v) and v > warning)}
    return out
