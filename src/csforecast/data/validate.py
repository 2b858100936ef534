"""Validate a source against the data contract and report every problem in one pass, not the first.

Each problem names the table, the column, the rule, how many rows break it and example rows: the row's key
with the offending value beside it. Errors make the data unusable (commands exit 2 and write nothing);
warnings are reported and tolerated; notes (level "info") say what the reader found or chose.

One pass means: a table's structural problems (a missing column, a column of the wrong kind) are reported
together with the value problems of its other columns; a rule that needs a column or table that is missing
is skipped (that absence is the problem reported), so an empty `accounts` table is "accounts is empty", not a
foreign-key error for every other table. Values are read by the loader's own rule (`parse.read_as`), so a
value validation accepts is a value the loader reads.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import NamedTuple

import ibis

from csforecast.data.contract import (ARMS, CALL_CATEGORIES, OPPORTUNITY_KINDS, OPPORTUNITY_STAGES, PRIORITIES,
                                      SCORE_RANGES, SENTIMENT_WORDS, SURVEY_KINDS, TABLES, TOUCH_KINDS, UNASSIGNED,
                                      MONTHS_PER_YEAR, health_sources)
from csforecast.data.parse import (COMMON_DATE_FORMATS, DAY_NUMBER, NULL_TEXTS, NUMBER_FORMATS,
                                   SPREADSHEET_DAY_ZERO, SPREADSHEET_DAYS, looks_like_formatted_number,
                                   no_value_word, null_text, number_in_format, number_marks, padded, present, read_as,
                                   readable, reads_as_date_format, respelled, spells_a_level, spreadsheet_date, squashed,
                                   trimmed)
from csforecast.data.sources import (
    DATE_FORMAT_KEY,
    EVERY_TABLE,
    HEADER_SEARCH_ROWS,
    INFER,
    MISSING_SUCCESSORS_KEY,
    NUMBER_FORMAT_KEY,
    READ_ONCE,
    REPEATED_ROWS_KEY,
    Source,
    SourceFindings,
    TableReading,
)
from csforecast.data.successors import SUCCESSOR_GRACE_DAYS, inferred_successors
from csforecast.diskcache import DiskCache, code_digest, key_digest

EXAMPLES = 5
LEVELS = ("error", "warning", "info")
# warnings about rows that name nothing (sources.dropped_references): Source.table leaves those rows out
DROPPED_RULES = ("unknown_account", "unknown_contract")
_TYPE_WORDS = {"float": "a number", "int": "a whole number", "bool": "true/false", "date": "a date",
               "string": "text"}


@dataclass
class Problem:
    level: str        # "error" | "warning" | "info"
    table: str
    column: str | None
    rule: str
    count: int
    message: str
    examples: list[str] = field(default_factory=list)
    # the source's own column when `column` is read from one named otherwise ("Account ID"; "'MRR' × 12")
    source_column: str | None = None

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        if self.source_column:
            where += f" (read from {self.source_column})"
        ex = f" (e.g. {'; '.join(self.examples)})" if self.examples else ""
        rows = f", {self.count} row(s)" if self.count else ""
        return f"{self.level.upper()} {where}: {self.message} [{self.rule}{rows}]{ex}"


@dataclass
class Report:
    source: str
    as_of: str
    problems: list[Problem] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    usage_metrics: dict[str, int] = field(default_factory=dict)   # metric -> rows
    missing_features: dict[str, list[str]] = field(default_factory=dict)  # absent/empty table -> features
    missing_health: list[str] = field(default_factory=list)       # health components with no input at all

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "warning"]

    @property
    def notes(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "info"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {"source": self.source, "as_of": self.as_of, "ok": self.ok, "errors": len(self.errors),
                "warnings": len(self.warnings), "row_counts": self.row_counts,
                "usage_metrics": self.usage_metrics, "missing_features": self.missing_features,
                "missing_health": self.missing_health,
                "problems": [asdict(p) for p in self.problems]}

    def summary(self) -> str:
        """The closing line of a text report."""
        rows = ", ".join(f"{k} {v:,}" for k, v in self.row_counts.items())
        metrics = f"; {len(self.usage_metrics)} usage metric(s)" if self.usage_metrics else ""
        return f"{len(self.errors)} error(s), {len(self.warnings)} warning(s); rows: {rows}{metrics}"

    def lines(self) -> list[tuple[str, str]]:
        """(level, text) lines of the text report: every problem, then the summary (level "summary")."""
        return [(p.level, str(p)) for p in self.problems] + [("summary", self.summary())]


class DataValidationError(Exception):
    def __init__(self, report: Report):
        self.report = report
        lines = [str(p) for p in report.errors[:20]]
        more = len(report.errors) - len(lines)
        super().__init__(f"{len(report.errors)} data error(s) in {report.source}:\n  " + "\n  ".join(lines)
                         + (f"\n  … and {more} more (csforecast validate --data … lists all)" if more > 0 else ""))


_VALUE_LIKE = re.compile(r"[\s$€£¥+\-(]*\d[\d\s.,:/\-T+Z%)]*")


def _reads_as_a_value(name: str) -> bool:
    """Whether a column name reads as a value rather than a name: a date, a time or a number (``2024-12-31``,
    ``8081.36``, ``$1,200``, ``16``), as the first row of a CSV written without its header holds."""
    return bool(_VALUE_LIKE.fullmatch(name.strip()))


def _header_below(t: ibis.Table, names: list[str]) -> list[str] | None:
    """The header row of a table whose first line is not its header (lines above it, a report's title, were read
    as the header): the values of the first of its first ``HEADER_SEARCH_ROWS`` rows that holds two or more of
    ``names`` (spelled any way, :func:`squashed`), those it holds; None if no row does."""
    ours = {squashed(n) for n in names}
    for row in t.limit(HEADER_SEARCH_ROWS).to_pyarrow().to_pylist():
        found = [str(v).strip() for v in row.values() if v is not None and squashed(str(v)) in ours]
        if len(found) >= 2:
            return found
    return None


def _listed(texts) -> str:
    """``'a', 'b' or 'c'``: texts quoted as written (no escapes, unlike repr)."""
    quoted = [f"'{t}'" for t in texts]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _all(t: ibis.Table, cond) -> bool:
    """Whether `cond` holds on every row of `t`."""
    return not int(t.filter(~cond).count().to_pyarrow().as_py())


def _text(x):
    return x.cast("string").fill_null("(missing)")


def _label(t: ibis.Table, cols: tuple[str, ...], show: tuple[str, ...] = ()):
    """`key=value key=value: col='value'`: the row's key columns, then the offending values."""
    key = [c for c in cols if c in t.columns]
    parts = []
    for c in key:
        parts += [ibis.literal(f"{c}="), _text(t[c]), ibis.literal(" ")]
    parts = parts[:-1] if parts else [ibis.literal("row")]
    shown = [c for c in show if c in t.columns and c not in key]
    for i, c in enumerate(shown):
        # a missing value is said as such, not quoted as text (a file may hold the text 'NULL', which is not this)
        said = ibis.ifelse(t[c].isnull(), ibis.literal(f"{c} missing"),
                           ibis.literal(f"{c}='").concat(t[c].cast("string"), ibis.literal("'")))
        parts += [ibis.literal(": " if i == 0 else ", "), said]
    return ibis.literal("").concat(*parts)


