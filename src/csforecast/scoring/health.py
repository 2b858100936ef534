"""Health family at serve time: the 0–100 score with its band and exact component contributions, the risk
triggers with their evidence, the weekly history and week-over-week change explanations (docs/health.md)."""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from csforecast.config import Settings, TriggerSettings, get_settings
from csforecast.models.health import CHAMPION_LEVER, COMPONENTS, HealthScoreModel, band_of
from csforecast.models.scorecard import five_band_of, pillar_scores, quadrant

__all__ = ["OUTPUTS", "score_health", "scorecard_columns", "band_cutoffs", "evaluate_triggers", "health_history", "explain_change",
           "pyfunc_frame"]

OUTPUTS = ("health_score", "health_band", "health_components", "triggers", "outcomes_score", "experience_score",
           "health_quadrant", "health_band5")
MINUS = "\u2212"


def band_cutoffs(estimator: HealthScoreModel, settings: Settings | None = None) -> tuple[float, float]:
    """(red, yellow) score cut-offs from the ``health_bands`` settings (fixed, or quantiles of the training
    scores with mode "quantile")."""
    hb = (settings or get_settings()).health_bands
    return estimator.score_cutoffs(hb.red, hb.yellow, hb.mode)


def scorecard_columns(components: pd.DataFrame, score, settings: Settings) -> dict[str, np.ndarray]:
    """The scorecard beside the score (docs/health.md, "The scorecard people can own"): ``outcomes_score`` and
    ``experience_score`` (0-100, NaN when the pillar has no component), ``health_quadrant`` (healthy |
    false_positive | quiet_value | at_risk; None when a pillar is missing) split at ``[scorecard] quadrant_cut``,
    and ``health_band5`` (critical | poor | fair | good | excellent; None for a missing score) at
    ``[scorecard] five_bands``. ValueError for five-band cut-offs that are not four rising numbers."""
    sc = settings.scorecard
    pil = pillar_scores(components)
    q = quadrant(pil["outcomes"], pil["experience"], sc.quadrant_cut)
    s = np.asarray(score, dtype=float)
    b5 = five_band_of(s, sc.five_bands)
    b5[np.isnan(s)] = None
    return {"outcomes_score": pil["outcomes"].to_numpy(dtype=float),
            "experience_score": pil["experience"].to_numpy(dtype=float),
            "health_quadrant": np.where(q == "unknown", None, q).astype(object), "health_band5": b5}


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
    band, contribution, lever}; contributions sum exactly to health_score - 50), triggers and the scorecard
    columns (`scorecard_columns`: outcomes_score, experience_score, health_quadrant, health_band5)."""
    settings = settings or get_settings()
    red, yellow = band_cutoffs(estimator, settings)
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
                         "health_components": lists, "triggers": triggers,
                         **scorecard_columns(comps, score, settings)}, index=snapshot.index)


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


def pyfunc_frame(estimator, X: pd.DataFrame) -> pd.DataFrame:
    """What the MLflow pyfunc model answers: ``health_score`` per row."""
    return pd.DataFrame({"health_score": estimator.predict(X)}, index=X.index)
