"""Open a data source as Ibis tables. The only module that opens a connection to data.

Kinds of source (docs/data-contract.md says how to point at each):
- a folder with one file per table: `accounts.csv` (or gzip-compressed, `accounts.csv.gz`),
  `accounts.parquet` or `accounts.xlsx` (an Excel workbook, `data/spreadsheets.py`), or a folder `accounts/` of
  Parquet or CSV part files (as Spark or a warehouse unload writes them, with or without a suffix);
- an Excel workbook with a sheet per table (`crm.xlsx`; DuckDB engine);
- a DuckDB database file (`.duckdb`, `.ddb`, `.db`) or a `duckdb:///path/to/file.duckdb` URL;
- any other database URL that Ibis can open, e.g. `postgres://user@host:5432/dbname` (PostgreSQL).

Where the computing happens (the engine, `open_source(engine=)`):
- "duckdb" (the default): an in-process DuckDB engine owned by the source. Folders are read by it in place
  (CSV files as text, so that every value is typed by one rule, `parse.read_as`, which validation shares); a
  DuckDB file is attached to it read-only; the tables of any other database are read once through Ibis (only
  the contract's columns) into it. Features, validation and frames therefore run the same SQL on the same
  engine whatever the source kind, which is why every kind gives identical features and validation reports.
- "spark": a Spark session (`spark_session`: the active one, e.g. under spark-submit or on Databricks, else
  one built from the `[spark]` settings). A folder is read by Spark in place (Parquet files or folders of
  Parquet part files; CSV as text), and `spark://DATABASE` names a database of the session's catalog whose
  contract tables are read where they are. The same Ibis expressions then run on Spark (Ibis's pyspark
  backend); docs/scaling.md says what runs where.

Reading settings (csforecast.toml `[column_map.TABLE]`): `our_name = "their_name"` renames a column, and the
reserved key `date_format = "%d/%m/%Y"` declares how the table writes its dates (strftime codes), and
`number_format = "1.234,56"` how it writes numbers as text (the number 1234.56 its way; see `parse.read_as`).
"""
from __future__ import annotations

import atexit
import codecs
import gzip
import hashlib
import io
import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import ibis
import pandas as pd

from csforecast.config import get_settings
from csforecast.data.contract import MONTHS_PER_YEAR, TABLES, UNASSIGNED
from csforecast.data.parse import (date_formats, number_marks, read_as, respelled, rewritten, spells_a_level,
                                   squashed, trimmed)
from csforecast.data.spreadsheets import (SpreadsheetError, is_other_spreadsheet, is_workbook, not_read_advice,
                                           sheet_names, sheet_to_csv)
from csforecast.data.successors import inferred_successors, with_successors
from csforecast.diskcache import DiskCache, code_digest, key_digest

DATE_FORMAT_KEY = "date_format"  # reserved key of [column_map.TABLE]: the table's date format
NUMBER_FORMAT_KEY = "number_format"  # reserved key: how the table writes numbers as text (parse.number_marks)
REPEATED_ROWS_KEY = "repeated_rows"  # reserved key: what rows repeated exactly are ("error", the default, or ...)
READ_ONCE = "read_once"              # ... one row exported more than once: each is read once
MISSING_SUCCESSORS_KEY = "missing_successors"  # reserved key (contracts): what an empty renewed_by is when some
INFER = "infer"                      # contracts have one: "churn" (the default: no successor), or INFER (the
                                     # successor by the dates, data.successors, where nothing else names it)
RESERVED_KEYS = (DATE_FORMAT_KEY, NUMBER_FORMAT_KEY, REPEATED_ROWS_KEY, MISSING_SUCCESSORS_KEY)
EVERY_TABLE = "all"              # [column_map.all]: entries for every table (a table's own entry wins)
DUCKDB_SUFFIXES = (".duckdb", ".ddb", ".db")
# a delimited text file, as it is or gzip-compressed (both engines read either; the delimiter is the header line's
# most frequent of , ; tab |): what exports call CSV, tab-separated values and Excel's "Text (Tab delimited)"
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz")
_TEXT_KINDS = tuple(dict.fromkeys(x.removesuffix(".gz") for x in CSV_SUFFIXES))
_ATTACHED = "src"                # the catalog name a DuckDB database file is attached under
ENGINES = ("duckdb", "spark")
SPARK_SCHEME = "spark"           # spark://DATABASE: the contract tables of a database in the Spark catalog
# what every Spark session we build is given (settings may add to them, never remove them):
# pandas writes Parquet timestamps in nanoseconds, which Spark reads only as integers (converted back by
# _spark_parquet); dates are UTC days, as on DuckDB
SPARK_REQUIRED = {"spark.sql.session.timeZone": "UTC", "spark.sql.legacy.parquet.nanosAsLong": "true"}
# defaults for a session we build in local mode: no web UI or console progress bars, loopback only
SPARK_LOCAL_DEFAULTS = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
                        "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
                        "spark.sql.shuffle.partitions": "8", "spark.sql.execution.arrow.pyspark.enabled": "true"}


def dropped_references(name: str) -> dict[str, tuple[str, str]]:
    """The references of table `name` whose rows are left out when they name nothing: column -> (table, column)
    it names.

    Every optional table's account_id names an account (rows of an account `accounts` does not have come from an
    export taken at another moment, or a deleted account); forecast_calls.contract_id names a contract (a call on
    a renewal not yet booked in `contracts`). A required table's broken reference is an error instead, never
    dropped (validation's `foreign_key`)."""
    spec = TABLES.get(name)
    if spec is None or spec.required:
        return {}
    refs = {"account_id": ("accounts", "account_id")} if "account_id" in spec.column_names else {}
    if name == "forecast_calls":
        refs["contract_id"] = ("contracts", "contract_id")
    return refs


def _completed_accounts(accounts: ibis.Table, contracts: ibis.Table | None) -> ibis.Table:
    """`accounts` with the documented fallbacks for its nullable columns that the pipeline groups or dates by:
    no segment is the segment ``UNASSIGNED`` (validation: `no_segment`), no created_at is the start of the
    account's first contract (`no_created_at`; pass `contracts` only when some account has no created_at, so
    that a clean source's accounts are read as found, in their order)."""
    t = accounts.mutate(segment=accounts.segment.fill_null(UNASSIGNED))
    if contracts is None:
        return t
    first = contracts.group_by(first_id=contracts.account_id).aggregate(first_start=contracts.start_date.min())
    j = t.left_join(first, t.account_id == first.first_id)
    return j.select(**{c: (j.created_at.coalesce(j.first_start) if c == "created_at" else j[c]) for c in t.columns})


class SourceError(Exception):
    """The source cannot be opened at all (no such folder or database, a bad connection, bad settings)."""


@dataclass(frozen=True)
class TableReading:
    """How to read one table: our column name -> the source's, how its dates and its text numbers are written,
    and which of our columns the source writes per month (`Column.per_month`: read as MONTHS_PER_YEAR times the
    value), whether rows repeated exactly are one row exported more than once (``repeated_rows``: READ_ONCE;
    else an error), and whether an empty renewed_by is filled from the dates when other contracts have one
    (``missing_successors``: INFER; else it means no successor)."""
    rename: dict[str, str] = field(default_factory=dict)
    date_format: str | None = None
    per_month: tuple[str, ...] = ()
    number_format: str | None = None
    repeated_rows: str | None = None
    missing_successors: str | None = None


def reading_plan(column_map: dict[str, dict[str, str]] | None) -> dict[str, TableReading]:
    """Split `[column_map.TABLE]` settings into renames and the reserved keys (`date_format`, `number_format`,
    `repeated_rows`).
    The entries of `[column_map.all]` (``EVERY_TABLE``) apply to every table that has the column (a format: to
    every table), unless the table's own entry says otherwise; the plan keeps it as written under ``EVERY_TABLE`` too,
    for validation to name a rename that no table has a column for.

    Raises SourceError when an entry is not a string (e.g. a TOML number or table), a number_format is not
    one (:func:`parse.number_marks`), repeated_rows is neither "error" nor "read_once", or missing_successors
    neither "churn" nor "infer"."""
    plan: dict[str, TableReading] = {}
    for table, mapping in (column_map or {}).items():
        if not isinstance(mapping, dict):
            raise SourceError(f"column_map.{table} must be a table of our_name = \"their_name\" entries")
        for k, v in mapping.items():
            if not isinstance(v, str) or not v:
                raise SourceError(f"column_map.{table}.{k} must be a non-empty string, not {v!r}")
        if NUMBER_FORMAT_KEY in mapping:
            try:
                number_marks(mapping[NUMBER_FORMAT_KEY])
            except ValueError as e:
                raise SourceError(f"column_map.{table}.{e}") from None
        repeated = mapping.get(REPEATED_ROWS_KEY)
        if repeated not in (None, "error", READ_ONCE):
            raise SourceError(f"column_map.{table}.{REPEATED_ROWS_KEY} must be \"{READ_ONCE}\" (rows repeated exactly "
                              f"are read once) or \"error\" (the default), not {repeated!r}")
        missing = mapping.get(MISSING_SUCCESSORS_KEY)
        if missing not in (None, "churn", INFER):
            raise SourceError(f"column_map.{table}.{MISSING_SUCCESSORS_KEY} must be \"{INFER}\" (an empty renewed_by "
                              f"is the successor by the dates) or \"churn\" (the default), not {missing!r}")
        rename = {k: v for k, v in mapping.items() if k not in RESERVED_KEYS}
        plan[table] = TableReading(rename, mapping.get(DATE_FORMAT_KEY),
                                   number_format=mapping.get(NUMBER_FORMAT_KEY),
                                   repeated_rows=READ_ONCE if repeated == READ_ONCE else None,
                                   missing_successors=INFER if missing == INFER else None)
    every = plan.get(EVERY_TABLE)
    if every is not None:   # e.g. one date format for a whole export, account_id = "Account Number" everywhere
        for name, spec in TABLES.items():
            own = plan.get(name, TableReading())
            shared = {k: v for k, v in every.rename.items() if k in spec.names_read}
            plan[name] = TableReading({**shared, **own.rename}, own.date_format or every.date_format,
                                      number_format=own.number_format or every.number_format,
                                      repeated_rows=own.repeated_rows or every.repeated_rows,
                                      missing_successors=own.missing_successors or every.missing_successors)
    return plan


