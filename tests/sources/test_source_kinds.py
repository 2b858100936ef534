"""Every kind of source, with the real engines: the same portfolio as a folder of Parquet, a folder of CSV, a
DuckDB file, a duckdb:// URL and a PostgreSQL database gives the same validation report, the same typed
tables, the same point-in-time features (to 1e-9, labels included), and — trained once through the CLI on
PostgreSQL — the same scores and renewal forecast. The CLI runs `train` on PostgreSQL and `validate` and
`features` on a PostgreSQL export read through a column map with a date format."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date

import numpy as np
import pandas as pd
import pytest

from csforecast.data.contract import TABLES
from csforecast.data.sources import open_source
from csforecast.data.validate import validate
from csforecast.features.snapshot import build_snapshots

from kinds_util import portfolio_tables, write_duckdb

KINDS = ["csv", "duckdb_file", "duckdb_url", "postgres"]  # each compared with the Parquet folder
AS_OF = [date(2025, 10, 1), date(2026, 4, 1)]
VALIDATE_AS_OF = date(2026, 10, 1)
WINDOW = (date(2026, 10, 1), date(2027, 1, 1))
CLI = [sys.executable, "-m", "csforecast.cli"]


def assert_same(a: pd.DataFrame, b: pd.DataFrame, keys: list[str], what: str) -> None:
    """Same rows (by key) and, column by column, the same values: numbers to 1e-9, the rest as text."""
    assert list(a.columns) == list(b.columns), f"{what}: columns differ"
    a = a.sort_values(keys, ignore_index=True)
    b = b.sort_values(keys, ignore_index=True)
    assert len(a) == len(b), f"{what}: {len(a)} vs {len(b)} rows"
    bad = []
    for c in a.columns:
        x, y = a[c], b[c]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y) \
                and not pd.api.types.is_bool_dtype(x):
            same = np.allclose(x.astype(float), y.astype(float), rtol=1e-9, atol=1e-9, equal_nan=True)
        else:
            same = x.astype(str).equals(y.astype(str))
        if not same:
            bad.append(c)
    assert not bad, f"{what}: columns differ: {bad}"


def assert_close(a, b, path: str) -> None:
    """Nested results equal: numbers to 1e-9 (relative), everything else exactly."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(set(a) ^ set(b))}"
        for k in a:
            assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        assert len(a) == len(b), f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert np.isclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True), f"{path}: {a} vs {b}"
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


def _report(loc: str) -> dict:
    rep = validate(open_source(loc), VALIDATE_AS_OF).to_dict()
    rep.pop("source")
    return rep


@pytest.fixture(scope="module")
def reference(source_kinds):
    src = open_source(source_kinds["parquet"])
    return {"report": _report(source_kinds["parquet"]),
            "frames": {n: src.frame(n) for n in TABLES if n in src.raw},
            "features": build_snapshots(src, AS_OF)}


@pytest.mark.parametrize("kind", KINDS)
def test_same_validation_report(kind, source_kinds, reference):
    rep = _report(source_kinds[kind])
    assert rep["ok"] and rep["errors"] == 0
    assert rep == reference["report"]


@pytest.mark.parametrize("kind", KINDS)
def test_same_typed_tables(kind, source_kinds, reference):
    src = open_source(source_kinds[kind])
    assert src.names == list(reference["frames"])
    for name, want in reference["frames"].items():
        keys = [TABLES[name].key] if TABLES[name].key else list(want.columns)
        assert_same(src.frame(name), want, keys, f"{kind}/{name}")


@pytest.mark.parametrize("kind", KINDS)
def test_same_features(kind, source_kinds, reference):
    got = build_snapshots(open_source(source_kinds[kind]), AS_OF)
    assert len(got) > 300
    assert_same(got, reference["features"], ["as_of", "account_id"], f"{kind} features")


