"""Health family: fit HealthScoreModel on renewal-decision snapshots, validate it on later decisions against an
equal-weight scorecard, textbook bands and the oracle, log a validation report to MLflow and register it under
the promotion guard (``pipelines.champion``: a score that ranks churn worse than the equal-weight or textbook
scorecard is refused). docs/health.md describes every number. A small book (``TrainingContext.book_size``)
gets the equal-weight scorecard of the components it can measure (``weighting="equal"``), tagged ``fallback``
(docs/operations.md). Serving the score (components, triggers, weekly history, change explanations) is
``csforecast.scoring.health``."""
from __future__ import annotations

import json
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.base import clone  # noqa: E402

from csforecast.config import get_settings  # noqa: E402
from csforecast.data.contract import health_sources  # noqa: E402
from csforecast.errors import TrainingDataError  # noqa: E402
from csforecast.jsonsafe import finite_float  # noqa: E402
from csforecast.metrics.calibration import rank_auc  # noqa: E402
from csforecast.metrics.paired import auc_of  # noqa: E402
from csforecast.metrics.resampling import cluster_resamples, percentile_ci  # noqa: E402
from csforecast.models.health import (COMPONENTS, HealthScoreModel, band_of, textbook_bands,  # noqa: E402
                                      textbook_score)
from csforecast.pipelines.champion import Comparison, GuardMetric, GuardScore, log_and_register  # noqa: E402
from csforecast.pipelines.context import TrainingContext  # noqa: E402
from csforecast.pipelines.result import TrainingResult, ValidationSet  # noqa: E402
from csforecast.scoring import families  # noqa: E402
from csforecast.scoring.health import band_cutoffs  # noqa: E402
from csforecast.scoring.scorecard import SCORECARD_ARTIFACT, reference_frame  # noqa: E402
from csforecast.tracking import store  # noqa: E402

FAMILY = "health"
COMPONENT_KEYS = ("coef", "se", "p_value", "ci_low", "ci_high", "lr_p_value", "flagged")
BOOTSTRAP_RESAMPLES = 300  # account-clustered resamples behind the validation CIs


# --- evaluation helpers ----------------------------------------------------------------------------------

def health_auc(y, score) -> float:
    """AUC of a health score for churn: AUC of (100 - score); NaN when only one class is present."""
    return rank_auc(np.asarray(y, dtype=int), 100.0 - np.asarray(score, dtype=float))


def validation_set(ctx: TrainingContext) -> ValidationSet:
    """The renewal-decision snapshots due on or after ``validation_start``, ``y`` = churned at that renewal."""
    return ValidationSet.of_decisions(ctx.split(ctx.decision_rows())[1])


EQUAL_WEIGHT_BASELINE = "equal-weight scorecard"


def guard_metric(validation: ValidationSet) -> GuardMetric:
    """The guard metric on the validation rows: the AUC of a health score (0-100, higher = healthier) for churn
    (higher is better), per resample too."""
    y = validation.outcomes["y"]

    def outputs(estimator) -> np.ndarray:
        return np.asarray(estimator.predict(validation.rows[list(estimator.feature_names_in_)]), dtype=float)

    return GuardMetric(outputs, lambda s: health_auc(y, s), lambda s: auc_of(y, 100.0 - np.asarray(s, dtype=float)))


def guard_score(estimator, validation: ValidationSet) -> float:
    """The guard metric: the validation AUC of the health score for churn (higher is better)."""
    m = guard_metric(validation)
    return m.exact(m.outputs(estimator))


def comparison(ctx: TrainingContext, estimator, validation: ValidationSet, extra_tags: dict | None = None
               ) -> Comparison:
    """The candidate's case to the promotion guard: its AUC on ``validation``, beside the equal-weight scorecard
    of the same measures and the textbook scorecard on the same rows (the baselines it must not lose to)."""
    family = families.get(FAMILY)
    m = guard_metric(validation)
    out = m.outputs(estimator)
    rows = validation.rows
    base = {EQUAL_WEIGHT_BASELINE: np.asarray(estimator.equal_weight_score(rows), dtype=float),
            "textbook scorecard": np.asarray(textbook_score(rows), dtype=float)}
    return Comparison(GuardScore.of(family, m.exact(out), len(out)), m, out, base, validation.clusters,
                      family.guard_label, ctx.profile, getattr(estimator, "fallback_", None),
                      {**ctx.version_tags(), **(extra_tags or {})})


