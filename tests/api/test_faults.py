"""Server-side faults against real servers on copies of the session's home: a registry file moved away or
replaced by an empty one (the cached models keep serving, said so), reloads that load only what changed and
coalesce, a damaged scores database (`csforecast score` says what is wrong and never writes to it), and
kill -9 during `score` (the previous score set stays readable)."""
from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def copy_home(api, dst: Path) -> Path:
    """The session home's state files (registry, scores, keys, model cache) in ``dst``. Model artifacts stay
    where the registry says they are (absolute paths into the session home), which these tests only read."""
    dst.mkdir(parents=True)
    for name in ("mlflow.db", "scores.duckdb", "apikeys.json"):
        shutil.copy2(api.home / name, dst / name)
    return dst


def _ready(srv) -> dict:
    return httpx.get(srv.url + "/readyz", timeout=30).json()


# ---------------------------------------------------------------------------------------------- registry
def test_a_moved_or_emptied_registry_serves_the_cached_models(api, tools, tmp_path):
    home = copy_home(api, tmp_path / "home")
    env = tools.base_env(home)
    db, away = home / "mlflow.db", tmp_path / "mlflow.db.away"
    srv = tools.start_server(env, tmp_path / "first.log")            # a good start writes the model cache
    try:
        served = _ready(srv)["models"]
    finally:
        srv.stop()
    assert (home / "model_cache" / "champions.pkl").exists()

    db.rename(away)                                                 # the registry file moved away
    srv = tools.start_server(env, tmp_path / "moved.log")
    try:
        ready = _ready(srv)
        assert ready["ready"] and ready["model_source"] == "cache" and ready["models"] == served
        assert any("does not exist" in p and "cached" in p for p in ready["problems"]), ready
        with httpx.Client(base_url=srv.url, headers={"X-API-Key": api.admin_key}, timeout=60) as c:
            assert c.get("/v1/accounts", params={"limit": 2}).status_code == 200
            assert c.post("/v1/score", json={"rows": [{"arr": 1000.0}]}).status_code == 200
            assert c.get("/v1/models").json()["families"]["churn"]["source"] == "cache"
            r = c.post("/v1/admin/reload")                          # still gone: refused, the cache serves on
            assert r.status_code == 503 and "does not exist" in r.json()["detail"]
            assert "still serving" in r.json()["detail"]
            assert c.post("/v1/score", json={"rows": [{"arr": 1000.0}]}).status_code == 200
            assert not db.exists()                                  # no empty registry created in its place
            away.rename(db)                                         # back: a reload returns to the registry
            r = c.post("/v1/admin/reload")
            assert r.status_code == 200 and "models" in r.json()["changed"], r.text
            ready = _ready(srv)
            assert ready["model_source"] == "registry" and ready["problems"] == [] and ready["models"] == served
    finally:
        srv.stop()
        if away.exists():
            away.rename(db)
    assert "CACHED" in srv.output()

    # a new, empty registry in its place (what MLflow makes of a missing file): not "nothing trained yet"
    db.rename(away)
    from mlflow import MlflowClient

    MlflowClient(f"sqlite:///{db}").search_registered_models()
    srv = tools.start_server(env, tmp_path / "empty.log")
    try:
        ready = _ready(srv)
        assert ready["ready"] and ready["model_source"] == "cache" and ready["models"] == served
        assert any("replaced or emptied" in p for p in ready["problems"]), ready
        with httpx.Client(base_url=srv.url, headers={"X-API-Key": api.read_key}, timeout=60) as c:
            assert c.get("/v1/accounts", params={"limit": 2}).status_code == 200
            assert c.post("/v1/score", json={"rows": [{"arr": 1000.0}]}).status_code == 200
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------------- reload
def test_reload_loads_only_what_changed(api, tools, tmp_path, monkeypatch):
    """In process, with the real registry of a copied home: nothing changed → the same state object; a new
    score set → only the score set; a new churn champion → only churn is loaded, the other estimators are
    the same objects; one model set per state, never mixed."""
    from mlflow import MlflowClient

    from csforecast.api.state import StateHolder
    from csforecast.config import Settings
    from csforecast.scoring.store import load_latest, write_scores

    home = copy_home(api, tmp_path / "home")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    holder = StateHolder(Settings(home=home))
    first = holder.start()
    assert first.ready
    same = holder.reload()
    assert same.changed == () and same.new is first and holder.current is first

    m, s, h = load_latest(home / "scores.duckdb")
    v = write_scores(home / "scores.duckdb", s.drop(columns=["version"]), as_of=m["as_of"],
                     data_hash=m["data_hash"], models=m["models"], history=h.drop(columns=["version"]))
    out = holder.reload()
    assert out.changed == ("score_set",) and out.new.scores.version == v
    assert out.new.models is first.models and out.new.churn is first.churn

    client = MlflowClient(uri, uri)
    champ = client.get_model_version_by_alias("csforecast-churn", "champion")
    mv = client.create_model_version("csforecast-churn", champ.source, run_id=champ.run_id)
    client.set_registered_model_alias("csforecast-churn", "champion", mv.version)
    out = holder.reload()
    assert out.changed == ("models",) and out.new.versions["churn"] == str(mv.version)
    assert out.new.scores is out.old.scores
    for fam, est in out.new.models.estimators.items():
        assert (est is out.old.models.estimators[fam]) == (fam != "churn"), fam
    assert out.new.churn.est is out.new.models.estimators["churn"]
    assert holder.reload().changed == ()


