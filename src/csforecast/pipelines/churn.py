"""Churn family: fit ChurnClassifier on renewal-decision snapshots, evaluate on later decisions beside the
oracle, log to MLflow and register under the promotion guard (``pipelines.champion``).

A small book (``TrainingContext.book_size``: too few renewal decisions or churns in the training window) gets
the documented fallback instead (docs/operations.md): pooled segment churn rates shrunk toward the portfolio
(``models.PooledChurnModel``), or, when the source has contracts and no activity tables, the sBG cohort
retention by renewal number (``models.RetentionChurnModel``). Registered as ``csforecast-churn`` like any
version, tagged ``fallback``."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from csforecast.errors import TrainingDataError  # noqa: E402
from csforecast.features.catalogue import DEFAULT_EXCLUDE  # noqa: E402,F401 (re-exported)
from csforecast.jsonsafe import finite_float  # noqa: E402
from csforecast.metrics.calibration import (  # noqa: E402
    by_group,
    calibration_curve_table,
    classification_metrics,
    clipped_log_loss,
)
from csforecast.config import get_settings  # noqa: E402
from csforecast.metrics.monitoring import horizon_bucket  # noqa: E402
from csforecast.metrics.paired import mean_of  # noqa: E402
from csforecast.models.calibrators import EPS  # noqa: E402
from csforecast.models.churn import ChurnClassifier  # noqa: E402
from csforecast.models.pooled import PooledChurnModel, RetentionChurnModel  # noqa: E402
from csforecast.pipelines.champion import Comparison, GuardMetric, GuardScore, log_and_register  # noqa: E402
from csforecast.pipelines.context import TrainingContext  # noqa: E402
from csforecast.pipelines.result import TrainingResult, ValidationSet  # noqa: E402
from csforecast.scoring import families  # noqa: E402
from csforecast.scoring.monitor import REFERENCE_ARTIFACT, reference_sample  # noqa: E402
from csforecast.tracking import store  # noqa: E402

FAMILY = "churn"
METRIC_KEYS = ("auc", "pr_auc", "log_loss", "brier", "ece", "calibration_slope", "top_decile_lift")


def default_params(n_rows: int) -> dict:
    """Defaults that do well on a few thousand decisions (tens of thousands of snapshot rows) untuned:
    shallow, slow, strongly regularised trees; leaf sizes scale with the data."""
    return {"learning_rate": 0.02, "num_leaves": 4, "min_child_samples": max(50, n_rows // 100),
            "reg_lambda": 5.0, "fit_fraction": 0.7, "selection_fraction": 0.15}


def _subset(m: dict) -> dict:
    return {k: finite_float(m.get(k), 6) for k in METRIC_KEYS}


def _by_segment(seg: dict) -> dict:
    return {k: _subset(v) if isinstance(v, dict) and "auc" in v else v for k, v in seg.items()}


def calibration_scopes(valid: pd.DataFrame) -> dict[str, np.ndarray]:
    """The groups the validation metrics are also reported by (issue 19: calibration by contract term, segment
    and horizon): ``segment``; ``term`` = the contract's term in days (``term_days``, when a feature; "unknown"
    where missing); ``horizon`` = days-to-renewal bucket (``metrics.monitoring.horizon_bucket``, the buckets
    calibration monitoring uses)."""
    scopes = {"segment": valid["segment"].to_numpy()}
    if "term_days" in valid.columns:
        term = pd.to_numeric(valid["term_days"], errors="coerce").round()
        scopes["term"] = np.where(term.isna(), "unknown", term.fillna(0).astype("int64").astype(str)).astype(object)
    if "days_to_renewal" in valid.columns:
        scopes["horizon"] = horizon_bucket(pd.to_numeric(valid["days_to_renewal"], errors="coerce"))
    return scopes


def validation_set(ctx: TrainingContext) -> ValidationSet:
    """The renewal-decision snapshots due on or after ``validation_start``, ``y`` = churned at that renewal."""
    return ValidationSet.of_decisions(ctx.split(ctx.decision_rows())[1])


def guard_metric(validation: ValidationSet) -> GuardMetric:
    """The guard metric on the validation rows: clipped log loss of a model's churn probabilities (lower is
    better); per resample, the mean of the rows' log losses."""
    y = validation.outcomes["y"].astype(float)

    def outputs(estimator) -> np.ndarray:
        return estimator.predict_proba(validation.rows[list(estimator.feature_names_in_)])[:, 1]

    def resample(p: np.ndarray):
        q = np.clip(p, EPS, 1 - EPS)
        return mean_of(-(y * np.log(q) + (1 - y) * np.log(1 - q)))

    return GuardMetric(outputs, lambda p: clipped_log_loss(y, p), resample)


def guard_score(estimator, validation: ValidationSet) -> float:
    """The guard metric: clipped log loss of ``estimator`` on the validation rows (lower is better)."""
    m = guard_metric(validation)
    return m.exact(m.outputs(estimator))


