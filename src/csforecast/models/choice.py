"""Choosing among fitted candidates on a later, time-ordered slice of rows, where a few hundred outcomes
cannot tell apart candidates within their noise.

* :func:`clustered_mean` is a mean and its cluster-robust variance (rows of one cluster share an outcome: the
  snapshots of one renewal decision);
* :func:`one_se_choice` is the one-standard-error rule: the simpler candidate is kept unless a more flexible
  one beats it by more than one standard error of the paired difference of their per-row losses;
* :func:`simplest_within_one_se` is the same rule along an ordered grid (a penalty from strongest to weakest):
  the simplest candidate within one standard error of the best.

Used by :class:`csforecast.models.ChurnClassifier` (logistic regression against LightGBM and the blend; the
logistic regression's penalty) and :class:`csforecast.models.ExpansionModel` (ridge regression against LightGBM).
"""
from __future__ import annotations

import numpy as np

__all__ = ["clustered_mean", "one_se_choice", "simplest_within_one_se"]


def clustered_mean(r, clusters) -> tuple[float, float]:
    """Mean of ``r`` and the cluster-robust variance of that mean (rows of one cluster share an outcome)."""
    r = np.asarray(r, dtype=float)
    _, cid = np.unique(np.asarray(clusters), return_inverse=True)
    m = float(r.mean())
    s = np.bincount(cid, weights=r - m)
    return m, float(np.sum(s * s) / len(r) ** 2)


def one_se_choice(scores: dict, row_losses: dict, clusters, *, preferred: str, held) -> tuple[str, dict]:
    """The candidate to keep: the lowest score in ``scores`` (candidate -> mean loss on the later slice), except
    that a candidate in ``held`` must beat ``preferred`` by more than one standard error of the paired
    difference of their per-row losses (``row_losses``: candidate -> losses on the same rows; the standard error
    cluster-robust over ``clusters``), else ``preferred`` is kept. A candidate not in ``held`` wins outright.

    Returns ``(name, margin)``; ``margin`` holds ``best``, ``difference`` (the preferred candidate's mean loss
    minus the best's) and ``se`` when the rule was applied, else is empty. Pure."""
    best = min(scores, key=scores.get)
    if best not in held or preferred not in row_losses or best not in row_losses:
        return best, {}
    diff, var = clustered_mean(np.asarray(row_losses[preferred]) - np.asarray(row_losses[best]), clusters)
    margin = {"best": best, "difference": diff, "se": float(np.sqrt(var))}
    return (best if diff > np.sqrt(var) else preferred), margin


def simplest_within_one_se(row_losses: dict, clusters):
    """The one-standard-error rule along a grid: of the candidates in ``row_losses`` (candidate -> per-row losses
    on the same rows, in order from simplest to most flexible, e.g. a penalty from strongest to weakest), the
    first whose mean loss exceeds the best's by no more than one standard error of their paired difference
    (cluster-robust over ``clusters``). The best itself when nothing simpler is that close. Pure."""
    means = {k: float(np.mean(v)) for k, v in row_losses.items()}
    best = min(means, key=means.get)
    for name, losses in row_losses.items():
        if name == best:
            return best
        diff, var = clustered_mean(np.asarray(losses) - np.asarray(row_losses[best]), clusters)
        if diff <= np.sqrt(var):
            return name
    return best