def redact(location: str) -> str:
    """A location fit to print and record: a URL's password replaced by ***."""
    if "://" not in location:
        return location
    parts = urlsplit(location)
    if parts.password is None:
        return location
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def spelled_as(ours: list[str], theirs: list[str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Which of `theirs` is each of `ours` that `theirs` does not have as it is: the one name of `theirs` equal to
    it once :func:`squashed` (and not itself one of `ours`).

    Returns (ours -> theirs, for the names with exactly one such match; ours -> the matches, for the names with
    several, which are left unmatched: the source must say which, with a column_map). Pure."""
    taken = set(theirs) & set(ours)
    found, several = {}, {}
    for name in ours:
        if name in theirs:
            continue
        cands = [t for t in theirs if t not in taken and squashed(t) == squashed(name)]
        if len(cands) == 1:
            found[name] = cands[0]
        elif cands:
            several[name] = cands
    return found, several


def _table_reading(name: str, columns: list[str], r: TableReading | None) -> tuple[TableReading, list[str]]:
    """How table `name`, with the source's `columns`, is read as ours: its column_map `r`, then the contract's
    names spelled the source's way (:func:`_spelled_reading`), then columns written per month
    (:func:`_per_month_reading`); and the notes that say so."""
    spelled, said = _spelled_reading(name, columns, r)
    reading, said_per_month = _per_month_reading(name, columns, spelled)
    return reading, said + said_per_month


def _spelled_reading(name: str, columns: list[str], r: TableReading | None) -> tuple[TableReading, list[str]]:
    """`r` (the table's column_map) with a rename added for each contract column the source spells its own way
    (:func:`spelled_as`; a column_map entry wins), and a note saying what was read as what."""
    r = r or TableReading()
    spec = TABLES[name]
    mapped = set(r.rename) | set(r.rename.values())
    ours = [c for c in spec.column_names if c not in mapped]
    found, several = spelled_as(ours, [c for c in columns if c not in mapped])
    notes = []
    if found:
        notes.append(f"{name}: " + ", ".join(f"column '{t}' read as {o}" for o, t in found.items()) +
                     " (the contract's names, spelled another way; a column_map entry would choose otherwise)")
    for o, cands in several.items():
        notes.append(f"{name}: columns {' and '.join(repr(c) for c in cands)} could each be {o}; neither is read "
                     f"as it: name the one in column_map.{name}.{o}")
    return replace(r, rename={**r.rename, **found}), notes


def _per_month_reading(name: str, columns: list[str], r: TableReading) -> tuple[TableReading, list[str]]:
    """`r` read for our columns of table `name` the source writes per month (`Column.per_month`): each one the
    source does not have (as it is, spelled or mapped) but whose per-month name it has (mapped, as it is, or
    spelled another way) is renamed from that column and listed in ``per_month``; the per-month name's own
    column_map entry is taken out. And a note per column. Pure: `r` is not changed."""
    per_month, notes = [], []
    rename = dict(r.rename)
    mapped = set(rename.values())
    for c in TABLES[name].columns:
        if not c.per_month:
            continue
        theirs = rename.pop(c.per_month, None)
        if c.name in rename or c.name in columns:
            if theirs is not None:
                notes.append(f"{name}: column_map.{name}.{c.per_month} not used: the source has {c.name}")
            continue
        if theirs is not None and theirs not in columns:
            notes.append(f"{name}: column_map.{name}.{c.per_month} names '{theirs}', which is not there")
        elif theirs is None:
            found, _ = spelled_as([c.per_month], [x for x in columns if x not in mapped])
            theirs = c.per_month if c.per_month in columns else found.get(c.per_month)
        if theirs is not None and theirs in columns:
            rename[c.name] = theirs
            per_month.append(c.name)
            notes.append(f"{name}: no {c.name} column; '{theirs}' read as {c.name} per month ({c.per_month}): "
                         f"{c.name} = {MONTHS_PER_YEAR} × '{theirs}'")
    return replace(r, rename=rename, per_month=tuple(per_month)), notes


def _contract_tables(present) -> tuple[dict[str, str], list[str]]:
    """Contract table name -> the name a database (or a folder's file stems) has it under: as it is, else spelled
    another way (:func:`spelled_as`: "Accounts", "FORECAST_CALLS"); and a note per table read under another
    name or left unread for having several."""
    present = sorted(set(present))
    found, several = spelled_as(list(TABLES), present)
    names = {n: found.get(n, n) for n in TABLES if n in present or n in found}
    notes = [f"table '{t}' read as {o}" for o, t in found.items()]
    notes += [f"{' and '.join(repr(c) for c in cands)} could each be the {o} table; neither is read"
              for o, cands in several.items()]
    return names, notes


@dataclass(frozen=True)
class SourceFindings:
    """What a source's data asks of :meth:`Source.table` beyond the contract's types: validation's findings, built
    whole from its report (`Source.use_findings`). A field left None is not known yet: it is found by one query
    when the table it concerns is first read, so a source read without validation reads the same rows.

    unreferenced: the (table, column) pairs among :func:`dropped_references` with rows that name nothing (rule
        ``unknown_account`` / ``unknown_contract``): those rows are left out.
    padded_text: the (table, column) pairs of text with surrounding spaces, only spaces (``padded_text``) or a
        client's NULL (``null_text``): those columns are trimmed and read as ``parse.read_as`` does (only those:
        trimming every ID of a large usage table costs ~40 % of building the features, benchmarks/RESULTS.md,
        "tenth session").
    spelled_levels: the (table, column) pairs of levels written another way (``spelled_levels``) or of names
        written otherwise than in one spelling (``respelled_names``): those columns read them as the levels, or
        in one spelling (only those: squashing every value of a clean column costs ~5 % of reading a
        source, benchmarks/RESULTS.md, "twelfth session").
    repeated_rows: the tables with a key (``TableSpec.key``) that hold rows repeated exactly and declare them read
        once (``repeated_rows = "read_once"``; rule ``repeated_rows``): each is read once.
    successors_inferred: no contract has renewed_by (``renewals_inferred``): the links are read from the dates.
    undated_accounts: some account has no created_at (``no_created_at``): it is dated from its first contract.
    """
    unreferenced: frozenset[tuple[str, str]] | None = None
    padded_text: frozenset[tuple[str, str]] | None = None
    spelled_levels: frozenset[tuple[str, str]] | None = None
    repeated_rows: frozenset[str] | None = None
    successors_inferred: bool | None = None
    undated_accounts: bool | None = None


@dataclass
class Source:
    """An opened source: the contract's tables as found (columns renamed to ours) on the source's engine.

    location: where it is (a URL's password redacted); kind: "folder", "duckdb" or the URL scheme.
    raw: table name -> the table as found; unreadable: table name -> why its file could not be read;
    notes: what the reader noticed and chose (e.g. two files for one table); reading: per-table settings;
    uncopied: table name -> the source's columns not read into the engine (a database's other than the
    contract's), for messages that list what a column_map entry could name.
    """
    location: str
    con: object
    raw: dict[str, ibis.Table]
    files: list[Path] = field(default_factory=list)
    kind: str = "folder"
    engine: str = "duckdb"
    reading: dict[str, TableReading] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    uncopied: dict[str, list[str]] = field(default_factory=dict)
    _hash: str | None = None
    _counts: dict[str, int] = field(default_factory=dict)
    findings: SourceFindings = field(default_factory=lambda: SourceFindings())   # what `table` reads with
    _typed: dict[str, ibis.Table] = field(default_factory=dict)
    _found: dict[str, ibis.Table] = field(default_factory=dict)
    _spellings: dict[str, dict[str, dict[str, tuple[str, int]]]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.raw)

    def row_count(self, name: str) -> int:
        """Rows of a table as found (0 when the source has no such table)."""
        if name not in self.raw:
            return 0
        if name not in self._counts:
            self._counts[name] = int(self.raw[name].count().to_pyarrow().as_py())
        return self._counts[name]

    def has(self, name: str) -> bool:
        """The source has this table with at least one row as the pipeline reads it (:meth:`table`). An empty
        optional table counts as absent: validation warns about it, and features and health go without it; so
        does one whose every row is left out (rows of unknown accounts, usage rows without a value, survey
        responses without a score: validation warns about those rows)."""
        if name not in self.raw or self.row_count(name) == 0:
            return False
        if not self._may_leave_out(name):
            return True
        key = f"{name}\0kept"
        if key not in self._counts:
            self._counts[key] = int(self.table(name).count().to_pyarrow().as_py())
        return self._counts[key] > 0

    def _may_leave_out(self, name: str) -> bool:
        """Whether :meth:`table` may leave out rows of table ``name`` (a column the contract leaves out when blank,
        or references to rows the source does not have); a repeated row read once never empties a table."""
        spec = TABLES.get(name)
        if spec is not None and any(c.left_out for c in spec.columns):
            return True
        return bool(dropped_references(name)) and bool(self._columns_found("unreferenced", name,
                                                                           self._unreferenced_columns))

    def date_format(self, name: str) -> str | None:
        r = self.reading.get(name)
        return r.date_format if r else None

    def number_format(self, name: str) -> str | None:
        r = self.reading.get(name)
        return r.number_format if r else None

    def table(self, name: str) -> ibis.Table:
        """The table as the pipeline reads it: the contract's columns and types (`as_found`), without the rows
        of an optional table that name nothing (:func:`dropped_references`).

        Rows of an optional table whose account_id is not in `accounts` (an export taken at another moment than
        the accounts table, a deleted account's tickets) are left out: validation warns about them
        (`unknown_account`) and every consumer reads the same rows; so are forecast calls on a contract that
        `contracts` does not have (`unknown_contract`). The filter is added only to the tables that have such
        rows (as validation found, `use_findings`; else counted here on first read), so a clean source's
        expressions are its tables as found.

        A table with a key whose rows are repeated exactly (every column read the same) and that declares
        `repeated_rows = "read_once"` reads each once (validation warns, `repeated_rows`); undeclared, or rows of
        one key that differ, they are validation's error (`duplicate_key`).

        Rows without a value that the contract leaves out (`Column.left_out`: a usage row without a value, a
        survey response without a score) are left out; validation warns (`left_out`).

        In `contracts` with no `renewed_by` at all (an export without successor links), renewed_by is filled
        from the dates (:mod:`csforecast.data.successors`; validation warns, `renewals_inferred`); with some, an
        empty one is filled from the dates, by the same rule, only where the table declares
        `missing_successors = "infer"` (validation warns, `successors_filled`). In `accounts`,
        an account with no segment or no created_at gets the documented fallback (:func:`_completed_accounts`).
        """
        if name not in self._typed:
            t = self.as_found(name)
            if self._repeats(name):
                t = t.distinct()
            infer = self.reading.get(name, TableReading()).missing_successors == INFER
            if name == "contracts" and (infer or self._known("successors_inferred", self._no_renewed_by)):
                t = with_successors(t, inferred_successors(t))     # fills an empty renewed_by only
            if name == "accounts":
                undated = "contracts" in self.raw and self._known("undated_accounts", self._any_undated_account)
                t = _completed_accounts(t, self.as_found("contracts") if undated else None)
            spec = TABLES.get(name)
            for column in [c.name for c in spec.columns if c.left_out] if spec else []:
                t = t.filter(t[column].notnull())    # a blank measurement is no measurement (Column.left_out)
            unreferenced = self._columns_found("unreferenced", name, self._unreferenced_columns)
            for column, (target, target_column) in dropped_references(name).items():
                if column in unreferenced:
                    t = t.semi_join(self.as_found(target).select(**{column: target_column}), column)
            self._typed[name] = t
        return self._typed[name]

    def as_found(self, name: str) -> ibis.Table:
        """The table in the contract's columns and types, every row. A value that cannot be read is NULL
        (validation reports it first); an optional column the source does not have is all NULL."""
        if name not in self._found:
            t = self.raw[name]
            spec = TABLES.get(name)
            if spec is not None:
                fmt = self.date_format(name)
                trim = self._columns_found("padded_text", name, self._padded_columns)
                spelled = self._columns_found("spelled_levels", name, self._spelled_columns)
                monthly = self.reading[name].per_month if name in self.reading else ()
                numbers = self.number_format(name)

                def read(c):
                    if c.name not in t.columns:
                        return read_as(ibis.null(), c.type)
                    x = read_as(t[c.name], c.type, fmt, trim=c.name in trim,
                                levels=c.levels if c.name in spelled else (), number_format=numbers,
                                respell=c.one_spelling and c.name in spelled)
                    return x * MONTHS_PER_YEAR if c.name in monthly else x

                t = t.select(**{c.name: read(c) for c in spec.columns})
                self._spellings[name] = _group_spellings(t, [c.name for c in spec.columns if c.one_group])
                respelled_groups = {c: {v: w for v, (w, _) in m.items() if v != w}
                                    for c, m in self._spellings[name].items()}
                if any(respelled_groups.values()):
                    t = t.mutate(**{c: t[c].substitute(m) for c, m in respelled_groups.items() if m})
            self._found[name] = t
        return self._found[name]

    def group_spellings(self, name: str) -> dict[str, dict[str, tuple[str, int]]]:
        """How table ``name``'s columns of groups (``Column.one_group``: segment, region, industry) are read: {column:
        {spelling as found: (spelling read, rows)}} for every value written several ways (case, spaces and
        punctuation aside: "SMB", "Smb", "smb "), all read as the spelling most rows have (ties: the first in sort
        order), so that a group written two ways is one group in every figure. Found by one query when the table is
        first read; {} when no value is written several ways."""
        if name not in self.raw:
            return {}
        self.as_found(name)
        return self._spellings.get(name, {})

    def _columns_found(self, finding: str, name: str, query) -> frozenset[str]:
        """The columns of table `name` in `finding` (a set of (table, column) pairs): as validation found, else
        `query(name)`, one query on first read (`as_found` keeps its expression)."""
        known = getattr(self.findings, finding)
        return query(name) if known is None else frozenset(c for t, c in known if t == name)

    def _spelled_columns(self, name: str) -> frozenset[str]:
        """The columns of levels of a table that hold a level written another way, and its columns of names read in
        one spelling that hold a name written another way (one query; validation's finding
        `SourceFindings.spelled_levels` saves it)."""
        t, spec = self.raw[name], TABLES[name]
        fmt = self.date_format(name)
        cols = [c for c in spec.columns if (c.levels or c.one_spelling) and c.name in t.columns]
        if not cols:
            return frozenset()

        def spelled(c):
            x = read_as(t[c.name], c.type, fmt)
            return (spells_a_level(x, c.levels) if c.levels else respelled(x)).any()

        found = t.aggregate(**{c.name: spelled(c) for c in cols}).to_pyarrow()
        return frozenset(c.name for c in cols if found.column(c.name)[0].as_py())

    def _padded_columns(self, name: str) -> frozenset[str]:
        """The contract's text columns of a table that hold any :func:`parse.rewritten` value (one query;
        validation's finding `SourceFindings.padded_text` saves it)."""
        t, spec = self.raw[name], TABLES[name]
        text = [c.name for c in spec.columns if c.type == "string" and c.name in t.columns
                and t[c.name].type().is_string()]
        if not text:
            return frozenset()
        found = t.aggregate(**{c: rewritten(t[c]).any() for c in text}).to_pyarrow()
        return frozenset(c for c in text if found.column(c)[0].as_py())

    def unreferenced(self, name: str, column: str, target: str, target_column: str) -> ibis.Table | None:
        """The rows of table `name` whose `column` names no `target_column` of table `target` (e.g. usage rows of
        an account_id that `accounts` does not have); None when the rule does not apply (a column or table the
        source does not have: validation reports that instead)."""
        if (name not in self.raw or column not in self.raw[name].columns or target not in self.raw
                or target_column not in self.raw[target].columns):
            return None
        t = self.as_found(name)
        return t.filter(t[column].notnull()).anti_join(self.as_found(target).select(**{column: target_column}),
                                                       column)

    def use_findings(self, findings: SourceFindings) -> None:
        """Read the tables with validation's `findings` (saves `table` the queries that would find them: an
        anti-join per reference and a scan of every text column, full scans of a warehouse's usage). Published
        with one assignment; the tables' expressions are built again only when a finding changed."""
        if findings == self.findings:    # validation's pass already told us (validate() tells again for a kept report)
            return
        if (findings.padded_text, findings.spelled_levels) != (self.findings.padded_text, self.findings.spelled_levels):
            self._found.clear()
        self._typed.clear()
        self.findings = findings

    def _known(self, finding: str, query) -> bool:
        """Whether `finding` (a yes or no) holds: as validation found, else `query()`, run once when the table is
        first read (`as_found` and `table` keep their expressions)."""
        known = getattr(self.findings, finding)
        return bool(query()) if known is None else known

    def _repeats(self, name: str) -> bool:
        """Whether a table with a key that declares its repeated rows read once (``repeated_rows``) may hold some:
        as validation found, else whether any key is repeated (one query; `distinct` then leaves out only exact
        copies)."""
        key = TABLES[name].key if name in TABLES else None
        declared = name in self.reading and self.reading[name].repeated_rows == READ_ONCE
        if not key or not declared or name not in self.raw or key not in self.raw[name].columns:
            return False
        if self.findings.repeated_rows is not None:
            return name in self.findings.repeated_rows
        t = self.as_found(name)
        t = t.filter(t[key].notnull())
        counts = t.aggregate(rows=t.count(), keys=t[key].nunique()).to_pyarrow().to_pylist()[0]
        return counts["rows"] > counts["keys"]

    def _no_renewed_by(self) -> bool:
        c = self.as_found("contracts")
        return not c.renewed_by.notnull().any().to_pyarrow().as_py()

    def _any_undated_account(self) -> bool:
        return bool(self.as_found("accounts").created_at.isnull().any().to_pyarrow().as_py())

    def _unreferenced_columns(self, name: str) -> frozenset[str]:
        """The columns of :func:`dropped_references` of table `name` with rows that name nothing (one query per
        reference; validation's finding `SourceFindings.unreferenced` saves them)."""
        found = set()
        for column, (target, target_column) in dropped_references(name).items():
            orphans = self.unreferenced(name, column, target, target_column)
            if orphans is not None and orphans.count().to_pyarrow().as_py():
                found.add(column)
        return frozenset(found)

    def frame(self, name: str) -> pd.DataFrame:
        df = self.table(name).to_pandas()
        spec = TABLES.get(name)
        for c in spec.columns if spec else []:
            if c.type == "date":
                df[c.name] = pd.to_datetime(df[c.name])
        return df

    @property
    def spark(self):
        """The Spark session of a source opened with engine "spark" (for Spark-side work such as batch scoring
        with `mapInPandas`); None on DuckDB."""
        return getattr(self.con, "_session", None) if self.engine == "spark" else None

    def spark_frame(self, expr: ibis.Table):
        """A Spark DataFrame computing `expr` (an Ibis expression over this source's tables) on a source opened
        with engine "spark", for work that continues on Spark (mapInPandas, writing Parquet)."""
        if self.engine != "spark":
            raise SourceError(f"{self.location} is open on {self.engine}, not Spark")
        self.con._run_pre_execute_hooks(expr)   # registers the in-memory tables (the as-of grid) with Spark
        return self.con._session.sql(self.con.compile(expr))

    @property
    def truth_dir(self) -> Path | None:
        if self.kind != "folder":
            return None
        p = Path(self.location) / "truth"
        return p if p.is_dir() else None

    @property
    def data_hash(self) -> str:
        """A content hash of the source's tables (not of truth/) and of how they are read, recorded with every
        run and score. Folder: the files' bytes. Database: every value of the contract's columns, hashed
        row by row in the engine (md5) and summed per table, so row order does not matter but any change of
        a value, a row or a column does."""
        if self._hash is None:
            h = hashlib.blake2b(digest_size=12)
            # how each table is read; the later settings only when set, so a source read as before hashes as before
            h.update(json.dumps({t: [r.rename, r.date_format, r.per_month, r.number_format,
                                     *([{"repeated_rows": r.repeated_rows}] if r.repeated_rows else []),
                                     *([{"missing_successors": r.missing_successors}] if r.missing_successors else [])]
                                 for t, r in sorted(self.reading.items())},
                                sort_keys=True).encode())
            if self.kind == "folder":
                for f in sorted(self.files):
                    h.update(str(f.relative_to(self.location) if f.is_relative_to(self.location)
                                 else f.name).encode())
                    _hash_bytes(h, f)
            else:
                for name in sorted(self.raw):
                    h.update(f"{name}:{_value_digest(name, self.raw[name])}".encode())
            self._hash = h.hexdigest()
        return self._hash


def _value_digest(name: str, t: ibis.Table) -> str:
    """Columns, types, rows and two 32-bit sums of per-row md5 digests of the contract's columns of `t`."""
    spec = TABLES.get(name)
    cols = sorted(c for c in t.columns if spec is None or c in spec.column_names) or sorted(t.columns)
    sep, null = ibis.literal("\x1f"), ibis.literal("\x00")
    parts = []
    for c in cols:
        parts += [t[c].cast("string").fill_null(null), sep]
    row = ibis.literal("").concat(*parts) if parts else ibis.literal("")
    digest = row.hexdigest("md5")
    hi, lo = _hex_int(t, digest.substr(0, 8)), _hex_int(t, digest.substr(8, 8))
    agg = t.aggregate(n=t.count(), hi=hi.sum(), lo=lo.sum()).to_pyarrow().to_pylist()[0]
    schema = [(c, str(t[c].type())) for c in cols]
    return json.dumps([schema, agg["n"], agg["hi"], agg["lo"]], default=str)


def _hash_bytes(h, f: Path):
    """``h`` (a hashlib object) updated with the bytes of file ``f``, read in chunks; returns ``h``."""
    with open(f, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h


@ibis.udf.scalar.builtin(name="conv")
def _spark_conv(value: str, from_base: int, to_base: int) -> str:  # Spark SQL: a number's digits in another base
    ...


def _hex_int(t: ibis.Table, hex_digits: ibis.Value) -> ibis.Value:
    """Hexadecimal digits as an int64, on the engine of `t` (DuckDB reads '0x…'; Spark converts with conv)."""
    if _is_spark(t):
        return _spark_conv(hex_digits, 16, 10).cast("int64")
    return (ibis.literal("0x") + hex_digits).cast("int64")


def _is_spark(t: ibis.Table) -> bool:
    try:
        return t._find_backend().name == "pyspark"
    except Exception:  # noqa: BLE001 - an unbound table (memtable): not Spark
        return False


def _engine():
    """The in-process DuckDB engine every source computes on."""
    con = ibis.duckdb.connect()
    con.raw_sql("SET enable_progress_bar = false")
    con.raw_sql("SET TimeZone = 'UTC'")
    return con


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:400] if text else type(e).__name__


def csv_stem(p: Path) -> str | None:
    """The table name a CSV file stands for (``accounts`` for ``accounts.csv`` and ``accounts.csv.gz``), or None
    when ``p`` is not named as a CSV file (``CSV_SUFFIXES``, in any case)."""
    low = p.name.lower()
    return next((p.name[: -len(x)] for x in CSV_SUFFIXES if low.endswith(x) and len(low) > len(x)), None)


def _open_bytes(f: Path):
    """A CSV file's bytes, decompressed when it is gzip-compressed (named ``*.gz``)."""
    return gzip.open(f, "rb") if f.name.lower().endswith(".gz") else open(f, "rb")


def _open_text(f: Path, encoding: str = "utf-8", errors: str = "strict"):
    return io.TextIOWrapper(_open_bytes(f), encoding=encoding, errors=errors, newline="")


def _is_empty(f: Path) -> bool:
    """A CSV file with not even a header row (for a compressed file: nothing once decompressed)."""
    if f.stat().st_size == 0:
        return True
    if not f.name.lower().endswith(".gz"):
        return False
    try:
        with _open_bytes(f) as fh:
            return fh.read(1) == b""
    except (OSError, EOFError):       # not gzip after all: the reader names it (_readable_csv_scan)
        return False


def _readable_csv_scan(f: Path) -> CsvScan:
    """:func:`_scan_csv` with the file's own delimiter; a compressed file that cannot be decompressed is its
    problem."""
    try:
        return _scan_csv(f, _delimiter(f))
    except (OSError, EOFError) as e:     # gzip.BadGzipFile is an OSError; a truncated file ends early
        return CsvScan(problem=f"not a readable gzip file ({_first_line(e)})")


# the white space a blank field may hold: what parse.trimmed's \s removes on DuckDB (RE2's \s; Java's, on Spark,
# also takes \v), so that the engine and the scan agree on which rows are blank
_WHITE_SPACE = " \t\r\n\f"


@dataclass(frozen=True)
class CsvScan:
    """What one pass over a CSV file found (:func:`_scan_csv`).

    problem: its first malformed row, in words (a row whose field count is not the header's, with the row's
        text; an unterminated quote), or None.
    repeated_header, blank: the lines of rows that hold no data (:func:`_filler_rows` reads them the same way):
        rows that repeat the header row (files written one after another, each with its header) and rows with
        every field empty or only white space (a spreadsheet's blank row saved as ``,,,,`` or ``" ", ,,``).
        Lines that are entirely empty are no rows at all (both engines skip them).
    """
    problem: str | None = None
    repeated_header: tuple[int, ...] = ()
    blank: tuple[int, ...] = ()


def _scan_csv(f: Path, delim: str) -> CsvScan:
    """One pass over a CSV file with the csv module: :class:`CsvScan` (up to its first malformed row)."""
    import csv

    header_lines, blank_lines = [], []
    with _open_text(f, errors="replace") as fh:
        rows = csv.reader(fh, delimiter=delim, quotechar='"', doublequote=True, strict=True)
        try:
            header = [_cell(v) for v in next(rows)]
            width = len(header)
            for row in rows:
                if not row:
                    continue
                if len(row) != width:
                    text = delim.join(row)
                    text = text if len(text) <= 60 else text[:57] + "…"
                    problem = f"line {rows.line_num} has {len(row)} field(s), the header has {width}: {text!r}"
                    if width == 1 and len(row) > 1:   # a report's title line read as the header
                        problem += (f"; is the first line ({_cell(header[0])[:40]!r}) a title above the header "
                                    "row? Remove it")
                    return CsvScan(problem, tuple(header_lines), tuple(blank_lines))
                if not any(v.strip(_WHITE_SPACE) for v in row):
                    blank_lines.append(rows.line_num)
                # `all` stops at a data row's first field that is not its column's name: no list per row
                elif all(_cell(v) in ("", h) for v, h in zip(row, header)) and any(_cell(v) for v in row):
                    header_lines.append(rows.line_num)
        except csv.Error as e:
            return CsvScan(f"line {rows.line_num}: {e}", tuple(header_lines), tuple(blank_lines))
        except StopIteration:
            pass
    return CsvScan(None, tuple(header_lines), tuple(blank_lines))


def _cell(value: str) -> str:
    """A CSV field as :func:`_scan_csv` and :func:`_filler_rows` compare it with its column's name: without a
    byte-order mark (a file written after another keeps its own) and surrounding spaces."""
    return value.replace("\ufeff", "").strip()


def header_names(f: Path) -> list[str]:
    """The names in CSV file ``f``'s first line, its header row (as the csv module reads them, with
    :func:`_cell`'s cleaning); [] for a file with no line."""
    import csv

    with _open_text(f, errors="replace") as fh:
        first = fh.readline()
    row = next(csv.reader([first], delimiter=_line_delimiter(first), quotechar='"', doublequote=True), [])
    return [_cell(v) for v in row]


def unique_names(names: list[str]) -> list[str]:
    """Column names made unique as DuckDB's CSV reader makes them: the first of a name (compared case aside)
    keeps it; a later one gets ``_1`` appended (or the first ``_k`` not yet taken). Spark names such columns
    otherwise (each with its position appended, the first too), so a CSV table with repeated names is given these
    on both engines: the first column of a name is the one read."""
    taken: set[str] = set()
    out = []
    for n in names:
        name, k = n, 0
        while name.lower() in taken:
            k += 1
            name = f"{n}_{k}"
        taken.add(name.lower())
        out.append(name)
    return out


def _repeated_names_notes(name: str, shown: str, names: list[str]) -> list[str]:
    """The note (a list of one, or none) for table ``name``'s CSV file whose header row, ``names``, names a column
    more than once (an export of a join: ``account_id`` from each table): the first column of a name is read, and
    the others can be named in column_map by what they are called here (:func:`unique_names`)."""
    first: dict[str, int] = {}
    for i, n in enumerate(names, 1):
        first.setdefault(n.lower(), i)
    said = []
    for i, (n, u) in enumerate(zip(names, unique_names(names)), 1):
        if n != u:
            was = names[first[n.lower()] - 1]
            said.append(f"columns {first[n.lower()]} and {i} are both named {was!r}"
                        + (f" (the second as {n!r})" if n != was else "") + f": column {i} is called {u!r} here")
    if not said:
        return []
    return [f"{shown}: " + "; ".join(said) + "; the first column of a name is the one read (to read another, map "
            f"our column to what it is called here under [column_map.{name}])"]


def _filler_rows(t: ibis.Table) -> tuple[ibis.Expr, ibis.Expr]:
    """Whether each row of a CSV table (read as text) repeats its header row, and whether every field is empty
    (NULL, '' or white space): the rows :class:`CsvScan` lists, by the same rule (a repeated header: every field
    its column's name or empty, some not), as Ibis predicates that run on either engine."""
    # parse.trimmed, the one trimming rule of every engine (not Ibis's strip(): see its docstring)
    cells = {c: trimmed(t[c].cast("string").replace("\ufeff", "")).fill_null("") for c in t.columns}
    blank = ibis.and_(*(v == "" for v in cells.values()))   # each field trimmed once, for both tests
    header = (ibis.and_(*((v == _cell(c)) | (v == "") for c, v in cells.items()))
              & ibis.or_(*(v != "" for v in cells.values())))
    return header, blank


def _maybe_filler(t: ibis.Table) -> ibis.Expr:
    """A cheap test that comes before :func:`_filler_rows` (comparing every field, trimmed, with its column's
    name costs ~10× loading a large CSV; this ~1 %): every field empty, or some field its column's name exactly
    (a repeated header row is the header's own text)."""
    maybe_blank = ibis.and_(*(_maybe_blank(t[c].cast("string")) for c in t.columns))
    return maybe_blank | ibis.or_(*(t[c].cast("string") == c for c in t.columns))


def _maybe_blank(v: ibis.StringValue) -> ibis.BooleanValue:
    """Whether a field may be blank, without trimming it (a superset of :func:`_filler_rows`' blank fields):
    NULL, or text that sorts before "!" (both engines compare bytes): '' and text that starts with white space or
    another control character. One comparison a field: taking the first character to test it costs ~16× as much."""
    return v.isnull() | (v < "!")


def _filler_note(shown: str, scans: dict[str, CsvScan], counts: tuple[int, int] | None = None) -> str:
    """The note that says which rows of a CSV table held no data and were left out. ``scans``: each part's
    scan, by its shown name; ``counts``: (repeated headers, blank rows) as the engine counted them, when known."""
    def lines(pick) -> str:
        at = [f"{'' if name == shown else f'{name}: '}line {', '.join(map(str, pick(s)[:5]))}"
              f"{', …' if len(pick(s)) > 5 else ''}" for name, s in scans.items() if pick(s)]
        return f" ({'; '.join(at)})" if at else ""

    headers, blanks = counts or (sum(len(s.repeated_header) for s in scans.values()),
                                 sum(len(s.blank) for s in scans.values()))
    said = [f"{headers} row(s) repeating the header row{lines(lambda s: s.repeated_header)}"] if headers else []
    said += [f"{blanks} row(s) with every field empty{lines(lambda s: s.blank)}"] if blanks else []
    return f"{shown}: {' and '.join(said)} left out: they hold no data"


NEWLINE = b"\n"


def utf8_problem(f: Path) -> str | None:
    """Where a file stops being UTF-8, in words (``line 2: byte 0xE9``), or None when all of it is. Reads the
    file once, a megabyte at a time."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with _open_bytes(f) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                at = max(0, min(e.start, len(chunk) - 1))   # e.start counts bytes held over from the last chunk
                return f"line {line + chunk[:at].count(NEWLINE)}: byte 0x{chunk[at]:02X}"
            line += chunk.count(NEWLINE)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return f"line {line}: the file ends inside a character"
    return None


# how a CSV that is not UTF-8 is read: as Windows-1252 (what Excel on Windows saves), or as Latin-1 where
# Windows-1252 has no character for a byte (Latin-1 has one for every byte); (Python codec, in words)
LEGACY_ENCODINGS = (("cp1252", "Windows-1252"), ("latin-1", "Latin-1"))


def utf8_copy(f: Path, into: Path) -> tuple[Path, str]:
    """`f` rewritten as UTF-8 in the folder `into`: decoded as UTF-16 when it starts with a UTF-16 byte order
    mark, else with the first of ``LEGACY_ENCODINGS`` that reads all of it. Returns the copy and the encoding's
    name in words. Both engines read the copy, so a name reads the same on either (Spark knows no
    Windows-1252). The copy of a compressed file is not compressed."""
    copy = into / f"{csv_stem(f) or f.stem}.csv"
    with _open_bytes(f) as fh:
        bom = fh.read(4)
    utf16 = [("utf-16", "UTF-16")] if bom[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) \
        and bom[:4] != codecs.BOM_UTF32_LE else []   # Excel's "Unicode text"
    for codec, words in (*utf16, *LEGACY_ENCODINGS):
        try:
            with _open_text(f, codec) as src, open(copy, "w", encoding="utf-8", newline="") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            return copy, words
        except UnicodeDecodeError:
            continue
    raise AssertionError("unreachable: Latin-1 decodes every byte")


def _not_utf8_note(f: Path, problem: str, encoding: str, shown: str | None = None) -> str:
    return (f"{shown or f.name} is not UTF-8 ({problem}); read as {encoding}: save it as UTF-8 if names come out "
            "wrong")


def _spark_scratch() -> Path:
    """A folder for the UTF-8 copies Spark reads lazily, for as long as the process runs."""
    global _SPARK_SCRATCH
    if _SPARK_SCRATCH is None:
        _SPARK_SCRATCH = Path(tempfile.mkdtemp(prefix="csforecast-spark-csv-"))
        atexit.register(shutil.rmtree, _SPARK_SCRATCH, ignore_errors=True)
    return _SPARK_SCRATCH


_SPARK_SCRATCH: Path | None = None


def _quote(s: str) -> str:
    return "'" + str(s).replace("'", "''") + "'"


def _ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def _delimiter(f: Path) -> str:
    """The CSV delimiter: the most frequent of , ; tab | in the header line (a header names columns, so it
    holds delimiters but rarely quoted text). Given explicitly, a malformed row is then an error naming its
    line, rather than a reason for DuckDB's sniffer to guess another dialect."""
    with _open_text(f, errors="replace") as fh:
        return _line_delimiter(fh.readline())


def _line_delimiter(line: str) -> str:
    """The most frequent of , ; tab | in a header line (``,`` when it has none)."""
    counts = {d: line.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


HEADER_SEARCH_ROWS = 10   # how far down a table's first rows are searched for its header row


def title_lines(f: Path) -> int:
    """How many lines above a CSV file's header row hold a report's title: the header row is the first of its
    first ``HEADER_SEARCH_ROWS`` lines with two or more values (as a workbook's sheet's is,
    :func:`spreadsheets.sheet_to_csv`), and the lines above it have one value at most ("Accounts - exported 3
    May", a date, nothing). 0 when the first line is the header, or no line has two values, or the file is
    UTF-16 (Excel's "Unicode text", whose lines are not split at a byte; its title stays the validation error)."""
    import csv

    try:
        with _open_bytes(f) as fh:
            if fh.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
                return 0
        with _open_text(f, errors="replace") as fh:
            for i, line in zip(range(HEADER_SEARCH_ROWS), fh):
                fields = next(csv.reader([line], delimiter=_line_delimiter(line), quotechar='"'), [])
                if sum(1 for v in fields if _cell(v)) >= 2:
                    return i
    except (OSError, EOFError):    # a .gz file that is not one: the reader names it (_readable_csv_scan)
        return 0
    return 0


def from_header_row(f: Path, into: Path, shown: str, notes: list[str]) -> Path:
    """``f``, or, when lines above its header row hold a title (:func:`title_lines`), a copy of ``f`` from its
    header row (decompressed, in ``into``; its bytes otherwise as they are), and a note naming ``shown``."""
    lines = title_lines(f)
    if not lines:
        return f
    copy = into / (f.name[:-3] if f.name.lower().endswith(".gz") else f.name)
    with _open_bytes(f) as src, open(copy, "wb") as dst:
        for _ in range(lines):
            src.readline()
        shutil.copyfileobj(src, dst, 1 << 20)
    notes.append(title_note(shown, f"line {lines + 1}"))
    return copy


def title_note(shown: str, where: str) -> str:
    """The note on a table whose header row is not its first (a report's title above it), left out."""
    return (f"{shown}: the header row is {where}; the line(s) above it, with one value at most (a title, a date), "
            f"are left out, and line numbers count from the header row")


def folder_tables(path: Path) -> tuple[dict[str, Path], list[str]]:
    """The file that holds each contract table of a folder, whichever engine reads it.

    A table is `name.parquet`, a folder `name/` of part files (:func:`table_parts`: Parquet, else CSV), `name.csv`,
    `name.csv.gz` (or another of ``CSV_SUFFIXES``: `.tsv`, `.txt`, compressed or not) or `name.xlsx` / `name.xlsm`
    (an Excel workbook), looked for in that order; when several are present the first is used and a note says
    so. A spreadsheet in a format not read (`name.xls`, `.ods`, ...: `spreadsheets.OTHER_SPREADSHEET_SUFFIXES`)
    comes last, so that the readers can say what to save it as.
    Files with a table suffix that are not contract tables are named in a note. Pure: only lists the folder.

    Returns
    -------
    tables : dict
        Table name → the file or folder to read, for the tables present.
    notes : list of str
        One sentence per ambiguity or ignored file.
    """
    def is_table(p: Path) -> bool:
        return (p.is_file() and (p.suffix == ".parquet" or csv_stem(p) is not None or is_workbook(p)
                                 or is_other_spreadsheet(p))) \
            or (p.is_dir() and bool(table_parts(p)))

    def stem(p: Path) -> str:
        return p.name if p.is_dir() else csv_stem(p) or p.stem

    def rank(p: Path, their: str) -> int:
        if p.is_dir():
            return 1
        suffix = p.name[len(their):].lower()
        order = {".parquet": 0, **{x: 2 + i for i, x in enumerate(CSV_SUFFIXES)}}
        return order.get(suffix, len(order) + 2 if is_workbook(p) else len(order) + 3)

    entries = [p for p in path.iterdir() if is_table(p)]
    stems, notes = _contract_tables(stem(p) for p in entries)
    tables, used = {}, set()
    for name, their in stems.items():
        cands = sorted((p for p in entries if stem(p) == their), key=lambda p: rank(p, their))
        if not cands:
            continue
        tables[name] = cands[0]
        used.update(cands)
        parts = table_parts(cands[0]) if cands[0].is_dir() else []
        if parts and unnamed_part(parts[0]):
            kind = "Parquet" if is_parquet(parts[0]) else "delimited text"
            notes.append(f"{name}: the part files of {cands[0].name}/ have no suffix ({parts[0].name}"
                         f"{', …' if len(parts) > 1 else ''}, {len(parts)} in all): read as {kind}, by their content")
        if len(cands) > 1:
            notes.append(f"{name}: both {' and '.join(p.name for p in cands)} found; reading {cands[0].name}")
    ignored = sorted(p.name for p in entries if p.is_file() and p not in used)
    if ignored:
        notes.append(f"files that are not contract tables are ignored: {', '.join(ignored)}")
    return tables, notes


def table_parts(f: Path) -> list[Path]:
    """The files that hold a table: ``[f]`` for a file; for a folder (as Spark, Hive or a warehouse unload write
    one), its Parquet part files, else its CSV part files (``CSV_SUFFIXES``), else its part files named without a
    suffix (:func:`unnamed_part`: Redshift's `0000_part_00`, Hive's `000000_0`), sorted by name. Names starting
    with "." or "_" (a writer's ``_SUCCESS``, ``.part-0.crc``) are not parts. Of the delimited-text kinds (`.csv`,
    `.tsv`, `.txt`, each compressed or not) only the first present counts, so a `README.txt` left beside
    `part-0.csv` is not read as a part of the table."""
    if not f.is_dir():
        return [f]
    files = sorted(p for p in f.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
    parquet = [p for p in files if p.suffix == ".parquet"]
    if parquet:
        return parquet
    kind = {p: _text_kind(p) for p in files}
    first = min((k for k in kind.values() if k is not None), default=None)
    if first is not None:
        return [p for p in files if kind[p] == first]
    return [p for p in files if unnamed_part(p)]


def unnamed_part(p: Path) -> bool:
    """Whether ``p`` is named as a warehouse unload names its part files when no format suffix is asked for: no
    suffix at all, or only `.gz` (Redshift's `0000_part_00` and `0000_part_00.gz`, Hive's `000000_0`). What it
    holds is then told by its first bytes (:func:`is_parquet`)."""
    name = p.name[:-3] if p.name.lower().endswith(".gz") else p.name
    return bool(name) and "." not in name


def is_parquet(p: Path) -> bool:
    """Whether table file ``p`` is Parquet: named `.parquet`, or an :func:`unnamed_part` that starts with
    Parquet's magic bytes (`PAR1`); everything else read from a folder is delimited text."""
    if p.suffix == ".parquet":
        return True
    if not unnamed_part(p) or p.name.lower().endswith(".gz"):
        return False
    try:
        with open(p, "rb") as fh:
            return fh.read(4) == b"PAR1"
    except OSError:         # unreadable: read as text, whose reader names the file and why
        return False


# a fixed time zone as Arrow writes one: an offset from UTC, +09:00 or -0530
_UTC_OFFSET = re.compile(r"^([+-])([0-9]{2}):?([0-9]{2})$")


def parquet_zones(f: Path) -> dict[str, str]:
    """The time zone of each zoned timestamp column of Parquet file ``f``, as its writer recorded it in the
    column's type (an IANA name such as ``Europe/Berlin``, ``UTC``, or an offset such as ``+09:00``); {} when
    it has none. A zoned column holds instants; its dates are the dates on that zone's clock (:func:`zone_clock`)."""
    import pyarrow.parquet as pq

    return _schema_zones(pq.read_schema(f))


def _schema_zones(schema) -> dict[str, str]:
    """:func:`parquet_zones` of an Arrow ``schema`` already read."""
    import pyarrow as pa

    return {fld.name: fld.type.tz for fld in schema if pa.types.is_timestamp(fld.type) and fld.type.tz}


def zone_clock(zone: str) -> tuple[str, int] | None:
    """How to read an instant on the clock of time zone ``zone`` (:func:`parquet_zones`): the IANA zone to
    convert it in and the minutes to add after (``("Asia/Tokyo", 0)``; an offset ``+09:00`` is ``("UTC", 540)``);
    None for a zone name Python's time zone database does not know."""
    import zoneinfo

    m = _UTC_OFFSET.match(zone.strip())
    if m:
        return "UTC", (1 if m.group(1) == "+" else -1) * (60 * int(m.group(2)) + int(m.group(3)))
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
    return zone, 0


def _zone_clocks(zones: dict[str, str]) -> dict[str, tuple[str, int]]:
    """Each zoned column's clock (:func:`zone_clock`); UTC for a zone not known here."""
    return {c: zone_clock(z) or ("UTC", 0) for c, z in zones.items()}


def _zoned_notes(shown: str, zones: dict[str, str]) -> list[str]:
    """The note (a list of one, or none when every zone is UTC) for a Parquet table's zoned timestamp columns."""
    said = [f"{c} in {z}" + ("" if zone_clock(z) else ", a time zone not known here: read as UTC")
            for c, z in zones.items() if zone_clock(z) != ("UTC", 0)]
    return [f"{shown}: timestamps with a time zone ({'; '.join(said)}): each read as the date on its zone's "
            "clock"] if said else []


def _duckdb_parquet(con, parts: list[Path], table_name: str, shown: str, notes: list[str]) -> ibis.Table:
    """Parquet files read by DuckDB as one table. A zoned timestamp column (:func:`parquet_zones`, from the first
    file) is read as the time on its zone's clock, so that its dates are the writer's (midnight in Tokyo is the day
    before in UTC), and as a timestamp Ibis knows (it has no type for DuckDB's zoned nanoseconds)."""
    zones = parquet_zones(parts[0])
    if not zones:
        return con.read_parquet([str(p) for p in parts], table_name=table_name)
    local = []
    for column, (region, minutes) in _zone_clocks(zones).items():
        ident = _ident(column)
        local.append(f"timezone({_quote(region)}, CAST({ident} AS TIMESTAMPTZ)) + INTERVAL ({minutes}) MINUTE "
                     f"AS {ident}")
    files = ", ".join(_quote(str(p)) for p in parts)
    con.raw_sql(f'CREATE OR REPLACE TEMP VIEW {_ident(table_name)} AS SELECT * REPLACE ({", ".join(local)}) '
                f"FROM read_parquet([{files}])")
    notes += _zoned_notes(shown, zones)
    return con.table(table_name)


def _text_kind(p: Path) -> int | None:
    """Which delimited-text kind ``p`` is named as, in the order of ``CSV_SUFFIXES``: 0 for `.csv`, 1 for `.tsv`,
    2 for `.txt` (compressed or not, any case); None when it is none of them."""
    stem = csv_stem(p)
    return None if stem is None else _TEXT_KINDS.index(p.name[len(stem):].lower().removesuffix(".gz"))


def _shown(f: Path, table: Path) -> str:
    """A part's name as a message gives it: ``usage/part-0.csv`` for a part of the folder ``usage/``; the table
    file's name for the file, or a copy read in its place (a workbook's sheet, a CSV from its header row)."""
    return table.name if table.is_file() else f"{table.name}/{f.name}"


def _empty_file(f: Path) -> str | None:
    """Why a table's single file holds nothing (0 bytes; a compressed one: nothing once decompressed), or None."""
    return f"{f.name} is an empty file (not even a header row)" if f.is_file() and _is_empty(f) else None


def _csv_parts(f: Path) -> tuple[list[Path], str | None]:
    """The CSV part files of table file or folder ``f`` that hold more than nothing, and why none does (None
    when some does)."""
    parts = [p for p in table_parts(f) if not _is_empty(p)]
    if parts:
        return parts, None
    return [], _empty_file(f) or f"{f.name}/ holds only empty files (not even a header row)"


def _first_csv_problem(f: Path, parts: list[Path]) -> str | None:
    """The first malformed row (or undecompressable file) among the CSV ``parts`` of table ``f``, named."""
    for p in parts:
        why = _readable_csv_scan(p).problem
        if why:
            return f"cannot read {_shown(p, f)}: {why}"
    return None


def _read_folder(con, path: Path) -> tuple[dict, dict, list[Path], list[str]]:
    """Tables of a folder: `name.parquet`, a folder `name/` of Parquet or CSV part files, or `name.csv` /
    `name.csv.gz` (CSV read as text)."""
    found, unreadable, files = {}, {}, []
    tables, notes = folder_tables(path)
    for name, f in tables.items():
        parts = table_parts(f)
        files += parts
        if is_other_spreadsheet(f):
            unreadable[name] = not_read_advice(f)
            continue
        # copies read in a file's place (a workbook's sheet, a CSV from its header row) last until it is loaded
        with tempfile.TemporaryDirectory(prefix="csforecast-csv-") as scratch:
            try:
                if is_workbook(f):
                    copies, empty = _workbook_csv(f, name, Path(scratch), notes)
                    if empty:
                        unreadable[name] = empty
                        continue
                    found[name], said = _without_filler_rows(con, name, _load_csv(con, name, copies), f, copies)
                    notes += said + _repeated_names_notes(name, f.name, header_names(copies[0]))
                    continue
                if is_parquet(parts[0]):
                    if _empty_file(f):
                        unreadable[name] = _empty_file(f)
                        continue
                    found[name] = _duckdb_parquet(con, parts, f"_file_{name}", f.name, notes)
                    continue
                parts, empty = _csv_parts(f)
                if empty:
                    unreadable[name] = empty
                    continue
                if parts == [f]:      # one file, which a report's title may head (not parts, written by programs)
                    parts = [from_header_row(f, Path(scratch), f.name, notes)]
                try:
                    loaded = _load_csv(con, name, parts)
                except Exception:   # noqa: BLE001 - DuckDB refuses text that is not UTF-8 ...
                    not_utf8 = {p: utf8_problem(p) for p in parts}
                    if not any(not_utf8.values()):
                        raise
                    # ... which an Excel export on Windows is: read UTF-8 copies, and say so
                    with tempfile.TemporaryDirectory(prefix="csforecast-csv-") as tmp:
                        read = []
                        for p, problem in not_utf8.items():
                            if problem:
                                copy, encoding = utf8_copy(p, Path(tmp))
                                read.append(copy)
                                notes.append(_not_utf8_note(p, problem, encoding, _shown(p, f)))
                            else:
                                read.append(p)
                        loaded = _load_csv(con, name, read)   # loaded now: the copies can go
                found[name], said = _without_filler_rows(con, name, loaded, f, parts)
                notes += said + _repeated_names_notes(name, _shown(parts[0], f), header_names(parts[0]))
            except SpreadsheetError as e:
                unreadable[name] = str(e)
            except Exception as e:  # noqa: BLE001 - any reader error is the user's file: report it as such
                why = _first_csv_problem(f, parts) if not is_parquet(parts[0]) and not is_workbook(f) else None
                unreadable[name] = why or f"cannot read {f.name}: {_first_line(e)}"
    return found, unreadable, files, notes


def _workbook_csv(f: Path, name: str, into: Path, notes: list[str]) -> tuple[list[Path], str | None]:
    """Table ``name``'s workbook ``f`` as a CSV file in ``into`` (:func:`spreadsheets.sheet_to_csv`) to be read
    like any CSV: ``([the copy], None)``, or ``([], why)`` when its sheet holds nothing. The sheet is the only
    one, else the one named as the table (in any spelling), else the first, and a note says which was read.
    Raises ``SpreadsheetError`` for a workbook that cannot be read."""
    sheets = sheet_names(f)
    if not sheets:
        return [], f"{f.name} has no worksheet"
    sheet = sheets[0]
    if len(sheets) > 1:
        named = {name: name} if name in sheets else spelled_as([name], sheets)[0]
        sheet = named.get(name, sheet)
        notes.append(f"{f.name}: reading its sheet {sheet!r} ({'named as the table' if named else 'the first'}"
                     f" of {len(sheets)}: {', '.join(map(repr, sheets))})")
    return _sheet_csv(f, sheet, into / f"{name}.csv", f.name, notes)


def _sheet_csv(f: Path, sheet: str, out: Path, shown: str, notes: list[str]) -> tuple[list[Path], str | None]:
    """Sheet ``sheet`` of workbook ``f`` written to ``out`` (:func:`_kept_sheet_to_csv`): ``([out], None)``, or
    ``([], why)`` when it holds nothing; a note (naming it ``shown``) when its header row is not its first."""
    copy, header_row = _kept_sheet_to_csv(f, sheet, out)
    if _is_empty(copy):
        return [], f"{f.name}: sheet {sheet!r} is empty (not even a header row)"
    if header_row > 1:
        notes.append(title_note(shown, f"the sheet's row {header_row}"))
    return [copy], None


SHEET_CACHE_KEEP = 32     # sheets' CSV copies kept under CSFORECAST_HOME/cache/sheets/ (the most recently used)


def _kept_sheet_to_csv(f: Path, sheet: str, out: Path) -> tuple[Path, int]:
    """:func:`spreadsheets.sheet_to_csv`, kept on disk between commands (a ``diskcache`` under
    CSFORECAST_HOME/cache/sheets/, keyed by the workbook's bytes, the sheet and the code that reads sheets): a
    workbook opened again (``serve``, ``score`` after ``train``) is copied from there instead of being read cell
    by cell (about a second per 7,000 rows). A home that cannot be written keeps nothing (``DiskCache``)."""
    key = key_digest("sheet", _hash_bytes(hashlib.blake2b(digest_size=16), f).hexdigest(), sheet,
                     code_digest("csforecast.data.spreadsheets"))

    def convert() -> dict:
        copy, header_row = sheet_to_csv(f, sheet, out)
        with open(copy, encoding="utf-8", newline="") as fh:    # as written: a cell's line break unchanged
            return {"header_row": header_row, "csv": fh.read()}

    def load(path: Path) -> dict:
        kept = json.loads(path.read_text(encoding="utf-8"))
        out.write_text(kept["csv"], encoding="utf-8", newline="")
        return kept

    kept = DiskCache(get_settings().home / "cache" / "sheets", ".json", keep=SHEET_CACHE_KEEP).get_or_compute(
        key, convert, load=load, dump=lambda value, path: path.write_text(json.dumps(value), encoding="utf-8"))
    return out, int(kept["header_row"])


def _load_csv(con, name: str, parts: list[Path]) -> ibis.Table:
    """CSV files (one table's parts, each with its header row) as text, loaded once into the engine: every value
    is then typed by parse.read_as (shared with validation), never by DuckDB's sniffer, which guesses one date
    format per file from a sample. The delimiter is the first part's."""
    gz = {p.name.lower().endswith(".gz") for p in parts}
    compression = "auto_detect" if len(gz) > 1 else "gzip" if gz == {True} else "none"
    files = "[" + ", ".join(_quote(p) for p in parts) + "]"
    con.raw_sql(f"CREATE TEMP TABLE _file_{name} AS SELECT * FROM read_csv({files}, "
                f"header = true, all_varchar = true, skip = 0, delim = {_quote(_delimiter(parts[0]))}, "
                f"quote = '\"', escape = '\"', compression = '{compression}', union_by_name = true)")
    return con.table(f"_file_{name}")


def _without_filler_rows(con, name: str, t: ibis.Table, f: Path, parts: list[Path],
                         shown: str | None = None) -> tuple[ibis.Table, list[str]]:
    """A CSV table loaded by :func:`_load_csv` without the rows that hold no data (:func:`_filler_rows`: repeated
    header rows, rows with every field empty), and the note that says which, by part and line (none when the
    table has none: one scan of the loaded table; the parts are read again only when it has some). ``shown``:
    how the note names the one part when it is a copy (a workbook's sheet), not ``f``'s part."""
    if not t.aggregate(n=_maybe_filler(t).cast("int64").sum()).to_pyarrow().column("n")[0].as_py():
        return t, []
    header, blank = _filler_rows(t)
    counts = t.aggregate(headers=header.cast("int64").sum(), blanks=blank.cast("int64").sum()).to_pyarrow()
    headers, blanks = (int(counts.column(c)[0].as_py() or 0) for c in ("headers", "blanks"))
    if not (headers or blanks):
        return t, []
    kept = con.create_table(f"_file_{name}_rows", t.filter(~(header | blank)), temp=True)
    con.raw_sql(f"DROP TABLE _file_{name}")
    scans = {shown or _shown(p, f): _readable_csv_scan(p) for p in parts}
    return kept, [_filler_note(shown or f.name, scans, (headers, blanks))]


def _read_workbook(con, path: Path) -> tuple[dict, dict, list[Path], list[str]]:
    """Tables of an Excel workbook with a sheet per table (named as the tables, in any spelling: "Accounts"), each
    read as its CSV copy is (:func:`spreadsheets.sheet_to_csv`); sheets that are not contract tables are named
    in a note. Raises SourceError when the file is not a readable workbook."""
    try:
        sheets = sheet_names(path)
    except SpreadsheetError as e:
        raise SourceError(str(e)) from e
    found, unreadable = {}, {}
    names, notes = _contract_tables(sheets)
    notes = [f"{path.name}: " + (f"sheet {n[len('table '):]}" if n.startswith("table '") else n) for n in notes]
    with tempfile.TemporaryDirectory(prefix="csforecast-xlsx-") as tmp:
        for name, sheet in names.items():
            shown = f"{path.name}, sheet {sheet!r}"
            try:
                copies, empty = _sheet_csv(path, sheet, Path(tmp) / f"{name}.csv", shown, notes)
                if empty:
                    unreadable[name] = empty
                    continue
                found[name], said = _without_filler_rows(con, name, _load_csv(con, name, copies), path, copies,
                                                         shown=shown)
                notes += said + _repeated_names_notes(name, shown, header_names(copies[0]))
            except SpreadsheetError as e:
                unreadable[name] = str(e)
            except Exception as e:  # noqa: BLE001 - any reader error is the user's file: report it as such
                unreadable[name] = f"cannot read {shown}: {_first_line(e)}"
    ignored = [s for s in sheets if s not in names.values()]
    if ignored:
        notes.append(f"{path.name}: sheets that are not contract tables are ignored: {', '.join(map(repr, ignored))}")
    return found, unreadable, [path], notes


def _duckdb_path(location: str) -> tuple[Path, str | None]:
    """The database file of a `duckdb://` URL (`duckdb:///abs/path.duckdb` or `duckdb://rel/path.duckdb`), and
    the schema its `?schema=NAME` names (None when it names none)."""
    parts = urlsplit(location)
    path = unquote(parts.netloc + parts.path)
    if not path or path == ":memory:":
        raise SourceError(f"{location}: a duckdb:// URL must name a database file, e.g. duckdb:///data/cs.duckdb")
    query = dict(q.split("=", 1) for q in parts.query.split("&") if "=" in q)
    return Path(path), (unquote(query["schema"]) if query.get("schema") else None)


def _group_spellings(t: ibis.Table, columns: list[str]) -> dict[str, dict[str, tuple[str, int]]]:
    """:meth:`Source.group_spellings` of the typed table ``t``'s ``columns`` (one query; {} without columns)."""
    if not columns:
        return {}
    values = ibis.union(*[t.select(column=ibis.literal(c), value=t[c]) for c in columns], distinct=False)
    values = values.filter(values.value.notnull())
    counts = values.group_by(["column", "value"]).aggregate(rows=values.count()).to_pandas()
    out: dict[str, dict[str, tuple[str, int]]] = {}
    for (column, key), g in counts.groupby([counts["column"], counts["value"].map(squashed)], sort=False):
        if len(g) < 2 or not key:
            continue
        g = g.sort_values(["rows", "value"], ascending=[False, True])
        read = str(g["value"].iloc[0])
        out.setdefault(str(column), {}).update({str(v): (read, int(n)) for v, n in zip(g["value"], g["rows"])})
    return out


def _attach_duckdb(con, path: Path, schema: str | None = None) -> tuple[dict[str, ibis.Table], list[str]]:
    """Attach a DuckDB database file read-only and return its contract tables, and notes. The tables are those of
    ``schema``; when none is named, of schema main, or, when main holds no contract table, of the one other schema
    that holds some (SourceError when several do: which to read is the user's to say)."""
    if not path.is_file():
        raise SourceError(f"no DuckDB database at {path}")
    try:
        con.raw_sql(f"ATTACH {_quote(path)} AS {_ATTACHED} (READ_ONLY)")
        # ibis 12's list_tables() calls DuckDBPyConnection.fetch_arrow_table, which duckdb 2.0 removed (fixed
        # upstream in ibis PR #12001, not yet released): list the tables with the DB-API fetchall instead
        rows = con.raw_sql("SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = "
                           f"{_quote(_ATTACHED)} ORDER BY table_schema, table_name").fetchall()
    except Exception as e:  # noqa: BLE001 - not a database, a newer storage version, locked by a writer, ...
        raise SourceError(f"cannot open the DuckDB database {path}: {_first_line(e)}") from e
    schemas: dict[str, list[str]] = {}
    for sch, table in rows:
        schemas.setdefault(sch, []).append(table)
    chosen, said = _duckdb_schema(path, schemas, schema)
    names, notes = _contract_tables(schemas.get(chosen, []))
    # one query for the schema's columns Ibis has no type for, rather than one per table
    unknown = con.raw_sql("SELECT table_name, column_name, data_type FROM information_schema.columns "
                          f"WHERE table_catalog = {_quote(_ATTACHED)} AND table_schema = {_quote(chosen)} "
                          f"AND data_type IN ({', '.join(map(_quote, _DUCKDB_READ_AS))}) "
                          "ORDER BY table_name, ordinal_position").fetchall()
    read_as: dict[str, dict[str, str]] = {}
    for table, column, data_type in unknown:
        read_as.setdefault(table, {})[column] = _DUCKDB_READ_AS[data_type]
    return {n: _attached_table(con, chosen, t, read_as.get(t, {})) for n, t in names.items()}, said + notes


# DuckDB column types (as information_schema names them) Ibis has no type for, and the type each is read as (the
# same instant: a database's zoned timestamps are read as UTC dates, docs/data-contract.md).
_DUCKDB_READ_AS = {"TIMESTAMPTZ_NS": "TIMESTAMPTZ"}


def _attached_table(con, schema: str, table: str, read_as: dict[str, str]) -> ibis.Table:
    """Table ``table`` of the attached DuckDB file's ``schema``; its columns in ``read_as`` (column: type, from
    ``_DUCKDB_READ_AS``) are read through a temporary view as that type."""
    if not read_as:
        return con.table(table, database=(_ATTACHED, schema))
    casts = [f"CAST({_ident(c)} AS {t}) AS {_ident(c)}" for c, t in read_as.items()]
    view = f"{_ATTACHED}_{schema}_{table}"
    con.raw_sql(f"CREATE OR REPLACE TEMP VIEW {_ident(view)} AS SELECT * REPLACE ({', '.join(casts)}) "
                f"FROM {_ident(_ATTACHED)}.{_ident(schema)}.{_ident(table)}")
    return con.table(view)


def _duckdb_schema(path: Path, schemas: dict[str, list[str]], named: str | None) -> tuple[str, list[str]]:
    """Which schema of DuckDB file ``path`` (its tables by schema) to read, and the note that says why."""
    if named is not None:
        if named not in schemas:
            have = ", ".join(map(repr, schemas)) or "none"
            raise SourceError(f"{path.name} has no schema {named!r} (it has {have})")
        return named, []
    holding = [sch for sch, tables in schemas.items() if _contract_tables(tables)[0]]
    if "main" in holding or not holding:
        return "main", []
    if len(holding) == 1:
        return holding[0], [f"{path.name}: the contract tables are read from schema {holding[0]!r} (schema main "
                            "holds none)"]
    raise SourceError(f"{path.name}: schema main holds no contract table, and schemas "
                      f"{' and '.join(map(repr, holding))} each hold some: name the one to read, "
                      f"duckdb://{path.resolve()}?schema={holding[0]}")


def _copy_from_ibis(con, location: str, reading: dict[str, TableReading]
                    ) -> tuple[dict, dict, list[str], dict[str, list[str]]]:
    """Read the contract's columns of every contract table of a database Ibis can open into the engine (and
    notes on tables and columns read under another spelling, and each table's columns left in the database)."""
    shown = redact(location)
    try:
        remote = ibis.connect(location)
    except ModuleNotFoundError as e:
        raise SourceError(f"cannot open {shown}: its Ibis backend is not installed ({e.name})") from e
    except Exception as e:  # noqa: BLE001 - unknown scheme, refused connection, bad credentials, ...
        raise SourceError(f"cannot open {shown}: {_first_line(e)}") from e
    found, unreadable, notes, uncopied = {}, {}, [], {}
    try:
        names, notes = _contract_tables(remote.list_tables())
        for name, table in names.items():
            spec = TABLES[name]
            try:
                t = remote.table(table)
                rename = _table_reading(name, t.columns, reading.get(name))[0].rename
                theirs = [rename.get(c.name, c.name) for c in spec.columns]
                keep = [c for c in dict.fromkeys(theirs) if c in t.columns]
                uncopied[name] = [c for c in t.columns if c not in keep]
                t = t.select(*(keep or t.columns[:1]))  # none of ours: keep one column, for the row count
                # a database returns rows in no particular order: store them sorted by every column, so the
                # same content always gives the same results (e.g. ties broken by row order)
                rows = ibis.memtable(t.to_pyarrow())
                con.create_table(f"_db_{name}", rows.order_by(list(rows.columns)), temp=True)
                found[name] = con.table(f"_db_{name}")
            except Exception as e:  # noqa: BLE001 - a column type Ibis cannot read, no permission, ...
                unreadable[name] = f"cannot read table {name} from {shown}: {_first_line(e)}"
    except Exception as e:  # noqa: BLE001 - the connection dropped while listing
        raise SourceError(f"cannot read {shown}: {_first_line(e)}") from e
    finally:
        try:
            remote.disconnect()
        except Exception:  # noqa: BLE001 - nothing to do about a failed close
            pass
    return found, unreadable, notes, uncopied


def _apply_reading(t: ibis.Table, r: TableReading) -> ibis.Table:
    """Rename their columns to ours; a column already named like ours that is mapped away is dropped."""
    present = {ours: theirs for ours, theirs in r.rename.items() if theirs in t.columns and ours != theirs}
    clash = [ours for ours in present if ours in t.columns and ours not in present.values()]
    if clash:
        t = t.drop(*clash)
    return t.rename(present) if present else t


def _check_date_formats(con, reading: dict[str, TableReading]) -> None:
    for table, r in reading.items():
        if r.date_format is None:
            continue
        if not re.search(r"%[a-zA-Z]", r.date_format):
            raise SourceError(f"column_map.{table}.date_format {r.date_format!r} has no strftime codes "
                              "(e.g. \"%d/%m/%Y\")")
        try:
            for f in date_formats(r.date_format):
                con.raw_sql(f"SELECT try_strptime('', {_quote(f)})").fetchall()
        except Exception as e:  # noqa: BLE001
            raise SourceError(f"column_map.{table}.date_format {r.date_format!r} is not a strftime format: "
                              f"{_first_line(e)}") from e


# ---------------------------------------------------------------------------------------------- Spark
def spark_session(master: str | None = None, config: dict[str, str] | None = None, app_name: str = "csforecast"):
    """The Spark session sources compute on: the active session when there is one (spark-submit, a Databricks
    notebook, a test's shared session), else one built with `master` and `config` (a local master binds the
    loopback interface only). `SPARK_REQUIRED` is set on it either way.

    Raises SourceError when PySpark or Java is missing, or the session cannot start."""
    import os
    import sys

    try:
        from pyspark.sql import SparkSession
    except ModuleNotFoundError as e:
        raise SourceError("the Spark engine needs PySpark: install the project's dependencies "
                          "(uv sync) or `pip install pyspark`") from e
    session = SparkSession.getActiveSession()
    if session is None:
        master = master or "local[2]"
        conf = dict(config or {})
        if master.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            # the executors' Python is this one (with csforecast installed), not whatever python3 is on PATH
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            conf = {**SPARK_LOCAL_DEFAULTS, **conf}
        builder = SparkSession.builder.master(master).appName(app_name)
        for k, v in {**conf, **SPARK_REQUIRED}.items():
            builder = builder.config(k, str(v))
        try:
            session = builder.getOrCreate()
        except Exception as e:  # noqa: BLE001 - no Java, a bad master URL, a refused cluster, ...
            raise SourceError(f"cannot start a Spark session (master {master}): {_first_line(e)}") from e
        session.sparkContext.setLogLevel("ERROR")
    for k, v in SPARK_REQUIRED.items():
        session.conf.set(k, v)
    return session


def _spark_engine(spark):
    """An Ibis pyspark backend on `spark` (a SparkSession, or None for `spark_session()`)."""
    return ibis.pyspark.connect(spark if spark is not None else spark_session())


def _spark_parquet(con, paths: list[Path], table_name: str, shown: str, notes: list[str]) -> ibis.Table:
    """Parquet files read by Spark as one table; timestamps pandas wrote in nanoseconds (which Spark reads as
    integers) are turned back into timestamps (UTC), and a zoned timestamp column is read as the time on its
    zone's clock, as on DuckDB (:func:`_duckdb_parquet`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    session = con._session
    df = session.read.parquet(*[str(p) for p in paths])
    schema = pq.read_schema(paths[0])          # the footer, read once
    for fld in schema:
        if pa.types.is_timestamp(fld.type) and fld.type.unit == "ns" and fld.name in df.columns:
            df = df.withColumn(fld.name, F.timestamp_micros(F.floor(F.col(f"`{fld.name}`") / 1000).cast("long")))
    zones = {c: z for c, z in _schema_zones(schema).items() if c in df.columns}
    for column, (region, minutes) in _zone_clocks(zones).items():
        df = df.withColumn(column, F.from_utc_timestamp(F.col(f"`{column}`"), region)
                           + F.expr(f"INTERVAL {minutes} MINUTES"))
    notes += _zoned_notes(shown, zones)
    df.createOrReplaceTempView(table_name)
    return con.table(table_name)


def _read_folder_spark(con, path: Path) -> tuple[dict, dict, list[Path], list[str], dict[str, int]]:
    """Tables of a folder read by Spark in place: `name.parquet`, a folder `name/` of Parquet or CSV part files,
    or `name.csv` / `name.csv.gz` (CSV read as text, typed by parse.read_as as on DuckDB). The same files as
    `_read_folder`, so the data hash is the same whichever engine reads them."""
    found, unreadable, files = {}, {}, []
    counts: dict[str, int] = {}
    tables, notes = folder_tables(path)
    for name, f in tables.items():
        parts = table_parts(f)
        files += parts
        if is_other_spreadsheet(f):
            unreadable[name] = not_read_advice(f)
            continue
        try:
            if is_parquet(parts[0]) and _empty_file(f):
                unreadable[name] = _empty_file(f)
            elif not is_parquet(parts[0]):
                if is_workbook(f):
                    parts, problem = _workbook_csv(f, name, _spark_copies(f), notes)
                else:
                    parts, problem = _csv_parts(f)
                    if parts == [f]:    # as on DuckDB: one file, which a report's title may head
                        parts = [from_header_row(f, _spark_copies(f), f.name, notes)]
                scans = {_shown(p, f): _readable_csv_scan(p) for p in parts}
                problem = problem or next((f"cannot read {n}: {s.problem}" for n, s in scans.items() if s.problem),
                                          None)
                if problem:
                    unreadable[name] = problem
                    continue
                read = [_spark_readable_csv(p, _shown(p, f), notes) for p in parts]
                df = con._session.read.csv([str(p) for p in read], header=True, inferSchema=False,
                                           sep=_delimiter(read[0]), quote='"', escape='"', mode="PERMISSIVE")
                names = header_names(read[0])
                if said := _repeated_names_notes(name, _shown(parts[0], f), names):
                    df = df.toDF(*unique_names(names))     # DuckDB's names: the first of a name is read
                    notes += said
                df.createOrReplaceTempView(f"_file_{name}")
                found[name] = con.table(f"_file_{name}")
                if any(s.repeated_header or s.blank for s in scans.values()):
                    header, blank = _filler_rows(found[name])
                    found[name] = found[name].filter(~(header | blank))
                    notes.append(_filler_note(f.name, scans))
            else:
                found[name] = _spark_parquet(con, parts, f"_file_{name}", f.name, notes)
                counts[name] = _parquet_rows(parts)
        except SpreadsheetError as e:
            unreadable[name] = str(e)
        except Exception as e:  # noqa: BLE001 - any reader error is the user's file: report it as such
            unreadable[name] = f"cannot read {f.name}: {_first_line(e)}"
    return found, unreadable, files, notes, counts


def _spark_copies(f: Path) -> Path:
    """The folder (made) for copies Spark reads in file ``f``'s place: a workbook's sheet, a CSV from its header
    row, in UTF-8 or decompressed. It lasts as long as the process, because Spark reads lazily."""
    folder = _spark_scratch() / hashlib.md5(str(f.resolve()).encode()).hexdigest()
    folder.mkdir(exist_ok=True)
    return folder


def _spark_readable_csv(f: Path, shown: str, notes: list[str]) -> Path:
    """``f``, or a copy Spark reads as the DuckDB engine reads ``f``: in UTF-8 (Spark would read other bytes as
    U+FFFD, silently; a note says so) and decompressed when its suffix is ".gz" written otherwise (Hadoop
    decompresses by the suffix as written)."""
    not_utf8 = utf8_problem(f)
    unsuffixed = f.name.lower().endswith(".gz") and not f.name.endswith(".gz")
    if not (not_utf8 or unsuffixed):
        return f
    folder = _spark_copies(f)
    if not_utf8:
        read, encoding = utf8_copy(f, folder)
        notes.append(_not_utf8_note(f, not_utf8, encoding, shown))
        return read
    read = folder / f"{csv_stem(f) or f.name[:-3]}.csv"
    with _open_bytes(f) as src, open(read, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return read


def _parquet_rows(parts: list[Path]) -> int:
    """Rows of Parquet files, from their footers (a Spark job per count avoided)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in parts)


def _spark_tables(con, location: str) -> tuple[dict[str, ibis.Table], list[str]]:
    """The contract tables of `spark://DATABASE` (or `spark://CATALOG.DATABASE`) in the session's catalog."""
    parts = urlsplit(location)
    database = unquote(parts.netloc + parts.path).strip("/")
    if not database:
        raise SourceError(f"{location}: a spark:// URL must name a database, e.g. spark://crm")
    try:
        present = set(con.list_tables(database=tuple(database.split(".")) if "." in database else database))
    except Exception as e:  # noqa: BLE001 - no such database, no permission
        raise SourceError(f"cannot list the tables of Spark database {database}: {_first_line(e)}") from e
    db = tuple(database.split(".")) if "." in database else database
    names, notes = _contract_tables(present)
    return {n: con.table(t, database=db) for n, t in names.items()}, notes


def open_source(location: str | Path, column_map: dict[str, dict[str, str]] | None = None, *,
                engine: str = "duckdb", spark=None) -> Source:
    """Open a source (see the module docstring) on `engine` ("duckdb" or "spark"; `spark`: the SparkSession to
    use, default `spark_session()`). A `spark://DATABASE` location implies the Spark engine. Raises SourceError
    when it cannot be opened at all; a table whose file cannot be read is recorded in `Source.unreadable` for
    validation to report."""
    loc = str(location)
    reading = reading_plan(column_map)
    if "://" in loc and urlsplit(loc).scheme.lower() == SPARK_SCHEME:
        engine = "spark"
    if engine not in ENGINES:
        raise SourceError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if engine == "spark":
        return _open_spark(loc, reading, spark)
    con = _engine()
    _check_date_formats(con, reading)
    files: list[Path] = []
    unreadable: dict[str, str] = {}
    notes: list[str] = []
    uncopied: dict[str, list[str]] = {}
    if "://" in loc:
        scheme = urlsplit(loc).scheme.lower()
        if scheme == "duckdb":
            (found, notes), kind = _attach_duckdb(con, *_duckdb_path(loc)), "duckdb"
        else:
            (found, unreadable, notes, uncopied), kind = _copy_from_ibis(con, loc, reading), scheme
    else:
        path = Path(loc)
        if path.is_dir():
            found, unreadable, files, notes = _read_folder(con, path)
            kind = "folder"
        elif path.is_file() and path.suffix.lower() in DUCKDB_SUFFIXES:
            (found, notes), kind = _attach_duckdb(con, path), "duckdb"
        elif path.is_file() and is_workbook(path):
            found, unreadable, files, notes = _read_workbook(con, path)
            kind = "workbook"
        elif path.is_file() and is_other_spreadsheet(path):
            raise SourceError(not_read_advice(path))
        elif path.is_file() and (path.suffix.lower() == ".parquet" or csv_stem(path)):
            raise SourceError(f"{loc} is one file: point --data at the folder holding one file per table "
                              f"({', '.join(t for t, s in TABLES.items() if s.required)}, …)")
        else:
            raise SourceError(f"no data source at {loc}: expected a folder of CSV/Parquet/Excel files, an Excel "
                              "workbook with a sheet per table (.xlsx), a .duckdb file or a database URL "
                              "(duckdb:///file.duckdb, postgres://user@host/db)")
    raw, reading, notes = _read_as_ours(found, reading, notes)
    return Source(redact(loc), con, raw, files, kind=kind, reading=reading, unreadable=unreadable, notes=notes,
                  uncopied=uncopied)


def _read_as_ours(found: dict[str, ibis.Table], reading: dict[str, TableReading], notes: list[str]):
    """The tables with our column names (`column_map`, then the contract's names spelled the source's way), the
    reading settings that say so, and the notes with what was read as what."""
    reading, notes = dict(reading), list(notes)
    for name, t in found.items():
        reading[name], said = _table_reading(name, t.columns, reading.get(name))
        notes += said
    reading = {k: r for k, r in reading.items() if r != TableReading() or k not in found}
    return {name: _apply_reading(t, reading.get(name, TableReading())) for name, t in found.items()}, reading, notes


def _open_spark(loc: str, reading: dict[str, TableReading], spark) -> Source:
    """`open_source` on the Spark engine: a folder read by Spark in place, or the tables of spark://DATABASE."""
    dated = sorted(t for t, r in reading.items() if r.date_format)
    if dated:
        raise SourceError(f"column_map.{dated[0]}.date_format is not supported on the Spark engine: write the "
                          "dates as YYYY-MM-DD (or as Parquet dates), or use the DuckDB engine")
    files: list[Path] = []
    unreadable: dict[str, str] = {}
    notes: list[str] = []
    counts: dict[str, int] = {}
    if "://" in loc:
        scheme = urlsplit(loc).scheme.lower()
        if scheme != SPARK_SCHEME:
            raise SourceError(f"{redact(loc)}: the Spark engine reads a folder of Parquet/CSV files or the tables of "
                              "spark://DATABASE; read other databases with the DuckDB engine")
        con = _spark_engine(spark)
        (found, notes), kind = _spark_tables(con, loc), SPARK_SCHEME
    else:
        path = Path(loc)
        if path.is_file() and is_workbook(path):
            raise SourceError(f"{loc}: the Spark engine does not read a workbook of several tables: read it with the "
                              "DuckDB engine, or put one workbook (or CSV file) per table in a folder")
        if not path.is_dir():
            raise SourceError(f"no data source at {loc}: the Spark engine reads a folder of Parquet/CSV/Excel files "
                              "(one file or folder of part files per table) or spark://DATABASE")
        con = _spark_engine(spark)
        found, unreadable, files, notes, counts = _read_folder_spark(con, path)
        kind = "folder"
    raw, reading, notes = _read_as_ours(found, reading, notes)
    return Source(redact(loc), con, raw, files, kind=kind, engine="spark", reading=reading, unreadable=unreadable,
                  notes=notes, _counts=counts)
