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

import zlib

import numpy as np
import pandas as pd

from csforecast.errors import TrainingDataError
from csforecast.jsonsafe import finite_float
from csforecast.metrics.calibration import brier_score, rank_auc
from csforecast.metrics.survival import harrell_c_index, survival_metrics
from csforecast.models.snapshot_survival import (  # SnapshotSurvivalModel: re-exported for registered pickles
    DEFAULT_COVARIATES,
    KINDS,
    LIFETIME_HORIZON,
    SnapshotSurvivalModel,
)
from csforecast.metrics.paired import ConcordanceGrid
from csforecast.pipelines.champion import Comparison, GuardMetric, GuardScore, log_and_register
from csforecast.pipelines.context import TrainingContext
from csforecast.pipelines.result import TrainingResult, ValidationSet
from csforecast.pipelines.survival_report import log_figures, log_retention, yearly_alive_counts  # noqa: F401
from csforecast.scoring import families
from csforecast.tracking import store

__all__ = ["train_survival", "validation_set", "guard_score", "SnapshotSurvivalModel", "DEFAULT_COVARIATES",
           "METRIC_KEYS"]

FAMILY = "survival"
METRIC_KEYS = ("c_index", "integrated_brier", "calibration_error_90", "calibration_error_180",
               "calibration_error_365")
CALIBRATION_TIMES = (90, 180, 365)
DEFAULT_PENALIZERS = (0.01, 0.03, 0.1)
_PARAM_KEYS = {"kinds", "penalizer", "penalizers", "snapshots_per_quarter"}


# ------------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------------
def _subset(m: dict | None) -> dict | None:
    if m is None:
        return None
    return {k: finite_float(m.get(k), 6) for k in METRIC_KEYS}


def validation_set(ctx: TrainingContext) -> ValidationSet:
    """Every snapshot on or after ``validation_start`` with its follow-up to the data end (``T``, ``E``)."""
    s = ctx.snapshots
    return ValidationSet.of_snapshots(s[s["as_of"] >= pd.Timestamp(ctx.validation_start)])


def evaluation_horizon(validation: ValidationSet) -> int:
    """Days over which the restricted mean lifetime (the C-index risk) is taken: min(365, longest follow-up)."""
    return int(min(365, int(validation.outcomes["T"].max())))


def guard_metric(validation: ValidationSet) -> GuardMetric:
    """The guard metric on the validation rows: Harrell's C-index of a model's risk (higher is better), risk =
    minus the restricted mean lifetime over the evaluation horizon; per resample on a ``ConcordanceGrid``."""
    T, E = validation.outcomes["T"], validation.outcomes["E"]
    grid = ConcordanceGrid(T, E)
    horizon = evaluation_horizon(validation)

    def outputs(estimator) -> np.ndarray:
        return np.asarray(estimator.predict_risk(validation.rows, horizon=horizon), dtype=float)

    return GuardMetric(outputs, lambda r: harrell_c_index(T, E, r), grid.metric)


def guard_score(estimator, validation: ValidationSet) -> float:
    """The guard metric: Harrell's C-index of ``estimator`` on the validation rows (higher is better), risk =
    minus the restricted mean lifetime over the evaluation horizon."""
    m = guard_metric(validation)
    return m.exact(m.outputs(estimator))


def comparison(ctx: TrainingContext, estimator, validation: ValidationSet) -> Comparison:
    """The candidate's case to the promotion guard: its C-index on ``validation``, beside a constant risk's
    (0.5: the baseline any survival model must beat)."""
    family = families.get(FAMILY)
    m = guard_metric(validation)
    out = m.outputs(estimator)
    return Comparison(GuardScore.of(family, m.exact(out), len(out)), m, out, {"constant risk": np.zeros(len(out))},
                      validation.clusters, family.guard_label, ctx.profile, None, ctx.version_tags())


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