def _id_key(x):
    """An ID as two exports may write it differently: in capitals, without separators, leading zeros (a
    spreadsheet drops them: '00042' and '42', 'a-42' and 'A42') and a decimal .0 (a tool that read the IDs as
    numbers writes them so: '1000.0' and '1000')."""
    return (x.cast("string").upper().re_replace(r"\.0+$", "").re_replace(r"[^A-Z0-9]", "")
            .re_replace(r"^0+", ""))


def _unmatched(message: str, column: str, target: ibis.Table, target_name: str, target_column: str):
    """`message` for rows whose ``column`` names no ``target_column`` of ``target``, as a function of those rows
    (`_Checker.add`): when some would match but for how the IDs are written (:func:`_id_key`), it says so with
    an example pair."""
    def said(bad: ibis.Table) -> str:
        ours = target.select(w=target[target_column]).filter(lambda r: r.w.notnull()).distinct()
        near = bad.semi_join(ours, _id_key(bad[column]) == _id_key(ours.w))
        rows = near.count().to_pyarrow().as_py()
        if not rows:
            return message
        v = near[column].min().to_pyarrow().as_py()
        w = ours.filter(_id_key(ours.w) == _id_key(ibis.literal(v))).w.min().to_pyarrow().as_py()
        return (f"{message}; {rows} of these rows name one in {target_name}.{target_column} when case, separators, "
                f"leading zeros and a decimal .0 are ignored (e.g. '{v}' and '{w}'): the two tables write their IDs "
                f"differently; export them the same way (a spreadsheet drops leading zeros; a tool that read the IDs "
                f"as numbers writes 1000 as 1000.0)")
    return said


# the dates a customer's history can hold; one outside is a typo or a placeholder (`implausible_date`)
PLAUSIBLE_DATES = (date(1900, 1, 1), date(2199, 12, 31))


# the optional columns whose missing values another rule reports (column -> that rule), so that one empty in every
# row is not also `empty_column`
EMPTY_COLUMN_RULES = {("accounts", "segment"): "no_segment", ("accounts", "created_at"): "no_created_at",
                      ("contracts", "renewed_by"): "renewals_inferred", ("contracts", "seats"): "no_seats"}


class _Rule(NamedTuple):
    """A rule `_Checker.add` keeps until it is counted: the rows of `t` where `cond` holds are reported."""
    level: str
    table: str
    column: str | None
    rule: str
    message: object    # text, or a function of the rows found returning it
    t: ibis.Table
    cond: ibis.BooleanValue
    show: tuple
    label_cols: tuple | None
    every: bool = False   # reported only when it holds in every row of the table (a column empty throughout)


