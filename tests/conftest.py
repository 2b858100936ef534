import os
import sys

import pytest

# The suite starts many Python processes (CLI commands, servers), each importing MLflow, pandas, scikit-learn…
# Where PYTHONDONTWRITEBYTECODE is set (some CI images set it), each of them compiled those libraries from
# source again: ~8 s of CPU a process on this machine. The suite's processes (and the commands and servers they
# start, which inherit this environment) share the venv's bytecode cache, as Python does by default.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Under pytest-xdist each worker is one of N processes sharing the machine's cores. Numeric thread pools sized
# for the whole machine in every worker (OpenBLAS, OpenMP: numpy, scipy, scikit-learn, lifelines, statsmodels)
# oversubscribe it, and their threads spin while waiting: two `csforecast train` at once on 2 cores took 54 s
# each with the default pools and 36 s with one thread each (benchmarks/RESULTS.md, eighteenth session). Each
# worker, and the commands and servers it starts (they inherit this environment), gets its share of the cores.
# LightGBM's own `n_jobs` is set explicitly by the models and is not changed by this.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, str(max(1, (os.cpu_count() or 1) // _WORKERS)))


@pytest.fixture(scope="session")
def small_portfolio(tmp_path_factory):
    """A real simulated portfolio (300 accounts × 2 years), written once per session."""
    from csforecast.simulate import simulate_portfolio

    d = tmp_path_factory.mktemp("sim300")
    simulate_portfolio(300, 2, seed=7).write(d)
    return d


@pytest.fixture(scope="session")
def served_book(tmp_path_factory):
    """(home, data): the 400-account, 3-year book trained and scored through the CLI (tests/served_book.py), once
    per session. The API tests serve it (its only writer); the Spark tests score with its champions."""
    from served_book import build

    return build(tmp_path_factory.mktemp("served_book"))


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
# that work is done once; every other file is a group of its own (module fixtures built once). The Spark tests
# score with the API tests' trained book (`served_book`), so they join the API's group: trained once, not twice.
_ONE_WORKER_DIRS = {"api": "api", "spark": "api", "ui": "ui", "sources": "sources"}


# The groups that take longest (seconds on one worker of a quiet 2-core machine, measured with --junitxml:
# api with spark ~1,000, the two validation files ~320 each, sources ~280, ui ~160, test_cli_forecast ~120),
# longest first. They are handed out first (pytest_configure turns off xdist's reordering by test count, which
# put a slow group with few tests last and left one worker idle for minutes at the end); every other group
# follows in collection order.
_LONGEST_FIRST = ("api", "ui", "data/test_validation_pass.py", "data/test_validate.py", "sources",
                  "test_cli_forecast.py")


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):      # pytest-xdist's --loadscope-reorder (on by default)
        config.option.loadscopereorder = False


def _group(root, item) -> str:
    rel = item.path.relative_to(root) if item.path.is_relative_to(root) else item.path
    return _ONE_WORKER_DIRS[rel.parts[0]] if len(rel.parts) > 1 and rel.parts[0] in _ONE_WORKER_DIRS else str(rel)


@pytest.hookimpl(tryfirst=True)   # before xdist's own hook reads the xdist_group markers into the node ids
def pytest_collection_modifyitems(config, items):
    root = config.rootpath / "tests"
    groups = {item.nodeid: _group(root, item) for item in items}
    rank = {g: i for i, g in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(groups[item.nodeid], len(rank)))   # stable: file order kept within
    for item in items:
        item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