def _parse_params(params: dict) -> tuple[tuple[str, ...], list[float], int]:
    """(kinds, penalizer grid, snapshots per quarter) from the trainer's ``params`` (ValueError naming the bad
    key or value)."""
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
    return kinds, penalizers, per_q


def _choose_penalizers(kinds, penalizers, covariates, train: pd.DataFrame, vs: pd.Timestamp,
                       months: int) -> dict[str, dict]:
    """Per kind (cox first): the penalizer with the lowest integrated Brier score on the time-ordered inner
    split of the training rows (Weibull reuses Cox's), and what each grid value scored."""
    inner = _inner_split(train, vs, months)
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
                    sc = _evaluate(m.survival_matrix(iva, igrid), igrid, vdur, vev, float(ih))
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
    return candidates


def train_survival(ctx: TrainingContext, params: dict | None = None, register: bool = True,
                   run_name: str | None = None, nested: bool = False, *, covariates: list[str] | None = None,
                   churn_estimator=None) -> TrainingResult:
    """Fit, evaluate beside the oracle (``ctx.oracle``), log and register the survival model (see the module
    docstring; ``register=False``: log only).

    params: ``kinds`` (default ("cox", "weibull")), ``penalizer`` (fixes it, no inner search) or ``penalizers``
    (the grid, default (0.01, 0.03, 0.1)), ``snapshots_per_quarter`` (1-3, default 1).
    ``covariates``: names from ``DERIVED`` or raw snapshot columns (default ``DEFAULT_COVARIATES``).
    ``churn_estimator``: optional fitted churn model (``predict_proba`` + ``feature_names_in_``) to compare
    renewal-date probabilities with.
    """
    family = families.get(FAMILY)
    params = dict(params or {})
    kinds, penalizers, per_q = _parse_params(params)
    size = ctx.book_size()
    if size.small:
        raise TrainingDataError(f"survival skipped: {size.describe()}; a small book gets no survival model "
                                "(docs/operations.md)")

    snaps = ctx.snapshots
    vs = pd.Timestamp(ctx.validation_start)
    train = _thin(snaps[snaps["as_of"] < vs], per_q).copy()
    val = validation_set(ctx)
    valid = val.rows
    if train.empty or valid.empty:
        raise TrainingDataError("need snapshots on both sides of validation_start to train a survival model")
    dur_tr, ev_tr = _censor_at(train, vs)
    T, E = val.outcomes["T"], val.outcomes["E"]
    if ev_tr.sum() < 10 or E.sum() < 5:
        raise TrainingDataError(f"too few churns to train/evaluate a survival model ({int(ev_tr.sum())} in "
                                f"training, {int(E.sum())} in validation)")

    # ---------------------------------------------------------------- evaluation horizon
    follow = int(T.max())                                          # longest validation follow-up (days)
    horizon = evaluation_horizon(val)
    cal_365 = float(horizon)
    grid = np.arange(0, horizon + 1, dtype=float)

    # ---------------------------------------------------------------- penalizer per kind, refit, validate
    candidates = _choose_penalizers(kinds, penalizers, covariates, train, vs, ctx.validation_months)
    fitted: dict[str, SnapshotSurvivalModel] = {}
    surv: dict[str, np.ndarray] = {}
    for kind, cand in candidates.items():
        try:
            est_k = _fit_candidate(kind, cand["penalizer"], covariates, train, dur_tr, ev_tr)
        except Exception as e:  # noqa: BLE001 - recorded; the other kind may still work
            cand["error"] = f"{type(e).__name__}: {e}"[:300]
            continue
        fitted[kind] = est_k
        surv[kind] = est_k.survival_matrix(valid, grid)
        cand["validation"] = _subset(_evaluate(surv[kind], grid, T, E, cal_365))
        cand["lifelines_train_concordance"] = round(est_k.model_.concordance_index_, 6)
    if not fitted:
        raise TrainingDataError(f"no survival model could be fitted: {candidates}")
    chosen = max(fitted, key=lambda k: (candidates[k]["validation"]["c_index"] or -1.0, k == "cox"))
    est = fitted[chosen]
    S = surv[chosen]
    metrics = _evaluate(S, grid, T, E, cal_365)

    # ---------------------------------------------------------------- oracle on the same rows
    oracle, S_or, ok_or = None, None, None
    if ctx.oracle is not None:
        S_or = np.asarray(ctx.oracle.survival_curve(valid, grid), dtype=float)
        ok_or = np.isfinite(S_or).all(axis=1)
        if ok_or.sum() > 0:
            oracle = _evaluate(S_or[ok_or], grid, T[ok_or], E[ok_or], cal_365)

    # ---------------------------------------------------------------- renewal-date probability
    renewal = _renewal_comparison(est, valid, ctx.oracle, churn_estimator)

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
    case = comparison(ctx, est, val)

    with store.start_run(FAMILY, run_name=run_name, nested=nested, tags=ctx.run_tags()) as run:
        store.log_params({"algorithm": chosen, "penalizer": est.penalizer, **ctx.run_params(),
                          "n_covariates": len(est.covariates_), "penalizer_grid": penalizers,
                          "snapshots_per_quarter": per_q, "evaluation_horizon_days": horizon,
                          **{f"param_{k}": v for k, v in params.items()}})
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
        log_figures(est, valid, S, grid, T, E, cal_365, S_or if oracle else None, ok_or)
        result["detail"]["retention"] = log_retention(ctx.source, ctx.as_of)
        store.log_dict(result, "evaluation.json")
        store.log_dict(ctx.profile, "data_profile.json")
        reg = log_and_register(family, est, valid[list(est.feature_names_in_)].head(20), run.info.run_id, case,
                               policy=ctx.policy, register=register)
    return TrainingResult(FAMILY, result["metrics"], result["oracle"], result["detail"], est, val, case.guard, reg)


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


