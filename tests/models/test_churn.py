"""ChurnClassifier: real fits on small synthetic data (no mocks)."""
import copy
import pickle
import warnings

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit
from sklearn.base import clone, is_classifier
from sklearn.metrics import roc_auc_score

from csforecast.metrics import expected_calibration_error
from csforecast.models import ChurnClassifier
from csforecast.models.churn import time_split

PLAN_EFFECT = {"basic": 0.0, "pro": 0.7, "team": -0.5, "enterprise": 1.0}


def make_data(n, seed=0, rows_per_day=50):
    """Known logistic model; one categorical, NaN in a numeric and the categorical,
    plus a bool, a pandas categorical (no effect) and weekly snapshot dates (ties)."""
    rng = np.random.default_rng(seed)
    usage = rng.normal(size=n)
    tickets = rng.poisson(2.0, n).astype(float)
    tenure = rng.uniform(0, 5, n)
    plan = rng.choice(list(PLAN_EFFECT), size=n, p=[0.4, 0.3, 0.2, 0.1])
    z = -1.2 - 0.9 * usage + 0.3 * tickets - 0.4 * tenure + pd.Series(plan).map(PLAN_EFFECT).to_numpy()
    p = expit(z)
    y = rng.binomial(1, p)
    X = pd.DataFrame(
        {
            "usage": usage,
            "tickets": tickets,
            "tenure": tenure,
            "plan": plan.astype(object),
            "auto_renew": rng.random(n) < 0.5,
            "region": pd.Categorical(rng.choice(["eu", "us", "apac"], n)),
        },
        index=pd.RangeIndex(1000, 1000 + n),
    )
    X.loc[rng.random(n) < 0.10, "usage"] = np.nan  # MCAR, after y was drawn
    X.loc[X.index[rng.random(n) < 0.05], "plan"] = None
    X.loc[X.index[rng.random(n) < 0.05], "region"] = np.nan
    day = pd.Timestamp("2023-01-02") + pd.to_timedelta(np.arange(n) // rows_per_day, unit="D")
    return X, y, p, pd.Series(day, index=X.index)


@pytest.fixture(scope="module")
def data():
    return make_data(20_000, seed=0)


@pytest.fixture(scope="module")
def small():
    X, y, p, t = make_data(3000, seed=1, rows_per_day=70)  # 60 % = 1800 rows falls inside a day
    X = X.copy()
    X["signup_at"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(3000) % 700, unit="D")
    X["never_filled"] = np.nan  # all-missing numeric and object columns
    X["notes"] = pd.Series([None] * 3000, index=X.index, dtype=object)
    return X, y, t


@pytest.fixture(scope="module")
def fitted(data):
    """Default settings, trained on the first 12k rows (later 8k rows held out).

    n_jobs=1 throughout the tests: with OpenMP's default active waiting, LightGBM with
    2 threads on a machine busy with other jobs can be 10x slower than 1 thread."""
    X, y, _, t = data
    return ChurnClassifier(n_jobs=1).fit(X.iloc[:12_000], y[:12_000], sample_time=t.iloc[:12_000])


@pytest.fixture(scope="module")
def fitted_small(small):
    X, y, t = small
    models = {}
    for alg in ("lightgbm", "logistic"):
        for cal in ("platt", "isotonic", "none"):
            models[alg, cal] = ChurnClassifier(algorithm=alg, calibration=cal, n_jobs=1).fit(X, y, sample_time=t)
    return models


def unseen(X):
    """Copy of X with categories never seen in training and extra NaN."""
    X = X.copy()
    X["plan"] = X["plan"].astype(object)
    X.iloc[::7, X.columns.get_loc("plan")] = "brand-new-plan"
    X["region"] = X["region"].cat.add_categories(["mars"])
    X.iloc[::11, X.columns.get_loc("region")] = "mars"
    X.iloc[::13, X.columns.get_loc("tickets")] = np.nan
    return X


# --------------------------------------------------------------------------- quality
def test_close_to_true_model_on_later_rows(data, fitted):
    X, y, p_true, _ = data
    Xt, yt = X.iloc[12_000:], y[12_000:]
    p = fitted.predict_proba(Xt)[:, 1]
    assert roc_auc_score(yt, p) > roc_auc_score(yt, p_true[12_000:]) - 0.02
    assert expected_calibration_error(yt, p) < 0.03
    assert fitted.chosen_ in {"lightgbm", "logistic", "blend", "contract"}
    # auto_renew is a contract field: the simple "contract" candidate (a logistic on it alone) competes too
    assert set(fitted.candidate_scores_) == set(fitted.choice_scores_) == {"lightgbm", "logistic", "blend", "contract"}
    assert fitted.contract_columns_ == ["auto_renew"]
    # the winner has the lowest calibrated log loss on the calibration slice, and that is its calibration's
    assert fitted.choice_scores_[fitted.chosen_] == min(fitted.choice_scores_.values())
    assert fitted.calibration_ in {"none", "platt", "isotonic"}
    assert set(fitted.calibration_scores_) == {"none", "platt", "isotonic"}
    assert fitted.choice_scores_[fitted.chosen_] == fitted.calibration_scores_[fitted.calibration_]


@pytest.fixture(scope="module")
def blend(data):
    """The blend candidate, forced (algorithm="blend"), on the same rows as ``fitted``: the test runs whatever
    an automatic choice would have picked."""
    X, y, _, t = data
    return ChurnClassifier(algorithm="blend", n_jobs=1).fit(X.iloc[:12_000], y[:12_000], sample_time=t.iloc[:12_000])


def test_blend_is_the_mean_of_both_logits_and_explains_exactly(blend, fitted, data):
    X = data[0].iloc[12_000:12_400]
    assert blend.chosen_ == "blend" and blend.blend_weight_ == 0.5
    # forcing the blend changes only the choice: same candidates, same scores as the automatic fit
    assert blend.candidate_scores_ == fitted.candidate_scores_ and blend.choice_scores_ == fitted.choice_scores_
    Xe = blend._encode(X)
    z_tree = blend.model_.booster_.predict(Xe, raw_score=True)
    z_lin = blend.linear_model_.decision_function(blend._logistic_input(Xe))
    np.testing.assert_allclose(blend._raw_logit(Xe), 0.5 * z_tree + 0.5 * z_lin, rtol=1e-12, atol=1e-12)
    raw = blend.explain_raw(X)
    np.testing.assert_allclose(raw.sum(axis=1), 0.5 * z_tree + 0.5 * z_lin, atol=1e-9)
    e = blend.explain(X)
    np.testing.assert_allclose(e.sum(axis=1), logit(blend.predict_proba(X)[:, 1]), atol=1e-6)


def test_forced_algorithms_are_what_they_say(fitted_small):
    for (alg, cal), m in fitted_small.items():
        assert m.chosen_ == alg and m.calibration_ == cal
        assert m.blend_weight_ == {"lightgbm": 1.0, "logistic": 0.0}[alg]


def test_fitted_attributes(fitted, data):
    X = data[0]
    assert list(fitted.feature_names_in_) == list(X.columns) and fitted.n_features_in_ == X.shape[1]
    assert fitted.feature_kinds_ == {
        "usage": "numeric", "tickets": "numeric", "tenure": "numeric",
        "plan": "categorical", "auto_renew": "numeric", "region": "categorical",
    }
    assert fitted.categories_["plan"] == sorted(PLAN_EFFECT) + ["__other__"]
    assert list(fitted.classes_) == [0, 1]
    assert sum(fitted.split_sizes_.values()) == 12_000
    assert fitted.best_iteration_ >= 1 and fitted.best_C_ in fitted.logistic_Cs
    assert 0 < fitted.base_rate_ < 1


def test_probabilities_are_clipped_and_predict_uses_threshold(fitted, data):
    X = data[0].iloc[12_000:]
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba.min() >= 1e-6 and proba.max() <= 1 - 1e-6
    np.testing.assert_array_equal(fitted.predict(X), (proba[:, 1] >= 0.5).astype(int))


# ------------------------------------------------------------------------ time split
def test_time_split_keeps_equal_times_together():
    t = np.repeat(np.arange(10), [5, 1, 30, 2, 2, 20, 3, 3, 30, 4])  # 100 rows, big tie groups
    rng = np.random.default_rng(0)
    t = rng.permutation(t)
    parts = time_split(t, [0.6, 0.2, 0.2])
    assert sorted(np.concatenate(parts)) == list(range(100))
    for a, b in zip(parts[:-1], parts[1:]):
        assert t[a].max() < t[b].min()  # strictly earlier: ties never straddle a cut
    # cumulative group sizes 5 6 36 38 40 60 63 66 96 100: 60 is a clean cut; the
    # time at row 80 spans rows 66..95, and 66 is nearer to 80 than 96 is
    assert [len(q) for q in parts] == [60, 6, 34]
    with pytest.raises(ValueError, match="too few"):
        time_split(np.zeros(50), [0.6, 0.2, 0.2])


def test_fit_splits_by_sample_time_at_thresholds(small):
    X, y, t = small
    m = ChurnClassifier(algorithm="logistic", calibration="platt").fit(X, y, sample_time=t)
    sel, cal = m.split_times_["selection"], m.split_times_["calibration"]
    assert isinstance(sel, pd.Timestamp)
    assert m.split_sizes_ == {
        "fit": int((t < sel).sum()),
        "selection": int(((t >= sel) & (t < cal)).sum()),
        "calibration": int((t >= cal).sum()),
    }
    assert m.split_sizes_["fit"] % 70 == 0  # 70 rows per day: whole days only
    assert m.split_sizes_["fit"] == pytest.approx(0.6 * len(X), abs=70)


def test_sample_time_not_row_order_defines_time(small):
    X, y, t = small
    ref = ChurnClassifier(algorithm="lightgbm", calibration="platt", n_jobs=1).fit(X, y)  # row order
    perm = np.random.default_rng(0).permutation(len(X))
    shuffled = ChurnClassifier(algorithm="lightgbm", calibration="platt", n_jobs=1).fit(
        X.iloc[perm], y[perm], sample_time=np.arange(len(X))[perm]
    )
    np.testing.assert_allclose(shuffled.predict_proba(X), ref.predict_proba(X), atol=1e-12)
    naive = ChurnClassifier(algorithm="lightgbm", calibration="platt", n_jobs=1).fit(X.iloc[perm], y[perm])
    assert not np.allclose(naive.predict_proba(X), ref.predict_proba(X))


# ---------------------------------------------------------------------------- explain
@pytest.mark.parametrize("alg", ["lightgbm", "logistic"])
@pytest.mark.parametrize("cal", ["platt", "isotonic", "none"])
def test_explain_is_additive_on_calibrated_logit(fitted_small, small, alg, cal):
    m = fitted_small[alg, cal]
    assert m.chosen_ == alg and m.calibration_ == cal
    X = unseen(small[0]).iloc[::-1]  # reversed row order: index must follow X
    e = m.explain(X)
    assert list(e.columns) == [*X.columns, "base_value"]
    assert e.index.equals(X.index)
    assert e.notna().all().all() and e["base_value"].nunique() == 1
    p = m.predict_proba(X)[:, 1]
    np.testing.assert_allclose(e.sum(axis=1).to_numpy(), logit(p), atol=1e-6, rtol=0)
    np.testing.assert_allclose(e[["never_filled", "notes"]], 0.0, atol=1e-12)  # constant in training
    phi, base = m.explain_arrays(X)          # the same numbers as arrays (what batch scoring reads)
    np.testing.assert_array_equal(phi, e.iloc[:, :-1].to_numpy())
    assert isinstance(base, float) and base == e["base_value"].iloc[0]
    raw = m.explain_raw(X)
    if cal == "none":  # the raw logit's contributions; the base value also holds the level offset (step 7)
        pd.testing.assert_frame_equal(raw.iloc[:, :-1], e.iloc[:, :-1])
        np.testing.assert_allclose(e["base_value"], raw["base_value"] + m.level_offset_, atol=1e-9, rtol=0)
    if cal == "platt":  # exact linear map: contributions scaled by the Platt slope
        a = m.platt_[0]
        np.testing.assert_allclose(e.iloc[:, :-1].to_numpy(), a * raw.iloc[:, :-1].to_numpy(), atol=1e-9)
    if cal == "isotonic":  # monotone map: contributions keep their sign
        assert ((e.iloc[:, :-1].to_numpy() * raw.iloc[:, :-1].to_numpy()) >= -1e-12).all()


def test_explain_raw_matches_model_internals(fitted_small, small):
    X = small[0].iloc[:300]
    lgb = fitted_small["lightgbm", "none"]
    raw = lgb.explain_raw(X)
    booster_raw = lgb.model_.booster_.predict(lgb._encode(X), raw_score=True)
    np.testing.assert_allclose(raw.sum(axis=1), booster_raw, atol=1e-9)
    lin = fitted_small["logistic", "none"]
    raw = lin.explain_raw(X)
    decision = lin.model_.decision_function(lin._logistic_input(lin._encode(X)))
    np.testing.assert_allclose(raw.sum(axis=1), decision, atol=1e-9)
    # contributions depend only on the column's own value
    assert lin.explain_raw(X.assign(usage=np.nan))["usage"].nunique() == 1


def test_prediction_threads_change_no_output(fitted_small, small):
    """A Spark task sets the champion's TreeSHAP threads to its cores (`scoring.spark.fit_threads`): every
    output must be the same at any thread count, and `None` goes back to the training ``n_jobs``."""
    X = small[0].iloc[:500]
    est = copy.deepcopy(fitted_small["lightgbm", "platt"])
    est.n_jobs = 2
    base = (est.explain_raw(X), est.explain(X), est.predict_proba(X))
    for n in (1, 3, None):
        assert est.set_predict_threads(n) is est and est.predict_threads_ == n
        got = (est.explain_raw(X), est.explain(X), est.predict_proba(X))
        pd.testing.assert_frame_equal(got[0], base[0], rtol=0, atol=1e-12)
        pd.testing.assert_frame_equal(got[1], base[1], rtol=0, atol=1e-12)
        np.testing.assert_allclose(got[2], base[2], rtol=0, atol=1e-12)
    with pytest.raises(ValueError):
        est.set_predict_threads("two")


def test_linear_contributions_follow_the_true_signs(fitted_small, small):
    m = fitted_small["logistic", "platt"]
    X = small[0]
    e = m.explain(X)
    usage = X["usage"].to_numpy()
    ok = ~np.isnan(usage)
    from scipy.stats import spearmanr

    # monotone (numerics enter through a rank-gauss transform): more usage, less churn
    assert spearmanr(usage[ok], e["usage"].to_numpy()[ok]).statistic < -0.999
    assert e.loc[~ok, "usage"].nunique() == 1  # every missing value gets the same contribution
    imp = m.mean_abs_contribution(X)
    assert imp.index[0] == "usage" and set(imp.index) == set(X.columns)
    assert imp["region"] < 0.1 * imp["usage"]  # no effect in the true model


def test_explain_when_model_is_constant(small):
    X, y, t = small
    m = ChurnClassifier(
        algorithm="lightgbm", calibration="isotonic", n_jobs=1, lgbm_params={"min_split_gain": 1e9}
    ).fit(X, y, sample_time=t)
    e = m.explain(X.iloc[:50])  # every row has z == base: degenerate-scale branch
    np.testing.assert_allclose(e.sum(axis=1), logit(m.predict_proba(X.iloc[:50])[:, 1]), atol=1e-9)


# ----------------------------------------------------------------- input robustness
def test_columns_are_reordered_and_extra_columns_ignored(fitted_small, small):
    m = fitted_small["lightgbm", "platt"]
    X = small[0].iloc[:200]
    shuffled = X[X.columns[::-1]].assign(unrelated=1.0)
    np.testing.assert_array_equal(m.predict_proba(shuffled), m.predict_proba(X))
    assert list(m.explain(shuffled).columns[:-1]) == list(X.columns)
    with pytest.raises(ValueError, match=r"missing training columns: \['tenure', 'plan'\]"):
        m.predict_proba(X.drop(columns=["tenure", "plan"]))


def test_unseen_categories_missing_values_and_dtype_drift(fitted_small, small):
    m = fitted_small["logistic", "platt"]
    X = unseen(small[0].iloc[:300])
    X["plan"] = X["plan"].astype("string")  # string dtype instead of object
    X["tickets"] = X["tickets"].astype(object)  # numbers arriving as objects
    X.iloc[0] = None  # an all-missing row
    p = m.predict_proba(X)[:, 1]
    assert np.isfinite(p).all()


def test_many_dtypes_and_empty_input():
    rng = np.random.default_rng(5)
    n = 1500
    X = pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "mixed": pd.Series(rng.choice([1, "a", 2.5, None, True], n), dtype=object),
            "Int64": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(0, 5, n)), dtype="Int64"),
            "boolean": pd.array(np.where(rng.random(n) < 0.1, None, rng.random(n) < 0.5), dtype="boolean"),
            "string": pd.array(np.where(rng.random(n) < 0.1, None, rng.choice(["x", "y"], n)), dtype="string"),
            "tz": pd.date_range("2024-01-01", periods=n, freq="h", tz="Europe/Paris"),
            "td": pd.to_timedelta(rng.integers(0, 100, n), unit="D"),
            7: rng.normal(size=n),  # non-string column name
        }
    )
    X.loc[5, "num"] = np.inf
    y = rng.binomial(1, 0.3 + 0.3 * (X["num"] > 0))
    before = X.copy()
    for alg in ("lightgbm", "logistic"):
        m = ChurnClassifier(algorithm=alg, n_jobs=1).fit(X, y, sample_time=X["tz"])
        pd.testing.assert_frame_equal(X, before)  # input untouched (inf stays inf)
        assert m.feature_kinds_["tz"] == "datetime" and m.feature_kinds_["td"] == "timedelta"
        assert m.feature_kinds_["Int64"] == m.feature_kinds_["boolean"] == "numeric"
        assert m.feature_kinds_["string"] == m.feature_kinds_["mixed"] == "categorical"
        e = m.explain(X)
        assert list(e.columns) == [*X.columns, "base_value"]
        np.testing.assert_allclose(e.sum(axis=1), logit(m.predict_proba(X)[:, 1]), atol=1e-6)
        assert m.predict_proba(X.iloc[:0]).shape == (0, 2) and m.explain(X.iloc[:0]).shape == (0, 9)


