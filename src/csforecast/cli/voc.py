"""`csforecast voc`, `reasons` and `pipeline`: voice of the customer, churn reasons, the expansion pipeline.

Each command opens and validates the source, calls one function (metrics.voc, metrics.reasons,
forecast.pipeline) and prints its result: tables, or one JSON document with ``--json``. Definitions:
docs/metrics.md.
"""
from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from csforecast.cli.common import AsOfOpt, DataOpt, JsonOpt, console, fail, open_valid, out, parse_date, print_json, wide


def _money(x) -> str:
    return "—" if x is None else f"{x:,.0f}"


def _pct(x) -> str:
    return "—" if x is None else f"{x:.1%}"


def _num(x, nd: int = 1) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def _frame(src, name: str):
    return src.frame(name) if src.has(name) else None


def voc_cmd(data: str = DataOpt, as_of: Optional[str] = AsOfOpt,
            window_days: Optional[int] = typer.Option(None, "--window-days", min=1, max=36_500,
                                                      help="Responses in the last N days before the as-of date "
                                                           "(default: settings, 365)."),
            group_by: Optional[str] = typer.Option(
                None, "--group-by", help="segment, region, csm_id, industry, cohort or respondent_role."),
            as_json: bool = JsonOpt):
    """Voice of the customer: NPS with its interval per period and group, response coverage by segment and
    respondent role, CSAT and CES, and the VoC matrix (CES x NPS x CSAT classes) with the accounts to act on
    first and the advocacy targets."""
    from csforecast.config import get_settings
    from csforecast.features.snapshot import data_end
    from csforecast.metrics.voc import VOC_GROUP_BY, voc_report

    if group_by is not None and group_by not in VOC_GROUP_BY:
        fail(f"--group-by must be one of {', '.join(VOC_GROUP_BY)}, not {group_by!r}")
    a = parse_date(as_of, "--as-of")
    settings = get_settings().voc
    src = open_valid(data)
    if not src.has("surveys"):
        console.print("warning: the source has no surveys table (or it is empty): there is no response to "
                      "report; every active account is in the all-na cell", style="yellow", markup=False,
                      highlight=False)
    try:
        res = voc_report(_frame(src, "surveys"), src.frame("accounts"), src.frame("contracts"), a or data_end(src),
                         window_days or settings.window_days, group_by, settings.level)
    except ValueError as e:
        fail(str(e))
    if as_json:
        print_json(res)
        return
    print_voc(res)


def print_voc(res: dict) -> None:
    w, cov = res["window"], res["response_coverage"]
    lo, hi = res["nps_ci"]
    n = res["n_responses"]
    out.print(f"Voice of the customer, responses {w['start']} – {w['end']} (end exclusive):", highlight=False)
    out.print(f"  NPS {_num(res['nps'])} ({res['level']:.0%} interval {_num(lo)} to {_num(hi)}) from {n['nps']:,} "
              f"responses ({res['promoters']} promoters, {res['passives']} passives, {res['detractors']} "
              f"detractors); CSAT {_num(res['csat_mean'], 2)} from {n['csat']:,}; CES {_num(res['ces_mean'], 2)} "
              f"from {n['ces']:,}", highlight=False)
    out.print(f"  coverage: {_pct(cov['accounts'])} of {cov['active_accounts']:,} active accounts, "
              f"{_pct(cov['arr'])} of their ARR, have at least one response", highlight=False)
    t = Table(title="Coverage by segment and respondent role")
    for c in ("segment / role", "active accounts", "responding", "accounts", "ARR", "responses"):
        t.add_column(c, justify="left" if c == "segment / role" else "right")
    for r in cov["by_segment"]:
        t.add_row(r["segment"], f"{r['active_accounts']:,}", f"{r['responding_accounts']:,}", _pct(r["accounts"]),
                  _pct(r["arr"]), f"{r['responses']:,}")
    for r in cov["by_role"]:
        t.add_row(f"role: {r['respondent_role']}", "", f"{r['responding_accounts']:,}", _pct(r["accounts"]),
                  _pct(r["arr"]), f"{r['responses']:,}")
    wide(out).print(t)
    if res.get("groups"):
        t = Table(title=f"By {res['group_by']}")
        for c in ("group", "NPS", "interval", "NPS responses", "CSAT", "CES"):
            t.add_column(c, justify="left" if c == "group" else "right")
        for g in res["groups"]:
            t.add_row(g["group"], _num(g["nps"]), f"{_num(g['nps_ci'][0])} to {_num(g['nps_ci'][1])}",
                      f"{g['n_responses']['nps']:,}", _num(g["csat_mean"], 2), _num(g["ces_mean"], 2))
        wide(out).print(t)
    t = Table(title="NPS per quarter")
    for c in ("quarter", "NPS", "interval", "responses", "CSAT", "CES"):
        t.add_column(c, justify="left" if c == "quarter" else "right")
    for r in res["trend"]:
        t.add_row(r["period"] + ("" if r["complete"] else " (partial)"), _num(r["nps"]),
                  f"{_num(r['nps_ci'][0])} to {_num(r['nps_ci'][1])}", f"{r['n_responses']['nps']:,}",
                  _num(r["csat_mean"], 2), _num(r["ces_mean"], 2))
    wide(out).print(t)
    t = Table(title="VoC matrix: active accounts by their latest CES, NPS and CSAT")
    for c in ("CES", "NPS", "CSAT", "accounts", "ARR"):
        t.add_column(c, justify="right" if c in ("accounts", "ARR") else "left")
    for c in res["matrix"]:
        t.add_row(c["ces_class"], c["nps_class"], c["csat_class"], f"{c['accounts']:,}", _money(c["arr"]))
    wide(out).print(t)
    for key, title in (("act_first", "Act first (poor CES, detractor, red CSAT)"),
                       ("advocacy", "Advocacy targets (good CES, promoter, green CSAT)")):
        cell = res[key]
        names = ", ".join(a["account_id"] for a in cell["list"][:10])
        out.print(f"{title}: {cell['accounts']} account(s), {_money(cell['arr'])} ARR"
                  + (f": {names}" if names else ""), highlight=False)


