import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from csforecast.metrics import (
    calibration_slope_intercept,
    classification_metrics,
    expected_calibration_error,
    top_decile_lift,
)
from csforecast.metrics.calibration import METRIC_KEYS, by_group, calibration_curve_table


@pytest.fixture(scope="module")
def calibrated():
    """Perfectly calibrated predictions: y ~ Bernoulli(p)."""
    rng = np.random.default_rng(0)
    p = expit(rng.normal(-1.0, 1.5, 100_000))
    y = rng.binomial(1, p)
    return y, p


# ------------------------------------------------------------------------ ECE by hand
def test_ece_four_rows_one_per_bin():
    # bins: .1 -> [.1,.2), .2 -> [.2,.3), .8 -> [.8,.9), .9 -> [.9,1]; each |y - p| / 4
    y, p = [0, 1, 1, 0], [0.1, 0.2, 0.8, 0.9]
    assert expected_calibration_error(y, p) == pytest.approx((0.1 + 0.8 + 0.2 + 0.9) / 4)


def test_ece_shared_bins():
    # bin [.1,.2): mean y .5 vs mean p .15 -> .35 * 2/4; bin [.8,.9): 1 vs .85 -> .15 * 2/4
    y, p = [0, 1, 1, 1], [0.15, 0.15, 0.85, 0.85]
    assert expected_calibration_error(y, p) == pytest.approx(0.175 + 0.075)


def test_ece_one_bin_is_calibration_in_the_large():
    y, p = [0, 1, 1, 0, 1], [0.2, 0.9, 0.4, 0.1, 0.6]
    assert expected_calibration_error(y, p, n_bins=1) == pytest.approx(abs(0.6 - 0.44))


def test_ece_bin_edges_are_left_closed_and_one_is_in_last_bin():
    # .5 falls in [.5,.6) together with .55, not with .45; 1.0 is in the last bin with .95
    y, p = [1, 0, 0, 1, 1], [0.45, 0.5, 0.55, 0.95, 1.0]
    expected = (abs(1 - 0.45) + abs(0 - 1.05) + abs(2 - 1.95)) / 5
    assert expected_calibration_error(y, p) == pytest.approx(expected)


def test_ece_quantile_strategy_by_hand():
    # 2 quantile bins of p = [.1,.2,.3,.4]: edge at the median .25 -> {.1,.2} and {.3,.4}
    y, p = [0, 0, 1, 0], [0.1, 0.2, 0.3, 0.4]
    assert expected_calibration_error(y, p, n_bins=2, strategy="quantile") == pytest.approx(
        (abs(0 - 0.3) + abs(1 - 0.7)) / 4
    )
    with pytest.raises(ValueError):
        expected_calibration_error(y, p, strategy="equal")


def test_ece_near_zero_when_calibrated_and_large_when_not(calibrated):
    y, p = calibrated
    assert expected_calibration_error(y, p) < 0.01
    assert expected_calibration_error(y, p, strategy="quantile") < 0.01
    assert expected_calibration_error(y, np.clip(p + 0.1, 0, 1)) > 0.08


# --------------------------------------------------------------- slope and intercept
def test_slope_intercept_ideal_when_calibrated(calibrated):
    y, p = calibrated
    r = calibration_slope_intercept(y, p)
    assert set(r) == {"calibration_slope", "calibration_intercept"}
    assert r["calibration_slope"] == pytest.approx(1.0, abs=0.03)
    assert r["calibration_intercept"] == pytest.approx(0.0, abs=0.03)


def test_overconfident_slope_below_one_underconfident_above(calibrated):
    y, p = calibrated
    over = calibration_slope_intercept(y, expit(2.0 * logit(p)))["calibration_slope"]
    under = calibration_slope_intercept(y, expit(0.5 * logit(p)))["calibration_slope"]
    assert over == pytest.approx(0.5, abs=0.03)
    assert under == pytest.approx(2.0, abs=0.1)


def test_intercept_measures_calibration_in_the_large(calibrated):
    y, p = calibrated
    too_low = calibration_slope_intercept(y, expit(logit(p) - 0.5))
    assert too_low["calibration_intercept"] == pytest.approx(0.5, abs=0.03)
    assert too_low["calibration_slope"] == pytest.approx(1.0, abs=0.03)  # shift does not change the slope


