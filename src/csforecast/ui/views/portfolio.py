"""The portfolio page: renewals due, the renewal forecast and backtest sections, ARR movements, health bands,
the metrics matrix, coverage anomalies and the high-risk list, from the portfolio frame."""
from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from csforecast.ui.views.format import DASH, chart, finite, intc, money, money_full, pct
from csforecast.ui.views.frame import (ARR_BAND_LABELS, BAND_COLORS, BANDS, Filters, account_row,
                                       filter_options)

TOP_RISK = 25                       # rows of the high-risk high-ARR list
MOVEMENT_QUARTERS = 8
BACKTEST_METHOD = "model"


def renewals_due(df: pd.DataFrame, as_of: date) -> dict:
    """Accounts whose next renewal falls in each of the 12 months / 4 quarters from the as-of date (renewal
    dates before the as-of date are left out)."""
    start = pd.Timestamp(as_of).normalize()
    future = (df["renewal_date"] >= start).to_numpy()
    arr = np.nan_to_num(df["arr"].to_numpy(dtype=float))
    risk = df["risk_arr"].to_numpy(dtype=float)
    known = ~np.isnan(risk)
    out = {}
    for freq, col, n, key in (("M", "renew_m", 12, "months"), ("Q", "renew_q", 4, "quarters")):
        p0 = pd.Period(start, freq=freq)
        first = start.year * 12 + start.month - 1 if freq == "M" else start.year * 4 + (start.month - 1) // 3
        code = df[col].to_numpy() - first
        ok = future & (code >= 0) & (code < n)
        c = code[ok]
        cnt = np.bincount(c, minlength=n)
        arr_s = np.bincount(c, weights=arr[ok], minlength=n)
        risk_s = np.bincount(c, weights=np.nan_to_num(risk[ok]), minlength=n)
        risk_n = np.bincount(c, weights=known[ok].astype(float), minlength=n)
        rows = []
        for k in range(n):
            r = float(risk_s[k]) if risk_n[k] > 0 else None
            a = float(arr_s[k])
            rows.append({"period": str(p0 + k), "count": int(cnt[k]), "arr": a, "expected_churned_arr": r,
                         "arr_s": money(a), "arr_full": money_full(a), "exp_s": money(r), "count_s": intc(cnt[k])})
        out[key] = rows
    out["no_date"] = int(df["renewal_date"].isna().sum())
    out["later"] = int((df["renewal_date"] >= (pd.Period(start, freq="M") + 12).start_time).sum())
    out["chart"] = chart("renewals-due", [
        {"type": "bar", "name": "ARR due", "x": [r["period"] for r in out["months"]],
         "y": [r["arr"] for r in out["months"]], "marker": {"color": "#1565c0"},
         "customdata": [r["count"] for r in out["months"]],
         "hovertemplate": "%{x}: %{y:,.0f} ARR due (%{customdata} accounts)<extra></extra>"},
        {"type": "bar", "name": "expected churned ARR", "x": [r["period"] for r in out["months"]],
         "y": [r["expected_churned_arr"] for r in out["months"]], "marker": {"color": "#c62828"},
         "hovertemplate": "%{x}: %{y:,.0f} expected churned<extra></extra>"},
    ], {"barmode": "group", "yaxis": {"title": "ARR"}, "xaxis": {"type": "category"}})
    return out


