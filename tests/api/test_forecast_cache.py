"""Forecasts determined by the score set are answered at once (precomputed by `csforecast score`, kept per
score set and model), and a slow forecast never makes another read wait (issue 15 item 4)."""
from __future__ import annotations

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
