"""Data shaping for the dashboard pages: pure functions from the served score set (and results computed in
the background: ARR movements, renewal forecasts, backtests, registry artifacts) to plain dicts that the
templates only print.

Nothing here reads files, the registry or the data source; nothing invents a number. A value that is not
known is ``None`` and shown as "—"; a section whose input is missing carries a ``missing`` message saying
why. Numbers are formatted here (strings), so the templates hold no logic and the 10,000-account pages stay
fast (no macro call per cell).

The portfolio frame (`build_frame`) is built once per score set from the pre-serialised API items and
details; the page functions then filter and aggregate it with pandas.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

UNASSIGNED = "unassigned"           # CSM filter / group value of accounts without a CSM (as in forecasts)
ARR_BANDS = (0.0, 10_000.0, 50_000.0, 200_000.0, math.inf)
ARR_BAND_LABELS = ("<10k", "10k–50k", "50k–200k", "≥200k")
HIGH_ARR = 50_000.0                 # "high-ARR": ARR at or above this (the two top ARR bands)
LOW_TIER_ARR = 10_000.0             # "low-tier": ARR below this (the lowest ARR band)
HIGH_RISK = 0.3                     # churn probability flagged "high risk" (the forecast's at-risk threshold)
TOP_RISK = 25                       # rows of the high-risk high-ARR list
BANDS = ("red", "yellow", "green")
BAND_COLORS = {"red": "#c62828", "yellow": "#f9a825", "green": "#2e7d32", "none": "#9e9e9e"}
MOVEMENT_QUARTERS = 8
BACKTEST_METHOD = "model"
DASH = "—"
FAMILY_ARTIFACTS = {   # artifacts shown on the models page, per family (logged by the training pipelines)
    "churn": ("calibration_curve.png", "shap_summary.png"),
    "survival": ("calibration_365.png", "survival_vs_km.png"),
    "health": ("decile_churn.png",),
}
HEALTH_REPORT = "health_report.md"


# ------------------------------------------------------------------------------------------- glossary
GLOSSARY: dict[str, tuple[str, str]] = {
    "arr": ("ARR", "Annual recurring revenue: the annualised value of the account's active contracts."),
    "arr_band": ("ARR band", "Accounts grouped by ARR: <10k, 10k–50k, 50k–200k, ≥200k (currency of the data). "
                             "High-ARR means ARR ≥ 50k; low-tier means ARR < 10k."),
    "churn_probability": ("Churn probability", "Calibrated probability that the account does not renew at its "
                                               "next renewal date, from the champion churn model."),
    "risk_arr": ("Risk × ARR", "Churn probability × ARR: the ARR expected to be lost at the next renewal. "
                               "Lists are sorted by it."),
    "expected_churned_arr": ("Expected churned ARR", "Sum of churn probability × ARR over the accounts: the ARR "
                                                     "expected to be lost at their next renewals."),
    "renewal_date": ("Renewal date", "End of the current contract: the day the next renewal decision is due."),
    "renewals_due": ("Renewals due", "Accounts whose next renewal date falls in the month or quarter, and their ARR."),
    "grr": ("GRR", "Gross revenue retention = (starting ARR − contraction − churned) / starting ARR. Never above "
                   "100 %. For a renewal window: renewed ARR (at the ARR due) / ARR due."),
    "nrr": ("NRR", "Net revenue retention = (starting ARR + expansion − contraction − churned) / starting ARR. "
                   "For a renewal window: ARR of the renewed contracts' successors / ARR due."),
    "logo_retention": ("Logo retention", "Share of the accounts active at the start of a period still active at its "
                                         "end."),
    "p10_p90": ("P10 / P50 / P90", "Percentiles of the Monte Carlo forecast: 10 % of simulated outcomes fall below "
                                   "P10, half below P50, 90 % below P90. P10–P90 is an 80 % interval."),
    "fan_chart": ("Fan chart", "The forecast's P10–P90 band (shaded) around its P50 and expected value, per quarter."),
    "renewed_arr": ("Renewed ARR", "ARR due in the window that renews (valued at the ARR due, before expansion "
                                   "or contraction)."),
    "arr_due": ("ARR due", "ARR of the contracts whose renewal date falls in the window."),
    "new_arr": ("New ARR", "ARR of accounts that had none at the start of the period."),
    "expansion_arr": ("Expansion ARR", "ARR increase of accounts active at both ends of the period."),
    "contraction_arr": ("Contraction ARR", "ARR decrease of accounts still active at the end of the period."),
    "churned_arr": ("Churned ARR", "ARR of accounts active at the start of the period with none at its end."),
    "health_score": ("Health score", "0–100, higher is healthier: component scores weighted by a logistic "
                                     "regression of churn at renewal; the typical account scores 50."),
    "health_band": ("Health band", "red / yellow / green from cut-offs on the health score (see the bands below)."),
    "health_component": ("Health component", "Deployment, adoption, engagement, NPS, support (…): each scored "
                                             "0–100 from documented measures."),
    "contribution": ("Contribution", "Points a component adds to (or takes from) the health score relative to the "
                                     "typical account (exact Shapley values; they sum to score − 50)."),
    "health_change": ("Health change", "Health score now minus one week earlier, with the components that moved it."),
    "driver": ("Driver", "A feature that pushes this account's churn probability up or down in the model "
                         "(log-odds contribution). Drivers are associations learned from history, not causes."),
    "lever": ("Lever", "The CS action usually associated with a driver or component (e.g. an executive business "
                       "review for engagement). Associations, not proven effects."),
    "trigger": ("Risk trigger", "A rule that fired on the latest data (e.g. champion left, NPS detractor), with "
                                "its evidence."),
    "survival": ("Survival curve", "Probability the account is still active 90, 180 and 365 days after the as-of "
                                   "date, from the survival model."),
    "expected_lifetime": ("Expected lifetime", "Expected remaining customer lifetime in days (survival model)."),
    "auc": ("AUC", "Area under the ROC curve: probability a churned account is ranked above a renewed one "
                   "(0.5 = chance, 1 = perfect)."),
    "ece": ("ECE", "Expected calibration error: mean |observed churn rate − predicted probability| over 10 "
                   "equal-width probability bins, weighted by rows. 0 = perfectly calibrated."),
    "brier": ("Brier score", "Mean squared error of the predicted probabilities (lower is better)."),
    "log_loss": ("Log loss", "Mean negative log-likelihood of the outcomes under the predicted probabilities."),
    "calibration_slope": ("Calibration slope", "Slope of a logistic fit of the outcome on the predicted log-odds; "
                                               "1 = well spread, < 1 = over-confident."),
    "c_index": ("C-index", "Concordance of predicted risk with observed churn times (0.5 = chance)."),
    "wape": ("WAPE", "Weighted absolute percentage error = Σ|actual − forecast| / Σ|actual| over the backtested "
                     "quarters (and segments)."),
    "bias": ("Bias", "Mean signed forecast error relative to the actuals (positive = forecast too high)."),
    "coverage": ("P10–P90 coverage", "Share of backtested quarters whose actual fell inside the forecast's "
                                     "P10–P90 interval (80 % if the intervals are calibrated)."),
    "oracle": ("Oracle", "The same metric computed from the simulator's true churn probabilities: the best any "
                         "model could do on this (simulated) data. Only known for simulated portfolios."),
    "champion": ("Champion", "The registered model version that is served. A new version becomes champion only if "
                             "it beats the current one on the same validation rows."),
    "as_of": ("As of", "The date the scores describe: features use only data before it."),
    "score_set": ("Score set", "One versioned batch of scores for every active account (scores store)."),
    "coverage_anomaly": ("Coverage anomaly", "High-ARR accounts (≥ 50k) without an assigned CSM, or low-tier "
                                             "accounts (< 10k) with one."),
    "tau": ("τ (common shock)", "Standard deviation of a shared shock on the churn log-odds that widens forecast "
                                "intervals; calibrated by the backtest."),
}


def term(key: str) -> dict:
    """{"key", "name", "definition"} of a glossary entry (for title attributes and links)."""
    name, definition = GLOSSARY[key]
    return {"key": key, "name": name, "definition": definition}


def glossary_view(band_cutoffs: Mapping[str, Any] | None = None) -> dict:
    items = [term(k) for k in sorted(GLOSSARY, key=lambda k: GLOSSARY[k][0].lower())]
    if band_cutoffs:
        mode = band_cutoffs.get("mode", "fixed")
        extra = (f"Configured cut-offs: red below {band_cutoffs.get('red')}, yellow below "
                 f"{band_cutoffs.get('yellow')}, green otherwise ({mode}"
                 f"{' quantiles of the current base' if mode == 'quantile' else ' score points'}).")
        for it in items:
            if it["key"] == "health_band":
                it["definition"] = it["definition"] + " " + extra
    return {"items": items}


# ------------------------------------------------------------------------------------------- formatting
def _finite(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def money(x: Any) -> str:
    """Compact amount: 1.23M, 45.6k, 950 (no currency: the data's)."""
    f = _finite(x)
    if f is None:
        return DASH
    a = abs(f)
    if a >= 1e9:
        s = f"{f / 1e9:.2f}B"
    elif a >= 1e6:
        s = f"{f / 1e6:.2f}M"
    elif a >= 1e4:
        s = f"{f / 1e3:.0f}k"
    elif a >= 1e3:
        s = f"{f / 1e3:.1f}k"
    else:
        s = f"{f:.0f}"
    return s.replace("-", "−")


def money_full(x: Any) -> str:
    f = _finite(x)
    return DASH if f is None else f"{f:,.2f}".replace("-", "−")


def pct(x: Any, nd: int = 1) -> str:
    f = _finite(x)
    return DASH if f is None else f"{100 * f:.{nd}f} %".replace("-", "−")


def num(x: Any, nd: int = 1) -> str:
    f = _finite(x)
    return DASH if f is None else f"{f:,.{nd}f}".replace("-", "−")


def signed(x: Any, nd: int = 1) -> str:
    f = _finite(x)
    if f is None:
        return DASH
    s = f"{f:+.{nd}f}"
    return s.replace("-", "−")


def intc(x: Any) -> str:
    f = _finite(x)
    return DASH if f is None else f"{int(round(f)):,}"


def day(x: Any) -> str:
    if x is None:
        return DASH
    try:
        ts = pd.Timestamp(x)
    except (TypeError, ValueError):
        return str(x)
    return DASH if ts is pd.NaT else ts.date().isoformat()


def _clean(v: Any) -> Any:
    """JSON-safe (NaN/inf -> None) values for chart specs."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, (pd.Timestamp, date)):
        return day(v)
    return v


def chart(chart_id: str, data: list[dict], layout: dict | None = None) -> dict:
    """A Plotly figure spec ({"id", "spec"}) the page script draws; the template also prints its table."""
    base = {"margin": {"l": 60, "r": 20, "t": 30, "b": 50}, "height": 320,
            "legend": {"orientation": "h", "y": -0.2}, "font": {"size": 12},
            "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)"}
    return {"id": chart_id, "spec": _clean({"data": data, "layout": {**base, **(layout or {})}})}


# ------------------------------------------------------------------------------------------- the frame
FRAME_COLUMNS = ["account_id", "name", "segment", "industry", "region", "csm_id", "arr", "renewal_date",
                 "days_to_renewal", "churn_probability", "health_score", "health_band", "risk_arr"]


def arr_band(arr: pd.Series) -> pd.Series:
    cut = pd.cut(pd.to_numeric(arr, errors="coerce"), list(ARR_BANDS), right=False, labels=list(ARR_BAND_LABELS))
    return cut.astype(object).where(cut.notna(), "unknown")


def build_frame(items: Iterable[bytes], details: Mapping[str, bytes] | None = None) -> pd.DataFrame:
    """One row per scored account from the API's pre-serialised list items (AccountSummary JSON) and details
    (AccountDetail JSON: triggers and the weekly trend give n_triggers, week_change, prev_week)."""
    rows = [json.loads(b) for b in items]
    df = pd.DataFrame(rows, columns=FRAME_COLUMNS) if rows else pd.DataFrame(columns=FRAME_COLUMNS)
    for c in ("arr", "days_to_renewal", "churn_probability", "health_score", "risk_arr"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    df["renewal_date"] = pd.to_datetime(df["renewal_date"], errors="coerce")
    for c in ("segment", "region", "industry", "name", "health_band"):
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    df["has_csm"] = df["csm_id"].notna() & (df["csm_id"].astype(str) != "")
    df["csm"] = np.where(df["has_csm"], df["csm_id"].astype(str), UNASSIGNED)
    df["arr_band"] = arr_band(df["arr"])
    df["band"] = df["health_band"].fillna("none")
    n_trig = np.full(len(df), np.nan)
    change = np.full(len(df), np.nan)
    has_health = np.zeros(len(df), dtype=bool)
    if details:
        for i, aid in enumerate(df["account_id"].astype(str)):
            raw = details.get(aid)
            if raw is None:
                continue
            d = json.loads(raw)
            trig = d.get("triggers")
            if trig is not None:
                n_trig[i] = len(trig)
                has_health[i] = True
            trend = [p.get("health_score") for p in (d.get("health_trend") or [])]
            if len(trend) >= 2 and trend[-1] is not None and trend[-2] is not None:
                change[i] = float(trend[-1]) - float(trend[-2])
    df["n_triggers"] = n_trig
    df["week_change"] = change
    df["high_arr"] = (df["arr"] >= HIGH_ARR).to_numpy()
    df["low_tier"] = (df["arr"] < LOW_TIER_ARR).to_numpy()
    # precomputed keys so that a page is a few vectorised group-bys over 10,000 rows
    df["seg"] = df["segment"].fillna("(none)").astype(str)
    df["csm_assigned"] = np.where(df["has_csm"], "yes", "no")
    rd = df["renewal_date"]
    ok = rd.notna().to_numpy()
    y = rd.dt.year.fillna(0).to_numpy(dtype=np.int64)
    m = rd.dt.month.fillna(1).to_numpy(dtype=np.int64)
    df["renew_m"] = np.where(ok, y * 12 + m - 1, -1)
    df["renew_q"] = np.where(ok, y * 4 + (m - 1) // 3, -1)
    risk = df["risk_arr"].to_numpy(dtype=float)
    null = np.isnan(risk)
    order = np.lexsort((df["account_id"].astype(str).to_numpy(), -df["arr"].fillna(0).to_numpy(),
                        np.where(null, 0.0, -risk), null))
    rank = np.empty(len(df), dtype=np.int64)
    rank[order] = np.arange(len(df))
    df["risk_rank"] = rank            # 0 = largest churn probability × ARR (nulls last; ties: ARR, id)
    # display strings, formatted once per score set
    df["arr_s"] = [money(x) for x in df["arr"]]
    df["arr_full"] = [money_full(x) for x in df["arr"]]
    df["p_s"] = [pct(x) for x in df["churn_probability"]]
    df["risk_s"] = [money(x) for x in df["risk_arr"]]
    df["renewal_s"] = [day(x) for x in df["renewal_date"]]
    df["health_s"] = [num(x, 0) for x in df["health_score"]]
    df["high_risk"] = (df["churn_probability"] >= HIGH_RISK).to_numpy()
    return df


def last_changes(history: pd.DataFrame | None) -> dict[str, tuple[str | None, float | None, str | None]]:
    """account_id -> (week, change vs the week before, explanation) of the latest week of the health history."""
    if history is None or history.empty or not {"account_id", "week"} <= set(history.columns):
        return {}
    h = history.sort_values(["account_id", "week"]).groupby("account_id", sort=False).tail(1)
    ch = h["change"] if "change" in h else pd.Series(np.nan, index=h.index)
    ex = h["change_explanation"] if "change_explanation" in h else pd.Series(None, index=h.index)
    return {str(a): (day(w), _finite(c), e if isinstance(e, str) else None)
            for a, w, c, e in zip(h["account_id"], h["week"], ch, ex)}


def trend_explanations(history: pd.DataFrame | None) -> dict[str, dict[str, str]]:
    """account_id -> {week (ISO) -> change explanation}."""
    if history is None or history.empty or "change_explanation" not in history.columns:
        return {}
    out: dict[str, dict[str, str]] = {}
    h = history[history["change_explanation"].notna()]
    for a, w, e in zip(h["account_id"].astype(str), h["week"], h["change_explanation"]):
        out.setdefault(a, {})[day(w)] = str(e)
    return out


# ------------------------------------------------------------------------------------------- filters
@dataclass(frozen=True)
class Filters:
    segment: str | None = None
    region: str | None = None
    csm: str | None = None          # a csm_id, or UNASSIGNED

    @classmethod
    def parse(cls, segment: str | None, region: str | None, csm: str | None) -> "Filters":
        def norm(v):
            v = (v or "").strip()
            return v[:200] or None
        return cls(norm(segment), norm(region), norm(csm))

    def active(self) -> dict[str, str]:
        return {k: v for k, v in (("segment", self.segment), ("region", self.region), ("csm", self.csm)) if v}

    def mask(self, df: pd.DataFrame) -> np.ndarray:
        m = np.ones(len(df), dtype=bool)
        if self.segment:
            m &= (df["segment"] == self.segment).to_numpy()
        if self.region:
            m &= (df["region"] == self.region).to_numpy()
        if self.csm:
            m &= (df["csm"] == self.csm).to_numpy()
        return m

    def forecast_group(self) -> tuple[str | None, str | None, str | None]:
        """(group_by, group value, note) for the renewal forecast: it can be sliced by one dimension only."""
        act = self.active()
        if not act:
            return None, None, None
        if len(act) > 1:
            return None, None, ("the renewal forecast is sliced by one filter at a time (segment, region or CSM): "
                                "clear the others to see it for this selection")
        (k, v), = act.items()
        return {"segment": "segment", "region": "region", "csm": "csm_id"}[k], v, None

    def account_ids(self, accounts: pd.DataFrame) -> set[str] | None:
        """Ids of the accounts (the data source's accounts table) that match; None when no filter is set."""
        if not self.active():
            return None
        m = np.ones(len(accounts), dtype=bool)
        if self.segment:
            m &= (accounts["segment"].astype(str) == self.segment).to_numpy() if "segment" in accounts else False
        if self.region:
            m &= (accounts["region"].astype(str) == self.region).to_numpy() if "region" in accounts else False
        if self.csm:
            if "csm_id" not in accounts:
                m &= self.csm == UNASSIGNED
            else:
                c = accounts["csm_id"]
                has = c.notna() & (c.astype(str) != "")
                m &= (~has).to_numpy() if self.csm == UNASSIGNED else (has & (c.astype(str) == self.csm)).to_numpy()
        return set(accounts.loc[m, "account_id"].astype(str))


def filter_options(df: pd.DataFrame) -> dict:
    def opts(col):
        return sorted({str(v) for v in df[col].dropna().unique()})
    csms = sorted({str(v) for v in df.loc[df["has_csm"], "csm_id"].unique()})
    return {"segment": opts("segment"), "region": opts("region"),
            "csm": csms + ([UNASSIGNED] if (~df["has_csm"]).any() else [])}


# ------------------------------------------------------------------------------------------- portfolio
def _account_row(r) -> dict:
    return {"account_id": r.account_id, "name": r.name or DASH, "segment": r.segment or DASH,
            "region": r.region or DASH, "csm": r.csm, "arr": r.arr_s, "arr_full": r.arr_full, "p": r.p_s,
            "risk_arr": r.risk_s, "renewal_date": r.renewal_s, "band": r.band, "health": r.health_s,
            "high_risk": bool(r.high_risk)}


def renewals_due(df: pd.DataFrame, as_of: date) -> dict:
    """Accounts whose next renewal falls in each of the 12 months / 4 quarters from the as-of date (renewal
    dates before the as-of date are left out)."""
    start = pd.Timestamp(as_of).normalize()
    future = (df["renewal_date"] >= start).to_numpy()
    arr = np.nan_to_num(df["arr"].to_numpy(dtype=float))
    risk = df["risk_arr"].to_numpy(dtype=float)
    known = ~np.isnan(risk)
    out = {}
    for freq, col, n, key in (("M", "renew_m", 12, "months"), ("Q", "renew_q", 4, "quarters")):
        p0 = pd.Period(start, freq=freq)
        first = start.year * 12 + start.month - 1 if freq == "M" else start.year * 4 + (start.month - 1) // 3
        code = df[col].to_numpy() - first
        ok = future & (code >= 0) & (code < n)
        c = code[ok]
        cnt = np.bincount(c, minlength=n)
        arr_s = np.bincount(c, weights=arr[ok], minlength=n)
        risk_s = np.bincount(c, weights=np.nan_to_num(risk[ok]), minlength=n)
        risk_n = np.bincount(c, weights=known[ok].astype(float), minlength=n)
        rows = []
        for k in range(n):
            r = float(risk_s[k]) if risk_n[k] > 0 else None
            a = float(arr_s[k])
            rows.append({"period": str(p0 + k), "count": int(cnt[k]), "arr": a, "expected_churned_arr": r,
                         "arr_s": money(a), "arr_full": money_full(a), "exp_s": money(r), "count_s": intc(cnt[k])})
        out[key] = rows
    out["no_date"] = int(df["renewal_date"].isna().sum())
    out["later"] = int((df["renewal_date"] >= (pd.Period(start, freq="M") + 12).start_time).sum())
    out["chart"] = chart("renewals-due", [
        {"type": "bar", "name": "ARR due", "x": [r["period"] for r in out["months"]],
         "y": [r["arr"] for r in out["months"]], "marker": {"color": "#1565c0"},
         "customdata": [r["count"] for r in out["months"]],
         "hovertemplate": "%{x}: %{y:,.0f} ARR due (%{customdata} accounts)<extra></extra>"},
        {"type": "bar", "name": "expected churned ARR", "x": [r["period"] for r in out["months"]],
         "y": [r["expected_churned_arr"] for r in out["months"]], "marker": {"color": "#c62828"},
         "hovertemplate": "%{x}: %{y:,.0f} expected churned<extra></extra>"},
    ], {"barmode": "group", "yaxis": {"title": "ARR"}, "xaxis": {"type": "category"}})
    return out


def forecast_section(results: list[dict] | None, group_by: str | None, group: str | None) -> dict:
    """Fan chart + GRR/NRR of the next quarters from forecast_window results (one per quarter, in order)."""
    rows = []
    for res in results or []:
        if group_by is None:
            o = res
        else:
            o = next((g for g in res.get("groups") or [] if str(g.get("group")) == str(group)), None)
        w = res["window"]
        label = str(pd.Period(pd.Timestamp(w["start"]), freq="Q"))
        if o is None:
            rows.append({"quarter": label, "start": w["start"], "end": w["end"], "empty": True})
            continue
        due = o.get("renewals_due") or {}
        e, iv = o.get("expected") or {}, o.get("intervals") or {}
        ra, g, n = iv.get("renewed_arr") or {}, iv.get("grr") or {}, iv.get("nrr") or {}
        rows.append({"quarter": label, "start": w["start"], "end": w["end"], "empty": False,
                     "count": due.get("count"), "due": due.get("arr"), "expected": e.get("renewed_arr"),
                     "p10": ra.get("p10"), "p50": ra.get("p50"), "p90": ra.get("p90"),
                     "grr": e.get("grr"), "grr_p10": g.get("p10"), "grr_p90": g.get("p90"),
                     "nrr": e.get("nrr"), "nrr_p10": n.get("p10"), "nrr_p90": n.get("p90")})
    table = [{**r, **({} if r["empty"] else {
        "count_s": intc(r["count"]), "due_s": money(r["due"]), "expected_s": money(r["expected"]),
        "p10_s": money(r["p10"]), "p50_s": money(r["p50"]), "p90_s": money(r["p90"]),
        "grr_s": pct(r["grr"]), "grr_band": f"{pct(r['grr_p10'])} – {pct(r['grr_p90'])}",
        "nrr_s": pct(r["nrr"]), "nrr_band": f"{pct(r['nrr_p10'])} – {pct(r['nrr_p90'])}"})} for r in rows]
    ok = [r for r in rows if not r["empty"]]
    x = [r["quarter"] for r in ok]
    fan = chart("forecast-fan", [
        {"type": "scatter", "mode": "lines", "name": "P90", "x": x, "y": [r["p90"] for r in ok],
         "line": {"width": 0.5, "color": "#90caf9"}, "hovertemplate": "P90 %{y:,.0f}<extra></extra>"},
        {"type": "scatter", "mode": "lines", "name": "P10–P90", "x": x, "y": [r["p10"] for r in ok],
         "fill": "tonexty", "fillcolor": "rgba(21,101,192,0.2)", "line": {"width": 0.5, "color": "#90caf9"},
         "hovertemplate": "P10 %{y:,.0f}<extra></extra>"},
        {"type": "scatter", "mode": "lines+markers", "name": "P50", "x": x, "y": [r["p50"] for r in ok],
         "line": {"color": "#1565c0"}, "hovertemplate": "P50 %{y:,.0f}<extra></extra>"},
        {"type": "scatter", "mode": "markers", "name": "expected", "x": x, "y": [r["expected"] for r in ok],
         "marker": {"symbol": "diamond", "size": 9, "color": "#0d47a1"},
         "hovertemplate": "expected %{y:,.0f}<extra></extra>"},
        {"type": "scatter", "mode": "markers", "name": "ARR due", "x": x, "y": [r["due"] for r in ok],
         "marker": {"symbol": "line-ew-open", "size": 18, "color": "#555"},
         "hovertemplate": "ARR due %{y:,.0f}<extra></extra>"},
    ], {"yaxis": {"title": "renewed ARR", "rangemode": "tozero"}, "xaxis": _cat_axis(x)})
    rates = chart("forecast-rates", [
        {"type": "scatter", "mode": "markers+lines", "name": "GRR (expected, P10–P90)", "x": x,
         "y": [r["grr"] for r in ok], "error_y": {"type": "data", "symmetric": False,
                                                    "array": [_gap(r["grr_p90"], r["grr"]) for r in ok],
                                                    "arrayminus": [_gap(r["grr"], r["grr_p10"]) for r in ok]}},
        {"type": "scatter", "mode": "markers+lines", "name": "NRR (expected, P10–P90)", "x": x,
         "y": [r["nrr"] for r in ok], "error_y": {"type": "data", "symmetric": False,
                                                    "array": [_gap(r["nrr_p90"], r["nrr"]) for r in ok],
                                                    "arrayminus": [_gap(r["nrr"], r["nrr_p10"]) for r in ok]}},
    ], {"yaxis": {"title": "rate", "tickformat": ".0%"}, "xaxis": _cat_axis(x)})
    return {"rows": table, "fan": fan if ok else None, "rates": rates if ok else None}


def _cat_axis(x: list) -> dict:
    """A category x axis with half a slot of room on both sides (points are not drawn on the edges)."""
    return {"type": "category", "range": [-0.5, len(x) - 0.5]}


def _gap(a, b):
    a, b = _finite(a), _finite(b)
    return None if a is None or b is None else max(a - b, 0.0)


def backtest_section(bt: dict | None, segment: str | None) -> dict:
    """Last quarters' forecast vs actual (method `model`) from the latest backtest run's backtest.json."""
    if not bt:
        return {"missing": "no backtest run yet (run `csforecast backtest --data …`)"}
    result = bt.get("result") or {}
    note = None
    if segment:
        rows = [r for r in result.get("segments") or [] if r.get("method") == BACKTEST_METHOD
                and str(r.get("segment")) == segment]
        scope = f"segment {segment}"
    else:
        rows = [r for r in result.get("quarters") or [] if r.get("method") == BACKTEST_METHOD]
        scope = "whole portfolio"
    if not rows:
        return {"missing": f"the latest backtest run ({bt.get('run_id')}) has no quarters for {scope}",
                "run_id": bt.get("run_id")}
    rows = sorted(rows, key=lambda r: str(r.get("quarter")))
    table = [{"quarter": r.get("quarter"), "due": money(r.get("arr_due")),
              "forecast": money(r.get("forecast_renewed_arr")),
              "p10": money(r.get("p10")), "p90": money(r.get("p90")), "actual": money(r.get("actual_renewed_arr")),
              "covered": "yes" if r.get("covered") else "no", "error": money(r.get("error")),
              "grr": f"{pct(r.get('grr_forecast'))} / {pct(r.get('grr_actual'))}",
              "nrr": f"{pct(r.get('nrr_forecast'))} / {pct(r.get('nrr_actual'))}"} for r in rows]
    x = [r.get("quarter") for r in rows]
    fig = chart("backtest", [
        {"type": "scatter", "mode": "markers", "name": "forecast (expected, P10–P90)", "x": x,
         "y": [r.get("forecast_renewed_arr") for r in rows], "marker": {"color": "#1565c0", "size": 9},
         "error_y": {"type": "data", "symmetric": False,
                     "array": [_gap(r.get("p90"), r.get("forecast_renewed_arr")) for r in rows],
                     "arrayminus": [_gap(r.get("forecast_renewed_arr"), r.get("p10")) for r in rows]}},
        {"type": "scatter", "mode": "markers", "name": "actual", "x": x,
         "y": [r.get("actual_renewed_arr") for r in rows],
         "marker": {"color": "#000", "symbol": "x", "size": 10}},
    ], {"yaxis": {"title": "renewed ARR", "rangemode": "tozero"}, "xaxis": _cat_axis(x)})
    summ = (result.get("summary") or {}).get(BACKTEST_METHOD) or {}
    oracle = (result.get("summary") or {}).get("oracle") or {}
    summary = {"wape": pct(summ.get("wape")), "wape_oracle": pct(oracle.get("wape")) if oracle else None,
               "coverage": pct(summ.get("coverage_p10_p90"), 0), "bias": pct(summ.get("bias")),
               "n": summ.get("intervals_counted")}
    return {"rows": table, "chart": fig, "summary": summary, "run_id": bt.get("run_id"), "scope": scope,
            "data_end": result.get("data_end"), "note": note, "created": bt.get("created")}


def movements_section(mov: pd.DataFrame | None) -> dict:
    if mov is None:
        return {"missing": "no ARR movements"}
    if mov.empty:
        return {"missing": "no complete quarter of contract data for this selection"}
    m = mov.sort_values("period_start").tail(MOVEMENT_QUARTERS)
    x = [str(p) for p in m["period"]]

    def col(c):
        return [_finite(v) for v in m[c]]
    fig = chart("movements", [
        {"type": "bar", "name": "new", "x": x, "y": col("new_arr"), "marker": {"color": "#2e7d32"}},
        {"type": "bar", "name": "expansion", "x": x, "y": col("expansion_arr"), "marker": {"color": "#81c784"}},
        {"type": "bar", "name": "contraction", "x": x, "y": [-(v or 0) for v in col("contraction_arr")],
         "marker": {"color": "#ffb74d"}},
        {"type": "bar", "name": "churn", "x": x, "y": [-(v or 0) for v in col("churned_arr")],
         "marker": {"color": "#c62828"}},
    ], {"barmode": "relative", "yaxis": {"title": "ARR movement"}, "xaxis": {"type": "category"}})
    rows = [{"period": str(r.period), "starting": money(r.starting_arr), "new": money(r.new_arr),
             "expansion": money(r.expansion_arr), "contraction": money(r.contraction_arr),
             "churned": money(r.churned_arr), "ending": money(r.ending_arr), "grr": pct(r.grr), "nrr": pct(r.nrr)}
            for r in m.itertuples(index=False)]
    return {"rows": rows, "chart": fig}


def health_by_segment(df: pd.DataFrame) -> dict:
    if df.empty or df["health_band"].isna().all():
        return {"missing": "no health scores in this score set (no health model served)"}
    g = df.groupby(["seg", "band"], sort=False).agg(n=("account_id", "size"), arr=("arr", "sum"))
    n, arr = g["n"].to_dict(), g["arr"].to_dict()
    segs = sorted({s for s, _ in n if s != "(none)"}) + (["(none)"] if any(s == "(none)" for s, _ in n) else [])
    present = {b for _, b in n}
    cols = [b for b in (*BANDS, "none") if b in present]
    data = [{"type": "bar", "name": b if b != "none" else "no score", "x": segs,
             "y": [n.get((s, b), 0) for s in segs], "marker": {"color": BAND_COLORS[b]}} for b in cols]
    rows = []
    for s in segs:
        tot = sum(n.get((s, b), 0) for b in cols)
        rows.append({"segment": s, "n": intc(tot), "cells": [
            {"band": b, "n": intc(n.get((s, b), 0)), "share": pct(n.get((s, b), 0) / tot if tot else None, 0),
             "arr": money(arr.get((s, b), 0.0))} for b in cols]})
    return {"chart": chart("health-bands", data, {"barmode": "stack", "yaxis": {"title": "accounts"},
                                                      "xaxis": {"type": "category"}}),
            "rows": rows, "bands": cols}


def metrics_matrix(df: pd.DataFrame) -> dict:
    """segment × ARR band × CSM assigned × health band: accounts, ARR, mean churn probability, expected
    churned ARR; rows that are coverage anomalies are flagged."""
    if df.empty:
        return {"rows": [], "bands": list(BANDS)}
    g = df.groupby(["seg", "arr_band", "csm_assigned", "band"], sort=False).agg(
        n=("account_id", "size"), arr=("arr", "sum"), psum=("churn_probability", "sum"),
        pn=("churn_probability", "count"), risk=("risk_arr", "sum"), rn=("risk_arr", "count"))
    cells: dict[tuple, dict] = {}
    present = set()
    for (seg, ab, cs, band), r in zip(g.index, g.itertuples(index=False)):
        present.add(band)
        c = cells.setdefault((seg, ab, cs), {"n": 0, "arr": 0.0, "psum": 0.0, "pn": 0, "risk": 0.0, "rn": 0,
                                              "bands": {}})
        c["n"] += r.n
        c["arr"] += r.arr
        c["psum"] += r.psum
        c["pn"] += r.pn
        c["risk"] += r.risk
        c["rn"] += r.rn
        c["bands"][band] = r.n
    cols = [b for b in (*BANDS, "none") if b in present]
    order = {b: i for i, b in enumerate(ARR_BAND_LABELS + ("unknown",))}
    rows = []
    for k in sorted(cells, key=lambda k: (k[0], order.get(k[1], 99), k[2])):
        c = cells[k]
        high = k[1] in ARR_BAND_LABELS[2:]
        low = k[1] == ARR_BAND_LABELS[0]
        anomaly = ("high-ARR without a CSM" if high and k[2] == "no" else
                   "low-tier with a CSM" if low and k[2] == "yes" else None)
        rows.append({"segment": k[0], "arr_band": k[1], "csm": k[2], "n": intc(c["n"]), "arr": money(c["arr"]),
                     "p": pct(c["psum"] / c["pn"]) if c["pn"] else DASH,
                     "risk": money(c["risk"]) if c["rn"] else DASH, "anomaly": anomaly,
                     "bands": [intc(c["bands"].get(b, 0)) for b in cols]})
    return {"rows": rows, "bands": cols}


def _top(df: pd.DataFrame, mask: np.ndarray, key: str, k: int, largest: bool) -> pd.DataFrame:
    """The k rows of df[mask] with the largest (smallest) `key`, in that order (without copying df[mask])."""
    idx = np.flatnonzero(mask)
    vals = df[key].to_numpy(dtype=float)[idx]
    order = np.argsort(-vals if largest else vals, kind="stable")[:k]
    return df.iloc[idx[order]]


def coverage_anomalies(df: pd.DataFrame, limit: int = 20) -> dict:
    hi = (df["high_arr"] & ~df["has_csm"]).to_numpy()
    lo = (df["low_tier"] & df["has_csm"]).to_numpy()
    arr = np.nan_to_num(df["arr"].to_numpy(dtype=float))
    def rows(mask, largest):
        return [_account_row(r) for r in _top(df, mask, "arr", limit, largest).itertuples(index=False)]
    return {"high_no_csm": {"n": intc(hi.sum()), "arr": money(arr[hi].sum()), "rows": rows(hi, True)},
            "low_with_csm": {"n": intc(lo.sum()), "arr": money(arr[lo].sum()), "rows": rows(lo, False)}}


def risk_list(df: pd.DataFrame, limit: int = TOP_RISK) -> list[dict]:
    top = _top(df, df["risk_arr"].notna().to_numpy(), "risk_rank", limit, False)
    return [_account_row(r) for r in top.itertuples(index=False)]


def portfolio_view(df: pd.DataFrame, filters: Filters, as_of: date, *, forecast: dict, backtest: dict,
                   movements: dict, options: dict | None = None) -> dict:
    """The portfolio page. `forecast`/`backtest`/`movements` are the section dicts (or {"missing"/"pending"});
    `options` the filter choices (filter_options(df), computed once per score set)."""
    sub = df[filters.mask(df)] if filters.active() else df
    summary = {"n": intc(len(sub)), "arr": money(sub["arr"].sum()), "arr_full": money_full(sub["arr"].sum()),
               "expected_churn": money(sub["risk_arr"].sum()) if sub["risk_arr"].notna().any() else DASH,
               "mean_p": pct(sub["churn_probability"].mean()) if len(sub) else DASH,
               "red": intc((sub["band"] == "red").sum()), "no_csm": intc((~sub["has_csm"]).sum())}
    return {"filters": filters.active(), "options": options or filter_options(df), "summary": summary,
            "renewals": renewals_due(sub, as_of), "forecast": forecast, "backtest": backtest,
            "movements": movements, "health": health_by_segment(sub), "matrix": metrics_matrix(sub),
            "anomalies": coverage_anomalies(sub), "risk": risk_list(sub), "empty": len(sub) == 0}


# ------------------------------------------------------------------------------------------- account
def account_view(detail: Mapping[str, Any], explanations: Mapping[str, str] | None, contracts: pd.DataFrame | None,
                 arr_history: pd.Series | None, *, contracts_missing: str | None, served: Mapping[str, str]) -> dict:
    """The account page from its AccountDetail (the API's JSON), the week-by-week change explanations, its
    contracts (data source) and its ARR history (month starts)."""
    d = detail
    p = _finite(d.get("churn_probability"))
    drivers = []
    for dr in d.get("drivers") or []:
        c = _finite(dr.get("contribution"))
        drivers.append({"text": dr.get("text") or dr.get("feature"), "feature": dr.get("feature"),
                        "lever": dr.get("lever") or DASH, "component": dr.get("component") or DASH,
                        "contribution": signed(c, 2), "direction": "raises" if (c or 0) > 0 else "lowers",
                        "direction_text": "associated with higher churn risk" if (c or 0) > 0
                        else "associated with lower churn risk"})
    surv = d.get("survival")
    survival = None
    if surv:
        pts = [(0, 1.0)] + [(t, _finite(surv.get(f"p_active_{t}d"))) for t in (90, 180, 365)]
        pts = [(t, v) for t, v in pts if v is not None]
        survival = {"rows": [{"days": t, "p": pct(v)} for t, v in pts[1:]],
                    "lifetime": num(surv.get("expected_lifetime_days"), 0),
                    "p_renewal": pct(surv.get("p_renewal_survival")),
                    "chart": chart("survival", [{"type": "scatter", "mode": "lines+markers",
                                                 "x": [t for t, _ in pts], "y": [v for _, v in pts],
                                                 "name": "P(active)",
                                                 "hovertemplate": "day %{x}: %{y:.1%}<extra></extra>"}],
                                   {"xaxis": {"title": "days after as-of"},
                                    "yaxis": {"title": "probability still active", "range": [0, 1.05],
                                              "tickformat": ".0%"}, "height": 260})}
    health = d.get("health")
    health_v = None
    if health:
        comps = sorted(health.get("components") or [], key=lambda c: _finite(c.get("contribution")) or 0.0)
        names = [str(c.get("component", "")).replace("_", " ").capitalize() for c in comps]
        vals = [_finite(c.get("contribution")) for c in comps]
        health_v = {"score": num(health.get("score"), 0), "band": health.get("band") or "none",
                    "components": [{"name": n, "score": num(c.get("score"), 0), "band": c.get("band") or "none",
                                    "contribution": signed(c.get("contribution"), 1), "lever": c.get("lever") or DASH}
                                   for n, c in zip(names, comps)],
                    "chart": chart("components", [{"type": "bar", "orientation": "h", "y": names, "x": vals,
                                                   "marker": {"color": ["#c62828" if (v or 0) < 0 else "#2e7d32"
                                                                        for v in vals]},
                                                   "hovertemplate": "%{y}: %{x:+.1f} points<extra></extra>"}],
                                   {"xaxis": {"title": "points vs the typical account (50)"},
                                    "height": max(180, 40 * len(names) + 80), "margin": {"l": 110}})}
    trend = d.get("health_trend") or []
    trend_v = None
    if trend:
        ex = explanations or {}
        rows = []
        prev = None
        for t in trend:
            s = _finite(t.get("health_score"))
            rows.append({"week": day(t.get("week")), "score": num(s, 1),
                         "change": signed(s - prev, 1) if s is not None and prev is not None else DASH,
                         "why": ex.get(day(t.get("week"))) or (DASH if prev is None else
                                                              "not recorded in this score set")})
            prev = s
        trend_v = {"rows": list(reversed(rows)), "explained": bool(ex),
                   "chart": chart("trend", [{"type": "scatter", "mode": "lines+markers",
                                             "x": [day(t.get("week")) for t in trend],
                                             "y": [_finite(t.get("health_score")) for t in trend],
                                             "text": [ex.get(day(t.get("week")), "") for t in trend],
                                             "hovertemplate": "%{x}: %{y:.1f}<br>%{text}<extra></extra>"}],
                                  {"yaxis": {"title": "health score", "range": [0, 100]}, "height": 260})}
    contracts_v = None
    if contracts is not None:
        c = contracts.sort_values("start_date")
        contracts_v = [{"contract_id": r.get("contract_id"), "start": day(r.get("start_date")),
                        "end": day(r.get("end_date")), "arr": money(r.get("arr")), "arr_full": money_full(r.get("arr")),
                        "renewed_by": r.get("renewed_by") or DASH,
                        "seats": intc(r.get("seats")) if "seats" in r else DASH}
                       for r in c.to_dict("records")]
    arr_v = None
    if arr_history is not None and len(arr_history):
        x = [day(t) for t in arr_history.index]
        arr_v = {"rows": [{"date": a, "arr": money(v), "arr_full": money_full(v)} for a, v in zip(x, arr_history)],
                 "chart": chart("arr-history", [{"type": "scatter", "mode": "lines", "line": {"shape": "hv"},
                                                 "x": x, "y": [_finite(v) for v in arr_history],
                                                 "hovertemplate": "%{x}: %{y:,.0f}<extra></extra>"}],
                                {"yaxis": {"title": "ARR", "rangemode": "tozero"}, "height": 240})}
    versions = d.get("model_versions") or {}
    return {"id": d.get("account_id"), "name": d.get("name") or d.get("account_id"),
            "profile": [("Segment", d.get("segment") or DASH), ("Region", d.get("region") or DASH),
                        ("Industry", d.get("industry") or DASH), ("CSM", d.get("csm_id") or UNASSIGNED),
                        ("ARR", money(d.get("arr"))), ("Seats", intc(d.get("seats"))),
                        ("Tenure", f"{intc(d.get('tenure_days'))} days"), ("Contract", d.get("contract_id") or DASH)],
            "csm": d.get("csm_id") or UNASSIGNED,
            "p": pct(p), "high_risk": p is not None and p >= HIGH_RISK, "renewal_date": day(d.get("renewal_date")),
            "days_to_renewal": intc(d.get("days_to_renewal")), "risk_arr": money(d.get("risk_arr")),
            "drivers": drivers, "survival": survival, "health": health_v, "triggers": d.get("triggers"),
            "trend": trend_v, "contracts": contracts_v, "contracts_missing": contracts_missing, "arr_history": arr_v,
            "versions": [{"family": f, "version": v, "served": served.get(f),
                          "stale": served.get(f) is not None and str(served.get(f)) != str(v)}
                         for f, v in sorted(versions.items())],
            "as_of": day(d.get("as_of")), "data_hash": d.get("data_hash"), "score_set": d.get("score_set_version")}


# ------------------------------------------------------------------------------------------- CSM book
def csm_list_view(df: pd.DataFrame) -> list[dict]:
    g = df.assign(red=(df["band"] == "red").to_numpy(), drop=(df["week_change"] <= -5).to_numpy()).groupby(
        "csm", sort=True).agg(n=("account_id", "size"), arr=("arr", "sum"), risk=("risk_arr", "sum"),
                              red=("red", "sum"), drops=("drop", "sum"))
    return [{"csm": csm, "n": intc(r.n), "arr": money(r.arr), "risk": money(r.risk), "red": intc(r.red),
             "drops": intc(r.drops)} for csm, r in zip(g.index, g.itertuples(index=False))]


CSM_PAGE_SIZE = 250


def csm_view(df: pd.DataFrame, csm: str, changes: Mapping[str, tuple] | None, page: int = 1,
             page_size: int = CSM_PAGE_SIZE) -> dict | None:
    """A CSM's book sorted by risk × ARR (`page_size` rows per page), with the health change vs last week and
    what moved it; the week's largest drops and rises are over the whole book."""
    sub = df[(df["csm"] == csm).to_numpy()]
    if sub.empty:
        return None
    sub = sub.sort_values("risk_rank")
    changes = changes or {}
    ids = sub["account_id"].astype(str).tolist()
    fallback = sub["week_change"].to_numpy(dtype=float)
    ch = np.full(len(ids), np.nan)
    why: list[str | None] = [None] * len(ids)
    for i, a in enumerate(ids):
        c = changes.get(a)
        if c is not None and c[1] is not None:
            ch[i], why[i] = c[1], c[2]
        else:
            ch[i] = fallback[i]
    pages = max(1, -(-len(ids) // page_size))
    page = min(max(1, page), pages)
    lo, hi = (page - 1) * page_size, min(page * page_size, len(ids))

    def row(i: int, r) -> dict:
        c = None if np.isnan(ch[i]) else float(ch[i])
        return {**_account_row(r), "change": signed(c, 1), "why": why[i] or (DASH if c is None else ""),
                "triggers": intc(r.n_triggers)}
    rows = [row(lo + k, r) for k, r in enumerate(sub.iloc[lo:hi].itertuples(index=False))]
    known = np.flatnonzero(~np.isnan(ch))
    order = known[np.argsort(ch[known], kind="stable")]
    drops = [i for i in order[:5] if ch[i] <= -1]
    rises = [i for i in order[::-1][:5] if ch[i] >= 1]
    tops = {i: row(i, r) for i, r in zip(drops + rises, sub.iloc[drops + rises].itertuples(index=False))}
    return {"csm": csm, "rows": rows, "n": intc(len(sub)), "arr": money(sub["arr"].sum()),
            "risk": money(sub["risk_arr"].sum()), "red": intc((sub["band"] == "red").sum()),
            "drops": [tops[i] for i in drops], "rises": [tops[i] for i in rises],
            "has_trend": bool(len(known)), "explained": bool(changes),
            "page": page, "pages": pages, "first": lo + 1, "last": hi, "total": len(ids)}


# ------------------------------------------------------------------------------------------- models
HEADLINE_METRICS = ("auc", "pr_auc", "log_loss", "brier", "ece", "calibration_slope", "calibration_intercept",
                    "top_decile_lift", "base_rate", "n", "c_index", "integrated_brier", "calibration_error_90",
                    "calibration_error_180", "calibration_error_365", "auc_equal_weight", "auc_textbook",
                    "auc_gain_vs_equal_weight_ci_low", "auc_gain_vs_equal_weight_ci_high", "decile_churn_monotone", "renewal_auc", "renewal_brier")


def _oracle_twin(k: str, metrics: Mapping[str, float]) -> str | None:
    """The oracle's value of metric k: oracle_<k>, or <prefix>_oracle_<rest> (e.g. renewal_oracle_auc)."""
    if f"oracle_{k}" in metrics:
        return f"oracle_{k}"
    parts = k.split("_")
    for i in range(1, len(parts)):
        cand = "_".join(parts[:i]) + "_oracle_" + "_".join(parts[i:])
        if cand in metrics:
            return cand
    return None


def _mfmt(v: Any) -> str:
    f = _finite(v)
    if f is None:
        return DASH
    return intc(f) if f.is_integer() and abs(f) >= 1 else num(f, 4)


def _metric_rows(metrics: Mapping[str, float]) -> tuple[list[dict], list[dict]]:
    """(headline rows {metric, model, oracle, definition}, other rows) from a run's metrics: the oracle's
    value (oracle_<metric>) beside the model's; segment, candidate and component metrics go to the rest."""
    twins = {k: _oracle_twin(k, metrics) for k in metrics}
    used = {t for t in twins.values() if t}
    head, rest = [], []
    for k in sorted(metrics):
        if k in used:
            continue
        t = twins[k]
        row = {"metric": k, "model": _mfmt(metrics[k]), "oracle": _mfmt(metrics[t]) if t else DASH,
               "definition": GLOSSARY[k][1] if k in GLOSSARY else None}
        (head if t or k in HEADLINE_METRICS else rest).append(row)
    order = {k: i for i, k in enumerate(HEADLINE_METRICS)}
    head.sort(key=lambda r: (order.get(r["metric"], 99), r["metric"]))
    return head, rest


def models_view(families: Mapping[str, Mapping[str, Any]], versions: Mapping[str, str], source: str,
                loaded_at: str | None, registry: dict | None, mlflow_ui: str | None, backtest: dict | None) -> dict:
    """Champion versions with metrics beside the oracle, artifacts and MLflow links.

    families: ModelSet.info ({family: {run_id, aliases, metrics, versions, pinned}});
    registry: the background lookup {family: {"experiment_id", "artifacts": [names], "report": md text}}."""
    out = []
    rank = {f: i for i, f in enumerate(("churn", "survival", "health"))}
    for fam, v in sorted(versions.items(), key=lambda kv: (rank.get(kv[0], 9), kv[0])):
        info = families.get(fam) or {}
        reg = (registry or {}).get(fam) or {}
        run_id = info.get("run_id")
        exp = reg.get("experiment_id")
        head, rest = _metric_rows(info.get("metrics") or {})
        out.append({"family": fam, "version": v, "aliases": ", ".join(info.get("aliases") or []) or DASH,
                    "pinned": bool(info.get("pinned")), "run_id": run_id, "experiment_id": exp,
                    "mlflow_url": f"{mlflow_ui.rstrip('/')}/#/experiments/{exp}/runs/{run_id}"
                    if mlflow_ui and exp and run_id else None,
                    "metrics": head, "more_metrics": rest,
                    "artifacts": list(reg.get("artifacts") or []), "artifact_error": reg.get("error"),
                    "report_html": markdown_html(reg["report"]) if reg.get("report") else None,
                    "versions": [{"version": x.get("version"), "aliases": ", ".join(x.get("aliases") or []) or DASH,
                                  "run_id": x.get("run_id"), "guard": x.get("guard") or DASH}
                                 for x in info.get("versions") or []]})
    bt = None
    if backtest:
        summ = (backtest.get("result") or {}).get("summary") or {}
        bt = {"run_id": backtest.get("run_id"), "created": backtest.get("created"),
              "experiment_id": backtest.get("experiment_id"),
              "mlflow_url": f"{mlflow_ui.rstrip('/')}/#/experiments/{backtest.get('experiment_id')}/runs/"
                            f"{backtest.get('run_id')}" if mlflow_ui and backtest.get("experiment_id") else None,
              "rows": [{"method": m, "wape": pct(s.get("wape")), "wape_overall": pct(s.get("wape_overall")),
                        "coverage": pct(s.get("coverage_p10_p90"), 0), "bias": pct(s.get("bias")),
                        "grr_mae": pct(s.get("grr_mae")), "nrr_mae": pct(s.get("nrr_mae"))}
                       for m, s in summ.items()],
              "has_fan": bool(backtest.get("fan_chart"))}
    return {"families": out, "source": source, "loaded_at": loaded_at, "backtest": bt}


def markdown_html(md: str) -> str:
    """The small Markdown subset of the logged reports (headings, pipe tables, paragraphs, **bold**) as HTML.
    Everything is escaped first; no links or images are ever produced."""
    from markupsafe import escape

    def inline(s: str) -> str:
        s = str(escape(s))
        parts = s.split("**")
        return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts)) if len(parts) % 2 else s

    out: list[str] = []
    lines = md.splitlines()
    i = 0
    para: list[str] = []

    def flush():
        if para:
            out.append("<p>" + inline(" ".join(para)) + "</p>")
            para.clear()
    while i < len(lines):
        ln = lines[i].rstrip()
        if ln.startswith("#"):
            flush()
            level = min(len(ln) - len(ln.lstrip("#")) + 2, 6)
            out.append(f"<h{level}>{inline(ln.lstrip('#').strip())}</h{level}>")
        elif ln.startswith("|"):
            flush()
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            body = [r for r in block[1:] if not all(set(c) <= set("-: ") for c in r)]
            out.append("<table class=\"data\"><thead><tr>" + "".join(f"<th>{inline(c)}</th>" for c in block[0])
                       + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r)
                                                          + "</tr>" for r in body) + "</tbody></table>")
            continue
        elif not ln.strip():
            flush()
        else:
            para.append(ln.strip())
        i += 1
    flush()
    return "\n".join(out)
