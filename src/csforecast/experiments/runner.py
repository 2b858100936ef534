"""Run an experiment spec and promote one of its variants.

`run_experiment` builds ONE TrainingContext (so every variant sees the same point-in-time snapshots and the
same time split), trains every variant as a nested MLflow child run under one parent run (nothing is
registered), predicts the validation rows with each variant's fitted estimator and puts a paired, account-
clustered bootstrap CI on every metric's difference to the baseline: each resample draws accounts with
replacement, takes all their validation rows, and recomputes the metric for every variant on the same rows.

`promote` registers one variant's logged model under the champion/challenger guard: it rebuilds the run's
context from the same data (checked by data hash) and as-of date and compares the variant with the current
champion on the run's validation rows.
"""
from __future__ import annotations

import time
from typing import Callable

from csforecast.data.sources import Source
from csforecast.experiments.forecast_experiment import run_forecast_experiment
# promotion lives in experiments/promote.py; re-exported here for the CLI's `experiment promote`
from csforecast.experiments.promote import PromoteError, promote, promotion_info  # noqa: F401
from csforecast.experiments.report import CI_LEVEL, _r, build_report, comparison_markdown, format_cell  # noqa: F401
from csforecast.experiments.spec import FAMILY_METRICS, ExperimentSpec
from csforecast.experiments.variants import (  # noqa: F401 (feature_group re-exported)
    ADAPTERS,
    ExperimentError,
    feature_group,
    rows_fingerprint,
    single_blas_thread,
    usage_slugs,
)
from csforecast.metrics.resampling import cluster_resamples, percentile_ci
from csforecast.pipelines.context import TrainingContext
from csforecast.pipelines.result import ValidationSet
from csforecast.tracking import runs as tracking_ext
from csforecast.tracking import store

__all__ = ["run_experiment", "bootstrap_deltas", "comparison_markdown", "format_cell", "ExperimentError",
           "PromoteError", "promote", "promotion_info"]

Progress = Callable[[str], None]


# ------------------------------------------------------------------------------------------------
# bootstrap
# ------------------------------------------------------------------------------------------------
def bootstrap_deltas(val: ValidationSet, preds: dict[str, dict], baseline: str, fns: dict, n: int, seed: int
                     ) -> dict[str, dict[str, list]]:
    """{variant: {metric: [lo, hi]}}: percentile CI of metric(variant) - metric(baseline) over resamples."""
    if n <= 0 or baseline not in preds:
        return {}
    others = [v for v in preds if v != baseline]
    draws = {v: {m: [] for m in fns} for v in others}
    for idx in cluster_resamples(val.clusters, n, seed):
        base = {m: fn(val.y, preds[baseline], idx) for m, fn in fns.items()}
        for v in others:
            for m, fn in fns.items():
                draws[v][m].append(fn(val.y, preds[v], idx) - base[m])
    return {v: {m: [_r(x) for x in percentile_ci(d, CI_LEVEL)] for m, d in draws[v].items()} for v in others}


# ------------------------------------------------------------------------------------------------
# run
# ------------------------------------------------------------------------------------------------
@single_blas_thread
def run_experiment(spec: ExperimentSpec, source: Source, *, spec_text: str | None = None,
                   progress: Progress | None = None, oracle=None) -> dict:
    """Run every variant of `spec` on `source` (already validated) under one MLflow parent run.

    ``oracle``: the simulator's truth (a Truth, or None for real data), reported beside every variant's
    metrics."""
    tell = progress or (lambda _m: None)
    t0 = time.time()
    if spec.family == "forecast":
        return run_forecast_experiment(spec, source, spec_text=spec_text, tell=tell, t0=t0, oracle=oracle)
    adapter = ADAPTERS[spec.family]
    tell("building point-in-time snapshots (shared by every variant)")
    ctx = TrainingContext.build(source, spec.as_of, spec.validation_months, oracle=oracle)
    _ = ctx.snapshots
    val = adapter.validation_set(ctx)
    if val.rows.empty:
        raise ExperimentError(f"no validation rows after {ctx.validation_start}: nothing to compare")
    slugs = usage_slugs(source)
    metric_keys = spec.metric_keys
    hib = {m: FAMILY_METRICS[spec.family][m] for m in metric_keys}
    fp = rows_fingerprint(val.rows)
    results: dict[str, dict] = {}
    preds: dict[str, dict] = {}
    with store.start_run(spec.family, run_name=spec.name,
                         tags={"kind": "experiment", "experiment": spec.name, "data_hash": ctx.data_hash,
                               "as_of": str(ctx.as_of)}) as parent:
        parent_id = parent.info.run_id
        store.log_params({"experiment": spec.name, "family": spec.family, "baseline": spec.baseline,
                          "variants": ",".join(v.name for v in spec.variants), "data": source.location,
                          "data_hash": ctx.data_hash, "as_of": ctx.as_of, "validation_months": spec.validation_months,
                          "validation_start": ctx.validation_start, "bootstrap": spec.bootstrap, "seed": spec.seed,
                          "n_validation_rows": fp["n"]})
        if spec_text is not None:
            store.log_text(spec_text, "spec.toml")
        store.log_dict({**fp, "validation_start": str(ctx.validation_start), "as_of": str(ctx.as_of),
                        "rows": val.rows[fp["columns"]].astype(str).to_numpy().tolist()}, "validation_rows.json")
        for i, v in enumerate(spec.variants, 1):
            tell(f"variant {i}/{len(spec.variants)}: {v.name}")
            try:
                res = adapter.train(ctx, v, v.name, slugs)
            except Exception as e:  # noqa: BLE001 - one failing variant is reported, the others still run
                results[v.name] = {"error": f"{type(e).__name__}: {e}"[:500]}
                continue
            results[v.name] = res.to_json()
            tracking_ext.set_tags(res.registration.run_id, {"experiment": spec.name, "variant": v.name,
                                                  "experiment_parent_run_id": parent_id,
                                                  "variant_spec": v.model_dump_json(exclude_defaults=True),
                                                  "baseline": str(v.name == spec.baseline).lower()})
            try:
                preds[v.name] = adapter.predictions(res.estimator, val, res)
            except Exception as e:  # noqa: BLE001
                results[v.name]["prediction_error"] = f"{type(e).__name__}: {e}"[:300]
        tell(f"bootstrap ({spec.bootstrap} account-clustered resamples)")
        fns = {m: f for m, f in adapter.metric_fns().items() if m in metric_keys}
        cis = bootstrap_deltas(val, preds, spec.baseline, fns, spec.bootstrap, spec.seed)
        report = build_report(spec, parent_id, results, cis, metric_keys, hib, ctx, source, fp)
        report["elapsed_seconds"] = round(time.time() - t0, 1)
        flat = {}
        for vr in report["variants"]:
            for m in metric_keys:
                flat[f"{vr['name']}.{m}"] = (vr.get("metrics") or {}).get(m)
                if vr["delta"].get(m) is not None:
                    flat[f"{vr['name']}.delta_{m}"] = vr["delta"][m]
        store.log_metrics(flat)
        store.log_dict(report, "comparison.json")
        store.log_text(comparison_markdown(report), "comparison.md")
        failed = [vr["name"] for vr in report["variants"] if vr.get("error")]
        if failed:
            tracking_ext.set_tags(parent_id, {"failed_variants": ",".join(failed)})
    return report
