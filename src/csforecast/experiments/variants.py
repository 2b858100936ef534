"""What an experiment needs per model family: train one variant, predict the validation rows with it, and
the metrics the paired bootstrap recomputes on resampled rows. Plus the feature groups variants select by and
the helpers the runner and promotion share (validation-row fingerprint, single BLAS thread).

The validation rows and the guard score of each family are its trainer's (``pipelines.<family>``:
``validation_set``, ``guard_score``); the metric directions are the family registry's.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable

import numpy as np
import pandas as pd

from csforecast.data.sources import Source
from csforecast.errors import CsforecastError
from csforecast.experiments.spec import Variant
from csforecast.features.catalogue import CATALOGUE
from csforecast.metrics.calibration import (
    brier_score,
    calibration_slope,
    clipped_log_loss,
    expected_calibration_error,
    pr_auc,
    rank_auc,
    top_decile_lift,
)
from csforecast.metrics.survival import harrell_c_index
from csforecast.models.health import COMPONENTS, textbook_score
from csforecast.models.snapshot_survival import DEFAULT_COVARIATES
from csforecast.pipelines import churn, health, survival
from csforecast.pipelines.context import TrainingContext
from csforecast.pipelines.result import TrainingResult, ValidationSet

__all__ = ["ExperimentError", "ADAPTERS", "feature_group", "rows_fingerprint", "single_blas_thread"]

MetricFn = Callable[[dict, dict, np.ndarray], float]     # (outcomes, predictions, row indices) -> metric


class ExperimentError(CsforecastError, RuntimeError):
    """The experiment cannot run (e.g. a variant selects no features, a back-test method is missing)."""


# ------------------------------------------------------------------------------------------------
# feature groups
# ------------------------------------------------------------------------------------------------
_COMPONENT_GROUP = {"Deployment": "usage", "Adoption": "usage", "Support": "support", "NPS": "nps",
                    "Engagement": "engagement", "Account profile": "profile"}
_PREFIX_GROUP = (
    ("seat_utilisation", "usage"), ("active_users", "usage"), ("logins", "usage"), ("key_feature", "usage"),
    ("days_since_login", "usage"),
    ("tickets_", "support"), ("open_tickets", "support"), ("mean_resolution", "support"),
    ("ticket_csat", "support"), ("csat_", "support"),
    ("nps_", "nps"), ("account_nps", "nps"), ("days_since_nps", "nps"),
    ("touches_", "engagement"), ("days_since_touch", "engagement"), ("exec_", "engagement"),
    ("days_since_exec", "engagement"), ("qbrs_", "engagement"), ("respondent_", "engagement"),
    ("champion_", "engagement"), ("days_since_champion", "engagement"),
    ("days_since_stakeholder", "engagement"), ("has_csm", "engagement"),
)


def feature_group(col: str, usage_slugs: tuple[str, ...] = ()) -> str:
    """usage | support | nps | engagement | profile: the catalogue's component for known features, else by
    name prefix (any column of a usage-table metric is usage); everything else is the account profile."""
    if col in CATALOGUE:
        return _COMPONENT_GROUP.get(CATALOGUE[col].component, "profile")
    for prefix, g in _PREFIX_GROUP:
        if col.startswith(prefix):
            return g
    if any(col.startswith(s + "_") for s in usage_slugs):
        return "usage"
    return "profile"


def usage_slugs(source: Source) -> tuple[str, ...]:
    """Column-name prefixes of the source's usage metrics (empty when they cannot be read)."""
    from csforecast.features.snapshot import _slug, usage_metrics

    try:
        return tuple(_slug(m) for m in usage_metrics(source))
    except Exception:  # noqa: BLE001 - grouping falls back to prefixes
        return ()


# ------------------------------------------------------------------------------------------------
# family adapters: train a variant, per-row predictions, bootstrap metrics
# ------------------------------------------------------------------------------------------------
class _Adapter:
    family: str
    validation_set: Callable[[TrainingContext], ValidationSet]
    guard_score: Callable[[object, ValidationSet], float]

    def train(self, ctx: TrainingContext, v: Variant, run_name: str, slugs) -> TrainingResult:
        raise NotImplementedError

    def predictions(self, est, val: ValidationSet, result: TrainingResult) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def metric_fns(self) -> dict[str, MetricFn]:
        raise NotImplementedError