def forecast_section(results: list[dict] | None, group_by: str | None, group: str | None) -> dict:
    """Fan chart + GRR/NRR of the next quarters from forecast_window results (one per quarter, in order)."""
    rows = []
    for res in results or []:
        if group_by is None:
            o = res
        else:
            o = next((g for g in res.get("groups") or [] if str(g.get("group")) == str(group)), None)
        w = res["window"]
        label = str(pd.Period(pd.Timestamp(w["start"]), freq="Q"))
        if o is None:
            rows.append({"quarter": label, "start": w["start"], "end": w["end"], "empty": True})
            continue
        due = o.get("renewals_due") or {}
        e, iv = o.get("expected") or {}, o.get("intervals") or {}
        ra, g, n = iv.get("renewed_arr") or {}, iv.get("grr") or {}, iv.get("nrr") or {}
        rows.append({"quarter": label, "start": w["start"], "end": w["end"], "empty": False,
                     "count": due.get("count"), "due": due.get("arr"), "expected": e.get("renewed_arr"),
                     "p10": ra.get("p10"), "p50": ra.get("p50"), "p90": ra.get("p90"),
                     "grr": e.get("grr"), "grr_p10": g.get("p10"), "grr_p90": g.get("p90"),
                     "nrr": e.get("nrr"), "nrr_p10": n.get("p10"), "nrr_p90": n.get("p90")})
    table = [{**r, **({} if r["empty"] else {
        "count_s": intc(r["count"]), "due_s": money(r["due"]), "expected_s": money(r["expected"]),
        "p10_s": money(r["p10"]), "p50_s": money(r["p50"]), "p90_s": money(r["p90"]),
        "grr_s": pct(r["grr"]), "grr_band": f"{pct(r['grr_p10'])} – {pct(r['grr_p90'])}",
        "nrr_s": pct(r["nrr"]), "nrr_band": f"{pct(r['nrr_p10'])} – {pct(r['nrr_p90'])}"})} for r in rows]
    ok = [r for r in rows if not r["empty"]]
    x = [r["quarter"] for r in ok]
    fan = chart("forecast-fan", [
        {"type": "scatter", "mode": "lines", "name": "P90", "x": x, "y": [r["p90"] for r in ok],
         "line": {"width": 0.5, "color": "#90caf9"}, "hovertemplate": "P90 %{y:,.0f}<extra></extra>"},
        {"type": "scatter", "mode": "lines", "name": "P10–P90", "x": x, "y": [r["p10"] for r in ok],
         "fill": "tonexty", "fillcolor": "rgba(21,101,192,0.2)", "line": {"width": 0.5, "color": "#90caf9"},
         "hovertemplate": "P10 %{y:,.0f}<extra></extra>"},
        {"type": "scatter", "mode": "lines+markers", "name": "P50", "x": x, "y": [r["p50"] for r in ok],
         "line": {"color": "#1565c0"}, "hovertemplate": "P50 %{y:,.0f}<extra></extra>"},
        {"type": "scatter", "mode": "markers", "name": "expected", "x": x, "y": [r["expected"] for r in ok],
         "marker": {"symbol": "diamond", "size": 9, "color": "#0d47a1"},
         "hovertemplate": "expected %{y:,.0f}<extra></extra>"},
        {"type": "scatter", "mode": "markers", "name": "ARR due", "x": x, "y": [r["due"] for r in ok],
         "marker": {"symbol": "line-ew-open", "size": 18, "color": "#555"},
         "hovertemplate": "ARR due %{y:,.0f}<extra></extra>"},
    ], {"yaxis": {"title": "renewed ARR", "rangemode": "tozero"}, "xaxis": _cat_axis(x)})
    rates = chart("forecast-rates", [
        {"type": "scatter", "mode": "markers+lines", "name": "GRR (expected, P10–P90)", "x": x,
         "y": [r["grr"] for r in ok], "error_y": {"type": "data", "symmetric": False,
                                                    "array": [_gap(r["grr_p90"], r["grr"]) for r in ok],
                                                    "arrayminus": [_gap(r["grr"], r["grr_p10"]) for r in ok]}},
        {"type": "scatter", "mode": "markers+lines", "name": "NRR (expected, P10–P90)", "x": x,
         "y": [r["nrr"] for r in ok], "error_y": {"type": "data", "symmetric": False,
                                                    "array": [_gap(r["nrr_p90"], r["nrr"]) for r in ok],
                                                    "arrayminus": [_gap(r["nrr"], r["nrr_p10"]) for r in ok]}},
    ], {"yaxis": {"title": "rate", "tickformat": ".0%"}, "xaxis": _cat_axis(x)})
    return {"rows": table, "fan": fan if ok else None, "rates": rates if ok else None}


