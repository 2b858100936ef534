"""The data contract: which tables csforecast reads, their columns, types and keys.

See docs/data-contract.md for the prose version. Types are logical: "string", "date", "float", "int", "bool".
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = False
    doc: str = ""


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    required: bool = False
    key: str | None = None          # unique key column, if any
    date_column: str | None = None  # the column that says when a row happened (point-in-time cut)
    row_label: tuple[str, ...] = field(default_factory=tuple)  # columns that name a row in messages

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


C = Column
TABLES: dict[str, TableSpec] = {t.name: t for t in [
    TableSpec("accounts", (
        C("account_id", "string"), C("name", "string", True), C("segment", "string"),
        C("industry", "string", True), C("region", "string", True), C("csm_id", "string", True),
        C("created_at", "date"),
    ), required=True, key="account_id", date_column="created_at", row_label=("account_id",)),
    TableSpec("contracts", (
        C("contract_id", "string"), C("account_id", "string"), C("start_date", "date"), C("end_date", "date",
          doc="exclusive: the renewal date; the contract covers start_date <= day < end_date"),
        C("arr", "float"), C("seats", "float"), C("auto_renew", "bool", True),
        C("renewed_by", "string", True, "contract_id of the successor"), C("churn_reason", "string", True),
    ), required=True, key="contract_id", date_column="start_date", row_label=("contract_id",)),
    TableSpec("usage", (
        C("account_id", "string"), C("date", "date"), C("metric", "string"), C("value", "float"),
    ), date_column="date", row_label=("account_id", "date", "metric")),
    TableSpec("tickets", (
        C("ticket_id", "string"), C("account_id", "string"), C("opened_at", "date"), C("closed_at", "date", True),
        C("priority", "string"), C("csat", "float", True),
    ), key="ticket_id", date_column="opened_at", row_label=("ticket_id",)),
    TableSpec("surveys", (
        C("account_id", "string"), C("responded_at", "date"), C("kind", "string"), C("score", "float"),
        C("respondent_role", "string", True),
    ), date_column="responded_at", row_label=("account_id", "responded_at", "kind")),
    TableSpec("touches", (
        C("account_id", "string"), C("date", "date"), C("kind", "string"), C("csm_id", "string", True),
    ), date_column="date", row_label=("account_id", "date", "kind")),
    TableSpec("stakeholder_events", (
        C("account_id", "string"), C("date", "date"), C("kind", "string"),
    ), date_column="date", row_label=("account_id", "date", "kind")),
    TableSpec("interventions", (
        C("account_id", "string"), C("date", "date"), C("playbook", "string"), C("arm", "string"),
    ), date_column="date", row_label=("account_id", "date", "playbook")),
]}

PRIORITIES = ("P1", "P2", "P3", "P4")
SURVEY_KINDS = ("nps", "csat", "ces")
TOUCH_KINDS = ("meeting", "email", "call", "qbr", "exec_meeting")
ARMS = ("treatment", "control", "none")
SCORE_RANGES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
