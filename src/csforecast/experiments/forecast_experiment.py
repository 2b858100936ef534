"""Forecast experiments: one back-test of the renewal forecast, one child run per method, and a paired
quarter-bootstrap interval of each method's WAPE difference to the baseline method."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from csforecast.data.sources import Source
from csforecast.experiments.report import CI_LEVEL, _r, build_report, comparison_markdown
from csforecast.experiments.spec import FAMILY_METRICS, ExperimentSpec
from csforecast.experiments.variants import ExperimentError
from csforecast.forecast.backtest import log_backtest_artifacts, run_backtest
from csforecast.metrics.forecast_errors import wape
from csforecast.metrics.resampling import percentile_ci
from csforecast.pipelines.context import TrainingContext
from csforecast.tracking import runs as tracking_ext
from csforecast.tracking import store

__all__ = ["run_forecast_experiment"]

FORECAST_KEYS = ("wape", "wape_overall", "bias", "coverage_p10_p90", "grr_mae", "nrr_mae")


def run_forecast_experiment(spec: ExperimentSpec, source: Source, *, spec_text, tell, t0, oracle=None) -> dict:
    """Back-test every method of ``spec`` (the oracle, a Truth or None, is the back-test's extra method)."""
    if spec.as_of is not None:
        raise ExperimentError("forecast experiments back-test the last quarters before the data end; as_of is not "
                              "supported")
    ctx = TrainingContext.build(source, None, spec.validation_months)
    tell("building point-in-time snapshots")
    snaps = ctx.snapshots
    metric_keys = spec.metric_keys
    hib = {m: FAMILY_METRICS["forecast"][m] for m in metric_keys}
    with store.start_run("forecast", run_name=spec.name,
                         tags={"kind": "experiment", "experiment": spec.name, "data_hash": ctx.data_hash}) as parent:
        parent_id = parent.info.run_id
        store.log_params({"experiment": spec.name, "family": "forecast", "baseline": spec.baseline,
                          "variants": ",".join(v.name for v in spec.variants), "data": source.location,
                          "data_hash": ctx.data_hash, "quarters": spec.backtest.quarters,
                          "warmup_quarters": spec.backtest.warmup, "draws": spec.backtest.draws,
                          "bootstrap": spec.bootstrap})
        if spec_text is not None:
            store.log_text(spec_text, "spec.toml")
        bt = run_backtest(source, spec.backtest.quarters, spec.backtest.warmup, draws=spec.backtest.draws,
                          seed=spec.seed or None, progress=tell, snapshots=snaps, oracle=oracle)
        log_backtest_artifacts(bt)
        results = {}
        for v in spec.variants:
            summ = bt["summary"].get(v.method)
            if summ is None:
                results[v.name] = {"error": f"method {v.method!r} is not in the back-test result"}
                continue
            m = {k: _r(summ.get(k)) for k in metric_keys}
            with store.start_run("forecast", run_name=v.name, nested=True,
                                 tags={"kind": "experiment_variant", "data_hash": ctx.data_hash}) as child:
                store.log_params({"method": v.method, "quarters": spec.backtest.quarters})
                store.log_metrics({k: x for k, x in m.items() if x is not None})
                store.log_dict({"summary": summ, "quarters": [r for r in bt["quarters"] if r["method"] == v.method],
                                "segments": [r for r in bt["segments"] if r["method"] == v.method]},
                               "method_backtest.json")
                rid = child.info.run_id
            tracking_ext.set_tags(rid, {"experiment": spec.name, "variant": v.name,
                                        "experiment_parent_run_id": parent_id,
                                        "variant_spec": v.model_dump_json(exclude_defaults=True)})
            results[v.name] = {"metrics": m, "run_id": rid}
        cis = _forecast_cis(bt, spec, metric_keys)
        fp = {"n": len(bt["segments"]) // max(1, len(bt["summary"])),
              "n_accounts": None}
        report = build_report(spec, parent_id, results, cis, metric_keys, hib, ctx, source, fp)
        report.pop("validation_start", None)
        report["as_of"] = bt["data_end"]
        report["validation_start"] = bt["quarters"][0]["quarter"] if bt["quarters"] else None
        report["validation_rows"] = fp["n"]
        report["validation_accounts"] = None
        report["bootstrap"] = {"resamples": spec.bootstrap, "cluster": "quarter", "level": CI_LEVEL,
                               "interval": "percentile, paired; WAPE of quarter x segment rows, quarters resampled "
                                           "(few quarters: a rough interval)"}
        if "oracle" in bt["summary"]:
            report["oracle"] = {k: _r(bt["summary"]["oracle"].get(k)) for k in metric_keys}
        report["elapsed_seconds"] = round(time.time() - t0, 1)
        store.log_dict(report, "comparison.json")
        store.log_text(comparison_markdown(report), "comparison.md")
    return report


def _forecast_cis(bt: dict, spec: ExperimentSpec, keys) -> dict:
    """Paired quarter-bootstrap CI of the WAPE difference (segment rows) for each variant vs the baseline."""
    if spec.bootstrap <= 0 or "wape" not in keys:
        return {}
    seg = pd.DataFrame(bt["segments"])
    if seg.empty:
        return {}
    method_of = {v.name: v.method for v in spec.variants}
    base = method_of[spec.baseline]
    quarters = np.array(sorted(seg["quarter"].unique()))
    rng = np.random.default_rng(spec.seed)

    def seg_wape(df):
        return wape(df["actual_renewed_arr"].to_numpy(float), df["forecast_renewed_arr"].to_numpy(float))

    by_q = {(q, m): g for (q, m), g in seg.groupby(["quarter", "method"])}
    out = {}
    samples = [rng.choice(quarters, len(quarters)) for _ in range(spec.bootstrap)]
    for name, meth in method_of.items():
        if name == spec.baseline:
            continue
        d = []
        for qs in samples:
            mine = pd.concat([by_q[(q, meth)] for q in qs if (q, meth) in by_q])
            theirs = pd.concat([by_q[(q, base)] for q in qs if (q, base) in by_q])
            d.append(seg_wape(mine) - seg_wape(theirs))
        out[name] = {"wape": [_r(x) for x in percentile_ci(d, CI_LEVEL)]}
    return out
