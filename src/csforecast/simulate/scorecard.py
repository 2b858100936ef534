"""The scorecard's optional tables (issue 17): the CSM's sentiment and success-plan value reviews, drawn from the
account's latent health with noise and the coverage CS teams really have.

* ``csm_sentiment``: only accounts with a CSM; each CSM keeps it up to date for a share of their book
  (``SENTIMENT_COVERAGE``), about monthly. The CSM reads the latent health of two weeks earlier through noise
  (sd ``SENTIMENT_NOISE``) and records red / yellow / green at ``SENTIMENT_CUTS``.
* ``success_plans``: ``PLAN_SHARE`` of accounts per segment have a success plan of 3-8 goals, reviewed about
  quarterly; goals met ~ Binomial(goals, sigmoid(0.2 + 1.2 h)) at the health of a month earlier, and an ROI
  multiple (lognormal, rising with health) measured at ``ROI_MEASURED`` of reviews.

Both use their own random streams, so every other simulated table is the same with or without them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

SENTIMENT_COVERAGE = 0.75           # share of a CSM's accounts whose sentiment the CSM keeps up to date
SENTIMENT_EVERY = 30                # days between updates
SENTIMENT_NOISE = 0.6               # sd of the CSM's read of the latent health
SENTIMENT_CUTS = (-0.7, 0.3)        # red below the first, green from the second
PLAN_SHARE = (0.7, 0.45, 0.15)      # Enterprise, Mid-Market, SMB accounts with a success plan
PLAN_EVERY = 91
ROI_MEASURED = 0.4

__all__ = ["simulate_scorecard_tables"]


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def simulate_scorecard_tables(seed: int, h: np.ndarray, act: np.ndarray, seg: np.ndarray, csm: np.ndarray,
                              acc_ids: np.ndarray, dates: np.ndarray, w0: int) -> dict[str, pd.DataFrame]:
    """{"csm_sentiment": ..., "success_plans": ...} (a table is left out when it has no row).

    h: latent health (accounts x all days); act: active in the data window (accounts x window days); seg:
    segment index; csm: csm_id per account (None when unassigned); dates: the window's days; w0: the window's
    first day in ``h``."""
    out = {}
    sent = _sentiment(np.random.default_rng([seed, 301]), h, act, csm, acc_ids, dates, w0)
    if len(sent):
        out["csm_sentiment"] = sent
    plans = _success_plans(np.random.default_rng([seed, 302]), h, act, seg, acc_ids, dates, w0)
    if len(plans):
        out["success_plans"] = plans
    return out


def _sentiment(rng, h, act, csm, acc_ids, dates, w0) -> pd.DataFrame:
    N, W = act.shape
    has_csm = np.array([c is not None and c is not pd.NA and c == c for c in csm])
    kept = has_csm & (rng.random(N) < SENTIMENT_COVERAGE)
    phase = rng.integers(0, SENTIMENT_EVERY, N)
    parts = []
    for k in range(W):
        due = kept & act[:, k] & ((k + phase) % SENTIMENT_EVERY == 0)
        if not due.any():
            continue
        idx = np.nonzero(due)[0]
        read = h[idx, max(0, w0 + k - 14)] + rng.normal(0, SENTIMENT_NOISE, len(idx))
        word = np.where(read < SENTIMENT_CUTS[0], "red", np.where(read < SENTIMENT_CUTS[1], "yellow", "green"))
        parts.append(pd.DataFrame({"account_id": acc_ids[idx], "recorded_at": dates[k],
                                   "csm_id": csm[idx].astype(object), "sentiment": word}))
    if not parts:
        return pd.DataFrame(columns=["account_id", "recorded_at", "csm_id", "sentiment"])
    return pd.concat(parts, ignore_index=True).sort_values(["recorded_at", "account_id"], ignore_index=True)


def _success_plans(rng, h, act, seg, acc_ids, dates, w0) -> pd.DataFrame:
    N, W = act.shape
    has_plan = rng.random(N) < np.asarray(PLAN_SHARE)[seg]
    goals = rng.integers(3, 9, N)
    phase = rng.integers(0, PLAN_EVERY, N)
    parts = []
    for k in range(W):
        due = has_plan & act[:, k] & ((k + phase) % PLAN_EVERY == 0)
        if not due.any():
            continue
        idx = np.nonzero(due)[0]
        lag = h[idx, max(0, w0 + k - 30)]
        met = rng.binomial(goals[idx], _sigmoid(0.2 + 1.2 * lag))
        roi = np.exp(0.3 + 0.5 * lag + rng.normal(0, 0.4, len(idx)))
        roi = np.where(rng.random(len(idx)) < ROI_MEASURED, np.round(roi, 2), np.nan)
        parts.append(pd.DataFrame({"account_id": acc_ids[idx], "recorded_at": dates[k],
                                   "goals_total": goals[idx].astype(np.int64), "goals_met": met.astype(np.int64),
                                   "roi": roi}))
    if not parts:
        return pd.DataFrame(columns=["account_id", "recorded_at", "goals_total", "goals_met", "roi"])
    return pd.concat(parts, ignore_index=True).sort_values(["recorded_at", "account_id"], ignore_index=True)