def test_data_hash_of_a_database_covers_values(postgres, small_portfolio, tmp_path):
    """Changing one value (same tables, rows and columns) changes the hash; changing it back restores it."""
    tables = portfolio_tables(small_portfolio)
    url = postgres.create_database("hashcheck")
    postgres.load("hashcheck", {"accounts": tables["accounts"], "contracts": tables["contracts"]})
    first = open_source(url).data_hash
    assert open_source(url).data_hash == first
    cid = tables["contracts"].contract_id.iloc[3]
    with postgres.connect("hashcheck") as con:
        con.execute("UPDATE contracts SET arr = arr + 1 WHERE contract_id = %s", [cid])
        changed = open_source(url).data_hash
        con.execute("UPDATE contracts SET arr = arr - 1 WHERE contract_id = %s", [cid])
    assert changed != first
    assert open_source(url).data_hash == first

    import duckdb

    db = write_duckdb(tmp_path / "a.duckdb", small_portfolio)
    before = open_source(db).data_hash
    con = duckdb.connect(str(db))
    con.execute("UPDATE usage SET value = value + 1 WHERE rowid = 10")
    con.close()
    assert open_source(db).data_hash != before
    assert open_source(f"duckdb://{db}").data_hash == open_source(db).data_hash


def test_a_duckdb_file_with_its_tables_in_another_schema(source_kinds, reference, tmp_path):
    """A DuckDB file whose tables are in a schema of their own (`crm`), not `main`: read from it, with a note,
    as the same tables; with two such schemas, an error naming both and the URL that picks one
    (`duckdb:///file?schema=NAME`), which reads it; a schema it does not have is named as such."""
    import shutil

    import duckdb

    from csforecast.data.sources import SourceError

    db = tmp_path / "book.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE SCHEMA crm")
    con.execute(f"ATTACH '{source_kinds['duckdb_file']}' AS src (READ_ONLY)")
    for name in reference["frames"]:
        con.execute(f"CREATE TABLE crm.{name} AS SELECT * FROM src.main.{name}")
    con.close()
    two = tmp_path / "two.duckdb"                    # written before either is opened (a source keeps it open)
    shutil.copy(db, two)
    con = duckdb.connect(str(two))
    con.execute("CREATE SCHEMA staging")
    con.execute("CREATE TABLE staging.accounts AS SELECT * FROM crm.accounts LIMIT 5")
    con.close()
    src = open_source(db)
    assert "book.duckdb: the contract tables are read from schema 'crm' (schema main holds none)" in src.notes
    for name, want in reference["frames"].items():
        keys = [TABLES[name].key] if TABLES[name].key else list(want.columns)
        assert_same(src.frame(name), want, keys, f"crm/{name}")
    db = two
    with pytest.raises(SourceError, match=r"schemas 'crm' and 'staging' each hold some: name the one to read, "
                                          rf"duckdb://{db}\?schema=crm"):
        open_source(db)
    picked = open_source(f"duckdb://{db}?schema=staging")
    assert picked.row_count("accounts") == 5 and "contracts" not in picked.raw
    assert open_source(f"duckdb://{db}?schema=crm").row_count("contracts") == len(reference["frames"]["contracts"])
    with pytest.raises(SourceError, match="two.duckdb has no schema 'sales' "):
        open_source(f"duckdb://{db}?schema=sales")


