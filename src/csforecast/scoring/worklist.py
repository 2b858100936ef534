"""A CSM's work list and the model-vs-call disagreements, from a score set (docs/forecast.md, "Work list").

Work list: the CSM's accounts whose renewal falls within ``horizon_days``, ordered by
``priority = expected_arr_lost x soonness`` with ``expected_arr_lost = churn_probability x ARR`` (the served
probability: the blend's where there is a call) and ``soonness = 1 / (1 + days_to_renewal / horizon_days)``
(1 for a renewal today, 1/2 at the horizon). Each account gets its top reason in plain words and its lever:
the churn drivers that raise its risk, near-duplicates (same health component and lever, e.g. the 6- and
12-month means of one usage metric) grouped into one reason, reasons with a lever a CSM can pull ranked before
those without one (the account's profile), each group by its summed contribution. Associations, never causes.

Disagreements: renewals within ``within_days`` that have a CSM call, ordered by
``|p_model - p_call| x ARR`` (the model's probability against the call category's churn rate).
"""
from __future__ import annotations

import pandas as pd

from csforecast.features.catalogue import format_value, info, render_drivers
from csforecast.jsonsafe import finite_float, iso_date, json_safe

__all__ = ["NO_LEVER", "reasons", "worklist", "disagreements"]

NO_LEVER = ("none (account profile)", "review with the account team")


def reasons(drivers) -> list[dict]:
    """The drivers that raise the risk (contribution > 0), grouped by (component, lever), actionable groups
    first, each group by its summed contribution: ``text`` (plain words, no log-odds), ``lever``,
    ``actionable``, ``features`` (the grouped drivers) and ``weight`` (the summed contribution)."""
    groups: dict[tuple, dict] = {}
    for d in render_drivers(drivers):
        c = d.get("contribution")
        if not isinstance(c, (int, float)) or not c > 0:
            continue
        fi = info(str(d.get("feature")))
        key = (d.get("component") or fi.component, d.get("lever") or fi.lever)
        g = groups.setdefault(key, {"lead": d, "features": [], "weight": 0.0})
        g["features"].append(str(d.get("feature")))
        g["weight"] += float(c)
    out = []
    for (component, lever), g in groups.items():
        lead = g["lead"]
        f = str(lead.get("feature"))
        text = f"{info(f).label} {format_value(f, lead.get('value'))}"
        more = len(g["features"]) - 1
        if more:
            text += f" (and {more} related {'measure' if more == 1 else 'measures'})"
        text += ": associated with a higher churn risk"
        actionable = str(lever) not in NO_LEVER
        out.append({"text": text, "lever": lever if actionable else None, "component": component,
                    "actionable": actionable, "features": g["features"], "weight": round(g["weight"], 4)})
    out.sort(key=lambda r: (not r["actionable"], -r["weight"]))
    return out


def worklist(frame: pd.DataFrame, csm_id: str, horizon_days: int = 90, limit: int = 50) -> list[dict]:
    """The work list of ``csm_id`` (module docstring) from a score set's process frame."""
    if frame is None or frame.empty or "csm_id" not in frame:
        return []
    f = frame[(frame["csm_id"].astype(str) == str(csm_id))]
    days = pd.to_numeric(f["days_to_renewal"], errors="coerce")
    f = f[(days >= 0) & (days <= horizon_days)].copy()
    if f.empty:
        return []
    p = pd.to_numeric(f["churn_probability"], errors="coerce").fillna(0.0)
    arr = pd.to_numeric(f["arr"], errors="coerce").fillna(0.0)
    f["expected_arr_lost"] = p * arr
    f["soonness"] = 1.0 / (1.0 + pd.to_numeric(f["days_to_renewal"], errors="coerce") / float(horizon_days))
    f["priority"] = f["expected_arr_lost"] * f["soonness"]
    f = f.sort_values(["priority", "arr"], ascending=False).head(limit)
    items = []
    for r in f.to_dict("records"):
        rs = reasons(r.get("churn_drivers"))
        top = rs[0] if rs else None
        items.append({"account_id": str(r["account_id"]), "name": json_safe(r.get("name")),
                      "segment": json_safe(r.get("segment")), "arr": finite_float(r.get("arr"), 2),
                      "renewal_date": iso_date(r.get("renewal_date")),
                      "days_to_renewal": finite_float(r.get("days_to_renewal")),
                      "churn_probability": finite_float(r.get("churn_probability"), 6),
                      "probability_source": json_safe(r.get("churn_probability_source")) or "model",
                      "call_category": json_safe(r.get("call_category")),
                      "expected_arr_lost": finite_float(r["expected_arr_lost"], 2),
                      "priority": finite_float(r["priority"], 2),
                      "top_reason": top["text"] if top else None, "lever": top["lever"] if top else None,
                      "reasons": rs[:3]})
    return items


def disagreements(frame: pd.DataFrame, within_days: int = 90, limit: int = 50) -> list[dict]:
    """Renewals within ``within_days`` with a CSM call, ordered by |p_model - p_call| x ARR (module docstring)."""
    if frame is None or frame.empty or "call_probability" not in frame:
        return []
    days = pd.to_numeric(frame["days_to_renewal"], errors="coerce")
    f = frame[(days >= 0) & (days <= within_days) & frame["call_category"].notna()].copy()
    if f.empty:
        return []
    pm = f["model_churn_probability"] if "model_churn_probability" in f else f["churn_probability"]
    f["p_model"] = pd.to_numeric(pm, errors="coerce")
    f["p_call"] = pd.to_numeric(f["call_probability"], errors="coerce")
    f["gap"] = f["p_model"] - f["p_call"]
    f["weighted_gap"] = f["gap"].abs() * pd.to_numeric(f["arr"], errors="coerce").fillna(0.0)
    f = f.sort_values("weighted_gap", ascending=False).head(limit)
    return [{"account_id": str(r["account_id"]), "name": json_safe(r.get("name")),
             "csm_id": json_safe(r.get("call_csm_id")) or json_safe(r.get("csm_id")),
             "arr": finite_float(r.get("arr"), 2), "renewal_date": iso_date(r.get("renewal_date")),
             "days_to_renewal": finite_float(r.get("days_to_renewal")), "call_category": r["call_category"],
             "called_at": iso_date(r.get("called_at")), "p_model": finite_float(r["p_model"], 6),
             "p_call": finite_float(r["p_call"], 6), "p_blend": finite_float(r.get("blend_probability"), 6),
             "weighted_gap": finite_float(r["weighted_gap"], 2),
             "direction": "the model sees more risk than the call" if r["gap"] > 0
             else "the call sees more risk than the model"}
            for r in f.to_dict("records")]