def dropped_components(source, estimator) -> dict[str, str]:
    """Why each health component is missing from the score or scored from fewer inputs, in words: the
    optional tables it takes inputs from that the source lacks (``data.contract``'s list, the one ``validate``
    reads), or no column for it at all."""
    feeds = health_sources()
    out = {}
    for c in COMPONENTS:
        tables = feeds.get(c, ())
        missing = [t for t in tables if not source.has(t)]
        if c not in estimator.components_:
            out[c] = (f"dropped: no data ({', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing or "
                      "empty)" if missing else "dropped: no column for it in the data")
        elif missing:
            rest = [t for t in tables if t not in missing]
            out[c] = (f"scored without {', '.join(missing)} (missing or empty), from {', '.join(rest)} only")
    return out


def decile_table(y, score, contract_id=None, q: int = 10, true_health=None) -> pd.DataFrame:
    """Churn rate by score decile (decile 1 = lowest score = least healthy). Tied scores stay in one bin, so a
    coarse score (the textbook bands) gets fewer than 10 bins. With `true_health` (the simulator's latent
    health, evaluation only) each bin also gets its mean true health."""
    s = pd.Series(np.asarray(score, dtype=float))
    df = pd.DataFrame({"bin": decile_bins(s, q), "y": np.asarray(y, dtype=float), "s": s.to_numpy()})
    if contract_id is not None:
        df["c"] = np.asarray(contract_id)
    g = df.groupby("bin")
    out = pd.DataFrame({"decile": np.arange(1, g.ngroups + 1), "n": g.size().to_numpy(),
                        "churn_rate": g["y"].mean().to_numpy(), "score_min": g["s"].min().to_numpy(),
                        "score_max": g["s"].max().to_numpy(), "score_mean": g["s"].mean().to_numpy()})
    if contract_id is not None:
        out.insert(2, "n_renewals", g["c"].nunique().to_numpy())
    if true_health is not None:
        df["h"] = np.asarray(true_health, dtype=float)
        out["true_health_mean"] = df.groupby("bin")["h"].mean().to_numpy()
    return out


def decile_bins(score, q: int = 10) -> np.ndarray:
    """Bin code 0..q-1 of every row by score quantile (0 = lowest score); tied scores share a bin."""
    return pd.qcut(pd.Series(np.asarray(score, dtype=float)), q, labels=False, duplicates="drop").to_numpy()


