"""Dashboard test session: `csforecast demo --no-serve` on a small portfolio (400 accounts × 3 years: simulate,
train and score real models into a real MLflow sqlite registry, print the dashboard URL and a read key), a small
real backtest, real API keys, and the API app with the dashboard router served on 127.0.0.1 (uvicorn in a
subprocess, tests/ui/serve_ui.py). Once per session, in a tmp dir.

Developer shortcut: CSFORECAST_UI_TEST_PREBUILT=<folder with the home/ made by this fixture earlier (the demo's data inside)>.

The browser tests share one Chromium set-up (fixture `browser_page`): a headless Debian Chromium whose page
collects console errors, page errors and HTTP errors, and blocks and collects every request that would leave the
server, so that each test ends with the same check (`assert_clean`).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = "/usr/bin/chromium"      # Debian's chromium package: .ci/run installs it
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CLI = [sys.executable, "-c", "import sys; sys.argv[0] = 'csforecast'; from csforecast.cli import app; app()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(home: Path, data: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSFORECAST_", "MLFLOW_"))}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "CSFORECAST_HOME": str(home), "CSFORECAST_DATA": str(data),
                "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}", "PYTHONUNBUFFERED": "1",
                "GIT_PYTHON_REFRESH": "quiet"})
    return env


def run_cli(args: list[str], env: dict, log: Path, timeout: float = 900) -> str:
    proc = subprocess.run(CLI + args, env=env, capture_output=True, text=True, timeout=timeout)
    with open(log, "a") as fh:
        fh.write(f"$ csforecast {' '.join(args)}\n{proc.stdout}\n{proc.stderr}\n")
    if proc.returncode != 0:
        raise RuntimeError(f"csforecast {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


@dataclass
class UiServer:
    url: str
    home: Path
    data: Path
    env: dict
    read_key: str
    admin_key: str
    proc: subprocess.Popen
    log: Path
    tmp: Path
    demo_key: str = ""          # the read key `csforecast demo` printed
    demo_output: str = ""       # what the demo printed (stdout and stderr)

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def cli(self, args: list[str]) -> str:
        return run_cli(args, self.env, self.tmp / "setup.log")

    @contextlib.contextmanager
    def login(self, key: str | None = None):
        """An httpx client with a dashboard session (cookie) for `key` (default: the read key)."""
        with httpx.Client(base_url=self.url, timeout=300) as c:
            r = post_login(c, key or self.read_key, "/ui/")
            assert r.status_code == 303, r.text
            yield c

    def wait_warm(self, timeout: float = 600) -> dict:
        """Wait until the dashboard's background computations (forecast, movements, artifacts) are done."""
        with self.login() as c:
            deadline = time.monotonic() + timeout
            c.get("/ui/portfolio")
            while time.monotonic() < deadline:
                st = c.get("/ui/status").json()
                if all(j["status"] not in ("pending", "running") for j in st["jobs"].values()):
                    return st
                time.sleep(1)
        raise RuntimeError(f"dashboard background jobs not done after {timeout}s: {st}")


def post_login(client, key: str, next_: str | None = None, **kw):
    """Sign in as a browser does: GET the login form (its CSRF token and nonce cookie), then POST it."""
    form = client.get("/ui/login")
    assert form.status_code == 200, form.text
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', form.text).group(1)
    return client.post("/ui/login", data={"api_key": key, "csrf": token, **({"next": next_} if next_ else {})},
                       **kw)


@pytest.fixture(scope="session")
def form_login():
    """`post_login` for tests (conftest is not importable)."""
    return post_login


