"""Point-in-time features on Spark (a real local session) equal DuckDB's: every column, to 1e-9, for Parquet
folders and for tables of a Spark database, with the same data hash."""
from __future__ import annotations

import time
from datetime import date

import pandas as pd
import pytest

from csforecast.data.sources import SourceError, open_source
from csforecast.data.validate import validate
from csforecast.features.snapshot import build_snapshots, data_end

from spark_util import SPARK_TIMINGS, differing_columns

AS_OF = [date(2025, 1, 1), date(2025, 6, 1)]


@pytest.fixture(scope="module")
def duck_snapshots(small_portfolio):
    return build_snapshots(open_source(small_portfolio), AS_OF)


def test_folder_snapshots_equal_duckdb(small_portfolio, spark, duck_snapshots):
    duck = open_source(small_portfolio)
    src = open_source(small_portfolio, engine="spark", spark=spark)
    assert src.engine == "spark" and src.spark is spark
    assert src.data_hash == duck.data_hash          # the same files: the same provenance on either engine
    assert data_end(src) == data_end(duck)
    t0 = time.perf_counter()
    got = build_snapshots(src, AS_OF)
    SPARK_TIMINGS["features (2 dates, 300 accounts)"] = time.perf_counter() - t0
    assert len(got) == len(duck_snapshots) > 100
    assert list(got.columns) == list(duck_snapshots.columns)
    assert differing_columns(duck_snapshots, got) == []


def test_spark_database_tables(small_portfolio, spark, duck_snapshots):
    """spark://DATABASE: the contract tables where Spark has them (tables of a database of the session's
    catalog; `global_temp` cannot be used: Ibis makes the database current, which Spark refuses for it)."""
    spark.sql("CREATE DATABASE IF NOT EXISTS csf_test")
    for f in sorted(small_portfolio.glob("*.parquet")):
        spark.createDataFrame(pd.read_parquet(f)).write.mode("overwrite").saveAsTable(f"csf_test.{f.stem}")
    src = open_source("spark://csf_test", spark=spark)
    assert src.engine == "spark" and src.kind == "spark"
    assert {"accounts", "contracts", "usage"} <= set(src.names)
    duck = open_source(small_portfolio)
    for name in ("accounts", "contracts"):
        assert src.row_count(name) == duck.row_count(name)
    assert len(src.data_hash) == 24   # hashed from the values, on Spark
    got = build_snapshots(src, AS_OF[-1:])
    want = duck_snapshots[duck_snapshots["as_of"] == pd.Timestamp(AS_OF[-1])].reset_index(drop=True)
    assert differing_columns(want, got) == []


def test_spark_source_errors(small_portfolio, spark, tmp_path):
    with pytest.raises(SourceError, match="date_format is not supported on the Spark engine"):
        open_source(small_portfolio, {"contracts": {"date_format": "%d/%m/%Y"}}, engine="spark", spark=spark)
    with pytest.raises(SourceError, match="a folder of Parquet/CSV/Excel files"):
        open_source(tmp_path / "nowhere", engine="spark", spark=spark)
    with pytest.raises(SourceError, match="must name a database"):
        open_source("spark://", spark=spark)
    with pytest.raises(SourceError, match="unknown engine"):
        open_source(small_portfolio, engine="flink")


def test_rows_of_unknown_accounts_are_left_out_on_spark_as_on_duckdb(small_portfolio, spark, tmp_path):
    """An optional table's rows of accounts `accounts` does not have: the same warning, and the same rows left
    out, on either engine (validated, or counted on first read)."""
    import shutil

    from csforecast.data.validate import validate

    d = tmp_path / "data"
    shutil.copytree(small_portfolio, d, ignore=shutil.ignore_patterns("truth"))
    t = pd.read_parquet(d / "touches.parquet")
    pd.concat([t, t.iloc[:3].assign(account_id="GONE-1")]).to_parquet(d / "touches.parquet", index=False)
    duck, sp = open_source(d), open_source(d, engine="spark", spark=spark)
    warned = [p for p in validate(sp).warnings if p.rule == "unknown_account"]
    assert [(p.table, p.count) for p in warned] == [("touches", 3)]
    for src in (sp, duck, open_source(d, engine="spark", spark=spark)):
        assert src.table("touches").count().to_pyarrow().as_py() == len(t)


