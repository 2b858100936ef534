"""The renewal forecast as CS teams run it: the CSMs' calls rolled up into scenarios, and the blend's inputs.

Scenarios (docs/forecast.md, "Scenarios"), from the latest call before ``as_of`` on each pending decision:

* ``commit``      = ARR renewed so far + the ARR of pending decisions called ``commit``;
* ``most_likely`` = ``commit`` + the ARR of those called ``most_likely``;
* ``best_case``   = ``most_likely`` + the ARR of those called ``at_risk``.

A call's ARR is its ``amount`` (the CSM's expected renewal ARR) when given, else the ARR due. Decisions called
``churn`` (``called_churn_arr``: their ARR due) and decisions without a call are in no scenario
(``uncalled_arr`` says how much is not called). So
``commit <= most_likely <= best_case`` always.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from csforecast.data.contract import CALL_CATEGORIES
from csforecast.features.calls import latest_calls
from csforecast.jsonsafe import finite_float

__all__ = ["pending_calls", "call_scenarios", "blend_inputs"]


def pending_calls(calls: pd.DataFrame | None, pending: pd.DataFrame, as_of) -> pd.DataFrame:
    """The latest call before ``as_of`` on each pending decision (``pending``: the decision book's pending
    rows; index kept). ``calls``: from ``features.calls.calls_with_due_date``."""
    rows = pd.DataFrame({"account_id": pending["account_id"].astype(str).to_numpy(),
                         "renewal_date": pd.to_datetime(pending["renewal_date"]).to_numpy(),
                         "as_of": pd.Timestamp(as_of)}, index=pending.index)
    return latest_calls(calls, rows)


def call_scenarios(pending: pd.DataFrame, called: pd.DataFrame, renewed_so_far: float) -> dict:
    """``commit``, ``most_likely`` and ``best_case`` ARR (module docstring), the ARR per call category, the
    pending ARR without a call and how many pending decisions have one."""
    arr = pending["arr"].to_numpy(float)
    cat = called["call_category"].astype(object).to_numpy()
    amount = called["call_amount"].to_numpy(float)
    value = np.where(np.isfinite(amount), amount, arr)
    by_cat = {c: float(value[cat == c].sum()) for c in CALL_CATEGORIES}
    uncalled = np.array([c is None or c != c for c in cat], dtype=bool) if len(cat) else np.zeros(0, bool)
    base = float(renewed_so_far or 0.0)
    commit = base + by_cat["commit"]
    likely = commit + by_cat["most_likely"]
    best = likely + by_cat["at_risk"]
    return {"commit": finite_float(commit, 2), "most_likely": finite_float(likely, 2),
            "best_case": finite_float(best, 2), "renewed_so_far_arr": finite_float(base, 2),
            "by_category": {c: finite_float(v, 2) for c, v in by_cat.items()},
            "called_churn_arr": finite_float(float(arr[cat == "churn"].sum()), 2),
            "uncalled_arr": finite_float(float(arr[uncalled].sum()), 2),
            "pending_called": int((~uncalled).sum()), "pending": int(len(arr))}


def blend_inputs(p_model: np.ndarray, called: pd.DataFrame, days_ahead: np.ndarray) -> pd.DataFrame:
    """The blend's input rows for pending decisions: the model's log-odds, the latest call, the days ahead."""
    from scipy.special import logit

    return pd.DataFrame({"model_logit": logit(np.clip(np.asarray(p_model, float), 1e-6, 1 - 1e-6)),
                         "call_category": called["call_category"].to_numpy(),
                         "call_csm_id": called["call_csm_id"].to_numpy(),
                         "days_to_renewal": np.asarray(days_ahead, float)}, index=called.index)