def start(env: dict, log: Path, timeout: float = 180) -> tuple[subprocess.Popen, str]:
    port = free_port()
    fh = open(log, "w")
    proc = subprocess.Popen([sys.executable, str(HERE / "serve_ui.py"), str(port)], env=env, stdout=fh,
                            stderr=subprocess.STDOUT)
    fh.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    proc.terminate()
    raise RuntimeError(f"server not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def pytest_collection_modifyitems(config, items):
    """Tests that use the trained, served portfolio (fixture `ui`) are slow; the in-process ones are not."""
    for item in items:
        if "ui" in getattr(item, "fixturenames", ()) and "tests/ui/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.slow)


DEMO_KEY = re.compile(r"^(csf_[0-9a-f]+_[A-Za-z0-9_-]+)$", re.M)


def run_demo(env: dict, log: Path) -> tuple[str, str]:
    """`csforecast demo --no-serve` on the session's small portfolio: (what it printed, the read key it printed)."""
    proc = subprocess.run(CLI + ["demo", "--accounts", "400", "--years", "3", "--seed", "5", "--no-serve", "--quiet"],
                          env=env, capture_output=True, text=True, timeout=900)
    with open(log, "a") as fh:
        fh.write(f"$ csforecast demo ...\n{proc.stdout}\n{proc.stderr}\n")
    if proc.returncode != 0:
        raise RuntimeError(f"csforecast demo failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    keys = DEMO_KEY.findall(proc.stdout)
    assert len(keys) == 1, proc.stdout[-2000:]
    return proc.stdout + proc.stderr, keys[0]


@pytest.fixture(scope="session")
def ui(tmp_path_factory) -> UiServer:
    tmp = tmp_path_factory.mktemp("csforecast_ui")
    home, log = tmp / "home", tmp / "setup.log"
    data = home / "demo" / "portfolio-400x3-seed5"      # where `csforecast demo` simulates it
    env = base_env(home, data)
    prebuilt = os.environ.get("CSFORECAST_UI_TEST_PREBUILT")
    if prebuilt:
        shutil.copytree(Path(prebuilt) / "home", home,
                        ignore=shutil.ignore_patterns("apikeys.json*", "model_cache", "ui_session.key", "read-key"))
        demo_output = ""
        demo_key = subprocess.run([sys.executable, "-c", "import sys; from csforecast.cli.demo import demo_read_key; "
                                   "print(demo_read_key(sys.argv[1])[0])", str(home)], env=env, capture_output=True,
                                  text=True, check=True).stdout.strip()
    else:
        home.mkdir()
        demo_output, demo_key = run_demo(env, log)
    read_key = json.loads(run_cli(["apikey", "create", "--scope", "read", "--json"], env, log))["key"]
    admin_key = json.loads(run_cli(["apikey", "create", "--scope", "admin", "--json"], env, log))["key"]
    proc, url = start(env, tmp / "server.log")
    srv = UiServer(url, home, data, env, read_key, admin_key, proc, tmp / "server.log", tmp, demo_key, demo_output)
    try:
        yield srv
    finally:
        srv.stop()


# ------------------------------------------------------------------------------------------- the browser
@dataclass
class BrowserPage:
    """A Chromium page on the session's server and what went wrong on it.

    ``errors``: console errors, uncaught page errors and HTTP responses >= 400; ``outside``: requests to any
    host but the server's (``data:`` and ``blob:`` aside), which are blocked, as the dashboard must work with
    no network beyond 127.0.0.1."""
    page: object                    # playwright.sync_api.Page
    url: str                        # the server's base URL
    errors: list[str]
    outside: list[str]

    def sign_in(self, key: str, path: str = "/ui/") -> None:
        """Sign in through the login form with ``key``, arriving at ``path``."""
        self.page.goto(self.url + "/ui/login" + ("" if path == "/ui/" else f"?next={path}"))
        self.page.fill("#api_key", key)
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**" + path)

    def shot(self, name: str) -> Path:
        """A full-page screenshot in test-artifacts/ui/ (also docs/ui-NAME.png with
        CSFORECAST_UI_DOCS_SCREENSHOTS=1)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        if os.environ.get("CSFORECAST_UI_DOCS_SCREENSHOTS"):
            shutil.copy(path, ROOT / "docs" / f"ui-{path.name}")
        return path

    def assert_clean(self) -> None:
        """No console, page or HTTP error, and no request that left the server, so far."""
        assert not self.errors, self.errors
        assert not self.outside, self.outside


@pytest.fixture()
def browser_page(ui):
    """A :class:`BrowserPage` in a fresh headless Chromium (1400 x 900, 60 s timeouts), closed after the test;
    skips when Chromium or playwright is not installed."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (CI installs Debian's chromium package)")
    sync_api = pytest.importorskip("playwright.sync_api")
    host = urlparse(ui.url).netloc
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            outside: list[str] = []

            def leaves(url: str) -> bool:
                return not url.startswith(("data:", "blob:")) and urlparse(url).netloc != host

            # every request is seen (the context's "request" event, a blocked one too), and one leaving the
            # server is blocked: the network outside the server is not there
            ctx.on("request", lambda r: outside.append(r.url) if leaves(r.url) else None)
            ctx.route("**/*", lambda route: route.abort() if leaves(route.request.url) else route.continue_())
            page = ctx.new_page()
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            page.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
            page.set_default_timeout(60_000)
            yield BrowserPage(page, ui.url, errors, outside)
        finally:
            browser.close()
