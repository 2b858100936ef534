"""What commands keep on disk between runs (csforecast/diskcache.py): point-in-time snapshots and validation
reports, keyed by the data's content hash, the arguments, the settings and the code. A kept result is the
result itself (the same frame, the same report); a changed input is a new key, never a stale answer; a failed
validation keeps nothing."""
from __future__ import annotations

import shutil
from datetime import date

import pandas as pd
import pytest

from csforecast.config import reset_settings
from csforecast.data.sources import open_source
from csforecast.data.validate import validate
from csforecast.features.snapshot import build_snapshots

DATES = [date(2025, 12, 1)]


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    from csforecast.simulate import simulate_portfolio

    d = tmp_path_factory.mktemp("book60")
    simulate_portfolio(60, 2, seed=5).write(d)
    return d


def _kept(home, kind):
    folder = home / "cache" / kind
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_snapshots_are_kept_and_come_back_identical(book, isolated_home, tmp_path, monkeypatch):
    fresh = build_snapshots(open_source(book), DATES, cache=True)     # computed, then kept
    assert len(_kept(isolated_home, "snapshots")) == 1
    again = build_snapshots(open_source(book), DATES, cache=True)
    pd.testing.assert_frame_equal(again, fresh, check_exact=True)
    assert len(_kept(isolated_home, "snapshots")) == 1

    # other settings: another key
    monkeypatch.setenv("CSFORECAST_FEATURES__MAX_USAGE_METRICS", "1")
    reset_settings()
    capped = build_snapshots(open_source(book), DATES, cache=True)
    assert len(_kept(isolated_home, "snapshots")) == 2
    assert len(capped.columns) < len(fresh.columns)
    monkeypatch.delenv("CSFORECAST_FEATURES__MAX_USAGE_METRICS")
    reset_settings()

    # the same file names with other contents: a new key, the new data's features
    changed = tmp_path / "changed"
    shutil.copytree(book, changed, ignore=shutil.ignore_patterns("truth"))
    c = pd.read_parquet(changed / "contracts.parquet")
    c["arr"] = c["arr"] * 2
    c.to_parquet(changed / "contracts.parquet", index=False)
    doubled = build_snapshots(open_source(changed), DATES, cache=True)
    assert len(_kept(isolated_home, "snapshots")) == 3
    assert (doubled["arr"].to_numpy() == 2 * fresh["arr"].to_numpy()).all()


def test_a_validation_report_is_kept_only_when_it_passed(book, isolated_home, tmp_path):
    where = isolated_home / "cache" / "validation"
    fresh = validate(open_source(book), cache_dir=where)    # validated, then kept
    again = validate(open_source(book), cache_dir=where)
    assert fresh.ok and again.to_dict() == fresh.to_dict()
    assert len(_kept(isolated_home, "validation")) == 1
    assert [str(p) for p in again.problems] == [str(p) for p in fresh.problems]

    bad = tmp_path / "bad"
    shutil.copytree(book, bad, ignore=shutil.ignore_patterns("truth"))
    c = pd.read_parquet(bad / "contracts.parquet")
    c.loc[c.index[3], "arr"] = -5.0
    c.to_parquet(bad / "contracts.parquet", index=False)
    report = validate(open_source(bad), cache_dir=where)
    assert not report.ok and any(p.table == "contracts" and p.column == "arr" for p in report.errors)
    assert len(_kept(isolated_home, "validation")) == 1     # not kept: found again on the next run
