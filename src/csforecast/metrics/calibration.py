"""Classification and calibration metrics for churn probabilities: the one definition of each.

Every function takes ``y`` (binary labels: 0/1 or bool) and ``p`` (predicted
probability of the positive class, in [0, 1]) as array-likes of equal length and
returns plain Python floats (or a DataFrame / dict of floats), so results can be
logged to MLflow or serialised to JSON directly.

Degenerate inputs never raise where a number can still be defined: metrics that are
undefined (e.g. AUC when ``y`` has a single class) are returned as ``float('nan')``.
Malformed inputs (length mismatch, labels other than 0/1, probabilities outside
[0, 1] or NaN) raise ``ValueError``.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score

__all__ = [
    "EPS",
    "rank_auc",
    "pr_auc",
    "clipped_log_loss",
    "brier_score",
    "expected_calibration_error",
    "calibration_slope",
    "calibration_intercept",
    "calibration_slope_intercept",
    "top_decile_lift",
    "classification_metrics",
    "calibration_curve_table",
    "by_group",
]

#: Probabilities are clipped to [EPS, 1 - EPS] wherever a logit or log is taken.
EPS = 1e-6

METRIC_KEYS = (
    "auc",
    "pr_auc",
    "log_loss",
    "brier",
    "ece",
    "calibration_slope",
    "calibration_intercept",
    "top_decile_lift",
    "n",
    "base_rate",
)


def _check(y, p) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert ``(y, p)`` to float arrays (y in {0., 1.})."""
    y = np.asarray(y)
    p = np.asarray(p, dtype=float)
    if y.ndim != 1 or p.ndim != 1:
        raise ValueError(f"y and p must be 1-D; got shapes {y.shape} and {p.shape}")
    if len(y) != len(p):
        raise ValueError(f"y and p have different lengths: {len(y)} != {len(p)}")
    if y.dtype == bool:
        y = y.astype(float)
    else:
        try:
            y = y.astype(float)
        except (TypeError, ValueError) as exc:
            raise ValueError("y must be binary (0/1 or bool)") from exc
    if np.isnan(y).any() or not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"y must be binary 0/1; found values {np.unique(y)[:10].tolist()}")
    if np.isnan(p).any():
        raise ValueError("p contains NaN")
    if (p < 0).any() or (p > 1).any():
        raise ValueError("p must lie in [0, 1]")
    return y, p


def _bin_edges(p: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    """``n_bins + 1`` bin edges.

    ``uniform``: equal-width bins on [0, 1]. ``quantile``: edges at the quantiles of
    ``p``, so bins hold roughly equal counts (tied probabilities always share a bin,
    so some bins can be empty).
    """
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    if strategy == "uniform" or (strategy == "quantile" and len(p) == 0):
        return np.linspace(0.0, 1.0, n_bins + 1)
    if strategy == "quantile":
        return np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1))
    raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")


def _binned_sums(y, p, edges):
    """Per bin: count, sum of y, sum of p. Bins are left-closed ``[e_k, e_k+1)``,
    except the last, which also holds its upper edge (so p = 1.0 is in the last bin)."""
    n_bins = len(edges) - 1
    b = np.searchsorted(edges[1:-1], p, side="right")
    return (
        np.bincount(b, minlength=n_bins),
        np.bincount(b, weights=y, minlength=n_bins),
        np.bincount(b, weights=p, minlength=n_bins),
    )


def expected_calibration_error(y, p, n_bins: int = 10, strategy: str = "uniform") -> float:
    """Expected calibration error.

    ``ECE = sum_b (n_b / n) * |mean(y in b) - mean(p in b)|`` over ``n_bins`` bins of
    the predicted probability. With ``strategy="uniform"`` (default) the bins are 10
    equal-width intervals of [0, 1] (``[0, .1), [.1, .2), ..., [.9, 1]``); with
    ``strategy="quantile"`` they are quantile bins of ``p``. Empty bins contribute 0.
    Returns NaN for empty input.
    """
    y, p = _check(y, p)
    n = len(y)
    if n == 0:
        return float("nan")
    _, sum_y, sum_p = _binned_sums(y, p, _bin_edges(p, n_bins, strategy))
    # |mean(y) - mean(p)| * n_b / n == |sum_y - sum_p| / n
    return float(np.abs(sum_y - sum_p).sum() / n)


