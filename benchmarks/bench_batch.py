"""Batch scoring benchmark: N accounts scored with exact contributions and drivers, against the raw model's own
work on the same rows (measured in the same run).

  .venv/bin/python benchmarks/bench_batch.py --accounts 1000000 [--algorithm logistic|lightgbm] [--spark]
      [--masters local[1],local[2]] [--champion-params JSON] [--spark-model-threads]

A churn model is trained on a simulated portfolio (``--train-accounts``, 3 years); the scoring snapshot of that
portfolio at its data end is repeated (new account ids) to N rows. Timed:

- raw: the model's own work on the N rows (in the same slices of CHUNK_ROWS rows as batch scoring, each slice timed
  just before batch scoring's own, so both see the same load), ``ChurnClassifier.explain_raw`` (LightGBM ``predict(pred_contrib=True)``
  for a tree model, the design matrix and its product with the coefficients for the logistic model; the
  contributions sum to the raw logit, so it holds the prediction);
- batch: ``scoring.batch.score_snapshot`` with that champion: profile columns, calibrated probability, calibrated
  exact contributions (base value) and the top drivers in words, per row — what ``csforecast score`` writes;
- with ``--spark``: the same rows as a Parquet folder scored by ``scoring.spark`` (``mapInPandas`` on
  ``--master``, default local[2]) to Parquet: the overhead ratio against in-process;
- with ``--masters local[1],local[2]``: the same on each master in turn (the input file split into 16 row
  groups, so every core has tasks; each task's TreeSHAP on the task's cores, ``scoring.spark.fit_threads``),
  then the speed-up from the first master to the last (how the work divides across executor cores) and an
  extrapolation to 1,000,000 rows on N cores (printed as one: an estimate, not a measurement);
  ``--spark-model-threads`` also runs the last master with the model's training threads in every task (the
  behaviour before the threads were fitted), as the baseline of that change.

For a tree champion, the per-row cost of TreeSHAP (``pred_contrib``) is printed at the model's threads and on
one thread. This book's own LightGBM champion is small (~0.01 ms a row); ``--champion-params`` fits a
production-size ensemble instead (e.g. ``'{"n_estimators": 600, "learning_rate": 0.003, "num_leaves": 15,
"min_child_samples": 20}'``: ~0.4 ms a row).

Peak memory is the process's peak resident set (ru_maxrss) after the in-process part. The last line is
``batch N accounts: X s; raw Y s; ratio R; peak Z MB``.

``--profile`` (or ``CSFORECAST_BENCH_PROFILE=1``) also prints the wall time (``time.perf_counter``) of each stage
of batch scoring summed over the slices: the churn scorer's calibrated contributions (``explain``, of which its
own ``explain_raw``), compact drivers, interval, the rest of the scorer (its frame), the rest of
``score_snapshot`` (profile columns, joins) and the final concatenation. The stages are timed by wrapping the
functions for the run (a few perf_counter calls a slice: no per-call overhead like cProfile's).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from csforecast.data.sources import open_source  # noqa: E402
from csforecast.features.snapshot import build_snapshots, data_end  # noqa: E402
from csforecast.models.churn import ChurnClassifier  # noqa: E402
from csforecast.pipelines.churn import DEFAULT_EXCLUDE, default_params  # noqa: E402
from csforecast.pipelines.context import TrainingContext  # noqa: E402
from csforecast.scoring.batch import CHUNK_ROWS, Champions, concat_slices, score_snapshot  # noqa: E402
from csforecast.simulate import simulate_portfolio  # noqa: E402


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StageClock:
    """Wall seconds per stage, summed over calls, while ``active``: ``wrap(owner, attr, stage)`` replaces
    ``owner.attr`` by a timed call of it for the rest of the process (benchmark only)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.active = False

    def wrap(self, owner, attr: str, stage: str) -> None:
        fn = getattr(owner, attr)

        def timed(*args, **kw):
            if not self.active:
                return fn(*args, **kw)
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t
        setattr(owner, attr, timed)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


