"""No served churn probability sits below (or above) what the calibration data supports (docs/churn.md,
"Calibration"): support bounds, isotonic smoothed by Platt, the parametric map on small slices."""
import numpy as np
import pandas as pd

from csforecast.models import ChurnClassifier
from csforecast.models.calibrators import (ISOTONIC_MIN_CLASS_ROWS, SmoothedIsotonic, apply_calibrator,
                                           choose_calibration, fit_calibrator, shrunk_level_offset, shrunk_platt,
                                           support_bounds)


def test_support_bounds():
    assert support_bounds(9) == (0.1, 0.9)
    lo, hi = support_bounds(999)
    assert lo == 1e-3 and abs(hi - 0.999) < 1e-12


def slice_with_a_clean_tail(n=2000, seed=0):
    """Raw logits whose lowest quarter holds no churn at all: the case that made the old isotonic map serve
    p = 1e-6 to most accounts."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-2, 1, n)
    p = 1 / (1 + np.exp(-z))
    y = (rng.random(n) < p).astype(int)
    y[z < np.quantile(z, 0.25)] = 0
    return z, y, np.arange(n)


def test_isotonic_is_smoothed_and_bounded():
    z, y, _ = slice_with_a_clean_tail()
    cal = fit_calibrator("isotonic", z, y)
    assert isinstance(cal, SmoothedIsotonic)
    assert cal.isotonic.predict(z).min() == 0.0          # the raw step function serves zero there
    lo, hi = support_bounds(len(z))
    p = apply_calibrator("isotonic", cal, z, (lo, hi))
    assert p.min() >= lo and p.max() <= hi               # within what n rows support
    assert np.mean(p <= lo) < 0.02                       # smoothed: the clean quarter is not served the floor
    assert p[z < np.quantile(z, 0.25)].mean() > 5 * lo
    assert np.all(np.diff(p[np.argsort(z)]) >= -1e-12)   # still monotone in the raw logit
    # a far-out logit is clipped to the support bounds, never to 1e-6
    assert apply_calibrator("platt", (1.0, 0.0), np.array([-40.0, 40.0]), (lo, hi)).tolist() == [lo, hi]


def test_auto_prefers_the_parametric_map_on_small_slices():
    z, y, t = slice_with_a_clean_tail(n=600, seed=1)
    assert min(y.sum(), (1 - y).sum()) < ISOTONIC_MIN_CLASS_ROWS
    method, _, scores = choose_calibration("auto", z, y, t)
    assert method in ("platt", "none") and "isotonic" not in scores
    zl, yl, tl = slice_with_a_clean_tail(n=6000, seed=2)
    _, _, scores = choose_calibration("auto", zl, yl, tl)
    assert "isotonic" in scores                          # large enough: isotonic is a candidate again


def test_churn_classifier_serves_within_its_support_bounds():
    rng = np.random.default_rng(3)
    n = 3000
    X = pd.DataFrame({"x": rng.normal(size=n), "segment": rng.choice(["SMB", "Mid"], n)})
    y = (rng.random(n) < 1 / (1 + np.exp(-(-2.5 + 1.5 * X["x"])))).astype(int)
    t = pd.Series(pd.date_range("2022-01-01", periods=n, freq="6h"))
    est = ChurnClassifier(calibration="isotonic", algorithm="logistic").fit(X, y, sample_time=t)
    lo, hi = est.prob_bounds_
    assert lo > 1e-4                                    # a slice of hundreds of rows, not 1e-6
    far = pd.DataFrame({"x": [-50.0, 0.0, 50.0], "segment": ["SMB", "SMB", "Mid"]})
    p = est.predict_proba(far)[:, 1]
    assert p.min() >= lo and p.max() <= hi
    e = est.explain(far)
    np.testing.assert_allclose(e.sum(axis=1), np.log(p / (1 - p)), atol=1e-8)


def test_the_level_offset_is_served_and_explained():
    rng = np.random.default_rng(4)
    n = 4000
    X = pd.DataFrame({"x": rng.normal(size=n), "segment": rng.choice(["SMB", "Mid"], n)})
    y = (rng.random(n) < 1 / (1 + np.exp(-(-2.0 + 1.2 * X["x"])))).astype(int)
    t = pd.Series(pd.date_range("2022-01-01", periods=n, freq="6h"))
    new = X.iloc[:50]
    for cal in ("platt", "isotonic", "none"):
        est = ChurnClassifier(calibration=cal, algorithm="logistic").fit(X, y, sample_time=t)
        flat = ChurnClassifier(calibration=cal, algorithm="logistic", level_shrinkage=False).fit(X, y, sample_time=t)
        assert flat.level_offset_ == 0.0 and flat.level_detail_ == {}
        assert 0.0 <= est.level_detail_["weight"] <= 1.0
        # a map fitted to the slice serves the slice's rate, which the offset moves toward the history's; with no
        # map the model already serves the history's level, and the offset adds the part of the slice's deviation
        # that is drift (none here: a stationary rate)
        assert (est.level_offset_ != 0.0) if cal != "none" else abs(est.level_offset_) < 1e-6
        p, q = est.predict_proba(new)[:, 1], flat.predict_proba(new)[:, 1]
        # the same map, moved by one log-odds offset
        np.testing.assert_allclose(np.log(p / (1 - p)) - np.log(q / (1 - q)), est.level_offset_, atol=1e-9)
        np.testing.assert_allclose(est.explain(new).sum(axis=1), np.log(p / (1 - p)), atol=1e-8)
        lo, hi = est.predict_interval(new)
        assert np.all(lo <= p) and np.all(p <= hi) and np.all(lo < hi)


def test_map_quantiles_is_numpy_quantile_over_every_map_bit_for_bit():
    """The P10/P90 of a probability over the bootstrapped calibration maps: found from the order statistics of
    the maps' log-odds (expit is monotone) instead of expit on every map, with the same values as
    ``np.quantile(expit(...), axis=1)`` to the last bit, whatever the number of maps and quantiles, and whether
    the order statistics come from a partition per row or (many rows) from the arrangement of the maps' lines,
    on and next to the points where two lines cross, and with two maps the same line."""
    from scipy.special import expit

    from csforecast.models import calibrators
    from csforecast.models.calibrators import ARRANGEMENT_MIN_ROWS, EPS, map_quantiles

    calibrators._rank_table.cache_clear()
    rng = np.random.default_rng(0)
    for n_maps in (1, 2, 3, 10, 99, 100, 101, -100):     # -100: 100 maps, two of them the same line
        maps = np.column_stack([rng.normal(1, 0.3, abs(n_maps)), rng.normal(0, 0.5, abs(n_maps))])
        if n_maps < 0:
            maps[7] = maps[3]
        i, j = np.triu_indices(len(maps), 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = (maps[j, 1] - maps[i, 1]) / (maps[i, 0] - maps[j, 0])
        cross = cross[np.isfinite(cross) & (np.abs(cross) < 30)][:1000]
        at = expit(np.concatenate([cross, np.nextafter(cross, np.inf), np.nextafter(cross, -np.inf)]))
        few = np.concatenate([rng.uniform(0, 1, 2000), [0.0, 1.0, 1e-300, 0.5]])
        many = np.concatenate([few, rng.uniform(0, 1, ARRANGEMENT_MIN_ROWS), at])
        for p in (few, many):
            pc = np.clip(p, EPS, 1 - EPS)
            z = np.log(pc / (1 - pc))
            lin = expit(z[:, None] * maps[None, :, 0] + maps[None, :, 1])
            for qs in ((0.1, 0.9), (0.05, 0.95), (0.0, 1.0), (0.5,), (0.3, 0.7)):
                want = np.quantile(lin, list(qs), axis=1)
                for got, w in zip(map_quantiles(p, maps, qs), want):
                    np.testing.assert_array_equal(got, np.clip(w, EPS, 1 - EPS))
    assert calibrators._rank_table.cache_info().misses > 0     # the arrangement was used


def decisions(rates, per_block=300, rows=10, seed=0, t0=0):
    """Decisions in consecutive time blocks (one churn rate each), ``rows`` snapshot rows per decision that share
    its outcome and time: (y, t) per row."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([(rng.random(per_block) < r).astype(float) for r in rates]).repeat(rows)
    t = (t0 + np.arange(per_block * len(rates))).repeat(rows)
    return y, t