class _Checker:
    def __init__(self, source: Source, as_of: date):
        self.source = source
        self.as_of = as_of
        self.report = Report(source.location, as_of.isoformat())
        self.usable: set[str] = set()   # tables present, readable and non-empty
        # what the pass found, in the order it checked: problems, and rules `add` has not counted yet (their place
        # kept, so that the report's order does not depend on when a rule is counted)
        self._entries: list[Problem | _Rule] = []
        self._pending: dict[int, tuple[ibis.Table, list[_Rule]]] = {}   # id(t) -> (t, its uncounted rules)

    # -- helpers ---------------------------------------------------------------------------------------
    def problem(self, level, table, column, rule, message, count=0, examples=None):
        self._entries.append(Problem(level, table, column, rule, int(count), message, list(examples or []),
                                     self.source_column(table, column)))

    def source_column(self, table: str, column: str | None) -> str | None:
        """How the source names `column` of `table` when it is read from a column named otherwise (spelled
        another way, mapped, or written per month): "'Account ID'", "'MRR' × 12"; else None."""
        r, raw = self.source.reading.get(table), self.source.raw.get(table)
        theirs = r.rename.get(column) if r and column else None
        if theirs is None or theirs == column or raw is None or column not in raw.columns:   # not read from it
            return None
        return f"'{theirs}' × {MONTHS_PER_YEAR}" if column in r.per_month else f"'{theirs}'"

    def add(self, level, table, column, rule, message, t: ibis.Table, cond, show=(), label_cols=None, every=False):
        """Report the rows of `t` where `cond` holds, with examples (key and the `show` columns' values).
        `message` may be a function of those rows (a table), called only when there are some; with `every`, only
        when `cond` holds in every row of `t` (which must hold the table's rows as found), without examples.

        Counted later (:meth:`count_pending`), in one query with every other rule on the same `t` (the same
        expression object: a table as found, `typed`) since the last count: a query costs ~20 ms on DuckDB however
        few rows it reads, ~0.3 s on a local Spark session and a warehouse's far more, so a table's cell, value and
        date rules are one scan each, not one per rule. Examples are read only for rules that found rows. The
        rule's place in the report is where it was added."""
        r = _Rule(level, table, column, rule, message, t, cond, show, label_cols, every)
        self._pending.setdefault(id(t), (t, []))[1].append(r)
        self._entries.append(r)

    def count_pending(self):
        """Count the rules `add` has kept, one aggregate per table expression, and put the problems of those that
        found rows in the report, in the order the pass checked them."""
        pending, self._pending = self._pending, {}
        rows: dict[int, int] = {}     # id(rule) -> the rows where it holds
        for t, rules in pending.values():
            counts = t.aggregate(**{f"rule{i}": t.count(where=r.cond) for i, r in enumerate(rules)}).to_pyarrow()
            rows.update((id(r), int(counts.column(f"rule{i}")[0].as_py() or 0)) for i, r in enumerate(rules))
        entries, self._entries = self._entries, []
        for e in entries:
            if isinstance(e, Problem):
                self.report.problems.append(e)
                continue
            count = rows[id(e)]
            if count and (not e.every or count == self.source.row_count(e.table)):
                self.report.problems.append(self._found_rows(e, count))

    def _found_rows(self, r: _Rule, count: int) -> Problem:
        bad = r.t.filter(r.cond)
        message = r.message(bad) if callable(r.message) else r.message
        spec = TABLES.get(r.table)
        cols = r.label_cols or (spec.row_label if spec else ())
        k = _label(bad, cols, r.show or ((r.column,) if r.column else ()))
        examples = [] if r.every else (   # every row: no example says more than the count
            bad.select(k=k).order_by("k").limit(EXAMPLES).to_pyarrow().column("k").to_pylist())
        return Problem(r.level, r.table, r.column, r.rule, count, message, examples,
                       self.source_column(r.table, r.column))

    def has_cols(self, name: str, *cols: str) -> bool:
        return name in self.usable and all(c in self.source.raw[name].columns for c in cols)

    def typed(self, name: str) -> ibis.Table:
        return self.source.as_found(name)   # every row: validation reports what the pipeline will leave out

    # -- the pass --------------------------------------------------------------------------------------
    def run(self) -> Report:
        src = self.source
        self.check_settings()
        for note in src.notes:
            self.problem("info", "source", None, "reading", note)
        absent: list[str] = []
        for name, spec in TABLES.items():
            if name in src.unreadable:
                self.problem("error", name, None, "unreadable_table", src.unreadable[name], 0)
                continue
            if name not in src.raw:
                if spec.required:
                    self.problem("error", name, None, "missing_table", f"required table '{name}' not found", 0)
                else:
                    absent.append(name)
                continue
            n = src.row_count(name)
            self.report.row_counts[name] = n
            self.check_structure(name)
            if n == 0:
                if spec.required:
                    self.problem("error", name, None, "empty_table", f"{name} is empty (a required table)", 0)
                else:
                    absent.append(name)
                continue
            self.usable.add(name)
            self.check_cells(name)
        # before anything reads the typed tables; the other findings are published whole when the pass ends
        self.count_pending()
        src.use_findings(replace(src.findings, padded_text=_found_in(self.report, *REWRITTEN_RULES),
                                 spelled_levels=_found_in(self.report, "spelled_levels", "respelled_names")))
        self.explain_absent(absent)
        self.note_spelled_groups()
        self.check_keys_and_refs()
        self.check_values()
        self.check_dates()
        self.check_chains()
        self.check_successors()
        self.check_seats()
        self.count_usage_metrics()
        self.count_pending()
        return self.report

    def check_settings(self):
        for table, r in self.source.reading.items():
            if table == EVERY_TABLE:
                known, of = {c for spec in TABLES.values() for c in spec.names_read}, "any table"
            elif table in TABLES:
                known, of = set(TABLES[table].names_read), table
            else:
                self.problem("warning", table, None, "column_map",
                             f"column_map.{table} names no table of the contract ({', '.join(TABLES)}); ignored")
                continue
            for ours in r.rename:
                if ours not in known:
                    listed = "" if table == EVERY_TABLE else f" ({', '.join(sorted(known))})"
                    self.problem("warning", table, ours, "column_map",
                                 f"column_map.{table}.{ours}: '{ours}' is not a column of {of}{listed}; ignored")

    def check_structure(self, name):
        """Missing columns and columns whose kind cannot hold the contract's type. A table with none of the
        contract's columns whose column names read as values (a date, a number) was written without its header
        row: one error says so, rather than one per column. A missing required column's message lists the
        table's columns that are not read as any of ours, the names a column_map entry can give."""
        t, spec = self.source.raw[name], TABLES[name]
        rename = self.source.reading.get(name)
        ours = {c.name for c in spec.columns}
        others = [c for c in t.columns if c not in ours]
        if others and not ours & set(t.columns):
            values = [c for c in others if _reads_as_a_value(c)]
            if values:
                shown = ", ".join(f"'{c}'" for c in t.columns[:6]) + (", …" if len(t.columns) > 6 else "")
                self.problem("error", name, None, "no_header",
                             f"{name} seems to have no header row: its column names read as values ({shown}), as a "
                             f"table's first row does. csforecast takes the first row for the column names: add a "
                             f"header row ({', '.join(c.name for c in spec.columns)})")
                return
            names = _header_below(t, spec.names_read)
            if names:
                shown = ", ".join(f"'{c}'" for c in t.columns[:3]) + (", …" if len(t.columns) > 3 else "")
                self.problem("error", name, None, "header_not_first",
                             f"{name}'s header row is not its first line: a row below holds the column names "
                             f"({', '.join(map(repr, names[:4]))}{', …' if len(names) > 4 else ''}), while "
                             f"csforecast takes the first line for them, which reads {shown} (a report's title?). "
                             f"Remove the line(s) above the header row")
                return
        others += [c for c in self.source.uncopied.get(name, []) if c not in others]   # left in a database
        listed = ", ".join(f"'{c}'" for c in others[:8]) + (", …" if len(others) > 8 else "")
        for col in spec.columns:
            if col.name not in t.columns:
                theirs = rename.rename.get(col.name) if rename else None
                hint = f" (column_map maps it to '{theirs}', which is not there either)" if theirs else ""
                if col.nullable:
                    # a column with a documented fallback says it ("null = ..."); the others are simply empty
                    reading = f"read as empty ({col.doc})" if col.doc.startswith("null = ") else "treated as empty"
                    self.problem("warning", name, col.name, "missing_optional_column",
                                 f"optional column '{col.name}' not found{hint}; {reading}")
                else:
                    among = (f"; its columns not read as ours are {listed}: if one of them is it, map it with "
                             f"{col.name} = \"their name\" under [column_map.{name}]") if others and not theirs else ""
                    self.problem("error", name, col.name, "missing_column",
                                 f"required column '{col.name}' not found{hint}{among}")
                continue
            found = t[col.name].type()
            if not readable(found, col.type):
                self.problem("error", name, col.name, "type",
                             f"column has type {found}, which cannot hold {_TYPE_WORDS[col.type]}",
                             self.source.row_count(name))

    def check_cells(self, name):
        """Per column: values the loader cannot read (shown), and missing values where none may be."""
        t, spec = self.source.raw[name], TABLES[name]
        fmt, numbers = self.source.date_format(name), self.source.number_format(name)
        for col in spec.columns:
            if col.name not in t.columns or not readable(t[col.name].type(), col.type):
                continue
            x = t[col.name]
            if not x.type().is_null():
                self.add("error", name, col.name, "type", lambda bad, c=col: self._unreadable_message(name, c, bad),
                         t, present(x, col.type) & read_as(x, col.type, fmt, number_format=numbers).isnull())
            if col.type == "date" and not (x.type().is_temporal() or x.type().is_null()):
                self.add("warning", name, col.name, "spreadsheet_days", "dates written as the numbers of days "
                         "spreadsheets count (45292 is 2024-01-01; a fraction is the time of day): read as those "
                         "dates. The column was formatted as numbers in the spreadsheet it came from; format it as "
                         "dates there to be sure", t, spreadsheet_date(x).notnull())
            if col.left_out:
                self.add("warning", name, col.name, "left_out", f"rows without {col.name} are left out "
                         f"({col.left_out})", t, ~present(x, col.type))
            elif not col.nullable:
                why = f": {col.when_missing}" if col.when_missing else ""
                self.add("error", name, col.name, "null", f"missing values in a required column{why}", t,
                         ~present(x, col.type))
            elif (name, col.name) not in EMPTY_COLUMN_RULES:
                reading = f"read as empty ({col.doc})" if col.doc.startswith("null = ") else "treated as empty"
                self.add("warning", name, col.name, "empty_column", f"optional column '{col.name}' holds no value in "
                         f"any row: {reading}, as if the export did not have it. If the source has the values, "
                         "export them", t, x.isnull() if x.type().is_null() else ~present(x, col.type), every=True)
            if col.levels:
                self.add("info", name, col.name, "spelled_levels", f"values written another way, read as the "
                         f"levels they spell ({', '.join(col.levels)})", t,
                         spells_a_level(read_as(x, col.type, fmt), col.levels))
            if col.one_spelling:
                self.add("info", name, col.name, "respelled_names", "names written another way (case, spaces, "
                         "punctuation: Active Users), read in one spelling, lower case with words joined by _ "
                         "(active_users), so that a name written two ways is one", t,
                         respelled(read_as(x, col.type, fmt)))
            if col.type == "string" and x.type().is_string():
                self.add("info", name, col.name, "padded_text", "text with surrounding spaces, or only spaces: read "
                         "without the spaces (only spaces: missing)", t, padded(x))
            if x.type().is_string():
                self.add("info", name, col.name, "null_text", f"the text {_listed(NULL_TEXTS)} (how "
                         "database clients write a missing value): read as missing", t, null_text(x))
            if x.type().is_string() and col.type != "string":
                self.add("info", name, col.name, "no_value_text", "text such as N/A, #N/A, NA, NaN or None (how "
                         "spreadsheets and data tools write a missing value): read as missing", t, no_value_word(x))

    def _unreadable_message(self, name, col, bad: ibis.Table) -> str:
        """What is wrong with the unreadable values `bad[col]` and, when they all fit a common way of writing
        dates or numbers, what to do about it."""
        text = bad[col.name].cast("string")
        if col.type == "date":
            fmt = self.source.date_format(name)
            if fmt:
                return f"values that do not match date_format '{fmt}' (nor YYYY-MM-DD)"
            if _all(bad, text.strip().re_search(DAY_NUMBER)):
                first, last = (SPREADSHEET_DAY_ZERO + timedelta(days=n) for n in SPREADSHEET_DAYS)
                return (f"values that cannot be read as a date (YYYY-MM-DD); they are all numbers, as a "
                        f"spreadsheet keeps dates, but outside {SPREADSHEET_DAYS[0]}–{SPREADSHEET_DAYS[1]} (the day "
                        f"numbers of {first} to {last}, the ones read as dates): if they count days from another "
                        f"day (1970-01-01?), write them as dates")
            if self.source.engine == "spark":   # which reads no declared format
                return ("values that cannot be read as a date (YYYY-MM-DD); the Spark engine reads no other "
                        "format: write the dates as YYYY-MM-DD (or as Parquet dates), or use the DuckDB engine "
                        f"with {DATE_FORMAT_KEY} under [column_map.{name}]")
            fits = self._formats_fitting_all(text, COMMON_DATE_FORMATS, reads_as_date_format)
            where = f"under [column_map.{name}] (or [column_map.{EVERY_TABLE}], for every table)"
            if len(fits) == 1:
                return (f"values that cannot be read as a date (YYYY-MM-DD); they all read as {fits[0]}: declare "
                        f"{DATE_FORMAT_KEY} = \"{fits[0]}\" {where}")
            if fits:
                return (f"values that cannot be read as a date (YYYY-MM-DD); they read as any of "
                        f"{', '.join(fits)} (no value tells them apart): declare the one your system writes, "
                        f"e.g. {DATE_FORMAT_KEY} = \"{fits[0]}\" {where}")
            return (f"values that cannot be read as a date (YYYY-MM-DD); declare another format with "
                    f"{DATE_FORMAT_KEY} = \"%d/%m/%Y\" (for example) {where}")
        message = f"values that cannot be read as {_TYPE_WORDS[col.type]}"
        declared = self.source.number_format(name)
        if col.type in ("float", "int") and declared:
            return message + f" in number_format '{declared}'"
        if col.type in ("float", "int") and _all(bad, looks_like_formatted_number(text)):
            where = f"under [column_map.{name}] (or [column_map.{EVERY_TABLE}], for every table)"
            fits = self._formats_fitting_all(text, NUMBER_FORMATS,
                                             lambda v, f: number_in_format(trimmed(v), f).notnull())
            message += ("; they are numbers written for people (a currency sign, thousands separators or a "
                        "decimal comma): ")
            if fits and len({number_marks(f)[1] for f in fits}) == 1:   # one decimal mark: every fit reads alike
                return message + f"declare how with {NUMBER_FORMAT_KEY} = \"{fits[0]}\" {where}"
            if fits:
                return message + (f"they read in several ways ({' or '.join(fits)}): declare the one meant with "
                                  f"{NUMBER_FORMAT_KEY} {where}")
            message += ("export plain numbers with a decimal point, e.g. 9529.96 for '$9,529.96', or declare "
                        f"{NUMBER_FORMAT_KEY} = \"1,234.56\" (the number 1234.56 your way) {where}")
        return message

    @staticmethod
    def _formats_fitting_all(text: ibis.StringColumn, formats: tuple[str, ...], reads) -> list[str]:
        """The `formats` in which every value of `text` reads (`reads(values, format)`: whether each does), in one
        query over its distinct values (a usage table's unreadable dates are a few hundred days over a million
        rows): the date formats or number formats validation's advice may name."""
        values = text.name("v").as_table().distinct()
        counts = values.aggregate(**{f"f{i}": reads(values.v, f).cast("int64").sum() for i, f in enumerate(formats)},
                                  n=values.count()).to_pyarrow()
        n = counts.column("n")[0].as_py()
        return [f for i, f in enumerate(formats) if counts.column(f"f{i}")[0].as_py() == n]

    def explain_absent(self, absent: list[str]):
        """Say, for each missing or empty optional table, which features and health components go without."""
        gone = set(absent)
        for name in absent:
            spec = TABLES[name]
            empty = name in self.source.raw
            state = "is empty" if empty else "not found"
            comps = []
            for comp in spec.health:
                rest = [t for t in health_sources()[comp] if t not in gone]
                comps.append(f"{comp} (still scored from {', '.join(rest)})" if rest else comp)
            health = f"; health components losing inputs: {', '.join(comps)}" if comps else ""
            level = "warning" if (empty or spec.features) else "info"
            rule = "empty_optional_table" if empty else "missing_optional_table"
            self.problem(level, name, None, rule,
                         f"optional table '{name}' {state}: csforecast goes without {spec.feeds}{health}", 0)
            if spec.features:
                self.report.missing_features[name] = list(spec.features)
        self.report.missing_health = sorted(c for c, tables in health_sources().items()
                                            if all(t in gone for t in tables))

    def check_keys_and_refs(self):
        src = self.source
        for name, spec in TABLES.items():
            if not spec.key or not self.has_cols(name, spec.key):
                continue
            t = self.typed(name)
            t = t.filter(t[spec.key].notnull())
            dup = t.group_by(spec.key).aggregate(n=t.count()).filter(lambda g: g.n > 1)
            if not int(dup.count().to_pyarrow().as_py()):
                continue
            # a key's rows that read the same in every column may be one row exported more than once (a join's
            # fan-out, a file appended twice): read once where the table declares so (Source.table), else an error
            # that says how to declare it; rows that differ are an error, for nothing says which one is right
            variants = t.distinct().group_by(spec.key).aggregate(variants=lambda d: d.count())
            dup = dup.join(variants, spec.key).select(spec.key, "n", "variants")
            read_once = name in self.source.reading and self.source.reading[name].repeated_rows == READ_ONCE
            for kind, keep in (("differ", dup.variants > 1), ("copies", dup.variants == 1)):
                found = dup.filter(keep)
                stats = found.aggregate(keys=found.count(), copies=(found.n - 1).sum()).to_pyarrow().to_pylist()[0]
                if not stats["keys"]:
                    continue
                ex = found.order_by(spec.key).limit(EXAMPLES).to_pandas()
                examples = [f"{spec.key}={k} ×{c}" for k, c in zip(ex[spec.key], ex["n"])]
                if kind == "copies" and read_once:
                    self.problem("warning", name, spec.key, "repeated_rows",
                                 f"rows repeated exactly (the same in every column read): each is read once "
                                 f"({REPEATED_ROWS_KEY} = \"{READ_ONCE}\")", stats["copies"], examples)
                elif kind == "copies":
                    self.problem("error", name, spec.key, "duplicate_key",
                                 f"{spec.key} is not unique: rows repeated exactly (the same in every column read). "
                                 f"If the export repeats rows (a join's fan-out, a file appended twice), declare "
                                 f"{REPEATED_ROWS_KEY} = \"{READ_ONCE}\" under [column_map.{name}] to read each "
                                 f"once", stats["keys"], examples)
                else:
                    self.problem("error", name, spec.key, "duplicate_key",
                                 f"{spec.key} is not unique, and its rows differ: nothing says which one is right",
                                 stats["keys"], examples)
        if self.has_cols("accounts", "account_id"):
            acc = self.typed("accounts").select("account_id")
            for name, spec in TABLES.items():
                if name == "accounts" or not self.has_cols(name, "account_id"):
                    continue
                orphan = src.unreferenced(name, "account_id", "accounts", "account_id")
                if spec.required:
                    self.add("error", name, "account_id", "foreign_key",
                             _unmatched("account_id not found in accounts", "account_id", acc, "accounts",
                                        "account_id"), orphan, ibis.literal(True))
                else:
                    self.add("warning", name, "account_id", "unknown_account",
                             _unmatched("account_id not found in accounts: these rows are ignored", "account_id",
                                        acc, "accounts", "account_id"), orphan, ibis.literal(True))
            if "accounts" in self.usable:   # a column the export lacks reads as null: the same fallbacks
                a = self.typed("accounts")
                self.add("warning", "accounts", "segment", "no_segment",
                         f"accounts with no segment: read as the segment '{UNASSIGNED}', a segment of its own in the "
                         f"models, the forecasts and every figure by segment", a, a.segment.isnull(),
                         label_cols=("account_id",), show=())
                # missing, not unreadable (an unreadable date is an error of its own, `type`)
                r = self.source.raw["accounts"]
                rows, undated = (r, ~present(r.created_at)) if "created_at" in r.columns else (a, a.created_at.isnull())
                self.add("warning", "accounts", "created_at", "no_created_at",
                         "accounts with no created_at: read as the start of the account's first contract", rows,
                         undated & rows.account_id.notnull(), label_cols=("account_id",))
            if self.has_cols("contracts", "account_id"):
                no_contract = acc.anti_join(self.typed("contracts").select("account_id"), "account_id")
                self.add("warning", "accounts", "account_id", "no_contracts", "accounts with no contracts",
                         no_contract, ibis.literal(True), show=(), label_cols=("account_id",))
        if self.has_cols("contracts", "contract_id", "renewed_by"):
            c = self.typed("contracts")
            succ = c.filter(c.renewed_by.notnull())
            ids = c.select(succ_id=c.contract_id)
            missing = succ.anti_join(ids, succ.renewed_by == ids.succ_id)
            self.add("error", "contracts", "renewed_by", "foreign_key",
                     _unmatched("renewed_by names no contract", "renewed_by", c, "contracts", "contract_id"), missing,
                     ibis.literal(True))
            if "account_id" in src.raw["contracts"].columns:
                other = c.select(succ_id=c.contract_id, successor_account=c.account_id)
                j = succ.join(other, succ.renewed_by == other.succ_id).filter(
                    lambda r: r.account_id != r.successor_account)
                self.add("error", "contracts", "renewed_by", "successor_other_account",
                         "renewed_by names a contract of another account (a successor must belong to the "
                         "account it renews)", j, ibis.literal(True),
                         show=("account_id", "renewed_by", "successor_account"))

    def check_values(self):
        if self.has_cols("contracts", "start_date", "end_date"):
            c = self.typed("contracts")
            self.add("error", "contracts", "end_date", "end_before_start", "end_date is not after start_date", c,
                     c.end_date <= c.start_date, show=("start_date", "end_date"))
        for col, word in (("arr", "ARR"), ("seats", "seats")):
            if self.has_cols("contracts", col):
                c = self.typed("contracts")
                self.add("error", "contracts", col, "negative", f"{word} below 0", c, c[col] < 0)
        if self.has_cols("tickets", "priority"):
            t = self.typed("tickets")
            self.add("error", "tickets", "priority", "unknown_value",
                     f"priority not one of {', '.join(PRIORITIES)}", t, t.priority.notnull() & ~t.priority.isin(PRIORITIES))
        if self.has_cols("tickets", "csat"):
            t = self.typed("tickets")
            self.add("error", "tickets", "csat", "out_of_range", "CSAT outside 1–5", t,
                     t.csat.notnull() & ((t.csat < 1) | (t.csat > 5)))
        if self.has_cols("tickets", "opened_at", "closed_at"):
            t = self.typed("tickets")
            self.add("error", "tickets", "closed_at", "closed_before_opened", "closed_at before opened_at", t,
                     t.closed_at.notnull() & (t.closed_at < t.opened_at), show=("opened_at", "closed_at"))
        if self.has_cols("surveys", "kind"):
            s = self.typed("surveys")
            self.add("error", "surveys", "kind", "unknown_value", f"kind not one of {', '.join(SURVEY_KINDS)}",
                     s, s.kind.notnull() & ~s.kind.isin(SURVEY_KINDS))
            if self.has_cols("surveys", "score"):
                for kind, (lo, hi) in SCORE_RANGES.items():
                    self.add("error", "surveys", "score", "out_of_range", f"{kind.upper()} score outside {lo}–{hi}",
                             s, (s.kind == kind) & ((s.score < lo) | (s.score > hi)))
        if self.has_cols("touches", "kind"):
            t = self.typed("touches")
            self.add("warning", "touches", "kind", "unknown_value", f"kind not one of {', '.join(TOUCH_KINDS)}",
                     t, t.kind.notnull() & ~t.kind.isin(TOUCH_KINDS))
        if self.has_cols("interventions", "arm"):
            t = self.typed("interventions")
            self.add("error", "interventions", "arm", "unknown_value", f"arm not one of {', '.join(ARMS)}", t,
                     t.arm.notnull() & ~t.arm.isin(ARMS))
        if self.has_cols("usage", "value"):
            u = self.typed("usage")
            self.add("error", "usage", "value", "negative", "usage value below 0", u, u.value < 0)
        self.check_forecast_calls()
        self.check_opportunities()
        self.check_scorecard_tables()

    def check_scorecard_tables(self):
        """CSM sentiment and success plans (issue 17): a sentiment is a colour or a number 1-5; goals are whole
        counts with goals_met <= goals_total; ROI is not negative."""
        if self.has_cols("csm_sentiment", "sentiment"):
            t = self.typed("csm_sentiment")
            word = t.sentiment.lower()   # typed text: already trimmed
            number = word.try_cast("float64")
            self.add("error", "csm_sentiment", "sentiment", "unknown_value",
                     f"sentiment not one of {', '.join(SENTIMENT_WORDS)} or a number from 1 to 5", t,
                     t.sentiment.notnull() & ~word.isin(tuple(SENTIMENT_WORDS))
                     & (number.isnull() | (number < 1) | (number > 5)))
        for col in ("goals_total", "goals_met", "roi"):
            if self.has_cols("success_plans", col):
                t = self.typed("success_plans")
                self.add("error", "success_plans", col, "negative", f"{col} below 0", t, t[col] < 0)
        if self.has_cols("success_plans", "goals_total", "goals_met"):
            t = self.typed("success_plans")
            self.add("error", "success_plans", "goals_met", "more_than_total", "goals_met above goals_total", t,
                     t.goals_met > t.goals_total, show=("goals_total", "goals_met"))

    def check_forecast_calls(self):
        """CSM calls: a known category, a non-negative amount, a renewing contract that exists and belongs to
        the call's account."""
        if self.has_cols("forecast_calls", "category"):
            t = self.typed("forecast_calls")
            self.add("error", "forecast_calls", "category", "unknown_value",
                     f"category not one of {', '.join(CALL_CATEGORIES)}", t,
                     t.category.notnull() & ~t.category.isin(CALL_CATEGORIES))
        if self.has_cols("forecast_calls", "amount"):
            t = self.typed("forecast_calls")
            self.add("error", "forecast_calls", "amount", "negative", "amount below 0", t,
                     t.amount.notnull() & (t.amount < 0))
        if self.has_cols("forecast_calls", "contract_id", "account_id") and self.has_cols("contracts", "contract_id",
                                                                                          "account_id"):
            t = self.typed("forecast_calls")
            c = self.typed("contracts")
            c = c.select(known_id=c.contract_id, contract_account=c.account_id)
            j = t.filter(t.contract_id.notnull()).left_join(c, t.contract_id == c.known_id)
            # a call export taken at another moment than `contracts` (a call on a renewal contract not yet
            # booked there): like rows of unknown accounts, a warning and left out (Source.table)
            self.add("warning", "forecast_calls", "contract_id", "unknown_contract",
                     "contract_id names no contract in contracts: these calls are ignored", j, j.known_id.isnull(),
                     show=("contract_id",))
            self.add("error", "forecast_calls", "contract_id", "other_account",
                     "contract_id names a contract of another account", j,
                     j.known_id.notnull() & (j.contract_account != j.account_id),
                     show=("account_id", "contract_id", "contract_account"))

    def check_opportunities(self):
        """The expansion pipeline's tables (issue 17): known kinds and stages, amounts, dates, won vs stage."""
        if self.has_cols("opportunities", "kind"):
            o = self.typed("opportunities")
            self.add("error", "opportunities", "kind", "unknown_value",
                     f"kind not one of {', '.join(OPPORTUNITY_KINDS)}", o, o.kind.notnull() & ~o.kind.isin(OPPORTUNITY_KINDS))
        for table in ("opportunities", "opportunity_history"):
            if self.has_cols(table, "stage"):
                o = self.typed(table)
                self.add("error", table, "stage", "unknown_value",
                         f"stage not one of {', '.join(OPPORTUNITY_STAGES)}", o,
                         o.stage.notnull() & ~o.stage.isin(OPPORTUNITY_STAGES))
        if self.has_cols("opportunities", "amount"):
            o = self.typed("opportunities")
            self.add("error", "opportunities", "amount", "negative", "amount below 0", o, o.amount < 0)
        if self.has_cols("opportunities", "created_at", "closed_at"):
            o = self.typed("opportunities")
            self.add("error", "opportunities", "closed_at", "closed_before_created", "closed_at before created_at", o,
                     o.closed_at.notnull() & (o.closed_at < o.created_at), show=("created_at", "closed_at"))
        if self.has_cols("opportunities", "stage", "won"):
            o = self.typed("opportunities")
            self.add("error", "opportunities", "won", "won_vs_stage",
                     "won disagrees with stage (signed is won = true, lost is won = false, an open stage has no won)",
                     o, ((o.stage == "signed") & ~o.won.fill_null(False)) | ((o.stage == "lost") & o.won.fill_null(True))
                     | (o.stage.isin(OPPORTUNITY_STAGES[:4]) & o.won.notnull()), show=("stage", "won"))
        if self.has_cols("opportunity_history", "opportunity_id") and self.has_cols("opportunities", "opportunity_id"):
            h = self.typed("opportunity_history")
            ids = self.typed("opportunities").select("opportunity_id")
            self.add("error", "opportunity_history", "opportunity_id", "foreign_key",
                     "opportunity_id not found in opportunities", h.filter(h.opportunity_id.notnull())
                     .anti_join(ids, "opportunity_id"), ibis.literal(True))

    def check_dates(self):
        self.check_plausible_dates()
        limit = ibis.literal(self.as_of)
        for name, spec in TABLES.items():
            col = spec.date_column
            if not col or not self.has_cols(name, col):
                continue
            t = self.typed(name)
            if spec.booked_ahead:
                # e.g. a renewal signed ahead is exported with its future start date: data, not an error
                self.add("warning", name, col, "booked_ahead", f"{name} dated ({col}) after the as-of date "
                         f"{self.as_of} ({spec.booked_ahead})", t, t[col] > limit,
                         show=(col, "account_id") if "account_id" in t.columns else (col,))
                continue
            self.add("error", name, col, "future_date", f"{col} after the as-of date {self.as_of}", t,
                     t[col] > limit)

    def check_plausible_dates(self):
        """Dates no customer's history holds (before PLAUSIBLE_DATES[0] or after [1]): a typo (0202 for 2022) or a
        placeholder (9999-12-31 for a contract without an end). Read as written, with a warning: the features
        built on them (tenure, days to renewal) are far out."""
        lo, hi = (ibis.literal(d) for d in PLAUSIBLE_DATES)
        for name, spec in TABLES.items():
            cols = [c.name for c in spec.columns if c.type == "date" and self.has_cols(name, c.name)]
            if name not in self.usable or not cols:
                continue
            t = self.typed(name)
            for col in cols:
                why = (": an open-ended contract's placeholder? Export the end of its current term (and its past "
                       "terms as contracts of their own)") if (name, col) == ("contracts", "end_date") else ""
                self.add("warning", name, col, "implausible_date", f"{col} before {PLAUSIBLE_DATES[0].year} or after "
                         f"{PLAUSIBLE_DATES[1].year} (a typo such as 0202 for 2022, or a placeholder such as "
                         f"9999-12-31){why}; read as written", t, (t[col] < lo) | (t[col] > hi), show=(col,))

    def check_chains(self):
        if not self.has_cols("contracts", "contract_id", "renewed_by"):
            return
        c = self.typed("contracts").select("contract_id", "renewed_by").to_pandas()
        c = c[c.contract_id.notna()]
        nxt = dict(zip(c.contract_id, c.renewed_by.where(c.renewed_by.notna(), None)))
        looped: set[str] = set()
        state: dict[str, int] = {}
        for start in nxt:
            path, node = [], start
            while node is not None and node in nxt and state.get(node) is None:
                state[node] = 1
                path.append(node)
                node = nxt[node]
            if node is not None and state.get(node) == 1 and node in path:
                looped.update(path[path.index(node):])
            for n in path:
                state[n] = 2
        if looped:
            self.problem("error", "contracts", "renewed_by", "successor_loop",
                         "successor chain loops back on itself", len(looped),
                         [f"contract_id={k}: renewed_by='{nxt[k]}'" for k in sorted(looped)[:EXAMPLES]])

    def check_successors(self):
        """Successor links an export left out (csforecast.data.successors): all of them (inferred from the dates,
        a warning naming the links made), or some (the contracts that look like a missed link)."""
        if not self.has_cols("contracts", "contract_id", "account_id", "start_date", "end_date"):
            return
        c = self.typed("contracts")
        links = inferred_successors(c)
        if not c.renewed_by.notnull().any().to_pyarrow().as_py():
            self.add("warning", "contracts", "renewed_by", "renewals_inferred",
                     f"no contract has renewed_by: a contract's successor is taken to be the account's next contract "
                     f"starting within {SUCCESSOR_GRACE_DAYS} days of its end_date (these links); export renewed_by "
                     f"to say which contract renews which", links, ibis.literal(True), show=("successor",))
            return
        unlinked = c.filter(c.renewed_by.isnull()).select("contract_id").join(links, "contract_id")
        if self.source.reading.get("contracts", TableReading()).missing_successors == INFER:
            self.add("warning", "contracts", "renewed_by", "successors_filled",
                     f"renewed_by is empty, and a contract of the account starts within {SUCCESSOR_GRACE_DAYS} days "
                     f"of end_date (the successor by the dates, as for an export without renewed_by): read as "
                     f"renewed by it ({MISSING_SUCCESSORS_KEY} = \"{INFER}\")", unlinked, ibis.literal(True),
                     show=("successor",))
            return
        named = c.filter(c.renewed_by.notnull()).select(named_id=c.renewed_by)
        unlinked = unlinked.anti_join(named, unlinked.successor == named.named_id)
        self.add("warning", "contracts", "renewed_by", "probable_successor",
                 f"renewed_by is empty, but a contract of the account that nothing renews starts within "
                 f"{SUCCESSOR_GRACE_DAYS} days of end_date: if it is the renewal, set renewed_by (until then this "
                 f"contract counts as churned and the next one as new business), or declare "
                 f"{MISSING_SUCCESSORS_KEY} = \"{INFER}\" under [column_map.contracts] to read each as renewed "
                 f"by it", unlinked, ibis.literal(True), show=("successor",))

    def check_seats(self):
        """A contracts export with no seats at all (ARR-only billing): what goes without them, said once."""
        if "contracts" not in self.usable:
            return
        c = self.typed("contracts")
        self.add("warning", "contracts", "seats", "no_seats",
                 "no contract has seats: csforecast goes without seat utilisation, the per-seat support features and "
                 "the health measures built on them (deployment; support per seat); every other feature and model is "
                 "unchanged", c, c.seats.isnull(), every=True)

    def note_spelled_groups(self):
        """A note per column of groups (a segment, a region) with a value written several ways: which spellings are
        read as which (:meth:`Source.group_spellings`)."""
        for name in sorted(self.usable):
            for column, spellings in self.source.group_spellings(name).items():
                groups: dict[str, list[tuple[str, int]]] = {}
                for found, (read, rows) in spellings.items():
                    groups.setdefault(read, []).append((found, rows))
                said = "; ".join(f"{', '.join(repr(v) + f' ({n:,} rows)' for v, n in sorted(found))} as {read!r}"
                                 for read, found in sorted(groups.items()))
                moved = sum(rows for found, (read, rows) in spellings.items() if found != read)
                self.problem("info", name, column, "spelled_groups", "a value written several ways (case, spaces, "
                             f"punctuation) is one group, read in the spelling most rows have: {said}", moved)

    def count_usage_metrics(self):
        if not self.has_cols("usage", "metric"):
            return
        u = self.typed("usage")
        u = u.filter(u.metric.notnull())
        m = u.group_by("metric").aggregate(n=u.count()).order_by("metric").to_pandas()
        self.report.usage_metrics = {str(k): int(v) for k, v in zip(m["metric"], m["n"])}
        listed = ", ".join(f"{k} ({v:,} rows)" for k, v in self.report.usage_metrics.items())
        self.problem("info", "usage", "metric", "usage_metrics",
                     f"{len(self.report.usage_metrics)} distinct usage metric(s): {listed}", int(m["n"].sum()))
        self.count_repeated_usage_days(u)

    def count_repeated_usage_days(self, u: ibis.Table):
        """A note when rows share an account, date and metric: the features sum them into that day's value,
        which is right for per-event or per-user rows and double counts a repeated export."""
        if not self.has_cols("usage", "account_id", "date"):
            return
        key = ["account_id", "date", "metric"]
        u = u.filter(u.account_id.notnull() & u.date.notnull())
        shared = u.group_by(key).aggregate(rows=u.count()).filter(lambda g: g.rows > 1)
        rows = u.semi_join(shared, key)
        self.add("info", "usage", None, "repeated_usage_days",
                 "rows that share their account, date and metric: the features add them up into that day's value "
                 "(right for a row per event or per user; a repeated export would count twice)", rows,
                 ibis.literal(True), show=("value",))


