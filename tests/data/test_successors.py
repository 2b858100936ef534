"""Contracts exports without successor links (`renewed_by`): renewals inferred from the dates, with a warning;
partial links trusted as written, with the contracts that look like a missed link named."""
import shutil
from datetime import date

import ibis
import pandas as pd
import pytest

from csforecast.data.sources import SourceError, open_source
from csforecast.data.successors import SUCCESSOR_GRACE_DAYS, inferred_successors
from csforecast.data.validate import validate
from csforecast.features.snapshot import build_snapshots, data_end

D = date.fromisoformat


def _links(rows):
    t = ibis.memtable(pd.DataFrame(rows, columns=["contract_id", "account_id", "start_date", "end_date"]))
    t = t.mutate(start_date=t.start_date.cast("date"), end_date=t.end_date.cast("date"))   # ISO text -> dates
    got = inferred_successors(t).to_pandas()
    return dict(zip(got.contract_id, got.successor))


def test_consecutive_terms_chain_and_add_ons_share_the_successor():
    assert _links([
        ("Y1", "A", "2023-01-01", "2024-01-01"), ("Y2", "A", "2024-01-01", "2025-01-01"),   # annual terms
        ("ADD", "A", "2024-05-01", "2025-01-01"),                                          # co-termed add-on
        ("Y3", "A", "2025-01-01", "2026-01-01"),
        ("M1", "B", "2024-01-01", "2024-02-01"), ("M2", "B", "2024-02-01", "2024-03-01"),   # monthly terms
        ("M3", "B", "2024-03-01", "2024-04-01"),
    ]) == {"Y1": "Y2", "Y2": "Y3", "ADD": "Y3", "M1": "M2", "M2": "M3"}


def test_early_and_late_renewals_within_the_grace_link_and_a_lapse_does_not():
    late = pd.Timestamp("2025-01-01") + pd.Timedelta(days=SUCCESSOR_GRACE_DAYS)
    assert _links([
        ("E1", "A", "2024-01-01", "2025-01-01"), ("E2", "A", "2024-12-20", "2025-12-20"),   # signed 12 days early
        ("L1", "B", "2024-01-01", "2025-01-01"), ("L2", "B", str(late.date()), "2026-02-01"),   # on the last day
        ("G1", "C", "2024-01-01", "2025-01-01"), ("G2", "C", "2025-03-01", "2026-03-01"),   # a lapse: churn, win-back
    ]) == {"E1": "E2", "L1": "L2"}


def test_the_nearest_follower_is_the_successor_and_a_concurrent_contract_is_none():
    assert _links([
        ("M1", "A", "2024-01-01", "2024-02-01"),
        ("ANNUAL", "A", "2024-01-01", "2025-01-01"),   # bought the same day: runs beside M1, not after it
        ("X", "B", "2024-01-01", "2025-01-01"), ("FAR", "B", "2025-01-20", "2026-01-20"),
        ("NEAR", "B", "2025-01-03", "2026-01-03"),
        ("Z", "C", "2024-01-01", "2025-01-01"), ("OTHER", "D", "2025-01-01", "2026-01-01"),   # another account
    ]) == {"X": "NEAR"}


def _drop_links(c, n):
    """Contracts with the first ``n`` links (each successor named once) left out, and the rows that lost theirs."""
    named_once = c.renewed_by.map(c.renewed_by.value_counts()) == 1
    drop = c.index[c.renewed_by.notna() & named_once][:n]
    return c.assign(renewed_by=c.renewed_by.where(~c.index.isin(drop))), c.loc[drop]


def _export(small_portfolio, folder, edit):
    shutil.copytree(small_portfolio, folder, ignore=shutil.ignore_patterns("truth"))
    c = pd.read_parquet(folder / "contracts.parquet")
    edit(c).to_parquet(folder / "contracts.parquet", index=False)
    return folder, c


def test_an_export_without_renewed_by_gets_the_links_from_its_dates(small_portfolio, tmp_path):
    """Read as written, every ended contract of such an export would be a churn. The links are inferred (here
    the simulator's own, every one), validation says so, and the features and labels are the linked export's."""
    d, linked = _export(small_portfolio, tmp_path / "d", lambda c: c.drop(columns=["renewed_by"]))
    src = open_source(d)
    report = validate(src)
    assert report.ok, [str(p) for p in report.errors]
    [w] = [p for p in report.warnings if p.rule == "renewals_inferred"]
    assert (w.table, w.column, w.count) == ("contracts", "renewed_by", linked.renewed_by.notna().sum())
    first = linked[linked.renewed_by.notna()].sort_values("contract_id").iloc[0]
    assert w.examples[0] == f"contract_id={first.contract_id}: successor='{first.renewed_by}'"
    want = linked.set_index("contract_id").renewed_by
    for s in (src, open_source(d)):   # validated, or found out on first read
        got = s.frame("contracts").set_index("contract_id").renewed_by.reindex(want.index)
        pd.testing.assert_series_equal(got, want, check_dtype=False)
    clean = open_source(small_portfolio)
    day = data_end(clean) - pd.Timedelta(days=200)
    got = build_snapshots(src, [day], labels=True).sort_values("account_id").reset_index(drop=True)
    expected = build_snapshots(clean, [day], labels=True).sort_values("account_id").reset_index(drop=True)
    assert expected.label_churn.notna().any()
    pd.testing.assert_frame_equal(got, expected)


