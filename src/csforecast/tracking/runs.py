"""Reading MLflow runs: tags, child runs, logged models and artifacts, for the experiments and the dashboard
(a served version's artifacts, the latest forecast backtest). Read-only apart from `set_tags`.

Everything here goes through the client that store.configure() returns, so the tracking URI is the same.
Artifacts are downloaded to a temporary folder that is removed before the functions return.
"""
from __future__ import annotations

import functools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

import mlflow
import pandas as pd

from csforecast.tracking import store

PARENT_TAG = "mlflow.parentRunId"


def set_tags(run_id: str, tags: dict[str, Any]) -> None:
    client = store.configure()
    for k, v in tags.items():
        client.set_tag(run_id, k, str(v)[:5000])


def get_run(run_id: str):
    """The MLflow run (raises mlflow.exceptions.MlflowException when there is none)."""
    return store.configure().get_run(run_id)


def child_runs(parent_run_id: str) -> list:
    client = store.configure()
    parent = client.get_run(parent_run_id)
    return client.search_runs([parent.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'")


def logged_model_uri(run_id: str, name: str = "model") -> str:
    """URI of the model logged by a run under `name` (MLflow 3 logged model, else runs:/ URI)."""
    client = store.configure()
    try:
        exp_id = client.get_run(run_id).info.experiment_id
        models = mlflow.search_logged_models(experiment_ids=[exp_id], filter_string=f"source_run_id = '{run_id}'",
                                             output_format="list")
    except Exception:  # noqa: BLE001 - older servers without logged-model search
        models = []
    for m in models:
        if getattr(m, "name", None) == name:
            return f"models:/{m.model_id}"
    return f"runs:/{run_id}/{name}"


def load_run_json(run_id: str, artifact: str) -> Any:
    store.configure()
    path = store.download_artifacts(run_id, artifact)
    with open(path) as fh:
        return json.load(fh)


def _download(run_id: str, name: str) -> bytes:
    tmp = tempfile.mkdtemp(prefix="csforecast-ui-")
    try:
        return Path(store.download_artifacts(run_id, name, tmp)).read_bytes()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_table(run_id: str, name: str) -> pd.DataFrame | None:
    """The Parquet artifact ``name`` of run ``run_id`` as a DataFrame (a copy: the caller may change it); None
    when the run did not log it (e.g. a version registered before the artifact existed). Read once per process
    (`_run_table`): the artifacts of a finished run never change, and the server reads a served version's tables on
    requests. MLflow errors (unreachable store) propagate and are not cached."""
    table = _run_table(run_id, name)
    return None if table is None else table.copy()


@functools.lru_cache(maxsize=32)
def _run_table(run_id: str, name: str) -> pd.DataFrame | None:
    if name not in {a.path for a in store.configure().list_artifacts(run_id)}:
        return None
    tmp = tempfile.mkdtemp(prefix="csforecast-table-")
    try:
        return pd.read_parquet(store.download_artifacts(run_id, name, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_experiment_id(settings, run_id: str) -> str:
    """The id of the MLflow experiment run ``run_id`` belongs to (MLflow errors propagate)."""
    return store.configure(settings).get_run(run_id).info.experiment_id


def run_artifacts(settings, run_id: str, names: Iterable[str]) -> dict[str, bytes]:
    """{name: bytes} of those of ``names`` that run ``run_id`` logged, in the order given.

    Names the run did not log are left out. MLflow errors (unknown run, unreachable store) propagate.
    """
    logged = {a.path for a in store.configure(settings).list_artifacts(run_id)}
    return {name: _download(run_id, name) for name in names if name in logged}


def latest_backtest_id(settings) -> str | None:
    """The id of the latest finished backtest run, None when there is none or the registry cannot say (cheap:
    one query; the dashboard keys its backtest section by it, so a new backtest shows without a reload)."""
    try:
        client = store.configure(settings)
        exp = client.get_experiment_by_name(store.model_name("forecast"))
        if exp is None:
            return None
        runs = client.search_runs([exp.experiment_id], "tags.kind = 'backtest' and attributes.status = 'FINISHED'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
        return runs[0].info.run_id if runs else None
    except Exception:  # noqa: BLE001 - the section then says what latest_backtest says
        return None


def latest_backtest(settings) -> dict:
    """The latest finished backtest run (experiment csforecast-forecast, tag kind=backtest):
    {"run_id", "experiment_id", "created", "result" (its backtest.json), "fan_chart" (PNG bytes or None)}.

    Raises LookupError (message for the user) when there is no such run or it has no backtest.json.
    """
    client = store.configure(settings)
    exp = client.get_experiment_by_name(store.model_name("forecast"))
    if exp is None:
        raise LookupError("no backtest run yet (run `csforecast backtest --data …`)")
    runs = client.search_runs([exp.experiment_id], "tags.kind = 'backtest' and attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise LookupError("no backtest run yet (run `csforecast backtest --data …`)")
    run = runs[0]
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    if "backtest.json" not in names:
        raise LookupError(f"the latest backtest run {run.info.run_id} has no backtest.json")
    result = json.loads(_download(run.info.run_id, "backtest.json"))
    fan = _download(run.info.run_id, "fan_chart.png") if "fan_chart.png" in names else None
    created = pd.Timestamp(run.info.start_time, unit="ms").strftime("%Y-%m-%d %H:%M UTC")
    return {"run_id": run.info.run_id, "experiment_id": exp.experiment_id, "created": created,
            "result": result, "fan_chart": fan}
