"""Health family: fit HealthScoreModel on renewal-decision snapshots, validate it on later decisions against an
equal-weight scorecard, textbook bands and the oracle, log a validation report to MLflow and register it under
the champion/challenger guard. Also: scoring with component contributions and risk triggers, weekly history
and week-over-week change explanations. docs/health.md describes every number."""
from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from csforecast.config import Settings, TriggerSettings, get_settings  # noqa: E402
from csforecast.models.health import (  # noqa: E402
    CHAMPION_LEVER,
    COMPONENTS,
    HealthScoreModel,
    band_of,
    textbook_bands,
    textbook_score,
)
from csforecast.metrics.resampling import cluster_resamples, percentile_ci, rank_auc  # noqa: E402
from csforecast.pipelines.context import TrainingContext  # noqa: E402
from csforecast.tracking import store  # noqa: E402
from csforecast.tracking.pyfunc import EstimatorModel  # noqa: E402

FAMILY = "health"
COMPONENT_KEYS = ("coef", "se", "p_value", "ci_low", "ci_high", "lr_p_value", "flagged")
MINUS = "\u2212"
BOOTSTRAP_RESAMPLES = 300  # account-clustered resamples behind the validation CIs


# --- evaluation helpers ----------------------------------------------------------------------------------

def health_auc(y, score) -> float:
    """AUC of a health score for churn: AUC of (100 - score); NaN when only one class is present."""
    y = np.asarray(y, dtype=int)
    s = np.asarray(score, dtype=float)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, 100.0 - s))


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


def _cutoffs(estimator: HealthScoreModel, settings: Settings | None) -> tuple[float, float]:
    hb = (settings or get_settings()).health_bands
    return estimator.score_cutoffs(hb.red, hb.yellow, hb.mode)


def _r(x, nd=6):
    if x is None:
        return None
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    x = float(x)
    return None if math.isnan(x) else float(f"{x:.{nd}g}")


# --- training --------------------------------------------------------------------------------------------

def train_health(ctx: TrainingContext, params: dict | None = None, register: bool = True,
                 run_name: str | None = None, nested: bool = False, components: list[str] | None = None) -> dict:
    settings = get_settings()
    rows = ctx.decision_rows()
    train, valid = ctx.split(rows)
    if train["label_churn"].nunique() < 2 or valid["label_churn"].nunique() < 2:
        raise ValueError("not enough renewal outcomes on both sides of the time split to fit the health score")
    params = dict(params or {})
    est = HealthScoreModel(components=components, **params)
    ytr = train["label_churn"].astype(int).to_numpy()
    est.fit(train, ytr, groups=train["account_id"].to_numpy())
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
    true_h = ctx.truth._state(valid)["health"].to_numpy(dtype=float) if ctx.truth is not None else None
    deciles = {"ours": decile_table(y, score, cid, true_health=true_h),
               "equal_weight": decile_table(y, ew, cid, true_health=true_h),
               "textbook": decile_table(y, tb, cid, true_health=true_h)}
    monotone = strictly_falling(deciles["ours"]["churn_rate"]) and len(deciles["ours"]) == 10
    unc = validation_uncertainty(y, {"ours": score, "equal_weight": ew, "textbook": tb},
                                 valid["account_id"].to_numpy())
    red, yellow = _cutoffs(est, settings)
    bands = {"ours": band_table(y, band_of(score, red, yellow)),
             "equal_weight": band_table(y, band_of(ew, red, yellow)),
             "textbook": band_table(y, band_of(tb, 40.0, 70.0))}

    comp_report = est.report_["components"]
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
            oracle = {"auc": _r(roc_auc_score(y[ok], -h[ok])), "n": int(ok.sum()),
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
        "skipped_components": dict(est.skipped_),
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
        "n_train": int(len(train)), "n_valid": int(len(valid)),
        "n_renewals_valid": int(valid["contract_id"].nunique()),
        "n_clusters_train": est.report_["n_clusters"],
        "validation_start": str(ctx.validation_start), "as_of": str(ctx.as_of),
    }
    result = {"metrics": metrics, "oracle": oracle, "detail": detail}

    def beats(champion) -> tuple[bool, str]:
        theirs = health_auc(y, champion.predict(valid[list(champion.feature_names_in_)]))
        return auc > theirs, f"validation AUC {auc:.5f} vs champion {theirs:.5f} on {len(y)} rows"

    with store.start_run(FAMILY, run_name=run_name, nested=nested,
                         tags={"data_hash": ctx.data_hash, "as_of": str(ctx.as_of)}) as run:
        store.log_params({"as_of": ctx.as_of, "validation_start": ctx.validation_start,
                          "components": ",".join(est.components_), "used_components": ",".join(est.used_components_),
                          "drop_flagged": est.drop_flagged, "alpha": est.alpha,
                          "band_mode": settings.health_bands.mode, "band_red": red, "band_yellow": yellow,
                          "snapshot_dates": f"{ctx.grid[0]}..{ctx.grid[-1]} ({len(ctx.grid)} monthly)",
                          "data_hash": ctx.data_hash, **{f"param_{k}": v for k, v in params.items()}})
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
        store.log_text(validation_report(result), "health_report.md")
        fig = _decile_plot(deciles, unc.get("decile_churn_ci"))
        store.log_figure(fig, "decile_churn.png")
        plt.close(fig)
        cols = list(est.feature_names_in_)
        info = store.log_pyfunc(EstimatorModel(est, "health_score"), valid[cols].head(20),
                                pd.DataFrame({"health_score": score[:20]}))
        reg = (store.register_with_guard(FAMILY, info.model_uri, run.info.run_id, beats) if register
               else store.Registration(run.info.run_id, None, None, "not registered"))
    result.update({"run_id": reg.run_id, "version": reg.version, "alias": reg.alias, "guard": reg.guard})
    result["_estimator"] = est
    return result


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
    for c, why in d["skipped_components"].items():
        lines.append(f"\nSkipped component {c}: {why}.")
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


