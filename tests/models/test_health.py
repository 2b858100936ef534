import math
import os
import pickle
from itertools import permutations

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from csforecast.models import HealthScoreModel
from csforecast.models.health import (
    COEF_SCALE,
    _champion_stability,
    _exec_recency,
    _least_risky_rank,
    _Rank,
    band_of,
    exact_shapley,
    health_from_eta,
    shapley_contributions,
    textbook_bands,
    textbook_score,
)

ATOL = 1e-9


def _sig(z):
    return 1 / (1 + np.exp(-z))


def make_rows(n_accounts=1500, months=4, seed=0, nps_sign=-1.0, noise_engagement=False, with_nps=True):
    """Snapshot-like rows driven by a latent health h; churn depends on the account's level."""
    rng = np.random.default_rng(seed)
    acc = np.repeat(np.arange(n_accounts), months)
    mu_a = rng.normal(0, 1, n_accounts)
    mu = mu_a[acc]
    n = len(acc)
    h = mu + rng.normal(0, 0.3, n)
    seats = np.round(rng.lognormal(3.5, 0.8, n_accounts))[acc] + 1
    util = 0.8 * _sig(0.2 + 1.1 * h + rng.normal(0, 0.3, n))
    e = (lambda: rng.normal(0, 1, n)) if noise_engagement else (lambda: h)
    df = pd.DataFrame({
        "account_id": [f"A{i:05d}" for i in acc],
        "segment": rng.choice(["SMB", "Mid-Market", "Enterprise"], n_accounts)[acc],
        "arr": seats * 500.0, "days_to_renewal": rng.uniform(0, 365, n), "tenure_days": rng.uniform(100, 900, n),
        "seats": seats,
        "seat_utilisation": util,
        "seat_utilisation_90d": util * rng.uniform(0.9, 1.1, n),
        "key_feature_breadth": rng.binomial(10, _sig(-0.3 + h)) / 10,
        "key_features_used_90d": rng.binomial(10, _sig(-0.3 + h)) / 7,
        "active_users_30d": util * seats,
        "active_users_90d": util * seats * rng.uniform(0.8, 1.2, n),
        "active_users_prev30d": util * seats * rng.uniform(0.8, 1.2, n),
        "touches_90d": rng.poisson(np.exp(1 + 0.3 * e())),
        "days_since_exec_meeting": np.where(rng.random(n) < 0.3, np.nan,
                                            np.exp(4.5 - 0.5 * e() + rng.normal(0, .5, n))),
        "respondent_roles_365d": np.clip(np.round(1.5 + 0.5 * e() + rng.normal(0, 0.7, n)), 0, 3),
        "days_since_champion_left": np.where(rng.random(n) < 0.8, np.nan, rng.uniform(1, 700, n)),
        "tickets_p1_90d": rng.poisson(0.3 * np.exp(-0.5 * h)),
        "tickets_90d": rng.poisson(0.2 * seats ** 0.6 * np.exp(-0.5 * h)),
        "tickets_30d": rng.poisson(0.07 * seats ** 0.6 * np.exp(-0.5 * h)),
        "open_tickets": rng.poisson(0.5, n).astype(float),
        "mean_resolution_days_180d": np.where(rng.random(n) < 0.05, np.nan, rng.lognormal(1.2 - 0.2 * h, 0.5)),
        "csat_latest": np.where(rng.random(n) < 0.2, np.nan,
                                np.clip(np.round(3.9 + 0.7 * h + rng.normal(0, .7, n)), 1, 5)),
        "ticket_csat_180d": np.where(rng.random(n) < 0.1, np.nan, np.clip(4.0 + 0.5 * h + rng.normal(0, .5, n), 1, 5)),
    })
    if with_nps:
        s = -nps_sign
        df["nps_latest"] = np.where(rng.random(n) < 0.1, np.nan,
                                    np.clip(np.round(7.4 + 1.7 * s * h + rng.normal(0, 1.8, n)), 0, 10))
        nps = np.round(100 * np.tanh(0.6 * s * h + rng.normal(0, .5, n)))
        df["account_nps_365d"] = np.where(rng.random(n) < 0.1, np.nan, np.clip(nps, -100, 100))
    y = (rng.random(n_accounts) < _sig(-2.0 - 1.5 * mu_a)).astype(int)
    df["label_churn"] = y[acc]
    return df


@pytest.fixture(scope="module")
def rows():
    return make_rows()


@pytest.fixture(scope="module")
def fitted(rows):
    return HealthScoreModel().fit(rows, rows["label_churn"])


