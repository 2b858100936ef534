"""The profile of the data a model was trained on, and what changed between two profiles.

A profile is a small JSON-able dict computed once per training (``profile_source``) and recorded with every
registered model version (MLflow artefact ``data_profile.json`` and version tags). Before a new version may
become champion, its profile is compared with the champion's (``data_changes``); ``csforecast validate``
compares a source with the champions' profiles the same way. docs/operations.md defines every number.

Profile::

    {"as_of": "2026-10-01",                 # the cut used for the label base rate
     "tables": {"tickets": {"rows": 4210, "accounts": 731, "first": "2023-10-02", "last": "2026-09-30",
                            "null_share": {"closed_at": 0.021, "csat": 0.64, ...}},
                "touches": {"rows": 0}, ...},   # every contract table; rows 0 when absent or empty
     "label": {"decisions": 2391, "churns": 371, "base_rate": 0.155}}

``label``: renewal decisions = contracts whose ``end_date`` is before the cut; churns = those of them with no
successor (``renewed_by`` empty); ``base_rate`` = churns / decisions (None without decisions).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import ibis
import pandas as pd

from csforecast.data.contract import TABLES
from csforecast.data.sources import Source

__all__ = ["profile_source", "DataChange", "data_changes", "describe_changes", "MODEL_TABLES"]

# the tables a model reads: a change elsewhere (interventions) never blocks a promotion
MODEL_TABLES = tuple(name for name, spec in TABLES.items() if spec.required or spec.features)


def _day(v) -> str | None:
    if v is None or (isinstance(v, float) and v != v):
        return None
    return str(pd.Timestamp(v).date())


def _table_profile(source: Source, name: str) -> dict:
    """Rows, accounts covered, first/last date and the null share of every contract column of one table."""
    if not source.has(name):
        return {"rows": 0}
    spec = TABLES[name]
    t = source.table(name)
    aggs = {"rows": t.count()}
    if "account_id" in spec.column_names:
        aggs["accounts"] = t.account_id.nunique()
    if spec.date_column:
        aggs["first"] = t[spec.date_column].min()
        aggs["last"] = t[spec.date_column].max()
    for c in spec.column_names:
        aggs[f"null__{c}"] = t[c].isnull().cast("int64").sum()
    row = t.aggregate(**aggs).to_pyarrow().to_pylist()[0]
    n = int(row["rows"])
    out: dict = {"rows": n}
    if "accounts" in row:
        out["accounts"] = int(row["accounts"])
    if spec.date_column:
        out["first"], out["last"] = _day(row["first"]), _day(row["last"])
    out["null_share"] = {c: round(int(row[f"null__{c}"] or 0) / n, 6) for c in spec.column_names}
    return out


def _label(source: Source, cut: date) -> dict:
    c = source.table("contracts")
    due = c.filter(c.end_date < ibis.literal(cut))
    row = due.aggregate(decisions=due.count(),
                        churns=due.renewed_by.isnull().cast("int64").sum()).to_pyarrow().to_pylist()[0]
    n, k = int(row["decisions"]), int(row["churns"] or 0)
    return {"decisions": n, "churns": k, "base_rate": round(k / n, 6) if n else None}


def profile_source(source: Source, as_of: date | None = None) -> dict:
    """The profile of ``source`` (see the module docstring). ``as_of``: the cut for the label base rate
    (renewals due before it); default the day after the latest date in any table. Never raises for the data's
    sake: a table the source lacks (or that is empty) has ``rows`` 0."""
    tables = {name: _table_profile(source, name) for name in TABLES}
    if as_of is None:
        lasts = [t["last"] for t in tables.values() if t.get("last")]
        as_of = (pd.Timestamp(max(lasts)).date() + timedelta(days=1)) if lasts else date.today()
    label = _label(source, as_of) if source.has("contracts") else {"decisions": 0, "churns": 0, "base_rate": None}
    return {"as_of": str(as_of), "tables": tables, "label": label}


@dataclass(frozen=True)
class DataChange:
    """One change between two profiles that blocks a promotion.

    table : the table (``"label"`` for the base rate); rule : ``emptied``, ``rows_lost``, ``accounts_lost``,
    ``date_range_shrank`` or ``base_rate_moved``; message : the sentence shown to the user."""

    table: str
    rule: str
    message: str


def _pct(before: int, after: int) -> str:
    return f"{(after - before) / before:+.0%}" if before else ""


def data_changes(before: dict, after: dict, *, max_loss_share: float = 0.5, date_tolerance_days: int = 31,
                 max_base_rate_change: float = 0.10) -> list[DataChange]:
    """What changed from profile ``before`` (the champion's) to ``after`` (the new data) that blocks a
    promotion, table by table (docs/operations.md):

    - a table that had rows and now has none (``emptied``);
    - a table that lost more than ``max_loss_share`` of its rows (``rows_lost``) or of the accounts it covers
      (``accounts_lost``);
    - a date range that shrank (``date_range_shrank``): its last date is more than ``date_tolerance_days``
      earlier than before, or its span (last - first) is shorter by more than that (a rolling export window
      keeps its span);
    - the label base rate moved by more than ``max_base_rate_change`` (absolute, ``base_rate_moved``).

    Only the tables models read are compared (``MODEL_TABLES``: the required ones and those that feed
    features); tables the new data gained, or that grew, never block. Empty list: nothing blocks."""
    out: list[DataChange] = []
    tb, ta = before.get("tables") or {}, after.get("tables") or {}
    for name, b in tb.items():
        if name not in MODEL_TABLES:
            continue
        a = ta.get(name) or {"rows": 0}
        rb, ra = int(b.get("rows") or 0), int(a.get("rows") or 0)
        if rb == 0:
            continue
        if ra == 0:
            out.append(DataChange(name, "emptied", f"{name} had {rb:,} rows when the champion was trained and now "
                                                   f"has none"))
            continue
        if ra < rb * (1 - max_loss_share):
            out.append(DataChange(name, "rows_lost", f"{name} lost {rb - ra:,} of its {rb:,} rows ({_pct(rb, ra)}; "
                                                     f"more than {max_loss_share:.0%} blocks)"))
        ab, aa = b.get("accounts"), a.get("accounts")
        if name != "accounts" and ab and aa is not None and aa < ab * (1 - max_loss_share):
            out.append(DataChange(name, "accounts_lost",
                                  f"{name} covers {aa:,} accounts, down from {ab:,} ({_pct(ab, aa)}; more than "
                                  f"{max_loss_share:.0%} blocks)"))
        fb, lb, fa, la = (b.get("first"), b.get("last"), a.get("first"), a.get("last"))
        if fb and lb and fa and la:
            span_b = (pd.Timestamp(lb) - pd.Timestamp(fb)).days
            span_a = (pd.Timestamp(la) - pd.Timestamp(fa)).days
            if (pd.Timestamp(lb) - pd.Timestamp(la)).days > date_tolerance_days:
                out.append(DataChange(name, "date_range_shrank",
                                      f"{name} now ends on {la}, before its earlier end {lb} (dates {fa}..{la}, "
                                      f"were {fb}..{lb}; ending more than {date_tolerance_days} days earlier "
                                      f"blocks)"))
            elif span_a < span_b - date_tolerance_days:
                out.append(DataChange(name, "date_range_shrank",
                                      f"{name} spans {span_a:,} days ({fa}..{la}), down from {span_b:,} ({fb}..{lb}; "
                                      f"more than {date_tolerance_days} days shorter blocks)"))
    lb_, la_ = (before.get("label") or {}).get("base_rate"), (after.get("label") or {}).get("base_rate")
    if lb_ is not None and la_ is not None and abs(la_ - lb_) > max_base_rate_change:
        out.append(DataChange("label", "base_rate_moved",
                              f"the label base rate (contracts not renewed) moved from {lb_:.1%} to {la_:.1%} "
                              f"({(la_ - lb_) * 100:+.1f} points; more than {max_base_rate_change * 100:.0f} blocks)"))
    return out


def describe_changes(changes: list[DataChange]) -> str:
    """The changes as one sentence list (``"; "``-separated), for messages and tags."""
    return "; ".join(c.message for c in changes)
