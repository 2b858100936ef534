"""Validation reports every problem in one pass, each with its row key and offending value; empty and missing
tables are named as such (with what goes without them); dates are read as the loader reads them; nothing in a
user's files ends in a traceback."""
from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from csforecast.data.contract import TABLES, health_sources
from csforecast.data.sources import SourceError, open_source
from csforecast.data.validate import validate
from csforecast.features.snapshot import _slug, build_snapshots

AS_OF = date(2026, 10, 1)
CLI = [sys.executable, "-m", "csforecast.cli"]


@pytest.fixture(scope="module")
def tables():
    """A small simulated portfolio's tables (80 accounts × 2 years)."""
    from csforecast.simulate import simulate_portfolio

    return simulate_portfolio(80, 2, seed=5).tables


def write(folder, tables, csv=()):
    """Write tables as Parquet (those named in `csv` as CSV); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(folder / f"{name}.csv", index=False) if name in csv else df.to_parquet(folder / f"{name}.parquet",
                                                                                         index=False)
    return folder


def rules(report, level="error"):
    return {(p.table, p.column, p.rule) for p in report.problems if p.level == level}


def test_clean(tables, tmp_path):
    report = validate(open_source(write(tmp_path / "d", tables)), AS_OF)
    assert report.ok, [str(p) for p in report.errors]
    assert report.usage_metrics.keys() == {"active_users", "logins", "key_features_used"}
    assert report.missing_health == [] and report.missing_features == {}


def test_structural_and_value_errors_of_one_table_together(tables, tmp_path):
    c = tables["contracts"].drop(columns=["start_date"]).astype({"end_date": str})
    c.loc[c.index[4], "arr"] = -1000.0
    c.loc[c.index[6], "end_date"] = "someday"
    report = validate(open_source(write(tmp_path / "d", {**tables, "contracts": c}, csv=("contracts",))), AS_OF)
    assert {("contracts", "start_date", "missing_column"), ("contracts", "arr", "negative"),
            ("contracts", "end_date", "type")} <= rules(report)
    by_rule = {p.rule: p for p in report.errors}
    assert by_rule["negative"].examples == [f"contract_id={c.contract_id.iloc[4]}: arr='-1000.0'"]
    assert by_rule["type"].examples == [f"contract_id={c.contract_id.iloc[6]}: end_date='someday'"]


def test_offending_values_shown_beside_row_keys(tables, tmp_path):
    c = tables["contracts"].copy()
    c.loc[c.index[2], "account_id"] = "NO-SUCH-1"
    t = tables["tickets"].copy()
    t.loc[t.index[0], "opened_at"] = pd.Timestamp("2031-02-03")
    report = validate(open_source(write(tmp_path / "d", {**tables, "contracts": c, "tickets": t})), AS_OF)
    ex = {(p.table, p.rule): p.examples for p in report.errors}
    assert ex[("contracts", "foreign_key")] == [f"contract_id={c.contract_id.iloc[2]}: account_id='NO-SUCH-1'"]
    assert ex[("tickets", "future_date")] == [f"ticket_id={t.ticket_id.iloc[0]}: opened_at='2031-02-03'"]


def test_empty_accounts_is_named_as_such(tables, tmp_path):
    accounts = tables["accounts"].iloc[:0]
    report = validate(open_source(write(tmp_path / "d", {**tables, "accounts": accounts}, csv=("accounts",))),
                      AS_OF)
    assert [(p.table, p.rule) for p in report.errors] == [("accounts", "empty_table")]
    assert "accounts is empty" in str(report.errors[0])


def test_empty_required_contracts_is_an_error(tables, tmp_path):
    d = write(tmp_path / "d", {**tables, "contracts": tables["contracts"].iloc[:0]})
    report = validate(open_source(d), AS_OF)
    assert ("contracts", None, "empty_table") in rules(report)


def test_empty_optional_table_is_a_warning_and_is_treated_as_absent(tables, tmp_path):
    d = write(tmp_path / "d", {**tables, "tickets": tables["tickets"].iloc[:0]}, csv=("tickets",))
    src = open_source(d)
    report = validate(src, AS_OF)
    assert report.ok
    [w] = [p for p in report.warnings if p.table == "tickets"]
    assert w.rule == "empty_optional_table" and "is empty" in w.message
    assert "support (still scored from surveys)" in w.message
    assert report.missing_features["tickets"] == list(TABLES["tickets"].features)
    assert not src.has("tickets") and src.row_count("tickets") == 0
    snap = build_snapshots(src, [date(2026, 4, 1)], labels=False)
    assert "tickets_90d" not in snap.columns and "nps_latest" in snap.columns


def test_missing_optional_tables_say_what_goes_without(tables, tmp_path):
    d = write(tmp_path / "d", {"accounts": tables["accounts"], "contracts": tables["contracts"]})
    src = open_source(d)
    report = validate(src, AS_OF)
    assert report.ok
    warned = {p.table: p for p in report.warnings if p.rule == "missing_optional_table"}
    assert set(warned) == {"usage", "tickets", "surveys", "touches", "stakeholder_events", "csm_sentiment",
                           "success_plans"}
    assert "health components losing inputs: sentiment" in warned["csm_sentiment"].message
    assert "health components losing inputs: value" in warned["success_plans"].message
    assert "health components losing inputs: deployment, adoption" in warned["usage"].message
    assert [p.table for p in report.notes if p.rule == "missing_optional_table"] == [
        "interventions", "forecast_calls", "opportunities", "opportunity_history"]
    assert report.missing_health == sorted(health_sources())
    snap = build_snapshots(src, [date(2026, 4, 1)])
    assert len(snap) > 20 and "arr" in snap.columns and "tickets_90d" not in snap.columns


def test_scorecard_tables_are_validated_naming_row_and_value(tables, tmp_path):
    """CSM sentiment is a colour or 1-5; success-plan goals are whole, not negative, met <= total."""
    sent = tables["csm_sentiment"].copy()
    sent["sentiment"] = sent["sentiment"].astype(object)
    sent.loc[sent.index[0], "sentiment"] = "purple"
    sent.loc[sent.index[1], "sentiment"] = "4"        # numbers 1-5 are fine, as are colours in any case
    sent.loc[sent.index[2], "sentiment"] = " Green "
    sent.loc[sent.index[3], "sentiment"] = "7"
    plans = tables["success_plans"].copy()
    plans.loc[plans.index[0], "goals_met"] = plans.loc[plans.index[0], "goals_total"] + 1
    plans.loc[plans.index[1], "roi"] = -0.5
    plans["goals_total"] = plans["goals_total"].astype(object)
    plans.loc[plans.index[2], "goals_total"] = "many"
    d = write(tmp_path / "d", {**tables, "csm_sentiment": sent, "success_plans": plans}, csv=("success_plans",))
    report = validate(open_source(d), AS_OF)
    assert {("csm_sentiment", "sentiment", "unknown_value"), ("success_plans", "goals_met", "more_than_total"),
            ("success_plans", "roi", "negative"), ("success_plans", "goals_total", "type")} <= rules(report)
    by = {(p.table, p.rule): p for p in report.errors}
    bad = by[("csm_sentiment", "unknown_value")]
    assert bad.count == 2 and any("sentiment='purple'" in e for e in bad.examples)
    assert any("sentiment='7'" in e for e in bad.examples)
    r0 = plans.iloc[0]
    assert by[("success_plans", "more_than_total")].examples == [
        f"account_id={r0.account_id} recorded_at={pd.Timestamp(r0.recorded_at).date()}: "
        f"goals_total='{r0.goals_total}', goals_met='{r0.goals_met}'"]
    assert "goals_total='many'" in by[("success_plans", "type")].examples[0]


def test_empty_scorecard_table_is_a_warning_naming_the_component(tables, tmp_path):
    d = write(tmp_path / "d", {**tables, "csm_sentiment": tables["csm_sentiment"].iloc[:0]})
    report = validate(open_source(d), AS_OF)
    assert report.ok
    [w] = [p for p in report.warnings if p.table == "csm_sentiment"]
    assert w.rule == "empty_optional_table" and "sentiment" in w.message
    assert report.missing_health == ["sentiment"]


def test_successor_of_another_account_is_an_error(tables, tmp_path):
    c = tables["contracts"].copy()
    a, b = c.account_id.unique()[:2]
    i = c.index[(c.account_id == a)][0]
    j = c.index[(c.account_id == b)][-1]
    c["renewed_by"] = c["renewed_by"].astype(object)
    c.loc[i, "renewed_by"] = c.loc[j, "contract_id"]
    report = validate(open_source(write(tmp_path / "d", {**tables, "contracts": c})), AS_OF)
    [p] = [p for p in report.errors if p.rule == "successor_other_account"]
    assert p.examples == [f"contract_id={c.contract_id[i]}: account_id='{a}', renewed_by='{c.contract_id[j]}', "
                          f"successor_account='{b}'"]


def test_dates_in_another_format_are_reported_then_read_with_date_format(tables, tmp_path):
    c = tables["contracts"].copy()
    c["start_date"] = pd.to_datetime(c["start_date"]).dt.strftime("%d/%m/%Y")
    d = write(tmp_path / "d", {**tables, "contracts": c}, csv=("contracts",))
    report = validate(open_source(d), AS_OF)
    [p] = [p for p in report.errors if (p.column, p.rule) == ("start_date", "type")]
    unreadable = c[~c.start_date.str.match(r"\d{4}-")]
    assert p.count == len(unreadable) > 0 and "date_format" in p.message
    first = unreadable.sort_values("contract_id").iloc[0]
    assert p.examples[0] == f"contract_id={first.contract_id}: start_date='{first.start_date}'"

    declared = open_source(d, {"contracts": {"date_format": "%d/%m/%Y"}})
    assert validate(declared, AS_OF).ok
    iso = open_source(write(tmp_path / "iso", tables))
    pd.testing.assert_frame_equal(declared.frame("contracts"), iso.frame("contracts"))
    day = [date(2026, 4, 1)]
    pd.testing.assert_frame_equal(build_snapshots(declared, day), build_snapshots(iso, day))

    c.loc[c.index[3], "start_date"] = "01/31/2025"  # neither the declared format nor YYYY-MM-DD
    d2 = write(tmp_path / "d2", {**tables, "contracts": c}, csv=("contracts",))
    report = validate(open_source(d2, {"contracts": {"date_format": "%d/%m/%Y"}}), AS_OF)
    [p] = [p for p in report.errors if p.column == "start_date"]
    assert p.count == 1 and "do not match date_format '%d/%m/%Y'" in p.message
    assert p.examples == [f"contract_id={c.contract_id.iloc[3]}: start_date='01/31/2025'"]


# text as found in date columns, and what every engine reads it as (tests/spark reads the same on Spark)
DATE_TEXTS = {"2024-01-05": date(2024, 1, 5), "2024-1-5": date(2024, 1, 5), "2024/01/05": date(2024, 1, 5),
              "2024-01-05T10:11:12": date(2024, 1, 5), "2024-01-05 10:11": date(2024, 1, 5),
              "2024-01-05T10:11:12Z": date(2024, 1, 5), "2024-01-05 10:11:12+02:00": date(2024, 1, 5),
              "45292": date(2024, 1, 1), "45292.75": date(2024, 1, 1), "29221": date(1980, 1, 1),
              "73050": date(2099, 12, 31),
              # not dates: a year, a month, signs, words after the date, out of range, outside the day numbers read
              "2024": None, "2024-01": None, "+2024-01-05": None, "-2024-01-05": None, "2024-01-05 garbage": None,
              "2024-13-01": None, "2024-02-30": None, "2024.01.05": None, "20240105": None, "29220": None,
              "73051": None, "19723": None}


def test_date_text_reads_as_the_contract_says():
    """YYYY-MM-DD (or YYYY/MM/DD) with a time of day after it or not, and a spreadsheet's day numbers within
    1980–2099 (numbers, or text); nothing else, not even what DuckDB's own cast reads (a date BC)."""
    import ibis

    from csforecast.data.parse import read_as

    t = ibis.memtable(pd.DataFrame({"v": list(DATE_TEXTS)}))
    got = ibis.duckdb.connect().execute(t.select(t.v, x=read_as(t.v, "date")))
    assert {v: (None if pd.isna(x) else pd.Timestamp(x).date()) for v, x in zip(got.v, got.x)} == DATE_TEXTS
    numbers = ibis.memtable(pd.DataFrame({"i": [45292, 29220, 20240105], "f": [45292.75, 45293.0, -1.0]}))
    got = ibis.duckdb.connect().execute(numbers.select(i=read_as(numbers.i, "date"), f=read_as(numbers.f, "date"),
                                                       y=read_as(numbers.i, "date", "%Y%m%d")))
    assert [None if pd.isna(x) else pd.Timestamp(x).date() for x in got.i] == [date(2024, 1, 1), None, None]
    assert [None if pd.isna(x) else pd.Timestamp(x).date() for x in got.f] == [date(2024, 1, 1), date(2024, 1, 2),
                                                                                None]
    assert pd.Timestamp(got.y.iloc[2]).date() == date(2024, 1, 5)   # digits in the declared format


