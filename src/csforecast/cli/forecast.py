"""`csforecast metrics`, `forecast` and `backtest`: ARR retention, renewal forecasts and their back-test."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from csforecast.cli.common import (AsOfOpt, DataOpt, JsonOpt, QuietOpt, console, fail, open_data, open_valid,
                                   oracle_of, out, parse_date, print_json, progress, wide)

PERIODS = ("quarter", "month", "year")


def _money(x) -> str:
    return "—" if x is None else f"{x:,.0f}"


def _short(x) -> str:
    """Compact money for wide tables: 1.23M, 456.7k."""
    if x is None:
        return "—"
    for div, suf in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:,.1f}{suf}"
    return f"{x:,.0f}"


def _pct(x) -> str:
    return "—" if x is None else f"{x:.1%}"


def metrics_cmd(data: str = DataOpt,
                period: str = typer.Option("quarter", "--period", help="quarter, month or year."),
                group_by: Optional[str] = typer.Option(
                    None, "--group-by", help="segment, region, csm_id, industry or cohort."),
                as_json: bool = JsonOpt):
    """ARR bridge and retention (GRR, NRR, logo retention) per complete period, optionally per group."""
    from csforecast.features.snapshot import data_end
    from csforecast.forecast.renewals import GROUP_BY
    from csforecast.metrics.arr import arr_movements, to_records

    if period.lower() not in PERIODS:
        fail(f"--period must be one of {', '.join(PERIODS)}, not {period!r}")
    if group_by is not None and group_by not in GROUP_BY:
        fail(f"--group-by must be one of {', '.join(GROUP_BY)}, not {group_by!r}")
    src = open_valid(data)
    de = data_end(src)
    try:
        df = arr_movements(src.frame("contracts"), src.frame("accounts"), period.lower(), group_by, data_end=de)
    except ValueError as e:
        fail(str(e))
    if as_json:
        print_json(to_records(df))
        return
    t = Table(title=f"ARR movements per {period.lower()} (data end {de}, exclusive)")
    heads = {"period": "period", "group": "group", "starting_arr": "start", "new_arr": "new",
             "expansion_arr": "expansion", "contraction_arr": "contraction", "churned_arr": "churned",
             "ending_arr": "end", "grr": "GRR", "nrr": "NRR", "logo_retention": "logo ret."}
    cols = [c for c in heads if c != "group" or group_by]
    for c in cols:
        t.add_column(heads[c], justify="left" if c in ("period", "group") else "right")
    for r in to_records(df):
        t.add_row(*[str(r[c]) if c in ("period", "group") else
                    (_pct(r[c]) if c in ("grr", "nrr", "logo_retention") else _short(r[c])) for c in cols])
    wide(out).print(t)


def forecast_cmd(data: str = DataOpt,
                 start: str = typer.Option(..., "--start", help="Window start (YYYY-MM-DD, inclusive)."),
                 end: str = typer.Option(..., "--end", help="Window end (YYYY-MM-DD, exclusive)."),
                 group_by: Optional[str] = typer.Option(
                     None, "--group-by", help="segment, region, csm_id, industry or cohort; or two of them "
                                              "separated by a comma (segment,csm_id)."),
                 as_json: bool = JsonOpt, as_of: Optional[str] = AsOfOpt,
                 draws: Optional[int] = typer.Option(None, "--draws", min=100,
                                                     help="Monte Carlo draws (default: settings, 10,000)."),
                 freeze: bool = typer.Option(False, "--freeze", help="Store the forecast printed in the forecast "
                                             "ledger (see `csforecast ledger`)."),
                 quiet: bool = QuietOpt):
    """Forecast the renewals due in [start, end): expected renewed / churned ARR, GRR and NRR with
    P10-P50-P90, several methods side by side (the blend of model and CSM calls when there is one), the call
    scenarios (commit, most likely, best case) and the at-risk list (champion churn model)."""
    from csforecast.forecast.renewals import NoChampionError, forecast_window, group_columns
    from csforecast.scoring.process import all_calls

    s, e, a = parse_date(start, "--start"), parse_date(end, "--end"), parse_date(as_of, "--as-of")
    try:
        group_columns(group_by)
    except ValueError as err:
        fail(f"--group-by: {err}")
    if e <= s:
        fail("--end must be after --start")
    src = open_valid(data)
    try:
        with progress("forecast", quiet) as tell:
            tell(f"renewals due {s} – {e}: snapshots, churn model, Monte Carlo")
            res = forecast_window(src, s, e, group_by=group_by, as_of=a, draws=draws, calls=all_calls(src),
                                  progress=tell)
    except NoChampionError as err:
        fail(str(err), 1)
    except ValueError as err:
        fail(str(err))
    if freeze:
        res["frozen"] = freeze_forecast(res, src, data)
    if as_json:
        print_json(res)
        return
    print_forecast(res, out)
    for w in res["warnings"]:
        console.print(f"warning: {w}", style="yellow", markup=False, highlight=False)


def freeze_forecast(res: dict, src, data: str) -> list[int]:
    """Store the model's forecast (and the blend's, when there is one) in the ledger; their ledger ids."""
    from csforecast.data.sources import redact
    from csforecast.forecast.ledger import frozen_entry
    from csforecast.scoring.process import freeze, process_db

    db = process_db()   # the ledger keeps the portfolio's figures (groups are not frozen)
    methods = ["model"] + (["blend"] if "blend" in res["methods"] else [])
    where = str(Path(data).resolve()) if Path(data).exists() else redact(data)   # found again from any folder
    return [freeze(db, frozen_entry(res, data_hash=src.data_hash, source=where, method=m)) for m in methods]


def ledger_cmd(data: Optional[str] = typer.Option(None, "--data", help="The data to measure closed windows "
                                                  "against (default: the source each forecast was frozen from)."),
               as_json: bool = JsonOpt):
    """Every frozen forecast (`forecast --freeze`, `score`) and, once its window has closed in the data, the
    actual, the error and whether P10-P90 held it."""
    from csforecast.scoring.process import process_db

    doc = ledger_report(process_db(), data)
    if as_json:
        print_json(doc)
        return
    print_ledger(doc, out)


def ledger_report(db, data: Optional[str] = None) -> dict:
    """The ledger with actuals (``forecast.ledger.ledger_report``), each entry measured against ``data`` or,
    without it, the source it was frozen from (a source that no longer opens leaves its entries open)."""
    from csforecast.config import get_settings
    from csforecast.data.sources import open_source
    from csforecast.features.snapshot import data_end
    from csforecast.forecast.ledger import ledger_report as report
    from csforecast.scoring.process import ledger_entries

    opened: dict = {}

    def frames_for(where: Optional[str]):
        where = data or where
        if not where:
            return None
        if where not in opened:
            try:   # --data given: a source that does not open is an error; an entry's own source: left open
                s = open_data(where) if data else open_source(where, get_settings().column_map)
                opened[where] = (s.frame("contracts"), s.frame("accounts"), data_end(s))
            except Exception:  # noqa: BLE001 - a source that moved leaves its entries open, never an error
                opened[where] = None
        return opened[where]

    return report(ledger_entries(db), frames_for)


def print_ledger(doc: dict, out) -> None:
    """One line per frozen forecast: window, as-of, method, expected GRR and renewed ARR, and the actual."""
    if not doc["entries"]:
        out.print("the forecast ledger is empty: `csforecast forecast --freeze` or `csforecast score` adds to it")
        return
    t = Table(title="Forecast ledger (frozen forecasts and their accuracy)")
    for c in ("id", "window", "as of", "method", "renewed ARR", "P10–P90", "GRR", "actual ARR", "actual GRR",
              "held"):
        t.add_column(c, justify="left" if c in ("window", "as of", "method") else "right")
    for r in doc["entries"]:
        e, iv = r["expected"], (r.get("intervals") or {}).get("renewed_arr") or {}
        a = r.get("actual") or {}
        t.add_row(str(r.get("id")), f"{r['window']['start']} – {r['window']['end']}", r["as_of"], r["method"],
                  _money(e.get("renewed_arr")), f"{_short(iv.get('p10'))}–{_short(iv.get('p90'))}", _pct(e.get("grr")),
                  _money(a.get("renewed_arr")), _pct(a.get("grr")),
                  {True: "yes", False: "no"}.get((r.get("held") or {}).get("renewed_arr"), "open"))
    wide(out).print(t)
    s = doc["summary"]
    out.print(f"{s['entries']} frozen, {s['closed']} closed; P10–P90 held renewed ARR "
              f"{_pct(s['p10_p90_held_renewed_arr'])} of closed windows", highlight=False)


def backtest_cmd(data: str = DataOpt,
                 quarters: int = typer.Option(8, "--quarters", min=1, help="Complete quarters to back-test."),
                 warmup: int = typer.Option(4, "--warmup", min=0,
                                            help="Earlier quarters used only to calibrate interval width."),
                 draws: Optional[int] = typer.Option(None, "--draws", min=100, help="Monte Carlo draws."),
                 as_json: bool = JsonOpt, quiet: bool = QuietOpt):
    """Back-test the renewal forecast on past quarters (model, last_year, time_series, oracle); log to
    MLflow with a fan chart and save the interval calibration that `forecast` uses."""
    src = open_valid(data)
    res = run_backtest_logged(src, quarters, warmup, draws, quiet)
    if as_json:
        print_json(res)
        return
    print_backtest(res, out)


def run_backtest_logged(src, quarters: int, warmup: int, draws: Optional[int], quiet: bool = False) -> dict:
    """Back-test ``quarters`` quarters (after ``warmup``) with a progress display, log it to MLflow and save the
    interval calibration; the result with ``run_id`` and ``calibration_file``."""
    from csforecast.forecast.backtest import log_backtest, run_backtest, save_tau

    with progress("backtest", quiet) as tell:
        try:
            res = run_backtest(src, quarters, warmup, draws=draws, oracle=oracle_of(src), progress=tell)
        except ValueError as err:
            fail(str(err))
        tell("logging to MLflow")
        res["run_id"] = log_backtest(res, src.data_hash)
        res["calibration_file"] = save_tau(res, src.data_hash)
    return res


def _booked_words(due: dict) -> str:
    n = due.get("booked_count") or 0
    return f", {n:,} of them booked ahead ({_money(due['booked_arr'])})" if n else ""


def print_forecast(res: dict, out) -> None:
    """The forecast of one window: renewals due, the methods side by side, groups, worst case, at-risk list."""
    w = res["window"]
    d = res["renewals_due"]
    out.print(f"Renewals due {w['start']} – {w['end']} (end exclusive) as of {res['as_of']}: "
              f"{d['count']:,} renewals, {_money(d['arr'])} ARR "
              f"({d['pending_count']:,} pending; {_money(d['renewed_so_far_arr'])} renewed"
              f"{_booked_words(d)} and {_money(d['churned_so_far_arr'])} churned so far). "
              f"Champion churn model v{res['model_version']}.",
              highlight=False)
    t = Table(title="Methods side by side (expected values exact; P10–P90: 8 in 10 outcomes fall between them)")
    for c in ("method", "renewed ARR", "P10", "P90", "churned ARR", "GRR", "NRR"):
        t.add_column(c, justify="left" if c == "method" else "right")
    for m, r in res["methods"].items():
        i = r["intervals"]["renewed_arr"]
        t.add_row(m, _money(r["renewed_arr"]), _money(i["p10"]), _money(i["p90"]), _money(r["churned_arr"]),
                  _pct(r["grr"]), _pct(r["nrr"]))
    wide(out).print(t)
    if res["groups"]:
        t = Table(title=f"Model forecast by {w['group_by']}")
        for c in ("group", "due", "ARR due", "renewed ARR", "P10", "P90", "GRR", "NRR"):
            t.add_column(c, justify="left" if c == "group" else "right")
        for g in res["groups"]:
            e, i = g["expected"], g["intervals"]["renewed_arr"]
            t.add_row(g["group"], f"{g['renewals_due']['count']:,}", _money(g["renewals_due"]["arr"]),
                      _money(e["renewed_arr"]), _money(i["p10"]), _money(i["p90"]), _pct(e["grr"]), _pct(e["nrr"]))
        wide(out).print(t)
    for r in res["forecast_risk"]:
        out.print(f"forecast_risk: {r['message']}", style="yellow", markup=False, highlight=False)
    sc = res.get("scenarios")
    if sc and sc.get("pending_called"):
        out.print(f"CSM call scenarios: commit {_money(sc['commit'])}, most likely {_money(sc['most_likely'])}, best "
                  f"case {_money(sc['best_case'])} ({sc['pending_called']} of {sc['pending']} pending renewals called; "
                  f"{_money(sc['uncalled_arr'])} ARR not called)", highlight=False)
    for fid in res.get("frozen") or []:
        out.print(f"frozen in the forecast ledger as entry {fid}", highlight=False)
    wc = res["worst_case"]
    out.print(f"Worst case: {_money(wc['churned_so_far_arr'])} churned so far + {_money(wc['at_risk_arr'])} at risk "
              f"(churn probability above {wc['threshold']}) = {_money(wc['churned_arr'])} lost, GRR {_pct(wc['grr'])}",
              highlight=False)
    if res["at_risk"]:
        t = Table(title="At risk (expected churned ARR = churn probability × ARR)")
        for c in ("account", "contract", "segment", "renewal", "ARR", "churn probability", "expected churned"):
            t.add_column(c, justify="right" if c in ("ARR", "churn probability", "expected churned") else "left")
        for r in res["at_risk"][:10]:
            t.add_row(r["account_id"], r["contract_id"], str(r["segment"]), r["renewal_date"], _money(r["arr"]),
                      f"{r['p_churn']:.2f}", _money(r["expected_churned_arr"]))
        wide(out).print(t)
    out.print(f"What the columns mean: {TABLES_DOC}", highlight=False)


TABLES_DOC = "docs/forecast.md#reading-the-forecast-and-backtest-tables"   # what every column means


def _tau_text(res: dict, method: str) -> str:
    """The method's tau for the next forecast: pooled, and per segment where the segment has its own."""
    by_segment = (res.get("tau_segments") or {}).get(method) or {}
    own = ", ".join(f"{seg} {t:.3f}" for seg, t in sorted(by_segment.items()))
    return f"{res['tau'].get(method, 0):.3f}" + (f" ({own})" if own else "")


