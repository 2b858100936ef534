"""Issue 15 item 9: a `train` killed with SIGKILL leaves its MLflow run RUNNING and the model version it
registered without an alias. The next run marks that run FAILED and tags the version ``orphan``;
`model_versions` reports it and the dashboard's models page lists it apart, not counted."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

KILLED = """
import os, signal
from csforecast.tracking import store
client = store.configure()
with store.start_run("churn", run_name="killed-train") as run:
    name = store.model_name("churn")
    if not client.search_registered_models(f"name='{name}'"):
        client.create_registered_model(name)
    mv = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    print(run.info.run_id, mv.version, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)     # as the OOM killer or kill -9 would, mid-run
"""

NEXT = """
import json, sys
from csforecast.tracking import store
client = store.configure()
with store.start_run("churn", run_name="next-train") as run:
    pass
killed = client.get_run(sys.argv[1])
print(json.dumps({"status": killed.info.status, "next_status": client.get_run(run.info.run_id).info.status, "tags": killed.data.tags,
                  "versions": store.model_versions("churn")}))
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("orphans") / "home"
    home.mkdir()
    e = {k: v for k, v in os.environ.items() if not k.startswith(("CSFORECAST_", "MLFLOW_"))}
    e.update({"CSFORECAST_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
              "MLFLOW_DISABLE_TELEMETRY": "true", "GIT_PYTHON_REFRESH": "quiet"})
    return e


def _py(code: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)


def test_a_killed_run_is_failed_by_the_next_and_its_version_is_an_orphan(env):
    killed = _py(KILLED, env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    run_id, version = killed.stdout.split()

    nxt = _py(NEXT, env, run_id)
    assert nxt.returncode == 0, nxt.stderr[-3000:]
    out = json.loads(nxt.stdout.strip().splitlines()[-1])
    assert out["status"] == "FAILED"
    assert "orphan" in out["tags"] and out["tags"]["csforecast.pid"].isdigit()
    by_version = {v["version"]: v for v in out["versions"]}
    assert by_version[version]["orphan"] is True and by_version[version]["aliases"] == []
    assert nxt.stderr.count("was left RUNNING") == 1          # said once, as a warning
    assert out["next_status"] == "FINISHED"                    # the live run itself was never touched



def test_is_orphan_needs_a_dead_process_or_a_stale_run():
    from csforecast.tracking.orphans import HOST_TAG, PID_TAG, STALE_AFTER, is_orphan, owner_tags

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    here = owner_tags()
    now = 1_000_000_000.0
    assert not is_orphan(here, int(now * 1000), now)                            # this process: alive
    assert is_orphan({**here, PID_TAG: str(proc.pid)}, int(now * 1000), now)    # its process is gone
    other = {PID_TAG: "1", HOST_TAG: "another-host"}
    assert not is_orphan(other, int((now - 60) * 1000), now)                    # cannot check: not yet stale
    assert is_orphan(other, int((now - STALE_AFTER - 1) * 1000), now)
    assert is_orphan({}, int((now - STALE_AFTER - 1) * 1000), now)              # a run from before the tags


def test_the_models_page_lists_orphans_apart_and_does_not_count_them():
    from csforecast.ui.views.models import models_view

    info = {"versions": [{"version": "2", "aliases": [], "run_id": "r2", "orphan": True},
                         {"version": "1", "aliases": ["champion"], "run_id": "r1", "orphan": False}]}
    fam = models_view({"churn": info}, {"churn": "1"}, "registry", None, None, None, None)["families"][0]
    assert [v["version"] for v in fam["versions"]] == ["1"]
    assert fam["orphans"] == ["2"]