def baseline(ctx: TrainingContext) -> PooledChurnModel:
    """The churn baseline every candidate must not lose to: the pooled segment base rates of the training
    decisions, shrunk toward the portfolio rate (the same model as the small-book fallback)."""
    train = ctx.split(ctx.decision_rows())[0]
    return PooledChurnModel(prior_strength=get_settings().small_book.prior_strength).fit(
        train[["segment"]], train["label_churn"].astype(int), decisions=train["contract_id"])


def comparison(ctx: TrainingContext, estimator, validation: ValidationSet) -> Comparison:
    """The candidate's case to the promotion guard: its log loss on ``validation``, beside the segment base
    rate baseline's on the same rows."""
    family = families.get(FAMILY)
    m = guard_metric(validation)
    out = m.outputs(estimator)
    base = m.outputs(baseline(ctx)) if len(ctx.split(ctx.decision_rows())[0]) else None
    return Comparison(GuardScore.of(family, m.exact(out), len(out)), m, out,
                      {} if base is None else {"segment base rate": base}, validation.clusters,
                      family.guard_label, ctx.profile, getattr(estimator, "fallback_", None), ctx.version_tags())


def choose_model(ctx: TrainingContext, params: dict | None = None, feature_subset: list[str] | None = None
                 ) -> tuple[object, list[str], dict]:
    """The unfitted estimator for this book, the columns it reads and why (``detail["model_choice"]``): the
    full ``ChurnClassifier`` when the book is large enough, else the fallback (docs/operations.md). Explicit
    ``params`` or ``feature_subset`` (an experiment's variant) ask for the ``ChurnClassifier`` whatever the book
    size: an analyst comparing variants gets the variants, not the fallback (which still replaces a full model
    that cannot be fitted)."""
    size = ctx.book_size()
    rows = ctx.decision_rows()
    choice = {**size.to_json(), "reason": size.describe()}
    if not ctx.has_activity and size.churns > 0:   # accounts + contracts only: the cohort retention, any size
        return _fallback(ctx, {**choice, "reason": f"{size.describe()}; the source has no activity table"})
    requested = bool(params) or bool(feature_subset)
    if requested and size.small:
        choice["reason"] += "; the full model was asked for explicitly"
    if not size.small or requested:
        feats = feature_subset or [f for f in ctx.features(rows) if f not in DEFAULT_EXCLUDE]
        est = ChurnClassifier(**{**default_params(int(len(ctx.split(rows)[0]))), **(params or {})})
        return est, feats, {**choice, "chosen": "ChurnClassifier", "fallback": None}
    return _fallback(ctx, choice)


def _fallback(ctx: TrainingContext, choice: dict) -> tuple[object, list[str], dict]:
    if not ctx.has_activity and choice["churns"] > 0:
        est = RetentionChurnModel()
        return est, ["renewals_so_far"], {**choice, "chosen": "RetentionChurnModel",
                                          "fallback": "sBG cohort retention by renewal number (contracts only)"}
    est = PooledChurnModel(prior_strength=get_settings().small_book.prior_strength)
    return est, ["segment"], {**choice, "chosen": "PooledChurnModel",
                              "fallback": "pooled segment churn rates, shrunk toward the portfolio rate"}