def test_level_offset_takes_the_history_level_when_the_rate_is_stationary():
    # eight training blocks at 15 % churn; the calibration slice drew 11 % by chance (300 decisions): the level
    # served should go back most of the way to the history's 15 %
    y_tr, t_tr = decisions([0.15] * 8, seed=1)
    p_tr = np.full(len(y_tr), y_tr.mean())
    y_cal = np.zeros(300)
    y_cal[:33] = 1.0                                      # 33 of 300 decisions churned (11 %)
    y_cal = y_cal.repeat(10)
    t_cal = (10_000 + np.arange(300)).repeat(10)
    p_hist = np.full(3000, p_tr[0])
    p_cal = np.full(3000, 0.11)                          # a map fitted to the slice serves its rate
    offset, detail = shrunk_level_offset(p_cal, p_hist, y_cal, t_cal, p_tr, y_tr, t_tr)
    assert abs(y_cal.mean() - 0.11) < 1e-12
    assert detail["weight"] < 0.5 and offset > 0
    served = 1 / (1 + np.exp(-(np.log(0.11 / 0.89) + offset)))
    assert abs(served - detail["target"]) < 1e-9 and detail["target"] > 0.13


def test_level_offset_keeps_the_slice_level_when_the_rate_drifts():
    # the churn rate moves by 8 points between blocks: the slice's own rate is the better estimate
    y_tr, t_tr = decisions([0.05, 0.25, 0.05, 0.25, 0.05, 0.25, 0.05, 0.25], seed=2)
    p_tr = np.full(len(y_tr), y_tr.mean())
    y_cal, t_cal = decisions([0.30], seed=3, t0=10_000)
    p_hist = np.full(len(y_cal), y_tr.mean())
    p_cal = np.full(len(y_cal), y_cal.mean())
    offset, detail = shrunk_level_offset(p_cal, p_hist, y_cal, t_cal, p_tr, y_tr, t_tr)
    assert detail["weight"] > 0.9 and abs(offset) < 0.1
    # too few distinct times to cut the history into blocks: no shrinkage at all
    assert shrunk_level_offset(p_cal, p_hist, y_cal, t_cal, p_tr[:30], y_tr[:30], np.zeros(30)) == (0.0, {})