def test_an_export_without_renewed_by_gets_the_same_links_on_spark(small_portfolio, spark, tmp_path):
    """Successor links inferred from the dates (csforecast.data.successors): the same warning and the same links
    on either engine, validated or found out on first read, and the simulator's own links; the same for the
    links an export left out, declared so."""
    import shutil

    from csforecast.data.validate import validate

    d = tmp_path / "data"
    shutil.copytree(small_portfolio, d, ignore=shutil.ignore_patterns("truth"))
    linked = pd.read_parquet(d / "contracts.parquet")
    linked.drop(columns=["renewed_by"]).to_parquet(d / "contracts.parquet", index=False)
    sp = open_source(d, engine="spark", spark=spark)
    [w] = [p for p in validate(sp).warnings if p.rule == "renewals_inferred"]
    assert w.count == linked.renewed_by.notna().sum()
    want = linked.set_index("contract_id").renewed_by.sort_index()
    for src in (sp, open_source(d, engine="spark", spark=spark), open_source(d)):
        got = src.frame("contracts").set_index("contract_id").renewed_by.sort_index()
        pd.testing.assert_series_equal(got, want, check_dtype=False)
    # some links missing, declared so (missing_successors = "infer"): filled the same way on Spark
    named_once = linked.renewed_by.map(linked.renewed_by.value_counts()) == 1
    drop = linked.index[linked.renewed_by.notna() & named_once][:5]
    linked.assign(renewed_by=linked.renewed_by.where(~linked.index.isin(drop))).to_parquet(
        d / "contracts.parquet", index=False)
    infer = {"contracts": {"missing_successors": "infer"}}
    for src in (open_source(d, infer, engine="spark", spark=spark), open_source(d, infer)):
        got = src.frame("contracts").set_index("contract_id").renewed_by.sort_index()
        pd.testing.assert_series_equal(got, want, check_dtype=False)


def test_a_csv_export_written_for_people_gets_the_same_advice_on_spark(small_portfolio, spark, tmp_path):
    """US dates, money with a currency sign, repeated usage rows and a Windows-1252 CSV in a folder: a report,
    not a traceback, and the same names, on either engine; on Spark, which reads no declared date format, the
    advice for dates says so."""
    import shutil

    from csforecast.data.validate import validate

    d = tmp_path / "data"
    shutil.copytree(small_portfolio, d, ignore=shutil.ignore_patterns("truth"))
    c = pd.read_parquet(d / "contracts.parquet")
    c["start_date"] = pd.to_datetime(c["start_date"]).dt.strftime("%m/%d/%Y")
    c["arr"] = c["arr"].map(lambda v: f"${v:,.2f}")
    c["auto_renew"] = c["auto_renew"].map({True: "true", False: "false "})   # Ibis's strip() on Spark: "alse"
    c.to_csv(d / "contracts.csv", index=False)
    (d / "contracts.parquet").unlink()
    u = pd.read_parquet(d / "usage.parquet")
    pd.concat([u, u.iloc[:4]]).to_parquet(d / "usage.parquet", index=False)
    a = pd.read_parquet(d / "accounts.parquet")
    a.loc[a.index[0], "name"] = "Société Générale – O’Brien"
    a.to_csv(d / "accounts.csv", index=False, encoding="cp1252")   # Excel on Windows
    (d / "accounts.parquet").unlink()
    sources = open_source(d), open_source(d, engine="spark", spark=spark)
    for src in sources:
        assert src.frame("accounts")["name"].tolist() == a["name"].tolist()
    duck, sp = (validate(src) for src in sources)
    for report in (duck, sp):
        by = {(p.column, p.rule): p for p in report.problems}
        assert by[("start_date", "type")].count == by[("arr", "type")].count == len(c)
        assert "numbers written for people" in by[("arr", "type")].message
        assert ("auto_renew", "type") not in by
        assert by[(None, "repeated_usage_days")].count == 8
        assert any("accounts.csv is not UTF-8 (line 2: byte 0xE9); read as Windows-1252" in p.message
                   for p in report.notes)
    assert 'date_format = "%m/%d/%Y"' in {p.column: p for p in duck.errors}["start_date"].message
    assert "the Spark engine reads no other format" in {p.column: p for p in sp.errors}["start_date"].message