def test_dates_saved_as_a_spreadsheets_day_numbers_are_read_as_those_dates(tables, tmp_path):
    """A column formatted as numbers in the spreadsheet an export went through keeps its dates as day numbers
    (45292 is 2024-01-01): in a CSV (some rows, beside YYYY-MM-DD) and in Parquet (a whole column of numbers),
    they read as the dates, with a warning per column giving the count; the tables and features are the clean
    export's. Numbers outside 1980–2099 are unreadable, and the error says why."""
    c, t = tables["contracts"].copy(), tables["tickets"].copy()
    day_number = lambda d: (pd.to_datetime(d) - pd.Timestamp("1899-12-30")).dt.days   # noqa: E731
    some = c.index[::3]
    c["start_date"] = c.start_date.astype(str)
    c.loc[some, "start_date"] = day_number(tables["contracts"].start_date[some]).astype(str)
    t["opened_at"] = day_number(t.opened_at) + 0.25                       # a time of day, as a fraction
    d = write(tmp_path / "d", {**tables, "contracts": c, "tickets": t}, csv=("contracts",))
    clean = open_source(write(tmp_path / "clean", tables))
    src = open_source(d)
    report = validate(src, AS_OF)
    assert report.ok, [str(p) for p in report.errors]
    said = {(p.table, p.column): p for p in report.warnings if p.rule == "spreadsheet_days"}
    assert {k: p.count for k, p in said.items()} == {("contracts", "start_date"): len(some),
                                                     ("tickets", "opened_at"): len(t)}
    assert "45292 is 2024-01-01" in said["contracts", "start_date"].message
    for source in (src, open_source(d)):           # with validation's findings, and without
        for name in ("contracts", "tickets"):
            pd.testing.assert_frame_equal(source.frame(name), clean.frame(name))
    day = [date(2026, 4, 1)]
    pd.testing.assert_frame_equal(build_snapshots(open_source(d), day), build_snapshots(clean, day))
    c.loc[c.index[0], "start_date"] = "19723"                  # days since 1970 (2024-01-01), not a spreadsheet's
    d2 = write(tmp_path / "d2", {**tables, "contracts": c}, csv=("contracts",))
    [p] = [p for p in validate(open_source(d2), AS_OF).errors if p.column == "start_date"]
    assert p.count == 1 and "outside 29221–73050" in p.message and "1970-01-01" in p.message, p.message


def _zoned(df, columns, unit, zone):
    """``df`` with its date ``columns`` as timestamps at midnight on ``zone``'s clock (Arrow type
    timestamp[unit, tz=zone]), as a warehouse or pandas writes times with a time zone; an Arrow table."""
    local = {c: pd.to_datetime(df[c]) for c in columns}
    table = pa.Table.from_pandas(df.drop(columns=list(columns)), preserve_index=False)
    for c, v in local.items():
        if zone.startswith(("+", "-")):              # a fixed offset: the instant is the local time minus it
            sign, hh, mm = zone[0], int(zone[1:3]), int(zone[-2:])
            offset = pd.to_timedelta((1 if sign == "+" else -1) * (60 * hh + mm), unit="m")
            instants = (v - offset).dt.tz_localize("UTC")
        else:
            instants = v.dt.tz_localize(zone, nonexistent="shift_forward", ambiguous=False)
        table = table.append_column(c, pa.array(instants.dt.tz_convert("UTC"), type=pa.timestamp(unit, tz=zone)))
    return table


