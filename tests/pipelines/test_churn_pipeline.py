"""The churn family end to end on a real simulated portfolio, real MLflow (sqlite), real fits."""
import numpy as np
import pytest

from csforecast.data.sources import open_source
from csforecast.pipelines.churn import METRIC_KEYS, train_churn
from csforecast.pipelines.context import TrainingContext
from csforecast.simulate.truth import oracle_for
from csforecast.tracking import store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    from csforecast.simulate import simulate_portfolio

    d = tmp_path_factory.mktemp("sim800")
    simulate_portfolio(800, 3, seed=3).write(d)
    src = open_source(d)
    return TrainingContext.build(src, oracle=oracle_for(src))


def test_train_registers_calibrated_champion_and_guard_keeps_it(ctx, isolated_home):
    result = train_churn(ctx)
    est, first = result.estimator, result.to_json()
    assert set(first) == {"metrics", "oracle", "detail", "run_id", "version", "alias", "guard", "decision", "fallback", "guard_checks"}
    assert result.guard_score.metric == "log_loss" and not result.guard_score.higher_is_better
    assert result.guard_score.n_rows == len(result.validation.rows) == first["detail"]["n_valid"]
    assert first["alias"] == "champion" and first["version"] == "1"
    assert set(first["metrics"]) == set(METRIC_KEYS) and set(first["oracle"]) == set(METRIC_KEYS)
    m, o = first["metrics"], first["oracle"]
    assert 0.5 < m["auc"] <= 1 and m["ece"] < 0.06
    assert m["auc"] <= o["auc"] + 0.05  # the oracle is the best possible, up to sampling noise
    # calibration by contract term, segment and horizon, each beside the oracle's on the same rows
    d = first["detail"]
    for scope in ("segment", "term", "horizon"):
        assert set(d[f"by_{scope}"]) == set(d[f"oracle_by_{scope}"]) and d[f"by_{scope}"]
    assert set(d["by_horizon"]) <= {"0-30", "31-90", "91-180", "181-365"}
    assert "365" in d["by_term"] and set(d["by_term"]["365"]) == set(METRIC_KEYS)
    assert 0 <= d["by_horizon"]["0-30"]["ece"] < 0.2 and 0 <= d["oracle_by_term"]["365"]["ece"] < 0.2
    # explain sums exactly to the logit of the calibrated prediction
    _, valid = ctx.split(ctx.decision_rows())
    X = valid[list(est.feature_names_in_)].head(300)
    p = est.predict_proba(X)[:, 1]
    e = est.explain(X)
    np.testing.assert_allclose(e.sum(axis=1), np.log(p / (1 - p)), atol=1e-8)
    # a deliberately worse challenger (segment only) is registered but never becomes champion
    worse = train_churn(ctx, feature_subset=["segment"]).to_json()
    assert worse["alias"] == "challenger" and worse["version"] == "2"
    assert worse["metrics"]["log_loss"] > m["log_loss"]
    assert str(store.champion_version("churn").version) == "1"
    assert str(store.champion_version("churn", "challenger").version) == "2"
    assert "champion" in worse["guard"] or "log loss" in worse["guard"]
    # the run logged what an analyst needs
    client = store.configure()
    run = client.get_run(first["run_id"])
    assert {"git_commit", "data_hash", "as_of"} <= set(run.data.tags)
    arts = {a.path for a in client.list_artifacts(first["run_id"])}
    assert {"calibration_curve.png", "shap_summary.png", "features.json", "evaluation.json"} <= arts
