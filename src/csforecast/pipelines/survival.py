"""Survival family: time to churn from point-in-time snapshots, evaluated on later snapshots beside the oracle,
logged to MLflow (with cohort retention curves and an sBG projection) and registered under the
champion/challenger guard. Definitions are in ``docs/survival.md``.

Rows, durations and the time split
----------------------------------
A row is a monthly snapshot of an active account (``ctx.snapshots``). Its outcome is ``label_duration_days``
(days from ``as_of`` to the account's churn, or to the data end ``ctx.as_of`` when censored) and
``label_event`` (1 = churned before the data end).

* **Training rows**: snapshots with ``as_of < ctx.validation_start``, thinned to ``snapshots_per_quarter``
  snapshots per account per quarter (default 1; which month is picked depends on a stable hash of the
  account id, so days-to-renewal stay spread out). Their follow-up is **censored at validation_start**
  (``duration = min(duration, validation_start - as_of)``, ``event = event and churn_date <
  validation_start``), so nothing that happens in the validation period is learnt.
* **Validation rows**: every snapshot with ``as_of >= ctx.validation_start``; follow-up runs to ``ctx.as_of``
  (at most ``validation_months`` months, ~273 days by default).

The clock: conditional on the time already survived, by left truncation
------------------------------------------------------------------------
Churn happens at renewals. The Cox model's time axis is therefore the **renewal clock**
``c = L - days until the renewal that ends the contract`` (``L`` = 1100 days, more than any term), so the
renewal of every contract - annual or multi-year - sits at ``c = L`` and the Breslow baseline hazard is a
spike there (churn outside renewals, if the data has any, shows up earlier on the clock). The follow-up of
a snapshot is split into one episode per contract (counting-process rows, ``entry_col``): the current
contract from ``L - days_to_renewal - 1`` (the account is known to be a customer on the day before as_of:
**delayed entry / left truncation**, so predictions are conditional on having survived so far) to ``L``;
then each later contract from ``L - term`` to ``L``. Covariates are measured at as_of, except the
renewal-number ones, which follow the episode: ``first_renewal`` (the account's first renewal; churn is
higher there) and ``log_tenure_at_renewal`` (tenure, in years, at that renewal - the survivors of many
renewals are the better customers). So tenure enters as a covariate, while the conditioning on the time
already survived is done by the delayed entry. S over several renewals is the product of the episodes'
conditional survivals; ``P(churn at a renewal) = 1 - exp(-dH0 * exp(x.beta))`` is a complementary
log-log model of each renewal decision.

Alternatives we measured (3000 accounts x 3 years, seeds 7 and 11): a tenure clock (entry = tenure_days)
has the same validation C-index on large portfolios, but its baseline is blind beyond the longest tenure
seen in training (the 6th anniversary never is), so long-tenure accounts got no renewal risk at all: on 800
accounts it lost 0.03-0.13 C-index to the oracle. A contract clock without episodes badly under-predicted
3-year survival. Calendar time with ``days_to_renewal`` as a covariate cannot put the churn on the renewal
date under proportional hazards. The renewal clock needs ``days_to_renewal`` and ``term_days``; it assumes
later contracts keep the current term.

The Weibull AFT cannot use the renewal clock (all churn falls on one clock value, so its likelihood has no
maximum: lifelines does not converge). It is fitted on the plain as-of clock (days since the day before
as_of, no delayed entry) with ``log_days_to_renewal`` as an extra covariate, as the parametric
alternative.

Covariates (``DEFAULT_COVARIATES``): 24 covariates derived from snapshot columns - segment, auto-renew,
multi-year term, first renewal, tenure at the renewal, contract size (log ARR), last renewal's ARR change,
seat utilisation (30 days and 12 months), feature breadth, NPS/CSAT, ticket load, severity and resolution
time, CSM coverage, exec meetings and QBRs, champion departures, and two "recent deviation x nearness of the
renewal" terms; log-transformed where heavy-tailed and standardised with the training mean/sd. Missing values
are imputed by ``SurvivalModel`` (training median + missing indicator). Covariates whose snapshot columns
are absent (e.g. no usage table) are skipped and listed in ``detail["skipped_covariates"]``.

Model choice: the Cox penalizer (default grid 0.01, 0.03, 0.1) is chosen by the integrated Brier score on a
time-ordered inner split of the training rows (the last ``validation_months`` before validation_start; inner
training rows censored at the inner cut, exactly like the outer split). The Weibull AFT reuses it (lifelines'
Weibull is ~5x slower to fit; without Cox in ``kinds`` it does its own search). Both are refitted on all
training rows and the one with the better validation C-index is kept; both are recorded in
``detail["candidates"]``.

Metrics (validation rows; same keys for the oracle, from ``Truth.survival_curve`` on the same rows):
``c_index`` (Harrell's C with risk = minus the restricted mean lifetime over the evaluation horizon
``min(365, longest validation follow-up)`` - the same risk for model and oracle), ``integrated_brier`` (IPCW,
daily grid over that horizon), ``calibration_error_90/180/365`` (mean |predicted S(t) - Kaplan-Meier
observed| over deciles of predicted S(t)). When the validation follow-up is shorter than 365 days,
``calibration_error_365`` is evaluated at the longest horizon available; the horizon used is in
``detail["calibration_horizon_365"]``.
"""
from __future__ import annotations

import math
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.base import BaseEstimator  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from csforecast.models.survival import SurvivalModel, harrell_c_index, kaplan_meier_at, survival_metrics  # noqa: E402
from csforecast.pipelines.context import TrainingContext  # noqa: E402
from csforecast.tracking import store  # noqa: E402
from csforecast.tracking.pyfunc import EstimatorModel  # noqa: E402

__all__ = ["train_survival", "score_survival", "SnapshotSurvivalModel", "DEFAULT_COVARIATES", "METRIC_KEYS"]

FAMILY = "survival"
METRIC_KEYS = ("c_index", "integrated_brier", "calibration_error_90", "calibration_error_180",
               "calibration_error_365")
CALIBRATION_TIMES = (90, 180, 365)
LIFETIME_HORIZON = 1095          # expected_lifetime_days = restricted mean lifetime over 3 years
TOP_CONTRIBUTIONS = 5
DEFAULT_PENALIZERS = (0.01, 0.03, 0.1)
KINDS = ("cox", "weibull")
_PARAM_KEYS = {"kinds", "penalizer", "penalizers", "snapshots_per_quarter"}
_CHUNK_CELLS = 2_000_000         # rows x times per survival matrix block


