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

import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from csforecast.data.sources import Source
from csforecast.experiments.spec import FAMILY_METRICS, ExperimentSpec, Variant
from csforecast.features.catalogue import CATALOGUE
from csforecast.metrics.calibration import top_decile_lift
from csforecast.metrics.resampling import cluster_resamples, percentile_ci, rank_auc
from csforecast.pipelines.context import TrainingContext

Progress = Callable[[str], None]
EPS = 1e-6
CI_LEVEL = 0.95


class ExperimentError(RuntimeError):
    """The experiment cannot run (e.g. a family whose pipeline is not in this build)."""


class PromoteError(RuntimeError):
    """The run cannot be promoted (unknown run, other data, no model)."""


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


def _usage_slugs(source: Source) -> tuple[str, ...]:
    from csforecast.features.snapshot import _slug, usage_metrics

    try:
        return tuple(_slug(m) for m in usage_metrics(source))
    except Exception:  # noqa: BLE001 - grouping falls back to prefixes
        return ()


# ------------------------------------------------------------------------------------------------
# fast metrics for the bootstrap (same definitions as csforecast.metrics.calibration; the ones that are
# already cheap are imported from there)
# ------------------------------------------------------------------------------------------------
auc = rank_auc


def log_loss(y, p) -> float:
    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def brier(y, p) -> float:
    return float(np.mean((p - y) ** 2))


def ece(y, p, n_bins: int = 10) -> float:
    b = np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], p, side="right")
    return float(np.abs(np.bincount(b, weights=y, minlength=n_bins) -
                        np.bincount(b, weights=p, minlength=n_bins)).sum() / len(y))


def pr_auc(y, p) -> float:
    from sklearn.metrics import average_precision_score

    if y.min() == y.max():
        return float("nan")
    return float(average_precision_score(y, p))


def calibration_slope(y, p) -> float:
    """Slope b of logit P(y) = a + b logit(p), maximum likelihood by Newton-Raphson."""
    if y.min() == y.max():
        return float("nan")
    z = logit(np.clip(p, EPS, 1 - EPS))
    if np.ptp(z) == 0:
        return float("nan")
    X = np.column_stack([np.ones_like(z), z])
    beta = np.array([0.0, 1.0])
    for _ in range(50):
        mu = expit(X @ beta)
        w = np.maximum(mu * (1 - mu), 1e-12)
        H = X.T @ (X * w[:, None])
        try:
            step = np.linalg.solve(H, X.T @ (y - mu))
        except np.linalg.LinAlgError:
            return float("nan")
        beta = beta + step
        if not np.all(np.isfinite(beta)) or np.max(np.abs(beta)) > 1e4:
            return float("nan")      # (quasi-)separation: no finite maximum likelihood estimate
        if np.max(np.abs(step)) < 1e-10:
            return float(beta[1])
    return float("nan")


# ------------------------------------------------------------------------------------------------
# family adapters: validation rows, training, per-row predictions, bootstrap metrics, promotion score
# ------------------------------------------------------------------------------------------------
@dataclass
class Validation:
    rows: pd.DataFrame
    y: dict[str, np.ndarray]        # outcome arrays
    clusters: np.ndarray            # account ids: the bootstrap resamples these


class _Adapter:
    family: str
    guard_metric: str
    higher_is_better = True

    def validation(self, ctx: TrainingContext) -> Validation:
        rows = ctx.split(ctx.decision_rows())[1]
        return Validation(rows, {"y": rows["label_churn"].astype(int).to_numpy()}, rows["account_id"].to_numpy())

    def train(self, ctx: TrainingContext, v: Variant, run_name: str, usage_slugs) -> dict:
        raise NotImplementedError

    def predictions(self, est, val: Validation, result: dict) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def metric_fns(self) -> dict[str, Callable[[dict, dict, np.ndarray], float]]:
        raise NotImplementedError

    def guard_score(self, est, val: Validation) -> float:
        raise NotImplementedError

    def better(self, mine: float, theirs: float) -> bool:
        return mine > theirs if self.higher_is_better else mine < theirs