def test_intercept_matches_closed_form_for_constant_p():
    # with a constant prediction q, the offset model's intercept is logit(ybar) - logit(q)
    y = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0])
    r = calibration_slope_intercept(y, np.full(10, 0.5))
    assert r["calibration_intercept"] == pytest.approx(logit(0.2) - logit(0.5), abs=1e-6)
    assert math.isnan(r["calibration_slope"])  # undefined: no spread in p


def test_slope_intercept_nan_for_single_class():
    r = calibration_slope_intercept([0, 0, 0], [0.1, 0.2, 0.3])
    assert math.isnan(r["calibration_slope"]) and math.isnan(r["calibration_intercept"])


# ---------------------------------------------------------------------- top decile
def test_top_decile_lift_by_hand():
    # 20 rows, top 10 % = 2 rows, both churners; base rate 4/20 -> lift 1 / 0.2 = 5
    p = np.linspace(0.01, 0.99, 20)
    y = np.zeros(20, dtype=int)
    y[[19, 18, 3, 4]] = 1
    assert top_decile_lift(y, p) == pytest.approx(5.0)
    y2 = y.copy()
    y2[18], y2[0] = 0, 1  # top 2 now hold one churner -> 0.5 / 0.2
    assert top_decile_lift(y2, p) == pytest.approx(2.5)


def test_top_decile_lift_rounds_group_size_up_and_handles_no_positives():
    p = np.arange(15) / 15  # ceil(1.5) = 2 rows in the top group
    y = np.zeros(15, dtype=int)
    y[14] = 1
    assert top_decile_lift(y, p) == pytest.approx(0.5 / (1 / 15))
    assert math.isnan(top_decile_lift(np.zeros(15), p))


# ------------------------------------------------------------- classification_metrics
def test_classification_metrics_keys_and_values(calibrated):
    y, p = calibrated
    m = classification_metrics(y, p)
    assert tuple(m) == METRIC_KEYS
    assert set(m) == {"auc", "pr_auc", "log_loss", "brier", "ece", "calibration_slope",
                      "calibration_intercept", "top_decile_lift", "n", "base_rate"}
    assert all(isinstance(v, float) for k, v in m.items() if k != "n")
    assert m["n"] == len(y)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert m["log_loss"] == pytest.approx(log_loss(y, p))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    assert m["base_rate"] == pytest.approx(y.mean())
    assert m["ece"] == pytest.approx(expected_calibration_error(y, p))
    assert m["top_decile_lift"] > 2


