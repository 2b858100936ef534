"""Survival pipeline, end to end on a small simulated portfolio: real fits, real MLflow (sqlite in tmp)."""
import os
import pickle

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from csforecast.config import reset_settings  # noqa: E402
from csforecast.data.sources import open_source  # noqa: E402
from csforecast.pipelines.context import TrainingContext  # noqa: E402
from csforecast.pipelines.survival import (  # noqa: E402
    DEFAULT_COVARIATES,
    METRIC_KEYS,
    SnapshotSurvivalModel,
    _censor_at,
    train_survival,
    yearly_alive_counts,
)
from csforecast.scoring.survival import score_survival  # noqa: E402
from csforecast.simulate.portfolio import simulate_portfolio  # noqa: E402
from csforecast.simulate.truth import oracle_for  # noqa: E402

SEED = 3
N_ACCOUNTS = 800


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("survival")
    data = root / "data"
    simulate_portfolio(N_ACCOUNTS, 3, seed=SEED).write(data)
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    mp.setenv("CSFORECAST_HOME", str(root / "home"))
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    reset_settings()
    src = open_source(data)
    ctx = TrainingContext.build(src, oracle=oracle_for(src))
    yield ctx
    mp.undo()
    reset_settings()


@pytest.fixture(scope="module")
def trained(env):
    return train_survival(env, run_name="test-survival")


@pytest.fixture(scope="module")
def first(trained):
    return trained.to_json()


@pytest.fixture(scope="module")
def est(trained):
    return trained.estimator


@pytest.fixture(scope="module")
def valid(env):
    s = env.snapshots
    return s[s["as_of"] >= pd.Timestamp(env.validation_start)]


def test_result_contract_and_oracle_gap(first, trained):
    assert set(first) == {"metrics", "oracle", "detail", "run_id", "version", "alias", "guard", "decision", "fallback", "guard_checks"}
    assert trained.guard_score.metric == "c_index" and trained.guard_score.higher_is_better
    assert trained.guard_score.value == pytest.approx(first["metrics"]["c_index"], abs=1e-6)
    assert tuple(first["metrics"]) == METRIC_KEYS
    assert tuple(first["oracle"]) == METRIC_KEYS
    for k in METRIC_KEYS:
        assert np.isfinite(first["metrics"][k]), k
        assert np.isfinite(first["oracle"][k]), k
    m, o = first["metrics"], first["oracle"]
    assert 0.5 < m["c_index"] <= 1 and 0 <= m["integrated_brier"] < 0.25
    assert abs(m["c_index"] - o["c_index"]) < 0.03, (m, o)
    d = first["detail"]
    assert d["chosen"] in ("cox", "weibull")
    assert {"cox", "weibull"} <= set(d["candidates"])
    for kind in ("cox", "weibull"):
        assert d["candidates"][kind]["validation"]["c_index"] is not None
    # validation follow-up is ~9 months: calibration "365" is evaluated at the longest horizon available
    assert d["calibration_horizon_365"] == d["evaluation_horizon_days"] <= 365
    assert d["n_train_events"] > 0 and d["n_valid_events"] > 0
    assert d["covariates"] == list(DEFAULT_COVARIATES) and d["skipped_covariates"] == []


def test_renewal_probability_beside_observed(first):
    r = first["detail"]["renewal"]
    assert r["n_rows"] > 0
    assert 0 <= r["mean_predicted_churn"] <= 1 and 0 <= r["observed_churn"] <= 1
    assert abs(r["mean_predicted_churn"] - r["observed_churn"]) < 0.06
    assert r["auc"] > 0.6 and "oracle_auc" in r


def test_champion_alias_and_artifacts(first):
    from csforecast.tracking import store

    assert first["alias"] == "champion" and first["version"] is not None
    assert str(store.champion_version("survival").version) == first["version"]
    client = store.configure()
    top = {a.path for a in client.list_artifacts(first["run_id"])}
    assert {"calibration_365.png", "evaluation.json", "features.json", "drivers.png"} <= top
    retention = first["detail"]["retention"]
    if retention.get("available"):
        names = {a.path for a in client.list_artifacts(first["run_id"], "retention")}
        assert {"retention/logo_by_cohort.png", "retention/arr_by_cohort.png", "retention/logo_by_segment.png",
                "retention/arr_by_segment.png", "retention/sbg.json"} <= names
        for seg, e in retention["sbg"].items():
            assert e["alpha"] > 0 and e["beta"] > 0, seg
            proj = [e["projection_5y"][str(k)] for k in range(6)]
            assert proj[0] == 1 and all(np.diff(proj) <= 1e-12)
    metrics = store.run_metrics(first["run_id"])
    assert {"c_index", "oracle_c_index", "cox_c_index", "weibull_c_index"} <= set(metrics)


def test_training_rows_are_censored_at_validation_start(env):
    s = env.snapshots
    vs = pd.Timestamp(env.validation_start)
    train = s[s["as_of"] < vs]
    dur, ev = _censor_at(train, vs)
    room = (vs - train["as_of"]).dt.days.to_numpy()
    assert np.all(dur <= room)
    churn = train["label_churn_date"].to_numpy()
    assert np.all(pd.isna(churn[ev == 1]) == False)  # noqa: E712
    assert np.all(churn[ev == 1] < np.datetime64(vs))
    # some churn after validation_start exists in the raw labels and was censored
    assert ((train["label_event"] == 1) & (train["label_churn_date"] >= vs)).any()
    assert ev.sum() < train["label_event"].sum()