def validation_uncertainty(y, scores: Mapping[str, np.ndarray], clusters, n_boot: int = BOOTSTRAP_RESAMPLES,
                           seed: int = 0, level: float = 0.95) -> dict:
    """Account-clustered bootstrap of the validation comparison (every resample draws accounts with
    replacement and keeps all their rows, for every score at once, so the comparisons are paired):

    - `auc_ci`: percentile CI of each score's AUC;
    - `auc_gain_ci` / `p_gain_not_positive`: CI of AUC(ours) - AUC(other) and the share of resamples where
      it is <= 0, for every other score;
    - `decile_not_falling_share`: for each adjacent pair of deciles of `scores["ours"]` (bins fixed on the full
      validation set), the share of resamples in which churn does not fall from decile k to k+1. A share
      near 0.5 means the observed order of those two deciles is a coin toss at this sample size;
    - `decile_churn_ci`: percentile CI of each of those deciles' churn rate.
    """
    y = np.asarray(y, dtype=float)
    risk = {k: -np.asarray(v, dtype=float) for k, v in scores.items()}
    bins = decile_bins(scores["ours"])
    nb = int(np.nanmax(bins)) + 1
    aucs = {k: [] for k in scores}
    not_falling, rates = [], []
    for idx in cluster_resamples(clusters, n_boot, seed):
        yi = y[idx]
        for k in scores:
            aucs[k].append(rank_auc(yi, risk[k][idx]))
        n = np.bincount(bins[idx], minlength=nb)
        rate = np.bincount(bins[idx], weights=yi, minlength=nb) / np.maximum(n, 1)
        not_falling.append(np.diff(rate) >= 0)
        rates.append(np.where(n > 0, rate, np.nan))
    aucs = {k: np.asarray(v) for k, v in aucs.items()}
    others = [k for k in scores if k != "ours"]
    return {"resamples": int(n_boot), "cluster": "account_id", "level": level,
            "auc_ci": {k: [_r(x) for x in percentile_ci(v, level)] for k, v in aucs.items()},
            "auc_gain_ci": {k: [_r(x) for x in percentile_ci(aucs["ours"] - aucs[k], level)] for k in others},
            "p_gain_not_positive": {k: _r(float(np.mean(aucs["ours"] - aucs[k] <= 0))) for k in others},
            "decile_not_falling_share": [_r(x, 3) for x in np.mean(not_falling, axis=0)],
            "decile_churn_ci": [[_r(x, 4) for x in percentile_ci(col, level)] for col in np.asarray(rates).T]}


def strictly_falling(rates) -> bool:
    r = np.asarray(rates, dtype=float)
    return bool(len(r) >= 2 and np.all(np.diff(r) < 0))


def auc_by_period(y, scores: Mapping[str, np.ndarray], when, contract_id, freq: str = "Q") -> list[dict]:
    """Validation AUC of every score within each calendar period of the renewal date (quarters by default): does
    the comparison hold throughout the validation window, or only on average?"""
    period = pd.PeriodIndex(pd.to_datetime(np.asarray(when)), freq=freq)
    y = np.asarray(y, dtype=int)
    cid = np.asarray(contract_id)
    out = []
    for p in sorted(set(period)):
        k = np.asarray(period == p)
        row = {"period": str(p), "n": int(k.sum()), "n_renewals": int(len(np.unique(cid[k]))),
               "churn_rate": _r(y[k].mean())}
        row.update({name: _r(health_auc(y[k], np.asarray(sc)[k])) for name, sc in scores.items()})
        out.append(row)
    return out


def band_table(y, bands) -> dict:
    df = pd.DataFrame({"band": np.asarray(bands, dtype=object), "y": np.asarray(y, dtype=float)})
    out = {}
    for b in ("red", "yellow", "green"):
        k = df["band"] == b
        out[b] = {"n": int(k.sum()), "share": float(k.mean()) if len(df) else None,
                  "churn_rate": float(df.loc[k, "y"].mean()) if k.any() else None}
    return out


def scorecard_detail(est, valid: pd.DataFrame, y, scores: Mapping[str, np.ndarray], cuts3, settings) -> dict:
    """The scorecard people can own (issue 17, docs/health.md): the configured weight set (``[scorecard]
    weights``) scored beside the learned and equal weights on the same validation rows (AUC, top-decile lift,
    churn by three and five bands), and the Outcomes / Experience 2x2 with the churn rate of each cell."""
    from csforecast.models.scorecard import pillar_scores, quadrant, weight_set_report, weight_set_score

    sc = settings.scorecard
    C = est.component_scores(valid)
    sets = dict(scores)
    configured = {"weights": dict(sc.weights), "missing_components": [], "error": None}
    if sc.weights:
        try:
            sets["configured"], configured["missing_components"] = weight_set_score(C, sc.weights)
        except ValueError as e:     # a bad weight set is reported beside the others, never fails training
            configured["error"] = str(e)
    pil = pillar_scores(C)
    q = quadrant(pil["outcomes"], pil["experience"], sc.quadrant_cut)
    yy = np.asarray(y, dtype=float)
    return {"weight_sets": weight_set_report(y, sets, cuts3, sc.five_bands), "configured": configured,
            "five_band_cutoffs": list(sc.five_bands), "quadrant_cut": sc.quadrant_cut,
            "pillars": {p.lower(): [c for c in est.components_ if COMPONENTS[c][1] == p]
                        for p in ("Outcomes", "Experience")},
            "quadrants": {k: {"n": int((q == k).sum()), "churn_rate": float(yy[q == k].mean()) if (q == k).any()
                              else None} for k in ("healthy", "false_positive", "quiet_value", "at_risk", "unknown")}}