def validate(source: Source, as_of: date | None = None, *, cache_dir: Path | None = None) -> Report:
    """Check `source` against the contract; every problem, in one pass. Never raises for the data's sake.

    ``cache_dir``: keep the report there (``diskcache``) keyed by the source's location and content hash, the
    as-of date and the validation code, and return the kept one when the key matches, so that a command run
    again on unchanged data does not validate it again. Only reports without errors are kept; sources computed
    on Spark are never cached."""
    as_of = as_of or date.today()
    if cache_dir is None or source.engine != "duckdb":
        report = _Checker(source, as_of).run()
    else:
        key = key_digest("validation", source.location, source.data_hash, as_of.isoformat(),
                         code_digest("csforecast.data"))
        # a failed validation stops the command: nothing is written for it, not even this
        report = DiskCache(Path(cache_dir), ".json").get_or_compute(
            key, _Checker(source, as_of).run, load=_read_report,
            dump=lambda report, path: path.write_text(json.dumps(asdict(report))), keep=lambda report: report.ok)
    source.use_findings(source_findings(report))
    return report


def source_findings(report: Report) -> SourceFindings:
    """What `report` found that `Source.table` reads with (:class:`SourceFindings`)."""
    rules = {p.rule for p in report.problems}
    return SourceFindings(unreferenced=frozenset((p.table, p.column) for p in report.problems
                                                 if p.rule in DROPPED_RULES),
                          padded_text=_found_in(report, *REWRITTEN_RULES),
                          spelled_levels=_found_in(report, "spelled_levels", "respelled_names"),
                          repeated_rows=frozenset(p.table for p in report.problems if p.rule == "repeated_rows"),
                          successors_inferred="renewals_inferred" in rules,
                          undated_accounts="no_created_at" in rules)


# the rules of the values `parse.read_as` changes in a text column (`parse.rewritten`): SourceFindings.padded_text
REWRITTEN_RULES = ("padded_text", "null_text")


def _found_in(report: Report, *rules: str) -> frozenset[tuple[str, str]]:
    """The (table, column) pairs of the problems of `report` under `rules` (e.g. the text found padded)."""
    return frozenset((p.table, p.column) for p in report.problems if p.rule in rules)


def _read_report(path: Path) -> Report:
    doc = json.loads(path.read_text())
    return Report(**{**doc, "problems": [Problem(**p) for p in doc["problems"]]})


def require_valid(source: Source, as_of: date | None = None) -> Report:
    report = validate(source, as_of)
    if not report.ok:
        raise DataValidationError(report)
    return report