class _Churn(_Adapter):
    family, guard_metric, higher_is_better = "churn", "log_loss", False

    def train(self, ctx, v, run_name, usage_slugs):
        from csforecast.pipelines import churn

        feats = None
        if v.selects_features:
            # start from the pipeline's own default feature set, so a variant differs from the default only by
            # what it drops or keeps; explicitly kept names may bring back columns the default leaves out
            allf = ctx.features(ctx.snapshots)
            excluded = set(getattr(churn, "DEFAULT_EXCLUDE", ()))
            base = allf if v.keep_features is not None else [c for c in allf if c not in excluded]
            feats = v.select_features(base, lambda c: feature_group(c, usage_slugs))
            if not feats:
                raise ExperimentError(f"variant {v.name!r} selects no features")
        return churn.train_churn(ctx, params=v.estimator_params() or None, register=False, feature_subset=feats,
                                 run_name=run_name, nested=True)

    def predictions(self, est, val, result):
        return {"p": est.predict_proba(val.rows[list(est.feature_names_in_)])[:, 1]}

    def metric_fns(self):
        def f(fn):
            return lambda y, pr, i: fn(y["y"][i].astype(float), pr["p"][i])
        return {"auc": f(auc), "pr_auc": f(pr_auc), "log_loss": f(log_loss), "brier": f(brier), "ece": f(ece),
                "calibration_slope": f(calibration_slope), "top_decile_lift": f(top_decile_lift)}

    def guard_score(self, est, val):
        p = est.predict_proba(val.rows[list(est.feature_names_in_)])[:, 1]
        return log_loss(val.y["y"].astype(float), p)


class _Health(_Adapter):
    family, guard_metric = "health", "auc"

    def train(self, ctx, v, run_name, usage_slugs):
        from csforecast.models.health import COMPONENTS
        from csforecast.pipelines.health import train_health

        return train_health(ctx, params=v.params or None, register=False, run_name=run_name, nested=True,
                            components=v.select_components(list(COMPONENTS)))

    def predictions(self, est, val, result):
        from csforecast.models.health import textbook_score

        return {"score": np.asarray(est.predict(val.rows), float),
                "ew": np.asarray(est.equal_weight_score(val.rows), float),
                "tb": np.asarray(textbook_score(val.rows), float)}

    def metric_fns(self):
        return {"auc": lambda y, pr, i: auc(y["y"][i], -pr["score"][i]),
                "auc_equal_weight": lambda y, pr, i: auc(y["y"][i], -pr["ew"][i]),
                "auc_textbook": lambda y, pr, i: auc(y["y"][i], -pr["tb"][i])}

    def guard_score(self, est, val):
        return auc(val.y["y"], -np.asarray(est.predict(val.rows[list(est.feature_names_in_)]), float))


class _Survival(_Adapter):
    family, guard_metric = "survival", "c_index"

    def validation(self, ctx):
        s = ctx.snapshots
        rows = s[s["as_of"] >= pd.Timestamp(ctx.validation_start)]
        return Validation(rows, {"T": rows["label_duration_days"].to_numpy(float),
                                 "E": rows["label_event"].to_numpy(float)}, rows["account_id"].to_numpy())

    def train(self, ctx, v, run_name, usage_slugs):
        from csforecast.pipelines import survival

        cov = v.covariates
        if cov is None and v.drop_covariates:
            cov = [c for c in survival.DEFAULT_COVARIATES if c not in v.drop_covariates]
        return survival.train_survival(ctx, params=v.params or None, register=False, run_name=run_name,
                                       nested=True, covariates=cov)

    @staticmethod
    def _horizon(val: Validation) -> float:
        return float(min(365, val.y["T"].max()))

    def predictions(self, est, val, result):
        h = (result.get("detail") or {}).get("evaluation_horizon_days") or self._horizon(val)
        return {"risk": np.asarray(est.predict_risk(val.rows, horizon=h), float)}

    def metric_fns(self):
        from csforecast.models.survival import harrell_c_index

        return {"c_index": lambda y, pr, i: harrell_c_index(y["T"][i], y["E"][i], pr["risk"][i])}

    def guard_score(self, est, val):
        from csforecast.models.survival import harrell_c_index

        risk = np.asarray(est.predict_risk(val.rows, horizon=self._horizon(val)), float)
        return harrell_c_index(val.y["T"], val.y["E"], risk)


ADAPTERS: dict[str, _Adapter] = {"churn": _Churn(), "health": _Health(), "survival": _Survival()}


