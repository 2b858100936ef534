"""Metric definitions (see docs/metrics.md): ARR movements, retention rates, calibration, forecast errors."""
from importlib import import_module

_EXPORTS = {
    "annualized_churn_rate": "csforecast.metrics.arr",
    "arr_movements": "csforecast.metrics.arr",
    "account_arr_at": "csforecast.metrics.arr",
    "renewal_rate": "csforecast.metrics.arr",
    "classification_metrics": "csforecast.metrics.calibration",
    "expected_calibration_error": "csforecast.metrics.calibration",
    "calibration_slope_intercept": "csforecast.metrics.calibration",
    "top_decile_lift": "csforecast.metrics.calibration",
    "wape": "csforecast.metrics.forecast_errors",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