def test_a_duckdb_file_with_zoned_nanosecond_timestamps(source_kinds, reference, tmp_path):
    """A DuckDB file whose date columns are zoned nanoseconds (TIMESTAMPTZ_NS, a type Ibis does not know; was an
    error naming `unknown(...)`) reads as the same tables and the same validation report (as UTC dates, as a
    database's zoned timestamps are)."""
    import shutil

    import duckdb

    db = tmp_path / "zoned.duckdb"
    shutil.copy(source_kinds["duckdb_file"], db)
    con = duckdb.connect(str(db))
    con.execute("SET TimeZone = 'UTC'")
    for table, column in (("contracts", "start_date"), ("contracts", "end_date"), ("usage", "date")):
        con.execute(f"ALTER TABLE {table} ALTER {column} TYPE TIMESTAMPTZ_NS USING CAST({column} AS TIMESTAMPTZ)")
    assert con.execute("SELECT data_type FROM information_schema.columns WHERE table_name = 'usage' "
                       "AND column_name = 'date'").fetchone()[0] == "TIMESTAMPTZ_NS"
    con.close()
    assert _report(str(db)) == reference["report"]
    src = open_source(db)
    for name in ("contracts", "usage"):
        want = reference["frames"][name]
        keys = [TABLES[name].key] if TABLES[name].key else list(want.columns)
        assert_same(src.frame(name), want, keys, f"zoned/{name}")


