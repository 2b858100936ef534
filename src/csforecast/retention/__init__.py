"""Cohort retention: Kaplan–Meier curves and the shifted-beta-geometric model."""
from importlib import import_module

_EXPORTS = {
    "ShiftedBetaGeometric": "csforecast.retention.sbg",
    "cohort_curves": "csforecast.retention.cohorts",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