def test_timestamps_with_a_time_zone_are_read_as_the_dates_their_writer_had(tables, tmp_path):
    """A Parquet column of timestamps with a time zone holds instants; the date read is the date on that zone's
    clock (midnight in Tokyo is the day before in UTC), whatever the unit (DuckDB's zoned nanoseconds, pandas's
    default, have no Ibis type), and whether the zone is named or an offset; a note names the zones. The tables
    and features are the export's in plain dates."""
    zones = {"contracts": ("ns", "Asia/Tokyo"), "accounts": ("ms", "Europe/Berlin"),
             "tickets": ("us", "+05:30"), "surveys": ("ns", "UTC"), "touches": ("us", "America/Los_Angeles")}
    d = tmp_path / "zoned"
    write(d, tables)
    for name, (unit, zone) in zones.items():
        dates = [c.name for c in TABLES[name].columns if c.type == "date"]
        pq.write_table(_zoned(tables[name], dates, unit, zone), d / f"{name}.parquet")
    assert pq.read_schema(d / "contracts.parquet").field("start_date").type == pa.timestamp("ns", tz="Asia/Tokyo")
    clean, src = open_source(write(tmp_path / "clean", tables)), open_source(d)
    report = validate(src, AS_OF)
    assert report.ok, [str(p) for p in report.errors]
    for name in zones:
        got = src.frame(name)
        pd.testing.assert_frame_equal(got[clean.frame(name).columns], clean.frame(name), obj=name)
    said = " | ".join(src.notes)
    assert "contracts.parquet: timestamps with a time zone (start_date in Asia/Tokyo; end_date in Asia/Tokyo)" in said
    assert "created_at in Europe/Berlin" in said and "opened_at in +05:30" in said
    assert "surveys.parquet" not in said                       # UTC's dates are its dates: nothing to say
    day = [date(2026, 4, 1)]
    pd.testing.assert_frame_equal(build_snapshots(src, day), build_snapshots(clean, day))


def test_a_name_the_header_row_repeats_reads_the_first_column_with_a_note(tables, tmp_path):
    """An export of a join names a column twice (account_id from each table; a segment of the account and of
    something else): the first column of a name is read, as on Spark, with a note that says what the others are
    called; column_map reads one of those instead."""
    a = tables["accounts"].copy()
    a.insert(len(a.columns), "Segment", "Strategic")          # the same name, case aside, other values
    c = tables["contracts"].copy()
    c.insert(3, "account_id_copy", c.account_id)
    d = write(tmp_path / "d", {**tables, "accounts": a, "contracts": c}, csv=("accounts", "contracts"))
    for name in ("accounts", "contracts"):                     # the header row as the export wrote it
        f = d / f"{name}.csv"
        f.write_text(f.read_text().replace("account_id_copy", "account_id", 1))
    clean, src = open_source(write(tmp_path / "clean", tables)), open_source(d)
    report = validate(src, AS_OF)
    assert report.ok, [str(p) for p in report.errors]
    for name in ("accounts", "contracts"):
        pd.testing.assert_frame_equal(src.frame(name), clean.frame(name), obj=name)
    said = [n for n in src.notes if "both named" in n]
    assert said == [
        f"accounts.csv: columns 3 and {len(a.columns)} are both named 'segment' (the second as 'Segment'): column "
        f"{len(a.columns)} is called 'Segment_1' here; the first column of a name is the one read (to read another, "
        "map our column to what it is called here under [column_map.accounts])",
        "contracts.csv: columns 2 and 4 are both named 'account_id': column 4 is called 'account_id_1' here; the "
        "first column of a name is the one read (to read another, map our column to what it is called here under "
        "[column_map.contracts])"], said
    other = open_source(d, {"accounts": {"segment": "Segment_1"}}).frame("accounts")
    assert set(other.segment) == {"Strategic"}


def test_a_boolean_written_as_words_or_numbers_reads_as_true_or_false(tables, tmp_path):
    """auto_renew as exports write it: `Yes`/`N`, `1.0`/`0.0` (a boolean column with gaps, as pandas writes it),
    in one CSV column, or as a Parquet column of floats with gaps: the same contracts as the clean export's (a gap
    missing); another number or word is an error naming it."""
    c = tables["contracts"].copy()
    words = {True: ["Yes", "TRUE", "1.0", "y"], False: ["N", "false", "0.0", "no"]}
    c["auto_renew"] = [words[v][i % 4] for i, v in enumerate(c.auto_renew)]
    c.loc[c.index[5], "auto_renew"] = ""
    clean = tables["contracts"].copy()
    clean["auto_renew"] = clean.auto_renew.astype(object)
    clean.loc[clean.index[5], "auto_renew"] = None
    want = open_source(write(tmp_path / "clean", {**tables, "contracts": clean})).frame("contracts")
    floats = tables["contracts"].assign(auto_renew=clean.auto_renew.map({True: 1.0, False: 0.0}))
    assert floats.auto_renew.dtype == "float64"
    for d in (write(tmp_path / "text", {**tables, "contracts": c}, csv=("contracts",)),
              write(tmp_path / "floats", {**tables, "contracts": floats})):
        src = open_source(d)
        assert validate(src, AS_OF).ok
        pd.testing.assert_frame_equal(src.frame("contracts"), want, obj=d.name)
    c.loc[c.index[7], "auto_renew"] = "2"
    d = write(tmp_path / "bad", {**tables, "contracts": c}, csv=("contracts",))
    [p] = [p for p in validate(open_source(d), AS_OF).problems if p.column == "auto_renew"]
    assert p.level == "error" and p.count == 1 and "auto_renew='2'" in str(p), str(p)


def _write_dates(c, fmt, keep=None):
    c = c.copy()
    rows = c.index if keep is None else c.index[keep(pd.to_datetime(c["start_date"]))]
    c = c.loc[rows]
    c["renewed_by"] = c.renewed_by.where(c.renewed_by.isin(c.contract_id))   # no renewal by a contract left out
    c["start_date"] = pd.to_datetime(c["start_date"]).dt.strftime(fmt)
    return c


@pytest.mark.parametrize("fmt, keep, named", [
    ("%m/%d/%Y", None, ["%m/%d/%Y"]),
    ("%d.%m.%Y", None, ["%d.%m.%Y"]),
    ("%m/%d/%y", None, ["%m/%d/%y"]),                     # not "%m/%d/%Y", which reads '10/11/21' as the year 21
    ("%b %d, %Y", None, ["%b %d, %Y"]),
    ("%d/%m/%Y", lambda d: d.dt.day <= 12, ["%m/%d/%Y", "%d/%m/%Y"]),   # no day above 12: either reading
])
def test_unreadable_dates_name_the_date_format_they_are_written_in(tables, tmp_path, fmt, keep, named):
    c = _write_dates(tables["contracts"], fmt, keep)
    d = write(tmp_path / "d", {**tables, "contracts": c}, csv=("contracts",))
    [p] = [p for p in validate(open_source(d), AS_OF).errors if (p.column, p.rule) == ("start_date", "type")]
    listed = p.message.split("; they", 1)[1].split(":")[0]
    assert [f for f in ("%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%m/%d/%y", "%d/%m/%y", "%b %d, %Y")
            if f in listed] == named, p.message
    # declaring the format the dates are written in, which the message names, reads the table (when it names
    # several, no value tells them apart: the message asks for the one the system writes)
    assert fmt in named and validate(open_source(d, {"contracts": {"date_format": fmt}}), AS_OF).ok