# --- exact Shapley --------------------------------------------------------------------------------------

def _shapley_by_permutations(deltas, value):
    n, K = deltas.shape
    phi = np.zeros((n, K))
    perms = list(permutations(range(K)))
    for p in perms:
        cur = np.zeros(n)
        for k in p:
            nxt = cur + deltas[:, k]
            phi[:, k] += value(nxt) - value(cur)
            cur = nxt
    return phi / len(perms)


def test_exact_shapley_matches_the_permutation_definition():
    rng = np.random.default_rng(1)
    D = rng.normal(0, 1.5, (50, 4))

    def value(s):
        return health_from_eta(s - 0.3, -0.3)

    np.testing.assert_allclose(exact_shapley(D, value), _shapley_by_permutations(D, value), atol=1e-12)


def test_shapley_efficiency_symmetry_null_player_and_linear_case():
    rng = np.random.default_rng(2)
    D = rng.normal(0, 2, (200, 5))
    D[:, 3] = 0.0                    # a null player
    D[:, 4] = D[:, 1]                # symmetric to component 1
    value = lambda s: health_from_eta(1.0 + s, 0.4)  # noqa: E731
    phi = exact_shapley(D, value)
    np.testing.assert_allclose(phi.sum(axis=1), value(D.sum(axis=1)) - value(np.zeros(len(D))), atol=ATOL)
    np.testing.assert_array_equal(phi[:, 3], 0.0)
    np.testing.assert_allclose(phi[:, 4], phi[:, 1], atol=ATOL)
    # a linear payoff gives each player its own effect
    np.testing.assert_allclose(exact_shapley(D, lambda s: 3.0 * s), 3.0 * D, atol=ATOL)


def test_contributions_sum_exactly_to_score_minus_baseline(fitted, rows):
    s = fitted.predict(rows)
    c = fitted.contributions(rows)
    assert list(c.columns) == fitted.components_
    np.testing.assert_allclose(c.sum(axis=1).to_numpy(), s - 50.0, rtol=0, atol=ATOL)
    assert fitted.baseline_ == 50.0
    # the typical account (components at their training means) scores exactly 50, all contributions 0
    w, m = fitted.weights_, fitted.means_
    assert health_from_eta(fitted.intercept_ + w @ m, fitted.eta_ref_) == pytest.approx(50.0, abs=1e-12)
    z = shapley_contributions(m[None, :], w, m, fitted.eta_ref_, fitted.eta_ref_)
    np.testing.assert_array_equal(z, 0.0)


def test_a_single_component_gets_the_whole_change():
    # with one component the Shapley value is the whole change, whatever the shape of S
    m = np.array([50.0])
    C = np.array([[20.0], [80.0]])
    z = shapley_contributions(C, np.array([-0.05]), m, -2.0, -2.0)
    np.testing.assert_allclose(z[:, 0], health_from_eta(-2.0 - 0.05 * (C[:, 0] - 50), -2.0) - 50, atol=ATOL)


# --- score map ----------------------------------------------------------------------------------------

def test_score_is_monotone_in_churn_probability_and_reads_as_odds(fitted, rows):
    s = fitted.predict(rows)
    p = fitted.predict_proba(rows)[:, 1]
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(s[order]) <= 1e-12)
    assert np.all((s > 0) & (s < 100))
    odds = p / (1 - p)
    odds_ref = math.exp(fitted.eta_ref_)
    np.testing.assert_allclose((100 - s) / s, odds / odds_ref, rtol=1e-9)


def test_score_ignores_profile_and_contract_columns(fitted, rows):
    assert not {"segment", "arr", "days_to_renewal", "tenure_days", "account_id"} & set(fitted.feature_names_in_)
    other = rows.copy()
    other["segment"] = "Enterprise"
    other["arr"] = 1.0
    other["days_to_renewal"] = 1.0
    other["tenure_days"] = 1.0
    np.testing.assert_array_equal(fitted.predict(other), fitted.predict(rows))
    np.testing.assert_array_equal(fitted.predict(rows[list(fitted.feature_names_in_)]), fitted.predict(rows))


# --- inference ----------------------------------------------------------------------------------------