class _Churn(_Adapter):
    family = "churn"
    validation_set = staticmethod(churn.validation_set)
    guard_score = staticmethod(churn.guard_score)

    def train(self, ctx, v, run_name, slugs):
        feats = None
        if v.selects_features:
            # start from the pipeline's own default feature set, so a variant differs from the default only by
            # what it drops or keeps; explicitly kept names may bring back columns the default leaves out
            allf = ctx.features(ctx.snapshots)
            base = allf if v.keep_features is not None else [c for c in allf if c not in churn.DEFAULT_EXCLUDE]
            feats = v.select_features(base, lambda c: feature_group(c, slugs))
            if not feats:
                raise ExperimentError(f"variant {v.name!r} selects no features")
        return churn.train_churn(ctx, params=v.estimator_params() or None, register=False, feature_subset=feats,
                                 run_name=run_name, nested=True)

    def predictions(self, est, val, result):
        return {"p": est.predict_proba(val.rows[list(est.feature_names_in_)])[:, 1]}

    def metric_fns(self):
        def f(fn):
            return lambda y, pr, i: fn(y["y"][i].astype(float), pr["p"][i])
        return {"auc": f(rank_auc), "pr_auc": f(pr_auc), "log_loss": f(clipped_log_loss), "brier": f(brier_score),
                "ece": f(expected_calibration_error), "calibration_slope": f(calibration_slope),
                "top_decile_lift": f(top_decile_lift)}


class _Health(_Adapter):
    family = "health"
    validation_set = staticmethod(health.validation_set)
    guard_score = staticmethod(health.guard_score)

    def train(self, ctx, v, run_name, slugs):
        return health.train_health(ctx, params=v.params or None, register=False, run_name=run_name, nested=True,
                                   components=v.select_components(list(COMPONENTS)))

    def predictions(self, est, val, result):
        return {"score": np.asarray(est.predict(val.rows), float),
                "ew": np.asarray(est.equal_weight_score(val.rows), float),
                "tb": np.asarray(textbook_score(val.rows), float)}

    def metric_fns(self):
        return {"auc": lambda y, pr, i: rank_auc(y["y"][i], -pr["score"][i]),
                "auc_equal_weight": lambda y, pr, i: rank_auc(y["y"][i], -pr["ew"][i]),
                "auc_textbook": lambda y, pr, i: rank_auc(y["y"][i], -pr["tb"][i])}


class _Survival(_Adapter):
    family = "survival"
    validation_set = staticmethod(survival.validation_set)
    guard_score = staticmethod(survival.guard_score)

    def train(self, ctx, v, run_name, slugs):
        cov = v.covariates
        if cov is None and v.drop_covariates:
            cov = [c for c in DEFAULT_COVARIATES if c not in v.drop_covariates]
        return survival.train_survival(ctx, params=v.params or None, register=False, run_name=run_name,
                                       nested=True, covariates=cov)

    def predictions(self, est, val, result):
        h = result.detail.get("evaluation_horizon_days") or survival.evaluation_horizon(val)
        return {"risk": np.asarray(est.predict_risk(val.rows, horizon=h), float)}

    def metric_fns(self):
        return {"c_index": lambda y, pr, i: harrell_c_index(y["T"][i], y["E"][i], pr["risk"][i])}


ADAPTERS: dict[str, _Adapter] = {a.family: a for a in (_Churn(), _Health(), _Survival())}


# ------------------------------------------------------------------------------------------------
# shared by the runner and promotion
# ------------------------------------------------------------------------------------------------
def rows_fingerprint(rows: pd.DataFrame) -> dict:
    """Size, accounts and a content hash of the validation rows' keys (account, as-of, contract)."""
    cols = [c for c in ("account_id", "as_of", "contract_id") if c in rows]
    keys = rows[cols].astype(str).agg("|".join, axis=1).sort_values()
    h = hashlib.blake2b("\n".join(keys).encode(), digest_size=12).hexdigest()
    return {"n": int(len(rows)), "n_accounts": int(rows["account_id"].nunique()), "columns": cols, "hash": h}


def single_blas_thread(fn):
    """Run `fn` with one BLAS thread: the fits here are small, and multi-threaded OpenBLAS on a busy 2-core
    machine made a logistic churn fit ~25x slower (45 s instead of 1.7 s) in our measurements."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)
    return wrapper