def test_numpy_input(small):
    X, y, _ = small
    arr = X[["usage", "tickets", "tenure"]].to_numpy()
    m = ChurnClassifier(algorithm="logistic").fit(arr, y)
    assert list(m.feature_names_in_) == ["x0", "x1", "x2"]
    e = m.explain(arr[:10])
    assert list(e.columns) == ["x0", "x1", "x2", "base_value"]
    np.testing.assert_allclose(m.predict_proba(arr[:10]), m.predict_proba(pd.DataFrame(arr[:10], columns=["x0", "x1", "x2"])))


def test_label_types_are_preserved(small):
    X, y, t = small
    labels = np.where(y == 1, "churned", "active")
    m = ChurnClassifier(algorithm="logistic").fit(X, labels, sample_time=t)
    assert list(m.classes_) == ["active", "churned"]
    assert set(m.predict(X)) <= {"active", "churned"}
    assert is_classifier(m)


def test_single_class_calibration_slice_warns(small):
    X, y, _ = small
    y = y.copy()
    y[-600:] = 0
    with pytest.warns(UserWarning, match="single class"):
        m = ChurnClassifier(algorithm="logistic").fit(X, y)
    assert m.calibration_ == "none"


@pytest.mark.parametrize(
    "make_args, match",
    [
        (lambda X, y: (X, np.where(np.arange(len(y)) % 3 == 0, 2, y)), "binary"),
        (lambda X, y: (X, np.zeros_like(y)), "single class"),
        (lambda X, y: (X, y[:-1]), "rows"),
        (lambda X, y: (X, np.where(y == 1, np.nan, 0.0)), "missing"),
        (lambda X, y: (X["usage"].to_numpy(), y), "2-D"),
    ],
)
def test_bad_input_is_rejected(small, make_args, match):
    X, y, _ = small
    with pytest.raises(ValueError, match=match):
        ChurnClassifier().fit(*make_args(X, y))


