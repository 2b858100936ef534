"""Survival metrics (definitions in docs/survival.md): Kaplan-Meier, IPCW Brier score and its integral,
binned calibration error of S(t), Harrell's C-index, and the flat dict of them for a held-out set.

Pure functions of arrays: ``durations`` and ``events`` (1 = event, 0 = censored) and predictions
(a risk score, higher = sooner, or survival probabilities S(t)). Missing or infinite inputs raise
``ValueError``; a metric that is undefined for the data (no admissible pairs, no follow-up) is NaN.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

__all__ = [
    "kaplan_meier_at",
    "censoring_survival_at",
    "brier_scores",
    "integrated_brier_score",
    "calibration_error_at",
    "harrell_c_index",
    "survival_metrics",
]


def _as_1d(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float).reshape(-1)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has missing or infinite values")
    return a


def _km_curve(durations, events) -> tuple[np.ndarray, np.ndarray]:
    """Right-continuous Kaplan-Meier: knots (unique times) and S just after each."""
    T = _as_1d(durations, "durations")
    E = _as_1d(events, "events").astype(bool)
    if len(T) != len(E):
        raise ValueError("durations and events must have the same length")
    if len(T) == 0:
        return np.array([]), np.array([])
    times, inv = np.unique(T, return_inverse=True)
    d = np.bincount(inv, weights=E.astype(float), minlength=len(times))
    n_at = np.bincount(inv, minlength=len(times))[::-1].cumsum()[::-1].astype(float)  # #{T >= t}
    return times, np.cumprod(1.0 - d / n_at)


def _step_eval(knots: np.ndarray, values: np.ndarray, t, left: bool = False) -> np.ndarray:
    """Evaluate a right-continuous step function (1 before the first knot); left=True gives S(t-)."""
    t = np.asarray(t, dtype=float)
    if len(knots) == 0:
        return np.ones_like(t)
    idx = np.searchsorted(knots, t, side="left" if left else "right") - 1
    return np.where(idx >= 0, values[np.clip(idx, 0, None)], 1.0)


def kaplan_meier_at(durations, events, t):
    """Kaplan-Meier estimate S(t) = prod_{s <= t} (1 - d_s / n_s), n_s = #{T >= s}.

    Right-continuous; 1 before the first time; held flat at its last value after the
    last observed time.  ``t`` scalar -> float, array -> ndarray.
    """
    knots, vals = _km_curve(durations, events)
    out = _step_eval(knots, vals, t)
    return float(out) if np.ndim(t) == 0 else out


def censoring_survival_at(durations, events, t, left: bool = False):
    """Kaplan-Meier estimate of the censoring survival G(t) = P(C > t).

    Censorings (events == 0) are the "events"; risk set n_s = #{T >= s}
    (an event and a censoring tied at s both count as at risk).  ``left=True`` gives G(t-).
    """
    ev = 1.0 - _as_1d(events, "events")
    knots, vals = _km_curve(durations, ev)
    out = _step_eval(knots, vals, t, left=left)
    return float(out) if np.ndim(t) == 0 else out


def _surv_matrix(surv_at, times) -> tuple[np.ndarray, np.ndarray]:
    if times is None:
        if not isinstance(surv_at, pd.DataFrame):
            raise ValueError("times is required unless surv_at is a DataFrame whose columns are times")
        times = surv_at.columns
    t = _as_1d(np.asarray(times, dtype=float), "times")
    S = np.asarray(surv_at, dtype=float)
    if S.ndim == 1:
        S = S[:, None]
    if S.shape[1] != len(t):
        raise ValueError(f"surv_at has {S.shape[1]} columns but {len(t)} times")
    if len(t) > 1 and np.any(np.diff(t) <= 0):
        raise ValueError("times must be strictly increasing")
    return S, t


def brier_scores(durations, events, surv_at, times=None, train_durations=None, train_events=None) -> np.ndarray:
    """IPCW Brier score at each time (Graf et al., 1999).

    BS(t) = 1/n sum_i [ S_i(t)^2 * 1{T_i <= t, E_i = 1} / G(T_i-)
                       + (1 - S_i(t))^2 * 1{T_i > t} / G(t) ]

    ``surv_at[i, k]`` = predicted S_i(times[k]).  G is the Kaplan-Meier estimate of the
    censoring distribution (``censoring_survival_at``) from ``train_durations/
    train_events`` when given, else from the evaluation data.  Censored subjects with
    T_i <= t contribute 0.  BS(t) is NaN where undefined: t >= max(durations) (nobody
    left at risk) or G(t) = 0.  Events with G(T_i-) = 0 get weight 0.
    """
    T = _as_1d(durations, "durations")
    E = _as_1d(events, "events").astype(bool)
    S, t = _surv_matrix(surv_at, times)
    if S.shape[0] != len(T) or len(E) != len(T):
        raise ValueError("durations, events and surv_at rows must have the same length")
    gd, ge = (T, E) if train_durations is None else (train_durations, train_events)
    if train_durations is not None and train_events is None:
        raise ValueError("train_events is required with train_durations")
    G_t = np.atleast_1d(censoring_survival_at(gd, ge, t))
    G_Ti = np.atleast_1d(censoring_survival_at(gd, ge, T, left=True))
    w_event = np.divide(1.0, G_Ti, out=np.zeros_like(G_Ti), where=G_Ti > 0)
    valid = (t < T.max()) & (G_t > 0)
    w_alive = np.divide(1.0, G_t, out=np.zeros_like(G_t), where=valid)
    died = (T[:, None] <= t[None, :]) & E[:, None]
    alive = T[:, None] > t[None, :]
    contrib = np.where(died, S**2 * w_event[:, None], 0.0) + np.where(alive, (1.0 - S) ** 2 * w_alive[None, :], 0.0)
    bs = contrib.mean(axis=0)
    bs[~valid] = np.nan
    return bs


def integrated_brier_score(durations, events, surv_at, times=None, train_durations=None, train_events=None) -> float:
    """IBS = 1/(t_max - t_min) * int BS(t) dt, trapezoid over the times where BS(t) is
    defined (see ``brier_scores``).  One valid time -> that BS; none -> NaN."""
    S, t = _surv_matrix(surv_at, times)
    bs = brier_scores(durations, events, S, t, train_durations, train_events)
    ok = np.isfinite(bs)
    if ok.sum() == 0:
        return float("nan")
    if ok.sum() == 1:
        return float(bs[ok][0])
    tt, bb = t[ok], bs[ok]
    return float(np.trapezoid(bb, tt) / (tt[-1] - tt[0]))


def calibration_error_at(durations, events, surv_t, t: float, n_bins: int | None = None) -> float:
    """Binned calibration error of predicted S(t).

    Subjects are sorted by predicted S(t) and split into ``n_bins`` equal-count groups
    (default: deciles if n >= 500, else quintiles; never more bins than subjects).  In
    each group the observed S(t) is the Kaplan-Meier estimate (``kaplan_meier_at``)
    from that group's durations/events.  The error is the unweighted mean over groups
    of |mean predicted S(t) - KM observed S(t)|.  NaN if t > max(durations) (no
    follow-up); a group whose follow-up ends before t uses its KM's last value.
    """
    T = _as_1d(durations, "durations")
    E = _as_1d(events, "events")
    p = _as_1d(surv_t, "surv_t")
    n = len(T)
    if n == 0 or len(E) != n or len(p) != n:
        raise ValueError("durations, events and surv_t must be non-empty and the same length")
    if t > T.max():
        return float("nan")
    if n_bins is None:
        n_bins = 10 if n >= 500 else 5
    n_bins = max(1, min(int(n_bins), n))
    order = np.argsort(p, kind="mergesort")
    bins = np.empty(n, dtype=int)
    bins[order] = (np.arange(n) * n_bins) // n
    errs = [
        abs(p[bins == b].mean() - kaplan_meier_at(T[bins == b], E[bins == b], t)) for b in range(n_bins)
    ]
    return float(np.mean(errs))


def harrell_c_index(durations, events, risk) -> float:
    """Harrell's C with a risk score (higher = sooner event); lifelines' concordance_index
    on ``-risk``.  NaN if there are no admissible pairs."""
    from lifelines.utils import concordance_index

    try:
        return float(concordance_index(_as_1d(durations, "durations"), -_as_1d(risk, "risk"), _as_1d(events, "events")))
    except ZeroDivisionError:
        return float("nan")


def _interp_rows(S: np.ndarray, t: np.ndarray, at: float) -> np.ndarray | None:
    if at < t[0] or at > t[-1]:
        return None
    k = int(np.searchsorted(t, at))
    if t[k] == at:
        return S[:, k]
    w = (at - t[k - 1]) / (t[k] - t[k - 1])
    return (1 - w) * S[:, k - 1] + w * S[:, k]


def survival_metrics(
    durations,
    events,
    risk,
    surv_at,
    times=None,
    train_durations=None,
    train_events=None,
    calibration_times: Iterable[float] = (90, 180, 365),
    n_bins: int | None = None,
) -> dict[str, float]:
    """Flat dict of float metrics for a held-out set (ready for mlflow.log_metrics).

    durations, events : evaluation outcomes.  risk : higher = sooner churn
    (``SurvivalModel.predict_risk``).  surv_at : (n, len(times)) predicted S at ``times``
    (e.g. ``SurvivalModel.predict_survival(df, times)``; then ``times`` may be omitted).
    train_durations/train_events : data for the censoring KM used by IPCW (default: eval data).

    Keys: ``c_index`` (``harrell_c_index``), ``integrated_brier`` (``integrated_brier_score``
    over ``times``), ``calibration_error_<t>`` for each t in ``calibration_times``
    (``calibration_error_at`` with S(t) linearly interpolated along ``times``; NaN when t is
    outside [min(times), max(times)] or beyond follow-up), ``n``, ``n_events``.
    """
    T = _as_1d(durations, "durations")
    E = _as_1d(events, "events")
    S, t = _surv_matrix(surv_at, times)
    out: dict[str, float] = {
        "c_index": harrell_c_index(T, E, risk),
        "integrated_brier": integrated_brier_score(T, E, S, t, train_durations, train_events),
    }
    for ct in calibration_times:
        col = _interp_rows(S, t, float(ct))
        out[f"calibration_error_{float(ct):g}"] = (
            float("nan") if col is None else calibration_error_at(T, E, col, float(ct), n_bins=n_bins)
        )
    out["n"] = float(len(T))
    out["n_events"] = float(E.sum())
    return out
