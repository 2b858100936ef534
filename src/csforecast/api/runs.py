"""MLflow runs behind what is served, read for the dashboard: a served version's logged artifacts and the
latest forecast backtest. The dashboard calls these instead of the MLflow client.

Both go through `csforecast.tracking.store` (the module that owns MLflow) and download artifacts to a
temporary folder that is removed before they return; they read, never write.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

import pandas as pd


def _download(run_id: str, name: str) -> bytes:
    from csforecast.tracking import store

    tmp = tempfile.mkdtemp(prefix="csforecast-ui-")
    try:
        return Path(store.download_artifacts(run_id, name, tmp)).read_bytes()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_experiment_id(settings, run_id: str) -> str:
    """The id of the MLflow experiment run ``run_id`` belongs to (MLflow errors propagate)."""
    from csforecast.tracking import store

    return store.configure(settings).get_run(run_id).info.experiment_id


def run_artifacts(settings, run_id: str, names: Iterable[str]) -> dict[str, bytes]:
    """{name: bytes} of those of ``names`` that run ``run_id`` logged, in the order given.

    Names the run did not log are left out. MLflow errors (unknown run, unreachable store) propagate.
    """
    from csforecast.tracking import store

    logged = {a.path for a in store.configure(settings).list_artifacts(run_id)}
    return {name: _download(run_id, name) for name in names if name in logged}


def latest_backtest(settings) -> dict:
    """The latest finished backtest run (experiment csforecast-forecast, tag kind=backtest):
    {"run_id", "experiment_id", "created", "result" (its backtest.json), "fan_chart" (PNG bytes or None)}.

    Raises LookupError (message for the user) when there is no such run or it has no backtest.json.
    """
    from csforecast.tracking import store

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
