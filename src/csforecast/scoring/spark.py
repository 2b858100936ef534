"""Batch scoring on Spark: the snapshot computed by Spark, the champions shipped to the executors and
applied per partition (`mapInPandas`), the scores written to Parquet with their provenance.

What runs where (docs/scaling.md):
- Spark SQL (the cluster): the point-in-time snapshot, the same Ibis expressions as in process
  (`features.snapshot.snapshot_plan`), over the source's tables where they are;
- each executor's Python worker: `SnapshotPlan.finish` and `batch.score_snapshot` on Arrow batches of rows,
  with the champion models broadcast once per executor; the weekly health history per account
  (`applyInPandas` over buckets of accounts: one Python call per bucket, not per account);
- the driver: the plan, the champions (from the registry), a sample of rows to learn the output schema.

The output folder holds Spark's Parquet part files (one row per account: profile, scores, drivers and
contributions as JSON text, `<family>_model_version`, `as_of`, `data_hash`), `history/` (the weekly health
history) and `_csforecast.json` (the manifest: as-of, data hash, model versions, counts). `load_into_store`
writes it to the scores store as a score set, exactly as `csforecast score` does in process; the scores are
those of in-process scoring (`batch.score_accounts`) to 1e-9.
"""
from __future__ import annotations

import json
import shutil
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd

from csforecast.data.sources import Source
from csforecast.features.snapshot import data_end, snapshot_plan
from csforecast.scoring import families
from csforecast.scoring.batch import ACCOUNT_COLUMNS, Champions, history_weeks, score_snapshot
from csforecast.scoring.process import all_calls
from csforecast.scoring.store import JSON_COLUMNS, json_text, write_scores

__all__ = ["MANIFEST", "score_on_spark", "read_scores", "load_into_store", "task_threads", "fit_threads"]

MANIFEST = "_csforecast.json"       # Spark and pyarrow skip files starting with "_" when reading the folder
HISTORY = "history"
HISTORY_JSON = ("components", "contributions")
BUCKET = "_csforecast_bucket"
SAMPLE_ROWS = 32


def _to_json_text(df: pd.DataFrame, columns) -> pd.DataFrame:
    """Lists and dicts of `columns` as JSON text (what Parquet and the scores store hold)."""
    for c in columns:
        if c in df.columns:
            df[c] = [None if v is None else (v if isinstance(v, str) else json_text(v))
                     for v in df[c]]
    return df


def _from_json_text(df: pd.DataFrame, columns) -> pd.DataFrame:
    for c in columns:
        if c in df.columns:
            df[c] = [json.loads(v) if isinstance(v, str) else v for v in df[c]]
    return df


def _spark_type(s: pd.Series) -> str:
    """The Spark SQL type of a pandas column (object columns are text)."""
    if pd.api.types.is_bool_dtype(s):
        return "boolean"
    if pd.api.types.is_integer_dtype(s):
        return "bigint"
    if pd.api.types.is_float_dtype(s):
        return "double"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "timestamp"
    return "string"


def _conform(df: pd.DataFrame, schema_columns: dict[str, str]) -> pd.DataFrame:
    """`df` with exactly the schema's columns and types (a batch whose column is all NULL has object dtype)."""
    out = {}
    for c, t in schema_columns.items():
        v = df[c] if c in df.columns else pd.Series(None, index=df.index, dtype=object)
        if t == "double":
            v = pd.to_numeric(v, errors="coerce").astype(float)
        elif t == "timestamp":
            v = pd.to_datetime(v)
        elif t == "string":
            v = v.astype(object).where(v.notna(), None)
            v = v.map(lambda x: x if x is None or isinstance(x, str) else str(x))
        out[c] = v
    return pd.DataFrame(out, index=df.index)


