"""The forecast-process store (calls recorded through the API, the ledger) and the ledger's actuals."""
import numpy as np
import pandas as pd
import pytest

from csforecast.data.sources import open_source
from csforecast.features.snapshot import data_end
from csforecast.forecast.book import renewal_book
from csforecast.forecast.ledger import ledger_report, with_actuals
from csforecast.scoring.process import all_calls, freeze, ledger_entries, record_call, recorded_calls


def test_recorded_calls_round_trip_and_join_the_sources(tmp_path, small_portfolio):
    db = tmp_path / "p.duckdb"
    assert recorded_calls(db).empty and ledger_entries(db) == []
    src = open_source(small_portfolio)
    c = src.frame("contracts").iloc[0]
    got = record_call(db, {"account_id": c["account_id"], "contract_id": c["contract_id"], "called_at": "2026-09-01",
                           "csm_id": "CSM-X", "category": "at_risk", "amount": None, "note": "heard of a budget cut"})
    assert got["called_at"] == "2026-09-01" and got["recorded_at"]
    rec = recorded_calls(db)
    assert len(rec) == 1 and rec["category"].iloc[0] == "at_risk" and pd.isna(rec["amount"].iloc[0])
    both = all_calls(src, db)
    assert len(both) == src.row_count("forecast_calls") + 1
    mine = both[both["csm_id"] == "CSM-X"]
    assert mine["due_date"].iloc[0] == pd.Timestamp(c["end_date"])


def test_ledger_keeps_entries_and_measures_closed_windows(tmp_path, small_portfolio):
    src = open_source(small_portfolio)
    contracts, accounts, end = src.frame("contracts"), src.frame("accounts"), data_end(src)
    start, stop = pd.Timestamp("2026-01-01"), pd.Timestamp("2026-04-01")
    book = renewal_book(contracts, accounts, start, stop, start, None)
    renewed = float(book.loc[book["final_renewed"], "arr"].sum())
    entry = {"window": {"start": "2026-01-01", "end": "2026-04-01", "end_exclusive": True}, "as_of": "2026-01-01",
             "method": "model", "expected": {"renewed_arr": renewed * 1.01, "grr": 0.9, "nrr": 1.0},
             "intervals": {"renewed_arr": {"p10": renewed * 0.95, "p50": renewed, "p90": renewed * 1.05}},
             "scenarios": None, "data_hash": "x", "source": None, "trigger": "forecast --freeze"}
    db = tmp_path / "p.duckdb"
    ids = [freeze(db, entry), freeze(db, {**entry, "window": {"start": "2026-10-01", "end": "2027-01-01",
                                                              "end_exclusive": True}, "as_of": "2026-10-01"})]
    assert ids == [1, 2]
    entries = ledger_entries(db)
    assert [e["id"] for e in entries] == [1, 2] and entries[0]["frozen_at"]
    closed = with_actuals(entries[0], contracts, accounts, end)
    assert closed["status"] == "closed"
    assert closed["actual"]["renewed_arr"] == pytest.approx(renewed, rel=1e-9)
    assert closed["error"]["renewed_arr"] == pytest.approx(renewed * 0.01, rel=1e-6)
    assert closed["held"]["renewed_arr"] is True
    assert with_actuals(entries[1], contracts, accounts, end)["status"] == "open"
    rep = ledger_report(entries, lambda _src: (contracts, accounts, end))
    assert rep["summary"]["entries"] == 2 and rep["summary"]["closed"] == 1
    assert rep["summary"]["p10_p90_held_renewed_arr"] == 1.0
    assert ledger_report(entries, lambda _src: None)["summary"]["closed"] == 0
    assert np.isfinite(rep["summary"]["mae_renewed_arr"])
