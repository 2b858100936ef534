"""Back-test of the renewal forecast on past quarters, every method side by side (docs/forecast.md).

For each of the last N complete quarters before the data end (plus ``warmup`` earlier quarters used only
to calibrate the interval width), as of the quarter start:

1. the churn model (ChurnClassifier) is fitted on the decision rows resolved before the quarter start --
   the rows of pipelines/churn.py: monthly snapshots in the 365 days before a renewal. The snapshots are
   built ONCE for the whole monthly grid (features are point in time); the labels of a quarter are those of
   ``add_labels(end=quarter_start)``, obtained by masking the labels computed at the data end to renewals
   before the quarter start (label_churn / label_arr_change depend on `end` only through that mask);
2. the expansion model is fitted on the same rows (renewed decisions);
3. the renewals due in the quarter (contracts started before the quarter start) are forecast from the
   snapshot at the quarter start by every method -- ``model``, ``last_year``, ``time_series`` and, when the
   source has truth/, ``oracle`` (the simulator's P(churn) as of the quarter start, same expansion model);
4. each method's interval uses a common logit shock whose sd tau is estimated per segment from that
   segment's implied shocks in the quarters *before* the one forecast (warm-up and earlier back-test
   quarters; ``estimate_tau_by_segment``), the tau pooled over every window where a segment has none;
5. the forecast is compared with what happened (hindsight outcomes of the same decisions).
"""
from __future__ import annotations

import datetime as _dt
import time
from datetime import date, timedelta
from typing import Callable

import numpy as np
import pandas as pd

from csforecast.forecast import baselines
from csforecast.forecast.book import renewal_book
from csforecast.forecast.montecarlo import (
    MethodInput,
    estimate_tau_by_segment,
    method_results,
    save_calibration,
    shock_evidence,
    simulate_renewals,
)
from csforecast.forecast.renewals import (
    METHODS,
    decision_rows,
    fit_expansion,
    predict_churn,
    scoring_rows,
    tau_per_decision,
)
from csforecast.metrics.forecast_errors import bias, interval_coverage, wape, within_interval

__all__ = ["run_backtest", "fan_chart", "log_backtest"]

# The churn model as the pipeline fits it (three candidates: LightGBM, logistic, their blend; choice and
# calibration on the calibration slice), single-threaded (threads contend on these sizes), with the shallow,
# strongly regularised trees that had the best log loss on quarter-start renewals of the settings tried on
# simulated portfolios. LightGBM alone is ~5x faster and was 1.25-1.31x the oracle's WAPE against 1.22-1.26x
# for this on two seeds.
BACKTEST_CHURN_PARAMS = {"algorithm": "auto", "n_jobs": 1, "num_leaves": 4, "min_child_samples": 300,
                         "learning_rate": 0.02, "colsample_bytree": 0.5, "reg_lambda": 5.0}
WARMUP_QUARTERS = 4
PARTS = ("churned", "contraction", "expansion")   # outcomes at renewal reported apart (no mid-term add-ons here)
OVERALL = "overall"


def _quarters(de: date, n: int, warmup: int) -> list[pd.Period]:
    last = pd.Period(pd.Timestamp(de), freq="Q") - 1      # the last quarter ending on or before the data end
    return [last - k for k in range(n + warmup - 1, -1, -1)]


def _grid(source, de: date) -> list[date]:
    from csforecast.features.snapshot import monthly_grid

    col = ("usage", "date") if source.has("usage") else ("contracts", "start_date")
    first = source.table(col[0])[col[1]].min().to_pyarrow().as_py()
    first = pd.Timestamp(first).date() + timedelta(days=90)
    return [d for d in monthly_grid(first, de) if d < de]


def _actual(book: pd.DataFrame, mask: np.ndarray) -> dict:
    b = book[mask]
    due = float(b["arr"].sum())
    ren = float(b.loc[b["final_renewed"], "arr"].sum())
    won = b["final_renewed"].to_numpy(bool)
    a, s = b["arr"].to_numpy(float)[won], b["final_succ_arr"].to_numpy(float)[won]
    succ = float(s.sum())
    con, exp_ = float(np.maximum(a - s, 0).sum()), float(np.maximum(s - a, 0).sum())
    return {"due": due, "renewed": ren, "succ": succ, "count": int(len(b)), "churned": due - ren,
            "contraction": con, "expansion": exp_,
            "grr": (ren - con) / due if due > 0 else np.nan, "nrr": succ / due if due > 0 else np.nan}


