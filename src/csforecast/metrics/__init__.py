"""Metric definitions (see docs/metrics.md), one definition each: ARR movements and retention rates
(``arr``), classification and calibration (``calibration``), survival (``survival``), forecast errors
(``forecast_errors``) and the cluster bootstrap (``resampling``)."""
from csforecast.metrics.arr import account_arr_at, annualized_churn_rate, arr_movements, renewal_rate
from csforecast.metrics.calibration import (
    brier_score,
    calibration_intercept,
    calibration_slope,
    calibration_slope_intercept,
    classification_metrics,
    clipped_log_loss,
    expected_calibration_error,
    pr_auc,
    rank_auc,
    top_decile_lift,
)
from csforecast.metrics.forecast_errors import bias, interval_coverage, mape, wape
from csforecast.metrics.survival import (
    brier_scores,
    calibration_error_at,
    harrell_c_index,
    integrated_brier_score,
    kaplan_meier_at,
    survival_metrics,
)

__all__ = [
    "annualized_churn_rate", "arr_movements", "account_arr_at", "renewal_rate",
    "rank_auc", "pr_auc", "clipped_log_loss", "brier_score", "expected_calibration_error", "calibration_slope",
    "calibration_intercept", "calibration_slope_intercept", "top_decile_lift", "classification_metrics",
    "kaplan_meier_at", "brier_scores", "integrated_brier_score", "calibration_error_at", "harrell_c_index",
    "survival_metrics",
    "wape", "mape", "bias", "interval_coverage",
]
