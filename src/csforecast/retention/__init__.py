"""Cohort retention: Kaplan–Meier curves (``cohort_curves``) and the shifted-beta-geometric model
(``ShiftedBetaGeometric``, an estimator that lives in ``csforecast.models``)."""
from csforecast.models.sbg import ShiftedBetaGeometric
from csforecast.retention.cohorts import cohort_curves

__all__ = ["ShiftedBetaGeometric", "cohort_curves"]