def test_us_dates_with_a_12_hour_time_read_in_the_date_format_named(tables, tmp_path):
    """`1/5/2024 12:00:00 AM` (Excel's and SQL Server's US text for a date and time): the error names %m/%d/%Y,
    and declaring it reads the dates (the time of day, 12-hour with AM/PM, ignored), as the clean export's."""
    c = tables["contracts"].copy()
    c["start_date"] = [d.strftime("%-m/%-d/%Y ") + ("12:00:00 AM" if i % 2 else "3:30 PM")
                       for i, d in enumerate(pd.to_datetime(c.start_date))]
    d = write(tmp_path / "d", {**tables, "contracts": c}, csv=("contracts",))
    [p] = [p for p in validate(open_source(d), AS_OF).errors if p.column == "start_date"]
    assert 'they all read as %m/%d/%Y: declare date_format = "%m/%d/%Y"' in p.message, p.message
    src = open_source(d, {"contracts": {"date_format": "%m/%d/%Y"}})
    assert validate(src, AS_OF).ok
    clean = open_source(write(tmp_path / "clean", tables)).frame("contracts")
    pd.testing.assert_frame_equal(src.frame("contracts"), clean)


def test_dates_in_no_common_format_get_the_general_advice(tables, tmp_path):
    c = tables["contracts"].copy()
    c["start_date"] = c["start_date"].astype(str).where(c.index != c.index[2], "someday")
    d = write(tmp_path / "d", {**tables, "contracts": c}, csv=("contracts",))
    [p] = [p for p in validate(open_source(d), AS_OF).errors if p.column == "start_date"]
    assert p.count == 1 and "; they" not in p.message and 'date_format = "%d/%m/%Y" (for example)' in p.message


@pytest.mark.parametrize("arr, formatted, advice", [
    (lambda v: f"${v:,.2f}", True, 'number_format = "1,234.56"'),
    (lambda v: f"{v:,.2f} €", True, 'number_format = "1,234.56"'),
    (lambda v: f"{v:.2f}".replace(".", ","), True, 'number_format = "1.234,56"'),
    (lambda v: f"{v:_.2f}".replace(".", ",").replace("_", "\u00a0") + " €", True, 'number_format = "1 234,56"'),
    (lambda v: f"${round(v / 1000):,}", False, "they read in several ways (1,234.56 or 1.234,56"),
    (lambda v: "lots", False, None)])