def test_classification_metrics_small_hand_example():
    y, p = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    m = classification_metrics(y, p)
    assert m["auc"] == pytest.approx(0.75)  # 3 of 4 positive/negative pairs ordered correctly
    assert m["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    assert m["log_loss"] == pytest.approx(-(np.log(0.9) + np.log(0.6) + np.log(0.35) + np.log(0.8)) / 4)
    assert m["base_rate"] == 0.5 and m["n"] == 4


def test_classification_metrics_degenerate_inputs():
    m = classification_metrics([0, 0, 0, 0], [0.0, 0.2, 0.1, 1.0])
    assert math.isnan(m["auc"]) and math.isnan(m["pr_auc"]) and math.isnan(m["top_decile_lift"])
    assert math.isfinite(m["log_loss"])  # p = 1 for a negative is clipped, not infinite
    assert m["log_loss"] == pytest.approx(-np.log(1e-6) / 4 - (np.log(0.8) + np.log(0.9)) / 4, rel=1e-6)
    assert m["brier"] == pytest.approx((0 + 0.04 + 0.01 + 1) / 4)
    assert m["base_rate"] == 0.0
    # bool labels work too
    assert classification_metrics(np.array([True, False, True]), [0.9, 0.2, 0.7])["auc"] == 1.0


@pytest.mark.parametrize(
    "y, p",
    [
        ([0, 1, 2], [0.1, 0.2, 0.3]),  # not binary
        ([0, 1], [0.1, 0.2, 0.3]),  # length mismatch
        ([0, 1, 1], [0.1, 1.2, 0.3]),  # p outside [0, 1]
        ([0, 1, 1], [0.1, np.nan, 0.3]),  # NaN
        ([0, np.nan, 1], [0.1, 0.2, 0.3]),
    ],
)
def test_invalid_inputs_raise(y, p):
    with pytest.raises(ValueError):
        classification_metrics(y, p)


# ------------------------------------------------------------------- table, by group
def test_calibration_curve_table_by_hand():
    y, p = [0, 1, 1, 1], [0.15, 0.15, 0.85, 0.95]
    t = calibration_curve_table(y, p, n_bins=10)
    assert list(t.columns[:4]) == ["bin", "n", "mean_predicted", "observed_rate"]
    assert len(t) == 10 and t["n"].sum() == 4
    row = t.set_index("bin")
    assert row.loc[1, "n"] == 2 and row.loc[1, "mean_predicted"] == pytest.approx(0.15)
    assert row.loc[1, "observed_rate"] == pytest.approx(0.5)
    assert row.loc[9, "observed_rate"] == 1.0 and row.loc[9, "bin_lower"] == pytest.approx(0.9)
    assert row.loc[0, "n"] == 0 and np.isnan(row.loc[0, "mean_predicted"])
    # consistent with ECE
    filled = t.dropna()
    ece = (filled["n"] * (filled["observed_rate"] - filled["mean_predicted"]).abs()).sum() / 4
    assert ece == pytest.approx(expected_calibration_error(y, p))


def test_by_group_scores_big_groups_and_reports_n_for_small_ones(calibrated):
    y, p = calibrated
    y, p = y[:1000], p[:1000]
    groups = np.array(["big"] * 960 + ["small"] * 15 + ["oneclass"] * 25, dtype=object)
    y = y.copy()
    y[975:] = 0
    res = by_group(y, p, groups)
    assert set(res) == {"big", "small", "oneclass"}
    assert res["big"] == classification_metrics(y[:960], p[:960])
    assert res["small"]["n"] == 15 and math.isnan(res["small"]["auc"])
    assert res["oneclass"]["n"] == 25 and res["oneclass"]["base_rate"] == 0.0
    assert math.isnan(res["oneclass"]["log_loss"])
    assert set(res["small"]) == set(METRIC_KEYS)
    with pytest.raises(ValueError):
        by_group(y, p, groups[:-1])


def test_by_group_accepts_series_with_missing_groups():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=60)
    y = rng.binomial(1, p)
    g = pd.Series(["a"] * 30 + [None] * 30, index=np.arange(100, 160))
    res = by_group(y, p, g)
    assert len(res) == 2 and sum(r["n"] for r in res.values()) == 60


# ------------------------------------------------------------------ the definitions vs reference libraries
def test_definitions_match_sklearn_and_statsmodels():
    """Each metric is defined once (metrics/calibration.py, also used by the experiment bootstrap); the
    definitions agree with the reference implementations: sklearn's AUC / average precision / log loss / Brier
    and statsmodels' logistic recalibration GLM."""
    import statsmodels.api as sm
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    from csforecast.metrics.calibration import (
        brier_score,
        calibration_intercept,
        calibration_slope,
        clipped_log_loss,
        pr_auc,
        rank_auc,
    )

    rng = np.random.default_rng(3)
    p = np.clip(rng.beta(1.2, 6, 3000), 1e-4, 1 - 1e-4)
    p[:200] = np.round(p[:200], 2)          # ties
    y = (rng.random(3000) < np.clip(p * 1.3, 0, 1)).astype(float)
    assert rank_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert pr_auc(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert clipped_log_loss(y, p) == pytest.approx(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6)), abs=1e-12)
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    lp = logit(np.clip(p, 1e-6, 1 - 1e-6))
    slope = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit().params[1]
    intercept = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=lp).fit().params[0]
    assert calibration_slope(y, p) == pytest.approx(slope, rel=1e-7)
    assert calibration_intercept(y, p) == pytest.approx(intercept, abs=1e-8)
    # separation: no finite maximum likelihood estimate -> NaN, not a huge number
    ys = np.array([0, 0, 0, 1, 1, 1.0])
    ps = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert np.isnan(calibration_slope(ys, ps))
