"""Estimators: churn probability, time to churn, health score."""
from importlib import import_module

_EXPORTS = {
    "ChurnClassifier": "csforecast.models.churn",
    "SurvivalModel": "csforecast.models.survival",
    "HealthScoreModel": "csforecast.models.health",
}
__all__ = list(_EXPORTS)


def __getattr__(name):  # lazy, so importing one family does not import the others' heavy deps
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
