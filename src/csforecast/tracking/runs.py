"""MLflow calls the experiments need that tracking/store.py does not have yet (to be folded into store.py).

Everything here goes through the client that store.configure() returns, so the tracking URI is the same.
"""
from __future__ import annotations

import json
from typing import Any

import mlflow

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
