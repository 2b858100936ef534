"""Excel workbooks read as their CSV exports would be: one workbook per table in a folder, or one workbook with a
sheet per table; a spreadsheet that is not read (.xls, .ods, a damaged file, an empty sheet) is named with what to
do, never a traceback."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
from datetime import date

import pandas as pd
import pytest
from openpyxl import Workbook

from csforecast.data.sources import SourceError, open_source
from csforecast.data.spreadsheets import SpreadsheetError, cell_text, sheet_names, sheet_to_csv
from csforecast.data.validate import validate
from csforecast.features.snapshot import build_snapshots

AS_OF = date(2026, 10, 1)
CLI = [sys.executable, "-m", "csforecast.cli"]
AS_WORKBOOKS = ("accounts", "contracts", "surveys")


@pytest.fixture(scope="module")
def tables():
    """A small simulated portfolio's tables (60 accounts × 2 years)."""
    from csforecast.simulate import simulate_portfolio

    return simulate_portfolio(60, 2, seed=3).tables


def _csv_folder(folder, tables):
    folder.mkdir(parents=True)
    for name, df in tables.items():
        df.to_csv(folder / f"{name}.csv", index=False)
    return folder


def _kept(report):
    return sorted((p.level, p.rule, p.table, p.column, p.count) for p in report.problems if p.rule != "reading")


def test_cell_text_is_what_a_csv_export_holds():
    assert cell_text(None) == ""
    assert cell_text(True) == "true" and cell_text(False) == "false"
    assert cell_text(1200.0) == "1200" and cell_text(12) == "12" and cell_text(0.1) == "0.1"
    assert cell_text(1234.5678) == "1234.5678" and cell_text(2.0 ** 60) == repr(2.0 ** 60)
    assert cell_text(dt.datetime(2024, 3, 1)) == "2024-03-01"
    assert cell_text(dt.datetime(2024, 3, 1, 13, 5, 9)) == "2024-03-01 13:05:09"
    assert cell_text(dt.date(2024, 3, 1)) == "2024-03-01"
    assert cell_text("#N/A") == "#N/A" and cell_text(" padded ") == " padded "


