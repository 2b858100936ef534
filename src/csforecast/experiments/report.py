"""The comparison report of an experiment: one row per variant with its metrics, the difference to the
baseline and that difference's bootstrap interval (JSON, Markdown, and the cells the CLI table shows)."""
from __future__ import annotations

import json

from csforecast.jsonsafe import finite_float

__all__ = ["CI_LEVEL", "build_report", "comparison_markdown", "format_cell"]

CI_LEVEL = 0.95


def _r(x, nd: int = 6):
    return finite_float(x, nd)


def build_report(spec, parent_id, results, cis, metric_keys, hib, ctx, source, fp) -> dict:
    base = results.get(spec.baseline) or {}
    base_m = base.get("metrics") or {}
    variants = []
    for v in spec.variants:
        res = results.get(v.name) or {}
        m = res.get("metrics")
        item = {"name": v.name, "run_id": res.get("run_id"), "description": v.description,
                "baseline": v.name == spec.baseline,
                "settings": json.loads(v.model_dump_json(exclude_defaults=True, exclude={"name", "description"})),
                "metrics": m, "delta": {}, "ci": {}}
        if res.get("error"):
            item["error"] = res["error"]
        if res.get("oracle") is not None:
            item["oracle"] = res["oracle"]
        if res.get("detail"):
            item["detail"] = {k: res["detail"][k] for k in ("chosen", "n_train", "n_valid", "used_components",
                                                             "flagged", "covariates") if k in res["detail"]}
        for k in metric_keys:
            a, b = (m or {}).get(k), base_m.get(k)
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
                item["delta"][k] = _r(a - b)
            else:
                item["delta"][k] = None
            item["ci"][k] = [0.0, 0.0] if v.name == spec.baseline and item["delta"][k] is not None else \
                (cis.get(v.name, {}).get(k) or [None, None])
        variants.append(item)
    return {"experiment": spec.name, "parent_run_id": parent_id, "family": spec.family,
            "baseline": spec.baseline, "description": spec.description, "data": source.location,
            "data_hash": ctx.data_hash, "as_of": str(ctx.as_of), "validation_start": str(ctx.validation_start),
            "validation_rows": fp["n"], "validation_accounts": fp["n_accounts"],
            "bootstrap": {"resamples": spec.bootstrap, "cluster": "account_id", "level": CI_LEVEL,
                          "interval": "percentile, paired (same resampled rows for every variant)"},
            "metric_keys": metric_keys, "higher_is_better": hib, "variants": variants}


def comparison_markdown(report: dict) -> str:
    keys = report["metric_keys"]
    lines = [f"# Experiment {report['experiment']} ({report['family']})", "",
             f"Baseline **{report['baseline']}**; validation: {report['validation_rows']} rows of "
             f"{report['validation_accounts']} accounts from {report['validation_start']} to {report['as_of']}; "
             f"95 % CIs of the difference from {report['bootstrap']['resamples']} account-clustered bootstrap "
             "resamples.", "", "| variant | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for v in report["variants"]:
        cells = []
        for k in keys:
            cells.append(format_cell(v, k, plain=True))
        lines.append(f"| {v['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_cell(v: dict, k: str, plain: bool = False) -> str:
    if v.get("error"):
        return "failed"
    val = (v.get("metrics") or {}).get(k)
    if val is None or isinstance(val, (dict, list)):
        return "–"
    s = f"{val:.4f}" if isinstance(val, float) else str(val)
    if v.get("baseline"):
        return s + (" (baseline)" if plain else "")
    d, ci = v["delta"].get(k), v["ci"].get(k) or [None, None]
    if d is None:
        return s
    sep = " " if plain else "\n"
    s += f"{sep}Δ {d:+.4f}"
    if ci[0] is not None:
        s += f"{sep}[{ci[0]:+.4f}, {ci[1]:+.4f}]"
    return s
