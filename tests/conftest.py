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


# Under pytest-xdist (the README runs `-n 2 --dist loadgroup`): the folders whose session fixtures train a whole
# served home or start a server of their own (a PostgreSQL cluster, a Spark session) run on one worker each, so
# that work is done once; every other file is a group of its own (module fixtures built once).
_ONE_WORKER_DIRS = ("api", "ui", "spark", "sources")


@pytest.hookimpl(tryfirst=True)   # before xdist's own hook reads the xdist_group markers into the node ids
def pytest_collection_modifyitems(config, items):
    root = config.rootpath / "tests"
    for item in items:
        rel = item.path.relative_to(root) if item.path.is_relative_to(root) else item.path
        group = rel.parts[0] if len(rel.parts) > 1 and rel.parts[0] in _ONE_WORKER_DIRS else str(rel)
        item.add_marker(pytest.mark.xdist_group(group))
