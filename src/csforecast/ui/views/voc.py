"""The "Customer voice" page (voice of the customer and churn reasons) and the "Pipeline" page: the results of
`api.analyses` (metrics.voc, metrics.reasons, forecast.pipeline) shaped into printed strings and charts.
Nothing here computes a figure; an absent value prints as "—"."""
from __future__ import annotations

from csforecast.ui.views.format import chart, intc, money, num, pct

__all__ = ["voc_view", "reasons_section", "pipeline_view"]

AVOIDABLE_WORDS = {True: "avoidable", False: "unavoidable", None: "—"}


def _ci(pair) -> str:
    lo, hi = pair or (None, None)
    return f"{num(lo)} to {num(hi)}" if lo is not None and hi is not None else "—"


def voc_view(r: dict) -> dict:
    """Headline NPS (interval), CSAT, CES, coverage tables, the matrix, the act-first and advocacy lists, trend."""
    cov = r["response_coverage"]
    n = r["n_responses"]
    trend = r["trend"]
    return {
        "window": r["window"], "level": pct(r["level"], 0),
        "headline": {"nps": num(r["nps"]), "nps_ci": _ci(r["nps_ci"]), "n_nps": intc(n["nps"]),
                     "csat": num(r["csat_mean"], 2), "n_csat": intc(n["csat"]), "ces": num(r["ces_mean"], 2),
                     "n_ces": intc(n["ces"]), "coverage": pct(cov["accounts"]), "coverage_arr": pct(cov["arr"]),
                     "active": intc(cov["active_accounts"]), "promoters": intc(r["promoters"]),
                     "passives": intc(r["passives"]), "detractors": intc(r["detractors"])},
        "by_segment": [{"segment": x["segment"], "active": intc(x["active_accounts"]),
                        "responding": intc(x["responding_accounts"]), "accounts": pct(x["accounts"]),
                        "arr": pct(x["arr"]), "responses": intc(x["responses"])} for x in cov["by_segment"]],
        "by_role": [{"role": x["respondent_role"], "responses": intc(x["responses"]),
                     "responding": intc(x["responding_accounts"]), "accounts": pct(x["accounts"]),
                     "arr": pct(x["arr"])} for x in cov["by_role"]],
        "groups": [{"group": g["group"], "nps": num(g["nps"]), "ci": _ci(g["nps_ci"]),
                    "n": intc(g["n_responses"]["nps"]), "csat": num(g["csat_mean"], 2), "ces": num(g["ces_mean"], 2),
                    "coverage": pct((g.get("response_coverage") or {}).get("accounts"))}
                   for g in r.get("groups") or []],
        "matrix": [{"ces": c["ces_class"], "nps": c["nps_class"], "csat": c["csat_class"],
                    "accounts": intc(c["accounts"]), "arr": money(c["arr"]),
                    "act": "act" if (c["ces_class"], c["nps_class"], c["csat_class"]) == ("poor", "detractor", "red")
                    else "adv" if (c["ces_class"], c["nps_class"], c["csat_class"]) == ("good", "promoter", "green")
                    else ""} for c in r["matrix"]],
        "lists": [{"key": key, "title": title, "accounts": intc(r[key]["accounts"]), "arr": money(r[key]["arr"]),
                   "rows": [{"account_id": a["account_id"], "name": a["name"] or a["account_id"], "arr": money(a["arr"]),
                             "nps": num(a["nps"]), "csat": num(a["csat"]), "ces": num(a["ces"])}
                            for a in r[key]["list"]]}
                  for key, title in (("act_first", "Act first: poor CES, detractor, red CSAT"),
                                     ("advocacy", "Advocacy targets: good CES, promoter, green CSAT"))],
        "trend": [{"period": t["period"] + ("" if t["complete"] else " (partial)"), "nps": num(t["nps"]),
                   "ci": _ci(t["nps_ci"]), "n": intc(t["n_responses"]["nps"]), "csat": num(t["csat_mean"], 2),
                   "ces": num(t["ces_mean"], 2)} for t in trend],
        "trend_chart": chart("nps-trend", [
            {"type": "scatter", "mode": "lines+markers", "name": "NPS", "x": [t["period"] for t in trend],
             "y": [t["nps"] for t in trend],
             "error_y": {"type": "data", "symmetric": False,
                         "array": [(t["nps_ci"][1] - t["nps"]) if t["nps_ci"][1] is not None else None for t in trend],
                         "arrayminus": [(t["nps"] - t["nps_ci"][0]) if t["nps_ci"][0] is not None else None
                                        for t in trend]}}],
            {"yaxis": {"title": "NPS", "range": [-100, 100]}}) if trend else None,
    }


