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


def test_a_lightgbm_champion_scores_on_spark_as_in_process(small_portfolio, training_book, spark, tmp_path):
    """A tree champion, whose TreeSHAP each Spark task runs on its own cores (``fit_threads``: 1 thread a task
    here, against the model's 2 in process): the same probabilities, contributions and drivers to 1e-9."""
    from csforecast.models.churn import ChurnClassifier
    from csforecast.pipelines.churn import DEFAULT_EXCLUDE, default_params
    from csforecast.pipelines.context import TrainingContext
    from csforecast.scoring.batch import Champions
    from csforecast.scoring.spark import fit_threads, task_threads

    ctx = TrainingContext.build(open_source(training_book))
    rows = ctx.decision_rows()
    tr, _ = ctx.split(rows)
    feats = [f for f in ctx.features(rows) if f not in DEFAULT_EXCLUDE]
    est = ChurnClassifier(**{**default_params(len(tr)), "algorithm": "lightgbm", "n_jobs": 2}).fit(
        tr[feats], tr["label_churn"].astype(int), sample_time=tr["renewal_date"])
    assert est.chosen_ == "lightgbm" and getattr(est, "predict_threads_", None) is None
    champs = Champions({"churn": est}, {"churn": "t"})
    want, _, _ = score_accounts(open_source(small_portfolio), champs)
    src = open_source(small_portfolio, engine="spark", spark=spark)
    score_on_spark(src, champs, tmp_path / "lgbm", partitions=2, batch_rows=64, with_history=False)
    _, got, _ = read_scores(tmp_path / "lgbm")
    want = want.sort_values("account_id", ignore_index=True)
    assert differing_columns(want, got[want.columns]) == []
    # the driver's champion is not the executors' copy: in process it keeps its training threads
    assert getattr(est, "predict_threads_", None) is None
    assert task_threads() == 1 and fit_threads({"churn": est}, 1)["churn"].predict_threads_ == 1