def clustered_slice(n_clusters, true_slope, seed, rows_per_cluster=12):
    """Raw logits of ``n_clusters`` decisions seen as ``rows_per_cluster`` snapshot rows each (one outcome per
    decision, as in the churn model's calibration slice), outcomes drawn from sigmoid(true_slope * z - 0.3)."""
    rng = np.random.default_rng(seed)
    zd = rng.normal(-2, 0.8, n_clusters)
    yd = (rng.random(n_clusters) < 1 / (1 + np.exp(-(true_slope * zd - 0.3)))).astype(int)
    z = np.repeat(zd, rows_per_cluster) + rng.normal(0, 0.05, n_clusters * rows_per_cluster)
    return z, np.repeat(yd, rows_per_cluster), np.repeat(np.arange(n_clusters), rows_per_cluster)


def test_platt_slope_is_shrunk_toward_one_by_its_noise_on_small_slices():
    plain, shrunk = [], []
    for seed in range(30):        # 70 decisions (a 600-account book's slice), true slope 1
        z, y, t = clustered_slice(70, 1.0, seed)
        if len(np.unique(y)) < 2:
            continue
        (a, b), detail = shrunk_platt(z, y, t)
        plain.append(detail["slope_fitted"])
        shrunk.append(a)
        assert 0 <= detail["weight"] <= 1 and abs(a - 1) <= abs(detail["slope_fitted"] - 1) + 1e-12
        assert abs(np.sum(1 / (1 + np.exp(-(a * z + b)))) - y.sum()) < 1e-6   # the slice's rate is kept
        assert fit_calibrator("platt", z, y, t) == (a, b)                       # the map "auto" serves
    plain, shrunk = np.array(plain), np.array(shrunk)
    assert np.mean((shrunk - 1) ** 2) < 0.6 * np.mean((plain - 1) ** 2)
    # a large slice whose slope truly differs from 1 keeps its fit
    z, y, t = clustered_slice(4000, 2.0, 0)
    (a, _), detail = shrunk_platt(z, y, t)
    assert detail["weight"] > 0.95 and abs(a - detail["slope_fitted"]) < 0.05 and a > 1.7
    # rows counted as one cluster each (no clusters given to the sandwich) look surer: less shrinkage
    z, y, t = clustered_slice(70, 1.0, 4)
    assert shrunk_platt(z, y, t)[1]["se2"] > shrunk_platt(z, y, np.arange(len(z)))[1]["se2"]
