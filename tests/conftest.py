import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def small_portfolio(tmp_path_factory):
    """A real simulated portfolio (300 accounts × 2 years), written once per session."""
    from csforecast.simulate import simulate_portfolio

    d = tmp_path_factory.mktemp("sim300")
    simulate_portfolio(300, 2, seed=7).write(d)
    return d


@pytest.fixture()
def isolated_home(tmp_path, monkeypatch):
    """CSFORECAST_HOME and an MLflow sqlite store in a temporary folder."""
    from csforecast.config import reset_settings

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("CSFORECAST_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home}/mlflow.db")
    reset_settings()
    yield home
    reset_settings()
