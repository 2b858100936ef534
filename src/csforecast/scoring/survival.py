"""Survival family at serve time: survival probabilities, expected lifetime, renewal survival and the top
covariate contributions for snapshot rows (definitions in docs/survival.md)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from csforecast.models.snapshot_survival import CHURN_MODEL_HORIZON_DAYS, LIFETIME_HORIZON, beyond_churn_horizon

__all__ = ["OUTPUTS", "HORIZONS", "CHURN_MODEL_HORIZON_DAYS", "score_survival", "serve", "pyfunc_frame"]

HORIZONS = (90, 180, 365)
OUTPUTS = ("p_active_90d", "p_active_180d", "p_active_365d", "expected_lifetime_days", "p_renewal_survival",
           "survival_contributions")
TOP_CONTRIBUTIONS = 5


def score_survival(estimator, snapshot: pd.DataFrame) -> pd.DataFrame:
    """Score snapshot rows: ``p_active_90d/180d/365d``, ``expected_lifetime_days`` (restricted mean over 1095
    days), ``p_renewal_survival`` (S(days_to_renewal + 1)) and ``survival_contributions`` (dict of the top 5
    covariates by |contribution to the log hazard ratio|). Index = ``snapshot.index``."""
    est = getattr(estimator, "estimator", estimator)          # accept an EstimatorModel too
    if len(snapshot) == 0:
        return pd.DataFrame(columns=list(OUTPUTS), index=snapshot.index)
    S = est.predict_survival(snapshot, list(HORIZONS))
    out = pd.DataFrame({f"p_active_{int(t)}d": S[t].to_numpy() for t in S.columns}, index=snapshot.index)
    # S is non-increasing in t; guard against float noise
    out["p_active_180d"] = np.minimum(out["p_active_180d"], out["p_active_90d"])
    out["p_active_365d"] = np.minimum(out["p_active_365d"], out["p_active_180d"])
    out["expected_lifetime_days"] = est.expected_residual_lifetime(snapshot, LIFETIME_HORIZON).to_numpy()
    out["p_renewal_survival"] = est.renewal_survival(snapshot).to_numpy()
    out["survival_contributions"] = _top_contributions(est.contributions(snapshot), TOP_CONTRIBUTIONS)
    return out


def _top_contributions(contrib: pd.DataFrame, k: int) -> list[dict]:
    vals = contrib.to_numpy(dtype=float)
    names = np.asarray(contrib.columns, dtype=object)
    order = np.argsort(-np.abs(vals), axis=1, kind="stable")[:, :k]
    return [{str(names[j]): round(float(vals[i, j]), 6) for j in order[i]} for i in range(len(vals))]


def pyfunc_frame(estimator, X: pd.DataFrame) -> pd.DataFrame:
    """What the MLflow pyfunc model answers: ``p_active_90d``, ``p_active_180d``, ``p_active_365d``."""
    s = estimator.predict_survival(X, list(HORIZONS))
    s.columns = [f"p_active_{int(c)}d" for c in s.columns]
    return s


def serve(scores: pd.DataFrame) -> pd.DataFrame:
    """A renewal beyond the churn model's training horizon (``days_to_renewal`` > 365) is scored by the survival
    model, consistently with its curve: ``churn_probability`` = 1 - ``p_renewal_survival`` (the probability of
    churning by the renewal date), its P10/P90 unknown (NaN), ``churn_probability_source`` "survival" and
    ``model_churn_probability`` keeping the churn model's out-of-range value; ``risk_arr`` follows."""
    if not {"churn_probability", "p_renewal_survival", "days_to_renewal"} <= set(scores.columns):
        return scores
    out = scores.copy()
    far, p_far = beyond_churn_horizon(out["days_to_renewal"], out["p_renewal_survival"])
    if "model_churn_probability" not in out:
        out["model_churn_probability"] = out["churn_probability"]
    prev = out["churn_probability_source"] if "churn_probability_source" in out else pd.Series("model", index=out.index)
    out["churn_probability_source"] = np.where(far, "survival", prev.astype(object))
    out["churn_probability"] = np.where(far, p_far, out["churn_probability"].astype(float))
    for c in ("churn_probability_p10", "churn_probability_p90"):
        if c in out:
            out[c] = np.where(far, np.nan, out[c].astype(float))
    if "arr" in out:
        out["risk_arr"] = out["churn_probability"] * out["arr"]
    return out