def test_an_export_in_a_crms_spelling_reads_the_same_on_spark(small_portfolio, spark, tmp_path):
    """File names, headers and picklist levels as a CRM writes them ("Touches.parquet", "Account ID", "Exec
    Meeting", "NPS"), blank usage values and contracts with MRR instead of ARR, written "$1,234.56" (declared with
    number_format): on Spark, the same notes, warnings and typed tables as on DuckDB."""
    from csforecast.data.validate import validate

    d = tmp_path / "data"
    d.mkdir()
    for p in sorted(small_portfolio.glob("*.parquet")):
        df = pd.read_parquet(p)
        if p.stem in ("touches", "surveys"):
            df = df.assign(kind=df.kind.str.replace("_", " ").str.title())
        if p.stem == "usage":
            df = df.assign(value=df.value.where(df.index % 50 != 0))
        if p.stem == "contracts":
            df = df.assign(mrr=(df.arr / 12).map(lambda v: f"${v:,.2f}")).drop(columns="arr")
        title = " ".join(w.capitalize() for w in p.stem.split("_"))
        df.rename(columns=lambda c: " ".join(w.capitalize() for w in c.split("_"))).to_parquet(
            d / f"{title}.parquet", index=False)
    billing = {"contracts": {"number_format": "1,234.56"}}
    duck, sp = open_source(d, billing), open_source(d, billing, engine="spark", spark=spark)
    reports = [validate(s) for s in (duck, sp)]
    for report in reports:
        assert report.ok, [str(e) for e in report.errors]
    said = [sorted((p.rule, p.table, p.column, p.count) for p in r.problems if p.rule != "reading") for r in reports]
    assert said[0] == said[1]
    assert {("spelled_levels", "touches"), ("spelled_levels", "surveys"), ("left_out", "usage")} <= \
        {(rule, table) for rule, table, _, _ in said[0]}
    assert [p.message for p in reports[0].problems if p.rule == "reading"] == \
        [p.message for p in reports[1].problems if p.rule == "reading"]
    assert "contracts: no arr column; 'Mrr' read as arr per month (mrr): arr = 12 × 'Mrr'" in \
        [p.message for p in reports[1].problems if p.rule == "reading"]
    unvalidated = open_source(d, billing, engine="spark", spark=spark)   # finds the spelled columns on first read
    clean = open_source(small_portfolio).frame("contracts").sort_values("contract_id", ignore_index=True)
    got = [s.frame("contracts").sort_values("contract_id", ignore_index=True) for s in (duck, sp)]
    pd.testing.assert_frame_equal(got[1], got[0], check_dtype=False)
    pd.testing.assert_frame_equal(got[1], clean, check_dtype=False, atol=12 * 0.005 + 1e-9)   # MRR to the cent
    for name, key in (("touches", ["account_id", "date", "kind"]), ("surveys", ["account_id", "responded_at"])):
        a, b, c = (s.frame(name).sort_values(key, ignore_index=True) for s in (duck, sp, unvalidated))
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
        pd.testing.assert_frame_equal(a, c, check_dtype=False)
    assert sp.table("usage").count().to_pyarrow().as_py() == duck.table("usage").count().to_pyarrow().as_py()