def test_bad_params_and_sample_time_rejected(small):
    X, y, t = small
    with pytest.raises(ValueError, match="algorithm"):
        ChurnClassifier(algorithm="xgboost").fit(X, y)
    with pytest.raises(ValueError, match="calibration"):
        ChurnClassifier(calibration="beta").fit(X, y)
    with pytest.raises(ValueError, match="sum to < 1"):
        ChurnClassifier(fit_fraction=0.7, selection_fraction=0.3).fit(X, y)
    with pytest.raises(ValueError, match="sample_time has length"):
        ChurnClassifier().fit(X, y, sample_time=t.iloc[:-5])
    with pytest.raises(ValueError, match="single class"):  # all churners come late
        ChurnClassifier().fit(X, np.r_[np.zeros(2000), np.ones(1000)].astype(int))


# ------------------------------------------------------------------ sklearn, pickling
def test_clone_and_params():
    m = ChurnClassifier(algorithm="logistic", logistic_Cs=(0.5, 2.0), lgbm_params={"max_bin": 63})
    c = clone(m)
    assert c.get_params() == m.get_params()
    assert c.lgbm_params == {"max_bin": 63} and c.lgbm_params is not m.lgbm_params
    assert not hasattr(c, "chosen_")


def test_clone_of_fitted_model_is_unfitted(fitted):
    c = clone(fitted)
    assert c.get_params() == fitted.get_params() and not hasattr(c, "model_")