def _row(q, method, res, act, tau, segment=None) -> dict:
    e, i = res["expected"], res["intervals"]
    p10, p90 = i["renewed_arr"]["p10"], i["renewed_arr"]["p90"]
    covered = bool(p10 is not None and p90 is not None and within_interval(act["renewed"], p10, p90))
    n10, n90 = i["nrr"]["p10"], i["nrr"]["p90"]
    row = {"quarter": str(q), "method": method}
    if segment is not None:
        row["segment"] = segment
    row.update({
        "renewals_due_count": act["count"], "arr_due": act["due"],
        "forecast_renewed_arr": e["renewed_arr"], "p10": p10, "p50": i["renewed_arr"]["p50"], "p90": p90,
        "actual_renewed_arr": act["renewed"], "covered": covered,
        "error": (e["renewed_arr"] - act["renewed"]) if e["renewed_arr"] is not None else None,
        "grr_forecast": e["grr"], "grr_actual": act["grr"] if np.isfinite(act["grr"]) else None,
        "nrr_forecast": e["nrr"], "nrr_actual": act["nrr"] if np.isfinite(act["nrr"]) else None,
        "nrr_p10": n10, "nrr_p90": n90,
        "nrr_covered": bool(n10 is not None and np.isfinite(act["nrr"]) and within_interval(act["nrr"], n10, n90)),
        "forecast_successor_arr": e["successor_arr"], "actual_successor_arr": act["succ"],
        **{f"{kind}_{part}_arr": v for part in PARTS
           for kind, v in (("forecast", e[f"{part}_arr"]), ("actual", act[part]))},
        "tau": round(float(tau), 6),
    })
    return row


def _summary(rows: list[dict], seg_rows: list[dict], taus: list[float]) -> dict:
    def arr(rs, k):
        return np.array([np.nan if r[k] is None else r[k] for r in rs], dtype=float)

    out = {"quarters": len(rows)}
    both = rows + seg_rows
    if not rows:
        return out
    out["wape"] = wape(arr(seg_rows, "actual_renewed_arr"), arr(seg_rows, "forecast_renewed_arr")) \
        if seg_rows else wape(arr(rows, "actual_renewed_arr"), arr(rows, "forecast_renewed_arr"))
    out["wape_overall"] = wape(arr(rows, "actual_renewed_arr"), arr(rows, "forecast_renewed_arr"))
    out["bias"] = bias(arr(rows, "actual_renewed_arr"), arr(rows, "forecast_renewed_arr"))
    out["coverage_p10_p90"] = interval_coverage(arr(both, "actual_renewed_arr"), arr(both, "p10"), arr(both, "p90"))
    out["coverage_overall"] = interval_coverage(arr(rows, "actual_renewed_arr"), arr(rows, "p10"), arr(rows, "p90"))
    out["coverage_segments"] = interval_coverage(arr(seg_rows, "actual_renewed_arr"), arr(seg_rows, "p10"),
                                                 arr(seg_rows, "p90")) if seg_rows else None
    out["intervals_counted"] = len(both)
    out["nrr_wape"] = wape(arr(both, "actual_successor_arr"), arr(both, "forecast_successor_arr"))
    ok = [r for r in both if r["nrr_actual"] is not None and r["nrr_p10"] is not None]
    out["nrr_coverage_p10_p90"] = interval_coverage(arr(ok, "nrr_actual"), arr(ok, "nrr_p10"), arr(ok, "nrr_p90")) \
        if ok else None
    # each outcome apart (churned, contraction, expansion at renewal): WAPE over quarters x segments
    out["parts"] = {part: {"wape": wape(arr(seg_rows or rows, f"actual_{part}_arr"),
                                        arr(seg_rows or rows, f"forecast_{part}_arr")),
                           "forecast": float(np.nansum(arr(rows, f"forecast_{part}_arr"))),
                           "actual": float(np.nansum(arr(rows, f"actual_{part}_arr")))} for part in PARTS}
    out["grr_mae"] = float(np.nanmean(np.abs(arr(rows, "grr_forecast") - arr(rows, "grr_actual"))))
    out["nrr_mae"] = float(np.nanmean(np.abs(arr(rows, "nrr_forecast") - arr(rows, "nrr_actual"))))
    out["mean_tau"] = float(np.mean(taus)) if taus else 0.0
    return out


