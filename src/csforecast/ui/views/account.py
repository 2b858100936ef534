"""The account page, from the account's AccountDetail JSON (the same as GET /v1/accounts/{id})."""
from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from csforecast.ui.views.format import DASH, chart, day, finite, intc, money, money_full, num, pct, signed
from csforecast.ui.views.frame import HIGH_RISK, UNASSIGNED


def account_view(detail: Mapping[str, Any], explanations: Mapping[str, str] | None, contracts: pd.DataFrame | None,
                 arr_history: pd.Series | None, *, contracts_missing: str | None, served: Mapping[str, str]) -> dict:
    """The account page from its AccountDetail (the API's JSON), the week-by-week change explanations, its
    contracts (data source) and its ARR history (month starts)."""
    d = detail
    p = finite(d.get("churn_probability"))
    drivers = []
    for dr in d.get("drivers") or []:
        c = finite(dr.get("contribution"))
        drivers.append({"text": dr.get("text") or dr.get("feature"), "feature": dr.get("feature"),
                        "lever": dr.get("lever") or DASH, "component": dr.get("component") or DASH,
                        "contribution": signed(c, 2), "direction": "raises" if (c or 0) > 0 else "lowers",
                        "direction_text": "associated with higher churn risk" if (c or 0) > 0
                        else "associated with lower churn risk"})
    surv = d.get("survival")
    survival = None
    if surv:
        pts = [(0, 1.0)] + [(t, finite(surv.get(f"p_active_{t}d"))) for t in (90, 180, 365)]
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
        comps = sorted(health.get("components") or [], key=lambda c: finite(c.get("contribution")) or 0.0)
        names = [str(c.get("component", "")).replace("_", " ").capitalize() for c in comps]
        vals = [finite(c.get("contribution")) for c in comps]
        quad = d.get("health_quadrant")
        health_v = {"score": num(health.get("score"), 0), "band": health.get("band") or "none",
                    "band5": d.get("health_band5") or DASH, "outcomes": num(d.get("outcomes_score"), 0),
                    "experience": num(d.get("experience_score"), 0),
                    "quadrant": quad.replace("_", " ") if quad else DASH,
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
            s = finite(t.get("health_score"))
            rows.append({"week": day(t.get("week")), "score": num(s, 1),
                         "change": signed(s - prev, 1) if s is not None and prev is not None else DASH,
                         "why": ex.get(day(t.get("week"))) or (DASH if prev is None else
                                                              "not recorded in this score set")})
            prev = s
        trend_v = {"rows": list(reversed(rows)), "explained": bool(ex),
                   "chart": chart("trend", [{"type": "scatter", "mode": "lines+markers",
                                             "x": [day(t.get("week")) for t in trend],
                                             "y": [finite(t.get("health_score")) for t in trend],
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
                                                 "x": x, "y": [finite(v) for v in arr_history],
                                                 "hovertemplate": "%{x}: %{y:,.0f}<extra></extra>"}],
                                {"yaxis": {"title": "ARR", "rangemode": "tozero"}, "height": 240})}
    versions = d.get("model_versions") or {}
    return {"id": d.get("account_id"), "name": d.get("name") or d.get("account_id"),
            "profile": [("Segment", d.get("segment") or DASH), ("Region", d.get("region") or DASH),
                        ("Industry", d.get("industry") or DASH), ("CSM", d.get("csm_id") or UNASSIGNED),
                        ("ARR", money(d.get("arr"))), ("Seats", intc(d.get("seats"))),
                        ("Tenure", f"{intc(d.get('tenure_days'))} days"), ("Contract", d.get("contract_id") or DASH)],
            "csm": d.get("csm_id") or UNASSIGNED,
            "p": pct(p), "p_interval": _interval_text(d.get("churn_probability_interval")), "high_risk": p is not None and p >= HIGH_RISK, "renewal_date": day(d.get("renewal_date")),
            "days_to_renewal": intc(d.get("days_to_renewal")), "risk_arr": money(d.get("risk_arr")),
            "drivers": drivers, "survival": survival, "health": health_v, "triggers": d.get("triggers"),
            "sides": _sides(d),
            "trend": trend_v, "contracts": contracts_v, "contracts_missing": contracts_missing, "arr_history": arr_v,
            "versions": [{"family": f, "version": v, "served": served.get(f),
                          "stale": served.get(f) is not None and str(served.get(f)) != str(v)}
                         for f, v in sorted(versions.items())],
            "as_of": day(d.get("as_of")), "data_hash": d.get("data_hash"), "score_set": d.get("score_set_version")}


def _interval_text(interval) -> str | None:
    """"P10–P90 12 %–19 %" for a served [P10, P90] of the churn probability, None without one."""
    if not interval or len(interval) != 2 or finite(interval[0]) is None or finite(interval[1]) is None:
        return None
    return f"P10–P90 {pct(interval[0])}–{pct(interval[1])}"


def _sides(d: Mapping[str, Any]) -> dict | None:
    """The model's probability, the CSM's call and the blend side by side, and which one is served (None
    without a blend model or a probability-source note)."""
    from csforecast.ui.views.process import CATEGORY_WORDS, SOURCE_WORDS

    call = d.get("call")
    source = d.get("churn_probability_source")
    if not call and source in (None, "model"):
        return None
    call = call or {}
    return {"source": SOURCE_WORDS.get(source, source or "model"), "p_model": pct(call.get("p_model")),
            "category": CATEGORY_WORDS.get(call.get("category"), "no call"), "p_call": pct(call.get("p_call")),
            "p_blend": pct(call.get("p_blend")), "called_at": day(call.get("called_at")),
            "csm": call.get("csm_id") or DASH, "bias": signed(finite(call.get("csm_bias")), 2)}
