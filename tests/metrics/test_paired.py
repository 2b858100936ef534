"""The paired, account-clustered bootstrap behind the promotion guard (metrics/paired.py, resampling.py)."""
from __future__ import annotations

import numpy as np
import pytest
from lifelines.utils import concordance_index

from csforecast.metrics.paired import ConcordanceGrid, auc_of, mean_of, paired_gain
from csforecast.metrics.resampling import cluster_resamples, percentile_ci
from csforecast.metrics.survival import harrell_c_index


def _accounts(n_accounts: int, rows_each: int) -> np.ndarray:
    return np.repeat([f"A{i:04d}" for i in range(n_accounts)], rows_each)


def test_cluster_resamples_draw_whole_accounts():
    clusters = _accounts(30, 4)
    for idx in cluster_resamples(clusters, 20, seed=3):
        # every drawn account comes with all 4 of its rows, as many times as it was drawn
        counts = np.bincount(idx, minlength=len(clusters)).reshape(30, 4)
        assert (counts == counts[:, :1]).all()
        assert counts[:, 0].sum() == 30          # as many accounts as the sample holds
    a = [i.tolist() for i in cluster_resamples(clusters, 5, seed=3)]
    assert a == [i.tolist() for i in cluster_resamples(clusters, 5, seed=3)]   # seeded: reproducible


def test_identical_models_are_neither_better_nor_worse():
    rng = np.random.default_rng(0)
    loss = rng.exponential(0.5, 400)
    g = paired_gain(mean_of(loss), mean_of(loss), _accounts(100, 4), higher_is_better=False, resamples=200)
    assert g.gain == 0 and g.low == 0 and g.high == 0
    assert not g.better and not g.worse and g.share_not_better == 1.0


def test_a_clear_gain_is_supported_and_its_sign_follows_the_metric_direction():
    rng = np.random.default_rng(1)
    clusters = _accounts(150, 4)
    base = rng.exponential(0.5, len(clusters))
    better = base - 0.05 + rng.normal(0, 0.01, len(clusters))       # lower loss on nearly every row
    g = paired_gain(mean_of(better), mean_of(base), clusters, higher_is_better=False, resamples=300, seed=2)
    assert g.better and not g.worse and g.low > 0 and g.gain == pytest.approx(0.05, abs=0.005)
    flipped = paired_gain(mean_of(base), mean_of(better), clusters, higher_is_better=False, resamples=300, seed=2)
    assert flipped.worse and flipped.gain == pytest.approx(-g.gain)
    assert g.to_dict()["ci"][0] > 0 and g.to_dict()["resamples"] == 300


def test_a_gain_the_interval_does_not_support_is_not_a_win():
    rng = np.random.default_rng(4)
    clusters = _accounts(40, 3)
    a, b = rng.exponential(0.5, 120), rng.exponential(0.5, 120)      # same distribution: noise only
    g = paired_gain(mean_of(a), mean_of(b), clusters, higher_is_better=False, resamples=300)
    assert g.low < 0 < g.high and not g.better and not g.worse


def test_the_clustered_interval_covers_the_true_gain_at_its_level():
    # Rows of one account share a random effect in the gain: a row bootstrap would be too narrow. The
    # account-clustered interval must hold the true mean gain (0.02) in about `level` of repeated samples.
    covered, reps = 0, 120
    for rep in range(reps):
        rng = np.random.default_rng(100 + rep)
        n_acc, k = 60, 6
        clusters = _accounts(n_acc, k)
        account_effect = np.repeat(rng.normal(0, 0.10, n_acc), k)
        b = rng.exponential(0.5, n_acc * k)
        a = b - 0.02 - account_effect + rng.normal(0, 0.01, n_acc * k)
        g = paired_gain(mean_of(a), mean_of(b), clusters, higher_is_better=False, resamples=200, seed=rep)
        covered += g.low <= 0.02 <= g.high
    assert 0.80 <= covered / reps <= 0.97, covered / reps


def test_undefined_resamples_are_dropped_and_too_few_give_no_interval():
    y = np.array([0] * 9 + [1])                       # one positive: most account resamples have one class
    clusters = _accounts(10, 1)
    g = paired_gain(auc_of(y, np.arange(10.0)), auc_of(y, np.zeros(10)), clusters, higher_is_better=True,
                    resamples=30, seed=0)
    assert np.isfinite(g.gain)
    assert g.low is None and g.high is None and not g.better and not g.worse   # < 20 finite resamples
    assert percentile_ci([1.0, np.nan, 2.0]) == (None, None)


def test_concordance_grid_is_harrells_c_on_the_rows_and_on_resamples():
    rng = np.random.default_rng(5)
    n = 300
    T = rng.integers(1, 60, n).astype(float)          # ties in time, as monthly durations have
    E = rng.random(n) < 0.6
    risk = -T + rng.normal(0, 15, n)                  # informative, with ties broken by noise
    risk[:20] = risk[20:40]                           # and some exactly tied risks
    grid = ConcordanceGrid(T, E, bins=10_000)
    c = grid.metric(risk)
    assert c(np.arange(n)) == pytest.approx(harrell_c_index(T, E, risk), abs=1e-12)
    for idx in cluster_resamples(_accounts(n, 1), 5, seed=1):
        # a resample is the rows repeated: lifelines on the repeated rows gives the same C
        assert c(idx) == pytest.approx(concordance_index(T[idx], -risk[idx], E[idx]), abs=1e-12)
    coarse = ConcordanceGrid(T, E).metric(risk)(np.arange(n))   # 256 bins: documented ~1e-4 difference
    assert coarse == pytest.approx(c(np.arange(n)), abs=5e-3)
