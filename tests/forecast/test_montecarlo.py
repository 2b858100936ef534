"""Monte Carlo engine: draws agree with the exact expectations and variances; tau calibration."""
from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.special import expit, logit

from csforecast.forecast.montecarlo import (
    _mean_preserving_offsets,
    _shock_nodes,
    estimate_tau,
    estimate_tau_by_segment,
    map_spread,
    shock_evidence,
    simulate_renewals,
)


def _portfolio(n, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.lognormal(9, 1, n)
    p = rng.beta(1.2, 8, n)
    m = rng.lognormal(0.03, 0.05, n)
    v = (m * 0.08) ** 2
    g = rng.choice(["Enterprise", "Mid-Market", "SMB"], n, p=[0.2, 0.3, 0.5])
    return a, p, m, v, g


@pytest.mark.parametrize("tau,budget", [(0.0, 10 ** 12), (0.4, 10 ** 12), (0.0, 300 * 4000), (0.4, 300 * 4000)])
def test_mean_matches_exact_expectation(tau, budget):
    a, p, m, v, g = _portfolio(2000)
    draws = 20_000
    sim = simulate_renewals(a, p, m, v, g, draws=draws, seed=3, tau=tau, exact_budget=budget)
    assert sim.n_exact == (2000 if budget > 2000 * draws else budget // draws)
    r, s = sim.total()
    er, es = (a * (1 - p)).sum(), (a * (1 - p) * m).sum()
    assert sim.expected_renewed.sum() == pytest.approx(er)
    assert sim.expected_successor.sum() == pytest.approx(es)
    # within 4 Monte Carlo standard errors
    assert abs(r.mean() - er) < 4 * r.std() / np.sqrt(draws)
    assert abs(s.mean() - es) < 4 * s.std() / np.sqrt(draws)
    for k, lab in enumerate(sim.groups):
        mk = g == lab
        e_g = (a[mk] * (1 - p[mk])).sum()
        assert abs(sim.renewed[k].mean() - e_g) < 4 * sim.renewed[k].std() / np.sqrt(draws)
    np.testing.assert_allclose(sim.renewed.sum(axis=0), r)


def test_variance_without_shock_is_bernoulli_variance():
    a, p, m, v, g = _portfolio(3000, seed=1)
    for budget in (10 ** 12, 500 * 20_000):           # all exact, and mostly normal remainder
        sim = simulate_renewals(a, p, m, v, g, draws=20_000, seed=5, tau=0.0, exact_budget=budget)
        r, _ = sim.total()
        sd = np.sqrt((a * a * p * (1 - p)).sum())
        assert r.std() == pytest.approx(sd, rel=0.03)


def test_shock_widens_and_keeps_the_mean():
    a, p, m, v, g = _portfolio(3000, seed=2)
    r0, _ = simulate_renewals(a, p, draws=20_000, seed=1, tau=0.0).total()
    r1, _ = simulate_renewals(a, p, draws=20_000, seed=1, tau=0.5).total()
    assert r1.std() > 3 * r0.std()
    assert abs(r1.mean() - (a * (1 - p)).sum()) < 4 * r1.std() / np.sqrt(20_000)


def test_mean_preserving_offsets():
    s, counts = _shock_nodes(0.8, 10_000, 100)
    w = counts / counts.sum()
    z = logit(np.array([0.001, 0.02, 0.1, 0.3, 0.6, 0.95]))
    c = _mean_preserving_offsets(z, s, w)
    np.testing.assert_allclose((expit(z[:, None] + c[:, None] + s[None, :]) * w).sum(axis=1), expit(z), rtol=1e-4)


def test_exact_bernoulli_frequencies_on_a_tiny_book():
    a = np.array([100.0, 200.0])
    p = np.array([0.25, 0.6])
    sim = simulate_renewals(a, p, draws=200_000, seed=9)
    r, _ = sim.total()
    exact = {0.0: 0.25 * 0.6, 100.0: 0.75 * 0.6, 200.0: 0.25 * 0.4, 300.0: 0.75 * 0.4}
    assert set(np.unique(r)) == set(exact)
    for val, prob in exact.items():
        f = np.mean(r == val)
        assert abs(f - prob) < 4 * np.sqrt(prob * (1 - prob) / 200_000)


def test_empty_book_and_seed_reproducibility():
    sim = simulate_renewals([], [], draws=100)
    assert sim.renewed.shape == (1, 100) and sim.renewed.sum() == 0
    a, p, m, v, g = _portfolio(500)
    r1 = simulate_renewals(a, p, m, v, g, draws=1000, seed=4, tau=0.3).renewed
    r2 = simulate_renewals(a, p, m, v, g, draws=1000, seed=4, tau=0.3).renewed
    np.testing.assert_array_equal(r1, r2)


def test_estimate_tau_is_zero_for_bernoulli_noise_and_recovers_a_shock():
    rng = np.random.default_rng(0)
    a, p, *_ = _portfolio(1500, seed=6)
    z = logit(p)

    def windows(tau, n=200):
        ev = []
        for _ in range(n):
            s = rng.normal(0, tau) if tau > 0 else 0.0
            churn = rng.random(len(a)) < expit(z + s)
            ev.append(shock_evidence(a, p, float(a[~churn].sum())))
        return ev

    assert estimate_tau(windows(0.0)) < 0.05
    assert estimate_tau(windows(0.3)) == pytest.approx(0.3, abs=0.08)
    assert estimate_tau([]) == 0.0


def test_estimate_tau_covers_the_next_window_with_few_windows():
    """Split-conformal's rank with few windows: with 4 and with 8 past windows, the interval the estimated tau
    gives the next (exchangeable) window covers it about 80 % of the time, not less and not much more (measured
    0.79 and 0.82 over 1,500 trials, docs/forecast.md). The bounds tell the rule from the uncorrected 0.8
    quantile (0.70 with 4 windows) and from the conservative rank ceil((n + 1) 0.8) (0.89-0.90 with 8)."""
    rng = np.random.default_rng(11)
    a, p, *_ = _portfolio(1500, seed=6)
    z = logit(p)
    pool = []
    for _ in range(3000):
        churn = rng.random(len(a)) < expit(z + rng.normal(0, 0.3))
        pool.append(shock_evidence(a, p, float(a[~churn].sum())))
    pool = np.array(pool)
    trials = 1000
    for n in (4, 8):
        covered = []
        for _ in range(trials):
            idx = rng.choice(len(pool), n + 1, replace=False)
            tau = estimate_tau(pool[idx[:n]])
            err, V, D = pool[idx[n]]
            covered.append(abs(err) / np.sqrt(V + tau * tau * D * D) <= 1.2816)
        se = np.sqrt(0.16 / trials)
        assert 0.8 - 3 * se <= np.mean(covered) <= 0.86, (n, np.mean(covered))


def test_tau_by_segment_covers_each_segment():
    """Mondrian split-conformal: when two segments' windows differ (a small book with a strong shock, a large
    one without), tau from each segment's own windows covers each segment's next window at least 80 % of the
    time; the tau pooled over both under-covers the shocked segment and over-covers the other. Segments
    without windows are left to the pooled value."""
    rng = np.random.default_rng(5)
    books = {"A": _portfolio(300, seed=1)[:2], "B": _portfolio(1500, seed=6)[:2]}
    shock = {"A": 0.5, "B": 0.0}

    def window(seg):
        a, p = books[seg]
        churn = rng.random(len(a)) < expit(logit(p) + rng.normal(0, shock[seg]))
        return shock_evidence(a, p, float(a[~churn].sum()))

    pools = {seg: np.array([window(seg) for _ in range(1500)]) for seg in books}

    def z(ev, tau):
        err, V, D = ev
        return abs(err) / np.sqrt(V + tau * tau * D * D)

    n = 8
    own = {seg: [] for seg in books}
    pooled = {seg: [] for seg in books}
    for _ in range(400):
        past = {seg: pools[seg][rng.choice(len(pools[seg]), n + 1, replace=False)] for seg in books}
        tau = estimate_tau_by_segment({seg: list(v[:n]) for seg, v in past.items()})
        for seg in books:
            own[seg].append(z(past[seg][n], tau["segments"][seg]) <= 1.2816)
            pooled[seg].append(z(past[seg][n], tau["overall"]) <= 1.2816)
    floor = 0.8 - 2 * np.sqrt(0.16 / 400)
    assert np.mean(own["A"]) >= floor and np.mean(own["B"]) >= floor
    assert np.mean(pooled["A"]) < np.mean(own["A"]) and np.mean(pooled["B"]) > np.mean(own["B"])
    assert estimate_tau_by_segment({None: [], "A": []}) == {"overall": 0.0, "segments": {}}


def test_map_spread_is_the_spread_the_draws_take_from_the_maps():
    """Shock evidence standardises past errors by what the Monte Carlo already draws: Bernoulli plus the
    calibration maps. The variance of simulated renewed ARR with maps and no shock is V + map_spread."""
    a, p, m, v, g = _portfolio(400, seed=2)
    rng = np.random.default_rng(4)
    maps = np.column_stack([rng.normal(1.0, 0.15, 100), rng.normal(0.0, 0.25, 100)])
    sim = simulate_renewals(a, p, draws=40_000, seed=5, maps=maps)
    r, _ = sim.total()
    bernoulli = float((a * a * p * (1 - p)).sum())
    spread = map_spread(a, p, maps)
    assert spread > 0.5 * bernoulli                       # the maps matter in this portfolio
    assert r.var() == pytest.approx(bernoulli + spread, rel=0.06)
    assert r.mean() == pytest.approx((a * (1 - p)).sum(), rel=1e-3)   # mean-preserving
    err, V, D = shock_evidence(a, p, float(r[0]), maps)
    assert V == pytest.approx(bernoulli + spread)
    assert map_spread(a, p, None) == 0.0 and map_spread(a[:0], p[:0], maps) == 0.0


def test_benchmark_100k_renewals_10k_draws():
    """The documented target is < 5 s on an idle 2-core machine (float32 blocks + normal remainder);
    the assertion leaves room for a busy CI machine."""
    a, p, m, v, g = _portfolio(100_000, seed=8)
    t = time.perf_counter()
    sim = simulate_renewals(a, p, m, v, g, draws=10_000, seed=1, tau=0.3)
    elapsed = time.perf_counter() - t
    print(f"100k x 10k Monte Carlo: {elapsed:.2f} s")
    r, _ = sim.total()
    assert abs(r.mean() - (a * (1 - p)).sum()) < 4 * r.std() / 100
    assert elapsed < 15