def test_compressed_csv_files_and_folders_of_parts_read_the_same_on_spark(small_portfolio, spark, tmp_path):
    """`contracts.csv.gz`, and tickets as a folder of CSV parts as a warehouse unload writes it (`part-0.csv.gz`,
    `PART-1.CSV.GZ`, a suffix Hadoop does not decompress by itself, `_SUCCESS`), with rows repeated exactly and
    declared so (`repeated_rows = "read_once"`), and touches and surveys as part files with no suffix (text and
    Parquet): the same tables on Spark as on DuckDB and as the clean export's, and the same data hash."""
    import gzip
    import shutil

    d = tmp_path / "data"
    shutil.copytree(small_portfolio, d, ignore=shutil.ignore_patterns("truth"))
    contracts, tickets = (pd.read_parquet(d / f"{n}.parquet") for n in ("contracts", "tickets"))
    with gzip.open(d / "contracts.csv.gz", "wt", encoding="utf-8", newline="") as fh:
        pd.concat([contracts, contracts.iloc[:3]]).to_csv(fh, index=False)
    (d / "tickets").mkdir()
    half = len(tickets) // 2
    for part, rows in (("part-0.csv.gz", tickets.iloc[:half]), ("PART-1.CSV.GZ", tickets.iloc[half - 3:])):
        with gzip.open(d / "tickets" / part, "wt", encoding="utf-8", newline="") as fh:
            rows.to_csv(fh, index=False)
    (d / "tickets" / "_SUCCESS").write_text("")
    # parts named without a suffix, as Redshift (`0000_part_00`, text) and Hive (`000000_0`, Parquet) unload them
    touches, surveys = (pd.read_parquet(d / f"{n}.parquet") for n in ("touches", "surveys"))
    (d / "touches").mkdir()
    touches.iloc[: len(touches) // 2].to_csv(d / "touches" / "0000_part_00", index=False, sep="|")
    with gzip.open(d / "touches" / "0001_part_00.gz", "wt", encoding="utf-8", newline="") as fh:
        touches.iloc[len(touches) // 2:].to_csv(fh, index=False, sep="|")
    (d / "surveys").mkdir()
    surveys.iloc[:10].to_parquet(d / "surveys" / "000000_0", index=False)
    surveys.iloc[10:].to_parquet(d / "surveys" / "000001_0", index=False)
    for name in ("contracts", "tickets", "touches", "surveys"):
        (d / f"{name}.parquet").unlink()
    once = {"all": {"repeated_rows": "read_once"}}
    duck, sp = open_source(d, once), open_source(d, once, engine="spark", spark=spark)
    assert sp.data_hash == duck.data_hash
    assert [n for n in sp.notes if "have no suffix" in n] == [n for n in duck.notes if "have no suffix" in n] != []
    clean = open_source(small_portfolio)
    for name in ("contracts", "tickets", "touches", "surveys"):
        key = list(clean.frame(name).columns)
        want = clean.frame(name).sort_values(key).reset_index(drop=True)
        for src in (duck, sp):
            assert src.row_count(name) == len(want) + (3 if name in ("contracts", "tickets") else 0)   # as found
            got = src.frame(name).sort_values(key).reset_index(drop=True)
            assert differing_columns(want, got) == [], (name, src.engine)


def test_rows_and_values_that_hold_no_data_read_the_same_on_spark_as_on_duckdb(small_portfolio, spark, tmp_path):
    """Two exports of contracts concatenated (the header row again, mid-file) with a spreadsheet's blank rows
    (`,,,,`, and one with a space or a tab in each field), and a folder of ticket parts with one of each, each
    missing value written as a database client writes it (`NULL`, `\\N` padded as a fixed-width export pads it):
    the same tables and the same notes on both engines."""
    import shutil

    d = tmp_path / "data"
    shutil.copytree(small_portfolio, d, ignore=shutil.ignore_patterns("truth"))
    contracts, tickets, usage = (pd.read_parquet(d / f"{n}.parquet") for n in ("contracts", "tickets", "usage"))
    (d / "tickets").mkdir()
    for f, frame, null in ((d / "contracts.csv", contracts, "NULL"), (d / "tickets" / "part-1.csv", tickets, " \\N  "),
                           (d / "usage.csv", usage, "")):
        half, blank = len(frame) // 2, "," * (frame.shape[1] - 1) + "\n"
        spaces = '" ", ,\t' + "," * (frame.shape[1] - 3) + "\n"
        # the second export keeps its byte-order mark: its header row is not the first line's text
        f.write_text(frame.iloc[:half].to_csv(index=False, na_rep=null) + blank + "\ufeff"
                     + frame.iloc[half:].to_csv(index=False, na_rep=null) + spaces, encoding="utf-8")
    for name in ("contracts", "tickets", "usage"):
        (d / f"{name}.parquet").unlink()
    duck, sp = open_source(d), open_source(d, engine="spark", spark=spark)
    clean = open_source(small_portfolio)
    said = [n for n in duck.notes if "hold no data" in n]
    assert len(said) == 3 and said == [n for n in sp.notes if "hold no data" in n]
    nulls = {(p.table, p.column): p.count for p in validate(duck).problems if p.rule == "null_text"}
    assert nulls[("contracts", "renewed_by")] == contracts.renewed_by.isna().sum()
    assert nulls[("tickets", "csat")] == tickets.csat.isna().sum()
    # Spark's tables are read without validation's findings (each found by its own query)
    for name in ("contracts", "tickets", "usage"):
        key = ["account_id", "date", "metric"] if name == "usage" else clean.frame(name).columns[0]
        want = clean.frame(name).sort_values(key).reset_index(drop=True)
        for src in (duck, sp):
            got = src.frame(name).sort_values(key).reset_index(drop=True)
            assert differing_columns(want, got) == [], (name, src.engine)


def test_date_text_and_day_numbers_read_the_same_on_spark(small_portfolio, spark, tmp_path):
    """Text in a date column reads as the same date, or none, on both engines, where the engines' own casts
    differ (Spark's reads `2024` and `45292` as years, DuckDB's `2024/01/05` and dates BC); and an export whose
    start dates are partly a spreadsheet's day numbers, under a report's title line, reads as the same contracts,
    with the same warning and note."""
    import shutil

    import ibis

    from csforecast.data.parse import read_as

    texts = ["2024-01-05", "2024-1-5", "2024/01/05", "2024-01-05T10:11:12Z", "2024-01-05 10:11:12+02:00",
             "45292", "45292.75", "2024", "2024-01", "+2024-01-05", "-2024-01-05", "2024-01-05 garbage",
             "2024-02-30", "20240105", "19723", " 2024-01-05 ", "+024-01-05", "-024-01-05", None]
    frame = pd.DataFrame({"i": range(len(texts)), "v": texts})
    spark.createDataFrame(frame).createOrReplaceTempView("date_texts")
    on_spark = ibis.pyspark.connect(spark).table("date_texts")
    on_duck = ibis.memtable(frame)
    read = [con.execute(t.select(t.i, d=read_as(t.v, "date").cast("string")).order_by("i")).d.tolist()
            for con, t in ((ibis.pyspark.connect(spark), on_spark), (ibis.duckdb.connect(), on_duck))]
    assert read[0] == read[1] and read[1].count(None) == 11, list(zip(texts, *read))

    d = tmp_path / "data"
    shutil.copytree(small_portfolio, d, ignore=shutil.ignore_patterns("truth"))
    c = pd.read_parquet(d / "contracts.parquet")
    some = c.index[::4]
    c["start_date"] = pd.to_datetime(c.start_date).dt.strftime("%Y-%m-%d")
    c.loc[some, "start_date"] = (pd.to_datetime(c.start_date[some]) - pd.Timestamp("1899-12-30")).dt.days.astype(str)
    (d / "contracts.csv").write_text("Contracts report\n" + c.to_csv(index=False))
    (d / "contracts.parquet").unlink()
    clean = open_source(small_portfolio).frame("contracts")
    for src in (open_source(d), open_source(d, engine="spark", spark=spark)):
        assert any(n.startswith("contracts.csv: the header row is line 2;") for n in src.notes), src.engine
        [p] = [p for p in validate(src).warnings if p.rule == "spreadsheet_days"]
        assert (p.table, p.column, p.count) == ("contracts", "start_date", len(some)), src.engine
        got = src.frame("contracts").sort_values("contract_id").reset_index(drop=True)
        assert differing_columns(clean.sort_values("contract_id").reset_index(drop=True), got) == [], src.engine


def test_zoned_timestamps_and_repeated_column_names_read_the_same_on_spark(small_portfolio, spark, tmp_path):
    """Parquet timestamps with a time zone (nanoseconds in Tokyo, as pandas writes them; milliseconds at a fixed
    offset): the dates on the zone's clock on both engines, the export's plain dates, with the same note. A CSV
    whose header row names a column twice (Spark's own reader renames both): the first read on both engines."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path / "data"
    shutil.copytree(small_portfolio, d, ignore=shutil.ignore_patterns("truth"))
    for name, columns, unit, zone, shift in (("contracts", ("start_date", "end_date"), "ns", "Asia/Tokyo", None),
                                             ("accounts", ("created_at",), "ms", "-03:30", "210min")):
        df = pd.read_parquet(d / f"{name}.parquet")
        table = pa.Table.from_pandas(df.drop(columns=list(columns)), preserve_index=False)
        for c in columns:
            local = pd.to_datetime(df[c])
            instants = (local + pd.Timedelta(shift)).dt.tz_localize("UTC") if shift else local.dt.tz_localize(zone)
            table = table.append_column(c, pa.array(instants.dt.tz_convert("UTC"), type=pa.timestamp(unit, tz=zone)))
        pq.write_table(table, d / f"{name}.parquet")
    t = pd.read_parquet(d / "tickets.parquet")
    t.assign(Priority="P9").to_csv(d / "tickets.csv", index=False)          # 'priority' twice, case aside
    (d / "tickets.parquet").unlink()
    clean = open_source(small_portfolio)
    for src in (open_source(d), open_source(d, engine="spark", spark=spark)):
        assert any(n.startswith("contracts.parquet: timestamps with a time zone (start_date in Asia/Tokyo")
                   for n in src.notes), (src.engine, src.notes)
        assert any(n.startswith("tickets.csv: columns 5 and 7 are both named 'priority'") for n in src.notes)
        for name in ("contracts", "accounts", "tickets"):
            key = {"accounts": "account_id", "contracts": "contract_id", "tickets": "ticket_id"}[name]
            want = clean.frame(name).sort_values(key).reset_index(drop=True)
            got = src.frame(name).sort_values(key).reset_index(drop=True)
            assert differing_columns(want, got[want.columns]) == [], (src.engine, name)


def test_booleans_as_words_and_numbers_read_the_same_on_spark(spark):
    """A boolean column's text and numbers read as the same true/false, or none, on both engines."""
    import ibis

    from csforecast.data.parse import read_as

    texts = ["true", "False", "T", "f", "Y", "n", "yes", "NO", "1", "0", "1.0", "0.0", " 1 ", "2", "0.5", "maybe",
             "", None]
    frame = pd.DataFrame({"i": range(len(texts)), "v": texts, "x": [1.0, 0.0, 0.5, None, 2.0, -1.0] * 3})
    spark.createDataFrame(frame).createOrReplaceTempView("bool_texts")
    read = [con.execute(t.select(t.i, b=read_as(t.v, "bool"), y=read_as(t.x, "bool")).order_by("i"))
            for con, t in ((ibis.pyspark.connect(spark), ibis.pyspark.connect(spark).table("bool_texts")),
                           (ibis.duckdb.connect(), ibis.memtable(frame)))]
    want = [True, False] * 6 + [True] + [None] * 5
    for got in read:
        assert [None if pd.isna(v) else bool(v) for v in got.b] == want, list(zip(texts, got.b))
        assert [None if pd.isna(v) else bool(v) for v in got.y] == [True, False, None, None, None, None] * 3


def test_excel_workbooks_read_the_same_on_spark(small_portfolio, spark, tmp_path):
    """accounts and contracts as Excel workbooks (contracts with a blank row, and a second sheet that is not the
    table), an .xls export of tickets: the same tables, notes, errors and data hash on Spark as on DuckDB, and the
    same tables as the Parquet export's. A workbook of several tables is refused on Spark with what to do."""
    import shutil

    from openpyxl import Workbook, load_workbook

    d = tmp_path / "data"
    shutil.copytree(small_portfolio, d, ignore=shutil.ignore_patterns("truth"))
    for name in ("accounts", "contracts"):
        with pd.ExcelWriter(d / f"{name}.xlsx", engine="openpyxl") as xw:
            pd.read_parquet(d / f"{name}.parquet").to_excel(xw, sheet_name=name.title(), index=False)
        (d / f"{name}.parquet").unlink()
    wb = load_workbook(d / "contracts.xlsx")
    wb["Contracts"].insert_rows(5)
    wb["Contracts"].cell(5, 1, " ")
    wb.create_sheet("Pivot", 0).append(["by segment"])
    wb.save(d / "contracts.xlsx")
    (d / "tickets.parquet").unlink()
    (d / "tickets.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    duck, sp = open_source(d), open_source(d, engine="spark", spark=spark)
    assert sp.data_hash == duck.data_hash
    assert sp.unreadable == duck.unreadable and "tickets.xls is a .xls spreadsheet" in sp.unreadable["tickets"]
    said = [n for n in duck.notes if "xlsx" in n]
    assert said == [n for n in sp.notes if "xlsx" in n] and len(said) == 2, said
    assert "contracts.xlsx: 1 row(s) with every field empty (line 5) left out: they hold no data" in said
    clean = open_source(small_portfolio)
    for name in ("accounts", "contracts"):
        key = clean.frame(name).columns[0]
        want = clean.frame(name).sort_values(key).reset_index(drop=True)
        for src in (duck, sp):
            got = src.frame(name).sort_values(key).reset_index(drop=True)
            assert differing_columns(want, got) == [], (name, src.engine)
    Workbook().save(tmp_path / "crm.xlsx")
    with pytest.raises(SourceError, match="the Spark engine does not read a workbook of several tables"):
        open_source(tmp_path / "crm.xlsx", engine="spark", spark=spark)