def stage_clock() -> StageClock:
    """A StageClock wrapped around the stages of the churn scorer (see the module docstring)."""
    from csforecast.scoring import churn as churn_scoring
    from csforecast.scoring import families

    clock = StageClock()
    # the raw and the calibrated contributions, whichever public method (explain_raw / explain /
    # explain_arrays) the scorer calls
    clock.wrap(ChurnClassifier, "_raw_contributions", "explain_raw (in batch)")
    clock.wrap(ChurnClassifier, "_calibrated_contributions", "explain (calibrated, incl. explain_raw)")
    clock.wrap(ChurnClassifier, "interval_of", "interval")
    clock.wrap(churn_scoring, "compact_drivers_rows", "compact drivers")
    fam = families.FAMILIES["churn"]
    scorer = fam.scorer

    def timed_scorer(est, rows):
        t = time.perf_counter()
        try:
            return scorer(est, rows)
        finally:
            clock.add("churn scorer (all)", time.perf_counter() - t)
    object.__setattr__(fam, "scorer", timed_scorer)
    return clock


def print_stages(clock: StageClock, raw_s: float, batch_s: float) -> None:
    s = clock.seconds
    s["scorer rest (frame, fallback)"] = (s.get("churn scorer (all)", 0) - s.get("explain (calibrated, incl. "
                                          "explain_raw)", 0) - s.get("compact drivers", 0) - s.get("interval", 0))
    s["calibration (explain - explain_raw)"] = (s.get("explain (calibrated, incl. explain_raw)", 0)
                                                - s.get("explain_raw (in batch)", 0))
    s["score_snapshot rest (profile, joins)"] = (s.get("score_snapshot", 0) - s.get("churn scorer (all)", 0))
    print(f"stages (wall s, summed over slices; raw {raw_s:.2f} s, batch {batch_s:.2f} s):")
    for k in ("score_snapshot", "churn scorer (all)", "explain (calibrated, incl. explain_raw)",
              "explain_raw (in batch)", "calibration (explain - explain_raw)", "compact drivers", "interval",
              "scorer rest (frame, fallback)", "score_snapshot rest (profile, joins)", "concat"):
        print(f"  {k:<42} {s.get(k, 0.0):8.2f}")


def train(folder: Path, algorithm: str, params: dict | None = None) -> ChurnClassifier:
    ctx = TrainingContext.build(open_source(folder))
    rows = ctx.decision_rows()
    tr, _ = ctx.split(rows)
    feats = [f for f in ctx.features(rows) if f not in DEFAULT_EXCLUDE]
    return ChurnClassifier(**{**default_params(len(tr)), "algorithm": algorithm, **(params or {})}).fit(
        tr[feats], tr["label_churn"].astype(int), sample_time=tr["renewal_date"])


def scoring_rows(folder: Path, n: int) -> pd.DataFrame:
    """The data-end snapshot of the portfolio repeated to n rows, each with its own account id."""
    src = open_source(folder)
    snap = build_snapshots(src, [data_end(src)], labels=False)
    big = snap.iloc[np.arange(n) % len(snap)].reset_index(drop=True)
    big["account_id"] = [f"B{i:07d}" for i in range(n)]
    return big


