"""Each data fault gives a message naming table, column and row, exit 2, and nothing written."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from csforecast.data.sources import open_source
from csforecast.data.validate import validate

CLI = [sys.executable, "-m", "csforecast.cli"]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("truth"))
    return dst


def _edit(folder: Path, table: str, fn):
    p = folder / f"{table}.parquet"
    df = pd.read_parquet(p)
    fn(df).to_parquet(p, index=False) if fn(df) is not None else None


FAULTS = {
    "duplicate account": ("accounts", lambda d: pd.concat([d, d.iloc[[3]]]), "accounts", "account_id", "A00004"),
    "negative arr": ("contracts", lambda d: d.assign(arr=d.arr.where(d.index != 5, -1000.0)), "contracts", "arr",
                     None),
    "end before start": ("contracts", lambda d: d.assign(end_date=d.end_date.where(
        d.index != 7, d.start_date - pd.Timedelta(days=30))), "contracts", "end_date", None),
    "orphan contract": ("contracts", lambda d: d.assign(account_id=d.account_id.where(d.index != 9, "NOPE-1")),
                        "contracts", "account_id", None),
    "nps 11": ("surveys", lambda d: d.assign(score=d.score.where(~((d.kind == "nps") & (d.index == d.index[d.kind == "nps"][0])), 11.0)),
               "surveys", "score", None),
    "missing arr column": ("contracts", lambda d: d.drop(columns=["arr"]), "contracts", "arr", None),
    "csat 7": ("tickets", lambda d: d.assign(csat=d.csat.where(d.index != d.csat.first_valid_index(), 7.0)),
               "tickets", "csat", None),
    "unknown priority": ("tickets", lambda d: d.assign(priority=d.priority.where(d.index != 2, "P9")),
                         "tickets", "priority", None),
    "future usage": ("usage", lambda d: d.assign(date=d.date.where(d.index != 0, pd.Timestamp("2999-01-01"))),
                     "usage", "date", None),
    "negative seats": ("contracts", lambda d: d.assign(seats=d.seats.where(d.index != 4, -3.0)), "contracts",
                       "seats", None),
    "successor loop": ("contracts", lambda d: _loop(d), "contracts", "renewed_by", None),
    "unknown successor": ("contracts", lambda d: d.assign(renewed_by=d.renewed_by.astype(object).where(
        d.index != 0, "C999999")), "contracts", "renewed_by", "C999999"),
    "uncoercible arr": ("contracts", lambda d: d.assign(arr=d.arr.astype(object).where(d.index != 6, "lots")),
                        "contracts", "arr", None),
    "unknown call category": ("forecast_calls", lambda d: d.assign(category=d.category.where(d.index != 1, "maybe")),
                              "forecast_calls", "category", "maybe"),
    "negative call amount": ("forecast_calls", lambda d: d.assign(amount=d.amount.where(d.index != 2, -5.0)),
                             "forecast_calls", "amount", None),
    "call on another account's contract": ("forecast_calls", lambda d: d.assign(
        account_id=d.account_id.where(d.index != 4, d.account_id[d.account_id != d.account_id.iloc[4]].iloc[0])),
        "forecast_calls", "contract_id", None),
}


CLI_FAULTS = {"duplicate account", "negative arr", "nps 11", "missing arr column", "successor loop",
              "unknown call category"}


def _loop(d):
    d = d.copy()
    d["renewed_by"] = d["renewed_by"].astype(object)
    a, b = d.contract_id.iloc[0], d.contract_id.iloc[1]
    d.loc[d.index[0], "renewed_by"] = b
    d.loc[d.index[1], "renewed_by"] = a
    return d


def test_clean_simulated_data_validates(small_portfolio):
    report = validate(open_source(small_portfolio))
    assert report.ok, [str(p) for p in report.errors]
    assert report.row_counts["accounts"] == 300


@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_is_reported_by_table_column_and_row(small_portfolio, tmp_path, fault):
    table, fn, want_table, want_col, want_key = FAULTS[fault]
    d = _copy(small_portfolio, tmp_path / "data")
    p = d / f"{table}.parquet"
    df = fn(pd.read_parquet(p))
    if fault == "uncoercible arr":
        df.to_csv(d / f"{table}.csv", index=False)
        p.unlink()
    else:
        df.to_parquet(p, index=False)
    report = validate(open_source(d))
    errs = [e for e in report.errors if e.table == want_table and e.column == want_col]
    assert errs, f"{fault}: got {[str(e) for e in report.errors]}"
    if want_key:
        assert any(want_key in " ".join(e.examples) for e in errs)
    if fault in CLI_FAULTS:
        res = subprocess.run(CLI + ["validate", "--data", str(d)], capture_output=True, text=True)
        assert res.returncode == 2
        assert want_table in res.stdout and want_col in res.stdout


def test_reports_every_problem_not_the_first(small_portfolio, tmp_path):
    d = _copy(small_portfolio, tmp_path / "data")
    c = pd.read_parquet(d / "contracts.parquet")
    c.loc[c.index[5], "arr"] = -1.0
    c.loc[c.index[6], "seats"] = -1.0
    c.to_parquet(d / "contracts.parquet", index=False)
    s = pd.read_parquet(d / "surveys.parquet")
    s.loc[s.index[s.kind == "nps"][0], "score"] = 11
    s.to_parquet(d / "surveys.parquet", index=False)
    report = validate(open_source(d))
    assert {(e.table, e.column) for e in report.errors} >= {("contracts", "arr"), ("contracts", "seats"),
                                                              ("surveys", "score")}


def test_json_report_and_warnings_do_not_fail(small_portfolio, tmp_path):
    d = _copy(small_portfolio, tmp_path / "data")
    a = pd.read_parquet(d / "accounts.parquet")
    extra = a.iloc[[0]].assign(account_id="A99999")
    pd.concat([a, extra]).to_parquet(d / "accounts.parquet", index=False)
    res = subprocess.run(CLI + ["validate", "--data", str(d), "--json"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    import json
    rep = json.loads(res.stdout)
    assert rep["ok"] is True and any(p["rule"] == "no_contracts" for p in rep["problems"])


def test_missing_required_table(tmp_path, small_portfolio):
    d = _copy(small_portfolio, tmp_path / "data")
    (d / "contracts.parquet").unlink()
    report = validate(open_source(d))
    assert any(e.rule == "missing_table" and e.table == "contracts" for e in report.errors)


def test_train_on_bad_data_writes_nothing(small_portfolio, tmp_path, isolated_home):
    d = _copy(small_portfolio, tmp_path / "data")
    c = pd.read_parquet(d / "contracts.parquet")
    c.loc[c.index[5], "arr"] = -1000.0
    c.to_parquet(d / "contracts.parquet", index=False)
    for cmd in (["train", "--data", str(d)], ["score", "--data", str(d)], ["features", "--data", str(d),
                "--as-of", "2026-01-01", "--out", str(tmp_path / "f.parquet")]):
        res = subprocess.run(CLI + cmd, capture_output=True, text=True)
        assert res.returncode == 2, (cmd, res.stderr[-500:])
        assert "contracts" in res.stderr and "arr" in res.stderr
    written = [p for p in isolated_home.rglob("*") if p.is_file()]
    assert written == [], written
    assert not (tmp_path / "f.parquet").exists()


def test_rows_of_unknown_accounts_in_optional_tables_are_a_warning_and_left_out(small_portfolio, tmp_path):
    """An activity export taken at another moment than `accounts` (or a deleted account's tickets): the rows of
    accounts `accounts` does not have are reported (table, column, row), tolerated, and left out of everything
    the pipeline reads, so the features are those of the source without them. In `contracts` it stays an error
    (the "orphan contract" fault above)."""
    from csforecast.features.snapshot import build_snapshots

    d = _copy(small_portfolio, tmp_path / "data")
    tables = ("usage", "tickets", "csm_sentiment")
    before = {}
    for name in tables:
        df = pd.read_parquet(d / f"{name}.parquet")
        before[name] = len(df)
        late = df.iloc[[-1, -2]].assign(account_id=["GONE-1", "GONE-2"])
        if name == "tickets":
            late["ticket_id"] = ["T-GONE-1", "T-GONE-2"]
        pd.concat([df, late]).to_parquet(d / f"{name}.parquet", index=False)
    src = open_source(d)
    report = validate(src)
    assert report.ok, [str(p) for p in report.errors]
    found = {w.table: w for w in report.warnings if w.rule == "unknown_account"}
    assert set(found) == set(tables)
    for name in tables:
        assert found[name].column == "account_id" and found[name].count == 2
        assert "GONE-1" in " ".join(found[name].examples)
        assert src.table(name).count().to_pyarrow().as_py() == before[name]
        assert src.as_found(name).count().to_pyarrow().as_py() == before[name] + 2
    assert src.findings.unreferenced == {(name, "account_id") for name in tables}
    unvalidated = open_source(d)     # not validated: the rows are counted on first read, and left out the same
    assert unvalidated.table("csm_sentiment").count().to_pyarrow().as_py() == before["csm_sentiment"]
    assert unvalidated.table("surveys").count().to_pyarrow().as_py() == len(pd.read_parquet(d / "surveys.parquet"))
    as_of = pd.Timestamp(pd.read_parquet(d / "usage.parquet").date.max()).date()
    clean = open_source(small_portfolio)
    assert src.table("tickets").schema() == clean.table("tickets").schema()
    got = build_snapshots(src, [as_of]).sort_values("account_id").reset_index(drop=True)
    want = build_snapshots(clean, [as_of]).sort_values("account_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)


def test_forecast_calls_on_contracts_not_booked_are_a_warning_and_left_out(small_portfolio, tmp_path):
    """A call export taken after the contracts export names renewals `contracts` does not have yet: a warning
    naming the call, and the calls left out of what the blend and the scenarios read (validated or not)."""
    d = _copy(small_portfolio, tmp_path / "data")
    calls = pd.read_parquet(d / "forecast_calls.parquet")
    late = calls.iloc[:3].assign(contract_id=["C900001", "C900002", "C900003"])
    pd.concat([calls, late]).to_parquet(d / "forecast_calls.parquet", index=False)
    src = open_source(d)
    report = validate(src)
    assert report.ok, [str(e) for e in report.errors]
    [w] = [p for p in report.warnings if p.rule == "unknown_contract"]
    assert (w.table, w.column, w.count) == ("forecast_calls", "contract_id", 3)
    assert "C900001" in " ".join(w.examples)
    for s in (src, open_source(d)):
        kept = s.frame("forecast_calls")
        assert len(kept) == len(calls) and not kept.contract_id.isin(late.contract_id).any()
    clean = open_source(_copy(small_portfolio, tmp_path / "clean"))
    assert len(clean.frame("forecast_calls")) == len(calls)


def test_renewals_booked_ahead_are_a_warning_and_read_as_not_started(small_portfolio, tmp_path):
    """A renewal signed early is exported with its future start date. That is data, not an error: a warning
    naming the contracts, the data end unchanged (the data cannot end in the future), and every stage reading the
    source as without them until they start: the same features and labels, the renewals they continue pending."""
    from datetime import timedelta

    from csforecast.features.snapshot import build_snapshots, data_end
    from csforecast.forecast.book import renewal_book

    clean = open_source(small_portfolio)
    end = data_end(clean)
    d, due, _ = _booked_ahead(small_portfolio, tmp_path)
    src = open_source(d)
    report = validate(src)
    assert report.ok, [str(e) for e in report.errors]
    [w] = [p for p in report.warnings if p.rule == "booked_ahead"]
    assert (w.table, w.column, w.count) == ("contracts", "start_date", 6) and "BOOKED-0" in w.examples[0]
    assert data_end(src) == end
    day = end - timedelta(days=90)
    got = build_snapshots(src, [day]).sort_values("account_id").reset_index(drop=True)
    want = build_snapshots(clean, [day]).sort_values("account_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    book = renewal_book(src.frame("contracts"), src.frame("accounts"), end, None, end)
    assert set(book[book.contract_id.isin(due.contract_id)].status) == {"pending"}
    pd.testing.assert_frame_equal(book.drop(columns=["final_renewed", "final_succ_arr"]),
                                  renewal_book(clean.frame("contracts"), clean.frame("accounts"), end, None, end)
                                  .drop(columns=["final_renewed", "final_succ_arr"]))
    # with a date in the past, a contract after it is booked ahead as well; other tables' rows stay an error
    past = validate(open_source(d), end - timedelta(days=10))
    assert {p.rule for p in past.errors} == {"future_date"} and "booked_ahead" in {p.rule for p in past.warnings}


def _booked_ahead(portfolio, tmp_path, n=6):
    """The portfolio with `n` of its contracts due after the data end renewed ahead: each renewal (BOOKED-i, the
    same ARR, a year) is in the export with its start after today, whenever the test runs. Returns (the folder,
    the renewed contracts' rows, the renewals' rows)."""
    from datetime import date, timedelta

    from csforecast.features.snapshot import data_end

    d = _copy(portfolio, tmp_path / "data")
    end = data_end(open_source(portfolio))
    c = pd.read_parquet(d / "contracts.parquet")
    due = c[(pd.to_datetime(c.end_date) > pd.Timestamp(end)) & c.renewed_by.isna()].head(n)
    assert len(due) == n
    first = pd.Timestamp(max(date.today(), end) + timedelta(days=20))
    start = [max(pd.Timestamp(e), first + pd.Timedelta(days=i)) for i, e in enumerate(due.end_date)]
    booked = due.assign(contract_id=[f"BOOKED-{i}" for i in range(n)], start_date=start,
                        end_date=[s + pd.DateOffset(years=1) for s in start], renewed_by=None)
    c.loc[due.index, "renewed_by"] = booked.contract_id.to_numpy()
    pd.concat([c, booked]).to_parquet(d / "contracts.parquet", index=False)
    return d, due, booked


class _ConstantChurn:
    """A churn 'model' answering 0.3 for every row (the forecast's arithmetic, not a model, is under test)."""

    def predict_proba(self, X):
        return np.column_stack([np.full(len(X), 0.7), np.full(len(X), 0.3)])


def test_a_live_forecast_counts_renewals_booked_ahead_as_renewed(small_portfolio, tmp_path):
    """As of the data end (the export's present) a successor in the table is signed, whatever its start: the
    decision it renews is renewed at the successor's ARR, and `renewals_due` counts it as booked. As of an
    earlier date (a back-test) it stays pending: the table does not say when the successor was signed."""
    from datetime import timedelta

    from csforecast.features.snapshot import data_end
    from csforecast.forecast.book import renewal_book
    from csforecast.forecast.renewals import forecast_window

    clean = open_source(small_portfolio)
    end = data_end(clean)
    d, due, booked = _booked_ahead(small_portfolio, tmp_path)
    src = open_source(d)
    assert validate(src).ok
    window = (end, (pd.to_datetime(due.end_date).max() + pd.Timedelta(days=1)).date())
    # a decision: the contracts of an account due on one day (a main contract and its co-termed add-ons)
    decisions = booked.assign(account_id=due.account_id.to_numpy(), renewal_date=pd.to_datetime(due.end_date)
                              .to_numpy()).groupby(["account_id", "renewal_date"]).arr.sum()
    live = renewal_book(src.frame("contracts"), src.frame("accounts"), *window, end, booked=True)
    key = pd.MultiIndex.from_frame(live[["account_id", "renewal_date"]])
    mine = live[key.isin(decisions.index)].set_index(["account_id", "renewal_date"]).sort_index()
    assert len(mine) == len(decisions) and set(mine.status) == {"renewed"} and mine.booked.all()
    assert np.allclose(mine.succ_arr, decisions.sort_index())
    was = renewal_book(clean.frame("contracts"), clean.frame("accounts"), *window, end, booked=True)
    assert not was.booked.any()
    pd.testing.assert_frame_equal(live[~key.isin(decisions.index)].reset_index(drop=True),
                                  was[~key.isin(decisions.index)].reset_index(drop=True), check_dtype=False)

    args = dict(churn_estimator=_ConstantChurn(), tau=0.0, draws=500, seed=3)
    got, want = forecast_window(src, *window, **args), forecast_window(clean, *window, **args)
    g, w = got["renewals_due"], want["renewals_due"]
    booked_arr = float(mine.arr.sum())
    assert g["booked_count"] == len(decisions) and g["booked_arr"] == pytest.approx(booked_arr)
    assert w["booked_count"] == 0 and w["booked_arr"] == 0
    assert g["pending_count"] == w["pending_count"] - len(decisions)
    assert g["renewed_so_far_arr"] == pytest.approx(w["renewed_so_far_arr"] + booked_arr)
    assert (g["count"], g["arr"]) == (w["count"], pytest.approx(w["arr"]))
    # the same 30 % churn on fewer pending decisions: the expected churn falls by the booked decisions' share
    assert got["expected"]["churned_arr"] == pytest.approx(want["expected"]["churned_arr"] - 0.3 * booked_arr,
                                                           rel=1e-6)
    # as it stood 30 days earlier: the booked renewals were not known, so the forecasts agree
    past = end - timedelta(days=30)
    got_p, want_p = forecast_window(src, *window, as_of=past, **args), forecast_window(clean, *window, as_of=past,
                                                                                      **args)
    # equal up to float summation order (the two tables hold the rows in different orders)
    for part in ("renewals_due", "expected"):
        assert got_p[part].keys() == want_p[part].keys()
        assert got_p[part] == pytest.approx(want_p[part], rel=1e-9, abs=1e-6), part


def test_accounts_with_no_segment_are_a_segment_of_their_own(small_portfolio, tmp_path):
    """New accounts not yet tiered: a warning naming them, and every stage reads the segment 'unassigned' (one
    more category for the models, one more group in the forecast), not an error that stops every command."""
    from csforecast.data.contract import UNASSIGNED
    from csforecast.features.snapshot import build_snapshots, data_end
    from csforecast.forecast.book import renewal_book

    d = _copy(small_portfolio, tmp_path / "data")
    a = pd.read_parquet(d / "accounts.parquet")
    blank = a.account_id.iloc[[3, 10, 20]]
    a.assign(segment=a.segment.where(~a.account_id.isin(blank))).to_parquet(d / "accounts.parquet", index=False)
    src = open_source(d)
    report = validate(src)
    assert report.ok, [str(e) for e in report.errors]
    [w] = [p for p in report.warnings if p.rule == "no_segment"]
    assert (w.table, w.column, w.count) == ("accounts", "segment", 3)
    assert w.examples[0].startswith(f"account_id={sorted(blank)[0]}")
    got = src.frame("accounts").set_index("account_id").segment
    assert (got[blank] == UNASSIGNED).all() and got.drop(blank).eq(a.set_index("account_id").segment.drop(blank)).all()
    end = data_end(src)
    snap = build_snapshots(src, [end]).set_index("account_id")
    assert set(snap.segment.reindex(blank).dropna()) <= {UNASSIGNED} and UNASSIGNED in set(snap.segment)
    book = renewal_book(src.frame("contracts"), src.frame("accounts"), None, None, end, group_by="segment")
    assert set(book[book.account_id.isin(blank)].group) == {UNASSIGNED}


def _validated_without(portfolio, tmp_path, table, column, rule):
    """The portfolio without `table`.`column`, validated: (the table as written before, the source, the one
    `rule` warning); the report has no errors."""
    d = _copy(portfolio, tmp_path / "data")
    df = pd.read_parquet(d / f"{table}.parquet")
    df.drop(columns=[column]).to_parquet(d / f"{table}.parquet", index=False)
    src = open_source(d)
    report = validate(src)
    assert report.ok, [str(e) for e in report.errors]
    [w] = [p for p in report.warnings if p.rule == rule]
    return df, src, w


def test_an_arr_only_export_without_seats_goes_without_the_seat_features(small_portfolio, tmp_path):
    """Billing exports often have ARR and no seats: a warning saying what goes missing, not an error; the seat
    features are missing and every other feature is the full export's."""
    from csforecast.features.snapshot import build_snapshots, data_end

    c, src, w = _validated_without(small_portfolio, tmp_path, "contracts", "seats", "no_seats")
    assert (w.table, w.column, w.count) == ("contracts", "seats", len(c)) and "seat utilisation" in w.message
    assert not [p for p in validate(open_source(small_portfolio)).problems if p.rule == "no_seats"]
    day = data_end(src)
    got = build_snapshots(src, [day]).sort_values("account_id").reset_index(drop=True)
    want = build_snapshots(open_source(small_portfolio), [day]).sort_values("account_id").reset_index(drop=True)
    seat_cols = [k for k in want if "seat" in k]
    assert {"seats", "seat_utilisation", "tickets_90d_per_100_seats"} <= set(seat_cols)
    assert got[seat_cols].isna().all().all() and want[seat_cols].notna().any().all()
    pd.testing.assert_frame_equal(got.drop(columns=seat_cols), want.drop(columns=seat_cols))


def test_accounts_without_created_at_date_from_their_first_contract(small_portfolio, tmp_path):
    """A minimal accounts export (no created_at): a warning, and each account dated from its first contract's
    start, so it is in every snapshot from then on (an account with no created_at is not left out)."""
    from csforecast.features.snapshot import build_snapshots, data_end

    a, src, w = _validated_without(small_portfolio, tmp_path, "accounts", "created_at", "no_created_at")
    assert (w.table, w.column, w.count) == ("accounts", "created_at", len(a))
    c = pd.read_parquet(small_portfolio / "contracts.parquet")
    first = pd.to_datetime(c.groupby("account_id").start_date.min())
    for s in (src, open_source(src.location)):   # validated, or found out on first read
        got = s.frame("accounts").set_index("account_id").created_at
        pd.testing.assert_series_equal(got.reindex(first.index), first, check_names=False, check_dtype=False)
    day = data_end(src)
    snap = build_snapshots(src, [day])
    clean = build_snapshots(open_source(small_portfolio), [day])
    assert set(snap.account_id) == set(clean.account_id) and len(snap) > 0


def test_a_blank_measurement_is_left_out_with_a_warning(small_portfolio, tmp_path):
    """A daily usage export with blank cells (a metric not recorded that day) and a survey response that skipped
    the score: a warning naming the rows, and every stage reads the source as without those rows (the same
    features as the export that never had them), on DuckDB and unvalidated alike."""
    from csforecast.features.snapshot import build_snapshots, data_end

    blank, without = _copy(small_portfolio, tmp_path / "blank"), _copy(small_portfolio, tmp_path / "without")
    u, s = pd.read_parquet(blank / "usage.parquet"), pd.read_parquet(blank / "surveys.parquet")
    gone_u, gone_s = u.sample(frac=0.05, random_state=1).index, s.sample(n=7, random_state=1).index
    u.assign(value=u.value.where(~u.index.isin(gone_u))).to_parquet(blank / "usage.parquet", index=False)
    s.assign(score=s.score.where(~s.index.isin(gone_s))).to_parquet(blank / "surveys.parquet", index=False)
    u.drop(gone_u).to_parquet(without / "usage.parquet", index=False)
    s.drop(gone_s).to_parquet(without / "surveys.parquet", index=False)
    src = open_source(blank)
    report = validate(src)
    assert report.ok, [str(e) for e in report.errors]
    found = {(p.table, p.column): p for p in report.warnings if p.rule == "left_out"}
    assert set(found) == {("usage", "value"), ("surveys", "score")}
    assert (found["usage", "value"].count, found["surveys", "score"].count) == (len(gone_u), len(gone_s))
    assert "not recorded" in found["usage", "value"].message and found["usage", "value"].examples
    clean = open_source(without)
    for source in (src, open_source(blank)):      # validated, and read without validation
        assert source.table("usage").count().to_pyarrow().as_py() == len(u) - len(gone_u)
        end = data_end(source)
        assert end == data_end(clean)
        days = [end, end - pd.Timedelta(days=200)]
        got = build_snapshots(source, days).sort_values(["as_of", "account_id"]).reset_index(drop=True)
        want = build_snapshots(clean, days).sort_values(["as_of", "account_id"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want)


def test_levels_written_another_way_are_read_as_the_levels(small_portfolio, tmp_path):
    """Picklists as CRMs export them ("Exec Meeting", "NPS", "p1", "Cross-Sell", "Contract Sent", "Green"): each
    column of levels reads them as the contract's levels, with a note per column; every table and every feature
    is the same as the export written in the contract's levels."""
    from csforecast.data.contract import TABLES
    from csforecast.features.snapshot import build_snapshots, data_end

    def crm(v):
        return v if pd.isna(v) else (v.swapcase() if len(v) <= 4 else v.replace("_", " ").title().replace(" ", "-", 1))

    d = _copy(small_portfolio, tmp_path / "data")
    spelled = {}
    for name, spec in TABLES.items():
        cols = [c.name for c in spec.columns if c.levels]
        if cols and (d / f"{name}.parquet").exists():
            df = pd.read_parquet(d / f"{name}.parquet")
            df.assign(**{c: df[c].map(crm) for c in cols}).to_parquet(d / f"{name}.parquet", index=False)
            spelled.update({(name, c): int((df[c].map(crm) != df[c]).sum()) for c in cols})
    assert all(spelled[k] > 0 for k in [("touches", "kind"), ("surveys", "kind"), ("tickets", "priority")])
    src, clean = open_source(d), open_source(small_portfolio)
    report = validate(src)
    assert report.ok, [str(e) for e in report.errors]
    noted = {(p.table, p.column): p.count for p in report.problems if p.rule == "spelled_levels"}
    assert noted == {k: n for k, n in spelled.items() if n}
    assert "unknown_value" not in {p.rule for p in report.problems}
    unvalidated = open_source(d)    # the spelled columns found by one query per table on first read instead
    for name, _ in spelled:
        pd.testing.assert_frame_equal(src.frame(name), clean.frame(name))
        pd.testing.assert_frame_equal(unvalidated.frame(name), clean.frame(name))
    assert src.findings.spelled_levels == {k for k, n in spelled.items() if n}
    end = data_end(clean)
    got = build_snapshots(src, [end]).sort_values("account_id").reset_index(drop=True)
    want = build_snapshots(clean, [end]).sort_values("account_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)


def test_usage_metrics_written_two_ways_are_one_metric(small_portfolio, tmp_path):
    """An export that writes its metrics one way up to a date and another way after it ("active_users", then
    "Active Users"; a tool change), and one that writes every metric another way ("Logins", "KEY-FEATURES-USED"):
    each reads them as one metric in one spelling, with a note, and the same usage table and features as the
    clean export (seat utilisation, days since login and key-feature breadth included)."""
    from csforecast.features.snapshot import build_snapshots, data_end, usage_metrics

    clean = open_source(small_portfolio)
    end = data_end(clean)
    want = build_snapshots(clean, [end]).sort_values("account_id").reset_index(drop=True)
    assert {"seat_utilisation", "days_since_login", "key_feature_breadth"} <= set(want.columns)
    usage = pd.read_parquet(small_portfolio / "usage.parquet")
    late = usage["date"] >= usage["date"].quantile(0.5)
    variants = {
        "split": usage.assign(metric=usage["metric"].where(~late, usage["metric"].str.replace("_", " ").str.title())),
        "all": usage.assign(metric=usage["metric"].map({"active_users": " Active Users", "logins": "Logins",
                                                        "key_features_used": "KEY-FEATURES-USED"})),
    }
    for name, written in variants.items():
        d = _copy(small_portfolio, tmp_path / name)
        written.to_parquet(d / "usage.parquet", index=False)
        src = open_source(d)
        report = validate(src)
        assert report.ok, [str(e) for e in report.errors]
        noted = [p for p in report.problems if p.rule == "respelled_names"]
        assert [(p.table, p.column) for p in noted] == [("usage", "metric")], name
        assert noted[0].count == int((written["metric"] != usage["metric"]).sum()), name
        assert report.usage_metrics == {m: int(n) for m, n in usage["metric"].value_counts().items()}, name
        assert usage_metrics(open_source(d)) == sorted(usage["metric"].unique())      # found without validation
        pd.testing.assert_frame_equal(src.frame("usage"), clean.frame("usage"))
        got = build_snapshots(src, [end]).sort_values("account_id").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want)


def test_an_optional_table_whose_every_row_is_left_out_is_read_as_absent(small_portfolio, tmp_path):
    """Tickets that all name accounts the export does not have, usage rows that all lack a value, survey responses
    that all lack a score: validation warns about the rows, and every stage reads each table as absent, as if the
    export did not have it (the same profile and features), where such tables used to end in a division by zero
    (the profile) or a date grid from no dates (training)."""
    from csforecast.data.profile import profile_source
    from csforecast.features.snapshot import build_snapshots, data_end, data_start

    emptied = _copy(small_portfolio, tmp_path / "emptied")
    _edit(emptied, "tickets", lambda df: df.assign(account_id="gone-" + df["account_id"]))
    _edit(emptied, "usage", lambda df: df.assign(value=np.nan))
    _edit(emptied, "surveys", lambda df: df.assign(score=np.nan))
    absent = _copy(small_portfolio, tmp_path / "absent")
    for name in ("tickets", "usage", "surveys"):
        (absent / f"{name}.parquet").unlink()
    src, without = open_source(emptied), open_source(absent)
    report = validate(src)
    assert report.ok, [str(e) for e in report.errors]
    warned = {(p.table, p.rule) for p in report.warnings}
    assert {("tickets", "unknown_account"), ("usage", "left_out"), ("surveys", "left_out")} <= warned
    for s in (src, open_source(emptied)):          # after validation, and found on first read without it
        assert not any(s.has(name) for name in ("tickets", "usage", "surveys"))
    assert data_start(src) == data_start(without)
    end = data_end(without)
    tables = {k: v for k, v in profile_source(src, end)["tables"].items()}
    assert all(tables[name] == {"rows": 0} for name in ("tickets", "usage", "surveys"))
    got = build_snapshots(src, [end]).sort_values("account_id").reset_index(drop=True)
    want = build_snapshots(without, [end]).sort_values("account_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)


def test_a_segment_written_several_ways_is_one_segment(small_portfolio, tmp_path):
    """Segments and regions typed by hand in a CRM ("SMB", "smb", "Smb ", "Mid Market" beside "Mid-Market"): each
    group is read in the spelling most of its rows have, with a note naming the spellings, so the accounts table
    and every feature and figure broken down by segment are those of the clean export."""
    from csforecast.features.snapshot import build_snapshots, data_end

    d = _copy(small_portfolio, tmp_path / "data")
    a = pd.read_parquet(d / "accounts.parquet")
    k = pd.Series(range(len(a)), index=a.index)
    smb, mid = a.segment == "SMB", a.segment == "Mid-Market"
    assert smb.sum() > 20 and mid.sum() > 20
    seg = a.segment.where(~(smb & (k % 5 == 1)), "smb").where(~(smb & (k % 5 == 2)), "Smb ")
    seg = seg.where(~(mid & (k % 4 == 1)), "Mid Market")
    region = a.region.where(k % 7 != 3, a.region.str.upper())
    a.assign(segment=seg, region=region).to_parquet(d / "accounts.parquet", index=False)
    src, clean = open_source(d), open_source(small_portfolio)
    report = validate(src)
    assert report.ok, [str(e) for e in report.errors]
    noted = {p.column: p for p in report.problems if p.rule == "spelled_groups"}
    assert set(noted) == {"segment", "region"}
    assert noted["segment"].count == int((seg != a.segment).sum())
    assert "'Smb' (" in noted["segment"].message and "as 'SMB'" in noted["segment"].message
    assert "'Mid Market' (" in noted["segment"].message and "as 'Mid-Market'" in noted["segment"].message
    for s in (src, open_source(d)):                # after validation, and on first read without it
        pd.testing.assert_frame_equal(s.frame("accounts"), clean.frame("accounts"))
    end = data_end(clean)
    got = build_snapshots(src, [end]).sort_values("account_id").reset_index(drop=True)
    want = build_snapshots(clean, [end]).sort_values("account_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)


def test_dates_no_history_holds_are_warned_about(small_portfolio, tmp_path):
    """A start date typed 0202 for 2022, an account created in 0019, and open-ended contracts whose end a CRM wrote
    as 9999-12-31: each column gets an `implausible_date` warning naming the rows (for end_date, with what to export
    instead); the data is read as written, and the clean export has no such warning."""
    from datetime import date

    def dates(s, rows, day):     # as Parquet dates (pandas' timestamps end in 2262)
        return [day if i in rows else v for i, v in zip(s.index, pd.to_datetime(s).dt.date)]

    d = _copy(small_portfolio, tmp_path / "data")
    _edit(d, "contracts", lambda df: df.assign(start_date=dates(df.start_date, {2}, date(202, 5, 27)),
                                               end_date=dates(df.end_date, {5, 6, 7}, date(9999, 12, 31))))
    _edit(d, "accounts", lambda df: df.assign(created_at=dates(df.created_at, {4}, date(19, 2, 17))))
    report = validate(open_source(d))
    by = {(p.table, p.column): p for p in report.problems if p.rule == "implausible_date"}
    assert {k: p.count for k, p in by.items()} == {("contracts", "start_date"): 1, ("contracts", "end_date"): 3,
                                                   ("accounts", "created_at"): 1}
    assert all(p.level == "warning" for p in by.values())
    assert "Export the end of its current term" in by[("contracts", "end_date")].message
    assert "0202-05-27" in " ".join(by[("contracts", "start_date")].examples)
    assert not [p for p in validate(open_source(small_portfolio)).problems if p.rule == "implausible_date"]


def test_ids_padded_with_invisible_spaces_are_the_same_ids(small_portfolio, tmp_path):
    """Account IDs copied from a web page or a spreadsheet with a no-break space after them ("A00001\u00a0"), a
    zero-width space or a byte-order mark before them: read without it, as a plain space is (`padded_text`), so no
    row names an unknown account and every table reads as in the clean export."""
    d = _copy(small_portfolio, tmp_path / "data")
    _edit(d, "contracts", lambda df: df.assign(account_id=df.account_id.where(df.index % 3 != 0,
                                                                              df.account_id + "\u00a0")))
    _edit(d, "usage", lambda df: df.assign(account_id=df.account_id.where(df.index % 2 == 0,
                                                                          "\u200b" + df.account_id)))
    _edit(d, "tickets", lambda df: df.assign(account_id="\ufeff" + df.account_id + "\u202f"))
    src, clean = open_source(d), open_source(small_portfolio)
    report = validate(src)
    assert report.ok, [str(e) for e in report.errors]
    rules = {(p.table, p.rule) for p in report.problems}
    assert {("contracts", "padded_text"), ("usage", "padded_text"), ("tickets", "padded_text")} <= rules
    assert not {r for t, r in rules if r in ("unknown_account", "foreign_key")}
    for name in ("contracts", "usage", "tickets"):
        pd.testing.assert_frame_equal(src.frame(name), clean.frame(name))


def test_column_map_all_declares_one_date_format_and_rename_for_every_table(small_portfolio, tmp_path):
    """An export whose every table writes US dates and calls account_id "Account Number": one `[column_map.all]`
    entry each, instead of one per table; a table's own entry still wins. The same validation and features as the
    export in our names and ISO dates."""
    from csforecast.data.contract import TABLES
    from csforecast.features.snapshot import build_snapshots, data_end

    d = tmp_path / "us"
    d.mkdir()
    for p in sorted(small_portfolio.glob("*.parquet")):
        df = pd.read_parquet(p)
        dates = [c.name for c in TABLES[p.stem].columns if c.type == "date"]
        df = df.assign(**{c: pd.to_datetime(df[c]).dt.strftime("%m/%d/%Y") for c in dates})
        df.rename(columns={"account_id": "Account Number"}).to_csv(d / f"{p.stem}.csv", index=False)
    bare = validate(open_source(d))
    assert {(p.rule, p.column) for p in bare.errors} >= {("type", "start_date"), ("missing_column", "account_id")}
    advice = next(p.message for p in bare.errors if p.column == "start_date")
    assert 'date_format = "%m/%d/%Y" under [column_map.contracts] (or [column_map.all], for every table)' in advice
    every = {"all": {"date_format": "%m/%d/%Y", "account_id": "Account Number"}}
    src, clean = open_source(d, every), open_source(small_portfolio)
    report = validate(src)
    assert report.ok, [str(e) for e in report.errors]
    assert not [p for p in report.warnings if p.rule == "column_map"]
    end = data_end(clean)
    assert data_end(src) == end
    got = build_snapshots(src, [end]).sort_values("account_id").reset_index(drop=True)
    want = build_snapshots(clean, [end]).sort_values("account_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    # a table's own entry wins over [column_map.all]
    own = open_source(d, {**every, "contracts": {"date_format": "%d.%m.%Y"}})
    assert own.date_format("contracts") == "%d.%m.%Y" and own.date_format("usage") == "%m/%d/%Y"
    # a rename in [column_map.all] that names no column of any table is named, as a table's own entry is
    typo = validate(open_source(d, {"all": {**every["all"], "acount_id": "Account Number"}}))
    named = [p for p in typo.warnings if p.rule == "column_map"]
    assert [(p.table, p.column) for p in named] == [("all", "acount_id")]
    assert "'acount_id' is not a column of any table; ignored" in named[0].message


def test_a_problem_in_a_column_read_from_another_names_the_sources_column(small_portfolio, tmp_path):
    """A fault in a column the source names its own way (spelled another way, mapped, or written per month) is
    reported under our name and the source's: the user fixes the column they have."""
    d = _copy(small_portfolio, tmp_path / "data")
    c = pd.read_parquet(d / "contracts.parquet")
    c.loc[c.index[3], "seats"] = -2.0
    c.loc[c.index[5], "arr"] = -12.0
    c = c.assign(arr=c.arr / 12).rename(columns={"arr": "MRR", "seats": "Licenses", "start_date": "Start Date"})
    c.to_parquet(d / "contracts.parquet", index=False)
    report = validate(open_source(d, {"contracts": {"seats": "Licenses"}}))
    named = {e.column: (e.source_column, str(e)) for e in report.errors if e.table == "contracts"}
    assert named["arr"][0] == "'MRR' × 12" and "contracts.arr (read from 'MRR' × 12): " in named["arr"][1]
    assert named["seats"][0] == "'Licenses'" and "contracts.seats (read from 'Licenses'): " in named["seats"][1]
    # a column read as it is, or not found, names nothing more
    assert all(e.source_column is None for e in report.errors if e.table != "contracts")
    missing = validate(open_source(d, {"contracts": {"seats": "Licenses", "auto_renew": "Auto Renew"}}))
    assert not [p for p in missing.problems if p.column == "auto_renew" and p.source_column]
    res = subprocess.run(CLI + ["validate", "--data", str(d), "--json"], capture_output=True, text=True)
    import json
    problems = json.loads(res.stdout)["problems"]
    assert any(p["column"] == "arr" and p["source_column"] == "'MRR' × 12" for p in problems)


def test_integer_ids_that_pandas_wrote_as_floats_name_the_same_ids(small_portfolio, tmp_path):
    """Integer account IDs, in `usage` and `tickets` as floats (an integer column with gaps, as pandas writes it:
    1000.0): read as the integers' text, the same IDs as in `accounts`; no row is left out, and every table reads
    as in the export that wrote integers throughout. Fractions stay as they are."""
    from csforecast.data.parse import read_as
    import ibis

    ints, floats = _copy(small_portfolio, tmp_path / "ints"), _copy(small_portfolio, tmp_path / "floats")
    number = {a: 1000 + k for k, a in enumerate(sorted(pd.read_parquet(small_portfolio / "accounts.parquet")
                                                      .account_id))}
    for name in ("accounts", "contracts", "usage", "tickets", "surveys", "touches", "csm_sentiment",
                 "stakeholder_events", "interventions", "forecast_calls", "success_plans", "opportunities"):
        if (small_portfolio / f"{name}.parquet").exists():
            df = pd.read_parquet(small_portfolio / f"{name}.parquet")
            df = df.assign(account_id=df.account_id.map(number).astype("int64"))
            df.to_parquet(ints / f"{name}.parquet", index=False)
            if name in ("usage", "tickets"):
                df = df.assign(account_id=df.account_id.astype("float64"))
            df.to_parquet(floats / f"{name}.parquet", index=False)
    src, want = open_source(floats), open_source(ints)
    report = validate(src)
    assert report.ok and "unknown_account" not in {p.rule for p in report.problems}
    for name in ("usage", "tickets"):
        pd.testing.assert_frame_equal(src.frame(name), want.frame(name))
    floats = ibis.memtable({"x": [17.0, 17.5, -3.0, 1e20]})
    got = floats.select(text=read_as(floats.x, "string"), whole=read_as(floats.x, "int")).to_pandas()
    assert got["text"].tolist() == ["17", "17.5", "-3", "1e+20"]
    assert got["whole"][[0, 2]].tolist() == [17, -3]
    assert got["whole"].isna().tolist() == [False, True, False, True]      # 1e20: no int64, unreadable, not a crash


def test_ids_written_differently_in_two_tables_are_named_as_such(small_portfolio, tmp_path):
    """Numeric account IDs with leading zeros in `accounts` ('00042') that a spreadsheet dropped in `contracts`
    and `usage` (42), and a renewal link in lower case: the foreign-key findings say that the IDs match but for
    how they are written, with a pair; a truly unknown ID gets no such hint."""
    d = _copy(small_portfolio, tmp_path / "data")
    number = {a: f"{k:05d}" for k, a in enumerate(sorted(pd.read_parquet(d / "accounts.parquet").account_id), 1)}
    for name in ("accounts", "contracts", "usage", "tickets", "surveys", "touches", "csm_sentiment",
                 "stakeholder_events", "interventions", "forecast_calls", "success_plans", "opportunities"):
        if (d / f"{name}.parquet").exists():
            df = pd.read_parquet(d / f"{name}.parquet")
            df["account_id"] = df.account_id.map(number)
            df.to_parquet(d / f"{name}.parquet", index=False)
    c = pd.read_parquet(d / "contracts.parquet")
    c["account_id"] = c.account_id.str.lstrip("0").where(c.index < 10, c.account_id)   # ten rows as a sheet wrote them
    c.loc[c.index[20], "account_id"] = "99999"
    linked = c.index[c.renewed_by.notna()][0]
    c["renewed_by"] = c.renewed_by.astype(object)
    c.loc[linked, "renewed_by"] = c.loc[linked, "renewed_by"].lower()
    c.to_parquet(d / "contracts.parquet", index=False)
    u = pd.read_parquet(d / "usage.parquet")
    u.assign(account_id=u.account_id.str.lstrip("0")).to_parquet(d / "usage.parquet", index=False)
    t = pd.read_parquet(d / "tickets.parquet")           # as text by a tool that read the IDs as numbers
    t.assign(account_id=t.account_id.str.lstrip("0") + ".0").to_parquet(d / "tickets.parquet", index=False)
    report = validate(open_source(d))
    by = {(p.table, p.column, p.rule): p for p in report.problems}
    fk = by[("contracts", "account_id", "foreign_key")]
    assert fk.count == 11
    assert ("10 of these rows name one in accounts.account_id when case, separators, leading zeros and a decimal "
            ".0 are ignored (e.g. '") in fk.message and "export them the same way" in fk.message
    usage = by[("usage", "account_id", "unknown_account")]
    assert f"{len(u)} of these rows name one in accounts.account_id" in usage.message and usage.count == len(u)
    tickets = by[("tickets", "account_id", "unknown_account")]
    assert f"{len(t)} of these rows name one in accounts.account_id" in tickets.message
    assert ".0' and '0" in tickets.message and "writes 1000 as 1000.0" in tickets.message
    link = by[("contracts", "renewed_by", "foreign_key")]
    assert link.count == 1 and "1 of these rows name one in contracts.contract_id" in link.message
    c.loc[:9, "account_id"] = c.account_id[:10].map(lambda a: a.zfill(5))       # only the true orphan left
    c.loc[linked, "renewed_by"] = c.loc[linked, "renewed_by"].upper()
    c.to_parquet(d / "contracts.parquet", index=False)
    [fk] = [p for p in validate(open_source(d)).errors if p.column == "account_id"]
    assert fk.count == 1 and fk.message == "account_id not found in accounts"


def test_an_optional_column_empty_in_every_row_is_named_with_what_it_is_read_as(small_portfolio, tmp_path):
    """An export that left an optional column blank throughout (a helpdesk export without close dates, a CRM
    without churn reasons) reads as one without it: a warning says so, with what that means (every ticket still
    open), once per column; a column blank in some rows only is no such warning, and a column whose blanks another
    rule reports (seats: `no_seats`) is not named twice."""
    d = _copy(small_portfolio, tmp_path / "data")
    _edit(d, "tickets", lambda t: t.assign(closed_at=pd.NaT))
    c = pd.read_parquet(d / "contracts.parquet")
    c.assign(churn_reason="", seats=None, auto_renew=c.auto_renew.where(c.index % 2 == 0)).to_csv(
        d / "contracts.csv", index=False)
    (d / "contracts.parquet").unlink()
    report = validate(open_source(d))
    assert report.ok, [str(e) for e in report.errors]
    empty = {(p.table, p.column): p for p in report.warnings if p.rule == "empty_column"}
    assert set(empty) == {("tickets", "closed_at"), ("contracts", "churn_reason")}
    assert empty[("tickets", "closed_at")].count == report.row_counts["tickets"]
    assert "null = still open" in empty[("tickets", "closed_at")].message
    assert empty[("contracts", "churn_reason")].examples == []
    assert [p.column for p in report.warnings if p.rule == "no_seats"] == ["seats"]