def _r(x, nd=6):
    return finite_float(x, digits=nd)


# --- training --------------------------------------------------------------------------------------------

def train_health(ctx: TrainingContext, params: dict | None = None, register: bool = True,
                 run_name: str | None = None, nested: bool = False,
                 components: list[str] | None = None) -> TrainingResult:
    """Fit on decisions due before ``validation_start``; validate on the later ones against the equal-weight
    scorecard, the textbook bands and (``ctx.oracle``) the simulator's latent health; log the run and its
    validation report and register it under the guard (``register=False``: log only)."""
    family = families.get(FAMILY)
    settings = get_settings()
    rows = ctx.decision_rows()
    train, valid = ctx.split(rows)
    if train["label_churn"].nunique() < 2 or valid["label_churn"].nunique() < 2:
        raise TrainingDataError("not enough renewal outcomes on both sides of the time split to fit the health "
                                f"score (training: {int(train['label_churn'].sum())} churns in {len(train)} rows; "
                                f"validation: {int(valid['label_churn'].sum())} in {len(valid)})")
    val = ValidationSet.of_decisions(valid)
    params = dict(params or {})
    weighting_given = "weighting" in params
    size = ctx.book_size()
    choice = {**size.to_json(), "reason": size.describe(), "chosen": "learned weights", "fallback": None}
    if size.small and "weighting" not in params:
        params["weighting"] = "equal"
    ytr = train["label_churn"].astype(int).to_numpy()
    est = HealthScoreModel(components=components, **params)
    try:
        est.fit(train, ytr, groups=train["account_id"].to_numpy())
    except ValueError as e:
        if "none of the health components" in str(e):
            raise TrainingDataError("no health component can be measured: the source has none of the tables "
                                    "health reads (usage, tickets, surveys, touches, stakeholder_events)") from e
        if est.weighting == "equal":
            raise
        params["weighting"] = "equal"
        choice["reason"] += f"; the learned weights could not be estimated: {e}"
        est = HealthScoreModel(components=components, **params).fit(train, ytr, groups=train["account_id"].to_numpy())
    if est.weighting != "equal" and not weighting_given:
        # learned weights that rank churn worse than equal weights of the same measures would be refused by the
        # guard and leave the family without a score: serve the equal-weight scorecard instead (the same paired
        # comparison the guard makes, on the same validation rows; docs/health.md, "When equal weights win")
        probe = comparison(ctx, est, val)
        gain = ctx.policy.gain(probe, probe.baselines[EQUAL_WEIGHT_BASELINE])
        if gain.worse:
            params["weighting"] = "equal"
            choice["reason"] += (f"; the learned weights ranked churn worse than equal weights on validation "
                                 f"(AUC gain {gain.gain:+.4f}, {gain.level:.0%} interval [{gain.low:+.4f}, "
                                 f"{gain.high:+.4f}])")
            est = HealthScoreModel(components=components, **params).fit(train, ytr,
                                                                        groups=train["account_id"].to_numpy())
    if est.weighting == "equal":
        choice.update(chosen="equal-weight scorecard", fallback=est.fallback_)
    y = valid["label_churn"].astype(int).to_numpy()
    score = est.predict(valid)
    ew = est.equal_weight_score(valid)
    tb = textbook_score(valid)
    auc, auc_ew, auc_tb = health_auc(y, score), health_auc(y, ew), health_auc(y, tb)

    ablation = {}
    for c in est.components_:
        rest = [k for k in est.components_ if k != c]
        if not rest:
            continue
        m = clone(est).set_params(components=rest).fit(train, ytr, groups=train["account_id"].to_numpy())
        ablation[c] = _r(health_auc(y, m.predict(valid)))

    cid = valid["contract_id"].to_numpy()
    true_h = ctx.oracle.latent_health(valid) if ctx.oracle is not None else None
    deciles = {"ours": decile_table(y, score, cid, true_health=true_h),
               "equal_weight": decile_table(y, ew, cid, true_health=true_h),
               "textbook": decile_table(y, tb, cid, true_health=true_h)}
    monotone = strictly_falling(deciles["ours"]["churn_rate"]) and len(deciles["ours"]) == 10
    unc = validation_uncertainty(y, {"ours": score, "equal_weight": ew, "textbook": tb},
                                 valid["account_id"].to_numpy())
    red, yellow = band_cutoffs(est, settings)
    bands = {"ours": band_table(y, band_of(score, red, yellow)),
             "equal_weight": band_table(y, band_of(ew, red, yellow)),
             "textbook": band_table(y, band_of(tb, 40.0, 70.0))}

    comp_report = est.report_["components"]
    dropped = dropped_components(ctx.source, est)
    metrics = {"auc": _r(auc), "auc_equal_weight": _r(auc_ew), "auc_textbook": _r(auc_tb),
               "decile_churn_monotone": bool(monotone), "ablation_auc": ablation,
               "auc_ci": unc["auc_ci"]["ours"], "auc_gain_ci": unc["auc_gain_ci"],
               "components": {c: {k: (_r(v[k]) if k != "flagged" else bool(v[k])) for k in COMPONENT_KEYS}
                              for c, v in comp_report.items()}}
    oracle = None
    if true_h is not None:
        h = true_h
        ok = ~np.isnan(h)
        if ok.any() and len(np.unique(y[ok])) == 2:
            oracle = {"auc": _r(rank_auc(y[ok], -h[ok])), "n": int(ok.sum()),
                      "auc_ours_same_rows": _r(health_auc(y[ok], score[ok])),
                      "true_health_rises_across_our_deciles": strictly_falling(
                          -deciles["ours"]["true_health_mean"].to_numpy())}
    tb_share = textbook_bands(valid).apply(lambda s: s.value_counts(normalize=True).round(4).to_dict())
    detail = {
        "deciles": {k: v.round(6).to_dict(orient="records") for k, v in deciles.items()},
        "band_churn": bands, "band_cutoffs": {"red": red, "yellow": yellow, "mode": settings.health_bands.mode},
        "flagged": list(est.flagged_),
        "flag_reasons": {c: comp_report[c]["flag_reason"] for c in est.flagged_},
        "used_components": list(est.used_components_),
        "skipped_components": {c: why for c, why in dropped.items() if c in est.skipped_},
        "dropped_components": dropped, "model_choice": choice, "weighting": est.weighting,
        "component_inference": {c: {k: _r(v) if not isinstance(v, str) else v for k, v in r.items()}
                                for c, r in comp_report.items()},
        "final_model": {"intercept": _r(est.intercept_),
                        "components": {c: {k: _r(est.final_report_["components"][c][k])
                                           for k in ("coef", "se", "p_value", "ci_low", "ci_high")}
                                       for c in est.used_components_}},
        "coef_unit": "log-odds of churn at renewal per 10 component points (cluster-robust by account)",
        "score_map": "health = 100 * sigmoid(-(eta - eta_ref)), eta_ref = eta at the training-mean components",
        "eta_ref": _r(est.eta_ref_), "component_means": dict(zip(est.components_, map(_r, est.means_))),
        "auc_gain_vs_equal_weight": _r(auc - auc_ew), "auc_gain_vs_textbook": _r(auc - auc_tb),
        "bootstrap": unc,
        "auc_by_quarter": auc_by_period(y, {"auc": score, "auc_equal_weight": ew, "auc_textbook": tb},
                                        valid["renewal_date"], cid),
        "measure_weights": {k: {"component": v["component"], "weight": _r(v["weight"]),
                                "coef_per_10": _r(v["coef_per_10"]), "dropped": v["dropped"]}
                            for k, v in est.measure_report_.items()},
        "u_shape_optimum": {k: _r(v["r_star"]) for k, v in est.transforms_.items() if "r_star" in v},
        "segment_benchmark_utilisation": est.segment_benchmark_,
        "textbook_band_shares": {k: v for k, v in tb_share.items()},
        "scorecard": scorecard_detail(est, valid, y, {"learned" if est.weighting != "equal" else "model": score,
                                                      "equal_weight": ew}, (red, yellow), settings),
        "n_train": int(len(train)), "n_valid": int(len(valid)),
        "n_renewals_valid": int(valid["contract_id"].nunique()),
        "n_clusters_train": est.report_["n_clusters"],
        "validation_start": str(ctx.validation_start), "as_of": str(ctx.as_of),
    }
    result = {"metrics": metrics, "oracle": oracle, "detail": detail}
    case = comparison(ctx, est, val, {"dropped_components": json.dumps(dropped)} if dropped else None)

    tags = {**ctx.run_tags(), **({"fallback": est.fallback_} if est.fallback_ else {})}
    with store.start_run(FAMILY, run_name=run_name, nested=nested, tags=tags) as run:
        store.log_params({**ctx.run_params(),
                          "components": ",".join(est.components_), "used_components": ",".join(est.used_components_),
                          "drop_flagged": est.drop_flagged, "alpha": est.alpha, "weighting": est.weighting,
                          "band_mode": settings.health_bands.mode, "band_red": red, "band_yellow": yellow,
                          **{f"param_{k}": v for k, v in params.items()}})
        flat = {"auc": auc, "auc_equal_weight": auc_ew, "auc_textbook": auc_tb,
                "decile_churn_monotone": float(monotone)}
        flat.update({f"ablation_auc_{c}": v for c, v in ablation.items()})
        for k, (lo, hi) in unc["auc_gain_ci"].items():
            flat.update({f"auc_gain_vs_{k}_ci_low": lo, f"auc_gain_vs_{k}_ci_high": hi})
        for c, v in metrics["components"].items():
            flat.update({f"{c}_{k}": (float(v[k]) if v[k] is not None else None) for k in COMPONENT_KEYS})
        store.log_metrics(flat)
        if oracle:
            store.log_metrics({"auc": oracle["auc"]}, prefix="oracle_")
        store.log_dict(result, "evaluation.json")
        store.log_dict(ctx.profile, "data_profile.json")
        store.log_text(validation_report(result), "health_report.md")
        # the validation rows the server scores any weight set on (scoring/scorecard.py): serving never imports this
        store.log_table(reference_frame(est.component_scores(valid), y, score, ew), SCORECARD_ARTIFACT)
        fig = _decile_plot(deciles, unc.get("decile_churn_ci"))
        store.log_figure(fig, "decile_churn.png")
        plt.close(fig)
        reg = log_and_register(family, est, valid[list(est.feature_names_in_)].head(20), run.info.run_id, case,
                               policy=ctx.policy, register=register)
    return TrainingResult(FAMILY, metrics, oracle, detail, est, val, case.guard, reg, fallback=est.fallback_)