def test_inference_matches_statsmodels_cluster_logit(fitted, rows):
    C = fitted.component_scores(rows)
    y = rows["label_churn"].to_numpy(float)
    g = pd.factorize(rows["account_id"])[0]
    Z = sm.add_constant(C.to_numpy() / COEF_SCALE)
    res = sm.Logit(y, Z).fit(disp=0, cov_type="cluster", cov_kwds={"groups": g})
    naive = np.linalg.inv(-sm.Logit(y, Z).hessian(res.params))
    for i, c in enumerate(C.columns, start=1):
        r = fitted.report_["components"][c]
        assert r["coef"] == pytest.approx(res.params[i], abs=1e-8)
        assert r["se"] == pytest.approx(res.bse[i], abs=1e-8)
        assert r["p_value"] == pytest.approx(res.pvalues[i], abs=1e-10)
        assert r["ci_low"] == pytest.approx(res.conf_int()[i, 0], abs=1e-8)
        assert r["ci_high"] == pytest.approx(res.conf_int()[i, 1], abs=1e-8)
        llf0 = sm.Logit(y, np.delete(Z, i, axis=1)).fit(disp=0).llf
        deff = max(1.0, res.bse[i] ** 2 / naive[i, i])
        assert r["design_effect"] == pytest.approx(deff, rel=1e-6)
        assert r["lr_p_value"] == pytest.approx(stats.chi2.sf(2 * (res.llf - llf0) / deff, 1), rel=1e-6, abs=1e-12)
    # repeated snapshots of the same account: robust SEs are larger than the naive ones
    assert fitted.report_["components"]["deployment"]["design_effect"] > 1.2


def test_healthy_components_have_negative_coefficients(fitted):
    rep = fitted.report_["components"]
    assert set(rep) == {"deployment", "adoption", "engagement", "nps", "support"}
    assert rep["deployment"]["coef"] < 0 and rep["deployment"]["ci_high"] < 0
    assert not rep["deployment"]["flagged"] and "deployment" in fitted.used_components_
    for r in rep.values():
        assert r["ci_low"] < r["coef"] < r["ci_high"] and r["se"] > 0 and 0 <= r["lr_p_value"] <= 1
    assert fitted.skipped_ == {"value": "no data for it in the source", "sentiment": "no data for it in the source"}


def test_implausible_sign_is_flagged_and_dropped_but_reported():
    rows = make_rows(seed=3, nps_sign=+1.0)
    m = HealthScoreModel().fit(rows, rows["label_churn"])
    r = m.report_["components"]["nps"]
    assert r["coef"] > 0 and r["flagged"] and "implausible sign" in r["flag_reason"]
    assert "nps" in m.flagged_ and "nps" not in m.used_components_
    assert m.weights_[m.components_.index("nps")] == 0.0
    c = m.contributions(rows)
    np.testing.assert_array_equal(c["nps"].to_numpy(), 0.0)
    np.testing.assert_allclose(c.sum(axis=1).to_numpy(), m.predict(rows) - 50, atol=ATOL)
    assert "nps" not in m.final_report_["components"]
    keep = HealthScoreModel(drop_flagged=False).fit(rows, rows["label_churn"])
    assert "nps" in keep.used_components_ and keep.weights_[keep.components_.index("nps")] > 0


def test_component_that_adds_nothing_is_flagged():
    # engagement is pure noise here; under the null its LR p-value is ~uniform, so allow one miss in five
    flagged = 0
    for seed in range(10, 15):
        rows = make_rows(n_accounts=800, seed=seed, noise_engagement=True)
        m = HealthScoreModel(drop_insignificant=True).fit(rows, rows["label_churn"])
        r = m.report_["components"]["engagement"]
        if r["flagged"]:
            flagged += 1
            assert "engagement" not in m.used_components_
            assert r["lr_p_value"] > 0.05 or r["coef"] > 0
            if r["coef"] < 0:   # by default a plausible component that only adds nothing stays in the score
                kept = HealthScoreModel().fit(rows, rows["label_churn"])
                assert "engagement" in kept.used_components_ and "engagement" in kept.flagged_
    assert flagged >= 4


# --- transforms ---------------------------------------------------------------------------------------

def test_rank_is_a_midrank_percentile_and_missing_is_neutral(rows):
    rk = _Rank(np.array([1.0, 2.0, 2.0, 3.0, np.nan]))
    np.testing.assert_allclose(rk(np.array([1.0, 2.0, 3.0, 2.5, 0.0, 9.0])), [12.5, 50.0, 87.5, 68.75, 12.5, 87.5])
    assert np.isnan(rk(np.array([np.nan]))[0])
    m = HealthScoreModel().fit(rows, rows["label_churn"])
    probe = rows.head(3).copy()
    probe["nps_latest"] = np.nan
    probe["account_nps_365d"] = np.nan
    assert (m.measure_scores(probe)[["latest_nps", "account_nps"]] == 50.0).all().all()
    np.testing.assert_allclose(m.component_scores(probe)["nps"], 50.0, rtol=1e-12)  # weights sum to 1


