"""Batch scoring on Spark (champions broadcast to the executors, applied per partition with mapInPandas)
gives the in-process scores to 1e-9, with the same provenance, and loads into the scores store."""
from __future__ import annotations

import json
import time

import pandas as pd
from typer.testing import CliRunner

from csforecast.data.sources import open_source
from csforecast.scoring.batch import load_champions, monitoring_reference, score_accounts
from csforecast.scoring.spark import MANIFEST, load_into_store, read_scores, score_on_spark
from csforecast.scoring.store import load_latest, load_monitoring

from spark_util import SPARK_TIMINGS, differing_columns


def test_spark_scores_equal_in_process(small_portfolio, spark, in_home, tmp_path):
    champs = load_champions()
    assert set(champs.estimators) == {"churn", "survival", "health", "blend"}   # the simulator writes CSM calls
    duck = open_source(small_portfolio)
    want, want_hist, as_of = score_accounts(duck, champs)
    src = open_source(small_portfolio, engine="spark", spark=spark)
    t0 = time.perf_counter()
    res = score_on_spark(src, champs, tmp_path / "scores", partitions=3, batch_rows=50)
    SPARK_TIMINGS["batch scoring with history (300 accounts)"] = time.perf_counter() - t0
    assert res["as_of"] == str(as_of) and res["data_hash"] == duck.data_hash and res["models"] == champs.versions
    manifest, got, got_hist = read_scores(tmp_path / "scores")
    assert (tmp_path / "scores" / MANIFEST).is_file() and manifest["accounts"] == len(want)
    want = want.sort_values("account_id", ignore_index=True)
    assert set(got.columns) == set(want.columns) | {"data_hash"}
    assert (got["data_hash"] == duck.data_hash).all()
    for fam, v in champs.versions.items():
        assert (got[f"{fam}_model_version"] == v).all()
    assert differing_columns(want, got[want.columns]) == []
    want_hist = want_hist.sort_values(["account_id", "week"], ignore_index=True)
    assert differing_columns(want_hist, got_hist[want_hist.columns]) == []

    # loaded into the store: one score set with the same provenance as in-process scoring, and its monitoring
    # (the Spark output has no features: the drift of the served probability only)
    db = in_home / "scores.duckdb"
    loaded = load_into_store(tmp_path / "scores", db, src, monitoring_reference(champs))
    meta, stored, hist = load_latest(db)
    _, drift, drift_set = load_monitoring(db)
    assert drift_set == loaded["version"] and drift["column"].tolist() == ["churn_probability"]
    assert loaded["monitoring"]["resolved_outcomes"] >= 0 and drift["psi"].notna().all()
    assert meta["version"] == loaded["version"] and meta["data_hash"] == duck.data_hash
    assert meta["models"] == champs.versions and str(meta["as_of"])[:10] == str(as_of)
    stored = stored.sort_values("account_id", ignore_index=True)
    assert differing_columns(want.drop(columns=["as_of"]), stored[[c for c in want.columns if c != "as_of"]]) == []
    assert len(hist) == len(want_hist)


def test_cli_score_engine_spark(small_portfolio, spark, in_home, tmp_path):
    from csforecast.cli import app

    out = tmp_path / "cli-scores"
    r = CliRunner().invoke(app, ["score", "--engine", "spark", "--data", str(small_portfolio), "--out", str(out),
                                 "--no-store", "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["out"] == str(out) and res["accounts"] > 100 and "version" not in res
    assert read_scores(out)[1]["account_id"].is_unique      # (the folder also holds history/)
    r = CliRunner().invoke(app, ["score", "--data", str(small_portfolio), "--out", str(out)])
    assert r.exit_code == 2 and "--engine spark only" in r.output
