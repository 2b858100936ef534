"""API test session: the served book (``served_book``: a simulated portfolio with real models trained and scored
into a real MLflow sqlite registry, tests/served_book.py), real API keys, and `csforecast serve` (uvicorn) on
127.0.0.1 on a free port in a subprocess.

Everything is done once per session (training takes a minute or two) in a tmp dir.
"""
from __future__ import annotations

import json
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from served_book import CLI, WORKDIR, base_env, run_cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.fixture(scope="session")
def api(served_book, tmp_path_factory) -> Api:
    tmp = tmp_path_factory.mktemp("csforecast_api")
    home, data = served_book
    log = tmp / "setup.log"
    env = base_env(home)
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
