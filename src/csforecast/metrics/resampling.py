"""Cluster bootstrap for validation metrics.

Validation rows are monthly snapshots of renewals, several per account, so rows are not independent: every
resample draws *accounts* with replacement and takes all their rows. The metrics recomputed in each resample
are the ones in `csforecast.metrics.calibration` (e.g. `rank_auc`, cheap enough for every resample).
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

__all__ = ["cluster_resamples", "percentile_ci"]


def cluster_resamples(clusters: np.ndarray, n: int, seed: int) -> Iterator[np.ndarray]:
    """Row indices of `n` cluster-bootstrap resamples (clusters drawn with replacement, all their rows)."""
    codes, uniq = pd.factorize(pd.Series(clusters).astype(str))
    rng = np.random.default_rng(seed)
    rows = np.arange(len(codes))
    for _ in range(n):
        mult = np.bincount(rng.integers(0, len(uniq), len(uniq)), minlength=len(uniq))
        yield np.repeat(rows, mult[codes])


def percentile_ci(draws, level: float = 0.95, min_draws: int = 20) -> tuple[float | None, float | None]:
    """Percentile interval of the finite bootstrap draws (None, None with fewer than `min_draws`)."""
    d = np.asarray(draws, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) < min_draws:
        return None, None
    a = (1 - level) / 2
    return float(np.quantile(d, a)), float(np.quantile(d, 1 - a))