def test_partial_links_are_trusted_and_the_missed_ones_named(small_portfolio, tmp_path):
    """Some links missing: nothing is guessed (those contracts count as churned), but validation names each
    contract whose renewal looks like the account's next contract."""
    d, linked = _export(small_portfolio, tmp_path / "d", lambda c: _drop_links(c, 4)[0])
    dropped = _drop_links(linked, 4)[1]
    src = open_source(d)
    report = validate(src)
    assert report.ok and not [p for p in report.warnings if p.rule == "renewals_inferred"]
    [w] = [p for p in report.warnings if p.rule == "probable_successor"]
    assert w.count == 4
    assert w.examples == [f"contract_id={r.contract_id}: successor='{r.renewed_by}'"
                          for r in dropped.sort_values("contract_id").itertuples()]
    assert src.frame("contracts").set_index("contract_id").renewed_by.reindex(dropped.contract_id).isna().all()
    clean = validate(open_source(small_portfolio))
    assert not [p for p in clean.problems if p.rule in ("probable_successor", "renewals_inferred")]


def test_partial_links_declared_missing_are_filled_from_the_dates(small_portfolio, tmp_path):
    """`missing_successors = "infer"`: every contract with no renewed_by is read as renewed by its successor by the
    dates, by the rule of an export without links (a co-termed add-on shares its contract's successor, even one
    another contract names); validation names each link it made, and the features equal those of the fully linked
    export. Undeclared, only the links to a contract nothing names are pointed at."""
    def drop(c):
        shared = c.index[c.renewed_by.map(c.renewed_by.value_counts()) > 1][:1]     # a successor named twice
        c, _ = _drop_links(c, 6)
        return c.assign(renewed_by=c.renewed_by.where(~c.index.isin(shared)))

    d, linked = _export(small_portfolio, tmp_path / "d", drop)
    dropped = linked[linked.renewed_by.notna() & drop(linked).renewed_by.isna()]
    assert len(dropped) == 7
    [note] = [p for p in validate(open_source(d)).warnings if p.rule == "probable_successor"]
    assert note.count == 6 and 'declare missing_successors = "infer" under [column_map.contracts]' in note.message
    declared = {"contracts": {"missing_successors": "infer"}}
    src = open_source(d, declared)
    report = validate(src)
    assert report.ok and not [p for p in report.warnings if p.rule == "probable_successor"]
    [w] = [p for p in report.warnings if p.rule == "successors_filled"]
    assert w.count == 7 and w.examples == [f"contract_id={r.contract_id}: successor='{r.renewed_by}'"
                                           for r in dropped.sort_values("contract_id").head(5).itertuples()]
    want = linked.set_index("contract_id").renewed_by.sort_index()
    for source in (src, open_source(d, {"all": {"missing_successors": "infer"}})):   # per table or for all
        got = source.frame("contracts").set_index("contract_id").renewed_by.sort_index()
        pd.testing.assert_series_equal(got, want, check_dtype=False)
    day = [date(2025, 6, 1)]
    pd.testing.assert_frame_equal(build_snapshots(src, day), build_snapshots(open_source(small_portfolio), day))
    with pytest.raises(SourceError, match="missing_successors must be"):
        open_source(d, {"contracts": {"missing_successors": "yes"}})


def test_how_links_are_read_is_part_of_the_data_hash(small_portfolio, tmp_path):
    """Features, validation reports and models are kept by the data hash: reading the same files with or without
    `missing_successors` or `repeated_rows` must not share them; a source read as before hashes as before."""
    d, _ = _export(small_portfolio, tmp_path / "d", lambda c: _drop_links(c, 3)[0])
    plain = open_source(d).data_hash
    assert open_source(d, {"contracts": {"missing_successors": "churn"}}).data_hash == plain
    hashes = {plain, open_source(d, {"contracts": {"missing_successors": "infer"}}).data_hash,
              open_source(d, {"all": {"repeated_rows": "read_once"}}).data_hash}
    assert len(hashes) == 3