# --- scoring ---------------------------------------------------------------------------------------------

def _trigger_settings(settings) -> TriggerSettings:
    if settings is None:
        return get_settings().triggers
    if isinstance(settings, TriggerSettings):
        return settings
    if isinstance(settings, Mapping):
        return TriggerSettings(**settings)
    return settings.triggers


def _col(df: pd.DataFrame, c: str) -> np.ndarray:
    if c not in df:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)


def evaluate_triggers(snapshot: pd.DataFrame, settings=None, benchmarks: Mapping[str, float] | None = None,
                      resolution_days: float | None = None) -> list[list[dict]]:
    """Risk triggers per row: a list of {"trigger", "evidence"} (empty when none fires).

    settings: Settings, TriggerSettings or a dict of TriggerSettings fields (default: get_settings()).
    benchmarks: segment -> median 30-day seat utilisation, "*" for any other segment
    (HealthScoreModel.segment_benchmark_; default: the medians of this snapshot).
    resolution_days: the typical resolution time used when an account has no closed tickets in 180 days
    (default: the median of this snapshot)."""
    t = _trigger_settings(settings)
    n = len(snapshot)
    out: list[list[dict]] = [[] for _ in range(n)]
    util = _col(snapshot, "seat_utilisation")
    seg = snapshot["segment"].astype(object).to_numpy() if "segment" in snapshot else np.full(n, None)
    if benchmarks is None and "seat_utilisation" in snapshot:
        benchmarks = {"*": float(np.nanmedian(_col(snapshot, "seat_utilisation")))}
        if "segment" in snapshot:
            benchmarks.update(snapshot.groupby("segment")["seat_utilisation"].median().to_dict())
    benchmarks = benchmarks or {}
    fallback = benchmarks.get("*", np.nan)
    bench = np.array([float(benchmarks.get(str(s), fallback)) if isinstance(s, str) else float(fallback)
                      for s in seg])
    au30, au_prev, au90 = _col(snapshot, "active_users_30d"), _col(snapshot, "active_users_prev30d"), \
        _col(snapshot, "active_users_90d")
    au_3m_ago = (90 * au90 - 30 * au30 - 30 * au_prev) / 30  # mean daily active users 61–90 days ago
    exec_days = _col(snapshot, "days_since_exec_meeting")
    nps = _col(snapshot, "nps_latest")
    open_t, t30 = _col(snapshot, "open_tickets"), _col(snapshot, "tickets_30d")
    res = _col(snapshot, "mean_resolution_days_180d")
    if resolution_days is None:
        resolution_days = float(np.nanmedian(res)) if np.isfinite(res).any() else 3.0
    expected_open = t30 / 30.0 * np.where(np.isnan(res), resolution_days, res)  # Little's law: rate x time open
    champ = _col(snapshot, "days_since_champion_left")
    has_exec_col = "days_since_exec_meeting" in snapshot
    for i in range(n):
        f = out[i]
        low_util = (1 - t.utilisation_below_benchmark) * bench[i]
        if not np.isnan(util[i]) and not np.isnan(bench[i]) and util[i] < low_util:
            f.append({"trigger": "utilisation_below_benchmark",
                      "evidence": f"seat utilisation {100 * util[i]:.0f} % vs segment benchmark "
                                  f"{100 * bench[i]:.0f} % ({seg[i] if isinstance(seg[i], str) else 'all'})"})
        if au_3m_ago[i] > 0 and au30[i] < (1 - t.active_users_drop) * au_3m_ago[i]:
            f.append({"trigger": "active_users_drop",
                      "evidence": f"daily active users {au30[i]:.1f} (last 30 days) vs {au_3m_ago[i]:.1f} "
                                  f"(61–90 days ago), {100 * (au30[i] / au_3m_ago[i] - 1):+.0f} %"})
        if has_exec_col and (np.isnan(exec_days[i]) or exec_days[i] > t.exec_silence_days):
            f.append({"trigger": "no_exec_engagement",
                      "evidence": "no executive meeting in the last 2 years" if np.isnan(exec_days[i]) else
                      f"last executive meeting {exec_days[i]:.0f} days ago (> {t.exec_silence_days})"})
        if not np.isnan(nps[i]) and nps[i] < t.nps_below:
            kind = "detractor" if nps[i] <= 6 else "passive"
            f.append({"trigger": "nps_detractor_or_passive",
                      "evidence": f"latest NPS response {nps[i]:.0f} ({kind})"})
        if not np.isnan(open_t[i]) and open_t[i] > max(expected_open[i], 1.0):
            f.append({"trigger": "open_tickets_above_average",
                      "evidence": f"{open_t[i]:.0f} open tickets vs {expected_open[i]:.1f} expected on an average "
                                  f"day ({t30[i]:.0f} tickets in 30 days x "
                                  f"{(res[i] if not np.isnan(res[i]) else resolution_days):.1f} days to resolve)"})
        if not np.isnan(champ[i]) and champ[i] <= t.champion_left_days:
            f.append({"trigger": "champion_left", "evidence": f"champion left {champ[i]:.0f} days ago"})
    return out