def spark_input(big: pd.DataFrame, tmp: Path) -> Path:
    """``big`` as one Parquet file of 16 row groups, so that Spark can split it across up to 16 tasks (one
    row group would be one task, whatever the master)."""
    inp = tmp / "rows.parquet"
    big.to_parquet(inp, index=False, row_group_size=max(1, -(-len(big) // 16)))
    return inp


def spark_run(inp: Path, champs: Champions, master: str, tmp: Path, sample: pd.DataFrame,
              fit: bool = True) -> tuple[float, int]:
    """(seconds, tasks) to score the rows in ``inp`` (already a snapshot) on Spark with mapInPandas, Parquet to
    Parquet, as ``scoring.spark`` does; ``fit``: the champions' prediction threads set to the task's cores
    (``scoring.spark.fit_threads``), else left at the model's training ``n_jobs`` (the old behaviour)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from datetime import date

    from csforecast.data.sources import spark_session
    from csforecast.scoring.spark import _conform, _spark_type, _to_json_text, fit_threads, task_threads
    from csforecast.scoring.store import JSON_COLUMNS

    # the file read in splits of about a row group each (Spark would otherwise pack a small file into one
    # task: it counts 4 MB to open a file), so that every core of the master has tasks
    split = max(1, inp.stat().st_size // 16)
    spark = spark_session(master, {"spark.sql.shuffle.partitions": "4", "spark.sql.files.maxPartitionBytes":
                                   str(split), "spark.sql.files.openCostInBytes": "0"})
    as_of = date.today()
    bc = spark.sparkContext.broadcast(dict(champs.estimators))
    versions = dict(champs.versions)

    def score(raw: pd.DataFrame) -> pd.DataFrame:
        return _to_json_text(score_snapshot(raw, Champions(bc.value, versions), as_of), JSON_COLUMNS)

    types = {c: _spark_type(s) for c, s in score(sample).items()}

    def run(batches):
        if fit:
            fit_threads(bc.value, task_threads())
        for raw in batches:
            if len(raw):
                yield _conform(score(raw), types)

    t = time.perf_counter()
    rows = spark.read.parquet(str(inp))
    tasks = rows.rdd.getNumPartitions()
    rows.mapInPandas(run, schema=", ".join(f"`{c}` {t}" for c, t in types.items())).write.mode(
        "overwrite").parquet(str(tmp / "out"))
    took = time.perf_counter() - t
    bc.unpersist()
    spark.stop()
    return took, tasks


def _cores(master: str) -> int:
    """The cores of a local master (``local[4]`` -> 4, ``local`` -> 1, ``local[*]`` -> this machine's)."""
    inner = master[master.find("[") + 1:master.find("]")] if "[" in master else "1"
    return (os.cpu_count() or 1) if inner == "*" else int(inner.split(",")[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--algorithm", choices=["logistic", "lightgbm"], default="logistic")
    ap.add_argument("--train-accounts", type=int, default=1000)
    ap.add_argument("--champion-params", default=None,
                    help="JSON of ChurnClassifier settings over the defaults, e.g. a production-size tree "
                         "ensemble: '{\"n_estimators\": 600, \"learning_rate\": 0.003, \"num_leaves\": 63, "
                         "\"min_child_samples\": 20}' (this book's own champion is small: ~0.01 ms a row)")
    ap.add_argument("--spark", action="store_true", help="also score the same rows on Spark")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--masters", default=None,
                    help="comma-separated Spark masters to score the same rows on, e.g. local[1],local[2] "
                         "(implies --spark; default: --master)")
    ap.add_argument("--spark-model-threads", action="store_true",
                    help="also run the last master with the model's training threads in each task (the "
                         "behaviour before the threads were fitted to the task: the baseline of the fix)")
    ap.add_argument("--profile", action="store_true", default=bool(os.environ.get("CSFORECAST_BENCH_PROFILE")),
                    help="also print the wall time of each stage of batch scoring")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    simulate_portfolio(a.train_accounts, 3, seed=5).write(tmp / "sim")
    est = train(tmp / "sim", a.algorithm, json.loads(a.champion_params) if a.champion_params else None)
    big = scoring_rows(tmp / "sim", a.accounts)
    X = big[list(est.feature_names_in_)]
    champs = Champions({"churn": est}, {"churn": "bench"})
    clock = stage_clock() if a.profile else None
    # raw and batch timed slice by slice, interleaved (the slices batch scoring works in; score_snapshot of
    # more rows scores them a slice at a time and joins them with ``concat_slices``), so that both see the same
    # load on a shared machine; joining the slices is counted in the batch time
    raw_s = batch_s = 0.0
    parts = []
    as_of = pd.Timestamp.today().date()
    for i in range(0, len(X), CHUNK_ROWS):
        t = time.perf_counter()
        est.explain_raw(X.iloc[i:i + CHUNK_ROWS])
        t1 = time.perf_counter()
        if clock:
            clock.active = True
        parts.append(score_snapshot(big.iloc[i:i + CHUNK_ROWS], champs, as_of))
        t2 = time.perf_counter()
        if clock:
            clock.active = False
            clock.add("score_snapshot", t2 - t1)
            print(f"  slice {i // CHUNK_ROWS}: raw {t1 - t:.2f} s, batch {t2 - t1:.2f} s, peak {_peak_mb():.0f} MB",
                  flush=True)
        raw_s += t1 - t
        batch_s += t2 - t1
    t = time.perf_counter()
    out = concat_slices(parts)
    batch_s += time.perf_counter() - t
    if clock:
        clock.add("concat", time.perf_counter() - t)
    del parts
    peak = _peak_mb()
    assert len(out) == a.accounts and out["churn_drivers"].map(len).min() > 0
    print(f"model: {est.chosen_} ({est.calibration_} calibration), {len(est.feature_names_in_)} features; "
          f"{a.accounts / batch_s:,.0f} accounts/s, {1e3 * batch_s / a.accounts:.4f} ms a row")
    if est.chosen_ != "logistic":
        # the raw model's own work a row: TreeSHAP (pred_contrib) at the model's threads (the raw time above)
        # and on one thread (what one Spark task with one core does), on the same first slice
        n1 = min(len(X), 20_000)
        t = time.perf_counter()
        est.set_predict_threads(1).explain_raw(X.iloc[:n1])
        one_s = time.perf_counter() - t
        est.set_predict_threads(None)
        print(f"TreeSHAP (pred_contrib) a row: {1e3 * raw_s / a.accounts:.3f} ms at the model's {est.n_jobs} "
              f"threads, {1e3 * one_s / n1:.3f} ms on 1 thread ({n1} rows); 1,000,000 rows on 1 core "
              f"{1e6 * one_s / n1 / 60:.1f} min", flush=True)
    if a.spark or a.masters:
        del out
        inp = spark_input(big, tmp)
        sample = big.head(32)
        masters = (a.masters or a.master).split(",")
        took = {}
        for m in masters:
            took[m], tasks = spark_run(inp, champs, m, tmp, sample)
            print(f"spark {m}: {took[m]:.1f} s ({tasks} tasks, threads fitted to the task); in-process "
                  f"{batch_s:.1f} s; overhead ratio {took[m] / batch_s:.2f}; "
                  f"{1e3 * took[m] / a.accounts:.3f} ms a row", flush=True)
        if a.spark_model_threads:
            m = masters[-1]
            old_s, tasks = spark_run(inp, champs, m, tmp, sample, fit=False)
            print(f"spark {m} with the model's {getattr(est, 'n_jobs', '?')} training threads per task (before): "
                  f"{old_s:.1f} s ({tasks} tasks); fitted {took[m]:.1f} s; ratio before/after "
                  f"{old_s / took[m]:.2f}", flush=True)
        if len(masters) > 1:
            one, last = masters[0], masters[-1]
            c1, cn = _cores(one), _cores(last)
            speedup = took[one] / took[last]
            eff = speedup / (cn / c1)
            per_core_row = took[one] * c1 / a.accounts       # seconds a row on one core, Spark included
            print(f"speed-up {one} -> {last}: {speedup:.2f}x on {cn / c1:.0f}x the cores "
                  f"(parallel efficiency {eff:.0%}); Spark cost a row on one core {1e3 * per_core_row:.3f} ms")
            ideal = ", ".join(f"{n} cores {1e6 * per_core_row / n / 60:.1f} min" for n in (2, 8, 32, 128))
            print(f"extrapolation (an estimate, not a measurement: TreeSHAP is row-parallel and mapInPandas needs no "
                  f"shuffle, so 1,000,000 rows divide by the executor cores at this run's cost a row on one core, "
                  f"no cluster overheads): {ideal}")
            if eff < 1:
                at_eff = ", ".join(f"{n} cores {1e6 * per_core_row / (n * eff) / 60:.1f} min" for n in (2, 8, 32))
                print(f"  at this run's parallel efficiency ({eff:.0%}, which the machine's other load sets on 2 "
                      f"shared cores): {at_eff}")
    if clock:
        print_stages(clock, raw_s, batch_s)
    print(f"batch {a.accounts} accounts: {batch_s:.1f} s; raw {raw_s:.1f} s; ratio {batch_s / raw_s:.2f}; "
          f"peak {peak:.0f} MB")


if __name__ == "__main__":
    main()