# ------------------------------------------------------------------------------------------------
# covariates derived from snapshot columns
# ------------------------------------------------------------------------------------------------
def _near_renewal(d: pd.DataFrame) -> pd.Series:
    """1 when the renewal decision (60 days' notice) is due now, decaying like a 45-day AR(1) before that."""
    return np.exp(-np.maximum(d["days_to_renewal"] - 60.0, 0.0) / 45.0)


def _log1p(col: str):
    return (col,), lambda d, j: np.log1p(d[col].clip(lower=0))


def _raw(col: str):
    return (col,), lambda d, j: d[col]


def _cycle(d: pd.DataFrame) -> np.ndarray:
    """Contract length used for renewals after the next one (term_days; 365 when unknown)."""
    term = pd.to_numeric(d["term_days"]).to_numpy(dtype=float)
    dtr = pd.to_numeric(d["days_to_renewal"]).to_numpy(dtype=float)
    term = np.where(np.isfinite(term) & (term > 0), term, 365.0)
    return np.maximum(term, np.nan_to_num(dtr, nan=0.0)).clip(min=1.0)


# name -> (snapshot columns it needs, f(snapshot frame, j)) where j = 0 for the next renewal, 1 for the one
# after, ... (only the renewal-number covariates depend on j; everything else is measured at as_of)
DERIVED: dict[str, tuple[tuple[str, ...], Callable]] = {
    "segment": _raw("segment"),
    "auto_renew": _raw("auto_renew"),
    "multi_year": (("term_days",), lambda d, j: (d["term_days"] > 400).astype(float)),
    "first_renewal": (("renewals_so_far",), lambda d, j: ((d["renewals_so_far"].fillna(0) + j) == 0).astype(float)),
    "log_tenure_at_renewal": (("tenure_days", "days_to_renewal", "term_days"),
                              lambda d, j: np.log1p((d["tenure_days"] + d["days_to_renewal"]
                                                     + j * _cycle(d)).clip(lower=0) / 365.0)),
    "log_days_to_renewal": _log1p("days_to_renewal"),
    "log_arr": (("arr",), lambda d, j: np.log(d["arr"].clip(lower=1.0))),
    "last_arr_change": (("last_arr_change",), lambda d, j: d["last_arr_change"].fillna(0.0).clip(-0.5, 1.0)),
    "seat_utilisation": _raw("seat_utilisation"),
    "seat_utilisation_12m": _raw("seat_utilisation_12m"),
    "usage_trend_30d": (("active_users_30d", "active_users_prev30d"),
                        lambda d, j: np.log((d["active_users_30d"] + 1) / (d["active_users_prev30d"] + 1))),
    "key_feature_breadth": _raw("key_feature_breadth"),
    "key_features_used_12m": _raw("key_features_used_12m"),
    "log_days_since_login": _log1p("days_since_login"),
    "nps_mean_365d": _raw("nps_mean_365d"),
    "nps_latest": _raw("nps_latest"),
    "csat_latest": _raw("csat_latest"),
    "ticket_csat_180d": _raw("ticket_csat_180d"),
    "log_tickets_90d": _log1p("tickets_90d"),
    "log_tickets_p1_90d": _log1p("tickets_p1_90d"),
    "mean_resolution_days_180d": _raw("mean_resolution_days_180d"),
    "champion_left_365d": _raw("champion_left_365d"),
    "log_touches_90d": _log1p("touches_90d"),
    "has_csm": _raw("has_csm"),
    "log_exec_meetings_365d": _log1p("exec_meetings_365d"),
    "log_qbrs_365d": _log1p("qbrs_365d"),
    # recent deviation from the account's own 12-month level, weighted by how close the next decision is
    # (0 for later renewals: by then the deviation has reverted)
    "utilisation_dev_near_renewal": (("seat_utilisation", "seat_utilisation_12m", "days_to_renewal"),
                                     lambda d, j: ((d["seat_utilisation"] - d["seat_utilisation_12m"])
                                                   * _near_renewal(d) * (np.asarray(j) == 0)).fillna(0.0)),
    "feature_dev_near_renewal": (("key_feature_breadth", "key_features_used_12m", "days_to_renewal"),
                                 lambda d, j: ((d["key_feature_breadth"] - 0.7 * d["key_features_used_12m"])
                                               * _near_renewal(d) * (np.asarray(j) == 0)).fillna(0.0)),
}

DEFAULT_COVARIATES: tuple[str, ...] = (
    "segment", "auto_renew", "multi_year", "first_renewal", "log_tenure_at_renewal", "log_arr", "last_arr_change",
    "seat_utilisation", "seat_utilisation_12m", "usage_trend_30d", "key_feature_breadth", "key_features_used_12m",
    "nps_mean_365d", "csat_latest", "ticket_csat_180d",
    "log_tickets_90d", "log_tickets_p1_90d", "mean_resolution_days_180d", "champion_left_365d",
    "has_csm", "log_exec_meetings_365d", "log_qbrs_365d",
    "utilisation_dev_near_renewal", "feature_dev_near_renewal",
)
CLOCK_COLUMNS = ("days_to_renewal", "term_days")
CLOCKS = ("renewal", "as_of")


def _required_columns(name: str) -> tuple[str, ...]:
    return DERIVED[name][0] if name in DERIVED else (name,)