def test_a_sheet_is_written_from_its_header_row_with_the_sheets_line_numbers(tmp_path):
    """Rows above the header (empty, or a title in one cell) and columns beside it are not written; an empty row
    inside keeps its line (so a note's line is the sheet's row when the header is in row 1); the formatted, empty
    rows at the end go."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Export"
    ws.append(["Accounts - exported 3 May"])
    ws.append([None, "account_id", "arr", "start"])          # the header: row 2, columns B..D
    ws.append([None, "A1", 1200.0, dt.datetime(2024, 1, 1)])
    ws.append([None, None, None, None])
    ws.append([None, "A2", 99.5, dt.datetime(2024, 2, 1, 8, 30)])
    for _ in range(3):
        ws.append([None, None, None, None])
    wb.save(tmp_path / "w.xlsx")
    out, header_row = sheet_to_csv(tmp_path / "w.xlsx", None, tmp_path / "w.csv")
    assert header_row == 2 and out.read_text(encoding="utf-8") == ("account_id,arr,start\nA1,1200,2024-01-01\n\n"
                                               "A2,99.5,2024-02-01 08:30:00\n")
    assert sheet_names(tmp_path / "w.xlsx") == ["Export"]
    one = Workbook()
    for v in (None, "account_id", "A1", None, "A2"):
        one.active.append([v])
    one.save(tmp_path / "one.xlsx")                       # one column: from its first row with a value
    out, header_row = sheet_to_csv(tmp_path / "one.xlsx", None, tmp_path / "one.csv")
    assert header_row == 2 and out.read_text(encoding="utf-8") == "account_id\nA1\nA2\n"
    with pytest.raises(SpreadsheetError, match=r"w.xlsx has no sheet 'Other'; its sheets: 'Export'"):
        sheet_to_csv(tmp_path / "w.xlsx", "Other", tmp_path / "x.csv")
    (tmp_path / "bad.xlsx").write_bytes(b"account_id,arr\nA1,3\n")   # a CSV file named .xlsx
    with pytest.raises(SpreadsheetError, match="cannot read bad.xlsx: not an Excel workbook"):
        sheet_names(tmp_path / "bad.xlsx")


def test_a_folder_of_workbooks_reads_as_its_csv_export(tables, tmp_path):
    """accounts, contracts and surveys as one workbook each (as Excel saves them: dates as dates, numbers
    as numbers, missing as empty cells), the other tables as CSV: the same validation report and the same
    point-in-time features as the all-CSV export."""
    ref = _csv_folder(tmp_path / "csv", tables)
    d = _csv_folder(tmp_path / "xlsx", {k: v for k, v in tables.items() if k not in AS_WORKBOOKS})
    for name in AS_WORKBOOKS:
        with pd.ExcelWriter(d / f"{name}.xlsx", engine="openpyxl") as xw:
            tables[name].to_excel(xw, sheet_name="Sheet1", index=False)
    src, want = open_source(d), open_source(ref)
    assert set(src.names) == set(want.names) and not src.unreadable
    for name in AS_WORKBOOKS:
        assert src.row_count(name) == len(tables[name])
    report = validate(src, AS_OF)
    assert report.ok, [str(p) for p in report.errors]
    assert _kept(report) == _kept(validate(want, AS_OF))
    day = [date(2026, 4, 1)]
    pd.testing.assert_frame_equal(build_snapshots(src, day), build_snapshots(want, day))
    # the data hash follows the workbook's bytes: saving it again with one value changed changes it
    before = src.data_hash
    c = tables["contracts"].copy()
    c.loc[c.index[0], "arr"] += 1
    with pd.ExcelWriter(d / "contracts.xlsx", engine="openpyxl") as xw:
        c.to_excel(xw, index=False)
    assert open_source(d).data_hash != before


def test_a_workbook_with_a_sheet_per_table_is_a_source(tables, tmp_path):
    """`--data crm.xlsx`: sheets named as the tables in a CRM's spelling ("Accounts"), a blank row inside one, a
    summary sheet that is no table: the same tables as the folder of the same CSV files, and notes that say what
    was read as what, which rows were left out and which sheets were ignored."""
    ref = _csv_folder(tmp_path / "csv", {k: tables[k] for k in ("accounts", "contracts")})
    wb = Workbook()
    wb.remove(wb.active)
    for name in ("accounts", "contracts"):
        df = tables[name]
        ws = wb.create_sheet(name.title())
        if name == "contracts":
            ws.append(["Contracts (CRM export)"])           # a title above the header
        ws.append(list(df.columns))
        for i, row in enumerate(df.itertuples(index=False)):
            ws.append([None if pd.isna(v) else (v.to_pydatetime() if isinstance(v, pd.Timestamp) else v)
                       for v in row])
            if name == "contracts" and i == 4:
                ws.append([None] * df.shape[1])            # a row left blank
                ws.append(["  "] + [None] * (df.shape[1] - 1))   # a row of spaces: a blank row to CSV readers
    wb.create_sheet("Summary").append(["ARR by segment", 123.0])
    wb.save(tmp_path / "crm.xlsx")
    src, want = open_source(tmp_path / "crm.xlsx"), open_source(ref)
    assert src.kind == "workbook" and set(src.names) == {"accounts", "contracts"}
    for name in ("accounts", "contracts"):
        key = want.frame(name).columns[0]
        pd.testing.assert_frame_equal(src.frame(name).sort_values(key).reset_index(drop=True),
                                      want.frame(name).sort_values(key).reset_index(drop=True))
    said = " | ".join(src.notes)
    assert "crm.xlsx: sheet 'Accounts' read as accounts" in said
    assert "crm.xlsx, sheet 'Contracts': the header row is the sheet's row 2" in said
    assert "crm.xlsx, sheet 'Contracts': 1 row(s) with every field empty (line 8) left out" in said
    assert "sheets that are not contract tables are ignored: 'Summary'" in said
    assert validate(src, AS_OF).ok


def test_spreadsheets_that_are_not_read_are_named_with_what_to_do(tables, tmp_path):
    """An .xls and an .ods export, a file named .xlsx that is not one, a workbook whose only sheet is empty,
    and a workbook of several sheets (the one named as the table is read, and a note says so): each table's
    error names its file and what to save it as; `validate` exits 2 with them and no traceback; a workbook of
    another format given as the source is refused with the same advice."""
    d = _csv_folder(tmp_path / "d", {k: v for k, v in tables.items()
                                     if k not in ("accounts", "tickets", "surveys", "usage", "contracts")})
    (d / "accounts.xls").write_bytes(b"\xd0\xcf\x11\xe0 an OLE file")
    (d / "tickets.ods").write_bytes(b"PK not really")
    (d / "surveys.xlsx").write_text("account_id,score\n")
    Workbook().save(d / "usage.xlsx")                                   # one empty sheet
    wb = Workbook()
    wb.active.title = "Read me"
    wb.active.append(["this export was made on Monday"])
    ws = wb.create_sheet("Contracts")
    ws.append(list(tables["contracts"].columns))
    wb.save(d / "contracts.xlsx")
    src = open_source(d)
    assert "save it as an Excel workbook (.xlsx) or as CSV UTF-8 (accounts.csv)" in src.unreadable["accounts"]
    assert src.unreadable["tickets"].startswith("tickets.ods is a .ods spreadsheet, which csforecast does not read")
    assert src.unreadable["surveys"].startswith("cannot read surveys.xlsx: not an Excel workbook")
    assert src.unreadable["usage"] == "usage.xlsx: sheet 'Sheet' is empty (not even a header row)"
    assert "contracts.xlsx: reading its sheet 'Contracts' (named as the table of 2: 'Read me', 'Contracts')" \
        in src.notes
    assert src.row_count("contracts") == 0
    serial = Workbook()                        # dates in a column formatted as numbers: Excel's day numbers
    serial.active.append(["account_id", "name", "segment", "created_at"])
    serial.active.append(["A1", "Acme", "SMB", 45292])
    serial.active.append(["A2", "Beta", "SMB", 45293.5])
    serial.active.append(["A3", "Gamma", "SMB", 12000])              # no day number read as a date (1932)
    serial.save(d / "accounts.xlsx")
    report = validate(accounts := open_source(d), AS_OF)
    [warned] = [p for p in report.warnings if (p.table, p.column, p.rule) == ("accounts", "created_at",
                                                                               "spreadsheet_days")]
    assert warned.count == 2 and "numbers of days spreadsheets count (45292 is 2024-01-01" in warned.message
    msg = next(p.message for p in report.errors if (p.table, p.column, p.rule) == ("accounts", "created_at", "type"))
    assert "outside 29221–73050" in msg, msg
    got = accounts.frame("accounts").set_index("account_id").created_at
    assert [None if pd.isna(v) else pd.Timestamp(v).date() for v in got[["A1", "A2", "A3"]]] == [
        date(2024, 1, 1), date(2024, 1, 2), None]
    (d / "accounts.xlsx").unlink()
    run = subprocess.run([*CLI, "validate", "--data", str(d)], capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr + run.stdout
    assert "accounts.xls is a .xls spreadsheet" in run.stdout + run.stderr
    with pytest.raises(SourceError, match=r"old.ods is a .ods spreadsheet.*\(old.csv\)"):
        (tmp_path / "old.ods").write_bytes(b"x")
        open_source(tmp_path / "old.ods")
    with pytest.raises(SourceError, match="cannot read broken.xlsx: not an Excel workbook"):
        (tmp_path / "broken.xlsx").write_bytes(b"x")
        open_source(tmp_path / "broken.xlsx")


def test_a_workbook_opened_again_is_copied_from_the_state_homes_cache(tables, tmp_path, isolated_home, monkeypatch):
    """`serve` and `score` open the source `train` opened: with a state home, each sheet's CSV copy is kept
    (CSFORECAST_HOME/cache/sheets/) under the workbook's bytes, so opening it again reads no cell; the same
    tables and notes come back, and a workbook saved again with a value changed is read again."""
    import csforecast.data.sources as sources

    d = _csv_folder(tmp_path / "xlsx", {k: v for k, v in tables.items() if k not in AS_WORKBOOKS})
    for name in AS_WORKBOOKS:
        with pd.ExcelWriter(d / f"{name}.xlsx", engine="openpyxl") as xw:
            pd.DataFrame([[f"{name} (exported 3 May)"]]).to_excel(xw, index=False, header=False)  # a title row
            tables[name].to_excel(xw, index=False, startrow=2)
    first = open_source(d)
    kept = sorted((isolated_home / "cache" / "sheets").glob("*.json"))
    assert len(kept) == len(AS_WORKBOOKS)

    def no_cells(*args):
        raise AssertionError("a kept sheet was read again")
    monkeypatch.setattr(sources, "sheet_to_csv", no_cells)
    again = open_source(d)
    assert again.notes == first.notes and again.data_hash == first.data_hash
    for name in AS_WORKBOOKS:
        pd.testing.assert_frame_equal(again.frame(name), first.frame(name))
    assert any("contracts.xlsx: the header row is the sheet's row 3" in n for n in again.notes)
    monkeypatch.undo()

    c = tables["contracts"].copy()
    c.loc[c.index[0], "arr"] = 123456.0
    with pd.ExcelWriter(d / "contracts.xlsx", engine="openpyxl") as xw:
        c.to_excel(xw, index=False)
    changed = open_source(d).frame("contracts")
    assert changed.loc[changed.contract_id == c.contract_id.iloc[0], "arr"].item() == 123456.0
    assert len(list((isolated_home / "cache" / "sheets").glob("*.json"))) == len(AS_WORKBOOKS) + 1