def _renewal_comparison(est: SnapshotSurvivalModel, valid: pd.DataFrame, oracle, churn_estimator) -> dict:
    """Renewal-date churn probability 1 - S(days_to_renewal + 1) vs the observed outcome of that renewal
    (label_churn), on validation rows whose next renewal falls before the data end."""
    rows = valid[valid["label_churn"].notna()]
    out: dict = {"n_rows": int(len(rows))}
    if rows.empty:
        return out
    y = rows["label_churn"].to_numpy(dtype=float)
    p = np.clip(1.0 - est.renewal_survival(rows).to_numpy(), 0.0, 1.0)
    out.update({"observed_churn": round(float(y.mean()), 6), "mean_predicted_churn": round(float(p.mean()), 6),
                "brier": round(brier_score(y, p), 6)})
    both = 0 < y.sum() < len(y)
    if both:
        out["auc"] = round(rank_auc(y, p), 6)
    if oracle is not None:
        po = np.asarray(oracle.churn_probability(rows), dtype=float)
        ok = np.isfinite(po)
        if ok.any():
            out["oracle_mean_churn"] = round(float(po[ok].mean()), 6)
            out["oracle_brier"] = round(brier_score(y[ok], po[ok]), 6)
            if 0 < y[ok].sum() < ok.sum():
                out["oracle_auc"] = round(rank_auc(y[ok], po[ok]), 6)
    if churn_estimator is not None:
        try:
            feats = list(churn_estimator.feature_names_in_)
            pc = churn_estimator.predict_proba(rows[feats])[:, 1]
            out["churn_model_mean_churn"] = round(float(np.mean(pc)), 6)
            out["churn_model_brier"] = round(brier_score(y, pc), 6)
            if both:
                out["churn_model_auc"] = round(rank_auc(y, pc), 6)
        except Exception as e:  # noqa: BLE001 - the comparison is optional
            out["churn_model_error"] = f"{type(e).__name__}: {e}"[:300]
    return out
