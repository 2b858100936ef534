"""Churn family at serve time: calibrated churn probability and its drivers for snapshot rows."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit

from csforecast.features.catalogue import compact_drivers_rows

__all__ = ["OUTPUTS", "score_churn", "pyfunc_frame"]

OUTPUTS = ("churn_probability", "churn_probability_p10", "churn_probability_p90", "churn_base_logit",
           "churn_drivers")
TOP_DRIVERS = 5


def score_churn(estimator, snapshot: pd.DataFrame, k: int = TOP_DRIVERS) -> pd.DataFrame:
    """Per row of ``snapshot`` (index kept): ``churn_probability`` with its P10 / P90 under the model's
    bootstrapped calibration maps (``churn_probability_p10`` / ``_p90``; NaN for a model without them, see
    ``ChurnClassifier.predict_interval``), ``churn_base_logit`` (the explanation's base
    value on the calibrated log-odds scale) and ``churn_drivers`` (the ``k`` largest contributions, kept compact:
    ``[feature, value, contribution, ...]`` flat per row, ``features.catalogue.compact_drivers_rows``; readers put them
    into words with ``features.catalogue.render_drivers``: associations, never causes). ``snapshot`` must hold the estimator's
    ``feature_names_in_``."""
    features = list(estimator.feature_names_in_)
    # one pass of the model: the calibrated contributions sum (with the base value) to logit(predict_proba)
    # to ~1e-9 (ChurnClassifier.explain), so the probability is read from them instead of a second pass; as
    # arrays (explain_arrays), and the snapshot read in place: no frame of 90 columns copied on the way
    phi, base = _contributions(estimator, snapshot, features)
    p = expit(phi.sum(axis=1) + base)
    drivers = compact_drivers_rows(snapshot, phi, features, k)
    lo = hi = np.full(len(p), np.nan)
    if getattr(estimator, "calibration_maps_", None) is not None and len(p):
        lo, hi = estimator.interval_of(p)      # from the same probabilities: no second pass of the model
    return pd.DataFrame({"churn_probability": p, "churn_probability_p10": lo, "churn_probability_p90": hi,
                         "churn_base_logit": np.full(len(p), base), "churn_drivers": drivers},
                        index=snapshot.index)


def _contributions(estimator, snapshot: pd.DataFrame, features: list[str]):
    """The calibrated contributions (n, p) in ``features`` order and the base value (a float, or one per row)
    of ``estimator`` for the snapshot rows: its ``explain_arrays`` (ChurnClassifier), else its ``explain``
    frame (the small-book fallbacks)."""
    if hasattr(estimator, "explain_arrays"):
        return estimator.explain_arrays(snapshot)
    contrib = estimator.explain(snapshot[features])
    return contrib[features].to_numpy(), contrib["base_value"].to_numpy()


def pyfunc_frame(estimator, X: pd.DataFrame) -> pd.DataFrame:
    """What the MLflow pyfunc model answers: ``churn_probability`` per row."""
    return pd.DataFrame({"churn_probability": estimator.predict_proba(X)[:, 1]}, index=X.index)
