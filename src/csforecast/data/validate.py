"""Validate a source against the data contract and report every problem found, not the first.

Each problem names the table, the column, the rule, how many rows break it and example row keys.
Errors make the data unusable (commands exit 2 and write nothing); warnings are reported and tolerated.
Checks run as Ibis expressions, so they work on any backend the source lives in.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date

import ibis
import pandas as pd

from csforecast.data.contract import PRIORITIES, SCORE_RANGES, SURVEY_KINDS, TABLES, TOUCH_KINDS, ARMS
from csforecast.data.sources import Source

_IBIS_TYPES = {"string": "string", "date": "date", "float": "float64", "int": "int64", "bool": "boolean"}
EXAMPLES = 5


@dataclass
class Problem:
    level: str        # "error" | "warning"
    table: str
    column: str | None
    rule: str
    count: int
    message: str
    examples: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        ex = f" (e.g. {', '.join(self.examples)})" if self.examples else ""
        return f"{self.level.upper()} {where}: {self.message} [{self.rule}, {self.count} row(s)]{ex}"


@dataclass
class Report:
    source: str
    as_of: str
    problems: list[Problem] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {"source": self.source, "as_of": self.as_of, "ok": self.ok, "errors": len(self.errors),
                "warnings": len(self.warnings), "row_counts": self.row_counts,
                "problems": [asdict(p) for p in self.problems]}


class DataValidationError(Exception):
    def __init__(self, report: Report):
        self.report = report
        lines = [str(p) for p in report.errors[:20]]
        more = len(report.errors) - len(lines)
        super().__init__(f"{len(report.errors)} data error(s) in {report.source}:\n  " + "\n  ".join(lines)
                         + (f"\n  … and {more} more (csforecast validate --data … lists all)" if more > 0 else ""))


def _label(t: ibis.Table, cols: tuple[str, ...]):
    present = [c for c in cols if c in t.columns]
    if not present:
        return ibis.literal("?")
    parts = []
    for c in present:
        parts += [ibis.literal(f"{c}="), t[c].cast("string").fill_null("NULL"), ibis.literal(" ")]
    return ibis.literal("").concat(*parts[:-1])


class _Checker:
    def __init__(self, source: Source, as_of: date):
        self.source = source
        self.as_of = as_of
        self.report = Report(source.location, as_of.isoformat())

    def add(self, level, table, column, rule, message, t: ibis.Table | None = None, cond=None, count=None,
            label_cols=None):
        examples: list[str] = []
        if t is not None and cond is not None:
            bad = t.filter(cond)
            count = int(bad.count().to_pyarrow().as_py())
            if count == 0:
                return
            spec = TABLES.get(table)
            cols = label_cols or (spec.row_label if spec else ())
            examples = bad.select(k=_label(bad, cols)).limit(EXAMPLES).to_pandas()["k"].tolist()
        if count:
            self.report.problems.append(Problem(level, table, column, rule, int(count), message, examples))

    def run(self) -> Report:
        src = self.source
        for name, spec in TABLES.items():
            if not src.has(name):
                if spec.required:
                    self.add("error", name, None, "missing_table", f"required table '{name}' not found", count=1)
                continue
            self.report.row_counts[name] = int(src.raw[name].count().to_pyarrow().as_py())
            self.check_columns(name)
        if self.report.errors:  # cannot type-check further without the columns
            return self.report
        self.check_keys_and_refs()
        self.check_values()
        self.check_dates()
        self.check_chains()
        return self.report

    def check_columns(self, name):
        t, spec = self.source.raw[name], TABLES[name]
        for col in spec.columns:
            if col.name not in t.columns:
                if col.nullable:
                    self.add("warning", name, col.name, "missing_optional_column",
                             f"optional column '{col.name}' not found; treated as empty", count=1)
                else:
                    self.add("error", name, col.name, "missing_column", f"required column '{col.name}' not found",
                             count=1)
                continue
            x = t[col.name]
            casted = x.try_cast(_IBIS_TYPES[col.type])
            self.add("error", name, col.name, "type", f"values that cannot be read as {col.type}", t,
                     x.notnull() & casted.isnull())
            if not col.nullable:
                self.add("error", name, col.name, "null", "missing values in a required column", t, x.isnull())

    def typed(self, name):
        return self.source.table(name)

    def check_keys_and_refs(self):
        src = self.source
        for name, spec in TABLES.items():
            if not src.has(name) or not spec.key:
                continue
            t = self.typed(name)
            dup = t.group_by(spec.key).aggregate(n=t.count()).filter(lambda g: g.n > 1)
            n = int(dup.count().to_pyarrow().as_py())
            if n:
                ex = dup.limit(EXAMPLES).to_pandas()
                self.report.problems.append(Problem(
                    "error", name, spec.key, "duplicate_key", n, f"{spec.key} is not unique",
                    [f"{spec.key}={k} ×{c}" for k, c in zip(ex[spec.key], ex["n"])]))
        acc = self.typed("accounts").select("account_id")
        for name in TABLES:
            if name == "accounts" or not src.has(name):
                continue
            t = self.typed(name)
            orphan = t.anti_join(acc, "account_id")
            cnt = int(orphan.count().to_pyarrow().as_py())
            if cnt:
                ex = orphan.select(k=_label(orphan, TABLES[name].row_label)).limit(EXAMPLES).to_pandas()["k"]
                self.report.problems.append(Problem(
                    "error", name, "account_id", "foreign_key", cnt, "account_id not found in accounts",
                    [f"{k} (account_id not in accounts)" for k in ex]))
        c = self.typed("contracts")
        no_contract = acc.anti_join(c.select("account_id"), "account_id")
        self.add("warning", "accounts", "account_id", "no_contracts", "accounts with no contracts",
                 no_contract, ibis.literal(True), label_cols=("account_id",))
        succ = c.filter(c.renewed_by.notnull())
        ids = c.select(succ_id=c.contract_id)
        missing = succ.anti_join(ids, succ.renewed_by == ids.succ_id)
        cnt = int(missing.count().to_pyarrow().as_py())
        if cnt:
            ex = missing.select(k=_label(missing, ("contract_id", "renewed_by"))).limit(EXAMPLES).to_pandas()["k"]
            self.report.problems.append(Problem("error", "contracts", "renewed_by", "foreign_key", cnt,
                                                "renewed_by names no contract", list(ex)))

    def check_values(self):
        src = self.source
        c = self.typed("contracts")
        self.add("error", "contracts", "end_date", "end_before_start", "end_date is not after start_date", c,
                 c.end_date <= c.start_date)
        self.add("error", "contracts", "arr", "negative", "ARR below 0", c, c.arr < 0)
        self.add("error", "contracts", "seats", "negative", "seats below 0", c, c.seats < 0)
        if src.has("tickets"):
            t = self.typed("tickets")
            self.add("error", "tickets", "priority", "unknown_value", f"priority not one of {', '.join(PRIORITIES)}",
                     t, ~t.priority.isin(PRIORITIES))
            self.add("error", "tickets", "csat", "out_of_range", "CSAT outside 1–5", t,
                     t.csat.notnull() & ((t.csat < 1) | (t.csat > 5)))
            self.add("error", "tickets", "closed_at", "closed_before_opened", "closed_at before opened_at", t,
                     t.closed_at.notnull() & (t.closed_at < t.opened_at))
        if src.has("surveys"):
            s = self.typed("surveys")
            self.add("error", "surveys", "kind", "unknown_value", f"kind not one of {', '.join(SURVEY_KINDS)}", s,
                     ~s.kind.isin(SURVEY_KINDS))
            for kind, (lo, hi) in SCORE_RANGES.items():
                self.add("error", "surveys", "score", "out_of_range", f"{kind.upper()} score outside {lo}–{hi}", s,
                         (s.kind == kind) & ((s.score < lo) | (s.score > hi)))
        if src.has("touches"):
            t = self.typed("touches")
            self.add("warning", "touches", "kind", "unknown_value", f"kind not one of {', '.join(TOUCH_KINDS)}",
                     t, ~t.kind.isin(TOUCH_KINDS))
        if src.has("interventions"):
            t = self.typed("interventions")
            self.add("error", "interventions", "arm", "unknown_value", f"arm not one of {', '.join(ARMS)}", t,
                     ~t.arm.isin(ARMS))
        if src.has("usage"):
            u = self.typed("usage")
            self.add("error", "usage", "value", "negative", "usage value below 0", u, u.value < 0)

    def check_dates(self):
        limit = ibis.literal(self.as_of)
        for name, spec in TABLES.items():
            if not self.source.has(name) or not spec.date_column:
                continue
            t = self.typed(name)
            col = spec.date_column
            self.add("error", name, col, "future_date", f"{col} after the as-of date {self.as_of}", t, t[col] > limit)

    def check_chains(self):
        c = self.typed("contracts").select("contract_id", "renewed_by").to_pandas()
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
            self.report.problems.append(Problem("error", "contracts", "renewed_by", "successor_loop", len(looped),
                                                "successor chain loops back on itself",
                                                [f"contract_id={k}" for k in sorted(looped)[:EXAMPLES]]))


def validate(source: Source, as_of: date | None = None) -> Report:
    return _Checker(source, as_of or date.today()).run()


def require_valid(source: Source, as_of: date | None = None) -> Report:
    report = validate(source, as_of)
    if not report.ok:
        raise DataValidationError(report)
    return report