def calibration_curve_table(y, p, n_bins: int = 10, strategy: str = "uniform") -> pd.DataFrame:
    """Reliability-diagram table: one row per bin (all bins, empty ones included).

    Columns: ``bin`` (0-based), ``n`` (rows in bin), ``mean_predicted`` and
    ``observed_rate`` (NaN for empty bins), plus ``bin_lower``/``bin_upper`` (the
    bin's edges; for the quantile strategy these are the quantile edges).
    Bins are as in :func:`expected_calibration_error`.
    """
    y, p = _check(y, p)
    edges = _bin_edges(p, n_bins, strategy)
    counts, sum_y, sum_p = _binned_sums(y, p, edges)
    mean_p = np.where(counts > 0, sum_p / np.maximum(counts, 1), np.nan)
    obs = np.where(counts > 0, sum_y / np.maximum(counts, 1), np.nan)
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins),
            "n": counts.astype(int),
            "mean_predicted": mean_p,
            "observed_rate": obs,
            "bin_lower": edges[:-1],
            "bin_upper": edges[1:],
        }
    )


def rank_auc(y, s) -> float:
    """ROC AUC of score ``s`` (higher = more likely positive) for binary ``y``, as the Mann-Whitney statistic
    with mid-ranks for ties (the same number as sklearn's ``roc_auc_score``, without its input checks, so it
    is cheap inside a bootstrap). NaN when one class is missing."""
    y = np.asarray(y).astype(bool)
    n1 = int(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def pr_auc(y, p) -> float:
    """Average precision (sklearn ``average_precision_score``); NaN when ``y`` has a single class."""
    y, p = _check(y, p)
    if len(y) == 0 or y.min() == y.max():
        return float("nan")
    return float(average_precision_score(y, p))


def clipped_log_loss(y, p) -> float:
    """Mean negative log-likelihood with ``p`` clipped to [EPS, 1 - EPS] (finite even for p = 0 or 1)."""
    y, p = _check(y, p)
    if len(y) == 0:
        return float("nan")
    pc = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc)))


def brier_score(y, p) -> float:
    """Brier score: mean squared difference between ``p`` and the 0/1 outcome."""
    y, p = _check(y, p)
    return float(np.mean((p - y) ** 2)) if len(y) else float("nan")


def _logistic_mle(X: np.ndarray, y: np.ndarray, offset: np.ndarray, start: np.ndarray) -> np.ndarray | None:
    """Unpenalised logistic regression of ``y`` on ``X`` (with an offset) by Newton-Raphson; None when there
    is no finite maximum (separation) or no convergence in 50 steps."""
    beta = start.astype(float).copy()
    for _ in range(50):
        mu = expit(X @ beta + offset)
        w = np.maximum(mu * (1 - mu), 1e-12)
        try:
            step = np.linalg.solve(X.T @ (X * w[:, None]), X.T @ (y - mu))
        except np.linalg.LinAlgError:
            return None
        beta = beta + step
        if not np.all(np.isfinite(beta)) or np.max(np.abs(beta)) > 1e4:
            return None      # (quasi-)separation: no finite maximum likelihood estimate
        if np.max(np.abs(step)) < 1e-10:
            return beta
    return None


def _recalibration_data(y, p) -> tuple[np.ndarray, np.ndarray | None]:
    """(y, logit of p clipped to [EPS, 1 - EPS]); the logits are None when y is empty or has one class."""
    y, p = _check(y, p)
    if len(y) == 0 or y.min() == y.max():
        return y, None
    return y, logit(np.clip(p, EPS, 1 - EPS))


def calibration_slope(y, p) -> float:
    """``b`` in ``logit P(y=1) = a + b * logit(p)`` (maximum likelihood); 1 is ideal, < 1 means
    over-confident predictions (too extreme), > 1 under-confident. ``p`` is clipped to [EPS, 1 - EPS]
    before the logit. NaN when ``y`` has a single class, ``p`` is constant or there is no finite estimate."""
    y, z = _recalibration_data(y, p)
    if z is None or np.ptp(z) == 0:
        return float("nan")
    beta = _logistic_mle(np.column_stack([np.ones_like(z), z]), y, np.zeros_like(z), np.array([0.0, 1.0]))
    return float("nan") if beta is None else float(beta[1])