# ------------------------------------------------------------------------------------------------
# bootstrap
# ------------------------------------------------------------------------------------------------
def bootstrap_deltas(val: Validation, preds: dict[str, dict], baseline: str, fns: dict, n: int, seed: int
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


def _r(x, nd: int = 6):
    if x is None:
        return None
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return None if not math.isfinite(x) else round(x, nd)


def _rows_fingerprint(rows: pd.DataFrame) -> dict:
    cols = [c for c in ("account_id", "as_of", "contract_id") if c in rows]
    keys = rows[cols].astype(str).agg("|".join, axis=1).sort_values()
    h = hashlib.blake2b("\n".join(keys).encode(), digest_size=12).hexdigest()
    return {"n": int(len(rows)), "n_accounts": int(rows["account_id"].nunique()), "columns": cols, "hash": h}


# ------------------------------------------------------------------------------------------------
# run
# ------------------------------------------------------------------------------------------------
def single_blas_thread(fn):
    """Run `fn` with one BLAS thread: the fits here are small, and multi-threaded OpenBLAS on a busy 2-core
    machine made a logistic churn fit ~25x slower (45 s instead of 1.7 s) in our measurements."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)
    return wrapper


@single_blas_thread
def run_experiment(spec: ExperimentSpec, source: Source, *, spec_text: str | None = None,
                   progress: Progress | None = None) -> dict:
    """Run every variant of `spec` on `source` (already validated) under one MLflow parent run."""
    from csforecast.tracking import runs as tracking_ext
    from csforecast.tracking import store

    tell = progress or (lambda _m: None)
    t0 = time.time()
    if spec.family == "forecast":
        return _run_forecast(spec, source, spec_text=spec_text, tell=tell, t0=t0)
    adapter = ADAPTERS[spec.family]
    tell("building point-in-time snapshots (shared by every variant)")
    ctx = TrainingContext.build(source, spec.as_of, spec.validation_months)
    _ = ctx.snapshots
    val = adapter.validation(ctx)
    if val.rows.empty:
        raise ExperimentError(f"no validation rows after {ctx.validation_start}: nothing to compare")
    slugs = _usage_slugs(source)
    metric_keys = spec.metric_keys
    hib = {m: FAMILY_METRICS[spec.family][m] for m in metric_keys}
    fp = _rows_fingerprint(val.rows)
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
            est = res.pop("_estimator", None)
            results[v.name] = res
            tracking_ext.set_tags(res["run_id"], {"experiment": spec.name, "variant": v.name,
                                                  "experiment_parent_run_id": parent_id,
                                                  "variant_spec": v.model_dump_json(exclude_defaults=True),
                                                  "baseline": str(v.name == spec.baseline).lower()})
            try:
                preds[v.name] = adapter.predictions(est, val, res)
            except Exception as e:  # noqa: BLE001
                results[v.name]["prediction_error"] = f"{type(e).__name__}: {e}"[:300]
        tell(f"bootstrap ({spec.bootstrap} account-clustered resamples)")
        fns = {m: f for m, f in adapter.metric_fns().items() if m in metric_keys}
        cis = bootstrap_deltas(val, preds, spec.baseline, fns, spec.bootstrap, spec.seed)
        report = _report(spec, parent_id, results, cis, metric_keys, hib, ctx, source, fp)
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


def _report(spec, parent_id, results, cis, metric_keys, hib, ctx, source, fp) -> dict:
    base = results.get(spec.baseline) or {}
    base_m = base.get("metrics") or {}
    variants = []
    for v in spec.variants:
        res = results.get(v.name) or {}
        m = res.get("metrics")
        item = {"name": v.name, "run_id": res.get("run_id"), "description": v.description,
                "baseline": v.name == spec.baseline,
                "settings": json.loads(v.model_dump_json(exclude_defaults=True, exclude={"name", "description"})),
                "metrics": m, "delta": {}, "ci": {}}
        if res.get("error"):
            item["error"] = res["error"]
        if res.get("oracle") is not None:
            item["oracle"] = res["oracle"]
        if res.get("detail"):
            item["detail"] = {k: res["detail"][k] for k in ("chosen", "n_train", "n_valid", "used_components",
                                                             "flagged", "covariates") if k in res["detail"]}
        for k in metric_keys:
            a, b = (m or {}).get(k), base_m.get(k)
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
                item["delta"][k] = _r(a - b)
            else:
                item["delta"][k] = None
            item["ci"][k] = [0.0, 0.0] if v.name == spec.baseline and item["delta"][k] is not None else \
                (cis.get(v.name, {}).get(k) or [None, None])
        variants.append(item)
    return {"experiment": spec.name, "parent_run_id": parent_id, "family": spec.family,
            "baseline": spec.baseline, "description": spec.description, "data": source.location,
            "data_hash": ctx.data_hash, "as_of": str(ctx.as_of), "validation_start": str(ctx.validation_start),
            "validation_rows": fp["n"], "validation_accounts": fp["n_accounts"],
            "bootstrap": {"resamples": spec.bootstrap, "cluster": "account_id", "level": CI_LEVEL,
                          "interval": "percentile, paired (same resampled rows for every variant)"},
            "metric_keys": metric_keys, "higher_is_better": hib, "variants": variants}


def comparison_markdown(report: dict) -> str:
    keys = report["metric_keys"]
    lines = [f"# Experiment {report['experiment']} ({report['family']})", "",
             f"Baseline **{report['baseline']}**; validation: {report['validation_rows']} rows of "
             f"{report['validation_accounts']} accounts from {report['validation_start']} to {report['as_of']}; "
             f"95 % CIs of the difference from {report['bootstrap']['resamples']} account-clustered bootstrap "
             "resamples.", "", "| variant | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for v in report["variants"]:
        cells = []
        for k in keys:
            cells.append(format_cell(v, k, plain=True))
        lines.append(f"| {v['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_cell(v: dict, k: str, plain: bool = False) -> str:
    if v.get("error"):
        return "failed"
    val = (v.get("metrics") or {}).get(k)
    if val is None or isinstance(val, (dict, list)):
        return "–"
    s = f"{val:.4f}" if isinstance(val, float) else str(val)
    if v.get("baseline"):
        return s + (" (baseline)" if plain else "")
    d, ci = v["delta"].get(k), v["ci"].get(k) or [None, None]
    if d is None:
        return s
    sep = " " if plain else "\n"
    s += f"{sep}Δ {d:+.4f}"
    if ci[0] is not None:
        s += f"{sep}[{ci[0]:+.4f}, {ci[1]:+.4f}]"
    return s


# ------------------------------------------------------------------------------------------------
# forecast family: one back-test, one child run per method
# ------------------------------------------------------------------------------------------------
FORECAST_KEYS = ("wape", "wape_overall", "bias", "coverage_p10_p90", "grr_mae", "nrr_mae")


def _run_forecast(spec: ExperimentSpec, source: Source, *, spec_text, tell, t0) -> dict:
    from csforecast.tracking import store

    try:
        from csforecast.forecast.backtest import fan_chart, run_backtest
    except ImportError as e:
        raise ExperimentError(f"the forecast family needs csforecast.forecast.backtest.run_backtest, which is not "
                              f"in this build ({e})") from e
    import matplotlib.pyplot as plt

    from csforecast.tracking import runs as tracking_ext

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
                          seed=spec.seed or None, progress=tell, snapshots=snaps)
        store.log_dict(bt, "backtest.json")
        fig = fan_chart(bt)
        store.log_figure(fig, "fan_chart.png")
        plt.close(fig)
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
        report = _report(spec, parent_id, results, cis, metric_keys, hib, ctx, source, fp)
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

    def wape(df):
        a = df["actual_renewed_arr"].to_numpy(float)
        f = df["forecast_renewed_arr"].to_numpy(float)
        return float(np.abs(f - a).sum() / np.abs(a).sum()) if np.abs(a).sum() > 0 else float("nan")

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
            d.append(wape(mine) - wape(theirs))
        d = np.asarray(d)
        d = d[np.isfinite(d)]
        a = (1 - CI_LEVEL) / 2
        out[name] = {"wape": [_r(np.quantile(d, a)), _r(np.quantile(d, 1 - a))] if len(d) >= 20 else [None, None]}
    return out


# ------------------------------------------------------------------------------------------------
# promote
# ------------------------------------------------------------------------------------------------
def promotion_info(run_id: str) -> dict:
    """What promoting `run_id` needs: family, as_of, validation months, data hash and the data location
    recorded by its experiment's parent run (None when the run is not part of an experiment)."""
    from mlflow.exceptions import MlflowException

    from csforecast.tracking import runs as tracking_ext

    try:
        run = tracking_ext.get_run(run_id)
    except MlflowException as e:
        raise PromoteError(f"no MLflow run {run_id}: {e}") from e
    tags, params = run.data.tags, run.data.params
    family = tags.get("family")
    if family == "forecast":
        raise PromoteError("forecast variants are back-test methods, not models: nothing to register")
    if family not in ADAPTERS:
        raise PromoteError(f"run {run_id} is not a model run of a known family (family tag {family!r})")
    if tags.get("kind") == "experiment":
        raise PromoteError(f"run {run_id} is an experiment's parent run; promote one of its variants (child runs)")
    as_of = params.get("as_of") or tags.get("as_of")
    vs = params.get("validation_start")
    if not as_of or not vs:
        raise PromoteError(f"run {run_id} has no as_of / validation_start params")
    a, v = pd.Timestamp(as_of), pd.Timestamp(vs)
    months = (a.year - v.year) * 12 + a.month - v.month
    parent_id = tags.get(tracking_ext.PARENT_TAG) or tags.get("experiment_parent_run_id")
    data = None
    if parent_id:
        try:
            pr = tracking_ext.get_run(parent_id)
            data = pr.data.params.get("data")
        except MlflowException:
            parent_id = None
    return {"run_id": run_id, "family": family, "as_of": a.date(), "validation_start": v.date(),
            "validation_months": months, "data_hash": tags.get("data_hash") or params.get("data_hash"),
            "parent_run_id": parent_id, "data": data, "experiment": tags.get("experiment"),
            "variant": tags.get("variant")}


@single_blas_thread
def promote(run_id: str, source: Source, info: dict | None = None, *, progress: Progress | None = None) -> dict:
    """Register the run's logged model; `champion` moves to it only if it beats the current champion on the
    run's validation rows (rebuilt from `source` at the run's as_of)."""
    from csforecast.tracking import runs as tracking_ext
    from csforecast.tracking import store

    tell = progress or (lambda _m: None)
    info = info or promotion_info(run_id)
    family = info["family"]
    if info["data_hash"] and source.data_hash != info["data_hash"]:
        raise PromoteError(f"the data at {source.location} (hash {source.data_hash}) are not the data run {run_id} "
                           f"was trained on (hash {info['data_hash']}): its validation rows cannot be rebuilt")
    existing = [mv for mv in store.model_versions(family) if mv["run_id"] == run_id]
    if existing:
        mv = existing[0]
        raise PromoteError(f"run {run_id} is already registered as {store.model_name(family)} version "
                           f"{mv['version']} (aliases: {', '.join(mv['aliases']) or 'none'})")
    adapter = ADAPTERS[family]
    tell("rebuilding the run's validation rows")
    ctx = TrainingContext.build(source, info["as_of"], info["validation_months"])
    if str(ctx.validation_start) != str(info["validation_start"]):
        raise PromoteError(f"rebuilt validation start {ctx.validation_start} differs from the run's "
                           f"{info['validation_start']}")
    val = adapter.validation(ctx)
    fp = _rows_fingerprint(val.rows)
    if info.get("parent_run_id"):
        try:
            stored = tracking_ext.load_run_json(info["parent_run_id"], "validation_rows.json")
            if stored.get("hash") != fp["hash"]:
                raise PromoteError("the rebuilt validation rows differ from the ones the experiment compared "
                                   f"({fp['n']} vs {stored.get('n')} rows)")
        except PromoteError:
            raise
        except Exception:  # noqa: BLE001 - older parents without the artifact: the hash check above suffices
            pass
    uri = tracking_ext.logged_model_uri(run_id)
    tell("evaluating the variant and the champion")
    try:
        est = store.load_estimator(uri)
    except Exception as e:  # noqa: BLE001
        raise PromoteError(f"run {run_id} has no loadable model at {uri}: {e}") from e
    mine = adapter.guard_score(est, val)
    scores = {"candidate": _r(mine), "champion": None, "metric": adapter.guard_metric,
              "higher_is_better": adapter.higher_is_better, "validation_rows": fp["n"]}

    def beats(champion) -> tuple[bool, str]:
        theirs = adapter.guard_score(champion, val)
        scores["champion"] = _r(theirs)
        return adapter.better(mine, theirs), (f"validation {adapter.guard_metric} {mine:.5f} vs champion "
                                              f"{theirs:.5f} on {fp['n']} rows (promoted from experiment run)")

    reg = store.register_with_guard(family, uri, run_id, beats)
    return {"run_id": run_id, "family": family, "experiment": info.get("experiment"), "variant": info.get("variant"),
            "model_uri": uri, "version": reg.version, "alias": reg.alias, "promoted": reg.alias == store.CHAMPION,
            "guard": reg.guard, "scores": scores, "as_of": str(info["as_of"]),
            "validation_start": str(ctx.validation_start)}

