"""Dashboard render times for a 10,000-account portfolio (target: every page < 300 ms server-side).

    .venv/bin/python benchmarks/bench_ui.py [--accounts 10000] [--repeat 15] [--prebuilt DIR]

Setup (about a minute): simulate 400 accounts × 3 years, train and score the real models (CLI, in a temp dir),
then replicate the scored accounts (new ids, same scores, drivers, triggers and weekly history) to --accounts
and write them as the latest score set. The app is `create_app()` + the dashboard router, served in-process
through FastAPI's TestClient with its lifespan (models from the real MLflow registry). --prebuilt reuses a
folder with data/ and home/ from an earlier run (tests/ui/conftest.py makes the same layout).

Measured: server-side time of each page (an ASGI middleware around the whole app, so routing, auth, the
view functions and the Jinja rendering are in) and the client's wall time, after the per-score-set frame is
built and the background jobs (history, data source, registry artifacts, ARR movements, the 4-quarter renewal
forecast) have finished; those one-off costs are printed separately. Forecasts and ARR movements come from
the 400-account data source, which is what the background jobs read; the pages' own work is on the 10,000
scored accounts.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote_plus

CLI = [sys.executable, "-c", "import sys; sys.argv[0] = 'csforecast'; from csforecast.cli import app; app()"]
TARGET_MS = 300.0


def sh(args: list[str], env: dict) -> None:
    t0 = time.time()
    proc = subprocess.run(CLI + args, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"csforecast {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    print(f"  csforecast {args[0]}: {time.time() - t0:.0f} s", flush=True)


def replicate(home: Path, n: int) -> tuple[int, str]:
    """Write the latest score set replicated to n accounts as a new score set; returns (version, riskiest id)."""
    import pandas as pd


    from csforecast.scoring.store import load_latest, write_scores

    meta, scores, hist = load_latest(home / "scores.duckdb")
    base = len(scores)
    reps = -(-n // base)
    frames, hists = [], []
    for k in range(reps):
        s = scores.copy()
        h = hist.copy()
        if k:
            s["account_id"] = s["account_id"] + f"-r{k}"
            s["name"] = s["name"] + f" ({k})"
            h["account_id"] = h["account_id"] + f"-r{k}"
        frames.append(s)
        hists.append(h)
    big = pd.concat(frames, ignore_index=True).iloc[:n].drop(columns=["version"])
    keep = set(big["account_id"])
    bh = pd.concat(hists, ignore_index=True)
    bh = bh[bh["account_id"].isin(keep)].drop(columns=["version"])
    version = write_scores(home / "scores.duckdb", big, as_of=meta["as_of"], data_hash=meta["data_hash"],
                           models=meta["models"], history=bh)
    top = scores.sort_values("risk_arr", ascending=False)["account_id"].iloc[0]
    return version, str(top)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--prebuilt", type=Path, default=None, help="folder with data/ and home/ (copied)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="csforecast-bench-ui-"))
    home, data = tmp / "home", tmp / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSFORECAST_", "MLFLOW_"))}
    env.update({"CSFORECAST_HOME": str(home), "CSFORECAST_DATA": str(data), "MLFLOW_DISABLE_TELEMETRY": "true",
                "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}", "GIT_PYTHON_REFRESH": "quiet"})
    try:
        print("setup", flush=True)
        if args.prebuilt:
            shutil.copytree(args.prebuilt / "data", data)
            shutil.copytree(args.prebuilt / "home", home,
                            ignore=shutil.ignore_patterns("apikeys.json*", "model_cache", "ui_session.key"))
        else:
            home.mkdir(parents=True)
            sh(["simulate", "--out", str(data), "--accounts", "400", "--years", "3", "--seed", "5"], env)
            sh(["train", "--data", str(data)], env)
            sh(["score", "--data", str(data)], env)
        os.environ.update(env)
        t0 = time.time()
        version, top = replicate(home, args.accounts)
        print(f"  replicated to {args.accounts:,} accounts as score set v{version}: {time.time() - t0:.1f} s",
              flush=True)
        run(args, top)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args, top: str) -> None:
    from fastapi.testclient import TestClient

    from csforecast.api.app import create_app
    from csforecast.api.auth import KeyStore
    from csforecast.config import get_settings, reset_settings
    from csforecast.ui.router import router

    reset_settings()
    settings = get_settings()
    key, _ = KeyStore(settings.apikeys_file).create("read", "bench-ui")
    app = create_app(settings)
    app.include_router(router)
    server_ms: dict[str, list[float]] = {}

    @app.middleware("http")
    async def timer(request, call_next):
        t = time.perf_counter()
        resp = await call_next(request)
        body = b"".join([chunk async for chunk in resp.body_iterator])
        ms = (time.perf_counter() - t) * 1000
        query = unquote_plus(request.url.query)
        server_ms.setdefault(request.url.path + (f"?{query}" if query else ""), []).append(ms)
        from starlette.responses import Response

        return Response(body, status_code=resp.status_code, headers=dict(resp.headers), media_type=resp.media_type)

    with TestClient(app) as c:
        state = app.state.holder.current
        print(f"  server ready: score set v{state.scores.version}, {state.scores.n:,} accounts", flush=True)
        r = c.post("/ui/login", data={"api_key": key, "next": "/ui/"}, follow_redirects=False)
        assert r.status_code == 303, r.text
        t = time.perf_counter()
        r = c.get("/ui/portfolio")
        first = (time.perf_counter() - t) * 1000
        assert r.status_code == 200
        ui = app.state.ui_data
        t = time.perf_counter()
        ui.wait_idle(1800)
        idle = time.perf_counter() - t
        st = c.get("/ui/status").json()
        frame = ui.frame
        seg = frame["segment"].value_counts().index[0]
        csm = frame.loc[frame["has_csm"], "csm_id"].value_counts().index[0]
        region = frame["region"].value_counts().index[0]
        pages = [("portfolio", "/ui/portfolio"), ("portfolio ?segment", f"/ui/portfolio?segment={seg}"),
                 ("portfolio ?region", f"/ui/portfolio?region={region}"),
                 ("portfolio ?csm", f"/ui/portfolio?csm={csm}"),
                 ("account (riskiest)", f"/ui/accounts/{top}"), ("CSM index", "/ui/csm"),
                 ("CSM book (largest)", f"/ui/csm/{csm}"), ("models", "/ui/models"), ("glossary", "/ui/glossary")]
        # the filtered pages' ARR movements / forecasts are computed in the background on first request
        for _, path in pages:
            assert c.get(path).status_code == 200, path
        ui.wait_idle(1800)
        server_ms.clear()
        wall: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            for _, path in pages:
                t = time.perf_counter()
                r = c.get(path)
                wall.setdefault(path, []).append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, (path, r.status_code)
        sizes = {path: len(c.get(path).content) for _, path in pages}

    book = int((frame["csm_id"] == csm).sum())
    print(f"\nDashboard render times, {len(frame):,} accounts (CSM book: {book:,} accounts), "
          f"{args.repeat} requests per page, after warm-up")
    print(f"{'page':<22}{'server p50':>12}{'server p95':>12}{'server max':>12}{'wall p50':>10}{'KB':>8}  "
          f"< {TARGET_MS:.0f} ms")
    worst = 0.0
    for name, path in pages:
        s = sorted(server_ms[path])
        p50, p95, mx = statistics.median(s), s[min(len(s) - 1, int(0.95 * len(s)))], s[-1]
        worst = max(worst, p95)
        print(f"{name:<22}{p50:>10.1f}ms{p95:>10.1f}ms{mx:>10.1f}ms{statistics.median(wall[path]):>8.1f}ms"
              f"{sizes[path] / 1024:>8.0f}  {'yes' if p95 < TARGET_MS else 'NO'}")
    print(f"\nOne-off per score set: frame build {st['frame_seconds'] * 1000:.0f} ms; first portfolio request "
          f"{first:.0f} ms (includes the frame build); background jobs done {idle:.1f} s later:")
    for name, j in st["jobs"].items():
        print(f"  {name or '?':<28} {j['status']:<12} {j['seconds'] if j['seconds'] is not None else '—'} s")
    print(f"\nworst p95 {worst:.1f} ms: {'OK' if worst < TARGET_MS else 'over'} the {TARGET_MS:.0f} ms target")


if __name__ == "__main__":
    main()
