"""Forecasts determined by the score set are answered at once (precomputed by `csforecast score`, kept per
score set and model; `precompute` computes and counts only what the cache lacks), and a slow forecast never makes
another read wait (issue 15 item 4)."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import httpx

from csforecast.data.sources import open_source
from csforecast.features.snapshot import data_end
from csforecast.scoring.forecasts import next_quarters


def _client(api) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers={"X-API-Key": api.read_key}, timeout=1800)


def test_quarters_of_the_next_year_answer_at_once(api):
    quarters = next_quarters(data_end(open_source(api.data)))
    assert len(list((api.home / "cache" / "forecasts").glob("*.json"))) >= len(quarters)  # written by `score`
    with api.client() as c:
        for start, end in quarters:
            t0 = time.perf_counter()
            r = c.get("/v1/forecast/renewals", params={"start": str(start), "end": str(end)})
            took = time.perf_counter() - t0
            assert r.status_code == 200, r.text
            assert took < 5.0, (start, took)
            body = r.json()
            assert body["forecast"]["window"]["start"] == str(start)
            assert body["forecast"]["model_version"] == body["model_versions"]["churn"]
        # a repeat is served from memory
        t0 = time.perf_counter()
        assert c.get("/v1/forecast/renewals", params={"start": str(quarters[0][0]),
                                                      "end": str(quarters[0][1])}).status_code == 200
        assert time.perf_counter() - t0 < 1.0


def test_uncached_forecasts_do_not_hold_up_other_reads(api):
    quarters = next_quarters(data_end(open_source(api.data)))
    slow = [{"start": str(s), "end": str(e), "group_by": g}
            for (s, e), g in zip(quarters[:3], ("segment", "region", "industry"))]
    done: list[float] = []

    def ask(params):
        with _client(api) as c:
            t0 = time.perf_counter()
            assert c.get("/v1/forecast/renewals", params=params).status_code == 200
            done.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=ask, args=(p,)) for p in slow]
    for t in threads:
        t.start()
    time.sleep(0.5)
    with _client(api) as c:
        t0 = time.perf_counter()
        r = c.get("/v1/metrics/retention", params={"period": "month", "group_by": "region"})
        took = time.perf_counter() - t0
        busy = len(done) < len(slow)
        ok = c.get("/v1/accounts", params={"limit": 5}).status_code
    for t in threads:
        t.join()
    assert r.status_code == 200 and ok == 200
    assert busy, "the forecasts finished before the retention request: nothing was measured"
    assert took < 5.0, f"retention waited {took:.1f} s behind forecasts taking {sorted(done)}"


PRECOMPUTE_TWICE = """
import json, sys
from pathlib import Path

from csforecast.config import get_settings
from csforecast.data.sources import open_source
from csforecast.scoring.batch import load_champions
from csforecast.scoring.forecasts import precompute

data, home = sys.argv[1], Path(sys.argv[2])
champs = load_champions()
pair = lambda name: (champs.estimators[name], champs.versions[name]) if name in champs.estimators else None
settings = get_settings().model_copy(update={"home": home})
told = []
counts = [precompute(open_source(data), champs.estimators["churn"], champs.versions["churn"], 1, settings,
                     progress=lambda msg, *_a: told.append(msg), blend=pair("blend"), survival=pair("survival"))
          for _ in range(2)]
print(json.dumps({"counts": counts, "told": told,
                  "files": len(list((home / "cache" / "forecasts").glob("*.json")))}))
"""


def test_precompute_computes_and_counts_only_what_the_cache_lacks(api, tools, tmp_path):
    """`precompute` into an empty cache computes, reports and keeps every quarter of the next year and returns
    their number (`score --json`'s forecasts_precomputed); called again it finds them all and returns 0."""
    quarters = next_quarters(data_end(open_source(api.data)))
    proc = subprocess.run([sys.executable, "-c", PRECOMPUTE_TWICE, str(api.data), str(tmp_path / "home")],
                          env=api.env, cwd=tools.workdir, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["counts"] == [len(quarters), 0]
    assert res["told"] == [f"renewal forecast {s} – {e}" for s, e in quarters]
    assert res["files"] == len(quarters)
