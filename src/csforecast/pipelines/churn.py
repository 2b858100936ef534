"""Churn family: fit ChurnClassifier on renewal-decision snapshots, evaluate on later decisions beside the
oracle, log to MLflow and register under the champion/challenger guard."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import log_loss  # noqa: E402

from csforecast.features.catalogue import DEFAULT_EXCLUDE  # noqa: E402,F401 (re-exported)
from csforecast.metrics.calibration import by_group, calibration_curve_table, classification_metrics  # noqa: E402
from csforecast.models.churn import ChurnClassifier  # noqa: E402
from csforecast.pipelines.context import TrainingContext  # noqa: E402
from csforecast.tracking import store  # noqa: E402
from csforecast.tracking.pyfunc import EstimatorModel  # noqa: E402

FAMILY = "churn"


def default_params(n_rows: int) -> dict:
    """Defaults that do well on a few thousand decisions (tens of thousands of snapshot rows) untuned:
    shallow, slow, strongly regularised trees; leaf sizes scale with the data."""
    return {"learning_rate": 0.02, "num_leaves": 4, "min_child_samples": max(50, n_rows // 100),
            "reg_lambda": 5.0, "fit_fraction": 0.7, "selection_fraction": 0.15}
METRIC_KEYS = ("auc", "pr_auc", "log_loss", "brier", "ece", "calibration_slope", "top_decile_lift")


def _subset(m: dict) -> dict:
    return {k: (None if m.get(k) is None or m.get(k) != m.get(k) else round(float(m[k]), 6)) for k in METRIC_KEYS}


def train_churn(ctx: TrainingContext, params: dict | None = None, register: bool = True,
                feature_subset: list[str] | None = None, run_name: str | None = None, nested: bool = False) -> dict:
    rows = ctx.decision_rows()
    train, valid = ctx.split(rows)
    if train["label_churn"].nunique() < 2 or valid["label_churn"].nunique() < 2:
        raise ValueError("not enough renewal outcomes on both sides of the time split to train a churn model")
    feats = feature_subset or [f for f in ctx.features(rows) if f not in DEFAULT_EXCLUDE]
    est = ChurnClassifier(**{**default_params(len(train)), **(params or {})})
    est.fit(train[feats], train["label_churn"].astype(int), sample_time=train["renewal_date"])
    y = valid["label_churn"].astype(int).to_numpy()
    p = est.predict_proba(valid[feats])[:, 1]
    metrics = classification_metrics(y, p)
    seg = by_group(y, p, valid["segment"].to_numpy())
    oracle = None
    if ctx.truth is not None:
        po = ctx.truth.churn_probability(valid)
        ok = ~np.isnan(po)
        oracle = classification_metrics(y[ok], po[ok])
        oracle_seg = by_group(y[ok], po[ok], valid["segment"].to_numpy()[ok])
    result = {"metrics": _subset(metrics), "oracle": _subset(oracle) if oracle else None,
              "detail": {"chosen": est.chosen_, "calibration": est.calibration_,
                         "n_train": int(len(train)), "n_valid": int(len(valid)),
                         "n_decisions_valid": int(valid["contract_id"].nunique()),
                         "validation_start": str(ctx.validation_start), "as_of": str(ctx.as_of),
                         "by_segment": {k: _subset(v) if isinstance(v, dict) and "auc" in v else v
                                        for k, v in seg.items()}}}
    if oracle:
        result["detail"]["oracle_by_segment"] = {k: _subset(v) if isinstance(v, dict) and "auc" in v else v
                                                 for k, v in oracle_seg.items()}

    def beats(champion) -> tuple[bool, str]:
        pc = champion.predict_proba(valid[list(champion.feature_names_in_)])[:, 1]
        mine, theirs = log_loss(y, np.clip(p, 1e-6, 1 - 1e-6)), log_loss(y, np.clip(pc, 1e-6, 1 - 1e-6))
        return mine < theirs, f"validation log loss {mine:.5f} vs champion {theirs:.5f} on {len(y)} rows"

    with store.start_run(FAMILY, run_name=run_name, nested=nested,
                         tags={"data_hash": ctx.data_hash, "as_of": str(ctx.as_of)}) as run:
        store.log_params({"algorithm": est.chosen_, "calibration": est.calibration_, "as_of": ctx.as_of,
                          "validation_start": ctx.validation_start, "n_features": len(feats),
                          "snapshot_dates": f"{ctx.grid[0]}..{ctx.grid[-1]} ({len(ctx.grid)} monthly)",
                          "data_hash": ctx.data_hash, **{f"param_{k}": v for k, v in (params or {}).items()}})
        store.log_metrics(metrics)
        if oracle:
            store.log_metrics(oracle, prefix="oracle_")
        for s, m in seg.items():
            if isinstance(m, dict):
                store.log_metrics({k: m.get(k) for k in ("auc", "ece", "brier")}, prefix=f"{s}_".replace(" ", "_"))
        store.log_dict({"features": feats, "as_of_dates": [str(d) for d in ctx.grid],
                        "validation_start": str(ctx.validation_start)}, "features.json")
        store.log_dict(result, "evaluation.json")
        fig = _calibration_plot(y, p, po[ok] if oracle else None, y[ok] if oracle else None)
        store.log_figure(fig, "calibration_curve.png")
        plt.close(fig)
        fig = _shap_summary(est, valid[feats])
        store.log_figure(fig, "shap_summary.png")
        plt.close(fig)
        info = store.log_pyfunc(EstimatorModel(est, "churn_probability"), valid[feats].head(20),
                                pd.DataFrame({"churn_probability": p[:20]}))
        reg = (store.register_with_guard(FAMILY, info.model_uri, run.info.run_id, beats) if register
               else store.Registration(run.info.run_id, None, None, "not registered"))
    result.update({"run_id": reg.run_id, "version": reg.version, "alias": reg.alias, "guard": reg.guard})
    result["_estimator"] = est
    return result


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