def _cat_axis(x: list) -> dict:
    """A category x axis with half a slot of room on both sides (points are not drawn on the edges)."""
    return {"type": "category", "range": [-0.5, len(x) - 0.5]}


def _gap(a, b):
    a, b = finite(a), finite(b)
    return None if a is None or b is None else max(a - b, 0.0)


def backtest_section(bt: dict | None, segment: str | None) -> dict:
    """Last quarters' forecast vs actual (method `model`) from the latest backtest run's backtest.json."""
    if not bt:
        return {"missing": "no backtest run yet (run `csforecast backtest --data …`)"}
    result = bt.get("result") or {}
    note = None
    if segment:
        rows = [r for r in result.get("segments") or [] if r.get("method") == BACKTEST_METHOD
                and str(r.get("segment")) == segment]
        scope = f"segment {segment}"
    else:
        rows = [r for r in result.get("quarters") or [] if r.get("method") == BACKTEST_METHOD]
        scope = "whole portfolio"
    if not rows:
        return {"missing": f"the latest backtest run ({bt.get('run_id')}) has no quarters for {scope}",
                "run_id": bt.get("run_id")}
    rows = sorted(rows, key=lambda r: str(r.get("quarter")))
    table = [{"quarter": r.get("quarter"), "due": money(r.get("arr_due")),
              "forecast": money(r.get("forecast_renewed_arr")),
              "p10": money(r.get("p10")), "p90": money(r.get("p90")), "actual": money(r.get("actual_renewed_arr")),
              "covered": "yes" if r.get("covered") else "no", "error": money(r.get("error")),
              "grr": f"{pct(r.get('grr_forecast'))} / {pct(r.get('grr_actual'))}",
              "nrr": f"{pct(r.get('nrr_forecast'))} / {pct(r.get('nrr_actual'))}"} for r in rows]
    x = [r.get("quarter") for r in rows]
    fig = chart("backtest", [
        {"type": "scatter", "mode": "markers", "name": "forecast (expected, P10–P90)", "x": x,
         "y": [r.get("forecast_renewed_arr") for r in rows], "marker": {"color": "#1565c0", "size": 9},
         "error_y": {"type": "data", "symmetric": False,
                     "array": [_gap(r.get("p90"), r.get("forecast_renewed_arr")) for r in rows],
                     "arrayminus": [_gap(r.get("forecast_renewed_arr"), r.get("p10")) for r in rows]}},
        {"type": "scatter", "mode": "markers", "name": "actual", "x": x,
         "y": [r.get("actual_renewed_arr") for r in rows],
         "marker": {"color": "#000", "symbol": "x", "size": 10}},
    ], {"yaxis": {"title": "renewed ARR", "rangemode": "tozero"}, "xaxis": _cat_axis(x)})
    summ = (result.get("summary") or {}).get(BACKTEST_METHOD) or {}
    oracle = (result.get("summary") or {}).get("oracle") or {}
    summary = {"wape": pct(summ.get("wape")), "wape_oracle": pct(oracle.get("wape")) if oracle else None,
               "coverage": pct(summ.get("coverage_p10_p90"), 0), "bias": pct(summ.get("bias")),
               "n": summ.get("intervals_counted")}
    return {"rows": table, "chart": fig, "summary": summary, "run_id": bt.get("run_id"), "scope": scope,
            "data_end": result.get("data_end"), "note": note, "created": bt.get("created")}