def _decile_plot(deciles: dict, ours_ci=None):
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, style in (("ours", "o-"), ("equal_weight", "s--"), ("textbook", "^:")):
        t = deciles[name]
        x = (t["decile"] - 0.5) * 10 / len(t) + 0.5 if len(t) != 10 else t["decile"]
        ax.plot(x, 100 * t["churn_rate"], style, label=name.replace("_", " "))
        if name == "ours" and ours_ci and len(ours_ci) == len(t) and all(None not in c for c in ours_ci):
            lo, hi = (100 * np.array([c[i] for c in ours_ci]) for i in (0, 1))
            ax.fill_between(x, lo, hi, alpha=0.15, color=ax.lines[-1].get_color(),
                            label="ours: 95 % bootstrap interval")
    ax.set_xlabel("score decile on validation rows (1 = least healthy)")
    ax.set_ylabel("observed churn at renewal (%)")
    ax.set_title("Churn rate by health-score decile")
    ax.set_xticks(range(1, 11))
    ax.legend()
    fig.tight_layout()
    return fig


def scorecard_lines(sc: dict | None, f) -> list[str]:
    """The report's "scorecard people can own" section: each weight set's AUC, lift and churn by five bands,
    and the Outcomes / Experience 2x2 (issue 17)."""
    if not sc:
        return []
    cuts = ", ".join(f"{c:g}" for c in sc["five_band_cutoffs"])
    lines = ["", "## Weight sets on the same validation rows (the scorecard people can own)", "",
             f"Five bands cut at {cuts}: critical, poor, fair, good, excellent (churn rate, rows).", "",
             "| weight set | AUC | top-decile lift | critical | poor | fair | good | excellent |", "|---|---|---|---|---|---|---|---|"]
    for name, r in sc["weight_sets"].items():
        cells = [f"{f(v['churn_rate'])} ({v['n']})" for v in r["bands5"].values()]
        lines.append(f"| {name} | {f(r['auc'])} | {f(r['top_decile_lift'], 2)} | " + " | ".join(cells) + " |")
    conf = sc["configured"]
    if not conf["weights"]:
        lines += ["", "No weight set of your own: set `[scorecard] weights` in csforecast.toml to see it scored here."]
    elif conf["error"]:
        lines += ["", f"Your weight set could not be scored: {conf['error']}."]
    elif conf["missing_components"]:
        lines += ["", f"Your weight set names components this model does not score: "
                      f"{', '.join(conf['missing_components'])} (skipped)."]
    lines += ["", f"Outcomes ({', '.join(sc['pillars']['outcomes']) or 'none'}) and Experience "
                  f"({', '.join(sc['pillars']['experience']) or 'none'}) sub-scores split at {sc['quadrant_cut']:g}; "
                  "value/ROI and sentiment are skipped when the data has no column for them.", "",
              "| cell | rows | churn rate |", "|---|---|---|"]
    for k, v in sc["quadrants"].items():
        if v["n"]:
            lines.append(f"| {k.replace('_', ' ')} | {v['n']} | {f(v['churn_rate'])} |")
    return lines


