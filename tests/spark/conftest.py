"""One real local Spark session (local[2], loopback only) shared by every Spark test of the session, and
champion models trained once (real MLflow sqlite registry) for the batch-scoring tests. Starting Spark costs
several seconds of JVM start-up and each Spark job ~0.1-1 s, so the tests share the session and run few jobs."""
from __future__ import annotations

import os
import time

import pytest
from spark_util import SPARK_TIMINGS




@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from csforecast.data.sources import spark_session

    t0 = time.perf_counter()
    session = spark_session("local[2]", {"spark.sql.shuffle.partitions": "4",
                                         "spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("warehouse"))})
    SPARK_TIMINGS["session start"] = time.perf_counter() - t0
    yield session
    session.stop()


@pytest.fixture(scope="session")
def training_book(tmp_path_factory):
    """A 400-account, 3-year simulated portfolio: large enough for the full model of every family."""
    from csforecast.simulate import simulate_portfolio

    d = tmp_path_factory.mktemp("sim400x3")
    simulate_portfolio(400, 3, seed=5).write(d)
    return d


@pytest.fixture(scope="session")
def trained_home(training_book, tmp_path_factory):
    """CSFORECAST_HOME with champions of every family trained on the small portfolio (once per session)."""
    from csforecast.config import reset_settings
    from csforecast.data.sources import open_source
    from csforecast.pipelines.train import train_all

    home = tmp_path_factory.mktemp("spark-home")
    env = {"CSFORECAST_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    reset_settings()
    try:
        # the full models of every family (not the small-book fallbacks the 300-account book gets) are what Spark
        # must reproduce: trained on a 400-account, 3-year book, scored on the small portfolio
        train_all(open_source(training_book))
        yield home
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reset_settings()


@pytest.fixture()
def in_home(trained_home, monkeypatch):
    """The trained home as CSFORECAST_HOME for one test."""
    from csforecast.config import reset_settings

    monkeypatch.setenv("CSFORECAST_HOME", str(trained_home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{trained_home}/mlflow.db")
    reset_settings()
    yield trained_home
    reset_settings()


def pytest_terminal_summary(terminalreporter):
    if SPARK_TIMINGS:
        terminalreporter.write_line("spark: " + ", ".join(f"{k} {v:.1f} s" for k, v in SPARK_TIMINGS.items()))