def reasons_section(r: dict) -> dict:
    """Churn reasons: the reasons table, avoidable shares, the band tables (counts beside every share)."""
    def rows(reasons):
        return [{"reason": x["reason"], "avoidable": AVOIDABLE_WORDS[x["avoidable"]], "logos": intc(x["logos"]),
                 "logo_share": pct(x["logo_share"]), "arr": money(x["arr"]), "arr_share": pct(x["arr_share"])}
                for x in reasons]

    def bands(groups):
        return [{"group": g["group"], "logos": intc(g["logos"]), "arr": money(g["arr"]),
                 "avoidable_logos": pct(g["avoidable_logo_share"]), "avoidable_arr": pct(g["avoidable_arr_share"]),
                 "top": (f"{g['reasons'][0]['reason']} ({intc(g['reasons'][0]['logos'])}, "
                         f"{pct(g['reasons'][0]['logo_share'])})") if g["reasons"] else "—"} for g in groups]

    con = r["contraction"]
    return {"logos": intc(r["logos"]), "arr": money(r["arr"]), "data_end": r["data_end"],
            "avoidable_logos": pct(r["avoidable_logo_share"]), "avoidable_arr": pct(r["avoidable_arr_share"]),
            "unknown": intc(r["unknown_logos"]), "reasons": rows(r["reasons"]),
            "bands": [("Segment", bands(r["by_segment"])), ("Tenure at renewal", bands(r["by_tenure_band"])),
                      ("ARR due", bands(r["by_arr_band"]))],
            "contraction": {"available": con["available"], "renewals": intc(con["renewals"]),
                            "arr_lost": money(con["arr_lost"]),
                            "rows": [{"reason": x["reason"], "renewals": intc(x["renewals"]),
                                      "share": pct(x["renewal_share"]), "arr_lost": money(x["arr_lost"])}
                                     for x in con["reasons"]]},
            "chart": chart("churn-reasons", [
                {"type": "bar", "name": "churned ARR", "x": [x["reason"] for x in r["reasons"]],
                 "y": [x["arr"] for x in r["reasons"]],
                 "text": [f"{x['logos']} logos" for x in r["reasons"]]}],
                {"yaxis": {"title": "churned ARR"}}) if r["reasons"] else None}


def pipeline_view(r: dict) -> dict:
    """Stage probabilities, windows, back-test and calibration of the expansion pipeline."""
    cal = r.get("calibration") or {}
    bt = r.get("backtest") or []
    return {"available": r["available"], "notes": r.get("notes") or [], "data_end": r["data_end"],
            "open": {"n": intc(r["open"]["opportunities"]), "amount": money(r["open"]["amount"])},
            "stages": [{"stage": s, "default": pct(v["default"], 0), "learned": pct(v["learned"]),
                        "ci": (f"{pct(v['ci_low'])} – {pct(v['ci_high'])}" if v["ci_low"] is not None else "—"),
                        "n": intc(v["n"])} for s, v in r["stage_probabilities"].items()],
            "windows": [{"window": f"{w['start']} – {w['end']}", "n": intc(w["opportunities"]),
                         "open": money(w["open_amount"]), "default": money(w["weighted_default"]),
                         "learned": money(w["weighted_learned"])} for w in r["windows"]],
            "backtest": [{"quarter": b["quarter"], "n": intc(b["opportunities"]), "open": money(b["open_amount"]),
                          "default": money(b["weighted_default"]), "learned": money(b["weighted_learned"]),
                          "won": money(b["won_amount"])} for b in bt],
            "calibration": {"wape_default": pct(cal.get("wape_default")), "wape_learned": pct(cal.get("wape_learned")),
                            "brier_default": num(cal.get("brier_default"), 3),
                            "brier_learned": num(cal.get("brier_learned"), 3),
                            "by_stage": [{"stage": x["stage"], "n": intc(x["n"]), "default": pct(x["mean_default"]),
                                          "learned": pct(x["mean_learned"]), "won": pct(x["won_share"])}
                                         for x in cal.get("by_stage") or []]},
            "chart": chart("pipeline-backtest", [
                {"type": "bar", "name": "won", "x": [b["quarter"] for b in bt], "y": [b["won_amount"] for b in bt]},
                {"type": "scatter", "mode": "lines+markers", "name": "weighted (default)",
                 "x": [b["quarter"] for b in bt], "y": [b["weighted_default"] for b in bt]},
                {"type": "scatter", "mode": "lines+markers", "name": "weighted (learned)",
                 "x": [b["quarter"] for b in bt], "y": [b["weighted_learned"] for b in bt]}],
                {"yaxis": {"title": "amount"}}) if bt else None}
