"""Calibration maps of a raw logit ``z`` to a probability: Platt (``sigmoid(a*z + b)``), isotonic regression
smoothed by Platt, or none (``sigmoid(z)``), and the time-ordered cross-validated choice between them.

No map serves a probability the calibration data cannot support (docs/churn.md, "Calibration"):

* every probability is clipped to :func:`support_bounds` of the calibration slice, ``[1/(n+1), n/(n+1)]`` for
  ``n`` rows (a slice of ``n`` rows cannot tell a rate below ``1/(n+1)`` from zero);
* the isotonic map is the mean of the isotonic step function and the Platt curve fitted on the same rows
  (:class:`SmoothedIsotonic`): an end step with no churn in it (isotonic value 0) serves half the parametric
  probability, not zero;
* ``"auto"`` considers isotonic only when the slice holds at least ``ISOTONIC_MIN_CLASS_ROWS`` rows of each
  class; on smaller slices the parametric map (or none) is chosen;
* given the rows' clusters (rows that share an outcome), the Platt map's slope is shrunk toward 1 (the raw
  model's own scale) by as much as its deviation from 1 is sampling noise (:func:`shrunk_platt`): a slope fitted on a
  few dozen decisions is often far too steep or too flat by chance.

Used by :class:`csforecast.models.ChurnClassifier`.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from csforecast.models.choice import clustered_mean
from csforecast.models.tabular import time_split

__all__ = ["EPS", "METHODS", "ISOTONIC_MIN_CLASS_ROWS", "PLATT_WEIGHT", "SmoothedIsotonic", "support_bounds",
           "fit_calibrator", "apply_calibrator", "choose_calibration", "clipped_log_loss", "bootstrap_maps",
           "map_quantiles", "LEVEL_BLOCKS", "shrunk_level_offset", "shrunk_platt",
           "cv_row_losses", "clustered_mean"]

EPS = 1e-6  # the widest clip of any probability (and of the log loss)
METHODS = ("none", "platt", "isotonic")
ISOTONIC_MIN_CLASS_ROWS = 100  # "auto" tries isotonic only with at least this many rows of each class
PLATT_WEIGHT = 0.5  # weight of the Platt curve in the smoothed isotonic map
LEVEL_BLOCKS = 8  # time blocks of the training rows over which the churn level's drift is measured


def support_bounds(n: int) -> tuple[float, float]:
    """``(1/(n+1), n/(n+1))``: the most extreme probabilities ``n`` calibration rows support (``(EPS, 1-EPS)``
    when ``n`` is 0)."""
    if n <= 0:
        return EPS, 1 - EPS
    lo = max(EPS, 1.0 / (n + 1.0))
    return lo, 1.0 - lo


@dataclass(frozen=True)
class SmoothedIsotonic:
    """The isotonic step function averaged with the Platt curve fitted on the same rows:
    ``p = (1 - w) * isotonic(z) + w * sigmoid(a*z + b)`` with ``w = platt_weight``. Monotone (both parts are
    non-decreasing in ``z`` when ``a >= 0``), and never zero where the Platt curve is not."""

    isotonic: IsotonicRegression
    platt: tuple[float, float]
    platt_weight: float = PLATT_WEIGHT

    def predict(self, z) -> np.ndarray:
        a, b = self.platt
        return (1 - self.platt_weight) * self.isotonic.predict(z) + self.platt_weight * expit(a * np.asarray(z) + b)


def clipped_log_loss(y, p) -> float:
    """Log loss of binary ``y`` for ``p`` clipped to [EPS, 1 - EPS] (both labels assumed possible)."""
    return float(log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1]))


def _platt(z, y) -> tuple[float, float]:
    lr = LogisticRegression(C=np.inf, max_iter=1000).fit(z[:, None], y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _platt_covariance(z, y, a: float, b: float, clusters) -> np.ndarray:
    """Cluster-robust (sandwich) covariance of the Platt fit ``(a, b)`` on ``z``, ``y``: rows of one cluster
    share an outcome (e.g. the monthly snapshots of one renewal decision), so they count once, not ~12 times."""
    X = np.column_stack([z, np.ones_like(z)])
    q = expit(a * z + b)
    bread = (X * (q * (1 - q))[:, None]).T @ X
    _, cid = np.unique(np.asarray(clusters), return_inverse=True)
    score = np.zeros((cid.max() + 1, 2))
    np.add.at(score, cid, X * (y - q)[:, None])
    inv = np.linalg.pinv(bread)
    return inv @ (score.T @ score) @ inv


def shrunk_platt(z, y, clusters) -> tuple[tuple[float, float], dict]:
    """The Platt map ``(a, b)`` of raw logits ``z`` (binary ``y``) with its slope shrunk toward 1 (the raw
    model's own scale) by as much as the fitted slope's deviation from 1 is sampling noise; the intercept is
    then refitted with the slope held, so the map still reproduces the slice's churn rate (moving the level is
    :func:`shrunk_level_offset`'s job).

    Empirical Bayes, one parameter: the fitted slope ``a_hat`` deviates from 1 by ``d = a_hat - 1`` with
    sampling variance ``se2`` (cluster-robust: ``clusters`` are rows that share an outcome, counted once); the
    slope kept is ``1 + w * d`` with ``w = tau2 / (tau2 + se2)`` and ``tau2 = max(0, d**2 - se2)``, the
    method-of-moments estimate of the true deviation's square (the positive-part James-Stein weight
    ``w = max(0, 1 - se2 / d**2)``): a deviation within one standard error of 1 is dropped, one of many
    standard errors is kept nearly whole. A slice of a few dozen decisions (``se2`` ~0.3-1) has its slope
    pulled well toward 1; a slice of thousands keeps its fit. (A between-period ``tau2`` from time blocks of
    the training rows, as the level uses, was measured and rejected: in-sample block slopes drift with the
    features' history length and kept slopes of 3.)
    Returns ``((a, b), detail)`` with ``detail`` = ``slope_fitted``, ``se2``, ``tau2``, ``weight``, ``slope``.
    Requires both classes in ``y``."""
    from scipy.optimize import brentq

    z, y = np.asarray(z, dtype=float), np.asarray(y, dtype=float)
    a_hat, b_hat = _platt(z, y)
    se2 = float(_platt_covariance(z, y, a_hat, b_hat, clusters)[0, 0])
    d = a_hat - 1.0
    tau2 = max(0.0, d * d - se2)
    w = 1.0 if not np.isfinite(se2) or se2 <= 0 or (tau2 + se2) <= 0 else tau2 / (tau2 + se2)
    a = 1.0 + w * d
    if w == 1.0:
        b = b_hat
    else:  # the intercept that matches the slice's rate with the slope held: sum(y - sigmoid(a*z + b)) = 0
        gap = lambda c: float(np.sum(expit(a * z + c)) - np.sum(y))  # noqa: E731 (increasing in c)
        lo, hi = b_hat - 50.0, b_hat + 50.0
        b = float(brentq(gap, lo, hi, xtol=1e-10)) if gap(lo) < 0 < gap(hi) else b_hat
    return (float(a), float(b)), {"slope_fitted": a_hat, "se2": se2, "tau2": tau2, "weight": w, "slope": float(a)}


def fit_calibrator(name: str, z, y, clusters=None):
    """Fit one map on raw logits ``z`` and binary ``y``: ``"platt"`` -> (a, b); ``"isotonic"`` -> a
    :class:`SmoothedIsotonic` (isotonic regression clipped outside the training range, averaged with Platt).
    With ``clusters`` (rows that share an outcome), the Platt map has its slope shrunk toward 1 by its
    sampling noise (:func:`shrunk_platt`); without, the plain maximum likelihood fit. The isotonic map (a
    candidate only on slices of at least ``ISOTONIC_MIN_CLASS_ROWS`` rows of each class, where the shrinkage
    is small) keeps the plain Platt curve: on the 3,000-account seed-3 book shrinking it moved ECE from 0.0169
    to 0.0178 (benchmarks/RESULTS.md, "Platt slope shrinkage")."""
    if name == "platt":
        return _platt(z, y) if clusters is None else shrunk_platt(z, y, clusters)[0]
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(z, y)
    return SmoothedIsotonic(iso, _platt(z, y))


def apply_calibrator(name: str, cal, z, bounds: tuple[float, float] = (EPS, 1 - EPS)) -> np.ndarray:
    """Probabilities from raw logits ``z`` through the map ``name`` with fitted parameters ``cal`` (None for
    ``"none"``), clipped to ``bounds`` (:func:`support_bounds` of the calibration slice)."""
    if len(z) == 0:
        return np.empty(0)
    if name == "platt":
        a, b = cal
        p = expit(a * z + b)
    elif name == "isotonic":
        p = cal.predict(z)      # a SmoothedIsotonic (or, in models pickled before it, an IsotonicRegression)
    else:
        p = expit(z)
    return np.clip(p, bounds[0], bounds[1])


def crossval_halves(t, y) -> tuple[np.ndarray, np.ndarray] | None:
    """The earlier and the later half of rows at times ``t`` (:func:`time_split`, whole times kept together)
    for the time-ordered 2-fold cross-validation of :func:`cv_row_losses`, or None when they cannot be had:
    too few distinct times to split, or a half whose binary ``y`` has a single class."""
    try:
        halves = time_split(t, [0.5, 0.5])
    except ValueError:
        return None
    y = np.asarray(y)
    return None if any(len(np.unique(y[h])) < 2 for h in halves) else halves


def cv_row_losses(name: str, z, y, t, halves) -> np.ndarray:
    """Each row's out-of-fold log loss under the map ``name`` in the time-ordered 2-fold cross-validation of
    :func:`choose_calibration` (``halves``: the earlier and the later half's row indices; each half scored by
    the map fitted on the other, clipped to that half's support bounds and to ``[EPS, 1 - EPS]``). Their mean
    is the method's cross-validated log loss; per row, two candidates' losses can be compared pairwise."""
    out = np.empty(len(y))
    for a, b in (halves, halves[::-1]):
        cal = fit_calibrator(name, z[a], y[a], t[a]) if name != "none" else None
        p = np.clip(apply_calibrator(name, cal, z[b], support_bounds(len(a))), EPS, 1 - EPS)
        out[b] = -(y[b] * np.log(p) + (1 - y[b]) * np.log(1 - p))
    return out


def choose_calibration(method: str, z, y, t) -> tuple[str, object, dict[str, float]]:
    """Pick and fit the calibration of raw logits ``z`` (binary ``y``, times ``t`` for the time-ordered split;
    rows with one time also count as one cluster for the Platt slope's shrinkage, :func:`shrunk_platt`).

    ``method`` is ``"auto"``, ``"platt"``, ``"isotonic"`` or ``"none"``. With ``"auto"`` every map is scored by
    time-ordered 2-fold cross-validation (fit on the earlier half, score the later one, and vice versa, each
    clipped to the support bounds of the half it was fitted on) and the lowest log loss wins; Platt when the
    halves cannot be cross-validated. Isotonic is a candidate only with at least ``ISOTONIC_MIN_CLASS_ROWS``
    rows of each class. A single-class ``y`` gives ``"none"`` (with a warning). Returns (method used, fitted
    map or None, cross-validated log loss per method, empty unless "auto" cross-validated)."""
    scores: dict[str, float] = {}
    if method != "none" and len(np.unique(y)) < 2:
        warnings.warn("calibration slice has a single class; predictions are left uncalibrated", stacklevel=4)
        method = "none"
    if method == "auto":
        halves = crossval_halves(t, y)
        if halves is None:
            method = "platt"  # too little data to cross-validate: the 2-parameter map is the safe choice
        else:
            few = min(int(np.sum(y == 1)), int(np.sum(y == 0))) < ISOTONIC_MIN_CLASS_ROWS
            for name in METHODS:
                if name == "isotonic" and few:
                    continue
                scores[name] = float(cv_row_losses(name, z, y, t, halves).mean())
            method = min(scores, key=scores.get)
    fitted = fit_calibrator(method, z, y, t) if method in ("platt", "isotonic") else None
    return method, fitted, scores


def shrunk_level_offset(p_cal, p_hist, y_cal, t_cal, p_train, y_train, t_train,
                        n_blocks: int = LEVEL_BLOCKS) -> tuple[float, dict]:
    """The log-odds offset that moves the calibrated probabilities' level from the calibration slice's churn
    rate toward the level the whole training history implies, by as much as the slice's rate is noise.

    A calibration slice of a few hundred decisions has a churn rate a few points off the truth by chance; a
    map fitted to it serves that error to every account. Here the slice's deviation from the history-implied
    level, ``d = mean(y_cal) - mean(p_hist)`` (``p_hist``: the uncalibrated model, fitted on the earlier rows,
    on the slice's rows), is kept in proportion ``w = tau2 / (tau2 + se2)``: ``se2`` is the sampling variance
    of ``d`` (cluster-robust, clusters ``t_cal``: rows with one sample time share outcomes); ``tau2`` is the
    between-period variance of the level, by the method of moments over ``n_blocks`` time blocks of the
    training rows (in-sample residuals ``y_train - p_train``) and the slice: mean squared block deviation
    minus mean sampling variance, floored at 0. A level that truly drifts (large ``tau2``) keeps the slice's
    rate; a stationary one takes the history's. Returns ``(offset, detail)``: ``offset`` solves
    ``mean(sigmoid(logit(p_cal) + offset)) = mean(p_hist) + w * d`` for the calibrated slice probabilities
    ``p_cal``; ``detail`` holds ``d``, ``se2``, ``tau2``, ``weight``, ``target``. ``(0.0, {})`` when the
    training rows cannot be cut into ``n_blocks`` time blocks."""
    from scipy.optimize import brentq
    from scipy.special import logit

    p_cal, p_hist, y_cal = (np.asarray(a, dtype=float) for a in (p_cal, p_hist, y_cal))
    y_train, p_train = np.asarray(y_train, dtype=float), np.asarray(p_train, dtype=float)
    try:
        blocks = time_split(np.asarray(t_train), [1.0 / n_blocks] * n_blocks)
    except ValueError:
        return 0.0, {}
    d, se2 = clustered_mean(y_cal - p_hist, t_cal)
    dev = [clustered_mean(y_train[b] - p_train[b], np.asarray(t_train)[b]) for b in blocks] + [(d, se2)]
    tau2 = max(0.0, float(np.mean([m * m for m, _ in dev]) - np.mean([v for _, v in dev])))
    w = 1.0 if se2 <= 0 else tau2 / (tau2 + se2)
    target = float(np.clip(p_hist.mean() + w * d, EPS, 1 - EPS))
    zc = logit(np.clip(p_cal, EPS, 1 - EPS))
    gap = lambda c: float(expit(zc + c).mean()) - target  # noqa: E731 (increasing in c)
    offset = 0.0 if abs(gap(0.0)) < 1e-12 else float(brentq(gap, -10.0, 10.0, xtol=1e-10))
    return offset, {"deviation": d, "se2": se2, "tau2": tau2, "weight": w, "target": target}


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


# from this many probabilities on, map_quantiles reads the order statistics from the arrangement of the maps'
# lines (:func:`_rank_table`) instead of partitioning every row's log-odds under every map
ARRANGEMENT_MIN_ROWS = 4096


def map_quantiles(p, maps, quantiles=(0.1, 0.9)) -> list[np.ndarray]:
    """Quantiles over the maps of ``sigmoid(slope * logit(p) + intercept)`` per probability ``p``.

    Equal, bit for bit, to ``np.quantile`` ("linear" method) of ``expit`` of every map's log-odds: expit is
    monotone, so the order statistics it interpolates are expit of the log-odds' own (expit on 2 values per
    quantile instead of on every map). The order statistics come from a partition of each row's log-odds
    under every map, or, from ``ARRANGEMENT_MIN_ROWS`` rows on, from the arrangement of the maps' lines
    (:func:`_rank_table`: which map holds each rank between two crossings), evaluated with the same
    arithmetic; rows too close to a crossing for rounding to be ruled out are partitioned."""
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    maps = np.asarray(maps, dtype=float).reshape(-1, 2)
    if len(maps) == 0:
        return [p.copy() for _ in quantiles]
    z = np.log(p / (1 - p))
    b = len(maps)
    qs = np.asarray(quantiles, dtype=float)
    virtual = (b - 1) * qs                                   # numpy's virtual index (method "linear")
    below = np.clip(np.floor(virtual), 0, b - 1).astype(int)
    above = np.clip(below + 1, 0, b - 1)
    gamma = virtual - np.floor(virtual)
    ranks = np.unique(np.concatenate([below, above]))
    stats = _order_statistics(z, maps, ranks)                # (n, len(ranks)): the log-odds at those ranks
    out = []
    for lo_i, hi_i, t in zip(below, above, gamma):
        a = expit(np.ascontiguousarray(stats[:, np.searchsorted(ranks, lo_i)]))
        c = expit(np.ascontiguousarray(stats[:, np.searchsorted(ranks, hi_i)]))
        d = c - a
        x = c - d * (1 - t) if t >= 0.5 else a + d * t
        out.append(np.clip(x, EPS, 1 - EPS))
    return out


def _partitioned_statistics(z: np.ndarray, maps: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """The values at ``ranks`` (ascending) of ``z * slope + intercept`` over the maps, per row: a partition."""
    lin = z[:, None] * maps[None, :, 0] + maps[None, :, 1]
    return np.partition(lin, ranks, axis=1)[:, ranks]


def _order_statistics(z: np.ndarray, maps: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """:func:`_partitioned_statistics`, to the bit, read from the arrangement of the maps' lines when there are
    enough rows (and no two maps are the same line): between two consecutive crossings of lines the order of
    the lines is fixed, so each rank is one known line, evaluated with the partition's arithmetic. A row whose
    value at a rank is within rounding reach of the value at the next rank either side (near a crossing) is
    partitioned instead."""
    b = len(maps)
    if len(z) < ARRANGEMENT_MIN_ROWS or b < 2 or len(np.unique(maps, axis=0)) < b:
        return _partitioned_statistics(z, maps, ranks)
    near = np.unique(np.clip(np.concatenate([ranks - 1, ranks, ranks + 1]), 0, b - 1))
    crossings, lines = _rank_table(maps.tobytes(), b, tuple(near.tolist()))
    held = lines[np.searchsorted(crossings, z)]               # (n, len(near)): the line at each rank
    slope, intercept = maps[:, 0], maps[:, 1]
    vals = z[:, None] * slope[held] + intercept[held]
    # rounding of z * slope + intercept is ~1e-16 of its terms: 1e-12 of them rules it out
    reach = 1e-12 * (1.0 + np.abs(z) * np.abs(slope).max() + np.abs(intercept).max())
    gaps = np.diff(vals, axis=1)                              # consecutive ranks of `near`
    pos = np.searchsorted(near, ranks)
    doubtful = np.zeros(len(z), dtype=bool)
    for k in pos:
        if k > 0:
            doubtful |= ~(gaps[:, k - 1] > reach)
        if k < len(near) - 1:
            doubtful |= ~(gaps[:, k] > reach)
    out = vals[:, pos]
    if doubtful.any():
        out[doubtful] = _partitioned_statistics(z[doubtful], maps, ranks)
    return out


@functools.lru_cache(maxsize=16)
def _rank_table(maps_bytes: bytes, b: int, ranks: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The arrangement of the lines ``z * slope + intercept`` of ``b`` distinct maps (``maps.tobytes()``): the
    sorted points where two lines cross, and for each of the ``len(crossings) + 1`` intervals they bound (the
    interval of ``z`` is ``np.searchsorted(crossings, z)``) the line at each of ``ranks`` in ascending order."""
    maps = np.frombuffer(maps_bytes, dtype=float).reshape(b, 2)
    slope, intercept = maps[:, 0], maps[:, 1]
    i, j = np.triu_indices(b, 1)
    ds = slope[i] - slope[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = (intercept[j] - intercept[i]) / ds
    crossings = np.unique(cross[np.isfinite(cross)])
    if len(crossings):
        inside = np.concatenate([[crossings[0] - 1.0], (crossings[:-1] + crossings[1:]) / 2,
                                 [crossings[-1] + 1.0]])
    else:
        inside = np.zeros(1)
    order = np.argsort(inside[:, None] * slope[None, :] + intercept[None, :], axis=1, kind="stable")
    return crossings, np.ascontiguousarray(order[:, list(ranks)])