def test_column_map_and_date_format_on_postgres(postgres, small_portfolio, tmp_path, reference):
    """A CRM-style export in PostgreSQL: other column names and dd/mm/yyyy text dates, read through
    [column_map.*] (with date_format) in csforecast.toml by the real CLI, gives the same report and features."""
    tables = portfolio_tables(small_portfolio)
    tables["accounts"] = tables["accounts"].rename(columns={"account_id": "AccountId", "segment": "Customer_Tier__c"})
    c = tables["contracts"].rename(columns={"arr": "ACV", "account_id": "AccountId"})
    for col in ("start_date", "end_date"):
        c[col] = pd.to_datetime(c[col]).dt.strftime("%d/%m/%Y")
    tables["contracts"] = c
    url = postgres.create_database("crm_export")
    postgres.load("crm_export", tables)
    home = tmp_path / "home"
    home.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("CSFORECAST_", "MLFLOW_"))},
           "CSFORECAST_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db"}

    bare = validate(open_source(url), VALIDATE_AS_OF)  # without the column map
    said = "\n".join(str(p) for p in bare.errors)
    assert "required column 'arr' not found" in said and "'account_id'" not in said
    # the database's columns left out of the copy are the ones a column_map entry can name
    assert "its columns not read as ours are 'ACV'" in said and 'map it with arr = "their name"' in said
    # AccountId is account_id spelled another way: read as it, and said (ACV is not arr: that takes a column map)
    noted = [p.message for p in bare.problems if p.rule == "reading"]
    assert "accounts: column 'AccountId' read as account_id" in " ".join(noted)
    first = c.sort_values("contract_id").iloc[0]
    assert f"contract_id={first.contract_id}: start_date='{first.start_date}'" in said  # key and value

    (home / "csforecast.toml").write_text(
        '[column_map.accounts]\naccount_id = "AccountId"\nsegment = "Customer_Tier__c"\n'
        '[column_map.contracts]\naccount_id = "AccountId"\narr = "ACV"\ndate_format = "%d/%m/%Y"\n')
    res = subprocess.run(CLI + ["validate", "--data", url, "--as-of", str(VALIDATE_AS_OF), "--json"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    rep = json.loads(res.stdout)
    rep.pop("source")
    # the same report, except that a problem in a mapped column names the source's column too
    named = {(p["table"], p["column"]): p.pop("source_column") for p in rep["problems"]}
    assert rep == {**reference["report"], "problems": [{k: v for k, v in p.items() if k != "source_column"}
                                                       for p in reference["report"]["problems"]]}
    mapped = {("accounts", "account_id"): "'AccountId'", ("accounts", "segment"): "'Customer_Tier__c'",
              ("contracts", "account_id"): "'AccountId'", ("contracts", "arr"): "'ACV'"}
    assert {k: v for k, v in named.items() if v} == {k: v for k, v in mapped.items() if k in named}
    out = tmp_path / "features.parquet"
    res = subprocess.run(CLI + ["features", "--data", url, "--as-of", str(AS_OF[1]), "--out", str(out)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    want = reference["features"][reference["features"].as_of == pd.Timestamp(AS_OF[1])]
    assert_same(pd.read_parquet(out), want.reset_index(drop=True), ["as_of", "account_id"], "mapped features")


def _spelled(name: str) -> str:
    """A contract name as a CRM or a spreadsheet writes it: "Account ID", "Start Date", "ARR"."""
    return name.upper() if len(name) <= 3 else " ".join(w.capitalize() for w in name.split("_"))


def test_names_spelled_another_way_are_read_as_ours(postgres, small_portfolio, tmp_path, reference):
    """Tables and columns named as exports name them ("Accounts.csv", a DuckDB table ACCOUNTS, a column
    "Account ID" or "ARR") are read as the contract's, on every kind of source, with a note saying what was read
    as what; the same features as the source with our names. Two columns that could each be one of ours are
    neither read as it: a note says to choose, and validation names the column still missing."""
    tables = {name: df.rename(columns=_spelled) for name, df in portfolio_tables(small_portfolio).items()}
    csv = tmp_path / "csv"
    csv.mkdir()
    for name, df in tables.items():
        df.to_csv(csv / f"{_spelled(name)}.csv", index=False)
    import duckdb

    db = tmp_path / "book.duckdb"
    con = duckdb.connect(str(db))
    for name, df in tables.items():
        con.register("frame", df)
        con.execute(f'CREATE TABLE "{name.upper()}" AS SELECT * FROM frame')
        con.unregister("frame")
    con.close()
    url = postgres.create_database("spelled")
    postgres.load("spelled", {_spelled(n): df for n, df in tables.items()})
    want = reference["features"][reference["features"].as_of == pd.Timestamp(AS_OF[1])].reset_index(drop=True)
    for loc in (str(csv), str(db), url):
        src = open_source(loc)
        report = validate(src, VALIDATE_AS_OF)
        assert report.ok, [str(e) for e in report.errors]
        noted = " ".join(p.message for p in report.problems if p.rule == "reading")
        assert "column 'Account Id' read as account_id" in noted and "column 'ARR' read as arr" in noted, noted
        assert "read as accounts" in noted and "read as forecast_calls" in noted, noted
        assert_same(build_snapshots(src, [AS_OF[1]]), want, ["as_of", "account_id"], f"spelled {loc}")

    # two candidates for one column: neither is read as it, and the source must say which
    two = tmp_path / "two"
    shutil.copytree(csv, two)
    c = pd.read_csv(two / "Contracts.csv")
    c.assign(**{"A.R.R.": c["ARR"]}).to_csv(two / "Contracts.csv", index=False)
    report = validate(open_source(two), VALIDATE_AS_OF)
    noted = " ".join(p.message for p in report.problems if p.rule == "reading")
    assert "columns 'ARR' and 'A.R.R.' could each be arr" in noted and "column_map.contracts.arr" in noted, noted
    assert [(p.table, p.column, p.rule) for p in report.errors] == [("contracts", "arr", "missing_column")]


def test_a_billing_export_with_mrr_instead_of_arr(postgres, small_portfolio, tmp_path, reference):
    """A billing system's contracts give the amount per month (MRR), not ARR: found as it is ("mrr"), spelled
    ("MRR") or mapped (`column_map.contracts.mrr`), it is read as arr = 12 × it, with a note, on every kind of
    source; the same contracts and features as the export with ARR. A column_map.contracts.mrr entry beside an
    arr column changes nothing, and says so."""
    tables = portfolio_tables(small_portfolio)
    c = tables["contracts"]
    monthly = c.assign(arr=c["arr"] / 12).rename(columns={"arr": "MRR"})
    csv = tmp_path / "csv"
    csv.mkdir()
    for name, df in {**tables, "contracts": monthly}.items():
        df.to_csv(csv / f"{name}.csv", index=False)
    import duckdb

    db = tmp_path / "billing.duckdb"
    con = duckdb.connect(str(db))
    for name, df in {**tables, "contracts": monthly.rename(columns={"MRR": "Monthly Amount"})}.items():
        con.register("frame", df)
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM frame')
        con.unregister("frame")
    con.close()
    url = postgres.create_database("billing")
    postgres.load("billing", {**tables, "contracts": monthly.rename(columns={"MRR": "mrr"})})
    want = reference["features"][reference["features"].as_of == pd.Timestamp(AS_OF[1])].reset_index(drop=True)
    for loc, column_map, theirs in [(str(csv), None, "MRR"),
                                    (str(db), {"contracts": {"mrr": "Monthly Amount"}}, "Monthly Amount"),
                                    (url, None, "mrr")]:
        src = open_source(loc, column_map)
        report = validate(src, VALIDATE_AS_OF)
        assert report.ok, [str(e) for e in report.errors]
        assert not [p for p in report.warnings if p.rule == "column_map"]
        noted = " ".join(p.message for p in report.problems if p.rule == "reading")
        assert f"no arr column; '{theirs}' read as arr per month (mrr): arr = 12 × '{theirs}'" in noted, noted
        assert_same(src.frame("contracts"), reference["frames"]["contracts"], ["contract_id"], f"mrr {loc}")
        assert_same(build_snapshots(src, [AS_OF[1]]), want, ["as_of", "account_id"], f"mrr {loc}")
    beside = open_source(str(small_portfolio), {"contracts": {"mrr": "arr"}})
    assert_same(beside.frame("contracts"), reference["frames"]["contracts"], ["contract_id"], "mrr beside arr")
    assert any("column_map.contracts.mrr not used: the source has arr" in n for n in beside.notes)


# --- end to end: train once through the CLI on PostgreSQL, then score and forecast every kind -------------

@pytest.fixture(scope="module")
def trained_home(source_kinds, tmp_path_factory):
    """`csforecast train` on the PostgreSQL source (a real subprocess), then this process points at its home."""
    from csforecast.config import reset_settings

    home = tmp_path_factory.mktemp("pg-home")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("CSFORECAST_", "MLFLOW_"))},
           "CSFORECAST_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db"}
    res = subprocess.run(CLI + ["train", "--data", source_kinds["postgres"], "--family", "churn", "--json"], env=env,
                         capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-3000:]
    trained = json.loads(res.stdout)
    mp = pytest.MonkeyPatch()
    mp.setenv("CSFORECAST_HOME", str(home))
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home}/mlflow.db")
    reset_settings()
    yield home, env, trained
    mp.undo()
    reset_settings()


