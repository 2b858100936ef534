"""The scorecard people can own (models/scorecard.py): pillars, the 2x2, five bands, weight sets scored on the
same rows."""
import numpy as np
import pandas as pd
import pytest

from csforecast.models.scorecard import five_band_of, pillar_scores, quadrant, weight_set_report, weight_set_score


def test_pillars_and_the_two_by_two():
    C = pd.DataFrame({"deployment": [80, 20, 70, 30], "adoption": [60, 30, 70, 10], "nps": [90, 90, 20, 20],
                      "support": [70, 70, 40, 40]})
    p = pillar_scores(C)
    assert list(p["outcomes"]) == [70, 25, 70, 20] and list(p["experience"]) == [80, 80, 30, 30]
    assert list(quadrant(p["outcomes"], p["experience"])) == ["healthy", "false_positive", "quiet_value", "at_risk"]
    assert quadrant([np.nan], [60])[0] == "unknown"
    assert pillar_scores(C[["nps"]])["outcomes"].isna().all()


def test_five_bands():
    assert list(five_band_of([0, 19.9, 20, 45, 60, 80, 100])) == [
        "critical", "critical", "poor", "fair", "good", "excellent", "excellent"]
    with pytest.raises(ValueError, match="four rising"):
        five_band_of([50], (20, 40, 40, 80))


def test_weight_sets_scored_on_the_same_rows():
    rng = np.random.default_rng(0)
    n = 2000
    good = rng.normal(50, 15, n)
    noise = rng.normal(50, 15, n)
    y = (rng.random(n) < 1 / (1 + np.exp((good - 45) / 6))).astype(int)
    C = pd.DataFrame({"adoption": good, "nps": noise})
    s_good, missing = weight_set_score(C, {"adoption": 3, "nps": 1, "value": 2})
    assert missing == ["value"]
    assert s_good == pytest.approx(0.75 * good + 0.25 * noise)
    s_bad, _ = weight_set_score(C, {"nps": 1})
    r = weight_set_report(y, {"mostly adoption": s_good, "nps only": s_bad})
    assert r["mostly adoption"]["auc"] > 0.75 > 0.55 > r["nps only"]["auc"]
    assert r["mostly adoption"]["top_decile_lift"] > 1.5
    b5 = r["mostly adoption"]["bands5"]
    assert sum(v["n"] for v in b5.values()) == n and b5["critical"]["churn_rate"] > b5["good"]["churn_rate"]
    with pytest.raises(ValueError, match=">= 0"):
        weight_set_score(C, {"nps": -1})
    with pytest.raises(ValueError, match="no positive weight"):
        weight_set_score(C, {"value": 1})


def test_weight_set_checks_name_the_field():
    from csforecast.errors import InputError
    from csforecast.models.scorecard import WeightSetError, check_weight_set

    assert check_weight_set({"nps": 1, "support": "2", "value": 0}) == {"nps": 1.0, "support": 2.0, "value": 0.0}
    for bad, field in (({"nps": -1}, "nps"), ({"vibes": 1}, "vibes"), ({"nps": float("inf")}, "nps"),
                       ({"nps": float("nan")}, "nps"), ({"nps": "lots"}, "nps"), ({"nps": True}, "nps"),
                       ({"nps": None}, "nps"), ({}, None), ({"nps": 0}, None)):
        with pytest.raises(WeightSetError) as e:
            check_weight_set(bad)
        assert e.value.field == field and isinstance(e.value, (InputError, ValueError))


