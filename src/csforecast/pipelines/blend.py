"""Blend family: the churn champion's probability combined with the CSM's renewal call (``models.CallBlend``).

Time-ordered (docs/metrics.md, "blend"): the rows are renewal-decision snapshots that carry a CSM call made
before their as-of date (``features.calls.latest_calls``). The call categories' churn rates and the per-CSM
biases learn from every such row due before ``eval_start``; the blend's weights learn only from the rows due
between ``validation_start`` and ``eval_start`` (where the churn model's probabilities are out of sample); the
metrics are measured on the rows due on or after ``eval_start``, beside the churn model alone, the calls alone
and the oracle. Registered as ``csforecast-blend`` under the promotion guard, with the churn model alone and
the calls alone as its baselines. Needs the churn champion and calls; without them the family is skipped.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import logit

from csforecast.errors import TrainingDataError
from csforecast.features.calls import latest_calls, source_calls
from csforecast.jsonsafe import finite_float
from csforecast.metrics.calibration import clipped_log_loss, expected_calibration_error, rank_auc
from csforecast.metrics.paired import mean_of
from csforecast.models.blend import BLEND_INPUTS, CallBlend
from csforecast.pipelines.champion import Comparison, GuardMetric, GuardScore, log_and_register
from csforecast.pipelines.context import TrainingContext
from csforecast.pipelines.result import TrainingResult, ValidationSet
from csforecast.scoring import families
from csforecast.tracking import store

FAMILY = "blend"
EPS = 1e-6


def eval_start(ctx: TrainingContext) -> pd.Timestamp:
    """The first renewal date of the evaluation rows: half-way (in months) through the validation period."""
    return pd.Timestamp(ctx.validation_start) + pd.DateOffset(months=max(1, ctx.validation_months // 2))


def churn_champion(ctx: TrainingContext, trained=None) -> tuple[object, str | None]:
    """The churn champion (estimator, version) the blend is built on: the registry's after this call's churn
    training; ``trained`` (this call's churn estimator) when the registry has none. TrainingDataError when
    neither exists."""
    ref = store.read_champion("churn")
    if ref is not None:
        return ref.load(), str(ref.version)
    if trained is not None:
        return trained, None
    raise TrainingDataError("no churn champion: the blend combines the churn champion with CSM calls; train "
                            "the churn family first")


def blend_rows(ctx: TrainingContext, churn_estimator) -> pd.DataFrame:
    """Renewal-decision rows with a CSM call before their as-of date: the snapshot columns, the call columns
    and ``model_logit`` (the churn model's log-odds). TrainingDataError when the source has no calls or no row
    has one."""
    calls = source_calls(ctx.source)
    if calls.empty:
        raise TrainingDataError("no forecast_calls table (or it is empty): the blend needs CSM calls")
    rows = ctx.decision_rows()
    rows = rows.join(latest_calls(calls, rows))
    rows = rows[rows["call_category"].notna()].copy()
    if rows.empty:
        raise TrainingDataError("no renewal decision in the training data has a CSM call before it: nothing "
                                "to blend")
    feats = list(churn_estimator.feature_names_in_)
    p = churn_estimator.predict_proba(rows[feats])[:, 1]
    rows["model_logit"] = logit(np.clip(p, EPS, 1 - EPS))
    return rows


def _metrics(y, p_model, p_call, p_blend) -> dict:
    return {"log_loss_model": finite_float(clipped_log_loss(y, p_model), 6),
            "log_loss_csm": finite_float(clipped_log_loss(y, p_call), 6),
            "log_loss_blend": finite_float(clipped_log_loss(y, p_blend), 6),
            "auc_model": finite_float(rank_auc(y, p_model), 6), "auc_csm": finite_float(rank_auc(y, p_call), 6),
            "auc_blend": finite_float(rank_auc(y, p_blend), 6),
            "ece_blend": finite_float(expected_calibration_error(y, p_blend), 6), "n_calls": int(len(y))}


def guard_metric(validation: ValidationSet) -> GuardMetric:
    """Clipped log loss of the blend's probabilities on the evaluation rows (lower is better)."""
    y = validation.outcomes["y"].astype(float)

    def outputs(estimator) -> np.ndarray:
        return estimator.predict_proba(validation.rows[list(BLEND_INPUTS)])[:, 1]

    def resample(p: np.ndarray):
        q = np.clip(p, 1e-4, 1 - 1e-4)
        return mean_of(-(y * np.log(q) + (1 - y) * np.log(1 - q)))

    return GuardMetric(outputs, lambda p: clipped_log_loss(y, p), resample)


def _recovery(table: pd.DataFrame, oracle) -> dict | None:
    """How the per-CSM biases match the simulator's optimism (evaluation only): Spearman correlation of
    ``bias`` with minus the optimism, and the sign agreement among CSMs with |optimism| >= 0.5."""
    truth = ((oracle.meta.get("calls") or {}).get("csm_optimism") or {}) if oracle is not None else {}
    if not truth or table.empty:
        return None
    t = table.assign(true_optimism=table["csm_id"].map(truth)).dropna(subset=["true_optimism"])
    if len(t) < 3:
        return None
    rho = float(pd.Series(t["bias"]).rank().corr(pd.Series(-t["true_optimism"]).rank()))
    clear = t[t["true_optimism"].abs() >= 0.5]
    agree = float((np.sign(clear["bias"]) == -np.sign(clear["true_optimism"])).mean()) if len(clear) else None
    excl = clear[(clear["bias_low"] > 0) | (clear["bias_high"] < 0)]
    return {"spearman_bias_vs_pessimism": finite_float(rho, 4), "csms": int(len(t)),
            "clear_csms": int(len(clear)), "sign_agreement_clear": finite_float(agree, 4),
            "clear_csms_interval_excludes_0": int(len(excl)),
            "true_optimism": {str(k): float(v) for k, v in zip(t["csm_id"], t["true_optimism"])}}


def train_blend(ctx: TrainingContext, churn_estimator=None, register: bool = True, run_name: str | None = None,
                nested: bool = False) -> TrainingResult:
    """Fit the blend on the churn champion and the calls (see the module docstring), evaluate it beside the
    model alone, the calls alone and the oracle, log the run and register it under the guard."""
    family = families.get(FAMILY)
    churn_est, churn_version = churn_champion(ctx, churn_estimator)
    rows = blend_rows(ctx, churn_est)
    es = eval_start(ctx)
    fit_rows, ev = rows[rows["renewal_date"] < es], rows[rows["renewal_date"] >= es]
    vs = pd.Timestamp(ctx.validation_start)
    if ev.empty or (fit_rows["renewal_date"] >= vs).sum() == 0:
        raise TrainingDataError(f"too few renewals with CSM calls: the blend needs calls on renewals due between "
                                f"{vs.date()} and {es.date()} (to fit its weights) and after {es.date()} (to "
                                "evaluate it)")
    est = CallBlend(blend_start=vs)
    try:
        est.fit(fit_rows[list(BLEND_INPUTS)], fit_rows["label_churn"].astype(int), sample_time=fit_rows["renewal_date"])
    except ValueError as e:
        raise TrainingDataError(f"the blend cannot be fitted on these calls: {e}") from e
    est.churn_version_ = churn_version
    val = ValidationSet.of_decisions(ev)
    y = val.outcomes["y"]
    comp = est.predict_components(ev[list(BLEND_INPUTS)])
    p_model, p_call, p_blend = (comp[c].to_numpy(float) for c in ("p_model", "p_call", "p_blend"))
    metrics = _metrics(y, p_model, p_call, p_blend)
    oracle = None
    if ctx.oracle is not None:
        po = ctx.oracle.churn_probability(ev)
        ok = ~np.isnan(po)
        if ok.any():
            oracle = {"log_loss": finite_float(clipped_log_loss(y[ok], po[ok]), 6),
                      "auc": finite_float(rank_auc(y[ok], po[ok]), 6), "n": int(ok.sum())}
    table = est.csm_table_.copy()
    csm_rows = [{**{k: (finite_float(v, 6) if isinstance(v, float) else v) for k, v in r.items()},
                 "bias_interval": [finite_float(r["bias_low"], 6), finite_float(r["bias_high"], 6)]}
                for r in table.to_dict("records")]
    detail = {"csm_calibration": csm_rows, "call_category_rates": {k: finite_float(v, 6)
                                                                   for k, v in est.category_rate_.items()},
              "tau": finite_float(est.tau_, 6),
              "weights": {"model_logit": finite_float(est.coef_[0], 6), "call_logit": finite_float(est.coef_[1], 6),
                          "call_logit_x_closeness": finite_float(est.coef_[2], 6),
                          "intercept": finite_float(est.intercept_, 6)},
              "churn_model_version": churn_version, "validation_start": str(vs.date()), "eval_start": str(es.date()),
              "n_fit_rows": int(len(fit_rows)), "n_weight_rows": int(est.n_blend_rows_),
              "n_eval_renewals": int(ev["contract_id"].nunique()), "as_of": str(ctx.as_of)}
    rec = _recovery(table, ctx.oracle)
    if rec is not None:
        detail["csm_recovery"] = rec
    m = guard_metric(val)
    out = m.outputs(est)
    case = Comparison(GuardScore.of(family, m.exact(out), len(out)), m, out,
                      {"churn model alone": p_model, "CSM calls alone": p_call}, val.clusters, family.guard_label,
                      ctx.profile, None, {**ctx.version_tags(), **({"churn_version": churn_version}
                                                                     if churn_version else {})})
    with store.start_run(FAMILY, run_name=run_name, nested=nested, tags=ctx.run_tags()) as run:
        store.log_params({"algorithm": "CallBlend", **ctx.run_params(), "eval_start": str(es.date()),
                          "churn_model_version": churn_version})
        store.log_metrics(metrics)
        if oracle:
            store.log_metrics({k: v for k, v in oracle.items() if k != "n"}, prefix="oracle_")
        store.log_dict({"metrics": metrics, "oracle": oracle, "detail": detail}, "evaluation.json")
        store.log_dict(ctx.profile, "data_profile.json")
        reg = log_and_register(family, est, ev[list(BLEND_INPUTS)].head(20), run.info.run_id, case,
                               policy=ctx.policy, register=register)
    return TrainingResult(FAMILY, metrics, oracle, detail, est, val, case.guard, reg)
