"""API test session: simulate a portfolio, train and score real models into a real MLflow sqlite registry,
create real API keys, and run `csforecast serve` (uvicorn) on 127.0.0.1 on a free port in a subprocess.

Everything is done once per session (training takes a minute or two) in a tmp dir.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

CLI = [sys.executable, "-c", "import sys; sys.argv[0] = 'csforecast'; from csforecast.cli import app; app()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSFORECAST_", "MLFLOW_"))}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "CSFORECAST_HOME": str(home),
                "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}", "PYTHONUNBUFFERED": "1",
                "GIT_PYTHON_REFRESH": "quiet"})
    return env


# Every command and server of these tests runs in this empty working directory, with CSFORECAST_HOME set: issue
# 15/18 require that no state file (key, session secret, calibration, lock, log) lands in the working directory,
# and `test_nothing_is_written_into_the_working_directory` (and the api fixture's teardown) check it stays empty.
WORKDIR = Path(tempfile.mkdtemp(prefix="csforecast_cwd_"))


def run_cli(args: list[str], env: dict, log: Path, timeout: float = 600) -> str:
    proc = subprocess.run(CLI + args, env=env, capture_output=True, text=True, timeout=timeout, cwd=WORKDIR)
    with open(log, "a") as fh:
        fh.write(f"$ csforecast {' '.join(args)}\n{proc.stdout}\n{proc.stderr}\n")
    if proc.returncode != 0:
        raise RuntimeError(f"csforecast {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


def await_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Until GET /readyz answers 200 (RuntimeError with the server's log if it exits or never does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"server not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def start_server(env: dict, log: Path, data: Path | None = None, wait_ready: bool = True,
                 timeout: float = 300, access_log: bool = False) -> Server:
    port = free_port()
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--access-log" if access_log else "--no-access-log"]
    if data is not None:
        args += ["--data", str(data)]
    fh = open(log, "w")
    proc = subprocess.Popen(CLI + args, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=WORKDIR)
    fh.close()
    srv = Server(proc, f"http://127.0.0.1:{port}", log)
    if not wait_ready:
        return srv
    try:
        await_ready(srv.url, proc, log, timeout)
    except RuntimeError:
        srv.stop()
        raise
    return srv


@dataclass
class Api:
    url: str
    home: Path
    data: Path
    env: dict
    read_key: str
    admin_key: str
    server: Server
    tmp: Path
    extra: dict = field(default_factory=dict)

    def client(self, key: str | None = "read", **kw) -> httpx.Client:
        headers = {}
        if key == "read":
            headers["X-API-Key"] = self.read_key
        elif key == "admin":
            headers["X-API-Key"] = self.admin_key
        elif key:
            headers["X-API-Key"] = key
        return httpx.Client(base_url=self.url, headers=headers, timeout=120, **kw)


def year_before_end(data: Path) -> str:
    """The date a year before the data end of the simulated folder ``data`` (YYYY-MM-DD)."""
    from datetime import timedelta

    from csforecast.data.sources import open_source
    from csforecast.features.snapshot import data_end

    return (data_end(open_source(data)) - timedelta(days=365)).isoformat()


def _rename_accounts(data: Path, names: dict[str, str]) -> None:
    """Give some accounts ids as some CRMs write them (a region prefix with a slash, a space, a non-ASCII letter),
    in every table, so that the API is tested on ids that are not URL-safe."""
    import pandas as pd

    for p in sorted(data.glob("*.parquet")):
        df = pd.read_parquet(p)
        if "account_id" in df.columns:
            df.assign(account_id=df.account_id.replace(names)).to_parquet(p, index=False)


@pytest.fixture(scope="session")
def api(tmp_path_factory) -> Api:
    tmp = tmp_path_factory.mktemp("csforecast_api")
    home, data, log = tmp / "home", tmp / "data", tmp / "setup.log"
    env = base_env(home)
    prebuilt = os.environ.get("CSFORECAST_API_TEST_PREBUILT")
    if prebuilt:  # developer shortcut: a folder with data/ and home/ made by this fixture earlier (copied)
        import shutil

        shutil.copytree(Path(prebuilt) / "data", data)
        shutil.copytree(Path(prebuilt) / "home", home, ignore=shutil.ignore_patterns("apikeys.json*", "model_cache"))
    else:
        home.mkdir()
        run_cli(["simulate", "--out", str(data), "--accounts", "400", "--years", "3", "--seed", "5"], env, log)
        _rename_accounts(data, {f"A{n:05d}": f"EMEA/A{n:05d} Ü" for n in range(25, 401, 25)})
        run_cli(["train", "--data", str(data)], env, log)
        # a score set a year before the data end first: the served set then monitors its resolved renewals
        run_cli(["score", "--data", str(data), "--as-of", year_before_end(data), "--no-forecasts"], env, log)
        run_cli(["score", "--data", str(data)], env, log)
    read_key = json.loads(run_cli(["apikey", "create", "--scope", "read", "--json"], env, log))["key"]
    admin_key = json.loads(run_cli(["apikey", "create", "--scope", "admin", "--json"], env, log))["key"]
    server = start_server(env, tmp / "server.log", data=data)
    try:
        yield Api(server.url, home, data, env, read_key, admin_key, server, tmp)
    finally:
        server.stop()
    left = sorted(p.name for p in WORKDIR.iterdir())
    assert not left, f"written into the working directory by the CLI or the server: {left}"


@pytest.fixture(scope="session")
def tools():
    """The helpers above, for tests that start extra servers or run the CLI (conftest is not importable)."""
    from types import SimpleNamespace

    return SimpleNamespace(base_env=base_env, run_cli=run_cli, start_server=start_server, free_port=free_port,
                           cli=CLI, workdir=WORKDIR)
