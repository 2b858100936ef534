"""The editable health scorecard on the models page (issue 17): the weight sets side by side (weights per
component, AUC, top-decile lift, churn by five bands) from `scoring.scorecard.scorecard_report`, and the
form's values. Pure: the report comes in as a dict."""
from __future__ import annotations

from csforecast.models.health import COMPONENTS
from csforecast.models.scorecard import FIVE_BANDS
from csforecast.ui.views.format import DASH, num, pct

SET_TITLES = {"learned": "Learned (the served model)", "equal_weight": "Equal weights",
              "configured": "Configured (csforecast.toml)", "saved": "Saved on the dashboard", "yours": "Yours (not saved)"}


def _shown(v) -> str:
    """A weight as the form shows it again: the number, or what was typed when it is not one."""
    try:
        return f"{float(v):g}"
    except (TypeError, ValueError):
        return str(v)[:40]


def scorecard_view(report: dict | None, form: dict | None = None, error: str | None = None,
                   can_edit: bool = False, csrf: str | None = None) -> dict:
    """{"missing", "components" [{key, title, pillar, value}], "sets" [{name, title, weights [..], auc, lift,
    bands5 [..], error}], "bands5", "n_rows", "n_churned", "saved", "error", "can_edit", "csrf"}."""
    if not report or not report.get("available"):
        return {"missing": (report or {}).get("reason") or "no health model is served", "sets": [],
                "components": [], "can_edit": False}
    comps = report["components"]
    sets_in = report["weight_sets"]
    start = dict(form or {}) or (report.get("saved") or {}).get("weights") or sets_in["learned"]["weights"] or {}
    sets = []
    for name, s in sets_in.items():
        m = s.get("metrics") or {}
        w = s.get("weights") or {}
        total = sum(v for v in w.values() if v) or 1.0
        sets.append({"name": name, "title": SET_TITLES.get(name, name),
                     "weights": [pct(w.get(c, 0.0) / total, 0) if w else DASH for c in comps],
                     "auc": num(m.get("auc"), 3), "lift": num(m.get("top_decile_lift"), 2),
                     "bands5": [f"{pct(b['churn_rate'], 1) if b.get('churn_rate') is not None else DASH} "
                                f"(n={b['n']})" for b in (m.get("bands5") or {}).values()],
                     "missing": ", ".join(s.get("missing_components") or []), "error": s.get("error")})
    return {"missing": None, "components": [{"key": c, "title": COMPONENTS[c][0], "pillar": COMPONENTS[c][1],
                                             "value": _shown(start.get(c, 0.0))} for c in comps],
            "sets": sets, "bands5": list(FIVE_BANDS), "cutoffs5": report["five_band_cutoffs"],
            "n_rows": report["n_rows"], "n_churned": report["n_churned"], "saved": report.get("saved"),
            "error": error, "can_edit": can_edit, "csrf": csrf}