@pytest.fixture(scope="module")
def scored(trained_home, source_kinds):
    """Per kind: a real score set written to its own scores database, read back, and a renewal forecast."""
    from csforecast.forecast.renewals import forecast_window
    from csforecast.scoring.batch import run_scoring
    from csforecast.scoring.store import load_latest

    home = trained_home[0]
    out = {}
    for kind, loc in source_kinds.items():
        src = open_source(loc)
        res = run_scoring(src, home / f"scores-{kind}.duckdb")
        meta, scores, _ = load_latest(home / f"scores-{kind}.duckdb")
        fc = forecast_window(src, *WINDOW, draws=2000, seed=5, tau=0.0)
        out[kind] = (res, scores, fc)
    return out


def test_trained_on_postgres(trained_home):
    trained = trained_home[2]
    assert set(trained) == {"churn"} and trained["churn"]["metrics"]


@pytest.mark.parametrize("kind", KINDS)
def test_same_scores_and_forecast(kind, scored):
    res, scores, fc = scored[kind]
    ref_res, ref_scores, ref_fc = scored["parquet"]
    assert res["accounts"] == ref_res["accounts"] > 100
    assert res["models"] == ref_res["models"]
    assert "churn_probability" in scores and scores["churn_probability"].between(0, 1).all()
    cols = [c for c in ref_scores.columns if c not in ("version", "data_hash")]
    assert_same(scores[cols], ref_scores[cols], ["account_id"], f"{kind} scores")
    assert_close(fc, ref_fc, "forecast")