def calibration_intercept(y, p) -> float:
    """Calibration-in-the-large: ``a`` in ``logit P(y=1) = a + offset(logit(p))`` (maximum likelihood); 0 is
    ideal, > 0 means ``p`` is too low on average. NaN when ``y`` has a single class."""
    y, z = _recalibration_data(y, p)
    if z is None:
        return float("nan")
    beta = _logistic_mle(np.ones((len(z), 1)), y, z, np.zeros(1))
    return float("nan") if beta is None else float(beta[0])


def calibration_slope_intercept(y, p) -> dict[str, float]:
    """Logistic recalibration of ``p`` against ``y``: :func:`calibration_slope` and
    :func:`calibration_intercept` as ``{"calibration_slope": b, "calibration_intercept": a}``."""
    return {"calibration_slope": calibration_slope(y, p), "calibration_intercept": calibration_intercept(y, p)}


def top_decile_lift(y, p, fraction: float = 0.1) -> float:
    """Positive rate among the top ``fraction`` (default 10 %) of rows by ``p``
    divided by the overall positive rate.

    The top group has ``ceil(fraction * n)`` rows; ties in ``p`` at the boundary are
    broken by row order (stable sort). NaN if there are no positives or no rows.
    """
    y, p = _check(y, p)
    n = len(y)
    if n == 0 or y.sum() == 0:
        return float("nan")
    k = max(1, math.ceil(fraction * n - 1e-9))
    top = np.argsort(-p, kind="stable")[:k]
    return float(y[top].mean() / y.mean())


def classification_metrics(y, p) -> dict[str, float]:
    """All headline metrics for binary probability predictions.

    Keys: ``auc`` (ROC AUC), ``pr_auc`` (average precision), ``log_loss`` (p clipped
    to [EPS, 1 - EPS]), ``brier``, ``ece`` (10 uniform bins), ``calibration_slope``,
    ``calibration_intercept``, ``top_decile_lift``, ``n`` (int) and ``base_rate``.
    Metrics undefined for the input (e.g. AUC with a single class) are NaN.
    """
    y, p = _check(y, p)
    n = len(y)
    nan = float("nan")
    if n == 0:
        return {k: (0 if k == "n" else nan) for k in METRIC_KEYS}
    out = {
        "auc": rank_auc(y, p),
        "pr_auc": pr_auc(y, p),
        "log_loss": clipped_log_loss(y, p),
        "brier": brier_score(y, p),
        "ece": expected_calibration_error(y, p),
    }
    out.update(calibration_slope_intercept(y, p))
    out["top_decile_lift"] = top_decile_lift(y, p)
    out["n"] = int(n)
    out["base_rate"] = float(y.mean())
    return {k: out[k] for k in METRIC_KEYS}


def by_group(y, p, groups, min_n: int = 20) -> dict:
    """:func:`classification_metrics` per group.

    ``groups`` is an array-like of group labels aligned with ``y``/``p`` (NaN is its
    own group). Groups with fewer than ``min_n`` rows or a single class are not
    scored: their dict has the same keys, with ``n`` and ``base_rate`` filled in and
    every other metric NaN. Returns ``{group: metrics_dict}`` in sorted group order.
    """
    y, p = _check(y, p)
    g = pd.Series(np.asarray(groups, dtype=object) if not isinstance(groups, pd.Series) else groups.to_numpy())
    if len(g) != len(y):
        raise ValueError(f"groups has length {len(g)}, expected {len(y)}")
    out = {}
    for key, idx in g.groupby(g, dropna=False, sort=True).indices.items():
        yg, pg = y[idx], p[idx]
        if len(idx) >= min_n and yg.min() != yg.max():
            out[key] = classification_metrics(yg, pg)
        else:
            m = {k: float("nan") for k in METRIC_KEYS}
            m["n"] = int(len(idx))
            m["base_rate"] = float(yg.mean())
            out[key] = m
    return out