def test_concurrent_reloads_coalesce(api):
    """Twelve reloads at once after a new score set: all answer 200 with that set, and they share at most
    two loads (the generation moves by one: the later rounds find nothing new)."""
    from csforecast.scoring.store import load_latest, write_scores

    with api.client() as c:
        gen0 = _generation(c)
    m, s, h = load_latest(api.home / "scores.duckdb")
    v = write_scores(api.home / "scores.duckdb", s.drop(columns=["version"]), as_of=m["as_of"],
                     data_hash=m["data_hash"], models=m["models"], history=h.drop(columns=["version"]))
    answers: list = []
    barrier = threading.Barrier(12)

    def one():
        with api.client("admin") as c:
            barrier.wait()
            answers.append(c.post("/v1/admin/reload"))

    threads = [threading.Thread(target=one) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    assert {r.json()["score_set"]["version"] for r in answers} == {v}
    assert sum(r.json()["changed"] == ["score_set"] for r in answers) >= 1
    with api.client() as c:
        assert _generation(c) == gen0 + 1


def _generation(c) -> int:
    text = c.get("/metrics").text
    return int(float(next(ln.split()[-1] for ln in text.splitlines()
                          if ln.startswith("csforecast_state_generation "))))


# ---------------------------------------------------------------------------------------------- scores store
DAMAGE = ("truncated", "zeroed_header", "corrupt_block", "not_a_database", "empty_file")


def damage(path: Path, kind: str) -> None:
    b = bytearray(path.read_bytes())
    if kind == "truncated":
        b = b[: len(b) // 2]
    elif kind == "zeroed_header":
        b[:4096] = bytes(4096)
    elif kind == "corrupt_block":             # a data block's checksum no longer matches
        for off in range(16384, len(b), 262144):
            b[off + 100: off + 2100] = bytes((i * 37 + 11) % 256 for i in range(2000))
    elif kind == "not_a_database":
        b = bytearray(b"account_id,churn_probability\nA1,0.5\n" * 50)
    elif kind == "empty_file":
        b = bytearray()
    path.write_bytes(bytes(b))


def test_score_on_a_damaged_scores_database_says_what_to_do(api, tools, tmp_path):
    home = copy_home(api, tmp_path / "home")
    env = tools.base_env(home)
    db = home / "scores.duckdb"
    good = db.read_bytes()
    for kind in DAMAGE:
        db.write_bytes(good)
        damage(db, kind)
        before = hashlib.sha256(db.read_bytes()).hexdigest()
        proc = subprocess.run(tools.cli + ["score", "--data", str(api.data)], env=env, capture_output=True,
                              text=True, timeout=600, cwd=tools.workdir)
        assert proc.returncode != 0, (kind, proc.stdout)
        assert "Traceback" not in proc.stderr, (kind, proc.stderr[-2000:])
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "is damaged" in errors[0] and str(db) in errors[0], (kind, proc.stderr)
        assert "move it aside" in errors[0] and "csforecast score" in errors[0]
        assert hashlib.sha256(db.read_bytes()).hexdigest() == before, kind        # never written to
        # the server refuses it too, saying so
        from csforecast.api.errors import LoadError
        from csforecast.api.scoreset import load_score_set
        from csforecast.config import Settings

        with pytest.raises(LoadError, match="damaged"):
            load_score_set(Settings(home=home))
    db.write_bytes(good)            # the undamaged file: score works and adds a set (the forecasts after it: elsewhere)
    tools.run_cli(["score", "--data", str(api.data), "--no-forecasts"], env, tmp_path / "ok.log")


def test_kill_during_score_keeps_the_previous_set(api, tools, tmp_path):
    """kill -9 while `score` writes its transaction (its DuckDB WAL exists): the previous set is still the
    latest readable set, and the next `score` works."""
    from csforecast.scoring.store import load_latest

    home = copy_home(api, tmp_path / "home")
    env = tools.base_env(home)
    db = home / "scores.duckdb"
    before, scores_before, _ = load_latest(db)
    proc = subprocess.Popen(tools.cli + ["score", "--data", str(api.data)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=tools.workdir)
    wal = Path(f"{db}.wal")
    try:
        deadline = time.monotonic() + 600
        while not wal.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        assert proc.poll() is None, "score finished before its write could be interrupted"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    meta, scores, _ = load_latest(db)
    assert meta["version"] in (before["version"], before["version"] + 1)
    if meta["version"] == before["version"]:
        assert scores["account_id"].tolist() == scores_before["account_id"].tolist()
    out = json.loads(tools.run_cli(["score", "--data", str(api.data), "--json", "--no-forecasts"], env,
                                   tmp_path / "again.log"))
    assert out["version"] == meta["version"] + 1
