"""A survival model registered before issue 14 (its pickle names csforecast.pipelines.survival) still loads,
predicts what it predicted then, and serves from the registry; new pickles name the new home (models/).

The fixture was produced by tests/fixtures/legacy_survival/make_fixture.py with the pre-move code (commit
bd9e95d): a real pyfunc model directory as the old pipeline logged it, snapshot rows and the old predictions."""
import os
import shutil
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import cloudpickle  # noqa: E402
import mlflow.pyfunc  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from csforecast.config import reset_settings  # noqa: E402
from csforecast.models import SnapshotSurvivalModel  # noqa: E402
from csforecast.scoring.survival import score_survival  # noqa: E402
from csforecast.tracking.pyfunc import EstimatorModel  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_survival"


@pytest.fixture(scope="module")
def rows():
    return pd.read_parquet(FIXTURE / "rows.parquet")


@pytest.fixture(scope="module")
def expected():
    return pd.read_parquet(FIXTURE / "expected.parquet")


def test_the_fixture_really_holds_the_old_class_path():
    blob = (FIXTURE / "model" / "python_model.pkl").read_bytes()
    assert b"csforecast.pipelines.survival" in blob and b"csforecast.models.snapshot_survival" not in blob


def test_legacy_pickle_loads_and_predicts_as_before(rows, expected):
    wrapper = mlflow.pyfunc.load_model(str(FIXTURE / "model")).unwrap_python_model()
    est = wrapper.estimator
    assert type(est) is SnapshotSurvivalModel and type(est).__module__ == "csforecast.models.snapshot_survival"
    S = est.predict_survival(rows, [90, 180, 365])
    np.testing.assert_allclose(S.to_numpy(), expected[["p_active_90d", "p_active_180d", "p_active_365d"]],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(est.renewal_survival(rows), expected["p_renewal_survival"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(est.expected_residual_lifetime(rows, 1095), expected["expected_lifetime_days"],
                               rtol=0, atol=1e-9)
    # the old wrapper stored the name of its output, not its family: the pyfunc still answers
    assert not hasattr(wrapper, "family") and wrapper.output == "survival"
    out = mlflow.pyfunc.load_model(str(FIXTURE / "model")).predict(rows)
    assert list(out.columns) == ["p_active_90d", "p_active_180d", "p_active_365d"]
    np.testing.assert_allclose(out.to_numpy(), S.to_numpy(), rtol=0, atol=0)


def test_legacy_model_registered_in_a_registry_serves(rows, expected, tmp_path, monkeypatch):
    from csforecast.scoring.batch import Champions
    from csforecast.tracking import store

    monkeypatch.setenv("CSFORECAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    reset_settings()
    try:
        model_dir = tmp_path / "artifacts" / "model"
        shutil.copytree(FIXTURE / "model", model_dir)
        client = store.configure()
        client.create_registered_model("csforecast-survival")
        mv = client.create_model_version("csforecast-survival", str(model_dir))
        client.set_registered_model_alias("csforecast-survival", store.CHAMPION, mv.version)
        champs = Champions.load()
        assert set(champs.estimators) == {"survival"} and champs.versions == {"survival": str(mv.version)}
        scores = score_survival(champs.estimators["survival"], rows)
        for col in ("p_active_90d", "p_active_180d", "p_active_365d", "p_renewal_survival",
                    "expected_lifetime_days"):
            np.testing.assert_allclose(scores[col], expected[col], rtol=0, atol=1e-9, err_msg=col)
    finally:
        reset_settings()


def test_new_pickles_name_the_new_module(rows):
    est = mlflow.pyfunc.load_model(str(FIXTURE / "model")).unwrap_python_model().estimator
    blob = cloudpickle.dumps(EstimatorModel(est, "survival"))
    assert b"csforecast.models.snapshot_survival" in blob and b"csforecast.pipelines" not in blob
