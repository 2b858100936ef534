"""One real local Spark session (local[2], loopback only) shared by every Spark test of the session, and the
champion models the API tests train (real MLflow sqlite registry) for the batch-scoring tests. Starting Spark
costs several seconds of JVM start-up and each Spark job ~0.1-1 s, so the tests share the session and run few
jobs."""
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
def training_book(served_book):
    """The 400-account, 3-year book the champions were trained on: large enough for the full model of every
    family."""
    return served_book[1]


@pytest.fixture(scope="session")
def trained_home(served_book, tmp_path_factory):
    """CSFORECAST_HOME with the champions of every family of the API tests' book (`served_book`: 400 accounts, 3
    years, trained through the CLI): the full models of every family, not the small-book fallbacks the 300-account
    book gets, are what Spark must reproduce. Its own home (its registry copied): these tests write score sets
    and a model cache; the model artifacts, which they only read, stay where the registry says they are."""
    import shutil

    home = tmp_path_factory.mktemp("spark-home")
    shutil.copy2(served_book[0] / "mlflow.db", home / "mlflow.db")
    return home


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
