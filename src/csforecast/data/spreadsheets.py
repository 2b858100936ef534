"""Excel workbooks as the CSV text every reader already takes (docs/data-contract.md, "Spreadsheets").

A CS Ops export is often a workbook: one per table (``accounts.xlsx`` beside ``contracts.csv``), or one workbook
with a sheet per table (``--data crm.xlsx``). A sheet is written out as a UTF-8 CSV file of its cells as text
(:func:`sheet_to_csv`) and read from there like any CSV, so every value is typed by ``parse.read_as`` on either
engine and a sheet reads as its "CSV UTF-8" export would. Only the values Excel saved are read (a formula's last
computed value), never the formulas.

Pure file work: nothing here opens a connection or knows the contract's tables (``sources`` does).
"""
from __future__ import annotations

import csv
import datetime as dt
import math
import zipfile
from pathlib import Path

from csforecast.errors import InputError

__all__ = ["WORKBOOK_SUFFIXES", "OTHER_SPREADSHEET_SUFFIXES", "SpreadsheetError", "is_workbook",
           "is_other_spreadsheet", "sheet_names", "sheet_to_csv", "cell_text", "not_read_advice"]

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")   # Office Open XML workbooks: read
# spreadsheets in other formats: named, with what to save them as, never read as something else
OTHER_SPREADSHEET_SUFFIXES = (".xls", ".xlsb", ".ods", ".numbers")


class SpreadsheetError(InputError, ValueError):
    """A workbook that cannot be read (not a workbook after all, damaged, protected); the message names it."""


def is_workbook(p: Path) -> bool:
    """Whether ``p`` is named as a workbook csforecast reads (``WORKBOOK_SUFFIXES``, any case)."""
    return p.suffix.lower() in WORKBOOK_SUFFIXES and len(p.stem) > 0


def is_other_spreadsheet(p: Path) -> bool:
    """Whether ``p`` is named as a spreadsheet in a format csforecast does not read (``.xls``, ``.ods``, ...)."""
    return p.suffix.lower() in OTHER_SPREADSHEET_SUFFIXES and len(p.stem) > 0


def not_read_advice(p: Path) -> str:
    """Why ``p`` (an :func:`is_other_spreadsheet` file) is not read, and what to save it as."""
    return (f"{p.name} is a {p.suffix.lower()} spreadsheet, which csforecast does not read: save it as an Excel "
            f"workbook (.xlsx) or as CSV UTF-8 ({p.stem}.csv)")


def _open(path: Path):
    from openpyxl import load_workbook

    try:
        # read_only streams the rows (a sheet of a million rows is not held as cell objects); data_only gives the
        # value Excel saved for a formula, not the formula's text
        return load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as e:
        why = "not an Excel workbook (.xlsx), or damaged" if isinstance(e, (zipfile.BadZipFile, KeyError)) \
            else str(e).splitlines()[0][:200] if str(e).strip() else type(e).__name__
        if path.stat().st_size == 0:
            why = "an empty file"
        raise SpreadsheetError(f"cannot read {path.name}: {why} (a password-protected workbook must be saved "
                               "without its password)") from e


def sheet_names(path: Path) -> list[str]:
    """The names of a workbook's worksheets, in the workbook's order (chart sheets left out).

    Raises
    ------
    SpreadsheetError
        ``path`` is not a readable workbook (names the file and why).
    """
    wb = _open(path)
    try:
        return list(wb.sheetnames)
    finally:
        wb.close()


def cell_text(value) -> str:
    """A cell's value as the text a CSV export of it would hold, for ``parse.read_as`` to type.

    Empty cells are ``""``; a date (a cell with a date format) ``YYYY-MM-DD``, with ``HH:MM:SS`` when it has a
    time of day; a whole number without a decimal point (``1200``, not ``1200.0``), any other number as the
    shortest text that reads back as it (``0.1``); TRUE / FALSE as ``true`` / ``false``; text as it is (an error
    value such as ``#N/A`` is its text, which the typing then reports where a number or date was due)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value.total_seconds() / 86400)   # a duration cell: days, as Excel counts them
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 2 ** 53:
            return str(int(value))
        return repr(value)
    return str(value)


def sheet_to_csv(path: Path, sheet: str | None, out: Path) -> tuple[Path, int]:
    """One worksheet of the workbook ``path`` written to ``out`` as a UTF-8 CSV file of :func:`cell_text` values.

    The header row is the sheet's first row with two or more values: the rows above it (empty, or a title such as
    "Accounts - exported 3 May" in one cell) are left out. Its columns run from its first to its last non-empty
    cell, and cells outside them are not written. A wholly empty row below the header is written as an empty
    line, so the CSV's line numbers are the sheet's row numbers when the header is in row 1 (readers skip empty
    lines); trailing empty rows (a formatted but unused range) are left out. A sheet with no row of two values is
    written from its first row with one. ``sheet=None`` is the first worksheet.

    Returns
    -------
    out : Path
    header_row : int
        The sheet's row (from 1) the header was taken from; 0 when the sheet holds no value.

    Raises
    ------
    SpreadsheetError
        ``path`` is not a readable workbook, or has no sheet ``sheet`` (names the sheets it has).
    """
    wb = _open(path)
    try:
        names = list(wb.sheetnames)
        if sheet is None:
            sheet = names[0] if names else None
        if sheet not in names:
            raise SpreadsheetError(f"{path.name} has no sheet {sheet!r}; its sheets: {', '.join(map(repr, names))}")
        rows = wb[sheet].iter_rows(values_only=True)
        first = last = None
        header_row, above = 0, []           # above: (row, its one value) of the rows above the header
        pending_empty = 0
        with open(out, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            for number, row in enumerate(rows, start=1):
                texts = [cell_text(v) for v in row]
                if first is None:
                    used = [i for i, t in enumerate(texts) if t.strip()]
                    if len(used) < 2:
                        above += [(number, texts[used[0]])] if used else []
                        continue                       # above the header: not written
                    first, last, header_row = used[0], used[-1], number
                    writer.writerow(texts[first:last + 1])
                    continue
                cells = texts[first:last + 1]
                cells += [""] * (last + 1 - first - len(cells))
                if not any(cells):
                    pending_empty += 1                 # written only if a row with values follows
                    continue
                fh.write("\n" * pending_empty)
                pending_empty = 0
                writer.writerow(cells)
            if first is None and above:    # no row of two values: one column, from its first row with a value
                header_row = above[0][0]
                writer.writerows([v] for _, v in above)
    except SpreadsheetError:
        raise
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as e:   # a damaged sheet part
        raise SpreadsheetError(f"cannot read sheet {sheet!r} of {path.name}: "
                               f"{str(e).splitlines()[0][:200] if str(e).strip() else type(e).__name__}") from e
    finally:
        wb.close()
    return out, header_row
