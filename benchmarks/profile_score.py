"""Where a POST /v1/score request's time goes, in process: the stages of the handler timed one by one, the whole
ASGI app through httpx's ASGITransport (no sockets), and optionally cProfile of the handler's work.

    python benchmarks/profile_score.py --home H --data D [--rows 100] [--repeat 300] [--cprofile]

H is a CSFORECAST_HOME with trained models and a score set (as for ``bench_serving.py``); D the data the scores
came from (real feature rows of the scored accounts, typed to the churn model's MLflow signature). Stages (ms a
request, median of ``--repeat``): pydantic's ``validate_json`` of the body, ``health_inputs``, and inside
``score_rows``: the churn row parser, the churn model, the health model with its scorecard, the JSON encoding.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", required=True, type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=300)
    ap.add_argument("--cprofile", action="store_true")
    a = ap.parse_args()
    home = a.home.resolve()
    os.environ["CSFORECAST_HOME"] = str(home)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_serving import feature_rows

    from csforecast.api.fastscore import _health_column, health_inputs, score_rows
    from csforecast.api.schemas import ScoreRequest
    from csforecast.api.state import StateHolder
    from csforecast.config import get_settings
    from csforecast.scoring.store import load_latest

    settings = get_settings()
    state = StateHolder(settings).start()
    meta, _, _ = load_latest(settings.scores_db)
    rows = feature_rows("models:/csforecast-churn@champion", a.data, meta["as_of"], a.rows)
    body = json.dumps({"rows": rows}).encode()
    req = ScoreRequest.model_validate_json(body)
    health = health_inputs(state.models, req.rows)
    print(f"{a.rows} rows, {len(state.churn.features)} churn inputs, health inputs "
          f"{len(health) if health else 0}; fast path {state.churn.fast}")
    scorer = state.churn
    parsed = scorer.parse(req.rows)
    stages = {
        "validate_json (pydantic)": lambda: ScoreRequest.model_validate_json(body),
        "health_inputs": lambda: health_inputs(state.models, req.rows),
        "parse (churn rows -> matrix)": lambda: scorer.parse(req.rows),
        "churn predict": lambda: scorer.predict(parsed.X, parsed.raw_cat),
        "health + scorecard": lambda: _health_column(state.models, req.rows, health, settings,
                                                     scorer.numeric_columns(parsed.X, health)),
        "score_rows, churn only": lambda: score_rows(state, req.rows, False, None, False, settings),
        "score_rows, with health": lambda: score_rows(state, req.rows, False, health, False, settings),
    }
    for name, fn in stages.items():
        fn()
        print(f"  {name:<32} {_median_ms(fn, a.repeat):7.3f} ms")
    out = score_rows(state, req.rows, False, health, False, settings)
    print(f"  response {len(out):,} bytes")

    from csforecast.api.app import create_app
    import httpx

    app = create_app(settings)
    from csforecast.api.auth import KeyStore

    key, _ = KeyStore(settings.apikeys_file).create("read", name="profile_score")

    async def through_app(payload: bytes) -> float:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                hdr = {"X-API-Key": key, "Content-Type": "application/json"}
                for _ in range(5):
                    r = await c.post("/v1/score", content=payload, headers=hdr)
                    assert r.status_code == 200, r.text[:300]
                times = []
                for _ in range(a.repeat):
                    t = time.perf_counter()
                    await c.post("/v1/score", content=payload, headers=hdr)
                    times.append(time.perf_counter() - t)
                return 1e3 * statistics.median(times)

    for label, extra in (("churn only", {"health": False}), ("with health", {})):
        payload = json.dumps({"rows": rows, **extra}).encode()
        print(f"  whole app (ASGITransport), {label:<12} {asyncio.run(through_app(payload)):7.3f} ms")
    if a.cprofile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(a.repeat):
            r = ScoreRequest.model_validate_json(body)
            score_rows(state, r.rows, False, health_inputs(state.models, r.rows), False, settings)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