def _levers(estimator: HealthScoreModel, snapshot: pd.DataFrame) -> dict[str, np.ndarray]:
    out = {c: np.full(len(snapshot), COMPONENTS[c][2], dtype=object) for c in estimator.components_}
    if "engagement" in out:
        ch = _col(snapshot, "days_since_champion_left")
        out["engagement"][ch <= 90] = CHAMPION_LEVER
    return out


def score_health(estimator: HealthScoreModel, snapshot: pd.DataFrame, settings: Settings | None = None
                 ) -> pd.DataFrame:
    """Per row of `snapshot`: health_score (0–100), health_band, health_components (list of {component, score,
    band, contribution, lever}; contributions sum exactly to health_score - 50) and triggers."""
    settings = settings or get_settings()
    red, yellow = _cutoffs(estimator, settings)
    score = estimator.predict(snapshot)
    comps = estimator.component_scores(snapshot)
    contrib = estimator.contributions(snapshot)
    levers = _levers(estimator, snapshot)
    cbands = {c: band_of(comps[c].to_numpy(), red, yellow) for c in estimator.components_}
    C, K = comps.to_numpy(), contrib.to_numpy()
    lists = []
    for i in range(len(snapshot)):
        lists.append([{"component": c, "score": float(C[i, j]), "band": cbands[c][i],
                       "contribution": float(K[i, j]), "lever": levers[c][i]}
                      for j, c in enumerate(estimator.components_)])
    triggers = evaluate_triggers(snapshot, settings, benchmarks=estimator.segment_benchmark_,
                                 resolution_days=estimator.resolution_median_)
    return pd.DataFrame({"health_score": score, "health_band": band_of(score, red, yellow),
                         "health_components": lists, "triggers": triggers}, index=snapshot.index)


