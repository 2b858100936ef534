"""Successor links from dates, for a contracts export that has no `renewed_by`.

Whether a contract renewed or churned is read from its successor link (`renewed_by`, docs/data-contract.md).
Many CRM and billing exports have no such link: each renewal is just the account's next contract. Read as
written, every ended contract of such an export would be a churn. When no contract has `renewed_by`,
`Source.table` fills it with :func:`inferred_successors` instead, and validation warns (`renewals_inferred`)
with the links it made; when some contracts have it, the links are trusted as written, and validation points at
the contracts that look like missed links (`probable_successor`), unless the contracts table declares
`missing_successors = "infer"`: then every empty renewed_by is filled by :func:`inferred_successors` too
(`successors_filled`).
"""
from __future__ import annotations

import ibis

# a renewal contract starts within this many days of its predecessor's end_date (before or after): paperwork
# signed early, or a renewal booked a few weeks late; a gap longer than a month is a lapse, i.e. churn and a
# win-back
SUCCESSOR_GRACE_DAYS = 31


def inferred_successors(contracts: ibis.Table, grace_days: int = SUCCESSOR_GRACE_DAYS) -> ibis.Table:
    """The successor of each contract that has one by its dates: columns ``contract_id``, ``successor``.

    A contract's successor is the account's contract that starts after it, within `grace_days` of its
    ``end_date`` (before or after), and ends after it; of several, the one starting nearest the ``end_date``
    (then the smallest contract_id). So consecutive terms chain (monthly ones too), co-termed add-ons share the
    successor of the contract they were added to (as a consolidating renewal has it), and an add-on bought
    mid-term is nobody's successor (it ends with, not after, the contract it was added to). Contracts with no
    such follower are absent: they churned, or are not due yet.

    `contracts` needs contract_id, account_id, start_date and end_date (typed); works on any Ibis backend.
    """
    c = contracts.filter(contracts.contract_id.notnull() & contracts.account_id.notnull()
                         & contracts.start_date.notnull() & contracts.end_date.notnull())
    ended = c.select("contract_id", "account_id", "start_date", "end_date")
    nxt = c.select(successor=c.contract_id, next_account=c.account_id, next_start=c.start_date,
                   next_end=c.end_date)
    window = ibis.interval(days=grace_days)
    pairs = ended.join(nxt, [ended.account_id == nxt.next_account, nxt.successor != ended.contract_id,
                             nxt.next_start > ended.start_date, nxt.next_end > ended.end_date,
                             nxt.next_start >= ended.end_date - window, nxt.next_start <= ended.end_date + window])
    gap = pairs.next_start.delta(pairs.end_date, unit="day").abs()
    ranked = pairs.mutate(rank=ibis.row_number().over(group_by=pairs.contract_id, order_by=[gap, pairs.successor]))
    return ranked.filter(ranked["rank"] == 0).select("contract_id", "successor")


def with_successors(contracts: ibis.Table, links: ibis.Table) -> ibis.Table:
    """`contracts` (same columns, same rows) with ``renewed_by`` filled from `links` (:func:`inferred_successors`)
    where it is empty."""
    named = links.select(linked_id=links.contract_id, successor=links.successor)
    j = contracts.left_join(named, contracts.contract_id == named.linked_id)
    filled = j.renewed_by.coalesce(j.successor.cast(contracts.renewed_by.type()))
    return j.select(**{col: (filled if col == "renewed_by" else j[col]) for col in contracts.columns})