def print_backtest(res: dict, out) -> None:
    """The back-test summary per method and the model's renewed ARR per quarter, in words (every column is
    defined in docs/forecast.md, "Reading the forecast and backtest tables")."""
    t = Table(title=f"Back-test of {res['quarters_requested']} quarters (data end {res['data_end']}): how far each "
                    "method's renewed-ARR forecast was from what happened")
    for c in ("method", "error by segment (WAPE)", "error of the total", "error vs the oracle's",
              "actuals inside P10–P90", "NRR inside P10–P90", "interval widening for the next forecast"):
        t.add_column(c, justify="left" if c == "method" else "right")
    for m, s in res["summary"].items():
        if "wape" not in s:
            continue
        ratio = s.get("wape_vs_oracle")
        n = s["intervals_counted"]
        inside = round(s["coverage_p10_p90"] * n)
        t.add_row(m, _pct(s["wape"]), _pct(s["wape_overall"]), f"{ratio:.2f} times" if ratio else "—",
                  f"{inside} of {n} intervals ({s['coverage_p10_p90']:.0%}; 80% expected)",
                  _pct(s.get("nrr_coverage_p10_p90")), _tau_text(res, m))
    wide(out).print(t)
    noise = res.get("coverage_if_calibrated") or {}
    if noise:
        out.print(f"How much coverage varies by chance on these {noise['windows']} intervals: exactly calibrated "
                  f"P10–P90 intervals would cover {noise['mean']:.0%} ± {noise['sd']:.0%} (P10–P90 of coverage "
                  f"{noise['p10']:.0%}–{noise['p90']:.0%}; renewals redrawn from the {noise['probabilities']}'s "
                  "probabilities)" + (": " + ", ".join(f"{k} {v:.0%}" for k, v in noise["scopes"].items())
                                      if noise.get("scopes") else "") + ".", highlight=False)
    t = Table(title="Renewed ARR per quarter (model)")
    for c in ("quarter", "forecast", "P10", "P90", "actual", "actual inside P10–P90", "GRR forecast / actual",
              "NRR forecast / actual"):
        t.add_column(c, justify="left" if c == "quarter" else "right")
    for r in res["quarters"]:
        if r["method"] != "model":
            continue
        t.add_row(r["quarter"], _money(r["forecast_renewed_arr"]), _money(r["p10"]), _money(r["p90"]),
                  _money(r["actual_renewed_arr"]), "yes" if r["covered"] else "no",
                  f"{_pct(r['grr_forecast'])} / {_pct(r['grr_actual'])}",
                  f"{_pct(r['nrr_forecast'])} / {_pct(r['nrr_actual'])}")
    wide(out).print(t)
    out.print(f"What the columns mean: {TABLES_DOC}", highlight=False)
    out.print(f"MLflow run {res.get('run_id')}; interval calibration saved to {res.get('calibration_file')}",
              highlight=False)