def test_numbers_written_for_people_are_named_as_such(tables, tmp_path, arr, formatted, advice):
    """Numbers written for people are named as such, with the number_format that reads them; declared, they are
    read: the same contracts as the export with plain numbers (to the cent). A format that could mean either
    (``$1,234``: a thousand and more, or a little over one) is named as ambiguous."""
    c = tables["contracts"].copy()
    c["arr"] = c["arr"].map(arr)
    d = write(tmp_path / "d", {**tables, "contracts": c}, csv=("contracts",))
    [p] = [p for p in validate(open_source(d), AS_OF).errors if (p.column, p.rule) == ("arr", "type")]
    assert p.count == len(c)
    assert ("numbers written for people" in p.message) == (advice is not None), p.message
    assert advice is None or advice in p.message, p.message
    if not formatted:
        return
    declared = advice.split('"')[1]
    src = open_source(d, {"contracts": {"number_format": declared}})
    report = validate(src, AS_OF)
    assert report.ok, [str(e) for e in report.errors]
    want = tables["contracts"]["arr"].round(2).to_numpy()
    got = src.frame("contracts").set_index("contract_id").loc[tables["contracts"]["contract_id"], "arr"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    with pytest.raises(SourceError, match="number_format '1.234.56' is not the number 1234.56"):
        open_source(d, {"contracts": {"number_format": "1.234.56"}})


def test_a_declared_number_format_reads_what_it_declares_and_nothing_else():
    """`number_format`: currency signs, spaces (no-break too), minus signs and accounting parentheses; text in
    the format read in it (1.234 is 1234 in 1.234,56), other text in number syntax (9529.96, 1e5), and a value in
    another format, with two minus signs or misplaced separators not at all."""
    import ibis

    from csforecast.data.parse import read_as

    cases = {"1,234.56": {"$9,529.96": 9529.96, "9529.96": 9529.96, "-$1,234.00": -1234.0, "$-1,234.00": -1234.0,
                          "(1,234.00)": -1234.0, "1,234": 1234.0, "  $5 ": 5.0, "12,34": None, "1.234,56 €": None,
                          "--5": None, "1,23,456": None, "1e5": 1e5, "abc": None},
             "1.234,56": {"1.234,56 €": 1234.56, "€ 1.234,56": 1234.56, "1,234": 1.234, "1234,5": 1234.5,
                          "1.234": 1234.0, "$9,529.96": None, "9529.96": 9529.96},
             "1 234,56": {"1 234,56": 1234.56, "1\u00a0234,56 €": 1234.56, "1\u202f234,56": 1234.56,
                          "1.234,56": None}}
    con = ibis.duckdb.connect()
    for fmt, want in cases.items():
        t = ibis.memtable(pd.DataFrame({"v": list(want)}))
        got = con.execute(t.select(t.v, x=read_as(t.v, "float", number_format=fmt)))
        got = {v: (None if pd.isna(x) else x) for v, x in zip(got.v, got.x)}
        assert got == pytest.approx(want), fmt


def test_usage_rows_that_share_a_day_are_noted_as_added_up(tables, tmp_path):
    u = tables["usage"]
    clean = validate(open_source(write(tmp_path / "clean", tables)), AS_OF)
    assert not [p for p in clean.notes if p.rule == "repeated_usage_days"]
    again = u.sample(30, random_state=0)
    report = validate(open_source(write(tmp_path / "d", {**tables, "usage": pd.concat([u, again])})), AS_OF)
    [p] = [p for p in report.notes if p.rule == "repeated_usage_days"]
    assert report.ok and p.count == 60 and "add them up" in p.message
    a = again.sort_values(["account_id", "date", "metric"]).iloc[0]
    assert p.examples[0].startswith(f"account_id={a.account_id} date={pd.Timestamp(a.date).date()} "
                                    f"metric={a.metric}: value=")


@pytest.mark.parametrize("name, encoding, read_as", [
    ("Société Générale – O’Brien & Co", "cp1252", "Windows-1252"),   # – and ’ exist in Windows-1252 only
    ("Société\x81 Générale", "latin-1", "Latin-1"),                  # 0x81: no Windows-1252 character
    ("Société Générale – 株式会社", "utf-16", "UTF-16"),               # Excel's "Unicode text", tab-separated
])
def test_a_csv_that_is_not_utf8_is_read_with_a_note(tables, tmp_path, name, encoding, read_as):
    a = tables["accounts"].copy()
    a.loc[a.index[1], "name"] = name
    d = write(tmp_path / "d", {**tables, "accounts": a})
    (d / "accounts.parquet").unlink()
    a.to_csv(d / "accounts.csv", index=False, encoding=encoding, sep="\t" if encoding == "utf-16" else ",")
    src = open_source(d)
    report = validate(src, AS_OF)
    assert report.ok, [str(p) for p in report.errors]
    [note] = [p for p in report.notes if "UTF-8" in p.message]
    line = 1 if encoding == "utf-16" else 3    # the byte order mark; else the row with the name
    assert f"accounts.csv is not UTF-8 (line {line}: byte 0x" in note.message and f"read as {read_as}" in note.message
    assert src.frame("accounts")["name"].tolist() == a["name"].tolist()


def test_ids_padded_with_spaces_are_the_same_ids_and_blank_text_is_missing(tables, tmp_path):
    """A spreadsheet's "A00048 " or a CHAR(n) column's padding: the rows still belong to their account; a cell
    of spaces is missing. Features equal those of the clean export."""
    t, a, c = tables["tickets"].copy(), tables["accounts"].copy(), tables["contracts"].copy()
    t["account_id"] = t["account_id"] + " "
    a["account_id"] = "  " + a["account_id"]
    a["csm_id"] = a["csm_id"].astype(object).where(a["csm_id"].notna(), "   ")
    c["renewed_by"] = c["renewed_by"].astype(object).where(c["renewed_by"].isna(), c["renewed_by"] + "\t")
    padded = write(tmp_path / "padded", {**tables, "tickets": t, "accounts": a, "contracts": c},
                   csv=("tickets", "accounts"))
    src, clean = open_source(padded), open_source(write(tmp_path / "clean", tables))
    report = validate(src, AS_OF)
    assert report.ok and not report.warnings, [str(p) for p in report.problems]
    assert {(p.table, p.column) for p in report.notes if p.rule == "padded_text"} == {
        ("tickets", "account_id"), ("accounts", "account_id"), ("accounts", "csm_id"), ("contracts", "renewed_by")}
    assert src.frame("accounts")["csm_id"].isna().sum() == tables["accounts"]["csm_id"].isna().sum()
    day = [date(2026, 4, 1)]
    want = build_snapshots(clean, day)
    pd.testing.assert_frame_equal(build_snapshots(src, day), want)
    pd.testing.assert_frame_equal(build_snapshots(open_source(padded), day), want)   # never validated


@pytest.mark.parametrize("fmt", ["%Q/%m", "dd/mm/yyyy"])
def test_a_bad_date_format_setting_is_a_clear_error(tables, tmp_path, fmt):
    d = write(tmp_path / "d", tables)
    with pytest.raises(SourceError, match="column_map.contracts.date_format"):
        open_source(d, {"contracts": {"date_format": fmt}})


def test_every_usage_metric_is_counted(tables, tmp_path):
    u = tables["usage"]
    one = u[u.metric == "logins"].head(50)
    extra = pd.concat([one.assign(metric=f"feature_{k:02d}_events") for k in range(14)])
    report = validate(open_source(write(tmp_path / "d", {**tables, "usage": pd.concat([u, extra])})), AS_OF)
    assert len(report.usage_metrics) == 17 and report.usage_metrics["feature_13_events"] == 50
    assert any("17 distinct usage metric(s)" in p.message for p in report.notes)


def test_column_map_naming_no_table_or_column_warns(tables, tmp_path):
    d = write(tmp_path / "d", tables)
    report = validate(open_source(d, {"contract": {"arr": "ACV"}, "accounts": {"segmant": "Tier"}}), AS_OF)
    assert {("contract", None, "column_map"), ("accounts", "segmant", "column_map")} <= rules(report, "warning")


def _hostile(tables, root):
    """A folder where every table has something wrong with it in a way that has crashed readers before."""
    d = write(root, {})
    (d / "accounts.csv").write_text(tables["accounts"].head(5).to_csv(index=False) + "A99999,oops\n,x,y,z,w,v,u,t\n")
    (d / "contracts.parquet").write_bytes(b"PAR1 this is not parquet")
    (d / "usage.csv").write_bytes(b"")
    t = tables["tickets"].copy()
    t["opened_at"] = np.arange(len(t))            # numbers where dates belong
    t["csat"] = np.where(np.arange(len(t)) % 2 == 0, np.nan, np.inf)
    t.to_parquet(d / "tickets.parquet", index=False)
    s = tables["surveys"].head(20)
    pq.write_table(pa.table({"account_id": pa.array([[1, 2]] * len(s)), "responded_at": s.responded_at,
                             "kind": s.kind, "score": s.score}), d / "surveys.parquet")
    tables["touches"].assign(account_id=np.arange(len(tables["touches"]))).to_parquet(d / "touches.parquet")
    (d / "stakeholder_events.csv").write_text('account_id,date,kind\n"A00001,2025-01-01,champion_left\n')
    return d


def test_hostile_files_give_a_report_not_a_traceback(tables, tmp_path):
    d = _hostile(tables, tmp_path / "d")
    report = validate(open_source(d), AS_OF)
    got = rules(report)
    assert ("contracts", None, "unreadable_table") in got and ("usage", None, "unreadable_table") in got
    assert ("tickets", "opened_at", "type") in got and ("tickets", "csat", "type") in got
    assert ("surveys", "account_id", "type") in got
    assert ("accounts", None, "unreadable_table") in got and ("stakeholder_events", None, "unreadable_table") in got
    res = subprocess.run(CLI + ["validate", "--data", str(d), "--json"], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert out["ok"] is False and {"usage_metrics", "missing_health", "missing_features"} <= set(out)
    res = subprocess.run(CLI + ["train", "--data", str(d)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]


def test_the_contract_says_truly_what_each_optional_table_feeds(tables, tmp_path):
    """TableSpec.features are exactly the snapshot columns that go without the table, and TableSpec.health
    are exactly the health components with a measure needing one of them (models.health.MEASURES)."""
    from csforecast.models.health import MEASURES

    full = build_snapshots(open_source(write(tmp_path / "full", tables)), [date(2026, 4, 1)], labels=False)
    metrics = [_slug(m) for m in tables["usage"].metric.unique()]
    for name, spec in TABLES.items():
        if spec.required or not spec.features:
            continue
        without = build_snapshots(open_source(write(tmp_path / name, {k: v for k, v in tables.items() if k != name})),
                                  [date(2026, 4, 1)], labels=False)
        gone = set(full.columns) - set(without.columns)
        declared = {f.format(metric=m) for f in spec.features for m in metrics}
        assert gone == declared & set(full.columns), name
        assert not set(without.columns) - set(full.columns)
        fed = {m.component for m in MEASURES if any(fnmatch.fnmatch(r, pat) for r in m.requires for pat in declared)}
        assert fed == set(spec.health), name


def test_the_documented_list_is_the_contracts():
    """docs/data-contract.md's table of what goes without each optional table says what TableSpec.health says."""
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "data-contract.md").read_text()
    section = doc[doc.index("What goes without each optional table"):]
    for name, spec in TABLES.items():
        if spec.required:
            continue
        [row] = [line for line in section.splitlines() if line.startswith(f"| {name} |")]
        cell = re.sub(r"\(.*?\)", "", row.strip("|").split("|")[-1])
        documented = {c.strip() for c in cell.split(",")} - {"none", ""}
        assert documented == set(spec.health), name


def _gzip(src, dst):
    import gzip
    import shutil

    with open(src, "rb") as fh, gzip.open(dst, "wb") as out:
        shutil.copyfileobj(fh, out)
    src.unlink()


def test_gzip_compressed_csv_files_read_as_the_same_tables(tables, tmp_path):
    """A warehouse unload or a mailed export: `contracts.csv.gz`, `Tickets.CSV.GZ` (spelled another way), and a
    compressed CSV that is not UTF-8 read as the uncompressed files do: same report, same features."""
    a = tables["accounts"].copy()
    a.loc[a.index[1], "name"] = "Société Générale – O’Brien"
    plain = write(tmp_path / "plain", {**tables, "accounts": a}, csv=("contracts", "tickets", "usage"))
    a.to_csv(plain / "accounts.csv", index=False, encoding="cp1252")
    (plain / "accounts.parquet").unlink()
    packed = write(tmp_path / "packed", {**tables, "accounts": a}, csv=("contracts", "tickets", "usage"))
    for name, as_name in (("contracts", "contracts.csv.gz"), ("usage", "usage.csv.gz"),
                          ("tickets", "Tickets.CSV.GZ")):
        _gzip(packed / f"{name}.csv", packed / as_name)
    (packed / "accounts.parquet").unlink()
    a.to_csv(packed / "accounts.csv", index=False, encoding="cp1252")
    _gzip(packed / "accounts.csv", packed / "accounts.csv.gz")
    src, ref = open_source(packed), open_source(plain)
    assert set(src.names) == set(ref.names)
    report, want = validate(src, AS_OF), validate(ref, AS_OF)
    assert report.ok, [str(p) for p in report.errors]
    kept = [(p.rule, p.table, p.column, p.count) for p in report.problems if p.rule != "reading"]
    assert kept == [(p.rule, p.table, p.column, p.count) for p in want.problems if p.rule != "reading"]
    said = [p.message for p in report.notes if p.rule == "reading"]
    assert any("accounts.csv.gz is not UTF-8 (line 3: byte 0x" in m for m in said)
    assert any("'Tickets' read as tickets" in m for m in said), said
    assert src.frame("accounts")["name"].tolist() == a["name"].tolist()
    day = [date(2026, 4, 1)]
    pd.testing.assert_frame_equal(build_snapshots(src, day), build_snapshots(ref, day))


def test_tab_separated_and_text_exports_read_as_the_same_tables(tables, tmp_path):
    """`accounts.tsv`, `Contracts.TXT` (Excel's "Text (Tab delimited)", spelled another way) and a compressed
    `tickets.tsv.gz`: the same report and features as the CSV files; a CSV beside a TSV of the same table is read
    first, with a note."""
    plain = write(tmp_path / "plain", tables, csv=("accounts", "contracts", "tickets"))
    d = write(tmp_path / "d", {k: v for k, v in tables.items() if k not in ("accounts", "contracts", "tickets")})
    tables["accounts"].to_csv(d / "accounts.tsv", sep="\t", index=False)
    tables["contracts"].to_csv(d / "Contracts.TXT", sep="\t", index=False)
    tables["tickets"].to_csv(d / "tickets.tsv", sep="\t", index=False)
    _gzip(d / "tickets.tsv", d / "tickets.tsv.gz")
    src, ref = open_source(d), open_source(plain)
    assert set(src.names) == set(ref.names) and not src.unreadable
    report, want = validate(src, AS_OF), validate(ref, AS_OF)
    assert report.ok, [str(p) for p in report.errors]
    kept = [(p.rule, p.table, p.column, p.count) for p in report.problems if p.rule != "reading"]
    assert kept == [(p.rule, p.table, p.column, p.count) for p in want.problems if p.rule != "reading"]
    day = [date(2026, 4, 1)]
    pd.testing.assert_frame_equal(build_snapshots(src, day), build_snapshots(ref, day))
    tables["accounts"].iloc[:3].to_csv(d / "accounts.csv", index=False)
    again = open_source(d)
    assert again.row_count("accounts") == 3
    assert "accounts: both accounts.csv and accounts.tsv found; reading accounts.csv" in again.notes


def test_a_title_above_the_header_row_is_left_out_with_a_note(tables, tmp_path):
    """A report's title lines above the header row of a CSV file (padded to the table's width, `Contracts
    report,,,,`, or alone on the line; compressed or not): the header row is the first line with two values, as
    in a workbook's sheet, the lines above it are left out with a note, and the tables and features are the clean
    export's. In a folder of parts (written by programs, not people) a title line is still an error that says
    what to do."""
    import gzip

    clean = open_source(write(tmp_path / "clean", tables))
    d = write(tmp_path / "d", tables, csv=("contracts", "tickets"))
    c = (d / "contracts.csv").read_text()
    width = c.splitlines()[0].count(",")
    (d / "contracts.csv").write_text("Contracts report" + "," * width + "\n" + "Run on 2026-10-02" + "," * width
                                     + "\n" + c)
    t = (d / "tickets.csv").read_text()
    (d / "tickets.csv").unlink()
    (d / "tickets.csv.gz").write_bytes(gzip.compress(('"Tickets export, all regions"\n\n' + t).encode()))
    src = open_source(d)
    assert "contracts.csv: the header row is line 3; the line(s) above it, with one value at most (a title, a " \
           "date), are left out, and line numbers count from the header row" in src.notes
    assert any(n.startswith("tickets.csv.gz: the header row is line 3;") for n in src.notes), src.notes
    report = validate(src, AS_OF)
    assert report.ok, [str(p) for p in report.errors]
    for name in ("contracts", "tickets"):
        pd.testing.assert_frame_equal(src.frame(name), clean.frame(name))
    day = [date(2026, 4, 1)]
    pd.testing.assert_frame_equal(build_snapshots(src, day), build_snapshots(clean, day))

    (d / "tickets.csv.gz").unlink()
    (d / "tickets").mkdir()
    (d / "tickets" / "part-0.csv").write_text("Tickets export\n" + t)
    report = validate(open_source(d), AS_OF)
    by = {(p.table, p.rule): p.message for p in report.errors}
    assert set(by) == {("tickets", "unreadable_table")}, by
    assert "is the first line ('Tickets export') a title above the header row? Remove it" \
        in by[("tickets", "unreadable_table")]


def test_a_compressed_csv_that_cannot_be_decompressed_is_named(tables, tmp_path):
    import gzip

    d = write(tmp_path / "d", tables)
    (d / "tickets.parquet").unlink()
    (d / "tickets.csv.gz").write_bytes(b"ticket_id,account_id\nT1,A1\n")     # named .gz, not compressed
    (d / "surveys.parquet").unlink()
    tables["surveys"].to_csv(d / "surveys.csv", index=False)
    payload = (d / "surveys.csv").read_bytes()
    (d / "surveys.csv").unlink()
    (d / "surveys.csv.gz").write_bytes(gzip.compress(payload)[:-200])        # cut short in transfer
    (d / "touches.parquet").unlink()
    (d / "touches.csv.gz").write_bytes(gzip.compress(b""))                    # nothing in it
    report = validate(open_source(d), AS_OF)
    by = {p.table: p for p in report.errors}
    assert "tickets.csv.gz" in by["tickets"].message and "not a readable gzip file" in by["tickets"].message
    assert "surveys.csv.gz" in by["surveys"].message and "gzip" in by["surveys"].message
    assert "touches.csv.gz is an empty file" in by["touches"].message


def test_rows_repeated_exactly_are_an_error_that_says_how_to_read_them_once(tables, tmp_path):
    """An export with a join's fan-out or a file appended twice: accounts, contracts and tickets repeated in
    every column are an error that names them and says how to declare them (a duplicate key is a fault the
    contract checks); declared `repeated_rows = "read_once"` (per table or for all), a warning, and every table
    and feature reads as the clean export's. A key whose rows differ stays an error either way."""
    a, c, t = tables["accounts"], tables["contracts"], tables["tickets"]
    twice = {"accounts": pd.concat([a, a.iloc[:2]]), "contracts": pd.concat([c, c.iloc[3:6], c.iloc[3:4]]),
             "tickets": pd.concat([t.iloc[:1], t])}
    d = write(tmp_path / "d", {**tables, **twice}, csv=("contracts",))
    undeclared = validate(open_source(d), AS_OF)
    by = {p.table: p for p in undeclared.errors if p.rule == "duplicate_key"}
    assert {k: p.count for k, p in by.items()} == {"accounts": 2, "contracts": 3, "tickets": 1}
    assert 'declare repeated_rows = "read_once" under [column_map.contracts]' in by["contracts"].message
    assert by["contracts"].examples[0] == f"contract_id={c.contract_id.iloc[3]} ×3"
    with pytest.raises(SourceError, match="column_map.all.repeated_rows must be"):
        open_source(d, {"all": {"repeated_rows": "yes"}})
    clean = open_source(write(tmp_path / "clean", tables))
    day = [date(2026, 4, 1)]
    want = build_snapshots(clean, day)
    declared = {"all": {"repeated_rows": "read_once"}}
    src = open_source(d, declared)
    report = validate(src, AS_OF)
    assert report.ok, [str(p) for p in report.errors]
    by = {p.table: p for p in report.warnings if p.rule == "repeated_rows"}
    assert {k: p.count for k, p in by.items()} == {"accounts": 2, "contracts": 4, "tickets": 1}
    pd.testing.assert_frame_equal(build_snapshots(src, day), want)
    per_table = {t: {"repeated_rows": "read_once"} for t in ("accounts", "contracts", "tickets")}
    # with validation's findings, and without validation; declared for all tables or per table
    for source in (src, open_source(d, declared), open_source(d, per_table)):
        for name in ("accounts", "contracts", "tickets"):
            key = TABLES[name].key
            got = source.frame(name).sort_values(key).reset_index(drop=True)
            pd.testing.assert_frame_equal(got, clean.frame(name).sort_values(key).reset_index(drop=True))
    differ = c.iloc[3:4].assign(arr=c.arr.iloc[3] + 1.0)
    bad_folder = write(tmp_path / "bad", {**tables, "contracts": pd.concat([c, differ])})
    bad = validate(open_source(bad_folder, {"all": {"repeated_rows": "read_once"}}), AS_OF)
    [err] = [p for p in bad.errors if p.rule == "duplicate_key"]
    assert err.count == 1 and err.examples == [f"contract_id={c.contract_id.iloc[3]} ×2"]
    assert "rows differ" in err.message and not [p for p in bad.warnings if p.rule == "repeated_rows"]


def test_a_folder_of_csv_parts_reads_as_one_table(tables, tmp_path):
    """A warehouse unload or a Spark job's output: a table as a folder of CSV part files, each with its header
    (some compressed, one not UTF-8, one empty, and the writer's `_SUCCESS` and `.crc` files and a `README.txt`
    beside them): the
    same report and features as the single files, and a part that is malformed or a folder of empty files named."""
    import gzip

    u, t = tables["usage"], tables["tickets"].copy()
    t.loc[t.index[-1], "ticket_id"] = "T-Société"   # written in Windows-1252 below
    single = write(tmp_path / "single", {**tables, "tickets": t}, csv=("usage", "tickets"))
    d = write(tmp_path / "parts", {k: v for k, v in tables.items() if k not in ("usage", "tickets")})
    (d / "usage").mkdir()
    for i in range(3):
        with gzip.open(d / "usage" / f"part-{i:05d}.csv.gz", "wt", newline="") as fh:
            u.iloc[i::3].to_csv(fh, index=False)
    (d / "usage" / "_SUCCESS").write_text("")
    (d / "usage" / ".part-00000.csv.gz.crc").write_bytes(b"\x00")
    # a note beside the parts, which would be an unreadable part if it were one
    (d / "usage" / "README.txt").write_text("Unloaded by the nightly job\nColumns: account_id, date, metric, value\n")
    (d / "tickets").mkdir()
    t.iloc[:50].to_csv(d / "tickets" / "a.csv", index=False)
    t.iloc[50:].to_csv(d / "tickets" / "b.csv", index=False, encoding="cp1252")
    (d / "tickets" / "c.csv").write_text("")
    src, ref = open_source(d), open_source(single)
    report, want = validate(src, AS_OF), validate(ref, AS_OF)
    assert report.ok, [str(p) for p in report.errors]
    kept = [(p.rule, p.table, p.column, p.count) for p in report.problems if p.rule != "reading"]
    assert kept == [(p.rule, p.table, p.column, p.count) for p in want.problems if p.rule != "reading"]
    assert any("tickets/b.csv is not UTF-8" in p.message for p in report.notes)
    assert sorted(src.frame("tickets")["ticket_id"]) == sorted(t["ticket_id"])
    day = [date(2026, 4, 1)]
    pd.testing.assert_frame_equal(build_snapshots(src, day), build_snapshots(ref, day))
    with open(d / "tickets" / "b.csv", "a", encoding="cp1252") as fh:
        fh.write("T-extra,A00001\n")                  # a row with two fields
    bad = validate(open_source(d), AS_OF)
    [err] = [p for p in bad.errors if p.table == "tickets"]
    assert "cannot read tickets/b.csv: line" in err.message and "has 2 field(s)" in err.message
    for f in (d / "tickets").iterdir():
        f.write_text("")
    (d / "usage" / "part-00001.csv.gz").write_bytes(b"not gzip")
    errors = {p.table: p for p in validate(open_source(d), AS_OF).errors}
    assert "tickets/ holds only empty files" in errors["tickets"].message
    assert "cannot read usage/part-00001.csv.gz: not a readable gzip file" in errors["usage"].message



def test_part_files_without_a_suffix_are_read_by_their_content(tables, tmp_path):
    """A warehouse unload asked for no file extension: usage as Redshift writes it with HEADER (`0000_part_00`,
    `0001_part_00.gz`, `|`-delimited) and tickets as a Hive table's Parquet files (`000000_0`, `000001_0`): read
    by their first bytes, with a note, and the same report and features as the single files. Without a header
    row (Redshift's default) the table's error says so, naming its columns."""
    import gzip

    u, t = tables["usage"], tables["tickets"]
    single = write(tmp_path / "single", tables)
    d = write(tmp_path / "unload", {k: v for k, v in tables.items() if k not in ("usage", "tickets")})
    (d / "usage").mkdir()
    half = len(u) // 2
    u.iloc[:half].to_csv(d / "usage" / "0000_part_00", index=False, sep="|")
    with gzip.open(d / "usage" / "0001_part_00.gz", "wt", newline="") as fh:
        u.iloc[half:].to_csv(fh, index=False, sep="|")
    (d / "tickets").mkdir()
    t.iloc[:40].to_parquet(d / "tickets" / "000000_0", index=False)
    t.iloc[40:].to_parquet(d / "tickets" / "000001_0", index=False)
    src, ref = open_source(d), open_source(single)
    report = validate(src, AS_OF)
    assert report.ok, [str(p) for p in report.errors]
    kept = [(p.rule, p.table, p.column, p.count) for p in report.problems if p.rule != "reading"]
    assert kept == [(p.rule, p.table, p.column, p.count) for p in validate(ref, AS_OF).problems if p.rule != "reading"]
    said = " | ".join(src.notes)
    assert "usage: the part files of usage/ have no suffix (0000_part_00, …, 2 in all): read as delimited text" in said
    assert "tickets: the part files of tickets/ have no suffix (000000_0, …, 2 in all): read as Parquet" in said
    day = [date(2026, 4, 1)]
    pd.testing.assert_frame_equal(build_snapshots(src, day), build_snapshots(ref, day))
    u.iloc[:half].to_csv(d / "usage" / "0000_part_00", index=False, header=False, sep="|")
    (d / "usage" / "0001_part_00.gz").unlink()
    [err] = [p for p in validate(open_source(d), AS_OF).errors if p.table == "usage"]
    assert err.rule == "no_header", str(err)

def _concatenated(folder, name, frame, blank_after=()):
    """Write `frame` as two exports of table `name` written one after the other (the second with its own header
    row, behind a byte-order mark) and a spreadsheet's blank rows after the rows in `blank_after` (`,,,,`, and
    every other one with a space or a tab in each field)."""
    half = len(frame) // 2
    first = frame.iloc[:half].to_csv(index=False).splitlines(keepends=True)
    second = frame.iloc[half:].to_csv(index=False).splitlines(keepends=True)
    blank = "," * (frame.shape[1] - 1) + "\n"
    spaces = '" ", ,\t' + "," * (frame.shape[1] - 3) + "\n"
    lines = []
    for k, line in enumerate(first):
        lines.append(line + ((blank, spaces)[sorted(blank_after).index(k) % 2] if k in blank_after else ""))
    (folder / f"{name}.csv").write_text("".join(lines) + "\ufeff" + "".join(second) + blank, encoding="utf-8")
    return 1 + half + 1 + len(blank_after)            # the line of the repeated header


def test_header_rows_repeated_and_blank_rows_are_left_out_with_a_note(tables, tmp_path):
    """Exports concatenated (`cat a.csv b.csv`: the header row again, mid-file) and a spreadsheet's blank rows
    (`,,,,`): rows that hold no data are left out and a note names their lines, in a single file and in a
    folder of parts; every other finding and the features are the clean export's. A report's footer (a line
    of another width) stays an error, which now quotes the line."""
    clean = write(tmp_path / "clean", tables, csv=("contracts", "tickets"))
    d = write(tmp_path / "d", {k: v for k, v in tables.items() if k not in ("contracts", "tickets")})
    at = _concatenated(d, "contracts", tables["contracts"], blank_after=(3, 4))
    (d / "tickets").mkdir()
    t = tables["tickets"]
    t.iloc[:40].to_csv(d / "tickets" / "part-0.csv", index=False)
    _concatenated(d / "tickets", "part-1", t.iloc[40:])
    src, ref = open_source(d), open_source(clean)
    report, want = validate(src, AS_OF), validate(ref, AS_OF)
    assert report.ok, [str(p) for p in report.errors]
    kept = [(p.rule, p.table, p.column, p.count) for p in report.problems if p.rule != "reading"]
    assert kept == [(p.rule, p.table, p.column, p.count) for p in want.problems if p.rule != "reading"]
    said = [p.message for p in report.notes if "hold no data" in p.message]
    assert f"contracts.csv: 1 row(s) repeating the header row (line {at}) and 3 row(s) with every field empty " \
           f"(line 5, 7, {len(tables['contracts']) + 5}) left out: they hold no data" in said, said
    assert any(m.startswith("tickets: 1 row(s) repeating the header row (tickets/part-1.csv: line ") for m in said)
    assert src.row_count("contracts") == len(tables["contracts"])
    day = [date(2026, 4, 1)]
    pd.testing.assert_frame_equal(build_snapshots(src, day), build_snapshots(ref, day))
    assert not [p for p in want.notes if "hold no data" in p.message]
    with open(d / "contracts.csv", "a", encoding="utf-8") as fh:
        fh.write('\n"Grand Totals (%d records)"\n' % len(tables["contracts"]))
    [err] = [p for p in validate(open_source(d), AS_OF).errors if p.table == "contracts"]
    assert "has 1 field(s), the header has 9: 'Grand Totals (" in err.message, err.message


def test_a_missing_value_written_as_null_reads_as_missing(tables, tmp_path):
    """A SQL client's "save results as CSV" writes a missing value as `NULL` (MySQL and Hive as `\\N`, a
    fixed-width export padded to the column's width, `" NULL  "`): in every column, text or typed, it reads as
    missing, with a note per column, and the tables and features are the clean export's, validated or not. In a
    required column it is a missing value (an error), not an unreadable one."""
    clean = write(tmp_path / "clean", tables, csv=("contracts", "tickets"))
    d = write(tmp_path / "d", tables)
    for name, null in (("contracts", "NULL"), ("tickets", " NULL  ")):
        (d / f"{name}.parquet").unlink()
        tables[name].to_csv(d / f"{name}.csv", index=False, na_rep=null)
    src, ref = open_source(d), open_source(clean)
    report, want = validate(src, AS_OF), validate(ref, AS_OF)
    assert report.ok, [str(p) for p in report.errors]
    nulls = {(p.table, p.column): p.count for p in report.problems if p.rule == "null_text"}
    c, t = tables["contracts"], tables["tickets"]
    assert nulls == {**{("contracts", k): n for k, n in c.isna().sum().items() if n},
                     **{("tickets", k): n for k, n in t.isna().sum().items() if n}}
    null_note = next(p.message for p in report.problems if p.rule == "null_text")
    assert null_note.startswith("the text 'NULL', 'null' or '\\N' (how database clients write a missing value)")
    kept = [(p.rule, p.table, p.column, p.count) for p in report.problems if p.rule not in ("reading", "null_text")]
    assert kept == [(p.rule, p.table, p.column, p.count) for p in want.problems if p.rule != "reading"]
    for source in (src, open_source(d)):           # with validation's findings, and without
        for name in ("contracts", "tickets"):
            pd.testing.assert_frame_equal(source.frame(name), ref.frame(name))
    day = [date(2026, 4, 1)]
    pd.testing.assert_frame_equal(build_snapshots(src, day), build_snapshots(ref, day))
    c.assign(end_date=c.end_date.where(c.index != c.index[0])).to_csv(d / "contracts.csv", index=False, na_rep="NULL")
    [err] = [p for p in validate(open_source(d), AS_OF).errors]
    assert (err.column, err.rule, err.count) == ("end_date", "null", 1)


def test_a_missing_number_or_date_written_as_na_or_nan_reads_as_missing(tables, tmp_path):
    """Spreadsheets and data tools write a missing number, date or true/false as text (`#N/A`, `N/A`, `NA`, `NaN`,
    `None`, …): in a column whose type is not text it reads as missing, with a note per column, and the tables are
    the clean export's; in a text column it is the text (`NA` may be North America). `-` stays unreadable (an
    accounting format's zero). In a required column, a missing value (an error), not an unreadable one."""
    from csforecast.data.parse import NO_VALUE_WORDS

    c, t = tables["contracts"].copy(), tables["tickets"].copy()
    words = list(NO_VALUE_WORDS) + [" #N/A  "]
    seats = c.seats.astype(object)
    rows = c.index[: len(words)]
    seats[rows] = words
    csat = t.csat.astype(object).where(t.csat.notna(), [words[i % len(words)] for i in range(len(t))])
    c2, t2 = c.assign(seats=seats), t.assign(csat=csat)
    c2["churn_reason"] = c2.churn_reason.astype(object)
    c2.loc[c2.index[-1], "churn_reason"] = "NA"                        # a text column keeps its text
    d = write(tmp_path / "d", {**tables, "contracts": c2, "tickets": t2}, csv=("contracts", "tickets"))
    c.loc[rows, "seats"] = np.nan
    c["churn_reason"] = c.churn_reason.astype(object)
    c.loc[c.index[-1], "churn_reason"] = "NA"
    clean = open_source(write(tmp_path / "clean", {**tables, "contracts": c}, csv=("contracts", "tickets")))
    src = open_source(d)
    report = validate(src, AS_OF)
    assert report.ok, [str(p) for p in report.errors]
    said = {(p.table, p.column): p.count for p in report.problems if p.rule == "no_value_text"}
    assert said == {("contracts", "seats"): len(words), ("tickets", "csat"): int(t.csat.isna().sum())}
    for name in ("contracts", "tickets"):
        pd.testing.assert_frame_equal(src.frame(name), clean.frame(name), obj=name)
    assert src.frame("contracts").churn_reason.iloc[-1] == "NA"
    c2.loc[c2.index[0], "seats"] = "-"
    c2.loc[c2.index[1], "arr"] = "#N/A"
    d = write(tmp_path / "d2", {**tables, "contracts": c2}, csv=("contracts",))
    errors = {(p.column, p.rule): p.count for p in validate(open_source(d), AS_OF).errors}
    assert errors == {("seats", "type"): 1, ("arr", "null"): 1}, errors


def test_a_csv_without_its_header_row_is_one_error_that_says_so(tables, tmp_path):
    """A `COPY … TO` or an unload written without HEADER: the first row is taken for the column names. One error
    says so and names the columns to write, not one per missing column."""
    d = write(tmp_path / "d", tables)
    (d / "contracts.parquet").unlink()
    tables["contracts"].to_csv(d / "contracts.csv", index=False, header=False)
    report = validate(open_source(d), AS_OF)
    [err] = [p for p in report.errors if p.table == "contracts"]
    assert err.rule == "no_header" and err.column is None
    first = tables["contracts"].iloc[0]
    assert f"'{first.contract_id}', '{first.account_id}'" in err.message
    assert "add a header row (contract_id, account_id, start_date, end_date, arr" in err.message


def test_a_missing_column_names_the_columns_a_map_could_read_it_from(tables, tmp_path):
    c = tables["contracts"].rename(columns={"contract_id": "Id", "arr": "Amount"})
    d = write(tmp_path / "d", {**tables, "contracts": c})
    by = {p.column: p for p in validate(open_source(d), AS_OF).errors if p.rule == "missing_column"}
    assert set(by) == {"contract_id", "arr"}
    assert "its columns not read as ours are 'Id', 'Amount'" in by["arr"].message
    assert 'map it with arr = "their name" under [column_map.contracts]' in by["arr"].message
    mapped = validate(open_source(d, {"contracts": {"arr": "ACV"}}), AS_OF)
    [err] = [p for p in mapped.errors if p.column == "arr"]
    assert "column_map maps it to 'ACV', which is not there either" in err.message and "not read as ours" not in err.message


def test_contracts_without_an_end_date_are_an_error_that_says_what_to_export(tables, tmp_path):
    c = tables["contracts"].copy()
    c["end_date"] = pd.to_datetime(c["end_date"]).where(c.index > c.index[2])   # three open-ended contracts
    report = validate(open_source(write(tmp_path / "d", {**tables, "contracts": c})), AS_OF)
    [err] = [p for p in report.errors if p.column == "end_date"]
    assert err.rule == "null" and err.count == 3
    assert "open-ended contract (evergreen, auto-renewing or month-to-month)" in err.message
    assert err.examples[0].startswith(f"contract_id={c.contract_id.iloc[0]}")