def reasons_cmd(data: str = DataOpt,
                period: Optional[str] = typer.Option(
                    None, "--period", help="quarter, month or year (reasons per period as well), or one period "
                                           "(2025Q3, 2025-07, 2025). Default: every churned renewal."),
                group_by: Optional[str] = typer.Option(
                    None, "--group-by", help="segment, region, csm_id, industry or cohort."),
                as_json: bool = JsonOpt):
    """Churn reasons: churned logos and ARR by reason, avoidable vs unavoidable (mapping in csforecast.toml,
    [churn_reasons]), by segment, tenure band and ARR band, and contraction reasons where recorded."""
    from csforecast.config import get_settings
    from csforecast.features.snapshot import data_end
    from csforecast.forecast.book import GROUP_BY
    from csforecast.metrics.reasons import check_period, reasons_report

    if group_by is not None and group_by not in GROUP_BY:
        fail(f"--group-by must be one of {', '.join(GROUP_BY)}, not {group_by!r}")
    try:
        check_period(period)
    except ValueError as e:
        fail(f"--period: {e}")
    mapping = get_settings().churn_reasons
    src = open_valid(data)
    try:
        res = reasons_report(src.frame("contracts"), src.frame("accounts"), data_end(src), period=period,
                             group_by=group_by, avoidable=mapping.avoidable, unavoidable=mapping.unavoidable)
    except ValueError as e:
        fail(str(e))
    if as_json:
        print_json(res)
        return
    print_reasons(res)


def _reason_table(title: str, rows: list[dict]) -> Table:
    t = Table(title=title)
    for c in ("reason", "avoidable", "logos", "logo share", "ARR", "ARR share"):
        t.add_column(c, justify="left" if c in ("reason", "avoidable") else "right")
    for r in rows:
        t.add_row(r["reason"], {True: "yes", False: "no"}.get(r["avoidable"], "—"), f"{r['logos']:,}",
                  _pct(r["logo_share"]), _money(r["arr"]), _pct(r["arr_share"]))
    return t


def _band_table(title: str, groups: list[dict]) -> Table:
    t = Table(title=title)
    for c in ("band", "logos", "ARR", "avoidable logos", "avoidable ARR", "top reason"):
        t.add_column(c, justify="left" if c in ("band", "top reason") else "right")
    for g in groups:
        top = g["reasons"][0] if g["reasons"] else None
        t.add_row(g["group"], f"{g['logos']:,}", _money(g["arr"]), _pct(g["avoidable_logo_share"]),
                  _pct(g["avoidable_arr_share"]),
                  f"{top['reason']} ({top['logos']:,}, {_pct(top['logo_share'])})" if top else "—")
    return t