def test_learned_weights_rank_as_the_model_does():
    """The learned weights as a weight set give the model's own ranking (its score is monotone in them)."""
    from types import SimpleNamespace

    from csforecast.metrics.calibration import rank_auc
    from csforecast.models.health import health_from_eta
    from csforecast.models.scorecard import learned_weights

    rng = np.random.default_rng(1)
    C = pd.DataFrame(rng.uniform(0, 100, (500, 3)), columns=["deployment", "nps", "sentiment"])
    est = SimpleNamespace(components_=list(C.columns), weights_=np.array([-0.03, -0.01, 0.0]))
    w = learned_weights(est)
    assert w == pytest.approx({"deployment": 0.75, "nps": 0.25, "sentiment": 0.0})
    model = health_from_eta(1.0 + C.to_numpy() @ est.weights_, 0.0)
    mine, _ = weight_set_score(C, w)
    y = (rng.random(500) < 0.3).astype(int)
    assert rank_auc(y, -model) == pytest.approx(rank_auc(y, -mine), abs=1e-12)


def test_saved_weights_are_replaced_whole(tmp_path):
    from csforecast.models.scorecard import WeightSetError
    from csforecast.scoring.scorecard import SavedWeights

    store = SavedWeights(tmp_path)
    assert store.load() is None
    store.save({"nps": 2, "adoption": 1}, by="k1")
    assert store.load()["weights"] == {"nps": 2.0, "adoption": 1.0} and store.load()["saved_by"] == "k1"
    with pytest.raises(WeightSetError):
        store.save({"nps": -2})
    assert store.load()["weights"] == {"nps": 2.0, "adoption": 1.0}        # a refused set changes nothing
    # no temporary file left behind (the lock file that serialises saves stays, as apikeys.json.lock does)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".scorecard.lock", "scorecard.json"]
    (tmp_path / "scorecard.json").write_text("{not json")
    assert store.load() is None


def test_scorecard_report_on_reference_rows():
    from types import SimpleNamespace

    from csforecast.config import Settings
    from csforecast.scoring.scorecard import evaluate_weights, reference_frame, scorecard_report

    rng = np.random.default_rng(2)
    n = 1000
    good = rng.uniform(0, 100, n)
    C = pd.DataFrame({"adoption": good, "nps": rng.uniform(0, 100, n)})
    y = (rng.random(n) < 1 / (1 + np.exp((good - 40) / 10))).astype(int)
    ref = reference_frame(C, y, good, C.mean(axis=1))
    est = SimpleNamespace(components_=["adoption", "nps"], weights_=np.array([-0.04, 0.0]))
    settings = Settings(scorecard={"weights": {"nps": 1}})
    rep = scorecard_report(ref, est, settings, saved={"weights": {"adoption": 1, "value": 1}},
                           extra={"broken": {"nps": -1}})
    sets = rep["weight_sets"]
    assert rep["n_rows"] == n and rep["components"] == ["adoption", "nps"]
    assert list(sets) == ["learned", "equal_weight", "configured", "saved", "broken"]
    assert sets["learned"]["metrics"]["auc"] == pytest.approx(sets["saved"]["metrics"]["auc"])
    assert sets["saved"]["missing_components"] == ["value"]
    assert sets["learned"]["metrics"]["auc"] > sets["equal_weight"]["metrics"]["auc"] > sets["configured"]["metrics"]["auc"]
    assert sets["broken"]["metrics"] is None and "nps" in sets["broken"]["error"]
    assert sum(b["n"] for b in sets["configured"]["metrics"]["bands5"].values()) == n
    assert evaluate_weights(ref, {"adoption": 1}, settings)["metrics"] == sets["saved"]["metrics"]
    none = scorecard_report(None, est, settings)
    assert none["available"] is False and "retrain" in none["reason"] and none["weight_sets"] == {}


def test_pillar_scores_are_pandas_row_means_of_the_present_components():
    rng = np.random.default_rng(3)
    C = pd.DataFrame(rng.uniform(0, 100, (50, 5)), columns=["deployment", "adoption", "engagement", "nps", "support"],
                     index=rng.permutation(50) + 10)
    C[C > 85] = np.nan
    p = pillar_scores(C)
    np.testing.assert_array_equal(p["outcomes"], C[["deployment", "adoption", "engagement"]].mean(axis=1))
    np.testing.assert_array_equal(p["experience"], C[["nps", "support"]].mean(axis=1))
    assert p.index.equals(C.index)