def test_measure_weights_are_learned_inside_components_and_equal_weight_uses_plain_means(rows):
    m = HealthScoreModel().fit(rows, rows["label_churn"])
    for c in m.components_:
        w = [m.measure_weights_[x.name] for x in m.measures_ if x.component == c]
        assert min(w) >= 0 and abs(sum(w) - 1) < 1e-12
    ms = m.measure_scores(rows.head(50))
    for c in m.components_:
        names = [x.name for x in m.measures_ if x.component == c]
        np.testing.assert_allclose(m.component_scores(rows.head(50))[c],
                                   ms[names].to_numpy() @ np.array([m.measure_weights_[n] for n in names]))
    ew = m.component_scores(rows.head(50), equal_measure_weights=True)
    np.testing.assert_allclose(m.equal_weight_score(rows.head(50)), ew.mean(axis=1))
    dropped = [k for k, v in m.measure_report_.items() if v["dropped"]]
    assert all(m.measure_weights_[k] == 0 for k in dropped)


def test_plausible_weights_drop_the_wrong_sign():
    from csforecast.models.health import _plausible_weights

    rng = np.random.default_rng(0)
    M = rng.normal(size=(4000, 3))
    y = (rng.random(4000) < 1 / (1 + np.exp(-(-1.5 - 0.8 * M[:, 0] + 0.6 * M[:, 1])))).astype(float)
    w = _plausible_weights(M, y)
    assert w[0] > 0.6 and w[1] == 0.0 and w[2] >= 0.0


def test_fixed_transforms():
    np.testing.assert_allclose(_exec_recency(np.array([120.0, np.nan])), [50.0, 0.0])
    assert _exec_recency(np.array([30.0]))[0] > 94 and _exec_recency(np.array([180.0]))[0] < 13
    np.testing.assert_allclose(_champion_stability(np.array([np.nan, 0.0, 182.5, 365.0, 700.0])),
                               [100.0, 0.0, 50.0, 100.0, 100.0])


def test_measure_scores_rise_with_health(fitted):
    lo, hi = make_rows(n_accounts=2, months=1, seed=9), make_rows(n_accounts=2, months=1, seed=9)
    lo["seat_utilisation"], hi["seat_utilisation"] = 0.1, 0.7
    lo["mean_resolution_days_180d"], hi["mean_resolution_days_180d"] = 20.0, 1.0
    a, b = fitted.measure_scores(lo), fitted.measure_scores(hi)
    assert (b["seat_utilisation_30d"] > a["seat_utilisation_30d"]).all()
    assert (b["resolution_time"] > a["resolution_time"]).all()


def test_u_shape_finds_an_interior_optimum_and_falls_back_to_an_end():
    rng = np.random.default_rng(5)
    r = rng.random(20000)
    y_u = (rng.random(20000) < _sig(-2 + 12 * (r - 0.6) ** 2)).astype(float)
    assert _least_risky_rank(r, y_u) == pytest.approx(0.6, abs=0.05)
    y_mono = (rng.random(20000) < _sig(-3 + 2 * r)).astype(float)
    assert _least_risky_rank(r, y_mono) == 0.0


def test_u_shaped_ticket_load_scores_the_optimum_highest():
    rows = make_rows(seed=6)
    m = HealthScoreModel(components=["support"]).fit(rows, rows["label_churn"])
    m.transforms_["ticket_load"]["r_star"] = 0.5   # pretend the optimum is the median load
    med = np.median(rows["tickets_90d"] / rows["seats"])
    probe = rows.head(3).copy()
    probe["seats"] = 100.0
    probe["tickets_90d"] = [0.0, med * 100, 1000.0]
    s = m.measure_scores(probe)["ticket_load"].to_numpy()
    assert s[1] > s[0] and s[1] > s[2] and s[1] > 90


def test_components_without_data_are_skipped_and_optional_ones_used():
    rows = make_rows(seed=7, with_nps=False)
    m = HealthScoreModel().fit(rows, rows["label_churn"])
    assert "nps" not in m.components_ and "nps" in m.skipped_
    rows = make_rows(seed=7)
    rng = np.random.default_rng(0)
    rows["value_realised"] = rows["seat_utilisation"] + rng.normal(0, 0.05, len(rows))
    m = HealthScoreModel().fit(rows, rows["label_churn"])
    assert "value" in m.components_ and "value" in m.report_["components"] and "value" not in m.skipped_
    with pytest.raises(ValueError, match="unknown health components"):
        HealthScoreModel(components=["deployment", "vibes"]).fit(rows, rows["label_churn"])


