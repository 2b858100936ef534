"""Issue 20: MLflow runs a person can recognise and versions that say what they are.

A training run without a name is named by family, as-of date and data hash and described; each registered
version is described (its data, its metrics, why it was or was not promoted); a version holds one alias, never
both `champion` and `challenger`; registering on a fresh store and on an existing model prints nothing (MLflow's
"Registered model … already exists" came from creating the registered model twice). Real MLflow, sqlite store.
"""
from __future__ import annotations

import mlflow.pyfunc
import pandas as pd

TAGS = {"as_of": "2026-10-01", "data_hash": "3f2a9c1e77b04d5a", "profile.accounts.rows": "400",
        "profile.contracts.rows": "1210", "profile.label.base_rate": "0.155"}


class Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return pd.Series([0.1] * len(model_input))


def _train_and_register(store, promote: bool, why: str):
    rows = pd.DataFrame({"x": [1.0, 2.0]})
    with store.start_run("churn", tags=TAGS) as run:
        store.log_metrics({"auc": 0.71, "log_loss": 0.35, "oracle_auc": 0.74})
        info = store.log_pyfunc(Constant(), rows, pd.Series([0.1, 0.1]))
        decision = "promoted" if promote else "kept"
        reg = store.register_with_guard("churn", info.model_uri, run.info.run_id,
                                        lambda champion: store.Verdict(promote, why, decision),
                                        tags={"data_hash": TAGS["data_hash"], "as_of": TAGS["as_of"]},
                                        summary="churn model trained on the data as of 2026-10-01.\n\n"
                                                "Validation metrics: auc 0.7100.")
    return run.info.run_id, reg


def test_runs_are_named_and_versions_described_with_one_alias_each(isolated_home, capfd):
    from csforecast.tracking import store

    first_run, first = _train_and_register(store, True, "no champion yet")
    second_run, second = _train_and_register(store, False, "champion kept: the interval straddles 0")
    printed = capfd.readouterr()
    assert "already exists" not in printed.err + printed.out
    assert "Successfully registered" not in printed.err + printed.out

    client = store.configure()
    run = client.get_run(first_run)
    assert run.info.run_name == "churn as-of 2026-10-01 data 3f2a9c1e"
    note = run.data.tags[store.NOTE_TAG]
    assert "as of 2026-10-01" in note and "3f2a9c1e77b04d5a" in note and "accounts 400" in note

    assert (first.alias, second.alias) == ("champion", "challenger")
    versions = {v["version"]: v for v in store.model_versions("churn")}
    assert versions["1"]["aliases"] == ["champion"]
    assert versions["2"]["aliases"] == ["challenger"]

    v1 = client.get_model_version("csforecast-churn", "1").description
    v2 = client.get_model_version("csforecast-churn", "2").description
    assert "as of 2026-10-01" in v1 and "auc 0.7100" in v1
    assert "Promoted: alias `champion`" in v1 and "no champion yet" in v1
    assert "Not promoted (kept): alias `challenger`" in v2 and "`champion` stays on v1" in v2
    assert "interval straddles 0" in v2
    assert client.get_model_version("csforecast-churn", "2").run_id == second_run
    loaded = mlflow.pyfunc.load_model("models:/csforecast-churn@champion")     # registered as a loadable model
    assert list(loaded.predict(pd.DataFrame({"x": [3.0]}))) == [0.1]


def test_version_summary_names_data_metrics_and_guard():
    import numpy as np

    from csforecast.pipelines.champion import Comparison, GuardScore, version_summary
    from csforecast.scoring import families

    fam = families.get("churn")
    comp = Comparison(GuardScore.of(fam, 0.3512, 812), None, np.zeros(1), {}, np.zeros(1), fam.guard_label,
                      profile={"tables": {"accounts": {"rows": 400}, "touches": {"rows": 0}},
                               "label": {"decisions": 900, "churns": 140, "base_rate": 0.156}},
                      tags={"as_of": "2026-10-01", "data_hash": "abc123"})
    text = version_summary(fam, comp, {"auc": 0.7123, "ece": 0.0151, "oracle_auc": 0.75, "SMB_auc": 0.6})
    assert "as of 2026-10-01" in text and "`abc123`" in text
    assert "accounts 400" in text and "touches" not in text
    assert "Renewal decisions 900, churns 140" in text
    assert "auc 0.7123" in text and "ece 0.0151" in text and "oracle" not in text and "SMB" not in text
    assert "812 validation rows" in text and "lower is better" in text


def test_metric_names_from_user_values_are_made_valid(isolated_home):
    """Metric names built from a user's values (the back-test's tau per segment: "tau_model_SMB (EU)") are
    logged under a name MLflow accepts instead of failing the run."""
    from csforecast.tracking import store

    with store.start_run("forecast", tags=TAGS) as run:
        store.log_metrics({"SMB (EU)": 0.25, "Mid-Market": 0.1, "not a number": float("nan")}, prefix="tau_model_")
    logged = store.run_metrics(run.info.run_id)
    assert logged == {"tau_model_SMB _EU_": 0.25, "tau_model_Mid-Market": 0.1}
