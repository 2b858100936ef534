"""Blend family at serve time: the churn model's probability, the CSM's call and their blend side by side.

The scorer reads the churn champion's ``churn_probability`` (and its P10/P90) of the same rows and the latest
CSM call before the as-of date (``features.calls.latest_calls``: columns ``call_category``, ``call_csm_id``,
``called_at``, ``call_amount``). :func:`serve` then makes the blend the served probability where a call
exists: ``churn_probability`` becomes the blend's, ``model_churn_probability`` keeps the model's and
``churn_probability_source`` says which one is served ("blend" or "model"); docs/forecast.md, "CSM calls".
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import logit

__all__ = ["OUTPUTS", "READS", "score_blend", "serve", "pyfunc_frame"]

OUTPUTS = ("call_category", "call_csm_id", "called_at", "call_amount", "call_probability", "blend_probability",
           "blend_probability_p10", "blend_probability_p90", "csm_bias")
# the earlier families' score columns the scorer reads (scoring.batch joins them to the snapshot rows)
READS = ("churn_probability", "churn_probability_p10", "churn_probability_p90")
EPS = 1e-6


def _logit(p) -> np.ndarray:
    return logit(np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS))


def _inputs(rows: pd.DataFrame, p_col: str = "churn_probability") -> pd.DataFrame:
    n = len(rows)
    none = pd.Series([None] * n, index=rows.index, dtype=object)
    return pd.DataFrame({"model_logit": _logit(rows[p_col]) if p_col in rows else np.full(n, np.nan),
                         "call_category": rows["call_category"] if "call_category" in rows else none,
                         "call_csm_id": rows["call_csm_id"] if "call_csm_id" in rows else none,
                         "days_to_renewal": rows["days_to_renewal"] if "days_to_renewal" in rows
                         else np.full(n, np.nan)}, index=rows.index)


def score_blend(estimator, rows: pd.DataFrame) -> pd.DataFrame:
    """Per row (index kept): the latest call (``call_category``, ``call_csm_id``, ``called_at``,
    ``call_amount``; missing without one), ``call_probability`` (the call category's historical churn rate),
    ``blend_probability`` (the blend; the model's probability where there is no call) with its P10/P90 (the
    model's P10/P90 carried through the blend) and ``csm_bias`` (the calling CSM's bias). ``rows``: snapshot
    rows with the churn scores (:data:`READS`) and the call columns."""
    comp = estimator.predict_components(_inputs(rows))
    out = pd.DataFrame(index=rows.index)
    for c in ("call_category", "call_csm_id", "called_at", "call_amount"):
        out[c] = rows[c] if c in rows else None
    out["call_probability"] = comp["p_call"].to_numpy()
    out["blend_probability"] = comp["p_blend"].to_numpy()
    for q in ("p10", "p90"):
        col = f"churn_probability_{q}"
        if col in rows and rows[col].notna().any():
            out[f"blend_probability_{q}"] = estimator.predict_components(_inputs(rows, col))["p_blend"].to_numpy()
        else:
            out[f"blend_probability_{q}"] = np.nan
    out["csm_bias"] = comp["csm_bias"].to_numpy()
    return out


def serve(scores: pd.DataFrame) -> pd.DataFrame:
    """The served probability: the blend's where a call exists. Keeps the model's in
    ``model_churn_probability`` and says which is served in ``churn_probability_source``; ``risk_arr`` follows
    the served probability. Rows without a blend score are left as they are (source "model")."""
    if "blend_probability" not in scores or "churn_probability" not in scores:
        return scores
    out = scores.copy()
    has = out["call_category"].notna().to_numpy() & out["blend_probability"].notna().to_numpy()
    if "churn_probability_source" in out:   # a renewal the survival model scored keeps its probability
        has &= (out["churn_probability_source"] == "model").to_numpy()
    if "model_churn_probability" not in out:
        out["model_churn_probability"] = out["churn_probability"]
    prev = out["churn_probability_source"] if "churn_probability_source" in out else pd.Series("model", index=out.index)
    out["churn_probability_source"] = np.where(has, "blend", prev.astype(object))
    for src, dst in (("blend_probability", "churn_probability"), ("blend_probability_p10", "churn_probability_p10"),
                     ("blend_probability_p90", "churn_probability_p90")):
        if dst in out:
            out[dst] = np.where(has & out[src].notna().to_numpy(), out[src], out[dst])
    if "arr" in out:
        out["risk_arr"] = out["churn_probability"] * out["arr"]
    return out


def pyfunc_frame(estimator, X: pd.DataFrame) -> pd.DataFrame:
    """What the MLflow pyfunc model answers: ``blend_probability`` per row of the blend's inputs
    (``model_logit``, ``call_category``, ``call_csm_id``, ``days_to_renewal``)."""
    return pd.DataFrame({"blend_probability": estimator.predict_proba(X)[:, 1]}, index=X.index)
