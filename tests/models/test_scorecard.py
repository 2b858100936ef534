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