def movements_section(mov: pd.DataFrame | None) -> dict:
    if mov is None:
        return {"missing": "no ARR movements"}
    if mov.empty:
        return {"missing": "no complete quarter of contract data for this selection"}
    m = mov.sort_values("period_start").tail(MOVEMENT_QUARTERS)
    x = [str(p) for p in m["period"]]

    def col(c):
        return [finite(v) for v in m[c]]
    fig = chart("movements", [
        {"type": "bar", "name": "new", "x": x, "y": col("new_arr"), "marker": {"color": "#2e7d32"}},
        {"type": "bar", "name": "expansion", "x": x, "y": col("expansion_arr"), "marker": {"color": "#81c784"}},
        {"type": "bar", "name": "contraction", "x": x, "y": [-(v or 0) for v in col("contraction_arr")],
         "marker": {"color": "#ffb74d"}},
        {"type": "bar", "name": "churn", "x": x, "y": [-(v or 0) for v in col("churned_arr")],
         "marker": {"color": "#c62828"}},
    ], {"barmode": "relative", "yaxis": {"title": "ARR movement"}, "xaxis": {"type": "category"}})
    rows = [{"period": str(r.period), "starting": money(r.starting_arr), "new": money(r.new_arr),
             "expansion": money(r.expansion_arr), "contraction": money(r.contraction_arr),
             "churned": money(r.churned_arr), "ending": money(r.ending_arr), "grr": pct(r.grr), "nrr": pct(r.nrr)}
            for r in m.itertuples(index=False)]
    return {"rows": rows, "chart": fig}


def health_by_segment(df: pd.DataFrame) -> dict:
    if df.empty or df["health_band"].isna().all():
        return {"missing": "no health scores in this score set (no health model served)"}
    g = df.groupby(["seg", "band"], sort=False).agg(n=("account_id", "size"), arr=("arr", "sum"))
    n, arr = g["n"].to_dict(), g["arr"].to_dict()
    segs = sorted({s for s, _ in n if s != "(none)"}) + (["(none)"] if any(s == "(none)" for s, _ in n) else [])
    present = {b for _, b in n}
    cols = [b for b in (*BANDS, "none") if b in present]
    data = [{"type": "bar", "name": b if b != "none" else "no score", "x": segs,
             "y": [n.get((s, b), 0) for s in segs], "marker": {"color": BAND_COLORS[b]}} for b in cols]
    rows = []
    for s in segs:
        tot = sum(n.get((s, b), 0) for b in cols)
        rows.append({"segment": s, "n": intc(tot), "cells": [
            {"band": b, "n": intc(n.get((s, b), 0)), "share": pct(n.get((s, b), 0) / tot if tot else None, 0),
             "arr": money(arr.get((s, b), 0.0))} for b in cols]})
    return {"chart": chart("health-bands", data, {"barmode": "stack", "yaxis": {"title": "accounts"},
                                                      "xaxis": {"type": "category"}}),
            "rows": rows, "bands": cols}


