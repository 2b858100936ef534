"""Forecast and account-list latency of the API once a score set exists.

  .venv/bin/python benchmarks/bench_forecast_api.py [--home H --data D] [--accounts 2000] [--requests 200]

Without --home, a demo-sized portfolio (``--accounts`` × 3 years, seed 5) is simulated, trained and scored
(`csforecast score` precomputes the forecasts of the next four quarters) in a temporary folder. Then
`csforecast serve` starts on 127.0.0.1 and, from the moment /readyz answers 200:

- the first GET /v1/forecast/renewals (the current quarter) — target: within 5 s;
- p50 / p99 of GET /v1/forecast/renewals over the four quarters of the next year and of GET /v1/accounts
  (sorted by risk, filtered by band) — target: p50 < 200 ms, p99 < 1 s;
- baseline from the same run: one forecast computed uncached (`forecast.renewals.forecast_window`, what a
  request cost before forecasts were kept per score set), and the ratio p50 / baseline.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_serving import free_port, stop, wait_http  # noqa: E402

CLI = str(Path(sys.executable).with_name("csforecast"))


def run(args: list[str], env: dict) -> str:
    r = subprocess.run([CLI, *args], env=env, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"csforecast {' '.join(args)} failed:\n{r.stderr[-2000:]}")
    return r.stdout


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--home")
    ap.add_argument("--data")
    ap.add_argument("--accounts", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=200)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    home = Path(a.home) if a.home else tmp / "home"
    data = Path(a.data) if a.data else tmp / "data"
    env = {**os.environ, "CSFORECAST_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    if not a.home:
        home.mkdir()
        t = time.perf_counter()
        run(["simulate", "--out", str(data), "--accounts", str(a.accounts), "--years", "3", "--seed", "5", "--quiet"],
            env)
        run(["train", "--data", str(data), "--quiet"], env)
        run(["score", "--data", str(data), "--quiet"], env)
        print(f"setup (simulate, train, score with forecasts): {time.perf_counter() - t:.0f} s")
    key = json.loads(run(["apikey", "create", "--scope", "read", "--json"], env))["key"]
    port = free_port()
    log = tmp / "server.log"
    proc = subprocess.Popen([CLI, "serve", "--data", str(data), "--port", str(port)], env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)  # stop() ends its group
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/readyz", proc, log, timeout=600)
        c = httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=600)
        from csforecast.data.sources import open_source
        from csforecast.features.snapshot import data_end
        from csforecast.scoring.forecasts import next_quarters

        quarters = next_quarters(data_end(open_source(data)))
        t = time.perf_counter()
        r = c.get("/v1/forecast/renewals", params={"start": str(quarters[0][0]), "end": str(quarters[0][1])})
        first = time.perf_counter() - t
        assert r.status_code == 200, r.text
        fc, acc = [], []
        for i in range(a.requests):
            s, e = quarters[i % len(quarters)]
            t = time.perf_counter()
            assert c.get("/v1/forecast/renewals", params={"start": str(s), "end": str(e)}).status_code == 200
            fc.append(time.perf_counter() - t)
            t = time.perf_counter()
            assert c.get("/v1/accounts", params={"sort": "risk_arr", "band": "red", "limit": 50}).status_code == 200
            acc.append(time.perf_counter() - t)
    finally:
        stop(proc)
    # the baseline: one uncached forecast of the same quarter, computed in this process
    from csforecast.config import reset_settings
    from csforecast.forecast.renewals import forecast_window
    from csforecast.scoring.batch import load_champions

    os.environ.update({k: env[k] for k in ("CSFORECAST_HOME", "MLFLOW_TRACKING_URI")})
    reset_settings()
    champs = load_champions()
    t = time.perf_counter()
    forecast_window(open_source(data), quarters[0][0], quarters[0][1], group_by=None, as_of=None,
                    churn_estimator=champs.estimators["churn"], model_version=champs.versions["churn"])
    uncached = time.perf_counter() - t
    for name, xs in (("GET /v1/forecast/renewals (4 quarters)", fc), ("GET /v1/accounts", acc)):
        print(f"{name}: p50 {1e3 * statistics.median(xs):.0f} ms; p99 {1e3 * pct(xs, 0.99):.0f} ms "
              f"({len(xs)} requests)")
    print(f"uncached forecast (baseline): {uncached:.1f} s; first request after ready: {first:.2f} s")
    print(f"forecast api: first {first:.2f} s; p50 {1e3 * statistics.median(fc):.0f} ms; "
          f"p99 {1e3 * pct(fc, 0.99):.0f} ms; uncached {uncached:.1f} s; "
          f"ratio {statistics.median(fc) / uncached:.4f}")


if __name__ == "__main__":
    main()
