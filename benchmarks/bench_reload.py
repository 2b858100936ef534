"""Reload benchmark: request latency at a fixed rate with and without a reload every 2 s, in one run.

    python benchmarks/bench_reload.py [--home H --data D] [--rate 200] [--block 15] [--rounds 2]

Without --home, a portfolio of ``--accounts`` (600) accounts × 3 years is simulated, trained and scored
into a fresh home first (a few minutes). The server is `csforecast serve` (one uvicorn worker) on
127.0.0.1. The load is open-loop: request i is due at t0 + i/rate and its latency is counted from when it
was due, not from when a connection became free, so a stalled server shows as latency (no coordinated
omission). The mix: 50 % GET /v1/accounts/{id}, 25 % GET /v1/accounts?limit=50 (four sort orders), 25 %
POST /v1/score with one real feature row.

Blocks of ``--block`` seconds alternate "steady" (no reload) and "reloading" (every 2 s: two concurrent
POST /v1/admin/reload, which coalesce), ``--rounds`` times each, so both conditions see the same noise
from other work on the machine. The reloads are not idle: in a cycle of three, a new score set is written
(a copy of the latest one: every account re-serialised by the server), the churn champion alias moves to
another registered version (the server loads that model), and nothing changes. Every 200 answer of
POST /v1/score names the model versions it used; the report counts answers whose versions are not one of
the published model sets (a mixed set: must be 0).

Prints a Markdown table: throughput, p50, p99, max and errors per condition, the p99 ratio reloading /
steady, and reload durations by what changed.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import CLI, _exchange, feature_rows, free_port, http_request, stop, wait_http  # noqa: E402

RELOAD_EVERY = 2.0  # seconds


def build_home(tmp: Path, accounts: int, seed: int, env: dict) -> tuple[Path, Path]:
    home, data = tmp / "home", tmp / "data"
    home.mkdir(parents=True, exist_ok=True)
    for args in (["simulate", "--out", str(data), "--accounts", str(accounts), "--years", "3", "--seed", str(seed)],
                 ["train", "--data", str(data)], ["score", "--data", str(data)]):
        print(f"$ csforecast {' '.join(args)}", file=sys.stderr, flush=True)
        subprocess.run(CLI + args, env=env, check=True, stdout=subprocess.DEVNULL)
    return home, data


# --------------------------------------------------------------------------------------------- changes
class Changes:
    """What the reloader changes before each reload, in a cycle of three: a new score set, the churn
    champion moved to the other of two registered versions, nothing."""

    def __init__(self, settings):
        from mlflow import MlflowClient

        self.settings = settings
        self.client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
        self.name = "csforecast-churn"
        champ = self.client.get_model_version_by_alias(self.name, "champion")
        # a second version of the same model (same artifacts): moving the alias makes the server load it
        twin = self.client.create_model_version(self.name, champ.source, champ.run_id, tags=champ.tags)
        self.versions = [str(champ.version), str(twin.version)]
        self.tick = 0

    def next(self) -> str:
        kind = ("score_set", "models", "nothing")[self.tick % 3]
        self.tick += 1
        if kind == "score_set":
            from csforecast.scoring.store import load_latest, write_scores

            meta, scores, hist = load_latest(self.settings.scores_db)
            scores, hist = scores.drop(columns="version"), hist.drop(columns="version", errors="ignore")
            for attempt in range(20):   # the server may hold the file open for a moment while it reads it
                try:
                    write_scores(self.settings.scores_db, scores, as_of=meta["as_of"], data_hash=meta["data_hash"],
                                 models=meta["models"], history=hist)
                    break
                except Exception:  # noqa: BLE001 - retried; the last failure is raised
                    if attempt == 19:
                        raise
                    time.sleep(0.05)
        elif kind == "models":
            current = str(self.client.get_model_version_by_alias(self.name, "champion").version)
            other = self.versions[1] if current == self.versions[0] else self.versions[0]
            self.client.set_registered_model_alias(self.name, "champion", other)
        return kind

    def restore(self) -> None:
        self.client.set_registered_model_alias(self.name, "champion", self.versions[0])


def reloader(url: str, key: str, changes: Changes, stop_at: float, log: list) -> None:
    """Every RELOAD_EVERY seconds until ``stop_at``: make the next change, then two concurrent reloads."""
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=120) as c:
        nxt = time.monotonic()
        while True:
            nxt += RELOAD_EVERY
            if nxt > stop_at:
                return
            time.sleep(max(0.0, nxt - time.monotonic()))
            kind = changes.next()
            out: list = [None, None]

            def one(i):
                t0 = time.perf_counter()
                r = c.post("/v1/admin/reload")
                out[i] = (time.perf_counter() - t0, r.status_code, r.json() if r.status_code == 200 else r.text)

            threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for dur, status, body in out:
                log.append({"made": kind, "seconds": dur, "status": status,
                            "changed": tuple(body.get("changed", ())) if isinstance(body, dict) else ("error",)})


# --------------------------------------------------------------------------------------------- load
async def open_loop(host: str, port: int, requests: list[tuple[str, bytes]], rate: float, seconds: float,
                    connections: int) -> dict:
    """Send len = rate × seconds requests, request i due at t0 + i/rate; latency from the due time."""
    n = int(rate * seconds)
    lat: list[float] = []
    errors, versions = 0, []
    order = [random.Random(i).randrange(len(requests)) for i in range(n)]
    nexti = iter(range(n))

    async def worker():
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in nexti:
                due = t0 + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                kind, req = requests[order[i]]
                status, body = await _exchange_body(reader, writer, req, kind == "score")
                lat.append(time.perf_counter() - due)
                if status != 200:
                    errors += 1
                elif body is not None:
                    versions.append(body)
        finally:
            writer.close()

    t0 = time.perf_counter() + 0.2
    await asyncio.gather(*(worker() for _ in range(connections)))
    wall = time.perf_counter() - t0
    return {"lat": lat, "n": n, "wall": wall, "errors": errors, "versions": versions}


async def _exchange_body(reader, writer, req: bytes, want_body: bool):
    if not want_body:
        return await _exchange(reader, writer, req), None
    writer.write(req)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    if status != 200:
        return status, None
    return status, json.dumps(json.loads(body).get("model_versions", {}), sort_keys=True)


def summary(blocks: list[dict]) -> dict:
    lat = np.concatenate([np.array(b["lat"]) for b in blocks]) * 1000
    n, wall = sum(b["n"] for b in blocks), sum(b["wall"] for b in blocks)
    return {"n": n, "rps": n / wall, "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
            "max": float(lat.max()), "errors": sum(b["errors"] for b in blocks)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, help="CSFORECAST_HOME with trained models and a score set")
    ap.add_argument("--data", help="the data source the scores came from (required with --home)")
    ap.add_argument("--accounts", type=int, default=600)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rate", type=float, default=200.0, help="requests per second")
    ap.add_argument("--block", type=float, default=15.0, help="seconds per block")
    ap.add_argument("--rounds", type=int, default=2, help="steady + reloading blocks, this many times")
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_reload_"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSFORECAST_", "MLFLOW_"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if args.home is None:
        env.update({"CSFORECAST_HOME": str(tmp / "home"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'home/mlflow.db'}"})
        home, data = build_home(tmp, args.accounts, args.seed, env)
    else:
        if not args.data:
            sys.exit("--home needs --data (the source the score set came from)")
        home, data = args.home.resolve(), args.data
    env.update({"CSFORECAST_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"})
    os.environ.update({k: env[k] for k in ("CSFORECAST_HOME", "MLFLOW_DISABLE_TELEMETRY", "MLFLOW_TRACKING_URI")})

    from csforecast.api.auth import KeyStore
    from csforecast.config import get_settings
    from csforecast.scoring.store import load_latest

    settings = get_settings()
    meta, scores, _ = load_latest(settings.scores_db)
    ids = list(scores["account_id"].astype(str))
    rows = feature_rows("models:/csforecast-churn@champion", data, meta["as_of"], 100)
    keys = KeyStore(settings.apikeys_file)
    key, rec = keys.create("admin", name="bench_reload")
    changes = Changes(settings)

    port = free_port()
    h = "127.0.0.1"
    hdr = {"X-API-Key": key}
    requests = [("detail", http_request("GET", h, port, f"/v1/accounts/{a}", headers=hdr)) for a in ids[:200]]
    requests += [("list", http_request("GET", h, port, f"/v1/accounts?limit=50&sort={sort}", headers=hdr))
                 for sort in ("churn_probability", "arr", "renewal_date", "health_score") for _ in range(25)]
    requests += [("score", http_request("POST", h, port, "/v1/score", json.dumps({"rows": [r]}).encode(), hdr))
                 for r in rows]
    log_path = tmp / "server.log"
    server = subprocess.Popen(CLI + ["serve", "--host", h, "--port", str(port), "--no-access-log",
                                     "--log-level", "warning", "--data", str(data)],
                              env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    steady, reloading, reloads = [], [], []
    try:
        wait_http(f"http://{h}:{port}/readyz", server, log_path)
        url = f"http://{h}:{port}"
        first = httpx.post(url + "/v1/score", json={"rows": rows[:1]}, headers=hdr, timeout=60)
        first.raise_for_status()
        served = first.json()["model_versions"]     # the set published at start; only churn will move
        asyncio.run(open_loop(h, port, requests, args.rate, 3, args.connections))     # warm-up
        for rnd in range(args.rounds):
            for mode in ("steady", "reloading"):
                print(f"round {rnd + 1}/{args.rounds}: {mode} for {args.block:.0f}s", file=sys.stderr, flush=True)
                th = None
                if mode == "reloading":
                    th = threading.Thread(target=reloader, args=(url, key, changes, time.monotonic() + args.block,
                                                                 reloads))
                    th.start()
                res = asyncio.run(open_loop(h, port, requests, args.rate, args.block, args.connections))
                if th:
                    th.join()
                (reloading if mode == "reloading" else steady).append(res)
    finally:
        stop(server)
        changes.restore()
        keys.revoke(rec["id"])

    s, r = summary(steady), summary(reloading)
    allowed = {json.dumps({**served, "churn": c}, sort_keys=True) for c in changes.versions}
    mixed = sum(1 for b in steady + reloading for v in b["versions"] if v not in allowed)
    print(f"\n{len(ids)} accounts (score set v{meta['version']} at start); {os.cpu_count()} CPUs shared by the client "
          f"and one uvicorn worker; {args.rate:.0f} req/s open-loop over {args.connections} keep-alive connections; "
          f"{args.rounds} × {args.block:.0f} s per condition, alternating\n")
    print("| condition | requests | throughput (req/s) | p50 (ms) | p99 (ms) | max (ms) | errors | p99 vs steady |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, x in (("steady (no reload)", s), (f"reload every {RELOAD_EVERY:.0f} s", r)):
        print(f"| {name} | {x['n']} | {x['rps']:.1f} | {x['p50']:.1f} | {x['p99']:.1f} | {x['max']:.0f} "
              f"| {x['errors']} | {x['p99'] / s['p99']:.2f}× |")
    print(f"\nreloads: {len(reloads)} requests ({len(reloads) // 2} rounds of two concurrent), "
          f"{sum(1 for x in reloads if x['status'] != 200)} failed; score answers with a model-version set that was "
          f"never published: {mixed} of {sum(len(b['versions']) for b in steady + reloading)}")
    print("\n| change made before the reload | reload requests | answered `changed` | median (ms) | max (ms) |")
    print("|---|---:|---|---:|---:|")
    for kind in ("score_set", "models", "nothing"):
        xs = [x for x in reloads if x["made"] == kind]
        if not xs:
            continue
        changed = sorted({",".join(x["changed"]) or "(nothing)" for x in xs})
        d = np.array([x["seconds"] for x in xs]) * 1000
        print(f"| {kind} | {len(xs)} | {' / '.join(changed)} | {np.median(d):.0f} | {d.max():.0f} |")


if __name__ == "__main__":
    main()
