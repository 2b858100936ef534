"""Calibration maps of a raw logit ``z`` to a probability: Platt (``sigmoid(a*z + b)``), isotonic regression, or
none (``sigmoid(z)``), and the time-ordered cross-validated choice between them.

Probabilities are clipped to ``[EPS, 1 - EPS]``. Used by :class:`csforecast.models.ChurnClassifier`.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from csforecast.models.tabular import time_split

__all__ = ["EPS", "METHODS", "fit_calibrator", "apply_calibrator", "choose_calibration", "clipped_log_loss",
           "bootstrap_maps", "map_quantiles"]

EPS = 1e-6  # final probabilities are clipped to [EPS, 1 - EPS]
METHODS = ("none", "platt", "isotonic")


def clipped_log_loss(y, p) -> float:
    """Log loss of binary ``y`` for ``p`` clipped to [EPS, 1 - EPS] (both labels assumed possible)."""
    return float(log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1]))


def fit_calibrator(name: str, z, y):
    """Fit one map on raw logits ``z`` and binary ``y``: ``"platt"`` -> (a, b); ``"isotonic"`` -> a fitted
    IsotonicRegression (clipped outside the training range)."""
    if name == "platt":
        lr = LogisticRegression(C=np.inf, max_iter=1000).fit(z[:, None], y)
        return float(lr.coef_[0, 0]), float(lr.intercept_[0])
    return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(z, y)


def apply_calibrator(name: str, cal, z) -> np.ndarray:
    """Probabilities from raw logits ``z`` through the map ``name`` with fitted parameters ``cal`` (None for
    ``"none"``), clipped to [EPS, 1 - EPS]."""
    if len(z) == 0:
        return np.empty(0)
    if name == "platt":
        a, b = cal
        p = expit(a * z + b)
    elif name == "isotonic":
        p = cal.predict(z)
    else:
        p = expit(z)
    return np.clip(p, EPS, 1 - EPS)


def choose_calibration(method: str, z, y, t) -> tuple[str, object, dict[str, float]]:
    """Pick and fit the calibration of raw logits ``z`` (binary ``y``, times ``t`` for the time-ordered split).

    ``method`` is ``"auto"``, ``"platt"``, ``"isotonic"`` or ``"none"``. With ``"auto"`` every map is scored by
    time-ordered 2-fold cross-validation (fit on the earlier half, score the later one, and vice versa) and
    the lowest log loss wins; Platt when the halves cannot be cross-validated. A single-class ``y`` gives
    ``"none"`` (with a warning). Returns (method used, fitted map or None, cross-validated log loss per
    method, empty unless "auto" cross-validated)."""
    scores: dict[str, float] = {}
    if method != "none" and len(np.unique(y)) < 2:
        warnings.warn("calibration slice has a single class; predictions are left uncalibrated", stacklevel=4)
        method = "none"
    if method == "auto":
        try:
            halves = time_split(t, [0.5, 0.5])
        except ValueError:
            halves = None
        if halves is None or any(len(np.unique(y[h])) < 2 for h in halves):
            method = "platt"  # too little data to cross-validate: the 2-parameter map is the safe choice
        else:
            for name in METHODS:
                losses = []
                for a, b in (halves, halves[::-1]):
                    cal = fit_calibrator(name, z[a], y[a]) if name != "none" else None
                    losses.append(clipped_log_loss(y[b], apply_calibrator(name, cal, z[b])) * len(b))
                scores[name] = float(sum(losses) / len(y))
            method = min(scores, key=scores.get)
    fitted = fit_calibrator(method, z, y) if method in ("platt", "isotonic") else None
    return method, fitted, scores


def bootstrap_maps(g, y, clusters=None, n_maps: int = 100, seed: int = 0, max_iter: int = 25) -> np.ndarray:
    """How uncertain a calibration is: (n_maps, 2) Platt maps ``(slope, intercept)`` of the calibrated logit
    ``g`` refitted on cluster-bootstrap resamples of the calibration rows (``clusters``: rows that share an
    outcome, e.g. one renewal decision; default every row its own). Each resample reweights whole clusters by
    Poisson(1) counts; the fit is a weighted 2-parameter logistic regression (Newton, all resamples at once).
    A calibration refitted on its own rows maps near (1, 0); the spread of the maps is the sampling error of
    the calibration (its level and slope), not the full model variance. Empty (0, 2) when ``y`` has one class."""
    g = np.asarray(g, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(g) == 0 or len(np.unique(y)) < 2:
        return np.empty((0, 2))
    _, cid = np.unique(np.arange(len(g)) if clusters is None else np.asarray(clusters), return_inverse=True)
    rng = np.random.default_rng(seed)
    w = rng.poisson(1.0, size=(n_maps, cid.max() + 1))[:, cid].astype(float)        # (B, n)
    beta = np.zeros((n_maps, 2))
    beta[:, 0] = 1.0
    X = np.column_stack([g, np.ones_like(g)])                                        # (n, 2)
    for _ in range(max_iter):
        eta = beta @ X.T                                                              # (B, n)
        q = 1.0 / (1.0 + np.exp(-np.clip(eta, -30, 30)))
        r = w * (y[None, :] - q)
        grad = r @ X                                                                  # (B, 2)
        h = w * q * (1 - q)
        H = np.stack([h @ (X[:, 0] * X[:, 0]), h @ X[:, 0], h @ X[:, 0], h.sum(axis=1)], axis=1).reshape(-1, 2, 2)
        H = H + 1e-9 * np.eye(2)[None]
        step = np.linalg.solve(H, grad[:, :, None])[:, :, 0]
        beta += np.clip(step, -5, 5)
        if np.max(np.abs(step)) < 1e-8:
            break
    ok = np.all(np.isfinite(beta), axis=1)
    return beta[ok]


def map_quantiles(p, maps, quantiles=(0.1, 0.9)) -> list[np.ndarray]:
    """Quantiles over the maps of ``sigmoid(slope * logit(p) + intercept)`` per probability ``p``."""
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    maps = np.asarray(maps, dtype=float).reshape(-1, 2)
    if len(maps) == 0:
        return [p.copy() for _ in quantiles]
    z = np.log(p / (1 - p))
    q = expit(z[:, None] * maps[None, :, 0] + maps[None, :, 1])
    return [np.clip(x, EPS, 1 - EPS) for x in np.quantile(q, list(quantiles), axis=1)]