def validation_report(result: dict) -> str:
    """The Markdown validation report (also logged to MLflow as health_report.md)."""
    m, d, o = result["metrics"], result["detail"], result.get("oracle")

    def f(x, nd=3):
        return "–" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))

    lines = ["# Health score validation report", "",
             f"Trained on {d['n_train']} decision snapshots (renewals before {d['validation_start']}), validated on "
             f"{d['n_valid']} snapshots of {d['n_renewals_valid']} later renewals (as of {d['as_of']}).", "",
             "| score | validation AUC | 95 % CI | learned score's gain (95 % CI) |", "|---|---|---|---|"]
    bs = d.get("bootstrap") or {}
    ci, gain = bs.get("auc_ci", {}), bs.get("auc_gain_ci", {})

    def interval(v):
        return "–" if not v or v[0] is None else f"[{f(v[0])}, {f(v[1])}]"

    for key, label, a in (("ours", "learned health score", m["auc"]),
                          ("equal_weight", "equal-weight scorecard", m["auc_equal_weight"]),
                          ("textbook", "textbook bands", m["auc_textbook"])):
        g = "" if key == "ours" or a is None or m["auc"] is None else f"{m['auc'] - a:+.3f} {interval(gain.get(key))}"
        lines.append(f"| {label} | {f(a)} | {interval(ci.get(key))} | {g} |")
    if o:
        lines.append(f"| oracle: true latent health | {f(o['auc'])} | | |")
    if bs:
        lines += ["", f"CIs: {bs['resamples']} bootstrap resamples of accounts (all their rows), paired across the "
                      "scores. Share of resamples where the learned score does not beat the other: " +
                  ", ".join(f"{k.replace('_', ' ')} {f(v)}" for k, v in bs["p_gain_not_positive"].items()) + "."]
    if d.get("auc_by_quarter"):
        lines += ["", "By quarter of the renewal date:", "",
                  "| quarter | rows | renewals | churn rate | learned | equal-weight | textbook |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {q['period']} | {q['n']} | {q['n_renewals']} | {f(q['churn_rate'])} | {f(q['auc'])} | "
                  f"{f(q['auc_equal_weight'])} | {f(q['auc_textbook'])} |" for q in d["auc_by_quarter"]]
    lines += ["", f"Churn falls strictly across the deciles of the learned score: **{m['decile_churn_monotone']}**.",
              "", f"## Components ({d['coef_unit']})", "",
              "| component | coef | SE | 95 % CI | p | drop-one LR p | flagged | AUC without it |",
              "|---|---|---|---|---|---|---|---|"]
    for c, r in m["components"].items():
        lines.append(f"| {c} | {f(r['coef'])} | {f(r['se'])} | [{f(r['ci_low'])}, {f(r['ci_high'])}] | "
                     f"{f(r['p_value'], 4)} | {f(r['lr_p_value'], 4)} | {'yes' if r['flagged'] else 'no'} | "
                     f"{f(m['ablation_auc'].get(c))} |")
    if d["flagged"]:
        lines += ["", "Flagged and left out of the fitted score: " +
                  "; ".join(f"{c}: {why}" for c, why in d["flag_reasons"].items())]
    if d.get("model_choice", {}).get("fallback"):
        lines += ["", f"**Small-book fallback**: {d['model_choice']['fallback']} ({d['model_choice']['reason']})."]
    for c, why in (d.get("dropped_components") or d["skipped_components"]).items():
        lines.append(f"\nComponent {c}: {why}.")
    if d.get("measure_weights"):
        lines += ["", "## Measure weights inside each component (learned; the equal-weight scorecard uses equal ones)",
                  "", "| component | measure | weight | joint coef per 10 points | dropped (implausible sign) |",
                  "|---|---|---|---|---|"]
        for k, v in d["measure_weights"].items():
            lines.append(f"| {v['component']} | {k} | {f(v['weight'], 2)} | {f(v['coef_per_10'])} | "
                         f"{'yes' if v['dropped'] else 'no'} |")
    lines += ["", f"Score map: {d['score_map']}; band cut-offs red < {f(d['band_cutoffs']['red'], 1)}, "
                  f"yellow < {f(d['band_cutoffs']['yellow'], 1)} ({d['band_cutoffs']['mode']}).", "",
              "## Churn rate by band (validation rows)", "", "| score | band | rows | share | churn rate |",
              "|---|---|---|---|---|"]
    for name, t in d["band_churn"].items():
        for b, v in t.items():
            lines.append(f"| {name} | {b} | {v['n']} | {f(v['share'])} | {f(v['churn_rate'])} |")
    lines += scorecard_lines(d.get("scorecard"), f)
    for name, rows in d["deciles"].items():
        nf = bs.get("decile_not_falling_share", []) if name == "ours" else []
        dci = bs.get("decile_churn_ci", []) if name == "ours" else []
        lines += ["", f"## Churn by decile: {name.replace('_', ' ')}", "",
                  "| decile | rows | renewals | score range | churn rate | mean true health (oracle) |"
                  + (" churn rate 95 % CI | P(churn does not fall to the next decile) |" if nf else ""),
                  "|---|---|---|---|---|---|" + ("---|---|" if nf else "")]
        for i, r in enumerate(rows):
            th = r.get("true_health_mean")
            extra = ""
            if nf:
                extra = (f" {interval(dci[i]) if i < len(dci) else '–'} |"
                         f" {f(nf[i]) if i < len(nf) else ''} |")
            lines.append(f"| {r['decile']} | {r['n']} | {r.get('n_renewals', '–')} | "
                         f"{r['score_min']:.1f}–{r['score_max']:.1f} | {r['churn_rate']:.3f} | "
                         f"{'–' if th is None or th != th else f'{th:+.2f}'} |" + extra)
    return "\n".join(lines) + "\n"
