"""Runs left RUNNING by a process that was killed (kill -9, out of memory, a lost machine).

Every csforecast run carries the id and host of the process that runs it (`owner_tags`). The next run
started (`fail_orphan_runs`, called by `store.start_run` once per process and store) marks FAILED each RUNNING run
of a csforecast experiment whose process is gone: on this host, its pid no longer exists; from another
host, or from before these tags, it started more than `STALE_AFTER` ago. The model versions such a run
registered (they never got an alias) are tagged ``orphan`` so that the dashboard and ``GET /v1/models``
do not count them as trained models.
"""
from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("csforecast.tracking")

PID_TAG, HOST_TAG = "csforecast.pid", "csforecast.host"
ORPHAN_TAG = "orphan"
STALE_AFTER = 7 * 24 * 3600      # seconds: a RUNNING run whose process cannot be checked is orphaned after this
EXPERIMENT_PREFIX = "csforecast-"


def owner_tags() -> dict[str, str]:
    """The tags naming the process that runs a run."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:      # exists, owned by someone else
        return True
    return True


def is_orphan(tags: dict, start_time_ms: int | None, now: float | None = None) -> bool:
    """Whether a RUNNING run with ``tags`` started at ``start_time_ms`` has lost its process."""
    pid, host = tags.get(PID_TAG), tags.get(HOST_TAG)
    if pid and pid.isdigit() and host == socket.gethostname():
        return int(pid) != os.getpid() and not _alive(int(pid))
    age = (now or time.time()) - (start_time_ms or 0) / 1000
    return age > STALE_AFTER


def fail_orphan_runs(client) -> list[str]:
    """Mark every orphaned RUNNING run of the csforecast experiments FAILED and tag its model versions
    ``orphan``; the ids of the runs marked. Best effort: a registry error is logged, never raised."""
    marked: list[str] = []
    try:
        exps = [e.experiment_id for e in client.search_experiments(filter_string=f"name LIKE '{EXPERIMENT_PREFIX}%'")]
        if not exps:
            return marked
        running = client.search_runs(exps, filter_string="attributes.status = 'RUNNING'", max_results=1000)
        for run in running:
            if not is_orphan(run.data.tags or {}, run.info.start_time):
                continue
            run_id = run.info.run_id
            client.set_tag(run_id, ORPHAN_TAG, "its process ended before the run finished; marked FAILED by a later run")
            client.set_terminated(run_id, "FAILED")
            for mv in client.search_model_versions(f"run_id='{run_id}'"):
                client.set_model_version_tag(mv.name, mv.version, ORPHAN_TAG,
                                             f"registered by run {run_id}, which never finished")
            marked.append(run_id)
            log.warning("run %s (%s) was left RUNNING by a process that is gone: marked FAILED", run_id,
                        run.info.run_name)
    except Exception as e:  # noqa: BLE001 - cleaning up must never stop a new run
        log.warning("could not check for runs left RUNNING: %s", e)
    return marked
