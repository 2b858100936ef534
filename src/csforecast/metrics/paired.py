"""Paired comparison of two models' metric on the same rows, under the account-clustered bootstrap.

The promotion guard (docs/operations.md) compares a challenger with the champion, and with simple baselines, on
the challenger's validation rows. Rows are monthly snapshots (several per account), so every resample draws
*accounts* with replacement (``resampling.cluster_resamples``) and both metrics are recomputed on the same drawn
rows: the interval of the difference accounts for what the two share.

``Metric`` functions take the row indices of a resample (repeats allowed) and return the metric there:
:func:`mean_of` (per-row losses, e.g. log loss), :func:`auc_of` (AUC of a risk score) and
:class:`ConcordanceGrid` (Harrell's C, fast enough for hundreds of resamples).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from csforecast.metrics.calibration import rank_auc
from csforecast.metrics.resampling import cluster_resamples, percentile_ci

__all__ = ["Metric", "PairedGain", "paired_gain", "mean_of", "auc_of", "ConcordanceGrid"]

Metric = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class PairedGain:
    """How much better ``a`` is than ``b`` (positive: better), on the full rows and under the bootstrap.

    gain : the difference on all rows; low, high : its percentile interval at ``level`` (None with fewer than
    20 finite resamples); share_not_better : the share of resamples where ``a`` is not better (gain <= 0);
    resamples : resamples drawn."""

    gain: float
    low: float | None
    high: float | None
    share_not_better: float | None
    level: float
    resamples: int

    @property
    def better(self) -> bool:
        """``a`` is better by a margin its interval supports: the whole interval lies above zero."""
        return self.low is not None and self.gain > 0 and self.low > 0

    @property
    def worse(self) -> bool:
        """``a`` is worse by a margin its interval supports: the whole interval lies below zero."""
        return self.high is not None and self.gain < 0 and self.high < 0

    def to_dict(self) -> dict:
        r = (lambda x: None if x is None or x != x else round(float(x), 6))
        return {"gain": r(self.gain), "ci": [r(self.low), r(self.high)], "level": self.level,
                "share_not_better": r(self.share_not_better), "resamples": self.resamples}


def paired_gain(a: Metric, b: Metric, clusters, *, higher_is_better: bool, resamples: int = 200, seed: int = 0,
                level: float = 0.90) -> PairedGain:
    """The gain of metric ``a`` over ``b`` on the same rows (``a - b`` when higher is better, ``b - a`` when
    lower is), on all rows and in ``resamples`` account-clustered bootstrap resamples (``clusters``: the
    account of each row). Resamples where either metric is undefined (NaN) are dropped."""
    sign = 1.0 if higher_is_better else -1.0
    rows = np.arange(len(np.asarray(clusters)))
    gain = sign * (a(rows) - b(rows))
    draws = np.array([sign * (a(idx) - b(idx)) for idx in cluster_resamples(clusters, resamples, seed)])
    ok = draws[np.isfinite(draws)]
    low, high = percentile_ci(ok, level)
    share = float(np.mean(ok <= 0)) if len(ok) else None
    return PairedGain(float(gain), low, high, share, level, int(resamples))


def mean_of(values) -> Metric:
    """The mean of per-row values (e.g. each row's log loss) over a resample's rows."""
    v = np.asarray(values, dtype=float)
    return lambda idx: float(v[idx].mean()) if len(idx) else float("nan")


def auc_of(y, risk) -> Metric:
    """AUC of ``risk`` (higher = more likely positive) for binary ``y`` over a resample's rows
    (``calibration.rank_auc``; NaN when a resample holds one class)."""
    y = np.asarray(y).astype(int)
    s = np.asarray(risk, dtype=float)
    return lambda idx: rank_auc(y[idx], s[idx])


class ConcordanceGrid:
    """Harrell's C-index of risk scores on fixed survival rows, for many bootstrap resamples.

    Rows (durations ``T``, events ``E``) are placed on a grid of their distinct durations x ``bins`` quantile
    bins of each risk score; a resample is a weighting of the rows, and C is read from cumulative sums of the
    grid: admissible pairs (i, j) have an event at ``T_i`` and ``T_j > T_i`` (or ``j`` censored at ``T_i``); concordant when ``risk_i >
    risk_j``; pairs in one risk bin count 1/2, as tied risks do. With ``bins`` >= the number of distinct risks
    this is exactly ``metrics.survival.harrell_c_index``; with fewer it differs only on pairs of nearly equal
    risk (the default 256 bins move C by about 1e-4; the guard reports the exact C beside)."""

    def __init__(self, durations, events, bins: int = 256):
        T = np.asarray(durations, dtype=float)
        self.E = np.asarray(events, dtype=float) > 0
        _, self.t_idx = np.unique(T, return_inverse=True)
        self.n_times = int(self.t_idx.max()) + 1 if len(T) else 0
        self.bins = int(bins)

    def _risk_bins(self, risk) -> np.ndarray:
        r = np.asarray(risk, dtype=float)
        _, dense = np.unique(r, return_inverse=True)
        k = int(dense.max()) + 1 if len(r) else 1
        return dense if k <= self.bins else np.floor(dense * self.bins / k).astype(int)

    def metric(self, risk) -> Metric:
        """The resample function of ``risk`` (higher = sooner event)."""
        rb = self._risk_bins(risk)
        B, D = int(rb.max()) + 1 if len(rb) else 1, self.n_times
        cell = self.t_idx * B + rb
        ev = np.flatnonzero(self.E)
        cens = ~self.E
        t, r = self.t_idx[ev], rb[ev]

        def c_index(idx: np.ndarray) -> float:
            w = np.bincount(idx, minlength=len(rb)).astype(float)
            H = np.bincount(cell, weights=w, minlength=D * B).reshape(D, B)
            # later[t, r]: weight of rows in risk bin r that outlived time t (a later duration, or censored at t)
            later = np.bincount(cell, weights=w * cens, minlength=D * B).reshape(D, B)
            later[:-1] += np.cumsum(H[::-1], axis=0)[::-1][1:]
            below = np.cumsum(later, axis=1)                 # weight outliving t with bin <= r
            we = w[ev]
            adm = float(np.dot(we, below[t, -1]))
            if adm == 0:
                return float("nan")
            tie = later[t, r]
            conc = float(np.dot(we, below[t, r] - 0.5 * tie))
            return conc / adm

        return c_index
