"""The models page: served versions with their metrics beside the oracle, artifacts, MLflow links, the latest
backtest; and the small Markdown renderer of the logged reports."""
from __future__ import annotations

from typing import Any, Mapping

from csforecast.api.families import FAMILIES
from csforecast.ui.views.format import DASH, finite, intc, num, pct
from csforecast.ui.views.glossary import GLOSSARY

FAMILY_ARTIFACTS = {   # artifacts shown on the models page, per family (logged by the training pipelines)
    "churn": ("calibration_curve.png", "shap_summary.png"),
    "survival": ("calibration_365.png", "survival_vs_km.png"),
    "health": ("decile_churn.png",),
}
HEALTH_REPORT = "health_report.md"
HEADLINE_METRICS = ("auc", "pr_auc", "log_loss", "brier", "ece", "calibration_slope", "calibration_intercept",
                    "top_decile_lift", "base_rate", "n", "c_index", "integrated_brier", "calibration_error_90",
                    "calibration_error_180", "calibration_error_365", "auc_equal_weight", "auc_textbook",
                    "auc_gain_vs_equal_weight_ci_low", "auc_gain_vs_equal_weight_ci_high", "decile_churn_monotone", "renewal_auc", "renewal_brier")


# yes/no facts that MLflow stores as metrics 0.0 / 1.0: shown as "yes" / "no", never "0.0000"
FLAG_METRICS = ("decile_churn_monotone",)
FLAG_SUFFIXES = ("_monotone", "_flag")


def is_flag(metric: str) -> bool:
    return metric in FLAG_METRICS or metric.endswith(FLAG_SUFFIXES)


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


def _mfmt(v: Any, flag: bool = False) -> str:
    f = finite(v)
    if f is None:
        return DASH
    if flag:
        return "yes" if f else "no"
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
        flag = is_flag(k)
        row = {"metric": k, "model": _mfmt(metrics[k], flag), "oracle": _mfmt(metrics[t], flag) if t else DASH,
               "definition": GLOSSARY[k][1] if k in GLOSSARY else None}
        (head if t or k in HEADLINE_METRICS else rest).append(row)
    order = {k: i for i, k in enumerate(HEADLINE_METRICS)}
    head.sort(key=lambda r: (order.get(r["metric"], 99), r["metric"]))
    return head, rest


def profile_rows(profile: Mapping[str, Any] | None) -> list[dict]:
    """The data profile as table rows {table, rows, accounts, dates} (tables with no rows say "none")."""
    out = []
    for name, t in ((profile or {}).get("tables") or {}).items():
        rows = t.get("rows") or 0
        out.append({"table": name, "rows": intc(rows) if rows else "none",
                    "accounts": intc(t["accounts"]) if t.get("accounts") is not None else DASH,
                    "dates": f"{t['first']} – {t['last']}" if t.get("first") else DASH})
    return out


def data_view(served: Mapping[str, Any]) -> dict:
    """What the served version was trained on and whether it is a fallback: hash, profile table, label base
    rate, dropped health components, the guard's decision."""
    prof = served.get("data_profile") or {}
    label = prof.get("label") or {}
    return {"fallback": served.get("fallback"), "data_hash": served.get("data_hash"),
            "profile": profile_rows(prof), "as_of": prof.get("as_of"),
            "base_rate": pct(label.get("base_rate")) if label.get("base_rate") is not None else DASH,
            "decisions": intc(label["decisions"]) if label.get("decisions") is not None else DASH,
            "dropped": dict(served.get("dropped_components") or {}),
            "decision": served.get("decision"), "accepted": served.get("accept_data_change")}


def models_view(families: Mapping[str, Mapping[str, Any]], versions: Mapping[str, str], source: str,
                loaded_at: str | None, registry: dict | None, mlflow_ui: str | None, backtest: dict | None) -> dict:
    """Champion versions with metrics beside the oracle, artifacts and MLflow links.

    families: ModelSet.info ({family: {run_id, aliases, metrics, versions, pinned}});
    registry: the background lookup {family: {"experiment_id", "artifacts": [names], "report": md text}}."""
    out = []
    rank = {f: i for i, f in enumerate(FAMILIES)}
    for fam, v in sorted(versions.items(), key=lambda kv: (rank.get(kv[0], 9), kv[0])):
        info = families.get(fam) or {}
        reg = (registry or {}).get(fam) or {}
        run_id = info.get("run_id")
        exp = reg.get("experiment_id")
        head, rest = _metric_rows(info.get("metrics") or {})
        served = next((x for x in info.get("versions") or [] if str(x.get("version")) == str(v)), {})
        out.append({"data": data_view(served),"family": fam, "version": v, "aliases": ", ".join(info.get("aliases") or []) or DASH,
                    "pinned": bool(info.get("pinned")), "run_id": run_id, "experiment_id": exp,
                    "mlflow_url": f"{mlflow_ui.rstrip('/')}/#/experiments/{exp}/runs/{run_id}"
                    if mlflow_ui and exp and run_id else None,
                    "metrics": head, "more_metrics": rest,
                    "artifacts": list(reg.get("artifacts") or []), "artifact_error": reg.get("error"),
                    "report_html": markdown_html(reg["report"]) if reg.get("report") else None,
                    "versions": [{"version": x.get("version"), "aliases": ", ".join(x.get("aliases") or []) or DASH,
                                  "run_id": x.get("run_id"), "guard": x.get("guard") or DASH,
                                  "decision": x.get("decision") or DASH, "data_hash": x.get("data_hash") or DASH,
                                  "fallback": x.get("fallback") or DASH}
                                 for x in info.get("versions") or [] if not x.get("orphan")],
                    # versions a killed training run registered: not models, listed apart and not counted
                    "orphans": [str(x.get("version")) for x in info.get("versions") or [] if x.get("orphan")]})
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


def monitoring_view(report: Mapping[str, Any] | None) -> dict:
    """The models page's monitoring section from the served score set's report (scoring/monitor.py):
    per family the calibration scopes (flagged ones marked) and the drift columns above the warning first."""
    report = report or {}
    fams = []
    for family, fam in (report.get("families") or {}).items():
        cal = fam.get("calibration")
        scopes = []
        if cal:
            flagged = {f["scope"] for f in cal.get("flagged") or []}
            for scope, m in [("overall", cal["overall"])] + [(f"{k[3:]}={lab}", m) for k in ("by_segment", "by_horizon")
                                                             for lab, m in cal[k].items()]:
                scopes.append({"scope": scope, "n": intc(m.get("n")), "decisions": intc(m.get("decisions")),
                               "mean_p": pct(m.get("mean_p")),
                               "observed": pct(m.get("observed_rate")), "ece": num(m.get("ece"), 3),
                               "brier": num(m.get("brier"), 3), "slope": num(m.get("calibration_slope"), 2),
                               "flagged": scope in flagged})
        drift = [{"column": r["column"], "psi": num(r.get("psi"), 3), "warning": bool(r.get("warning"))}
                 for r in fam.get("drift") or []]
        fams.append({"family": family, "drifted": bool(fam.get("drifted")), "scopes": scopes,
                     "z_threshold": num((cal or {}).get("z_threshold"), 1),
                     "served": f"{fam.get('served_from')} to {fam.get('served_to')}" if cal else None,
                     "score_sets": fam.get("score_sets") or 0, "drift": drift[:15], "more_drift": drift[15:],
                     "psi_warnings": list(fam.get("psi_warnings") or [])})
    return {"error": report.get("error"), "families": fams, "ece_bound": report.get("ece_bound"),
            "psi_warning": report.get("psi_warning"), "min_outcomes": report.get("min_outcomes")}


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