def print_reasons(res: dict) -> None:
    out.print(f"Churned renewals due before {res['data_end']}{' in ' + res['period'] if res['period'] and res['period'] not in ('quarter', 'month', 'year') else ''}: "
              f"{res['logos']:,} logos, {_money(res['arr'])} ARR; avoidable {_pct(res['avoidable_logo_share'])} of "
              f"logos, {_pct(res['avoidable_arr_share'])} of ARR; reason unknown for {res['unknown_logos']:,}",
              highlight=False)
    wide(out).print(_reason_table("Churn reasons", res["reasons"]))
    for key, title in (("by_segment", "By segment"), ("by_tenure_band", "By tenure at renewal"),
                       ("by_arr_band", "By ARR due"), ("groups", f"By {res.get('group_by')}"),
                       ("periods", f"Per {res.get('period')}")):
        if res.get(key):
            wide(out).print(_band_table(title, res[key]))
    con = res["contraction"]
    if con["available"]:
        t = Table(title=f"Contraction reasons ({con['renewals']:,} renewals came back smaller, "
                        f"{_money(con['arr_lost'])} ARR lost)")
        for c in ("reason", "renewals", "share", "ARR lost", "ARR share"):
            t.add_column(c, justify="left" if c == "reason" else "right")
        for r in con["reasons"]:
            t.add_row(r["reason"], f"{r['renewals']:,}", _pct(r["renewal_share"]), _money(r["arr_lost"]),
                      _pct(r["arr_share"]))
        wide(out).print(t)
    else:
        out.print("Contraction reasons: the data records no reason on a renewed contract.", highlight=False)


def pipeline_cmd(data: str = DataOpt,
                 group_by: Optional[str] = typer.Option(
                     None, "--group-by", help="segment, region, csm_id, industry or cohort."),
                 as_json: bool = JsonOpt):
    """The expansion pipeline: open opportunities weighted by the default (csforecast.toml [pipeline]) and the
    learned stage probabilities, per quarter of expected close, and how each weighting forecast past quarters."""
    from csforecast.config import get_settings
    from csforecast.features.snapshot import data_end
    from csforecast.forecast.book import GROUP_BY
    from csforecast.forecast.pipeline import check_stage_probabilities, pipeline_report

    if group_by is not None and group_by not in GROUP_BY:
        fail(f"--group-by must be one of {', '.join(GROUP_BY)}, not {group_by!r}")
    st = get_settings().pipeline
    try:
        check_stage_probabilities(st.stage_probabilities)
    except ValueError as e:
        fail(f"{e} (csforecast.toml [pipeline])")
    src = open_valid(data)
    try:
        res = pipeline_report(_frame(src, "opportunities"), _frame(src, "opportunity_history"), data_end(src),
                              stage_probabilities=st.stage_probabilities, windows=st.windows,
                              backtest_quarters=st.backtest_quarters, level=st.level, accounts=src.frame("accounts"),
                              contracts=src.frame("contracts"), group_by=group_by)
    except ValueError as e:
        fail(str(e))
    for n in res["notes"]:
        console.print(f"warning: {n}", style="yellow", markup=False, highlight=False)
    if as_json:
        print_json(res)
        return
    print_pipeline(res)


def print_pipeline(res: dict) -> None:
    o = res["open"]
    out.print(f"Open pipeline at {res['data_end']}: {o['opportunities']:,} opportunities, {_money(o['amount'])}",
              highlight=False)
    t = Table(title="Stage probabilities (P(won | stage))")
    for c in ("stage", "default", "learned", "interval", "closed that reached it"):
        t.add_column(c, justify="left" if c == "stage" else "right")
    for s, v in res["stage_probabilities"].items():
        t.add_row(s, _pct(v["default"]), _pct(v["learned"]),
                  f"{_pct(v['ci_low'])} – {_pct(v['ci_high'])}" if v["ci_low"] is not None else "—", f"{v['n']:,}")
    wide(out).print(t)
    t = Table(title="Open pipeline by quarter of expected close (overdue in the first)")
    for c in ("quarter", "opportunities", "open", "weighted (default)", "weighted (learned)"):
        t.add_column(c, justify="left" if c == "quarter" else "right")
    for w in res["windows"]:
        t.add_row(f"{w['start']} – {w['end']}", f"{w['opportunities']:,}", _money(w["open_amount"]),
                  _money(w["weighted_default"]), _money(w["weighted_learned"]))
    wide(out).print(t)
    if res["backtest"]:
        cal = res["calibration"]
        t = Table(title=f"Back-test: weighted pipeline vs won (WAPE default {_pct(cal['wape_default'])}, learned "
                        f"{_pct(cal['wape_learned'])})")
        for c in ("quarter", "opportunities", "open", "weighted (default)", "weighted (learned)", "won"):
            t.add_column(c, justify="left" if c == "quarter" else "right")
        for r in res["backtest"]:
            t.add_row(r["quarter"], f"{r['opportunities']:,}", _money(r["open_amount"]), _money(r["weighted_default"]),
                      _money(r["weighted_learned"]), _money(r["won_amount"]))
        wide(out).print(t)
