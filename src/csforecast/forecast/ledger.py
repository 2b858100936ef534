"""Frozen forecasts and their accuracy (docs/forecast.md, "The forecast ledger").

:func:`frozen_entry` turns a window forecast (``forecast_window``'s result) into what the ledger keeps: the
window, the as-of date, the method, the expected and P10/P50/P90 GRR, NRR and renewed ARR, the scenarios, the
model versions and the data hash. :func:`with_actuals` adds, once the window has closed in the data (its end
is on or before the data end), the actual outcome of the decisions that were due (the same book, with
hindsight), the error (forecast - actual) and whether the P10-P90 interval held it. Storage is the
forecast-process store (``scoring.process``), owned by its callers.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from csforecast.forecast.backtest import _actual as actual_outcome
from csforecast.forecast.book import renewal_book, to_day
from csforecast.jsonsafe import finite_float
from csforecast.metrics.forecast_errors import within_interval

__all__ = ["frozen_entry", "with_actuals", "ledger_report", "FIGURES"]

FIGURES = ("renewed_arr", "grr", "nrr")


def frozen_entry(result: dict, *, data_hash: str, source: str | None = None, method: str = "model",
                 trigger: str = "forecast --freeze") -> dict:
    """What the ledger keeps of one forecast (``result``: ``forecast_window``'s); ``method``: "model" or
    "blend" (the blend's figures when the result has that method)."""
    m = result["methods"].get(method) if method != "model" else None
    expected = result["expected"] if m is None else {k: m.get(k) for k in result["expected"] if k in m}
    intervals = result["intervals"] if m is None else m["intervals"]
    versions = {"churn": result.get("model_version")}
    blend = result["methods"].get("blend")
    if blend:
        versions["blend"] = (blend.get("detail") or {}).get("blend_version")
    return {"window": {k: result["window"][k] for k in ("start", "end", "end_exclusive")},
            "as_of": result["as_of"], "method": method, "data_end": result["window"].get("data_end"),
            "renewals_due": result["renewals_due"],
            "expected": {k: expected.get(k) for k in ("renewed_arr", "churned_arr", "contraction_arr",
                                                     "expansion_arr", "grr", "nrr")},
            "intervals": {k: intervals.get(k) for k in FIGURES if k in intervals},
            "scenarios": result.get("scenarios"), "model_versions": versions, "data_hash": data_hash,
            "source": source, "trigger": trigger}


def with_actuals(entry: dict, contracts: pd.DataFrame | None, accounts: pd.DataFrame | None, data_end) -> dict:
    """``entry`` with ``status`` ("open": the window has not closed in the data, or no data to read; "closed"),
    and when closed ``actual`` (renewed ARR, GRR, NRR of the decisions due in the window as of the entry's
    as-of date, with hindsight), ``error`` (forecast - actual per figure) and ``held`` (per figure: the actual
    lies within the frozen P10-P90)."""
    out = dict(entry)
    w = entry["window"]
    if contracts is None or data_end is None or to_day(w["end"]) > to_day(data_end):
        out["status"] = "open"
        return out
    book = renewal_book(contracts, accounts, to_day(w["start"]), to_day(w["end"]), to_day(entry["as_of"]), None)
    act = actual_outcome(book, np.ones(len(book), dtype=bool))
    actual = {"renewed_arr": act["renewed"], "grr": act["grr"], "nrr": act["nrr"], "due_arr": act["due"]}
    out["status"] = "closed"
    out["actual"] = {k: finite_float(v, 6) for k, v in actual.items()}
    out["error"], out["held"] = {}, {}
    for k in FIGURES:
        f, a = entry["expected"].get(k), out["actual"].get(k)
        out["error"][k] = finite_float(f - a, 6) if f is not None and a is not None else None
        iv = (entry.get("intervals") or {}).get(k) or {}
        lo, hi = iv.get("p10"), iv.get("p90")
        out["held"][k] = within_interval(a, lo, hi) if None not in (lo, hi, a) else None
    return out


def ledger_report(entries: list[dict], frames_for) -> dict:
    """The entries with their actuals (:func:`with_actuals`) and a summary: how many are closed, the mean
    absolute error of renewed ARR and GRR, and the share of closed windows whose P10-P90 held the actual.
    ``frames_for(source)`` -> (contracts, accounts, data end) of the data to measure an entry against (its
    ``source``), or None when that data cannot be read (the entry stays open)."""
    rows = []
    for e in entries:
        f = frames_for(e.get("source"))
        rows.append(with_actuals(e, *(f if f else (None, None, None))))
    closed = [r for r in rows if r.get("status") == "closed"]

    def mean_abs(k):
        v = [abs(r["error"][k]) for r in closed if r["error"].get(k) is not None]
        return finite_float(sum(v) / len(v), 6) if v else None

    def held(k):
        v = [r["held"][k] for r in closed if r["held"].get(k) is not None]
        return finite_float(sum(v) / len(v), 4) if v else None

    return {"entries": rows, "summary": {"entries": len(rows), "closed": len(closed),
                                         "mae_renewed_arr": mean_abs("renewed_arr"), "mae_grr": mean_abs("grr"),
                                         "p10_p90_held_renewed_arr": held("renewed_arr"),
                                         "p10_p90_held_grr": held("grr")}}