# --- weekly trend ----------------------------------------------------------------------------------------

def health_history(estimator: HealthScoreModel, snapshots: pd.DataFrame) -> pd.DataFrame:
    """Weekly history per account from snapshots at weekly as-of dates (build_snapshots(source, weekly_dates)):
    account_id, week, health_score, components (component -> 0–100), contributions (component -> points),
    change (vs the account's previous week) and change_explanation (explain_change)."""
    score = estimator.predict(snapshots)
    comps = estimator.component_scores(snapshots)
    contrib = estimator.contributions(snapshots)
    names = list(estimator.components_)
    df = pd.DataFrame({"account_id": snapshots["account_id"].to_numpy(),
                       "week": pd.to_datetime(snapshots["as_of"]).to_numpy(),
                       "health_score": score,
                       "components": [dict(zip(names, map(float, r))) for r in comps.to_numpy()],
                       "contributions": [dict(zip(names, map(float, r))) for r in contrib.to_numpy()]})
    df = df.sort_values(["account_id", "week"], ignore_index=True)
    prev_idx = df.groupby("account_id").cumcount()
    df["change"] = df["health_score"] - df.groupby("account_id")["health_score"].shift(1)
    expl = [None] * len(df)
    recs = df[["health_score", "contributions"]].to_dict(orient="records")
    for i in range(len(df)):
        if prev_idx.iat[i] > 0:
            expl[i] = explain_change(recs[i - 1], recs[i])
    df["change_explanation"] = expl
    return df


def _contribs(row) -> dict[str, float]:
    get = row.get if hasattr(row, "get") else (lambda k, d=None: getattr(row, k, d))
    c = get("contributions", None)
    if c is None:
        c = {d["component"]: d["contribution"] for d in get("health_components", [])}
    return dict(c)


def _signed(v: int) -> str:
    return f"+{v}" if v > 0 else (f"{MINUS}{-v}" if v < 0 else "0")


def _round_preserving_sum(parts: dict[str, float], total: int) -> dict[str, int]:
    """Integers per part that add up to `total` (largest remainder)."""
    floors = {k: math.floor(v) for k, v in parts.items()}
    left = total - sum(floors.values())
    order = sorted(parts, key=lambda k: parts[k] - floors[k], reverse=True)
    for k in order[:max(0, left)]:
        floors[k] += 1
    return floors


def explain_change(prev_row, cur_row) -> str:
    """Week-over-week change of the score attributed to the components that moved it, in whole points that add
    up to the (rounded) change, e.g. '−7: Adoption −5, Support −2'. Rows are health_history rows (or any
    mapping with health_score and contributions / health_components)."""
    get = (lambda r, k: r[k] if isinstance(r, Mapping) or hasattr(r, "__getitem__") else getattr(r, k))
    cp, cc = _contribs(prev_row), _contribs(cur_row)
    delta = {k: cc.get(k, 0.0) - cp.get(k, 0.0) for k in dict.fromkeys([*cp, *cc])}
    change = float(get(cur_row, "health_score")) - float(get(prev_row, "health_score"))
    total = int(round(change))
    parts = _round_preserving_sum(delta, total) if delta else {}
    moved = sorted(((k, v) for k, v in parts.items() if v != 0), key=lambda kv: (-abs(kv[1]), kv[0]))
    head = _signed(total) if total else "\u00b10"
    if not moved:
        return f"{head}: no component moved the score by a whole point"
    return f"{head}: " + ", ".join(f"{COMPONENTS.get(k, (k,))[0]} {_signed(v)}" for k, v in moved)
