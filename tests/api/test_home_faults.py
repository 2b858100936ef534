"""A read-only and a full CSFORECAST_HOME, on a small tmpfs mounted inside the test (as root; skipped, saying
why, only where the kernel refuses the mount): `apikey create`, `score` and `train` end in one `error:` line
naming the path and the cause and exit non-zero, `POST /ui/login` answers 503 saying why, and the previous
state (score sets, champions, keys) stays readable and usable once the fault is gone."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

pytestmark = pytest.mark.slow


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def mounted(api, tools, tmp_path_factory):
    """A 64 MB tmpfs holding a copy of the session's trained home (champions, score sets) and an admin key."""
    mnt = tmp_path_factory.mktemp("tmpfs")
    r = _mount("-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(mnt))
    if r.returncode != 0:
        pytest.skip(f"the kernel refused a tmpfs mount ({r.stderr.strip() or r.returncode}); read-only and full "
                    "home faults need one (run the tests as root with CAP_SYS_ADMIN)")
    try:
        home = mnt / "home"
        # the session's trained home, copied (no second training: registry, artifacts, scores, model cache)
        shutil.copytree(api.home, home, ignore=shutil.ignore_patterns("apikeys.json*", "ui_session.key"))
        env = tools.base_env(home)
        log = tmp_path_factory.mktemp("tmpfs_logs") / "setup.log"
        key = json.loads(tools.run_cli(["apikey", "create", "--scope", "admin", "--json"], env, log))["key"]
        yield SimpleNamespace(mnt=mnt, home=home, env=env, key=key, log=log)
    finally:
        _mount("-o", "remount,rw", str(mnt))
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


STATE = """
import json, sys
from mlflow import MlflowClient
from csforecast.scoring.store import load_latest
home = sys.argv[1]
meta, scores, _ = load_latest(home + "/scores.duckdb")
uri = "sqlite:///" + home + "/mlflow.db"
client = MlflowClient(uri, uri)
champions = {f: client.get_model_version_by_alias("csforecast-" + f, "champion").version
             for f in ("churn", "survival", "health")}
keys = [k["id"] for k in json.load(open(home + "/apikeys.json"))["keys"]]
print(json.dumps({"score_set": int(meta["version"]), "accounts": len(scores), "champions": champions,
                  "keys": keys}))
"""


def _state(m) -> dict:
    """What must survive a fault: the latest score set, the champions, the key ids. Read in a subprocess:
    a connection left open in this process would keep the file system busy (no read-only remount)."""
    import sys

    proc = subprocess.run([sys.executable, "-c", STATE, str(m.home)], env=m.env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fails_in_one_line(tools, m, args: list[str], *cause: str) -> str:
    proc = subprocess.run(tools.cli + args, env=m.env, capture_output=True, text=True, timeout=1800,
                          cwd=tools.workdir)   # a read-only or full home must not fall back to the working directory
    assert proc.returncode != 0, (args, proc.stdout[-500:])
    assert "Traceback" not in proc.stderr, (args, proc.stderr[-3000:])
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, (args, proc.stderr[-3000:])
    line = errors[0]
    assert str(m.home) in line and any(c in line for c in cause), (args, line)
    return line


def _train_fails_before_reading(tools, m, tmp_path: Path, cause: str) -> None:
    """`train` probes the home before it opens the data (a fault found after the fits would waste them): with a
    data folder that does not exist, the one error line is the home's fault, naming the home, not its probe file."""
    line = _fails_in_one_line(tools, m, ["train", "--data", str(tmp_path / "no-such-export")], cause)
    assert "no-such-export" not in line and ".write-probe" not in line, line


def _login_is_unavailable(tools, m, tmp_path: Path, cause: str) -> None:
    srv = tools.start_server(m.env, tmp_path / f"server-{cause.split()[0]}.log")
    try:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            form = c.get("/ui/login")
            assert form.status_code == 503 and "ui_session.key" in form.text and cause in form.text, form.text
            r = c.post("/ui/login", data={"api_key": m.key, "csrf": "0" * 64})
            assert r.status_code == 503 and "ui_session.key" in r.text
            page = c.get("/ui/portfolio", follow_redirects=True)   # no session: to the login page, which says why
            assert page.status_code == 503 and "ui_session.key" in page.text
            api = c.get("/v1/accounts", params={"limit": 2}, headers={"X-API-Key": m.key})
            assert api.status_code == 200                               # the API still serves what it loaded
    finally:
        srv.stop()


def test_a_read_only_home(api, tools, mounted, tmp_path):
    m = mounted
    before = _state(m)
    (m.home / "ui_session.key").unlink(missing_ok=True)
    r = _mount("-o", "remount,ro", str(m.mnt))
    if r.returncode != 0:
        pytest.skip(f"the kernel refused to remount the tmpfs read-only ({r.stderr.strip()})")
    try:
        assert _write_fails(m.home)
        _fails_in_one_line(tools, m, ["apikey", "create", "--scope", "read"], "read-only")
        _fails_in_one_line(tools, m, ["score", "--data", str(api.data)], "read-only")
        _train_fails_before_reading(tools, m, tmp_path, "read-only")
        _login_is_unavailable(tools, m, tmp_path, "read-only")
    finally:
        assert _mount("-o", "remount,rw", str(m.mnt)).returncode == 0
    assert _state(m) == before


def test_a_full_home(api, tools, mounted, tmp_path):
    m = mounted
    before = _state(m)
    (m.home / "ui_session.key").unlink(missing_ok=True)
    filler = m.mnt / "filler"
    try:
        _fill(filler, leave=0)
        _fails_in_one_line(tools, m, ["apikey", "create", "--scope", "read"], "no space left")
        _fails_in_one_line(tools, m, ["score", "--data", str(api.data)], "no space left")
        _train_fails_before_reading(tools, m, tmp_path, "no space left")
        _login_is_unavailable(tools, m, tmp_path, "no space left")
        # room for the probe but not for the score set: the transaction fails and is rolled back
        filler.unlink()
        _fill(filler, leave=64 * 1024)
        line = _fails_in_one_line(tools, m, ["score", "--data", str(api.data)], "no space left")
        assert "rollback" not in line and "transaction" not in line
    finally:
        filler.unlink(missing_ok=True)
    assert _state(m) == before
    out = json.loads(tools.run_cli(["score", "--data", str(api.data), "--json", "--no-forecasts"], m.env, m.log))
    assert out["version"] == before["score_set"] + 1                   # the store is whole and writable again


def _write_fails(folder: Path) -> bool:
    try:
        (folder / ".probe").write_text("x")
    except OSError:
        return True
    return False


def _fill(path: Path, leave: int) -> None:
    """Fill the file system of ``path`` until ``leave`` bytes are free."""
    st = os.statvfs(path.parent)
    free = st.f_bavail * st.f_frsize
    chunk = b"\0" * (1 << 20)
    with open(path, "wb") as fh:
        todo = max(free - leave, 0)
        try:
            while todo > 0:
                n = fh.write(chunk[: min(len(chunk), todo)])
                todo -= n
            fh.flush()
            os.fsync(fh.fileno())
        except OSError:
            pass