def train_churn(ctx: TrainingContext, params: dict | None = None, register: bool = True,
                feature_subset: list[str] | None = None, run_name: str | None = None,
                nested: bool = False) -> TrainingResult:
    """Fit on decisions due before ``validation_start``, evaluate on the later ones (and the oracle's
    probabilities on the same rows when ``ctx.oracle`` is set), log the run and register it under the guard
    (``register=False``: log only). A small book gets the fallback model (:func:`choose_model`); so does a
    book whose full fit fails for lack of outcomes in one of the classifier's time slices."""
    family = families.get(FAMILY)
    rows = ctx.decision_rows()
    train, valid = ctx.split(rows)
    if train.empty or valid.empty:
        raise TrainingDataError(f"no renewal decisions {'before' if train.empty else 'on or after'} "
                                f"{ctx.validation_start} (the validation start): nothing to "
                                f"{'train' if train.empty else 'validate'} a churn model on")
    val = ValidationSet.of_decisions(valid)
    est, feats, choice = choose_model(ctx, params, feature_subset)
    y_train = train["label_churn"].astype(int)
    if isinstance(est, ChurnClassifier):
        try:
            est.fit(train[feats], y_train, sample_time=train["renewal_date"])
        except ValueError as e:   # e.g. a time slice with a single class: the book is too small for it
            est, feats, choice = _fallback(ctx, {**choice, "reason": f"{choice['reason']}; the full model could "
                                                                    f"not be fitted: {e}"})
    if not isinstance(est, ChurnClassifier):
        est.fit(train[feats], y_train, decisions=train["contract_id"])
        choice = {**choice, "fallback": est.fallback_}   # one wording: run tag, version tag, API, dashboard
    y = val.outcomes["y"]
    p = est.predict_proba(valid[feats])[:, 1]
    metrics = classification_metrics(y, p)
    scopes = calibration_scopes(valid)
    by_scope = {name: by_group(y, p, g) for name, g in scopes.items()}   # segment, term, horizon
    oracle = None
    if ctx.oracle is not None:
        po = ctx.oracle.churn_probability(valid)
        ok = ~np.isnan(po)
        oracle = classification_metrics(y[ok], po[ok])
        oracle_by_scope = {name: by_group(y[ok], po[ok], g[ok]) for name, g in scopes.items()}
    result = {"metrics": _subset(metrics), "oracle": _subset(oracle) if oracle else None,
              "detail": {"chosen": getattr(est, "chosen_", choice["chosen"]),
                         "calibration": getattr(est, "calibration_", "none"), "model_choice": choice,
                         "n_train": int(len(train)), "n_valid": int(len(valid)),
                         "n_decisions_valid": int(valid["contract_id"].nunique()),
                         "validation_start": str(ctx.validation_start), "as_of": str(ctx.as_of),
                         **{f"by_{name}": _by_segment(m) for name, m in by_scope.items()}}}
    if oracle:
        result["detail"].update({f"oracle_by_{name}": _by_segment(m) for name, m in oracle_by_scope.items()})
    case = comparison(ctx, est, val)

    tags = {**ctx.run_tags(), **({"fallback": choice["fallback"]} if choice["fallback"] else {})}
    with store.start_run(FAMILY, run_name=run_name, nested=nested, tags=tags) as run:
        store.log_params({"algorithm": result["detail"]["chosen"], "calibration": result["detail"]["calibration"],
                          **ctx.run_params(), "n_features": len(feats),
                          **{f"param_{k}": v for k, v in (params or {}).items()}})
        store.log_metrics(metrics)
        if oracle:
            store.log_metrics(oracle, prefix="oracle_")
        for s, m in by_scope["segment"].items():
            if isinstance(m, dict):
                store.log_metrics({k: m.get(k) for k in ("auc", "ece", "brier")}, prefix=f"{s}_".replace(" ", "_"))
        store.log_dict({"features": feats, "as_of_dates": [str(d) for d in ctx.grid],
                        "validation_start": str(ctx.validation_start)}, "features.json")
        store.log_dict(result, "evaluation.json")
        store.log_dict(ctx.profile, "data_profile.json")
        # the drift reference served score sets are compared with (scoring/monitor.py)
        store.log_table(reference_sample(rows, feats, est.predict_proba(rows[feats])[:, 1],
                                         get_settings().monitoring.reference_rows), REFERENCE_ARTIFACT)
        fig = _calibration_plot(y, p, po[ok] if oracle else None, y[ok] if oracle else None)
        store.log_figure(fig, "calibration_curve.png")
        plt.close(fig)
        fig = _shap_summary(est, valid[feats])
        store.log_figure(fig, "shap_summary.png")
        plt.close(fig)
        reg = log_and_register(family, est, valid[feats].head(20), run.info.run_id, case, policy=ctx.policy,
                               register=register)
    return TrainingResult(FAMILY, result["metrics"], result["oracle"], result["detail"], est, val, case.guard, reg,
                          fallback=choice["fallback"])


def _calibration_plot(y, p, po=None, yo=None):
    fig, ax = plt.subplots(figsize=(5.5, 5))
    t = calibration_curve_table(y, p)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect")
    ax.plot(t["mean_predicted"], t["observed_rate"], marker="o", label="model")
    if po is not None:
        to = calibration_curve_table(yo, po)
        ax.plot(to["mean_predicted"], to["observed_rate"], marker="s", alpha=0.6, label="oracle (truth)")
    ax.set_xlabel("predicted churn probability")
    ax.set_ylabel("observed churn rate")
    ax.set_title("Calibration on the validation slice (10 bins)")
    ax.legend()
    fig.tight_layout()
    return fig


def _shap_summary(est, X, top: int = 15):
    contrib = est.explain(X).drop(columns=["base_value"])
    order = contrib.abs().mean().sort_values(ascending=False).index[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(order) + 1.5))
    rng = np.random.default_rng(0)
    for i, f in enumerate(order):
        c = contrib[f].to_numpy()
        v = X[f]
        if pd.api.types.is_numeric_dtype(v):
            r = v.rank(pct=True).to_numpy()
            color = np.where(np.isnan(r), 0.5, r)
        else:
            color = np.full(len(c), 0.5)
        take = rng.choice(len(c), size=min(len(c), 1500), replace=False)
        ax.scatter(c[take], i + rng.uniform(-0.3, 0.3, len(take)), c=color[take], cmap="coolwarm", s=4, alpha=0.6)
    ax.set_yticks(range(len(order)), order)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("contribution to churn log-odds (colour: feature value rank, red = high)")
    ax.set_title("Drivers on the validation slice (associations, not causes)")
    fig.tight_layout()
    return fig