def test_scores_are_probabilities_monotone_in_horizon(est, valid):
    rows = valid[valid["as_of"] == valid["as_of"].max()].head(300)
    sc = score_survival(est, rows)
    assert list(sc.index) == list(rows.index)
    assert list(sc.columns) == ["p_active_90d", "p_active_180d", "p_active_365d", "expected_lifetime_days",
                                "p_renewal_survival", "survival_contributions"]
    p = sc[["p_active_90d", "p_active_180d", "p_active_365d", "p_renewal_survival"]].to_numpy(dtype=float)
    assert np.all((p >= 0) & (p <= 1))
    assert np.all(sc["p_active_90d"] >= sc["p_active_180d"]) and np.all(sc["p_active_180d"] >= sc["p_active_365d"])
    assert np.all((sc["expected_lifetime_days"] > 0) & (sc["expected_lifetime_days"] <= 1095))
    # a finer grid is monotone too, and S(0) is ~1 unless the renewal is due on the as-of date itself
    S = est.predict_survival(rows, np.arange(0, 1096, 7)).to_numpy()
    assert np.all(np.diff(S, axis=1) <= 1e-12)
    assert np.all(S[rows["days_to_renewal"].to_numpy() > 0, 0] > 0.99)
    # the renewal-date probability is S(days_to_renewal + 1)
    i = rows.index[0]
    t = float(rows.loc[i, "days_to_renewal"]) + 1
    assert sc.loc[i, "p_renewal_survival"] == pytest.approx(est.predict_survival(rows.loc[[i]], [t]).iloc[0, 0])
    # drivers: at most 5 covariates per row, sorted by |contribution|
    for d in sc["survival_contributions"]:
        assert 0 < len(d) <= 5 and set(d) <= set(est.covariates_)
        v = np.abs(list(d.values()))
        assert np.all(np.diff(v) <= 1e-12)


@pytest.fixture(scope="module")
def cox(env):
    """A Cox model fitted directly (whatever kind the pipeline chose), on training rows censored at
    validation_start as the pipeline does."""
    s = env.snapshots
    vs = pd.Timestamp(env.validation_start)
    train = s[s["as_of"] < vs]
    train = train[train["as_of"].dt.month % 3 == 0]          # one snapshot per quarter keeps the fit quick
    dur, ev = _censor_at(train, vs)
    return SnapshotSurvivalModel(kind="cox", penalizer=0.03).fit(train, dur, ev)


def test_cox_matches_survival_model_within_the_current_contract(cox, valid):
    est = cox
    assert est.clock_ == "renewal"
    rows = valid[valid["days_to_renewal"] > 120].head(200)
    entry = est.clock_length_ - rows["days_to_renewal"].to_numpy(dtype=float) - 1
    ref = est.model_.predict_survival(est.design(rows, 0), (np.array([30.0, 100.0]) + 1) / est.time_scale_,
                                      conditional_after=entry / est.time_scale_).to_numpy()
    np.testing.assert_allclose(est.predict_survival(rows, [30, 100]).to_numpy(), ref, atol=1e-10)


def test_pyfunc_and_pickle_roundtrip(first, est, valid):
    import mlflow.pyfunc

    X = valid[list(est.feature_names_in_)].head(25)
    model = mlflow.pyfunc.load_model(f"models:/csforecast-survival/{first['version']}")
    out = model.predict(X)
    assert list(out.columns) == ["p_active_90d", "p_active_180d", "p_active_365d"]
    np.testing.assert_allclose(out.to_numpy(), est.predict_survival(X, [90, 180, 365]).to_numpy(), atol=1e-12)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(again.predict_survival(X, [365]).to_numpy(),
                               est.predict_survival(X, [365]).to_numpy())


def test_worse_challenger_leaves_champion(env, first):
    from csforecast.tracking import store

    worse = train_survival(env, params={"kinds": ["cox"], "penalizer": 0.1}, covariates=["auto_renew"],
                           run_name="test-survival-weak").to_json()
    assert worse["detail"]["covariates"] == ["auto_renew"]
    assert worse["metrics"]["c_index"] < first["metrics"]["c_index"]
    assert worse["alias"] == "challenger"
    assert "vs champion" in worse["guard"]
    assert str(store.champion_version("survival").version) == first["version"]


def test_estimator_rejects_missing_covariate_columns(valid):
    dur = valid["label_duration_days"].to_numpy()
    ev = valid["label_event"].to_numpy()
    with pytest.raises(ValueError, match="no_such_column"):
        SnapshotSurvivalModel(covariates=["no_such_column"]).fit(valid, dur, ev)


def test_yearly_alive_counts():
    spells = pd.DataFrame({
        "cohort": ["2020"] * 4 + ["2025"],
        "start_date": pd.to_datetime(["2020-01-01", "2020-03-01", "2020-06-01", "2020-12-01", "2025-12-01"]),
        "duration": [365, 730, 2000, 2130, 300],
        "event": [1, 1, 0, 0, 0],
    })
    counts = yearly_alive_counts(spells, "2026-10-01")
    # 2020: last start 2020-12-01 -> 5 whole observed years; 2025 has none and is left out
    assert counts == {"2020": [4, 3, 2, 2, 2, 2]}
