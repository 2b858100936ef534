"""The status page: the dashboard's background computations in words (the JSON of ``UIData.status``)."""
from __future__ import annotations

import json

from typing import Any, Mapping

JOB_WORDS = {   # background job name (its prefix before ":") -> what it computes
    "forecast": "renewal forecast of the next 4 quarters",
    "movements": "ARR movements",
    "backtest": "latest forecast backtest (from MLflow)",
    "registry": "model run artifacts and reports (from MLflow)",
    "history": "week-by-week health changes and their explanations",
    "data": "the data source's contracts (account pages)",
}


def _what(name: str) -> str:
    kind, _, arg = name.partition(":")
    words = JOB_WORDS.get(kind, kind.replace("_", " "))
    if not arg:
        return words
    if kind == "forecast":
        return f"{words}, by {arg}"
    try:   # movements:["SMB", null, null] = segment, region, CSM
        shown = [f"{k} {v}" for k, v in zip(("segment", "region", "CSM"), json.loads(arg)) if v is not None]
    except (ValueError, TypeError):
        shown = [arg]
    return f"{words} of {', '.join(shown)}" if shown else words


def status_view(status: Mapping[str, Any]) -> dict:
    """{generation, frame_seconds, jobs: [{name, what, status, progress, seconds, message}]}, jobs by name."""
    jobs = [{"name": n, "what": _what(n), **{k: j.get(k) for k in ("status", "progress", "seconds", "message")}}
            for n, j in sorted((status.get("jobs") or {}).items())]
    return {"generation": status.get("generation"), "frame_seconds": status.get("frame_seconds"), "jobs": jobs}
