"""The book the API and the Spark tests share: simulated, trained and scored through the CLI, once per worker.

A plain module (conftest files are not importable): the helpers that run the CLI the way a user does, and
:func:`build`. ``tests/conftest.py`` makes it the session fixture ``served_book``; the API tests serve it and the
Spark tests score with its champions. They run in one pytest-xdist group (``tests/conftest.py``), so the book is
trained once per run instead of once per folder: training is the longest set-up of the suite.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CLI = [sys.executable, "-c", "import sys; sys.argv[0] = 'csforecast'; from csforecast.cli import app; app()"]

# Every command and server of the API tests runs in this empty working directory, with CSFORECAST_HOME set:
# issue 15/18 require that no state file (key, session secret, calibration, lock, log) lands in the working
# directory, and `test_nothing_is_written_into_the_working_directory` (and the api fixture's teardown) check it
# stays empty.
WORKDIR = Path(tempfile.mkdtemp(prefix="csforecast_cwd_"))


def base_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSFORECAST_", "MLFLOW_"))}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "CSFORECAST_HOME": str(home),
                "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}", "PYTHONUNBUFFERED": "1",
                "GIT_PYTHON_REFRESH": "quiet"})
    return env


def run_cli(args: list[str], env: dict, log: Path, timeout: float = 600) -> str:
    proc = subprocess.run(CLI + args, env=env, capture_output=True, text=True, timeout=timeout, cwd=WORKDIR)
    with open(log, "a") as fh:
        fh.write(f"$ csforecast {' '.join(args)}\n{proc.stdout}\n{proc.stderr}\n")
    if proc.returncode != 0:
        raise RuntimeError(f"csforecast {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def year_before_end(data: Path) -> str:
    """The date a year before the data end of the simulated folder ``data`` (YYYY-MM-DD)."""
    from datetime import timedelta

    from csforecast.data.sources import open_source
    from csforecast.features.snapshot import data_end

    return (data_end(open_source(data)) - timedelta(days=365)).isoformat()


def rename_accounts(data: Path, names: dict[str, str]) -> None:
    """Give some accounts ids as some CRMs write them (a region prefix with a slash, a space, a non-ASCII letter),
    in every table, so that the API is tested on ids that are not URL-safe."""
    import pandas as pd

    for p in sorted(data.glob("*.parquet")):
        df = pd.read_parquet(p)
        if "account_id" in df.columns:
            df.assign(account_id=df.account_id.replace(names)).to_parquet(p, index=False)


def build(root: Path) -> tuple[Path, Path]:
    """``root/data``: a 400-account, 3-year simulated book (seed 5; every 25th account's id written as a CRM might
    write it); ``root/home``: every family's champion trained on it by ``csforecast train`` (a real MLflow sqlite
    registry) and two score sets, a year before the data end first (the served set then monitors its resolved
    renewals), then at it. Returns (home, data); the commands' output is in ``root/setup.log``.

    Developer shortcut: CSFORECAST_API_TEST_PREBUILT=<a folder with the data/ and home/ this made earlier> copies
    them instead (model artifacts stay where that registry says they are)."""
    home, data, log = root / "home", root / "data", root / "setup.log"
    prebuilt = os.environ.get("CSFORECAST_API_TEST_PREBUILT")
    if prebuilt:
        shutil.copytree(Path(prebuilt) / "data", data)
        shutil.copytree(Path(prebuilt) / "home", home, ignore=shutil.ignore_patterns("apikeys.json*", "model_cache"))
        return home, data
    env = base_env(home)
    home.mkdir()
    run_cli(["simulate", "--out", str(data), "--accounts", "400", "--years", "3", "--seed", "5"], env, log)
    rename_accounts(data, {f"A{n:05d}": f"EMEA/A{n:05d} Ü" for n in range(25, 401, 25)})
    run_cli(["train", "--data", str(data)], env, log)
    run_cli(["score", "--data", str(data), "--as-of", year_before_end(data), "--no-forecasts"], env, log)
    run_cli(["score", "--data", str(data)], env, log)
    return home, data