# ------------------------------------------------------------------------------------------------
# the estimator served by the pyfunc: raw snapshot frame in, survival out
# ------------------------------------------------------------------------------------------------
class SnapshotSurvivalModel(BaseEstimator):
    """A ``SurvivalModel`` on the renewal clock that takes raw snapshot rows.

    Clock: ``c = L - days until the renewal that ends the current contract``, so every renewal, whatever the
    contract term, sits at ``c = L`` (``L = clock_length_``, > the longest term). The follow-up of a
    snapshot is cut into one episode per contract: the current one from ``L - days_to_renewal - 1`` (the day
    before as_of, left truncation) to ``L``, then one per later contract from ``L - term`` to ``L``, with the
    renewal-number covariates (``first_renewal``, ``log_tenure_at_renewal``) of that renewal. Survival over
    several renewals multiplies the episodes' conditional survivals.

    It derives and standardises its covariates from a snapshot frame (any extra columns are ignored) and
    answers in days after each row's ``as_of``:

    * ``predict_survival(df, times)``: P(still a customer t days after as_of | a customer the day before);
    * ``renewal_survival(df)``: S(days_to_renewal + 1), still a customer just after the next renewal date;
    * ``expected_residual_lifetime(df, horizon)``: restricted mean lifetime, integral of S over [0, horizon];
    * ``predict_risk(df, horizon)``: minus that restricted mean (higher = churns sooner; for the C-index);
    * ``contributions(df)``: per-covariate contributions to the log hazard ratio of the next renewal vs
      the training-mean profile (Weibull: on the hazard scale, ``hazard_scale=True``).

    ``feature_names_in_`` lists the snapshot columns it needs. Picklable (module-level, plain attributes).
    """

    def __init__(self, kind: str = "cox", penalizer: float = 0.01, covariates: list[str] | None = None,
                 clock: str | None = None):
        self.kind = kind
        self.penalizer = penalizer
        self.covariates = covariates
        self.clock = clock

    # ------------------------------------------------------------ fit
    def fit(self, rows: pd.DataFrame, durations, events) -> "SnapshotSurvivalModel":
        self.clock_ = self.clock or ("renewal" if self.kind == "cox" else "as_of")
        if self.clock_ not in CLOCKS:
            raise ValueError(f"clock must be one of {CLOCKS}, got {self.clock!r}")
        wanted = list(self.covariates) if self.covariates is not None else list(DEFAULT_COVARIATES)
        if self.clock_ == "as_of" and "log_days_to_renewal" not in wanted:
            wanted.append("log_days_to_renewal")     # on the as-of clock the renewal date is a covariate
        usable = [c for c in wanted if all(col in rows.columns for col in _required_columns(c))]
        self.skipped_covariates_ = [c for c in wanted if c not in usable]
        if self.covariates is not None and self.skipped_covariates_:
            raise KeyError(f"covariates need snapshot columns that are missing: {self.skipped_covariates_}")
        if not usable:
            raise ValueError("no usable covariates")
        missing_clock = [c for c in CLOCK_COLUMNS if c not in rows.columns]
        if missing_clock:
            raise KeyError(f"snapshot rows lack the clock columns {missing_clock}")
        self.covariates_ = usable
        dur = np.asarray(durations, dtype=float)
        ev = np.asarray(events, dtype=float)
        if len(dur) != len(rows) or len(ev) != len(rows):
            raise ValueError("durations and events must have one value per row")
        self.clock_length_ = float(max(1100.0, math.ceil(np.max(_cycle(rows))) + 1.0))
        if self.clock_ == "renewal":
            pos, j, entry, exit_, event = self._episodes(rows, dur, ev)
        else:   # time since the day before as_of, no delayed entry
            pos, j = np.arange(len(rows)), np.zeros(len(rows), dtype=int)
            entry, exit_, event = np.zeros(len(rows)), np.maximum(dur, 0.0) + 1.0, ev
        raw = self._derive(rows.iloc[pos], j)
        self.numeric_ = [c for c in usable if pd.api.types.is_numeric_dtype(raw[c])
                         and not pd.api.types.is_bool_dtype(raw[c])]
        num = raw[self.numeric_].astype(float).replace([np.inf, -np.inf], np.nan)
        self.means_ = num.mean().fillna(0.0).to_dict()
        sd = num.std()
        self.scales_ = sd.where(sd > 1e-12, 1.0).fillna(1.0).to_dict()
        X = self._standardise(raw).reset_index(drop=True)
        # the fitters see the clock in years: lifelines' Weibull does not converge on day-scale durations
        sc = self.time_scale_ = 365.25
        fit_df = X.assign(_entry=entry / sc, _T=exit_ / sc, _E=event)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            self.model_ = SurvivalModel(kind=self.kind, penalizer=self.penalizer).fit(
                fit_df, "_T", "_E", entry_col="_entry")
        cols: list[str] = []
        for group in [*(_required_columns(c) for c in usable), CLOCK_COLUMNS]:
            for col in group:
                if col not in cols:
                    cols.append(col)
        self.feature_names_in_ = np.array(cols, dtype=object)
        self.n_samples_, self.n_events_, self.n_episodes_ = int(len(rows)), int(ev.sum()), int(len(pos))
        return self

    def _episodes(self, rows: pd.DataFrame, dur: np.ndarray, ev: np.ndarray):
        """Counting-process rows (row position, renewal index j, entry, exit, event) on the renewal clock."""
        L = self.clock_length_
        dtr = np.nan_to_num(pd.to_numeric(rows["days_to_renewal"]).to_numpy(dtype=float), nan=0.0).clip(min=0)
        cyc = np.minimum(_cycle(rows), L - 1.0)
        dur = np.maximum(dur, 0.0)
        n = len(rows)
        idx = np.arange(n)
        # episode 0: the current contract, entered the day before as_of
        in0 = dur <= dtr
        pos, js = [idx], [np.zeros(n, dtype=int)]
        entry = [np.maximum(L - dtr - 1.0, 0.0)]
        exit_ = [np.where(in0, L - dtr + dur, L)]
        event = [np.where(in0, ev, 0.0)]
        k = 1
        while True:
            start = dtr + (k - 1) * cyc                     # days after as_of when contract k starts
            left = dur - start
            live = left > 0
            if not live.any():
                break
            within = left[live] <= cyc[live]
            pos.append(idx[live])
            js.append(np.full(int(live.sum()), k))
            entry.append(L - cyc[live])
            exit_.append(L - cyc[live] + np.minimum(left[live], cyc[live]))
            event.append(np.where(within, ev[live], 0.0))
            k += 1
        return (np.concatenate(pos), np.concatenate(js), np.concatenate(entry), np.concatenate(exit_),
                np.concatenate(event))

    # ------------------------------------------------------------ helpers
    def _derive(self, df: pd.DataFrame, j) -> pd.DataFrame:
        jj = np.broadcast_to(np.asarray(j), (len(df),))
        out = {}
        for c in self.covariates_:
            if c in DERIVED:
                v = DERIVED[c][1](df, jj)
                out[c] = v.to_numpy() if isinstance(v, pd.Series) else np.asarray(v)
            else:
                out[c] = df[c].to_numpy()
        return pd.DataFrame(out, index=df.index)

    def _standardise(self, raw: pd.DataFrame) -> pd.DataFrame:
        X = raw.copy()
        for c in self.numeric_:
            X[c] = (pd.to_numeric(X[c], errors="coerce").astype(float) - self.means_[c]) / self.scales_[c]
        return X

    def design(self, df: pd.DataFrame, j: int = 0) -> pd.DataFrame:
        """The standardised covariates of the j-th coming renewal (0 = the next one)."""
        return self._standardise(self._derive(df, j))

    def _lp(self, df: pd.DataFrame, j: int) -> np.ndarray:
        """cox: log partial hazard; weibull: log lambda (the AFT scale)."""
        c = self.model_.contributions(self.design(df, j)).sum(axis=1).to_numpy(dtype=float)
        if self.kind == "cox":
            return c
        m = self.model_
        return m.intercept_ + float(m.baseline_means_.to_numpy() @ m.coef_.to_numpy()) - c

    def _H(self, c: np.ndarray, lp: np.ndarray) -> np.ndarray:
        """Cumulative hazard on the clock at c (any shape, rows first) for linear predictors lp (n,)."""
        lp = lp.reshape((-1,) + (1,) * (c.ndim - 1))
        c = c / self.time_scale_
        if self.kind == "cox":
            H0 = self.model_.baseline_cumulative_hazard_
            return np.interp(c, H0.index.to_numpy(dtype=float), H0.to_numpy()) * np.exp(lp)
        with np.errstate(divide="ignore"):
            return np.where(c > 0, np.exp(self.model_.rho_ * (np.log(np.maximum(c, 1e-12)) - lp)), 0.0)

    def _cumhaz(self, df: pd.DataFrame, t: np.ndarray) -> np.ndarray:
        """Cumulative hazard between the day before as_of and t days after as_of; t is (n, m)."""
        lp0 = self._lp(df, 0)
        if self.clock_ == "as_of":
            return np.maximum(self._H(t + 1.0, lp0), 0.0)
        L = self.clock_length_
        dtr = np.nan_to_num(pd.to_numeric(df["days_to_renewal"]).to_numpy(dtype=float), nan=0.0).clip(min=0)
        cyc = np.minimum(_cycle(df), L - 1.0)
        d, cy = dtr[:, None], cyc[:, None]
        a0 = L - dtr - 1.0
        H = self._H(L - d + np.minimum(t, d), lp0) - self._H(a0, lp0)[:, None]
        k = 1
        while True:
            start = d + (k - 1) * cy
            if not (t > start).any():
                break
            lpk = self._lp(df, k)
            span = np.clip(t - start, 0.0, cy)
            H = H + self._H(L - cy + span, lpk) - self._H(L - cyc, lpk)[:, None]
            k += 1
        return np.maximum(H, 0.0)

    def _matrix(self, df: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        """S at `times` days after as_of for every row, (n, len(times)), computed in row blocks."""
        t = np.asarray(times, dtype=float)
        out = np.empty((len(df), len(t)))
        step = max(1, _CHUNK_CELLS // max(len(t), 1))
        for s in range(0, len(df), step):
            sub = df.iloc[s:s + step]
            out[s:s + step] = np.exp(-self._cumhaz(sub, np.broadcast_to(t, (len(sub), len(t)))))
        return np.clip(out, 0.0, 1.0)

    # ------------------------------------------------------------ public API
    @property
    def summary(self) -> pd.DataFrame:
        return self.model_.summary

    def predict_survival(self, df: pd.DataFrame, times, conditional_after=None) -> pd.DataFrame:
        """P(a customer t days after as_of | a customer on the day before as_of), index df.index, columns times.

        ``conditional_after`` is accepted for interface compatibility and must be None: the conditioning on
        the time already survived is built in."""
        if conditional_after is not None:
            raise ValueError("SnapshotSurvivalModel conditions on each row's position in its contract itself")
        labels = pd.Index(np.atleast_1d(np.asarray(times)), name="time")
        t = labels.to_numpy(dtype=float)
        if not np.all(np.isfinite(t)) or np.any(t < 0):
            raise ValueError("times must be finite and >= 0")
        return pd.DataFrame(self._matrix(df, t), index=df.index, columns=labels)

    def survival_at(self, df: pd.DataFrame, t_row) -> pd.Series:
        """S at a row-specific number of days after as_of."""
        t_row = np.asarray(t_row, dtype=float)
        if len(t_row) != len(df) or not np.all(np.isfinite(t_row)) or np.any(t_row < 0):
            raise ValueError("t_row must be finite, >= 0 and one per row")
        out = np.empty(len(df))
        step = 200_000
        for s in range(0, len(df), step):
            sub = df.iloc[s:s + step]
            out[s:s + step] = np.exp(-self._cumhaz(sub, t_row[s:s + step, None]))[:, 0]
        return pd.Series(np.clip(out, 0.0, 1.0), index=df.index, name="survival")

    def renewal_survival(self, df: pd.DataFrame) -> pd.Series:
        """P(still a customer just after the next renewal date | a customer today) = S(days_to_renewal + 1)."""
        d = pd.to_numeric(df["days_to_renewal"]).fillna(0.0).clip(lower=0).to_numpy(dtype=float)
        return self.survival_at(df, d + 1.0).rename("p_renewal_survival")

    def expected_residual_lifetime(self, df: pd.DataFrame, horizon: float = LIFETIME_HORIZON) -> pd.Series:
        """Restricted mean lifetime in days, integral of S(t) for t in [0, horizon] (daily trapezoid)."""
        grid = np.arange(0, int(math.ceil(horizon)) + 1, dtype=float)
        grid[-1] = float(horizon)
        out = np.empty(len(df))
        step = max(1, _CHUNK_CELLS // len(grid))
        for s in range(0, len(df), step):
            out[s:s + step] = np.trapezoid(self._matrix(df.iloc[s:s + step], grid), grid, axis=1)
        return pd.Series(out, index=df.index, name="expected_residual_lifetime")

    def predict_risk(self, df: pd.DataFrame, horizon: float = 365) -> pd.Series:
        """Minus the restricted mean lifetime over `horizon` days: higher = churns sooner."""
        return (-self.expected_residual_lifetime(df, horizon)).rename("risk")

    def contributions(self, df: pd.DataFrame) -> pd.DataFrame:
        """Per-covariate contributions to the log hazard ratio of the next renewal vs the training-mean profile."""
        return self.model_.contributions(self.design(df, 0), hazard_scale=True)


# ------------------------------------------------------------------------------------------------
# scoring
# ------------------------------------------------------------------------------------------------
def score_survival(estimator, snapshot: pd.DataFrame) -> pd.DataFrame:
    """Score snapshot rows: ``p_active_90d/180d/365d``, ``expected_lifetime_days`` (restricted mean over 1095
    days), ``p_renewal_survival`` (S(days_to_renewal + 1)) and ``survival_contributions`` (dict of the top 5
    covariates by |contribution to the log hazard ratio|). Index = ``snapshot.index``."""
    est = getattr(estimator, "estimator", estimator)          # accept an EstimatorModel too
    if len(snapshot) == 0:
        return pd.DataFrame(columns=["p_active_90d", "p_active_180d", "p_active_365d", "expected_lifetime_days",
                                     "p_renewal_survival", "survival_contributions"], index=snapshot.index)
    S = est.predict_survival(snapshot, [90, 180, 365])
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


# ------------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------------
def _subset(m: dict | None) -> dict | None:
    if m is None:
        return None
    return {k: (None if m.get(k) is None or m.get(k) != m.get(k) else round(float(m[k]), 6)) for k in METRIC_KEYS}


def _thin(rows: pd.DataFrame, per_quarter: int) -> pd.DataFrame:
    """Keep `per_quarter` (1-3) monthly snapshots per account per quarter; the months depend on a stable hash."""
    if per_quarter >= 3:
        return rows
    off = rows["account_id"].astype(str).map(lambda a: zlib.crc32(a.encode()) % 3).to_numpy()
    month = (pd.to_datetime(rows["as_of"]).dt.month.to_numpy() - 1) % 3
    keep = ((month - off) % 3) < per_quarter
    return rows[keep]


def _censor_at(rows: pd.DataFrame, cut: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Durations/events as they were known at `cut` (the follow-up of every row stops there)."""
    room = (cut - pd.to_datetime(rows["as_of"])).dt.days.to_numpy(dtype=float)
    dur = np.minimum(rows["label_duration_days"].to_numpy(dtype=float), room)
    churn = pd.to_datetime(rows["label_churn_date"])
    ev = ((rows["label_event"].to_numpy(dtype=float) == 1) & (churn < cut).to_numpy()).astype(float)
    return dur, ev


def _evaluate(S: np.ndarray, grid: np.ndarray, T: np.ndarray, E: np.ndarray, cal_365: float) -> dict:
    """Metrics for a survival matrix S on the daily `grid` (grid[0] = 0). The IPCW censoring distribution
    is estimated on the evaluation rows themselves: their censoring is administrative (at the data end) and
    differs from the training rows'."""
    risk = -np.trapezoid(S, grid, axis=1)
    cal_times = (90.0, 180.0, cal_365)
    m = survival_metrics(T, E, risk, S[:, 1:], grid[1:], calibration_times=[t for t in cal_times if t <= grid[-1]])
    out = {"c_index": m["c_index"], "integrated_brier": m["integrated_brier"]}
    for key, t in zip(("calibration_error_90", "calibration_error_180", "calibration_error_365"), cal_times):
        out[key] = m.get(f"calibration_error_{t:g}", float("nan"))
    return out


def _fit_candidate(kind, pen, covariates, rows, dur, ev):
    return SnapshotSurvivalModel(kind=kind, penalizer=pen, covariates=covariates).fit(rows, dur, ev)


def train_survival(ctx: TrainingContext, params: dict | None = None, register: bool = True,
                   run_name: str | None = None, nested: bool = False, *, covariates: list[str] | None = None,
                   churn_estimator=None) -> dict:
    """Fit, evaluate beside the oracle, log and register the survival model (see the module docstring).

    params: ``kinds`` (default ("cox", "weibull")), ``penalizer`` (fixes it, no inner search) or ``penalizers``
    (the grid, default (0.01, 0.03, 0.1)), ``snapshots_per_quarter`` (1-3, default 1).
    ``covariates``: names from ``DERIVED`` or raw snapshot columns (default ``DEFAULT_COVARIATES``).
    ``churn_estimator``: optional fitted churn model (``predict_proba`` + ``feature_names_in_``) to compare
    renewal-date probabilities with.
    """
    params = dict(params or {})
    unknown = set(params) - _PARAM_KEYS
    if unknown:
        raise ValueError(f"unknown survival params {sorted(unknown)}; known: {sorted(_PARAM_KEYS)}")
    kinds = tuple(params.get("kinds", KINDS))
    if not kinds or any(k not in KINDS for k in kinds):
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}")
    penalizers = ([float(params["penalizer"])] if "penalizer" in params
                  else [float(p) for p in params.get("penalizers", DEFAULT_PENALIZERS)])
    per_q = int(params.get("snapshots_per_quarter", 1))
    if per_q not in (1, 2, 3):
        raise ValueError("snapshots_per_quarter must be 1, 2 or 3")

    snaps = ctx.snapshots
    vs = pd.Timestamp(ctx.validation_start)
    train = _thin(snaps[snaps["as_of"] < vs], per_q).copy()
    valid = snaps[snaps["as_of"] >= vs].copy()
    if train.empty or valid.empty:
        raise ValueError("need snapshots on both sides of validation_start to train a survival model")
    dur_tr, ev_tr = _censor_at(train, vs)
    T = valid["label_duration_days"].to_numpy(dtype=float)
    E = valid["label_event"].to_numpy(dtype=float)
    if ev_tr.sum() < 10 or E.sum() < 5:
        raise ValueError(f"too few churns to train/evaluate a survival model ({int(ev_tr.sum())} in training, "
                         f"{int(E.sum())} in validation)")

    # ---------------------------------------------------------------- evaluation horizon
    follow = int(T.max())                                          # longest validation follow-up (days)
    horizon = int(min(365, follow))
    cal_365 = float(horizon)
    grid = np.arange(0, horizon + 1, dtype=float)

    # ---------------------------------------------------------------- inner split: penalizer per kind
    inner = _inner_split(train, vs, ctx.validation_months)
    candidates: dict[str, dict] = {}
    for kind in sorted(kinds, key=lambda k: k != "cox"):      # cox first
        cand = {"penalizer": penalizers[0], "inner": {}, "error": None}
        if kind == "weibull" and "cox" in candidates:
            # lifelines' Weibull AFT is several times slower to fit than Cox here: reuse Cox's choice
            cand["penalizer"] = candidates["cox"]["penalizer"]
            cand["penalizer_from"] = "cox inner split"
        elif len(penalizers) > 1 and inner is not None:
            itr, iva, icut = inner
            idur, iev = _censor_at(itr, icut)
            vdur, vev = _censor_at(iva, vs)
            ih = int(min(365, vdur.max()))
            igrid = np.arange(0, ih + 1, dtype=float)
            for pen in penalizers:
                try:
                    m = _fit_candidate(kind, pen, covariates, itr, idur, iev)
                    sc = _evaluate(m._matrix(iva, igrid), igrid, vdur, vev, float(ih))
                    cand["inner"][str(pen)] = {"integrated_brier": round(sc["integrated_brier"], 6),
                                               "c_index": round(sc["c_index"], 6)}
                except Exception as e:  # noqa: BLE001 - a penalizer that does not converge is skipped
                    cand["inner"][str(pen)] = {"error": f"{type(e).__name__}: {e}"[:300]}
            ok = {p: v for p, v in cand["inner"].items() if "integrated_brier" in v
                  and v["integrated_brier"] == v["integrated_brier"]}
            if ok:
                cand["penalizer"] = float(min(ok, key=lambda p: (ok[p]["integrated_brier"], -float(p))))
            cand["inner_cut"] = str(icut.date())
        candidates[kind] = cand

    # ---------------------------------------------------------------- refit on all training rows, validate
    fitted: dict[str, SnapshotSurvivalModel] = {}
    surv: dict[str, np.ndarray] = {}
    for kind, cand in candidates.items():
        try:
            est_k = _fit_candidate(kind, cand["penalizer"], covariates, train, dur_tr, ev_tr)
        except Exception as e:  # noqa: BLE001 - recorded; the other kind may still work
            cand["error"] = f"{type(e).__name__}: {e}"[:300]
            continue
        fitted[kind] = est_k
        surv[kind] = est_k._matrix(valid, grid)
        cand["validation"] = _subset(_evaluate(surv[kind], grid, T, E, cal_365))
        cand["lifelines_train_concordance"] = round(est_k.model_.concordance_index_, 6)
    if not fitted:
        raise RuntimeError(f"no survival model could be fitted: {candidates}")
    chosen = max(fitted, key=lambda k: (candidates[k]["validation"]["c_index"] or -1.0, k == "cox"))
    est = fitted[chosen]
    S = surv[chosen]
    metrics = _evaluate(S, grid, T, E, cal_365)

    # ---------------------------------------------------------------- oracle on the same rows
    oracle, S_or, ok_or = None, None, None
    if ctx.truth is not None:
        S_or = np.asarray(ctx.truth.survival_curve(valid, grid), dtype=float)
        ok_or = np.isfinite(S_or).all(axis=1)
        if ok_or.sum() > 0:
            oracle = _evaluate(S_or[ok_or], grid, T[ok_or], E[ok_or], cal_365)

    # ---------------------------------------------------------------- renewal-date probability
    renewal = _renewal_comparison(est, valid, ctx, churn_estimator)

    result = {"metrics": _subset(metrics), "oracle": _subset(oracle),
              "detail": {"chosen": chosen, "penalizer": est.penalizer, "clock_length_days": est.clock_length_,
                         "candidates": candidates, "covariates": list(est.covariates_),
                         "skipped_covariates": list(est.skipped_covariates_),
                         "dropped_constant": list(est.model_.dropped_columns_),
                         "n_train": int(len(train)), "n_train_events": int(ev_tr.sum()),
                         "n_train_accounts": int(train["account_id"].nunique()),
                         "n_valid": int(len(valid)), "n_valid_events": int(E.sum()),
                         "n_valid_accounts": int(valid["account_id"].nunique()),
                         "snapshots_per_quarter": per_q,
                         "validation_start": str(ctx.validation_start), "as_of": str(ctx.as_of),
                         "evaluation_horizon_days": horizon, "max_follow_up_days": follow,
                         "calibration_horizon_365": cal_365,
                         "oracle_n": None if ok_or is None else int(ok_or.sum()),
                         "renewal": renewal,
                         "mean_expected_lifetime_days": None, "mean_p_active_365d": None}}

    def beats(champion) -> tuple[bool, str]:
        rc = np.asarray(champion.predict_risk(valid, horizon=horizon), dtype=float)
        mine, theirs = metrics["c_index"], harrell_c_index(T, E, rc)
        return bool(mine > theirs), f"validation C-index {mine:.5f} vs champion {theirs:.5f} on {len(T)} rows"

    with store.start_run(FAMILY, run_name=run_name, nested=nested,
                         tags={"data_hash": ctx.data_hash, "as_of": str(ctx.as_of)}) as run:
        store.log_params({"algorithm": chosen, "penalizer": est.penalizer,
                          "as_of": ctx.as_of, "validation_start": ctx.validation_start,
                          "n_covariates": len(est.covariates_), "penalizer_grid": penalizers,
                          "snapshots_per_quarter": per_q, "evaluation_horizon_days": horizon,
                          "snapshot_dates": f"{ctx.grid[0]}..{ctx.grid[-1]} ({len(ctx.grid)} monthly)",
                          "data_hash": ctx.data_hash, **{f"param_{k}": v for k, v in params.items()}})
        store.log_metrics(metrics)
        if oracle:
            store.log_metrics(oracle, prefix="oracle_")
        for kind, cand in candidates.items():
            if cand.get("validation"):
                store.log_metrics({k: v for k, v in cand["validation"].items() if v is not None}, prefix=f"{kind}_")
        store.log_metrics({k: v for k, v in renewal.items() if isinstance(v, (int, float))}, prefix="renewal_")
        book = valid[valid["as_of"] == valid["as_of"].max()]          # the accounts at the last snapshot
        life = est.expected_residual_lifetime(book, LIFETIME_HORIZON)
        result["detail"]["mean_expected_lifetime_days"] = round(float(life.mean()), 2)
        result["detail"]["mean_p_active_365d"] = round(float(est.predict_survival(book, [365]).iloc[:, 0].mean()), 6)
        store.log_dict({"covariates": list(est.covariates_), "snapshot_columns": list(est.feature_names_in_),
                        "as_of_dates": [str(d) for d in ctx.grid], "validation_start": str(ctx.validation_start),
                        "clock_length_days": est.clock_length_}, "features.json")
        summ = est.summary.reset_index()
        store.log_dict({"kind": chosen, "penalizer": est.penalizer,
                        "coefficients": summ.astype({"covariate": str}).to_dict(orient="records")},
                       "coefficients.json")
        fig = _calibration_plot(S, grid, T, E, cal_365, S_or[ok_or] if oracle else None,
                                T[ok_or] if oracle else None, E[ok_or] if oracle else None)
        store.log_figure(fig, "calibration_365.png")
        plt.close(fig)
        fig = _km_vs_predicted(S, grid, T, E, valid["segment"].to_numpy(), S_or if oracle else None)
        store.log_figure(fig, "survival_vs_km.png")
        plt.close(fig)
        fig = _drivers_plot(est.contributions(valid.head(5000)))
        store.log_figure(fig, "drivers.png")
        plt.close(fig)
        result["detail"]["retention"] = _log_retention(ctx)
        store.log_dict(result, "evaluation.json")
        sig_in = valid[list(est.feature_names_in_)].head(20)
        sig_out = est.predict_survival(sig_in, [90, 180, 365])
        sig_out.columns = [f"p_active_{int(c)}d" for c in sig_out.columns]
        info = store.log_pyfunc(EstimatorModel(est, "survival"), sig_in, sig_out)
        reg = (store.register_with_guard(FAMILY, info.model_uri, run.info.run_id, beats) if register
               else store.Registration(run.info.run_id, None, None, "not registered"))
    result.update({"run_id": reg.run_id, "version": reg.version, "alias": reg.alias, "guard": reg.guard})
    result["_estimator"] = est
    return result


def _inner_split(train: pd.DataFrame, vs: pd.Timestamp, months: int):
    """Time-ordered inner split of the training rows: (inner train, inner validation, cut) or None."""
    dates = np.sort(pd.to_datetime(train["as_of"]).unique())
    if len(dates) < 6:
        return None
    cut = pd.Timestamp(vs - pd.DateOffset(months=months))
    if (dates < np.datetime64(cut)).sum() < len(dates) / 2:
        cut = pd.Timestamp(dates[len(dates) // 2])
    itr = train[train["as_of"] < cut]
    iva = train[train["as_of"] >= cut]
    idur, iev = _censor_at(itr, cut)
    if iev.sum() < 10 or iva["label_event"].sum() < 5:
        return None
    return itr, iva, cut


def _renewal_comparison(est: SnapshotSurvivalModel, valid: pd.DataFrame, ctx: TrainingContext,
                        churn_estimator) -> dict:
    """Renewal-date churn probability 1 - S(days_to_renewal + 1) vs the observed outcome of that renewal
    (label_churn), on validation rows whose next renewal falls before the data end."""
    rows = valid[valid["label_churn"].notna()]
    out: dict = {"n_rows": int(len(rows))}
    if rows.empty:
        return out
    y = rows["label_churn"].to_numpy(dtype=float)
    p = 1.0 - est.renewal_survival(rows).to_numpy()
    out.update({"observed_churn": round(float(y.mean()), 6), "mean_predicted_churn": round(float(p.mean()), 6),
                "brier": round(float(np.mean((p - y) ** 2)), 6)})
    both = 0 < y.sum() < len(y)
    if both:
        out["auc"] = round(float(roc_auc_score(y, p)), 6)
    if ctx.truth is not None:
        po = np.asarray(ctx.truth.churn_probability(rows), dtype=float)
        ok = np.isfinite(po)
        if ok.any():
            out["oracle_mean_churn"] = round(float(po[ok].mean()), 6)
            out["oracle_brier"] = round(float(np.mean((po[ok] - y[ok]) ** 2)), 6)
            if 0 < y[ok].sum() < ok.sum():
                out["oracle_auc"] = round(float(roc_auc_score(y[ok], po[ok])), 6)
    if churn_estimator is not None:
        try:
            feats = list(churn_estimator.feature_names_in_)
            pc = churn_estimator.predict_proba(rows[feats])[:, 1]
            out["churn_model_mean_churn"] = round(float(np.mean(pc)), 6)
            out["churn_model_brier"] = round(float(np.mean((pc - y) ** 2)), 6)
            if both:
                out["churn_model_auc"] = round(float(roc_auc_score(y, pc)), 6)
        except Exception as e:  # noqa: BLE001 - the comparison is optional
            out["churn_model_error"] = f"{type(e).__name__}: {e}"[:300]
    return out


# ------------------------------------------------------------------------------------------------
# cohort retention (Kaplan-Meier curves, sBG per segment)
# ------------------------------------------------------------------------------------------------
def _log_png(path: Path, name: str) -> None:
    """Log a PNG written by plot_cohort_curves through store.log_figure (store has no log_artifact)."""
    img = plt.imread(str(path))
    h, w = img.shape[:2]
    fig = plt.figure(figsize=(w / 100, h / 100), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(img)
    ax.axis("off")
    store.log_figure(fig, name)
    plt.close(fig)


def yearly_alive_counts(spells: pd.DataFrame, data_end, grace_days: int = 30) -> dict[str, list[int]]:
    """Alive counts at yearly periods 0..n per start-year cohort, for the sBG.

    An account is alive at period k if it has not churned by ``k * 365.25 + grace_days`` days after its start
    (the grace absorbs 366-day contracts and late paperwork). A cohort's period k is used only when every
    member has been observed that long (start + k * 365.25 + grace <= data_end), so its counts are complete."""
    end = pd.Timestamp(data_end)
    out = {}
    for cohort, g in spells.groupby("cohort", sort=True):
        last_start = pd.to_datetime(g["start_date"]).max()
        n = int(np.floor(((end - last_start).days - grace_days) / 365.25))
        if n < 1:
            continue
        dur, ev = g["duration"].to_numpy(dtype=float), g["event"].to_numpy(dtype=int)
        alive = [int(len(g) - ((ev == 1) & (dur <= k * 365.25 + grace_days)).sum()) for k in range(n + 1)]
        alive[0] = int(len(g))
        out[str(cohort)] = alive
    return out


def _log_retention(ctx: TrainingContext) -> dict:
    try:
        from csforecast.retention import ShiftedBetaGeometric
        from csforecast.retention.cohorts import cohort_curves, plot_cohort_curves, spells_from_contracts
    except Exception as e:  # noqa: BLE001 - the retention module may not be there yet
        return {"available": False, "reason": f"csforecast.retention not importable: {type(e).__name__}: {e}"}
    out: dict = {"available": True, "artifacts": []}
    try:
        spells = spells_from_contracts(ctx.source.frame("contracts"), ctx.source.frame("accounts"),
                                       data_end=ctx.as_of)
    except Exception as e:  # noqa: BLE001
        return {"available": False, "reason": f"spells_from_contracts failed: {type(e).__name__}: {e}"}
    out["n_accounts"] = int(len(spells))
    yearly = np.arange(0, 7) * 365.25
    tables = {}
    with tempfile.TemporaryDirectory() as tmp:
        for by in ("cohort", "segment"):
            for label, weight in (("logo", None), ("arr", "arr")):
                name = f"retention/{label}_by_{by}.png"
                try:
                    sp = spells if weight is None else spells[spells["arr"].fillna(0) > 0]
                    curves = cohort_curves(sp, by=by, weight=weight)
                    what = "start year" if by == "cohort" else by
                    title = f"{'Logo' if weight is None else 'ARR'} retention by {what}"
                    png = plot_cohort_curves(curves, Path(tmp) / f"{label}_{by}.png", title,
                                             xlabel="years since customer start", time_scale=365.25,
                                             ylabel="share of accounts" if weight is None else "share of starting ARR")
                    _log_png(png, name)
                    out["artifacts"].append(name)
                    yt = cohort_curves(sp, by=by, weight=weight, times=yearly)
                    tables[f"{label}_by_{by}"] = [
                        {"group": r.group, "years": round(r.time / 365.25, 2),
                         "survival": None if r.survival != r.survival else round(float(r.survival), 4),
                         "at_risk": int(r.at_risk)} for r in yt.itertuples()]
                except Exception as e:  # noqa: BLE001 - one failing curve must not lose the run
                    out.setdefault("errors", []).append(f"{name}: {type(e).__name__}: {e}"[:300])
    if tables:
        store.log_dict(tables, "retention/km_yearly.json")
        out["artifacts"].append("retention/km_yearly.json")
    sbg = {}
    for seg, g in spells.groupby("segment", sort=True):
        counts = yearly_alive_counts(g, ctx.as_of)
        entry: dict = {"cohorts": counts}
        try:
            if not counts:
                raise ValueError("no cohort with a full observed year")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                m = ShiftedBetaGeometric().fit(list(counts.values()))
            proj = m.survival(np.arange(0, 6))
            entry.update({"alpha": round(m.alpha_, 6), "beta": round(m.beta_, 6),
                          "converged": bool(m.converged_), "loglik": round(float(m.loglik_), 4),
                          "mean_first_year_churn": round(m.alpha_ / (m.alpha_ + m.beta_), 6),
                          "projection_5y": {str(k): round(float(v), 6) for k, v in enumerate(proj)},
                          "retention_rate": {str(k): round(float(m.retention_rate(k)), 6) for k in range(1, 6)}})
            store.log_metrics({"alpha": m.alpha_, "beta": m.beta_, "survival_5y": float(proj[-1])},
                              prefix=f"sbg_{str(seg).replace(' ', '_')}_")
        except Exception as e:  # noqa: BLE001
            entry["error"] = f"{type(e).__name__}: {e}"[:300]
        sbg[str(seg)] = entry
    store.log_dict({"period": "year (365.25 days)", "segments": sbg}, "retention/sbg.json")
    out["artifacts"].append("retention/sbg.json")
    out["sbg"] = {s: {k: v for k, v in e.items() if k != "cohorts"} for s, e in sbg.items()}
    return out


# ------------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------------
def _calibration_plot(S, grid, T, E, t_cal, S_or=None, T_or=None, E_or=None, n_bins: int = 10):
    fig, ax = plt.subplots(figsize=(5.5, 5))
    k = int(np.searchsorted(grid, t_cal))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect")
    for SS, TT, EE, lab, mk in ((S, T, E, "model", "o"), (S_or, T_or, E_or, "oracle (truth)", "s")):
        if SS is None:
            continue
        p = SS[:, k]
        order = np.argsort(p, kind="mergesort")
        bins = np.empty(len(p), dtype=int)
        bins[order] = (np.arange(len(p)) * n_bins) // len(p)
        xs = [p[bins == b].mean() for b in range(n_bins)]
        ys = [kaplan_meier_at(TT[bins == b], EE[bins == b], t_cal) for b in range(n_bins)]
        ax.plot(xs, ys, marker=mk, alpha=1 if lab == "model" else 0.6, label=lab)
    lo = min(0.5, float(np.nanmin(S[:, k])) - 0.02)
    ax.set_xlim(lo, 1.01)
    ax.set_ylim(lo, 1.01)
    ax.set_xlabel(f"predicted P(active {t_cal:g} days after as-of)")
    ax.set_ylabel("Kaplan-Meier observed")
    ax.set_title(f"Calibration at {t_cal:g} days (validation, deciles)")
    ax.legend()
    fig.tight_layout()
    return fig


def _km_vs_predicted(S, grid, T, E, segments, S_or=None):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for seg in sorted(set(segments)):
        m = segments == seg
        km = kaplan_meier_at(T[m], E[m], grid)
        (line,) = ax.step(grid, km, where="post", lw=1.5, label=f"{seg}: Kaplan-Meier")
        ax.plot(grid, S[m].mean(axis=0), color=line.get_color(), ls="--", lw=1.2, label=f"{seg}: model")
        if S_or is not None:
            so = S_or[m]
            so = so[np.isfinite(so).all(axis=1)]
            if len(so):
                ax.plot(grid, so.mean(axis=0), color=line.get_color(), ls=":", lw=1.2, label=f"{seg}: oracle")
    ax.set_xlabel("days after as-of")
    ax.set_ylabel("share still a customer")
    ax.set_title("Validation snapshots: observed vs mean predicted survival")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    return fig


def _drivers_plot(contrib: pd.DataFrame, top: int = 20):
    imp = contrib.abs().mean().sort_values(ascending=True).tail(top)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(imp) + 1.5))
    ax.barh(imp.index.astype(str), imp.to_numpy())
    ax.set_xlabel("mean |contribution to log hazard ratio| (validation snapshots)")
    ax.set_title("Survival drivers (associations, not causes)")
    fig.tight_layout()
    return fig
