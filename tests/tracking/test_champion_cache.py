"""The champion kept on disk between commands (tracking/champions.py): the registry's champion, read again
when the sqlite registry changes and from disk (without MLflow) when it did not. Real MLflow, sqlite store."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier


def _register(store, prior: float, promote: bool = True) -> str:
    from csforecast.tracking.pyfunc import EstimatorModel

    est = DummyClassifier(strategy="prior").fit(np.zeros((10, 1)), [1] * int(prior * 10) + [0] * (10 - int(prior * 10)))
    rows = pd.DataFrame({"x": [1.0, 2.0]})
    with store.start_run("churn", tags={"as_of": "2026-10-01", "data_hash": "abc"}) as run:
        info = store.log_pyfunc(EstimatorModel(est, "churn"), rows)
        reg = store.register_with_guard("churn", info.model_uri, run.info.run_id,
                                        lambda champion: store.Verdict(promote, "test", "promoted"),
                                        tags={"data_hash": "abc", "as_of": "2026-10-01"}, summary="test")
    return reg.version


def _p(est) -> float:
    return float(est.predict_proba(np.zeros((1, 1)))[0, 1])


def test_champion_is_kept_until_the_registry_changes(isolated_home):
    from csforecast.config import get_settings
    from csforecast.tracking import store
    from csforecast.tracking.champions import load_champion, registry_stamp

    assert load_champion("churn") == (None, None)           # a fresh registry: no champion, never an error
    v1 = _register(store, 0.2)
    est, version = load_champion("churn")
    assert (version, _p(est)) == (v1, 0.2)

    # unchanged registry: the kept copy answers, the model's artifacts are not read again
    stamp = registry_stamp(get_settings().tracking_uri)
    artifacts = isolated_home / "mlruns" / "artifacts"
    moved = isolated_home.parent / "artifacts-moved"
    shutil.move(artifacts, moved)
    est, version = load_champion("churn")
    assert (version, _p(est)) == (v1, 0.2)
    assert registry_stamp(get_settings().tracking_uri) == stamp
    shutil.move(moved, artifacts)

    # a new champion moves the alias: the registry file changes and the new version is read
    v2 = _register(store, 0.6)
    assert registry_stamp(get_settings().tracking_uri) != stamp
    est, version = load_champion("churn")
    assert (version, _p(est)) == (v2, 0.6) and v2 != v1
    # a challenger (not promoted) leaves the champion where it is
    _register(store, 0.9, promote=False)
    est, version = load_champion("churn")
    assert (version, _p(est)) == (v2, 0.6)


def test_a_registry_that_is_not_a_local_file_is_never_kept():
    from csforecast.tracking.champions import registry_stamp

    assert registry_stamp("postgresql://u@127.0.0.1/mlflow") is None
    assert registry_stamp("sqlite:////nonexistent/folder/mlflow.db") is None