def _ratio_if_oracle_true(d: pd.DataFrame, seed: int, n: int = 400) -> dict:
    """How noisy the WAPE ratio to the oracle is: its distribution when the renewals of the same quarters
    are redrawn from the oracle's probabilities (the pending decisions only; the expected values of each
    method held fixed). {method: {"mean", "p10", "p90"}}."""
    rng = np.random.default_rng(seed)
    key = d["q"].astype(str) + "|" + d["seg"]
    codes, _ = pd.factorize(key)
    k = codes.max() + 1
    a = d["arr"].to_numpy(float)
    f = {m: np.bincount(codes, a * (1 - d[f"p_{m}"].to_numpy(float)), minlength=k)
         for m in METHODS if f"p_{m}" in d}
    fo = np.bincount(codes, a * (1 - d["p_oracle"].to_numpy(float)), minlength=k)
    po = d["p_oracle"].to_numpy(float)
    out = {m: [] for m in f}
    for _ in range(n):
        act = np.bincount(codes, a * (rng.random(len(a)) >= po), minlength=k)
        wo = np.abs(act - fo).sum()
        for m in f:
            out[m].append(np.abs(act - f[m]).sum() / wo if wo > 0 else np.nan)
    return {m: {"mean": float(np.nanmean(v)), "p10": float(np.nanquantile(v, 0.1)),
                "p90": float(np.nanquantile(v, 0.9))} for m, v in out.items()}