# --- textbook scorecard and bands --------------------------------------------------------------------

def test_textbook_bands_and_score():
    df = pd.DataFrame({
        "seat_utilisation": [0.7, 0.5, 0.2], "key_feature_breadth": [0.6, 0.3, 0.1],
        "days_since_exec_meeting": [30.0, 150.0, np.nan], "days_since_champion_left": [np.nan, np.nan, 400.0],
        "account_nps_365d": [70.0, 45.0, np.nan], "csat_latest": [4.0, np.nan, 2.0],
        "ticket_csat_180d": [np.nan, 3.5, np.nan]})
    b = textbook_bands(df)
    assert b.loc[0].tolist() == ["green"] * 5
    assert b.loc[1].tolist() == ["yellow"] * 5            # CSAT falls back to ticket CSAT 3.5
    assert b.loc[2].tolist() == ["red", "red", "red", None, "red"]
    np.testing.assert_allclose(textbook_score(df), [100.0, 50.0, 0.0])
    df.loc[0, "days_since_champion_left"] = 30.0          # champion left: engagement red
    assert textbook_bands(df).loc[0, "engagement"] == "red"
    assert textbook_score(df)[0] == pytest.approx((200 / 3 + 100) / 2)


def test_band_of_and_quantile_cutoffs(fitted, rows):
    assert list(band_of([10, 40, 69.9, 70, np.nan])) == ["red", "yellow", "yellow", "green", None]
    assert fitted.score_cutoffs(40, 70, "fixed") == (40.0, 70.0)
    lo, hi = fitted.score_cutoffs(40, 70, "quantile")
    s = fitted.predict(rows)
    assert np.mean(s < lo) == pytest.approx(0.40, abs=0.01) and np.mean(s < hi) == pytest.approx(0.70, abs=0.01)


def test_equal_weight_score_is_the_mean_of_plain_mean_components(fitted, rows):
    np.testing.assert_allclose(fitted.equal_weight_score(rows),
                               fitted.component_scores(rows, equal_measure_weights=True).mean(axis=1))


# --- scikit-learn conventions --------------------------------------------------------------------------

def test_sklearn_conventions(fitted, rows):
    m = HealthScoreModel(components=["deployment", "support"], drop_flagged=False)
    assert m.get_params() == {"components": ["deployment", "support"], "drop_flagged": False, "alpha": 0.05,
                              "cluster": True, "drop_insignificant": False, "weighting": "learned"}
    c = clone(fitted)
    assert not hasattr(c, "weights_")
    with pytest.raises(NotFittedError):
        c.predict(rows)
    again = HealthScoreModel().fit(rows, rows["label_churn"])
    np.testing.assert_array_equal(again.predict(rows), fitted.predict(rows))
    back = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(back.predict(rows), fitted.predict(rows))
    assert fitted.n_features_in_ == len(fitted.feature_names_in_)


def test_single_class_is_rejected(rows):
    with pytest.raises(ValueError, match="both churned and renewed"):
        HealthScoreModel().fit(rows, np.zeros(len(rows)))


def test_predict_with_components_is_predict_and_component_scores_in_one_pass(fitted, rows):
    """The on-demand path (one pass, from a frame or from float columns) answers exactly what the two calls do,
    including for a non-numeric value (read as missing) and a row index that is not a RangeIndex."""
    X = rows.head(40).copy()
    X.index = np.arange(len(X))[::-1] + 100
    X["csat_latest"] = X["csat_latest"].astype(object)
    X.iloc[3, X.columns.get_loc("csat_latest")] = "n/a"
    score, comps = fitted.predict_with_components(X)
    np.testing.assert_array_equal(score, fitted.predict(X))
    pd.testing.assert_frame_equal(comps, fitted.component_scores(X))
    cols = {c: pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=float) for c in fitted.feature_names_in_}
    score2, comps2 = fitted.predict_with_components(cols)
    np.testing.assert_array_equal(score2, score)
    np.testing.assert_array_equal(comps2.to_numpy(), comps.to_numpy())
    assert list(comps2.columns) == list(comps.columns) and comps2.index.equals(pd.RangeIndex(len(X)))
    with pytest.raises(KeyError):
        fitted.predict_with_components({c: v for c, v in cols.items() if c != "csat_latest"})