@pytest.mark.parametrize("dumps, loads", [(pickle.dumps, pickle.loads), (cloudpickle.dumps, pickle.loads)])
def test_pickle_roundtrip(fitted_small, small, dumps, loads):
    X = unseen(small[0].iloc[:200])
    for key in [("lightgbm", "isotonic"), ("logistic", "platt")]:
        m = fitted_small[key]
        m2 = loads(dumps(m))
        np.testing.assert_array_equal(m2.predict_proba(X), m.predict_proba(X))
        pd.testing.assert_frame_equal(m2.explain(X), m.explain(X))


def test_fit_is_deterministic(small):
    X, y, t = small
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and emits no warnings on clean data
        a = ChurnClassifier(n_jobs=1).fit(X, y, sample_time=t)
    b = ChurnClassifier(n_jobs=1).fit(X, y, sample_time=t)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.candidate_scores_ == b.candidate_scores_


def make_term_only(n, seed, annual_share):
    """Churn depends on the contract term alone (monthly 0.30, quarterly 0.18, annual 0.21), with noise features
    and few annual terms: the independent-simulator case where a flexible model lost to a plain logistic."""
    rng = np.random.default_rng(seed)
    term = rng.choice([30, 91, 365], size=n, p=[0.6 - annual_share / 2, 0.4 - annual_share / 2, annual_share])
    rate = pd.Series(term).map({30: 0.30, 91: 0.18, 365: 0.21}).to_numpy()
    y = rng.binomial(1, rate)
    X = pd.DataFrame({"term_days": term.astype(float), "auto_renew": rng.random(n) < 0.5,
                      "renewals_so_far": rng.poisson(2, n).astype(float),
                      **{f"noise_{k}": rng.normal(size=n) for k in range(12)}})
    day = pd.Timestamp("2023-01-02") + pd.to_timedelta(np.arange(n) // 20, unit="D")
    return X, y, rate, day


def test_simple_contract_candidate_never_loses_on_term_only_churn():
    X, y, _, day = make_term_only(6000, seed=5, annual_share=0.04)
    Xt, yt, rate_t, _ = make_term_only(20_000, seed=6, annual_share=0.3)
    clf = ChurnClassifier(n_jobs=1).fit(X, y, sample_time=pd.Series(day))
    assert "contract" in clf.candidate_scores_
    p = clf.predict_proba(Xt)[:, 1]
    # a logistic regression on the three contract fields, trained on the same rows
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    enc = OneHotEncoder(handle_unknown="ignore").fit(X[["term_days"]].astype(str))
    def design(D):
        return np.column_stack([enc.transform(D[["term_days"]].astype(str)).toarray(),
                                D["auto_renew"].to_numpy(float), D["renewals_so_far"].to_numpy(float)])
    lr = LogisticRegression(C=1.0, max_iter=1000).fit(design(X), y)
    p_lr = lr.predict_proba(design(Xt))[:, 1]
    assert roc_auc_score(yt, p) >= roc_auc_score(yt, p_lr) - 0.005
    # calibrated for the rare annual terms (truth 0.21) and overall, within the sampling error of 6000 rows
    annual = Xt["term_days"].to_numpy() == 365
    assert abs(p[annual].mean() - 0.21) < 0.04
    assert expected_calibration_error(yt, p) < 0.03
    # per-account intervals: ordered and containing the point
    lo, hi = clf.predict_interval(Xt.iloc[:500])
    assert np.all(lo <= p[:500] + 1e-12) and np.all(p[:500] <= hi + 1e-12) and np.any(hi > lo)
    # the same interval from probabilities already computed (batch scoring reads them from the contributions)
    for got, want in zip(clf.interval_of(p[:500]), (lo, hi)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_trees_must_beat_the_logistic_by_more_than_one_standard_error():
    from csforecast.models.churn import one_se_choice
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(300), 12)                      # 300 decisions x 12 snapshot rows
    base = np.repeat(rng.exponential(0.35, 300), 12)
    noise = np.repeat(rng.normal(0, 0.05, 300), 12)               # per-decision noise: se ~0.003
    losses = {"logistic": base, "contract": base + 0.04}
    for gain, kept in ((0.001, "logistic"), (0.02, "lightgbm")):  # ~0.3 and ~7 standard errors better
        rows = {**losses, "lightgbm": base - gain + noise}
        scores = {k: float(v.mean()) for k, v in rows.items()}
        assert min(scores, key=scores.get) == "lightgbm"
        name, margin = one_se_choice(scores, rows, clusters)
        assert name == kept and margin["best"] == "lightgbm"
        assert (margin["difference"] > margin["se"]) == (kept == "lightgbm")
    # the standard error counts decisions, not rows: per-row clusters would make the small gain look sure
    rows = {**losses, "lightgbm": base - 0.001 + noise}
    scores = {k: float(v.mean()) for k, v in rows.items()}
    assert one_se_choice(scores, rows, np.arange(len(clusters)))[1]["se"] < one_se_choice(scores, rows, clusters)[1]["se"]
    # the contract model, when best, wins outright; with no logistic candidate the best wins
    rows = {"logistic": base, "contract": base - 0.001}
    assert one_se_choice({k: float(v.mean()) for k, v in rows.items()}, rows, clusters) == ("contract", {})
    assert one_se_choice({"lightgbm": 0.3}, {"lightgbm": base}, clusters) == ("lightgbm", {})


def test_the_simplest_candidate_within_one_standard_error_of_the_best_is_kept():
    from csforecast.models.choice import simplest_within_one_se
    rng = np.random.default_rng(1)
    clusters = np.repeat(np.arange(300), 12)
    base = np.repeat(rng.exponential(0.35, 300), 12)
    noise = rng.normal(0, 0.05, 300)
    noise = np.repeat(noise - noise.mean(), 12)                   # se of a paired difference ~0.003
    # strongest penalty first: 0.001 is ~0.3 se worse than the best (0.03), 0.003 ~7 se worse
    grid = {0.001: base + 0.001 + noise, 0.003: base + 0.02 + noise, 0.03: base, 1.0: base + 0.05}
    assert simplest_within_one_se(grid, clusters) == 0.001
    grid[0.001] = base + 0.03 + noise                             # now far worse: the next within reach
    assert simplest_within_one_se(grid, clusters) == 0.03
    grid[0.003] = base + 0.002 + noise
    assert simplest_within_one_se(grid, clusters) == 0.003
    assert simplest_within_one_se({0.5: base}, clusters) == 0.5
    # the standard error counts clusters (decisions), not rows: per-row clusters make 0.001 look sure-worse
    grid = {0.001: base + 0.002 + noise, 0.03: base}              # 0.7 se by decisions, 2.4 se by rows
    assert simplest_within_one_se(grid, clusters) == 0.001
    assert simplest_within_one_se(grid, np.arange(len(clusters))) == 0.03


def make_proxies(n, seed, k=40, noise=3.0):
    """Churn driven by a latent health that k features each see through heavy noise (as usage, tickets and
    surveys see an account's health): the best weights are equal, and a strong penalty comes closest to them."""
    rng = np.random.default_rng(seed)
    h = rng.normal(size=n)
    X = pd.DataFrame({f"proxy_{j}": h + rng.normal(0, noise, n) for j in range(k)})
    y = rng.binomial(1, expit(-1.5 - 1.0 * h))
    t = pd.Timestamp("2023-01-02") + pd.to_timedelta(np.arange(n) // 20, unit="D")
    return X, y, t


def test_the_penalty_is_chosen_by_calibrated_log_loss_and_ranks_later_rows_better():
    # The raw log loss on the selection slice prefers weak penalties (their logits are as wide as the outcomes
    # vary); the model is served calibrated, so C is chosen by the log loss after a Platt map, cross-validated in
    # time inside the slice. Here that picks the strongest penalty, which ranks 20,000 later rows better than
    # the C the raw log loss picks.
    X, y, t = make_proxies(4000, seed=0)
    Xv, yv, _ = make_proxies(20_000, seed=100)
    clf = ChurnClassifier(algorithm="logistic", calibration="platt").fit(X, y, sample_time=t)
    assert clf.best_C_ == min(clf.logistic_scores_, key=clf.logistic_scores_.get)
    raw, auc = {}, {}
    for C in clf.logistic_Cs:
        one = ChurnClassifier(algorithm="logistic", calibration="platt", logistic_Cs=(C,)).fit(X, y, sample_time=t)
        raw[C] = one.candidate_scores_["logistic"]      # the raw selection-slice log loss of that C
        auc[C] = roc_auc_score(yv, one.predict_proba(Xv)[:, 1])
    assert clf.candidate_scores_["logistic"] == pytest.approx(raw[clf.best_C_])
    by_raw = min(raw, key=raw.get)
    assert clf.best_C_ == min(clf.logistic_Cs) < by_raw
    assert auc[clf.best_C_] > auc[by_raw] + 0.005
    assert roc_auc_score(yv, clf.predict_proba(Xv)[:, 1]) == pytest.approx(auc[clf.best_C_])
