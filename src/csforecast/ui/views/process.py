"""The forecast process on the dashboard (issue 16): a CSM's work list, the model-vs-call disagreements and the
forecast-accuracy ledger, shaped from the lists ``scoring.worklist`` and ``forecast.ledger`` compute."""
from __future__ import annotations

from csforecast.ui.views.format import DASH, day, money, pct

CATEGORY_WORDS = {"commit": "commit", "most_likely": "most likely", "at_risk": "at risk", "churn": "churn"}
SOURCE_WORDS = {"blend": "model + CSM call", "model": "model", "survival": "survival model (renewal > 1 year)"}


def worklist_view(items: list[dict]) -> dict:
    """The work list section: rows ready to print, or a ``missing`` message."""
    if not items:
        return {"missing": "no renewal of this book falls within the work list's horizon"}
    return {"rows": [{"account_id": i["account_id"], "name": i.get("name") or i["account_id"],
                      "renewal_date": day(i.get("renewal_date")), "days": f"{i['days_to_renewal']:.0f}"
                      if i.get("days_to_renewal") is not None else DASH,
                      "p": pct(i.get("churn_probability")),
                      "source": SOURCE_WORDS.get(i.get("probability_source"), i.get("probability_source") or DASH),
                      "call": CATEGORY_WORDS.get(i.get("call_category"), DASH),
                      "loss": money(i.get("expected_arr_lost")), "arr": money(i.get("arr")),
                      "reason": i.get("top_reason") or "no driver raises this account's risk",
                      "lever": i.get("lever") or "no lever: the risk comes from the account's profile"}
                     for i in items]}


def disagreements_view(items: list[dict]) -> dict:
    if not items:
        return {"missing": "no renewal with a CSM call in the next 90 days (or no blend model served)"}
    return {"rows": [{"account_id": i["account_id"], "name": i.get("name") or i["account_id"],
                      "csm": i.get("csm_id") or DASH, "renewal_date": day(i.get("renewal_date")),
                      "call": CATEGORY_WORDS.get(i.get("call_category"), DASH), "p_model": pct(i.get("p_model")),
                      "p_call": pct(i.get("p_call")), "p_blend": pct(i.get("p_blend")), "arr": money(i.get("arr")),
                      "gap": money(i.get("weighted_gap")), "direction": i.get("direction") or ""}
                     for i in items]}


def ledger_view(doc: dict | None) -> dict:
    """The forecast-accuracy section: every frozen forecast, its actual once closed, and the summary."""
    if not doc or not doc.get("entries"):
        return {"missing": "no frozen forecast yet: `csforecast forecast --freeze` or `csforecast score` adds one"}
    rows = []
    for e in reversed(doc["entries"]):
        iv = (e.get("intervals") or {}).get("renewed_arr") or {}
        a = e.get("actual") or {}
        held = (e.get("held") or {}).get("renewed_arr")
        rows.append({"id": e.get("id"), "window": f"{e['window']['start']} – {e['window']['end']}",
                     "as_of": e.get("as_of"), "method": e.get("method"), "trigger": e.get("trigger") or DASH,
                     "expected": money(e["expected"].get("renewed_arr")),
                     "band": f"{money(iv.get('p10'))} – {money(iv.get('p90'))}",
                     "grr": pct(e["expected"].get("grr")), "actual": money(a.get("renewed_arr")),
                     "actual_grr": pct(a.get("grr")),
                     "held": {True: "yes", False: "no"}.get(held, "open"),
                     "commit": money((e.get("scenarios") or {}).get("commit"))})
    s = doc.get("summary") or {}
    return {"rows": rows, "entries": s.get("entries", len(rows)), "closed": s.get("closed", 0),
            "held": pct(s.get("p10_p90_held_renewed_arr")), "mae": money(s.get("mae_renewed_arr"))}