def _coverage_if_calibrated(d: pd.DataFrame, p_col: str, seed: int, n: int = 400, draws: int = 4000) -> dict:
    """How noisy the interval coverage is on these windows: the coverage of exactly calibrated P10-P90
    intervals when the probabilities in ``p_col`` are the truth. Per quarter, each scope's interval (the
    portfolio and each segment) is read from the Bernoulli draws of those probabilities (no maps, no tau:
    exact when they are the truth), and the renewals are redrawn ``n`` times from the same probabilities.
    {"probabilities", "windows", "mean", "sd", "p10", "p90", "scopes"}: the realised coverage of a method is
    one draw from a distribution about this wide even when its intervals are right. ``scopes``: the mean per
    scope ("portfolio" and each segment). A scope of a few large renewals has a renewed total that takes few
    values, P10 and P90 often fall on one of them, and with the bounds included (``within_interval``) right
    intervals then hold more than 0.80 of it (~0.88-0.91); a scope of many renewals stays at ~0.80."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 11])
    hits, windows = np.zeros(n), 0
    per_scope: dict[str, list[float]] = {}
    for qi, g in d.groupby("q", sort=True):
        a, p, seg = g["arr"].to_numpy(float), g[p_col].to_numpy(float), g["seg"].to_numpy(str)
        sim = simulate_renewals(a, p, groups=seg, draws=draws, seed=int(seed) + 104729 * int(qi))
        renewed = rng.random((n, len(a))) >= p
        scopes = [("portfolio", sim.renewed.sum(axis=0), np.ones(len(a), dtype=bool))]
        scopes += [(str(lab), sim.renewed[i], seg == str(lab)) for i, lab in enumerate(sim.groups)]
        for name, draw, mask in scopes:
            lo, hi = np.quantile(draw, [0.1, 0.9])
            inside = within_interval(renewed[:, mask] @ a[mask], lo, hi)
            hits += inside
            per_scope.setdefault(name, []).append(float(inside.mean()))
            windows += 1
    if windows == 0:
        return {}
    cov = hits / windows
    return {"probabilities": p_col.removeprefix("p_"), "windows": windows, "mean": float(cov.mean()),
            "sd": float(cov.std()), "p10": float(np.quantile(cov, 0.1)), "p90": float(np.quantile(cov, 0.9)),
            "scopes": {k: float(np.mean(v)) for k, v in per_scope.items()}}


def run_backtest(source, quarters: int = 8, warmup: int = WARMUP_QUARTERS, *, draws: int | None = None,
                 seed: int | None = None, churn_params: dict | None = None,
                 progress: Callable[[str], None] | None = None, with_oracle: bool = True,
                 snapshots: pd.DataFrame | None = None, oracle=None) -> dict:
    """Back-test the renewal forecast on the last ``quarters`` complete quarters (see the module doc).

    Returns {"quarters": [one row per quarter and method], "segments": [one row per quarter, method and
    segment], "summary": {method: {...}}, "tau": {method: tau for the next quarter}, "detail": {...}}.
    ``snapshots``: the monthly snapshots (build_snapshots over the grid, labels at the data end) when the
    caller already has them. ``oracle``: the simulator's truth (a Truth, or None for real data), back-tested
    as the extra method "oracle"; ``with_oracle=False`` leaves it out.
    """
    from csforecast.config import get_settings
    from csforecast.features.catalogue import DEFAULT_EXCLUDE
    from csforecast.features.snapshot import build_snapshots, data_end, feature_columns
    from csforecast.models.churn import ChurnClassifier

    tell = progress or (lambda _msg: None)
    t0 = time.time()
    fs = get_settings().forecast
    draws = int(draws or fs.draws)
    seed = int(fs.seed if seed is None else seed)
    params = {**BACKTEST_CHURN_PARAMS, **(churn_params or {})}
    de = data_end(source)
    grid = _grid(source, de)
    if len(grid) < 6:
        raise ValueError(f"too little history for a back-test: {len(grid)} monthly snapshots")
    qlist = [q for q in _quarters(de, quarters, warmup) if q.start_time.date() >= grid[0]]
    if not qlist:
        raise ValueError("no complete quarter after the first snapshot date to back-test")
    n_report = min(quarters, len(qlist))
    if snapshots is None:
        tell(f"building {len(grid)} monthly snapshots")
        snaps = build_snapshots(source, grid, end=de)
    else:
        snaps = snapshots
    feats = [f for f in feature_columns(snaps) if f not in DEFAULT_EXCLUDE]  # as the churn pipeline
    contracts, accounts = source.frame("contracts"), source.frame("accounts")
    truth = oracle if with_oracle else None
    methods = list(METHODS) + (["oracle"] if truth is not None else [])
    # past windows' evidence per method and scope (the segment; None for the portfolio)
    shocks: dict[str, dict[str | None, list[tuple[float, float, float]]]] = {m: {} for m in methods}
    rows: list[dict] = []
    seg_rows: list[dict] = []
    used_tau: dict[str, list[float]] = {m: [] for m in methods}
    skipped, detail = [], {}
    kept: list[pd.DataFrame] = []          # pending decisions and every method's P(churn), reported quarters
    t_fit = 0.0
    for qi, q in enumerate(qlist):
        reported = qi >= len(qlist) - n_report
        qs, qe = q.start_time.normalize(), (q + 1).start_time.normalize()
        tell(f"{q}: fitting as of {qs.date()} ({'back-test' if reported else 'warm-up'})")
        train = decision_rows(snaps, qs)
        t1 = time.time()
        try:
            est = ChurnClassifier(**params).fit(train[feats], train["label_churn"].astype(int),
                                                sample_time=train["renewal_date"])
        except ValueError as e:
            skipped.append({"quarter": str(q), "reason": f"churn model could not be fitted: {e}"})
            continue
        t_fit += time.time() - t1
        expansion = fit_expansion(train, feats)
        book = renewal_book(contracts, accounts, qs, qe, qs, "segment")
        if book.empty:
            skipped.append({"quarter": str(q), "reason": "no renewals due"})
            continue
        pend = (book["status"] == "pending").to_numpy()
        pending = book[pend]
        now = snaps[snaps["as_of"] == qs]
        srows, found = scoring_rows(pending, now, qs)
        history = baselines.renewal_history(contracts, accounts, qs)
        fallback = baselines.overall_churn_rate(history)
        m_mean, m_var = expansion.ratio_moments(srows)
        split = expansion.split_moments(srows)
        resid_var = expansion.var_exp_resid_ / max(expansion.mean_exp_resid_, 1e-12) ** 2
        probs = {"model": predict_churn(est, srows, found, fallback)}
        rat = {"model": (m_mean, m_var)}
        for name, fn in (("last_year", baselines.last_year), ("time_series", baselines.time_series)):
            pc, ratio, _info = fn(pending, history, qs, qe, qs)
            probs[name], rat[name] = pc, (ratio, ratio * ratio * resid_var)
        n_missing_truth = 0
        if truth is not None:
            po = truth.churn_probability(srows[["account_id", "as_of", "contract_id"]]) if len(srows) else np.zeros(0)
            miss = ~np.isfinite(po)
            n_missing_truth = int(miss.sum())
            probs["oracle"] = np.where(miss, probs["model"], po)
            rat["oracle"] = (m_mean, m_var)
        segs = sorted(book["segment"].astype(str).unique())
        act_all = _actual(book, np.ones(len(book), dtype=bool))
        acts = {s: _actual(book, (book["segment"].astype(str) == s).to_numpy()) for s in segs}
        pend_seg = pending["segment"].astype(str).to_numpy()
        for k, name in enumerate(methods):
            tau = estimate_tau_by_segment(shocks[name])
            # only the model's draws apply calibration maps; the evidence below takes the same maps, so that tau
            # measures only the spread this method's draws do not already have
            maps = getattr(est, "calibration_maps_", None) if name == "model" else None
            inp = MethodInput(probs[name], *rat[name], split=split if name in ("model", "oracle") else None,
                              maps=maps, tau=tau_per_decision({name: tau}, name, pend_seg))
            res = method_results(book, None, inp, draws=draws, seed=seed + 7919 * qi + k)
            # this quarter's errors (overall and per segment), evidence for the later quarters' tau
            a_p, p_p = pending["arr"].to_numpy(float), probs[name]
            won = pending["final_renewed"].to_numpy(bool)
            shocks[name].setdefault(None, []).append(shock_evidence(a_p, p_p, float(a_p[won].sum()), maps))
            for sg in segs:
                mk = pend_seg == sg
                if mk.any():
                    shocks[name].setdefault(sg, []).append(
                        shock_evidence(a_p[mk], p_p[mk], float(a_p[mk & won].sum()), maps))
            if not reported:
                continue
            used_tau[name].append(tau["overall"])
            rows.append(_row(q, name, res["overall"], act_all, tau["overall"]))
            seg_tau = tau_per_decision({name: tau}, name, segs)     # the tau each segment's decisions took
            for sg, t in zip(segs, seg_tau):
                seg_rows.append(_row(q, name, res["groups"][sg], acts[sg], t, sg))
        if reported:
            kept.append(pd.DataFrame({"q": qi, "seg": pending["segment"].astype(str).to_numpy(),
                                      "arr": pending["arr"].to_numpy(float),
                                      **{f"p_{m}": probs[m] for m in methods}}))
            detail[str(q)] = {"n_train_rows": int(len(train)), "churn_model": est.chosen_,
                              "expansion_model": expansion.summary(), "pending": int(pend.sum()),
                              "scored_without_snapshot": int((~found).sum()),
                              "oracle_missing": n_missing_truth}
    summary = {}
    for m in methods:
        summary[m] = _summary([r for r in rows if r["method"] == m], [r for r in seg_rows if r["method"] == m],
                              used_tau[m])
    if "oracle" in summary and summary["oracle"].get("wape"):
        for m in METHODS:
            if summary[m].get("wape") is not None:
                summary[m]["wape_vs_oracle"] = summary[m]["wape"] / summary["oracle"]["wape"]
                summary[m]["wape_overall_vs_oracle"] = summary[m]["wape_overall"] / summary["oracle"]["wape_overall"]
        if kept:
            for m, v in _ratio_if_oracle_true(pd.concat(kept, ignore_index=True), seed).items():
                summary[m]["wape_vs_oracle_if_oracle_true"] = v
    final_tau = {m: estimate_tau_by_segment(shocks[m]) for m in methods}
    coverage_noise = _coverage_if_calibrated(pd.concat(kept, ignore_index=True),
                                             "p_oracle" if "oracle" in methods else "p_model", seed) if kept else {}
    return {
        "data_end": str(de), "quarters_requested": quarters, "warmup_quarters": len(qlist) - n_report,
        "draws": draws, "seed": seed, "churn_params": params,
        "quarters": rows, "segments": seg_rows, "summary": summary,
        "tau": {m: t["overall"] for m, t in final_tau.items()},
        "tau_segments": {m: t["segments"] for m, t in final_tau.items()},
        "coverage_if_calibrated": coverage_noise,
        "skipped": skipped, "detail": detail,
        "timing": {"seconds": round(time.time() - t0, 1), "churn_fit_seconds": round(t_fit, 1)},
    }


def fan_chart(result: dict):
    """Forecast P10-P90 (and P50) of renewed ARR per quarter vs the actual, overall and per segment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scopes = [OVERALL] + sorted({r["segment"] for r in result["segments"]})
    ncol = 2 if len(scopes) > 1 else 1
    nrow = (len(scopes) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.5 * ncol, 3.6 * nrow), squeeze=False)
    colors = {"model": "tab:blue", "last_year": "tab:orange", "time_series": "tab:green", "oracle": "tab:purple"}
    for ax, scope in zip(axes.ravel(), scopes):
        rs = result["quarters"] if scope == OVERALL else [r for r in result["segments"] if r["segment"] == scope]
        qs = sorted({r["quarter"] for r in rs})
        x = np.arange(len(qs))
        for m in ("model", "oracle", "last_year", "time_series"):
            mr = {r["quarter"]: r for r in rs if r["method"] == m}
            if not mr:
                continue
            f = np.array([mr[q]["forecast_renewed_arr"] for q in qs], dtype=float)
            if m == "model":
                lo = np.array([mr[q]["p10"] for q in qs], dtype=float)
                hi = np.array([mr[q]["p90"] for q in qs], dtype=float)
                ax.fill_between(x, lo, hi, color=colors[m], alpha=0.2, label="model P10–P90")
                ax.plot(x, f, color=colors[m], lw=2, label="model expected")
            else:
                ax.plot(x, f, color=colors[m], lw=1, ls="--" if m == "oracle" else ":", label=m)
        mr = {r["quarter"]: r for r in rs if r["method"] == "model"}
        ax.plot(x, [mr[q]["actual_renewed_arr"] for q in qs], "ko", ms=5, label="actual")
        ax.set_xticks(x, qs, rotation=45, fontsize=8)
        ax.set_title(f"renewed ARR: {scope}")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    for ax in axes.ravel()[len(scopes):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def log_backtest(result: dict, data_hash: str) -> str:
    """Log the back-test to MLflow (experiment csforecast-forecast) with the fan chart; returns the run id."""
    from csforecast.tracking import store

    quarters = len(result['quarters']) // max(1, len(result['summary']))
    with store.start_run("forecast", run_name=f"backtest {quarters}q to {result['data_end']} data {data_hash[:8]}",
                         tags={"kind": "backtest", "data_hash": data_hash, "data_end": result["data_end"]}) as run:
        store.log_params({"quarters": result["quarters_requested"], "warmup_quarters": result["warmup_quarters"],
                          "draws": result["draws"], "seed": result["seed"], "data_hash": data_hash,
                          **{f"churn_{k}": v for k, v in result["churn_params"].items()}})
        for m, s in result["summary"].items():
            store.log_metrics({k: v for k, v in s.items() if isinstance(v, (int, float))}, prefix=f"{m}_")
        store.log_metrics({f"tau_{m}": t for m, t in result["tau"].items()})
        for m, by_segment in (result.get("tau_segments") or {}).items():
            store.log_metrics(by_segment, prefix=f"tau_{m}_")
        noise = result.get("coverage_if_calibrated") or {}
        store.log_metrics(noise, prefix="coverage_if_calibrated_")
        store.log_metrics(noise.get("scopes") or {}, prefix="coverage_if_calibrated_")
        log_backtest_artifacts(result)
        return run.info.run_id


def log_backtest_artifacts(result: dict) -> None:
    """backtest.json and fan_chart.png of a back-test result, to the active MLflow run."""
    import matplotlib.pyplot as plt

    from csforecast.tracking import store

    store.log_dict(result, "backtest.json")
    fig = fan_chart(result)
    store.log_figure(fig, "fan_chart.png")
    plt.close(fig)


def save_tau(result: dict, data_hash: str) -> str:
    """Write the interval calibration (tau per method) that `forecast` reads by default."""
    f = save_calibration({"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                          "data_hash": data_hash, "data_end": result["data_end"],
                          "tau": {m: {"overall": result["tau"][m],
                                      "segments": (result.get("tau_segments") or {}).get(m, {})}
                                  for m in METHODS if m in result["tau"]},
                          "quarters": len(result["quarters"]) // max(1, len(result["summary"]))})
    return str(f)
