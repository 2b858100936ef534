"""Serving benchmark: csforecast's API against `mlflow models serve` with the same churn champion.

    python benchmarks/bench_serving.py --home H [--data D] [--requests 300] [--concurrency 8]

H is a CSFORECAST_HOME with trained models and a score set (`csforecast train` + `csforecast score`);
MLFLOW_TRACKING_URI defaults to sqlite:///H/mlflow.db. Both servers run as subprocesses on 127.0.0.1, one
uvicorn worker each, and get the same payloads: real feature rows of the scored accounts (built from D
when given, else from the model's input example logged with the champion), typed to the MLflow signature
so `mlflow models serve` accepts them. Measured per scenario: throughput, p50 and p99 latency for batches
of 1 and 100 rows (POST /v1/score vs POST /invocations, `--requests` each at `--concurrency`; ours both
churn-only, which is what MLflow computes, and with the default on-demand health_score), then
GET /v1/accounts/{id} at 50 concurrent clients. Prints a Markdown table with ratios against MLflow.
The load client (raw HTTP/1.1 keep-alive on asyncio) runs on the same machine and shares its CPUs.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

BIN = Path(sys.executable).parent
CHURN_ONLY = "csforecast (churn, `health: false`)"
WITH_HEALTH = "csforecast (churn + health_score)"
CLI = [sys.executable, "-c", "import sys; sys.argv[0] = 'csforecast'; from csforecast.cli import app; app()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    sys.exit(f"{url} not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the group we started (mlflow spawns uvicorn as a child)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


# --------------------------------------------------------------------------------------------- payloads
def _signature_types(model_uri: str) -> dict[str, str]:
    import mlflow

    info = mlflow.models.get_model_info(model_uri)
    return {c.name: str(c.type).split(".")[-1].lower() for c in info.signature.inputs.inputs}


def _cast(v, kind: str):
    missing = v is None or (isinstance(v, float) and math.isnan(v))
    if kind in ("double", "float"):
        return None if missing else float(v)
    if kind in ("long", "integer"):
        return 0 if missing else int(v)
    if kind == "boolean":
        return False if missing else bool(v)
    return None if missing else str(v)


def feature_rows(model_uri: str, data: str | None, as_of, n: int) -> list[dict]:
    """Real rows (snapshot of the scored accounts when `data` is given), typed to the MLflow signature."""
    import pandas as pd

    types = _signature_types(model_uri)
    if data:
        from csforecast.data.sources import open_source
        from csforecast.features.snapshot import build_snapshots

        snap = build_snapshots(open_source(data), [pd.Timestamp(as_of).date()], labels=False)
    else:
        import mlflow

        local = mlflow.artifacts.download_artifacts(model_uri)
        example = Path(local) / "input_example.json"
        if not example.exists():
            sys.exit("no --data and the model has no input example: pass --data")
        snap = pd.read_json(example, orient="split")
    recs = snap[list(types)].astype(object).to_dict("records")
    rows = [{f: _cast(r[f], types[f]) for f in types} for r in recs]
    return (rows * (n // max(len(rows), 1) + 1))[:n]


# --------------------------------------------------------------------------------------------- load
# A minimal HTTP/1.1 keep-alive client on asyncio streams: on a small machine the client shares the CPUs with
# the server under test, and a full client library (httpx) would spend more CPU per request than the server.
def http_request(method: str, host: str, port: int, path: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _exchange(reader, writer, req: bytes) -> int:
    writer.write(req)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _run(host: str, port: int, requests: list[bytes], n: int, concurrency: int) -> dict:
    lat: list[float] = []
    errors = 0
    it = iter(range(n))

    async def worker():
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            await _exchange(reader, writer, requests[0])  # warm-up: connection + server caches
            await ready.wait()
            for i in it:
                t0 = time.perf_counter()
                status = await _exchange(reader, writer, requests[i % len(requests)])
                lat.append(time.perf_counter() - t0)
                errors += status != 200
        finally:
            writer.close()

    ready = asyncio.Event()
    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(0.5)
    t0 = time.perf_counter()
    ready.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    a = np.array(lat) * 1000
    return {"n": n, "rps": n / wall, "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", required=True, type=Path, help="CSFORECAST_HOME with trained models and scores")
    ap.add_argument("--data", help="data source the scores came from (for real feature rows)")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--detail-requests", type=int, default=2000)
    ap.add_argument("--detail-clients", type=int, default=50)
    args = ap.parse_args()

    home = args.home.resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSFORECAST_")}
    env.update({"CSFORECAST_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true",
                "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"})
    os.environ.update({k: env[k] for k in ("CSFORECAST_HOME", "MLFLOW_DISABLE_TELEMETRY", "MLFLOW_TRACKING_URI")})

    from csforecast.api.auth import KeyStore
    from csforecast.config import get_settings
    from csforecast.scoring.store import load_latest
    from csforecast.tracking import store

    settings = get_settings()
    store.configure(settings)
    champion = store.champion_version("churn")
    if champion is None:
        sys.exit(f"no churn champion in {settings.tracking_uri}")
    model_uri = "models:/csforecast-churn@champion"
    meta, scores, _ = load_latest(settings.scores_db)
    ids = list(scores["account_id"].astype(str))
    rows = feature_rows(model_uri, args.data, meta["as_of"], 200)
    keys = KeyStore(settings.apikeys_file)
    key, rec = keys.create("read", name="bench_serving")

    logs = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    ours_port, mlflow_port = free_port(), free_port()
    procs = []
    try:
        ours = subprocess.Popen(CLI + ["serve", "--host", "127.0.0.1", "--port", str(ours_port), "--no-access-log",
                                       "--log-level", "warning"],
                                env=env, stdout=open(logs / "ours.log", "w"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        procs.append(ours)
        mlf = subprocess.Popen([str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
                                "-p", str(mlflow_port), "-h", "127.0.0.1", "-w", "1"],
                               env=env, stdout=open(logs / "mlflow.log", "w"), stderr=subprocess.STDOUT,
                               start_new_session=True)
        procs.append(mlf)
        ours_url, mlflow_url = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{mlflow_port}"
        wait_http(ours_url + "/readyz", ours, logs / "ours.log")
        wait_http(mlflow_url + "/ping", mlf, logs / "mlflow.log")

        # same rows, same champion: check the answers agree before timing anything
        r1 = httpx.post(ours_url + "/v1/score", json={"rows": rows[:100]}, headers={"X-API-Key": key}, timeout=60)
        r2 = httpx.post(mlflow_url + "/invocations", json={"dataframe_records": rows[:100]}, timeout=60)
        r1.raise_for_status()
        r2.raise_for_status()
        p1 = np.array([r["churn_probability"] for r in r1.json()["results"]])
        health_too = "health" in r1.json()["model_versions"]
        p2 = np.array([r["churn_probability"] for r in r2.json()["predictions"]])
        diff = float(np.max(np.abs(p1 - p2)))

        results = {}
        h = "127.0.0.1"
        for size in (1, 100):
            chunks = [rows[i:i + size] for i in range(0, 100 if size > 1 else 50, size)]
            ours_reqs = [http_request("POST", h, ours_port, "/v1/score", json.dumps({"rows": c}).encode(),
                                      {"X-API-Key": key}) for c in chunks]
            churn_only = [http_request("POST", h, ours_port, "/v1/score",
                                       json.dumps({"rows": c, "health": False}).encode(), {"X-API-Key": key})
                          for c in chunks]
            mlf_reqs = [http_request("POST", h, mlflow_port, "/invocations",
                                     json.dumps({"dataframe_records": c}).encode()) for c in chunks]
            results[("score", size, CHURN_ONLY)] = asyncio.run(
                _run(h, ours_port, churn_only, args.requests, args.concurrency))
            results[("score", size, "mlflow")] = asyncio.run(
                _run(h, mlflow_port, mlf_reqs, args.requests, args.concurrency))
            if health_too:
                results[("score", size, WITH_HEALTH)] = asyncio.run(
                    _run(h, ours_port, ours_reqs, args.requests, args.concurrency))
        detail_reqs = [http_request("GET", h, ours_port, f"/v1/accounts/{a}", headers={"X-API-Key": key})
                       for a in ids]
        detail = asyncio.run(_run(h, ours_port, detail_reqs, args.detail_requests, args.detail_clients))
    finally:
        for p in procs:
            stop(p)
        keys.revoke(rec["id"])

    print(f"\nchampion csforecast-churn v{champion.version}; {len(ids)} accounts in score set "
          f"v{meta['version']}; {os.cpu_count()} CPUs; 1 uvicorn worker per server; "
          f"max |p_ours - p_mlflow| on 100 rows = {diff:.2e}\n")
    print("| scenario | server | requests | concurrency | throughput (req/s) | rows/s | p50 (ms) | p99 (ms) "
          "| throughput vs mlflow | p99 vs mlflow | errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in (1, 100):
        base = results[("score", size, "mlflow")]
        for server in (CHURN_ONLY, "mlflow", WITH_HEALTH):
            r = results.get(("score", size, server))
            if r is None:
                continue
            print(f"| score {size} row{'s' if size > 1 else ''} | {server} | {r['n']} | {args.concurrency} "
                  f"| {r['rps']:.0f} | {r['rps'] * size:.0f} | {r['p50']:.1f} | {r['p99']:.1f} "
                  f"| {r['rps'] / base['rps']:.2f}× | {r['p99'] / base['p99']:.2f}× | {r['errors']} |")
    print(f"| GET /v1/accounts/{{id}} | csforecast | {detail['n']} | {args.detail_clients} | {detail['rps']:.0f} "
          f"| — | {detail['p50']:.1f} | {detail['p99']:.1f} | — | — | {detail['errors']} |")
    print(f"\nserver logs: {logs}")


if __name__ == "__main__":
    main()