def task_threads() -> int:
    """The cores of the running Spark task (``spark.task.cpus``, 1 by default); 1 outside a task."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    return max(1, int(ctx.cpus())) if ctx is not None else 1


def fit_threads(estimators: dict, n: int) -> dict:
    """Set every estimator that predicts with threads (``set_predict_threads``: LightGBM's TreeSHAP) to ``n``
    threads, in place; returns ``estimators``. On an executor, ``n`` is the task's cores (`task_threads`):
    Spark runs as many tasks in parallel as the executor has cores, each in its own Python worker, so a task
    using the model's training ``n_jobs`` would oversubscribe them (local[2]: 2 tasks × 2 threads on 2 cores)."""
    for est in estimators.values():
        if hasattr(est, "set_predict_threads"):
            est.set_predict_threads(n)
    return estimators


def _score_batch_fn(plan, bc, versions: dict, as_of: date, data_hash: str, calls_bc=None):
    """The function each executor applies to the snapshot rows of its partition, batch by batch (``calls_bc``:
    the CSM calls, broadcast, joined to the rows as ``batch.score_accounts`` joins them)."""
    metrics, start = plan.metrics, plan.history_start

    def score(raw: pd.DataFrame) -> pd.DataFrame:
        from csforecast.features.calls import latest_calls
        from csforecast.features.snapshot import SnapshotPlan

        snap = SnapshotPlan(None, metrics, start).finish(raw)
        if calls_bc is not None:
            snap = snap.join(latest_calls(calls_bc.value, snap))
        out = score_snapshot(snap, Champions(bc.value, versions), as_of)
        out["data_hash"] = data_hash
        return _to_json_text(out, JSON_COLUMNS)

    return score


def _history_fn(plan, bc, fam_name: str):
    metrics, start = plan.metrics, plan.history_start
    history = families.get(fam_name).history

    def weekly(raw: pd.DataFrame) -> pd.DataFrame:
        from csforecast.features.snapshot import SnapshotPlan

        snap = SnapshotPlan(None, metrics, start).finish(raw)
        return _to_json_text(history(bc.value[fam_name], snap), HISTORY_JSON)

    return weekly


def _with_accounts(source: Source, expr):
    """The snapshot expression with the account's name and CSM (as `batch.score_accounts` adds them)."""
    a = source.table("accounts").select(_aid="account_id", **{k: v for k, v in ACCOUNT_COLUMNS.items()})
    return expr.left_join(a, expr.account_id == a._aid).drop("_aid")


def _replace_dir(tmp: Path, out: Path) -> None:
    """Publish a finished output folder: the old one (if any) is moved away, the new one moved in."""
    old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def score_on_spark(source: Source, champions: Champions, out: Path, as_of: date | None = None, *,
                   with_history: bool = True, batch_rows: int = 10_000, partitions: int | None = None,
                   progress=None) -> dict:
    """Score every active account as of ``as_of`` (default: the data end) on Spark and write the result
    to the folder ``out`` (replaced whole, only once complete). ``source`` must be open on the Spark engine.
    ``partitions``: repartition the snapshot rows into this many tasks before scoring (default: as Spark
    planned them); ``batch_rows``: rows per Arrow batch given to the models. Returns the manifest."""
    tell = progress or (lambda _m: None)
    spark = source.spark
    if spark is None:
        raise ValueError(f"{source.location} is not open on the Spark engine")
    as_of = as_of or data_end(source)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(int(batch_rows)))
    data_hash = source.data_hash
    bc = spark.sparkContext.broadcast(dict(champions.estimators))
    try:
        tell(f"planning the snapshot as of {as_of} on Spark")
        plan = snapshot_plan(source, [as_of])
        rows = source.spark_frame(_with_accounts(source, plan.expr))
        if partitions:
            rows = rows.repartition(int(partitions))
        calls = all_calls(source)
        calls_bc = spark.sparkContext.broadcast(calls) if len(calls) else None
        score = _score_batch_fn(plan, bc, dict(champions.versions), as_of, data_hash, calls_bc)
        sample = rows.limit(SAMPLE_ROWS).toPandas()
        if sample.empty:
            raise ValueError(f"no active accounts as of {as_of}")
        schema_df = score(sample)
        types = {c: _spark_type(schema_df[c]) for c in schema_df.columns}

        def run(batches):
            # the broadcast champions are this worker's copy: sized to the task's cores before any batch
            fit_threads(bc.value, task_threads())
            for raw in batches:
                if len(raw):
                    yield _conform(score(raw), types)

        tell("scoring on the executors")
        scored = rows.mapInPandas(run, schema=", ".join(f"`{c}` {t}" for c, t in types.items()))
        scored.write.mode("overwrite").parquet(str(tmp))
        n_hist = 0
        hist_fams = [f.name for f in families.FAMILIES.values()
                     if f.history is not None and f.name in champions.estimators]
        if with_history and hist_fams:
            tell("weekly history on the executors")
            hplan = snapshot_plan(source, history_weeks(as_of))
            hrows = source.spark_frame(hplan.expr)
            weekly = _history_fn(hplan, bc, hist_fams[0])
            hsample = hrows.filter(hrows.account_id == sample["account_id"].iloc[0]).toPandas()
            htypes = {c: _spark_type(s) for c, s in weekly(hsample).items()}

            def hist(raw: pd.DataFrame) -> pd.DataFrame:
                fit_threads(bc.value, task_threads())
                return _conform(weekly(raw.drop(columns=[BUCKET])), htypes)

            # an account's weeks must be in one call, but a call per account costs a Python round trip each:
            # accounts are hashed into as many buckets as tasks, and each call takes a whole bucket
            from pyspark.sql import functions as F

            buckets = int(partitions or spark.sparkContext.defaultParallelism)
            hrows = hrows.withColumn(BUCKET, F.pmod(F.hash("account_id"), F.lit(buckets)))
            hrows.groupBy(BUCKET).applyInPandas(
                hist, schema=", ".join(f"`{c}` {t}" for c, t in htypes.items())
            ).write.mode("overwrite").parquet(str(tmp / HISTORY))
            n_hist = int(spark.read.parquet(str(tmp / HISTORY)).count())
        n = int(spark.read.parquet(str(tmp)).count())
        manifest = {"as_of": str(as_of), "data_hash": data_hash, "models": dict(champions.versions),
                    "accounts": n, "history_rows": n_hist, "source": source.location, "engine": "spark",
                    "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        bc.unpersist()
    return {**manifest, "out": str(out)}


def read_scores(path: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame | None]:
    """(manifest, scores, weekly history or None) of a folder written by `score_on_spark`, with JSON text
    turned back into lists and dicts, rows ordered by account_id."""
    path = Path(path)
    mf = path / MANIFEST
    if not mf.is_file():
        raise FileNotFoundError(f"{path} is not a folder of Spark scores (no {MANIFEST})")
    manifest = json.loads(mf.read_text())
    scores = pd.read_parquet(path, ignore_prefixes=[".", "_", HISTORY])
    scores = _from_json_text(scores, JSON_COLUMNS).sort_values("account_id", ignore_index=True)
    history = None
    if (path / HISTORY).is_dir():
        history = _from_json_text(pd.read_parquet(path / HISTORY), HISTORY_JSON)
        history = history.sort_values(["account_id", "week"], ignore_index=True)
        history["change_explanation"] = history["change_explanation"].astype(object).where(
            history["change_explanation"].notna(), None)
    for c in scores.columns:
        if scores[c].dtype == object:
            scores[c] = scores[c].where(scores[c].notna(), None)
    if "as_of" in scores:
        scores["as_of"] = pd.to_datetime(scores["as_of"])
    scores["renewal_date"] = pd.to_datetime(scores["renewal_date"]) if "renewal_date" in scores else None
    return manifest, scores, history


def load_into_store(path: Path, scores_db: Path, source=None, reference: pd.DataFrame | None = None,
                    settings=None) -> dict:
    """Write the Spark scores in ``path`` to the scores store as one score set (atomically, like in-process
    scoring); the new set's summary. With the ``source`` they were scored from, the set records its monitoring
    as in-process scoring does (``monitor.score_set_monitoring``): the outcomes resolved for earlier sets and,
    against the churn champion's training ``reference``, the drift of the served probability (the Parquet
    output carries no features, so feature drift is measured by in-process scoring only)."""
    from csforecast.scoring import monitor

    manifest, scores, history = read_scores(path)
    scores = scores.drop(columns=["data_hash"], errors="ignore")
    outcomes = drift = None
    if source is not None:
        if settings is None:
            from csforecast.config import get_settings

            settings = get_settings()
        outcomes, drift = monitor.score_set_monitoring(source, scores_db, None, scores, reference, settings)
    version = write_scores(scores_db, scores, as_of=manifest["as_of"], data_hash=manifest["data_hash"],
                           models=manifest["models"], history=history, outcomes=outcomes, drift=drift)
    res = {"version": version, "as_of": manifest["as_of"], "accounts": int(len(scores)),
           "models": manifest["models"], "data_hash": manifest["data_hash"], "scores_db": str(scores_db),
           "spark_scores": str(path)}
    if outcomes is not None:
        res["monitoring"] = {"resolved_outcomes": int(len(outcomes)), "psi_warnings": sorted(
            drift.loc[drift["warning"].astype(bool), "column"]) if len(drift) else []}
    return res
