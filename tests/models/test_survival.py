import pickle

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter, WeibullAFTFitter
from lifelines.datasets import load_rossi
from scipy.special import gamma, gammainc
from sklearn.base import clone

from csforecast.models import SurvivalModel
from csforecast.metrics.survival import (
    brier_scores,
    calibration_error_at,
    censoring_survival_at,
    harrell_c_index,
    integrated_brier_score,
    kaplan_meier_at,
    survival_metrics,
)

ATOL = 1e-10


@pytest.fixture(scope="module")
def rossi():
    return load_rossi()


@pytest.fixture(scope="module")
def cox(rossi):
    return SurvivalModel(kind="cox").fit(rossi, "week", "arrest")


@pytest.fixture(scope="module")
def weibull(rossi):
    return SurvivalModel(kind="weibull").fit(rossi, "week", "arrest")


def _cmp(ours, theirs):
    np.testing.assert_allclose(ours["coef"], theirs["coef"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours["se"], theirs["se(coef)"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours["p"], theirs["p"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours["ci_low"], theirs["coef lower 95%"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours["ci_high"], theirs["coef upper 95%"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours["exp_coef"], theirs["exp(coef)"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours["z"], theirs["z"], rtol=0, atol=ATOL)
    assert list(ours.index) == list(theirs.index)


def simulate(n, seed=0, beta=(0.7, -0.5), plan_effect=None, rho=1.5, lam0=300.0, entry_max=None):
    """Weibull PH: S(t|x) = exp(-(t/lam0)^rho * exp(lp)); uniform censoring."""
    plan_effect = plan_effect or {"basic": 0.0, "enterprise": -0.6, "pro": 0.3}
    rng = np.random.default_rng(seed)
    m = n * 3 if entry_max else n
    x1 = rng.normal(size=m)
    x2 = (rng.random(m) < 0.4).astype(int)
    plan = rng.choice(list(plan_effect), size=m)
    lp = beta[0] * x1 + beta[1] * x2 + np.array([plan_effect[p] for p in plan])
    T = lam0 * (rng.exponential(size=m) / np.exp(lp)) ** (1 / rho)
    entry = np.zeros(m) if entry_max is None else rng.uniform(0, entry_max, m)
    C = entry + rng.uniform(0, 2.5 * lam0, m)
    df = pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "plan": plan,
            "duration": np.minimum(T, C),
            "churned": (T <= C).astype(int),
            "entry": entry,
            "true_lp": lp,
        }
    )
    if entry_max is not None:
        df = df[T > entry].head(n).reset_index(drop=True)  # only customers still alive at entry are observed
    return df


def true_surv(lp, times, rho=1.5, lam0=300.0):
    return np.exp(-np.outer(np.exp(lp), (np.asarray(times, float) / lam0) ** rho))


# ------------------------------------------------------------------ exact reproduction
def test_cox_reproduces_lifelines_and_r(rossi, cox):
    ref = CoxPHFitter().fit(rossi, "week", "arrest")
    _cmp(cox.summary, ref.summary)
    assert cox.concordance_index_ == pytest.approx(ref.concordance_index_, abs=ATOL)
    # R survival::coxph(Surv(week, arrest) ~ ., rossi)
    assert cox.summary.loc["fin", "coef"] == pytest.approx(-0.3794, abs=1e-3)
    assert cox.summary.loc["age", "coef"] == pytest.approx(-0.0574, abs=1e-3)
    assert cox.summary.loc["prio", "coef"] == pytest.approx(0.0915, abs=1e-3)
    assert cox.dropped_columns_ == [] and cox.feature_names_ == list(ref.params_.index)
    # our entry-aware Breslow baseline equals lifelines' when there is no entry_col
    H = cox.baseline_cumulative_hazard_
    np.testing.assert_allclose(
        H.loc[ref.baseline_cumulative_hazard_.index].to_numpy(), ref.baseline_cumulative_hazard_.iloc[:, 0], rtol=1e-10
    )


def test_weibull_reproduces_lifelines(rossi, weibull):
    ref = WeibullAFTFitter().fit(rossi, "week", "arrest")
    _cmp(weibull.summary, ref.summary.loc["lambda_"])
    _cmp(weibull.ancillary_summary, ref.summary.loc["rho_"])
    assert weibull.concordance_index_ == pytest.approx(ref.concordance_index_, abs=ATOL)
    assert weibull.rho_ == pytest.approx(np.exp(ref.params_.loc[("rho_", "Intercept")]))
    assert weibull.intercept_ == pytest.approx(ref.params_.loc[("lambda_", "Intercept")])


@pytest.mark.parametrize("kind,penalizer,l1_ratio", [("cox", 0.1, 0.0), ("cox", 0.05, 0.5), ("weibull", 0.1, 0.0)])
def test_penalised_reproduces_lifelines(rossi, kind, penalizer, l1_ratio):
    ours = SurvivalModel(kind=kind, penalizer=penalizer, l1_ratio=l1_ratio).fit(rossi, "week", "arrest")
    Fitter = CoxPHFitter if kind == "cox" else WeibullAFTFitter
    ref = Fitter(penalizer=penalizer, l1_ratio=l1_ratio).fit(rossi, "week", "arrest").summary
    _cmp(ours.summary, ref if kind == "cox" else ref.loc["lambda_"])


def test_weights_and_params(rossi):
    df = rossi.assign(w=np.where(rossi["prio"] > 2, 2, 1))
    ours = SurvivalModel().fit(df, "week", "arrest", weights_col="w")
    ref = CoxPHFitter().fit(df, "week", "arrest", weights_col="w")
    _cmp(ours.summary, ref.summary)
    est = SurvivalModel(kind="weibull", penalizer=0.2)
    assert est.get_params()["penalizer"] == 0.2 and clone(est).kind == "weibull"
    with pytest.raises(ValueError):
        SurvivalModel(kind="lognormal").fit(rossi, "week", "arrest")


# ------------------------------------------------------------------ encoding
def test_categorical_encoding_and_unseen_levels(rossi):
    rng = np.random.default_rng(1)
    df = rossi.assign(segment=rng.choice(["smb", "mid", "ent"], size=len(rossi)), flag=rng.random(len(rossi)) < 0.5)
    m = SurvivalModel().fit(df, "week", "arrest")
    assert m.category_levels_["segment"] == ["ent", "mid", "smb"]
    assert {"segment[mid]", "segment[smb]", "flag[True]"} <= set(m.feature_names_)
    manual = rossi.assign(
        **{"segment[mid]": (df.segment == "mid").astype(float), "segment[smb]": (df.segment == "smb").astype(float)},
        **{"flag[True]": df.flag.astype(float)},
    )
    _cmp(m.summary, CoxPHFitter().fit(manual, "week", "arrest").summary)
    # unseen level -> all-zero dummies -> same as reference level
    probe = df.head(3).copy()
    as_ref = probe.assign(segment="ent")
    unseen = probe.assign(segment="brand-new")
    pd.testing.assert_series_equal(m.predict_risk(unseen), m.predict_risk(as_ref))
    contrib = m.contributions(df.head(5))
    assert list(contrib.columns) == m.covariates_ and "segment" in contrib.columns
    np.testing.assert_allclose(contrib.sum(1), m.lifelines_model_.predict_log_partial_hazard(m._design(df.head(5))))


def test_missing_values_and_constant_columns(rossi):
    df = rossi.copy().assign(const=1.0)
    df["age"] = df["age"].astype(float)
    df.loc[df.index[::7], "age"] = np.nan
    df["segment"] = np.where(rossi["prio"] > 3, "heavy", "light").astype(object)
    df.loc[df.index[::11], "segment"] = None
    with pytest.warns(UserWarning, match="const"):
        m = SurvivalModel().fit(df, "week", "arrest")
    assert m.dropped_columns_ == ["const"]
    assert "age__missing" in m.feature_names_ and m.missing_indicator_columns_ == ["age"]
    assert "segment[<missing>]" in m.feature_names_
    med = df["age"].median()
    assert m.imputation_medians_["age"] == med
    manual = rossi.assign(
        age=df["age"].fillna(med),
        age__missing=df["age"].isna().astype(float),
        **{"segment[light]": (df.segment == "light").astype(float), "segment[<missing>]": df.segment.isna().astype(float)},
    )
    manual = manual[["week", "arrest", "fin", "age", "age__missing", "race", "wexp", "mar", "paro", "prio",
                     "segment[light]", "segment[<missing>]"]]
    _cmp(m.summary, CoxPHFitter().fit(manual, "week", "arrest").summary)
    # a column complete at fit but missing at predict is imputed with its median (no error)
    plain = SurvivalModel().fit(rossi, "week", "arrest")
    probe = rossi.head(4).astype({"prio": float})
    probe.loc[probe.index[0], "prio"] = np.nan
    filled = probe.fillna({"prio": rossi["prio"].median()})
    pd.testing.assert_frame_equal(plain.predict_survival(probe, [10, 30]), plain.predict_survival(filled, [10, 30]))
    with pytest.raises(ValueError, match="prio"):
        plain.predict_risk(rossi.drop(columns=["prio"]))


# ------------------------------------------------------------------ predictions
@pytest.mark.parametrize("which", ["cox", "weibull"])
def test_predict_survival_shape_and_monotone(rossi, cox, weibull, which):
    m = cox if which == "cox" else weibull
    times = [0, 1, 5, 20, 40, 52]
    df = rossi.iloc[10:30].set_axis([f"cust{i}" for i in range(20)])
    S = m.predict_survival(df, times)
    assert S.shape == (20, 6) and list(S.index) == list(df.index) and list(S.columns) == times
    assert m.predict_risk(df).index.equals(df.index)
    assert np.all(np.diff(S.to_numpy(), axis=1) <= 1e-15)
    assert np.all((S.to_numpy() >= 0) & (S.to_numpy() <= 1))
    np.testing.assert_allclose(S[0], 1.0)
    # agrees with lifelines at/after the first training time
    ref = m.lifelines_model_.predict_survival_function(m._design(rossi.iloc[10:30]), times=times[1:]).T
    np.testing.assert_allclose(S[times[1:]].to_numpy(), ref.to_numpy(), rtol=1e-9)


@pytest.mark.parametrize("which", ["cox", "weibull"])
def test_conditional_after(rossi, cox, weibull, which):
    m = cox if which == "cox" else weibull
    df = rossi.head(25).assign(tenure=np.arange(25) % 13 * 2.0)
    times = np.array([1.0, 5.0, 10.0, 20.0])
    cond = m.predict_survival(df, times, conditional_after="tenure").to_numpy()
    c = df["tenure"].to_numpy()
    uncond_ct = np.vstack([m.predict_survival(df.iloc[[i]], c[i] + times).to_numpy()[0] for i in range(len(df))])
    S_c = np.array([m.predict_survival(df.iloc[[i]], [c[i]]).iloc[0, 0] for i in range(len(df))])
    assert np.all(cond >= uncond_ct - 1e-12)
    np.testing.assert_allclose(cond, uncond_ct / S_c[:, None], rtol=1e-9)
    # array and scalar forms
    np.testing.assert_allclose(m.predict_survival(df, times, conditional_after=c).to_numpy(), cond)
    np.testing.assert_allclose(
        m.predict_survival(df, times, conditional_after=4.0).to_numpy(),
        m.predict_survival(df, times, conditional_after=np.full(len(df), 4.0)).to_numpy(),
    )
    if which == "weibull":
        ref = m.lifelines_model_.predict_survival_function(m._design(df), times=times, conditional_after=c).T
        np.testing.assert_allclose(cond, ref.to_numpy(), rtol=1e-10)


def test_expected_residual_lifetime(rossi, cox, weibull):
    for m in (cox, weibull):
        erl = m.expected_residual_lifetime(rossi.head(50), horizon=52)
        assert erl.index.equals(rossi.head(50).index)
        assert np.all((erl > 0) & (erl <= 52))
        erl_c = m.expected_residual_lifetime(rossi.head(50), horizon=52, conditional_after=20)
        assert np.all((erl_c > 0) & (erl_c <= 52))
    # Weibull closed form: int_0^h exp(-(t/lam)^rho) dt = lam/rho * Gamma(1/rho) * P(1/rho, (h/lam)^rho)
    X = weibull._design(rossi.head(50))
    lam = np.exp(weibull.intercept_ + X.to_numpy() @ weibull.coef_.to_numpy())
    rho, h = weibull.rho_, 52.0
    exact = lam / rho * gamma(1 / rho) * gammainc(1 / rho, (h / lam) ** rho)
    np.testing.assert_allclose(weibull.expected_residual_lifetime(rossi.head(50), h, step=0.05), exact, rtol=1e-4)


def test_contributions_sum(rossi, cox, weibull):
    c = cox.contributions(rossi)
    assert list(c.columns) == cox.covariates_
    np.testing.assert_allclose(c.sum(1), cox.lifelines_model_.predict_log_partial_hazard(rossi), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.log(cox.predict_risk(rossi)), c.sum(1), rtol=1e-10, atol=1e-12)
    # weibull: -(log lambda(x) - log lambda(mean)); times rho = exact log hazard ratio vs the mean profile
    w = weibull.contributions(rossi.head(20))
    X = weibull._design(rossi.head(20))
    loglam = weibull.intercept_ + X.to_numpy() @ weibull.coef_.to_numpy()
    loglam_mean = weibull.intercept_ + weibull.baseline_means_.to_numpy() @ weibull.coef_.to_numpy()
    np.testing.assert_allclose(w.sum(1), -(loglam - loglam_mean), rtol=1e-10)
    wh = weibull.contributions(rossi.head(20), hazard_scale=True).sum(1)
    ll = weibull.lifelines_model_
    h_x = ll.predict_hazard(X.reset_index(drop=True), times=[10.0]).to_numpy()[0]
    h_m = ll.predict_hazard(weibull.baseline_means_.to_frame().T, times=[10.0]).to_numpy()[0]
    np.testing.assert_allclose(wh, np.log(h_x / h_m), rtol=1e-8)


def test_pickle_roundtrip(rossi, cox, weibull):
    for m in (cox, weibull):
        m2 = pickle.loads(pickle.dumps(m))
        pd.testing.assert_frame_equal(m2.predict_survival(rossi.head(10), [5, 30]), m.predict_survival(rossi.head(10), [5, 30]))
        pd.testing.assert_frame_equal(m2.summary, m.summary)


# ------------------------------------------------------------------ simulated data
@pytest.fixture(scope="module")
def sim():
    return simulate(5000, seed=42)


@pytest.mark.parametrize("kind", ["cox", "weibull"])
def test_c_index_close_to_truth(sim, kind):
    train, test = sim.iloc[:2500], sim.iloc[2500:]
    m = SurvivalModel(kind=kind).fit(train.drop(columns=["true_lp", "entry"]), "duration", "churned")
    c_model = harrell_c_index(test.duration, test.churned, m.predict_risk(test))
    c_true = harrell_c_index(test.duration, test.churned, test.true_lp)
    assert c_true > 0.65
    assert abs(c_model - c_true) < 0.01
    coef = m.coef_ if kind == "cox" else -m.coef_ * m.rho_  # AFT -> PH scale
    assert coef["x1"] == pytest.approx(0.7, abs=0.1) and coef["plan[pro]"] == pytest.approx(0.3, abs=0.15)


def test_left_truncation_entry_col():
    df = simulate(3000, seed=7, entry_max=300.0)
    fit_df = df.drop(columns=["true_lp"])
    m = SurvivalModel().fit(fit_df, "duration", "churned", entry_col="entry")
    ref = CoxPHFitter().fit(fit_df.astype({"plan": "category"}).pipe(pd.get_dummies, columns=["plan"], drop_first=True, dtype=float)
                            .rename(columns=lambda c: c.replace("plan_", "plan[") + "]" if c.startswith("plan_") else c),
                            "duration", "churned", entry_col="entry")
    np.testing.assert_allclose(m.coef_.to_numpy(), ref.params_.loc[m.feature_names_].to_numpy(), atol=ATOL)
    assert m.coef_["x1"] == pytest.approx(0.7, abs=0.1)
    base = pd.DataFrame({"x1": [0.0], "x2": [0], "plan": ["basic"]})
    times = [150.0, 300.0, 450.0]
    truth = true_surv([0.0], times)[0]
    err_entry = np.abs(m.predict_survival(base, times).to_numpy()[0] - truth).max()
    naive = SurvivalModel().fit(fit_df.drop(columns=["entry"]), "duration", "churned")
    err_naive = np.abs(naive.predict_survival(base, times).to_numpy()[0] - truth).max()
    assert err_entry < 0.06 and err_naive > 0.1  # ignoring delayed entry biases S upwards
    w = SurvivalModel(kind="weibull").fit(fit_df, "duration", "churned", entry_col="entry")
    assert w.rho_ == pytest.approx(1.5, abs=0.15)
    assert np.abs(w.predict_survival(base, times).to_numpy()[0] - truth).max() < 0.06


def test_breslow_with_entry_matches_brute_force():
    rng = np.random.default_rng(3)
    n = 60
    entry = rng.integers(0, 5, n).astype(float)
    T = entry + rng.integers(1, 10, n)
    E = rng.random(n) < 0.7
    lph = rng.normal(size=n)
    w = rng.integers(1, 3, n).astype(float)
    H = SurvivalModel._breslow(T, E.astype(float), w, entry, lph)
    times = np.unique(T)
    brute, acc = [], 0.0
    for t in times:
        risk = sum(w[j] * np.exp(lph[j]) for j in range(n) if entry[j] < t <= T[j])
        acc += sum(w[i] for i in range(n) if T[i] == t and E[i]) / risk
        brute.append(acc)
    np.testing.assert_allclose(H.loc[times].to_numpy(), brute, rtol=1e-12)
    assert H.iloc[0] == 0.0 and H.index[0] == 0.0


# ------------------------------------------------------------------ evaluation helpers
def test_kaplan_meier_matches_lifelines(sim):
    kmf = KaplanMeierFitter().fit(sim.duration, sim.churned)
    ts = [0.0, 50.0, 200.5, 400.0, sim.duration.max() + 10]
    np.testing.assert_allclose(kaplan_meier_at(sim.duration, sim.churned, ts), kmf.survival_function_at_times(ts), rtol=1e-12)
    assert isinstance(kaplan_meier_at([1, 2, 3], [1, 0, 1], 2.5), float)
    assert kaplan_meier_at([1, 2, 3], [1, 0, 1], 2.5) == pytest.approx(2 / 3)
    # censoring KM: G(2) = 1 - 1/3, left limit at 2 is 1
    assert censoring_survival_at([1, 2, 3, 4], [1, 0, 1, 0], 2.0) == pytest.approx(2 / 3)
    assert censoring_survival_at([1, 2, 3, 4], [1, 0, 1, 0], 2.0, left=True) == pytest.approx(1.0)


def test_brier_hand_example():
    # T=[1,2,3,4], E=[1,0,1,0]; censoring KM: G(t)=1 for t<2, 2/3 on [2,4).  Constant S(2.5)=0.8:
    # i=1 event before t: 0.8^2/G(1-)=0.64; i=2 censored before t: 0; i=3,4 alive: 0.2^2/(2/3)=0.06 each
    bs = brier_scores([1, 2, 3, 4], [1, 0, 1, 0], np.full((4, 1), 0.8), [2.5])
    assert bs[0] == pytest.approx((0.64 + 0 + 0.06 + 0.06) / 4)
    # at t=1.5 nobody censored yet: (0.8^2 + 3 * 0.2^2) / 4
    bs2 = brier_scores([1, 2, 3, 4], [1, 0, 1, 0], np.full((4, 2), 0.8), [1.5, 2.5])
    assert bs2[0] == pytest.approx((0.64 + 3 * 0.04) / 4)
    assert integrated_brier_score([1, 2, 3, 4], [1, 0, 1, 0], np.full((4, 2), 0.8), [1.5, 2.5]) == pytest.approx(
        (bs2[0] + bs2[1]) / 2
    )
    # undefined beyond the last follow-up
    assert np.isnan(brier_scores([1, 2, 3, 4], [1, 0, 1, 0], np.full((4, 1), 0.8), [5.0])[0])
    # perfect information (S_i(t) = 1{t < T_i}) scores exactly 0
    T = np.array([1.0, 2, 3, 4, 5, 6])
    times = np.array([0.5, 1.5, 2.5, 3.5, 4.5])
    perfect = (times[None, :] < T[:, None]).astype(float)
    assert integrated_brier_score(T, [1, 0, 1, 1, 0, 1], perfect, times) == 0.0


def test_ibs_oracle_beats_km_and_calibration(sim):
    train, test = sim.iloc[:2500], sim.iloc[2500:]
    times = np.arange(10.0, 601.0, 10.0)
    oracle = true_surv(test.true_lp, times)
    km = np.tile(kaplan_meier_at(train.duration, train.churned, times), (len(test), 1))
    kw = dict(train_durations=train.duration, train_events=train.churned)
    ibs_oracle = integrated_brier_score(test.duration, test.churned, oracle, times, **kw)
    ibs_km = integrated_brier_score(test.duration, test.churned, km, times, **kw)
    assert 0 < ibs_oracle < ibs_km < 0.25
    m = SurvivalModel().fit(train.drop(columns=["true_lp", "entry"]), "duration", "churned")
    surv = m.predict_survival(test, times)
    metrics = survival_metrics(test.duration, test.churned, m.predict_risk(test), surv, **kw,
                               calibration_times=(90, 180, 365, 10_000))
    assert set(metrics) == {"c_index", "integrated_brier", "calibration_error_90", "calibration_error_180",
                            "calibration_error_365", "calibration_error_10000", "n", "n_events"}
    assert metrics["integrated_brier"] < ibs_km and abs(metrics["integrated_brier"] - ibs_oracle) < 0.01
    assert metrics["calibration_error_365"] < 0.05 and np.isnan(metrics["calibration_error_10000"])
    # calibration: oracle is well calibrated, a distorted prediction is not
    k = int(np.searchsorted(times, 180))
    good = calibration_error_at(test.duration, test.churned, oracle[:, k], 180)
    bad = calibration_error_at(test.duration, test.churned, oracle[:, k] ** 3, 180)
    assert good < 0.05 < 0.2 < bad  # ~0.03 is the KM sampling-noise floor with 250 per decile
    assert calibration_error_at(test.duration[:100], test.churned[:100], oracle[:100, k], 180, n_bins=5) >= 0


def test_beyond_churn_horizon_is_one_minus_renewal_survival_past_365_days():
    from csforecast.models.snapshot_survival import CHURN_MODEL_HORIZON_DAYS, beyond_churn_horizon
    from csforecast.scoring.survival import serve

    days = [30, CHURN_MODEL_HORIZON_DAYS, CHURN_MODEL_HORIZON_DAYS + 1, 900, None, 1000]
    surv = [0.9, 0.8, 0.7, 0.6, 0.5, float("nan")]
    mask, p = beyond_churn_horizon(days, surv)
    assert mask.tolist() == [False, False, True, True, False, False]     # 365 is inside; unknowns stay out
    np.testing.assert_allclose(p[mask], [0.3, 0.4])
    assert np.isnan(p[~mask]).all()
    with pytest.raises(ValueError, match="differ in length"):
        beyond_churn_horizon([400], [0.5, 0.6])
    # the score set applies the same rule
    out = serve(pd.DataFrame({"churn_probability": 0.05, "days_to_renewal": days, "p_renewal_survival": surv,
                              "arr": 100.0}))
    assert out["churn_probability_source"].tolist() == ["model", "model", "survival", "survival", "model", "model"]
    np.testing.assert_allclose(out["churn_probability"], [0.05, 0.05, 0.3, 0.4, 0.05, 0.05])
    np.testing.assert_allclose(out["risk_arr"], out["churn_probability"] * 100.0)
