"""The survival run's artefacts besides the model: calibration and Kaplan-Meier figures, drivers, and cohort
retention (Kaplan-Meier curves by start year and segment, sBG fits per segment). Logged to the active MLflow
run by ``pipelines.survival``; nothing here fits the served model."""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from csforecast.metrics.survival import kaplan_meier_at  # noqa: E402
from csforecast.models.sbg import ShiftedBetaGeometric  # noqa: E402
from csforecast.retention.cohorts import cohort_curves, plot_cohort_curves, spells_from_contracts  # noqa: E402
from csforecast.tracking import store  # noqa: E402

__all__ = ["log_figures", "log_retention", "yearly_alive_counts"]


def log_figures(est, valid: pd.DataFrame, S, grid, T, E, t_cal: float, S_or=None, ok_or=None) -> None:
    """calibration_365.png, survival_vs_km.png and drivers.png for the validation rows (with the oracle's
    curves when ``S_or`` is given; ``ok_or`` marks its rows with a complete oracle curve)."""
    fig = _calibration_plot(S, grid, T, E, t_cal, S_or[ok_or] if S_or is not None else None,
                            T[ok_or] if S_or is not None else None, E[ok_or] if S_or is not None else None)
    store.log_figure(fig, "calibration_365.png")
    plt.close(fig)
    fig = _km_vs_predicted(S, grid, T, E, valid["segment"].to_numpy(), S_or)
    store.log_figure(fig, "survival_vs_km.png")
    plt.close(fig)
    fig = _drivers_plot(est.contributions(valid.head(5000)))
    store.log_figure(fig, "drivers.png")
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# cohort retention (Kaplan-Meier curves, sBG per segment)
# ------------------------------------------------------------------------------------------------
def _log_png(path: Path, name: str) -> None:
    """Log a PNG written by plot_cohort_curves through store.log_figure (store has no log_artifact)."""
    img = plt.imread(str(path))
    h, w = img.shape[:2]
    fig = plt.figure(figsize=(w / 100, h / 100), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(img)
    ax.axis("off")
    store.log_figure(fig, name)
    plt.close(fig)


def yearly_alive_counts(spells: pd.DataFrame, data_end, grace_days: int = 30) -> dict[str, list[int]]:
    """Alive counts at yearly periods 0..n per start-year cohort, for the sBG.

    An account is alive at period k if it has not churned by ``k * 365.25 + grace_days`` days after its start
    (the grace absorbs 366-day contracts and late paperwork). A cohort's period k is used only when every
    member has been observed that long (start + k * 365.25 + grace <= data_end), so its counts are complete."""
    end = pd.Timestamp(data_end)
    out = {}
    for cohort, g in spells.groupby("cohort", sort=True):
        last_start = pd.to_datetime(g["start_date"]).max()
        n = int(np.floor(((end - last_start).days - grace_days) / 365.25))
        if n < 1:
            continue
        dur, ev = g["duration"].to_numpy(dtype=float), g["event"].to_numpy(dtype=int)
        alive = [int(len(g) - ((ev == 1) & (dur <= k * 365.25 + grace_days)).sum()) for k in range(n + 1)]
        alive[0] = int(len(g))
        out[str(cohort)] = alive
    return out


def log_retention(source, as_of) -> dict:
    """Log the cohort retention artefacts (Kaplan-Meier curves by start year and segment, logo and ARR; sBG
    fits per segment) of ``source`` as of ``as_of`` to the active run; returns what was logged (errors of
    single curves are recorded, never raised)."""
    out: dict = {"available": True, "artifacts": []}
    try:
        spells = spells_from_contracts(source.frame("contracts"), source.frame("accounts"), data_end=as_of)
    except Exception as e:  # noqa: BLE001
        return {"available": False, "reason": f"spells_from_contracts failed: {type(e).__name__}: {e}"}
    out["n_accounts"] = int(len(spells))
    yearly = np.arange(0, 7) * 365.25
    tables = {}
    with tempfile.TemporaryDirectory() as tmp:
        for by in ("cohort", "segment"):
            for label, weight in (("logo", None), ("arr", "arr")):
                name = f"retention/{label}_by_{by}.png"
                try:
                    sp = spells if weight is None else spells[spells["arr"].fillna(0) > 0]
                    curves = cohort_curves(sp, by=by, weight=weight)
                    what = "start year" if by == "cohort" else by
                    title = f"{'Logo' if weight is None else 'ARR'} retention by {what}"
                    png = plot_cohort_curves(curves, Path(tmp) / f"{label}_{by}.png", title,
                                             xlabel="years since customer start", time_scale=365.25,
                                             ylabel="share of accounts" if weight is None else "share of starting ARR")
                    _log_png(png, name)
                    out["artifacts"].append(name)
                    yt = cohort_curves(sp, by=by, weight=weight, times=yearly)
                    tables[f"{label}_by_{by}"] = [
                        {"group": r.group, "years": round(r.time / 365.25, 2),
                         "survival": None if r.survival != r.survival else round(float(r.survival), 4),
                         "at_risk": int(r.at_risk)} for r in yt.itertuples()]
                except Exception as e:  # noqa: BLE001 - one failing curve must not lose the run
                    out.setdefault("errors", []).append(f"{name}: {type(e).__name__}: {e}"[:300])
    if tables:
        store.log_dict(tables, "retention/km_yearly.json")
        out["artifacts"].append("retention/km_yearly.json")
    sbg = {}
    for seg, g in spells.groupby("segment", sort=True):
        counts = yearly_alive_counts(g, as_of)
        entry: dict = {"cohorts": counts}
        try:
            if not counts:
                raise ValueError("no cohort with a full observed year")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                m = ShiftedBetaGeometric().fit(list(counts.values()))
            proj = m.survival(np.arange(0, 6))
            entry.update({"alpha": round(m.alpha_, 6), "beta": round(m.beta_, 6),
                          "converged": bool(m.converged_), "loglik": round(float(m.loglik_), 4),
                          "mean_first_year_churn": round(m.alpha_ / (m.alpha_ + m.beta_), 6),
                          "projection_5y": {str(k): round(float(v), 6) for k, v in enumerate(proj)},
                          "retention_rate": {str(k): round(float(m.retention_rate(k)), 6) for k in range(1, 6)}})
            store.log_metrics({"alpha": m.alpha_, "beta": m.beta_, "survival_5y": float(proj[-1])},
                              prefix=f"sbg_{str(seg).replace(' ', '_')}_")
        except Exception as e:  # noqa: BLE001
            entry["error"] = f"{type(e).__name__}: {e}"[:300]
        sbg[str(seg)] = entry
    store.log_dict({"period": "year (365.25 days)", "segments": sbg}, "retention/sbg.json")
    out["artifacts"].append("retention/sbg.json")
    out["sbg"] = {s: {k: v for k, v in e.items() if k != "cohorts"} for s, e in sbg.items()}
    return out


# ------------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------------
def _calibration_plot(S, grid, T, E, t_cal, S_or=None, T_or=None, E_or=None, n_bins: int = 10):
    fig, ax = plt.subplots(figsize=(5.5, 5))
    k = int(np.searchsorted(grid, t_cal))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect")
    for SS, TT, EE, lab, mk in ((S, T, E, "model", "o"), (S_or, T_or, E_or, "oracle (truth)", "s")):
        if SS is None:
            continue
        p = SS[:, k]
        order = np.argsort(p, kind="mergesort")
        bins = np.empty(len(p), dtype=int)
        bins[order] = (np.arange(len(p)) * n_bins) // len(p)
        xs = [p[bins == b].mean() for b in range(n_bins)]
        ys = [kaplan_meier_at(TT[bins == b], EE[bins == b], t_cal) for b in range(n_bins)]
        ax.plot(xs, ys, marker=mk, alpha=1 if lab == "model" else 0.6, label=lab)
    lo = min(0.5, float(np.nanmin(S[:, k])) - 0.02)
    ax.set_xlim(lo, 1.01)
    ax.set_ylim(lo, 1.01)
    ax.set_xlabel(f"predicted P(active {t_cal:g} days after as-of)")
    ax.set_ylabel("Kaplan-Meier observed")
    ax.set_title(f"Calibration at {t_cal:g} days (validation, deciles)")
    ax.legend()
    fig.tight_layout()
    return fig


def _km_vs_predicted(S, grid, T, E, segments, S_or=None):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for seg in sorted(set(segments)):
        m = segments == seg
        km = kaplan_meier_at(T[m], E[m], grid)
        (line,) = ax.step(grid, km, where="post", lw=1.5, label=f"{seg}: Kaplan-Meier")
        ax.plot(grid, S[m].mean(axis=0), color=line.get_color(), ls="--", lw=1.2, label=f"{seg}: model")
        if S_or is not None:
            so = S_or[m]
            so = so[np.isfinite(so).all(axis=1)]
            if len(so):
                ax.plot(grid, so.mean(axis=0), color=line.get_color(), ls=":", lw=1.2, label=f"{seg}: oracle")
    ax.set_xlabel("days after as-of")
    ax.set_ylabel("share still a customer")
    ax.set_title("Validation snapshots: observed vs mean predicted survival")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    return fig


def _drivers_plot(contrib: pd.DataFrame, top: int = 20):
    imp = contrib.abs().mean().sort_values(ascending=True).tail(top)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(imp) + 1.5))
    ax.barh(imp.index.astype(str), imp.to_numpy())
    ax.set_xlabel("mean |contribution to log hazard ratio| (validation snapshots)")
    ax.set_title("Survival drivers (associations, not causes)")
    fig.tight_layout()
    return fig