def metrics_matrix(df: pd.DataFrame) -> dict:
    """segment × ARR band × CSM assigned × health band: accounts, ARR, mean churn probability, expected
    churned ARR; rows that are coverage anomalies are flagged."""
    if df.empty:
        return {"rows": [], "bands": list(BANDS)}
    g = df.groupby(["seg", "arr_band", "csm_assigned", "band"], sort=False).agg(
        n=("account_id", "size"), arr=("arr", "sum"), psum=("churn_probability", "sum"),
        pn=("churn_probability", "count"), risk=("risk_arr", "sum"), rn=("risk_arr", "count"))
    cells: dict[tuple, dict] = {}
    present = set()
    for (seg, ab, cs, band), r in zip(g.index, g.itertuples(index=False)):
        present.add(band)
        c = cells.setdefault((seg, ab, cs), {"n": 0, "arr": 0.0, "psum": 0.0, "pn": 0, "risk": 0.0, "rn": 0,
                                              "bands": {}})
        c["n"] += r.n
        c["arr"] += r.arr
        c["psum"] += r.psum
        c["pn"] += r.pn
        c["risk"] += r.risk
        c["rn"] += r.rn
        c["bands"][band] = r.n
    cols = [b for b in (*BANDS, "none") if b in present]
    order = {b: i for i, b in enumerate(ARR_BAND_LABELS + ("unknown",))}
    rows = []
    for k in sorted(cells, key=lambda k: (k[0], order.get(k[1], 99), k[2])):
        c = cells[k]
        high = k[1] in ARR_BAND_LABELS[2:]
        low = k[1] == ARR_BAND_LABELS[0]
        anomaly = ("high-ARR without a CSM" if high and k[2] == "no" else
                   "low-tier with a CSM" if low and k[2] == "yes" else None)
        rows.append({"segment": k[0], "arr_band": k[1], "csm": k[2], "n": intc(c["n"]), "arr": money(c["arr"]),
                     "p": pct(c["psum"] / c["pn"]) if c["pn"] else DASH,
                     "risk": money(c["risk"]) if c["rn"] else DASH, "anomaly": anomaly,
                     "bands": [intc(c["bands"].get(b, 0)) for b in cols]})
    return {"rows": rows, "bands": cols}


def _top(df: pd.DataFrame, mask: np.ndarray, key: str, k: int, largest: bool) -> pd.DataFrame:
    """The k rows of df[mask] with the largest (smallest) `key`, in that order (without copying df[mask])."""
    idx = np.flatnonzero(mask)
    vals = df[key].to_numpy(dtype=float)[idx]
    order = np.argsort(-vals if largest else vals, kind="stable")[:k]
    return df.iloc[idx[order]]


def coverage_anomalies(df: pd.DataFrame, limit: int = 20) -> dict:
    hi = (df["high_arr"] & ~df["has_csm"]).to_numpy()
    lo = (df["low_tier"] & df["has_csm"]).to_numpy()
    arr = np.nan_to_num(df["arr"].to_numpy(dtype=float))
    def rows(mask, largest):
        return [account_row(r) for r in _top(df, mask, "arr", limit, largest).itertuples(index=False)]
    return {"high_no_csm": {"n": intc(hi.sum()), "arr": money(arr[hi].sum()), "rows": rows(hi, True)},
            "low_with_csm": {"n": intc(lo.sum()), "arr": money(arr[lo].sum()), "rows": rows(lo, False)}}


def risk_list(df: pd.DataFrame, limit: int = TOP_RISK) -> list[dict]:
    top = _top(df, df["risk_arr"].notna().to_numpy(), "risk_rank", limit, False)
    return [account_row(r) for r in top.itertuples(index=False)]


def portfolio_view(df: pd.DataFrame, filters: Filters, as_of: date, *, forecast: dict, backtest: dict,
                   movements: dict, options: dict | None = None) -> dict:
    """The portfolio page. `forecast`/`backtest`/`movements` are the section dicts (or {"missing"/"pending"});
    `options` the filter choices (filter_options(df), computed once per score set)."""
    sub = df[filters.mask(df)] if filters.active() else df
    summary = {"n": intc(len(sub)), "arr": money(sub["arr"].sum()), "arr_full": money_full(sub["arr"].sum()),
               "expected_churn": money(sub["risk_arr"].sum()) if sub["risk_arr"].notna().any() else DASH,
               "mean_p": pct(sub["churn_probability"].mean()) if len(sub) else DASH,
               "red": intc((sub["band"] == "red").sum()), "no_csm": intc((~sub["has_csm"]).sum())}
    return {"filters": filters.active(), "options": options or filter_options(df), "summary": summary,
            "renewals": renewals_due(sub, as_of), "forecast": forecast, "backtest": backtest,
            "movements": movements, "health": health_by_segment(sub), "matrix": metrics_matrix(sub),
            "anomalies": coverage_anomalies(sub), "risk": risk_list(sub), "empty": len(sub) == 0}
