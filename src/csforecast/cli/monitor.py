"""`csforecast monitor`: the calibration of the probabilities served earlier against the outcomes resolved since,
and the latest score set's drift against the champion's training data (scoring/monitor.py; docs/metrics.md)."""
from __future__ import annotations

import math

import typer
from rich.table import Table

from csforecast.cli.common import JsonOpt, out, print_json, wide


def _num(v, fmt: str = ".3f") -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def _scopes(cal: dict) -> Table:
    t = Table(title=f"Calibration of served churn probabilities against resolved renewals "
                    f"(flag: ECE > {cal['bound']:.2f} and |z| > {cal.get('z_threshold', 3.0):.1f}, with at least "
                    f"{cal['min_n']} renewals)")
    for col in ("scope", "renewals", "served p", "mean served p", "observed churn", "ECE", "Brier", "slope", "z", "flag"):
        t.add_column(col, justify="left" if col == "scope" else "right")
    flagged = {f["scope"] for f in cal["flagged"]}
    rows = [("overall", cal["overall"])] + [(f"{k[3:]}={lab}", m) for k in ("by_segment", "by_horizon")
                                             for lab, m in cal[k].items()]
    for name, m in rows:
        t.add_row(name, f"{m.get('decisions', m['n']):,}", f"{m['n']:,}", _num(m["mean_p"]), _num(m["observed_rate"]), _num(m["ece"]),
                  _num(m["brier"]), _num(m["calibration_slope"], ".2f"), _num(m["z"], ".1f"),
                  "DRIFTED" if name in flagged else "")
    return t


def monitor(as_json: bool = JsonOpt,
            top: int = typer.Option(10, "--top", min=1, help="Drift: the columns with the largest PSI to list.")):
    """Calibration and drift of what was served: ECE, Brier and calibration slope of the churn probabilities
    served by earlier score sets against the renewals resolved since (overall, by segment, by days to renewal
    when served), and PSI per feature and of the predictions against the champion's training data. `csforecast
    score` records both; a family past the configured bounds (the monitoring section of csforecast.toml) is flagged.
    """
    from csforecast.config import get_settings
    from csforecast.scoring.monitor import monitor_report

    settings = get_settings()
    rep = monitor_report(settings.scores_db, settings)
    if as_json:
        print_json(rep)
        return
    con = wide(out)
    if rep["score_set"] is None:
        con.print(f"no score sets in {settings.scores_db}: run `csforecast score --data …` first")
        return
    for family, fam in rep["families"].items():
        con.print(f"[bold]{family}[/bold] (latest score set v{rep['score_set']})")
        if fam["calibration"] is None:
            con.print("  no served probability has resolved yet: calibration is measured once renewals scored in an "
                      "earlier score set have been decided in the data")
        else:
            con.print(f"  {fam['calibration']['overall']['n']:,} resolved outcomes from {fam['score_sets']} score "
                      f"sets served {fam['served_from']} to {fam['served_to']}")
            con.print(_scopes(fam["calibration"]))
        if not fam["drift"]:
            con.print("  drift: no reference (this champion was trained before drift references were kept: retrain "
                      "to get one) or no churn scores in the latest set")
        else:
            t = Table(title=f"Drift of score set v{fam['drift_score_set']} against the champion's training data "
                            f"(PSI; warning above {rep['psi_warning']:.2f})")
            for col in ("column", "PSI", "warning"):
                t.add_column(col, justify="left" if col == "column" else "right")
            for r in fam["drift"][:top]:
                t.add_row(r["column"], _num(r["psi"]), "WARNING" if r["warning"] else "")
            con.print(t)
            more = len(fam["psi_warnings"]) - sum(r["warning"] for r in fam["drift"][:top])
            if more > 0:
                con.print(f"  … and {more} more columns above the warning threshold (--json lists all)")
    con.print("flagged: " + (", ".join(rep["flagged_families"]) if rep["flagged_families"] else "none"))
