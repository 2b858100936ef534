"""Renewal forecasts determined by a score set, computed once and kept: the server answers them from memory,
and from disk after a restart (CSFORECAST_HOME/cache/forecasts/).

A forecast of the window [start, end) (`forecast.renewals.forecast_window`, used as a black box) depends on
the data (its hash), the churn model version, the as-of date (the data end), the forecast settings and the
interval calibration written by `csforecast backtest`; the key of a cached forecast is a digest of all of
them and of the score-set version, so a new score set, model, data or calibration is a new key and an old
entry is never served for it. `csforecast score` precomputes the quarters of the next year for its new score
set (`precompute`); the server does the same in the background when it loads one (api/datacontext.py).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from csforecast.diskcache import DiskCache, key_digest

__all__ = ["QUARTERS_AHEAD", "ForecastKey", "ForecastCache", "next_quarters", "calibration_digest", "forecast_key",
           "compute", "precompute", "freeze_quarters"]

QUARTERS_AHEAD = 4


def next_quarters(day: date, n: int = QUARTERS_AHEAD) -> list[tuple[date, date]]:
    """[start, end) of the calendar quarter holding ``day`` and the n - 1 after it."""
    q = pd.Period(pd.Timestamp(day), freq="Q")
    return [((q + k).start_time.date(), (q + k + 1).start_time.date()) for k in range(n)]


def calibration_digest(home: Path) -> str:
    """Digest of the interval calibration `forecast_window` reads (the last backtest's), '' when none."""
    from csforecast.forecast.montecarlo import CALIBRATION_FILE

    f = Path(home) / CALIBRATION_FILE
    try:
        return hashlib.blake2b(f.read_bytes(), digest_size=8).hexdigest()
    except OSError:
        return ""


@dataclass(frozen=True)
class ForecastKey:
    """What a cached forecast of a window was computed from (forecast_window's arguments and inputs)."""
    start: date
    end: date
    group_by: str | None
    data_hash: str
    model_version: str | None
    scores_version: int | None
    settings: str          # the forecast settings (draws, seed, …) as JSON
    calibration: str       # calibration_digest

    def digest(self) -> str:
        return key_digest(str(self.start), str(self.end), self.group_by, self.data_hash, self.model_version,
                          self.scores_version, self.settings, self.calibration)


class ForecastCache:
    """Forecast results as JSON files named by their key's digest, on :class:`~csforecast.diskcache.DiskCache`
    (atomic, best-effort writes; the ``keep`` most recently used files). Each file also holds its key's
    digest: an unreadable or foreign file is a miss."""

    def __init__(self, folder: Path, keep: int = 64):
        self.store = DiskCache(folder, ".json", keep=keep)

    def get_or_compute(self, key: ForecastKey, compute) -> dict:
        """The kept forecast of ``key``, else ``compute()``, kept (best effort: a read-only or full disk only
        costs the next start a recomputation)."""
        digest = key.digest()
        return self.store.get_or_compute(digest, compute, load=lambda path: _read_forecast(path, digest),
                                         dump=lambda forecast, path: _write_forecast(forecast, path, digest))


def _read_forecast(path: Path, digest: str) -> dict:
    doc = json.loads(path.read_text())
    if not (isinstance(doc, dict) and doc.get("key") == digest and isinstance(doc.get("forecast"), dict)):
        raise ValueError(f"{path} is not the forecast of key {digest}")
    return doc["forecast"]


def _write_forecast(forecast: dict, path: Path, digest: str) -> None:
    from csforecast.jsonsafe import jsonable

    path.write_text(json.dumps({"key": digest, "forecast": jsonable(forecast)}, allow_nan=False))


def forecast_key(start: date, end: date, group_by: str | None, *, data_hash: str, model_version: str | None,
                 scores_version: int | None, settings, home: Path) -> ForecastKey:
    """The key of a forecast with the current forecast settings and calibration."""
    return ForecastKey(start, end, group_by, data_hash, None if model_version is None else str(model_version),
                       scores_version, json.dumps(settings.forecast.model_dump(mode="json"), sort_keys=True),
                       calibration_digest(home))


def compute(source, start: date, end: date, group_by: str | None, estimator, model_version: str | None,
            blend=None, survival=None, memo=None) -> dict:
    """`forecast_window` of [start, end) as of the data end with the given churn model (and ``blend``: the
    blend champion as (estimator, version), for the blend method beside the model's): the one call the API,
    the dashboard and `precompute` make, so that a cached result is the result any of them would compute.
    ``survival``: the survival champion as (estimator, version), which scores the renewals beyond the churn
    model's horizon as the score set does (none: the churn model scores them, with a warning). ``memo``: what
    windows as of one date share, kept by the caller (``forecast_window(memo=)``)."""
    from csforecast.forecast.renewals import forecast_window

    b_est, b_ver = blend if blend else (None, None)
    s_est, s_ver = survival if survival else (None, None)
    return forecast_window(source, start, end, group_by=group_by, as_of=None, churn_estimator=estimator,
                           model_version=model_version, blend_estimator=b_est, blend_version=b_ver,
                           survival_estimator=s_est, survival_version=s_ver, memo=memo)


def versions_key(model_version: str | None, blend=None, survival=None) -> str | None:
    """The model part of a forecast's cache key: the churn version, and the blend's and the survival model's
    when they are used."""
    if model_version is None:
        return model_version
    key = str(model_version)
    if blend:
        key += f"+blend{blend[1]}"
    if survival:
        key += f"+survival{survival[1]}"
    return key


def precompute(source, estimator, model_version: str, scores_version: int, settings, progress=None,
               blend=None, survival=None, memo=None) -> int:
    """Compute the forecasts of the quarters of the next year (from the data end) into the disk cache, those not
    there yet; returns how many were computed. ``blend``: (estimator, version) of the blend champion. ``memo``:
    as :func:`compute` (default: one for these windows, which share the expansion model)."""
    from csforecast.features.snapshot import data_end
    from csforecast.forecast.renewals import dict_memo

    tell = progress or (lambda *_a: None)
    memo = memo or dict_memo()
    cache = ForecastCache(settings.home / "cache" / "forecasts")
    quarters = next_quarters(data_end(source))
    computed = []      # the windows `run` computed: the count returned, without a second look at the cache
    for k, (start, end) in enumerate(quarters):
        key = forecast_key(start, end, None, data_hash=source.data_hash,
                           model_version=versions_key(model_version, blend, survival), scores_version=scores_version,
                           settings=settings, home=settings.home)

        def run(k=k, start=start, end=end):
            tell(f"renewal forecast {start} – {end}", k, len(quarters))
            forecast = compute(source, start, end, None, estimator, model_version, blend, survival, memo)
            computed.append((start, end))
            return forecast

        cache.get_or_compute(key, run)
    return len(computed)


FROZEN_QUARTERS = 2   # `csforecast score` freezes the current and the next quarter


def freeze_quarters(source, estimator, model_version: str, scores_version: int, settings, progress=None,
                    blend=None, survival=None, memo=None) -> list[int]:
    """Freeze the forecasts of the current and the next quarter (from the data end) into the ledger
    (``scoring.process``), unless the ledger already holds a ``score`` freeze of that window as of the same
    date; the cached forecast is used when there is one. Returns the new ledger ids. ``memo``: as
    :func:`compute`."""
    from csforecast.features.snapshot import data_end
    from csforecast.forecast.ledger import frozen_entry
    from csforecast.scoring.process import freeze, ledger_entries, process_db

    tell = progress or (lambda *_a: None)
    de = data_end(source)
    db = process_db(settings.home)
    have = {(e["as_of"], e["window"]["start"], e["window"]["end"]) for e in ledger_entries(db)
            if e.get("trigger") == "score"}
    cache = ForecastCache(settings.home / "cache" / "forecasts")
    ids = []
    for start, end in next_quarters(de, FROZEN_QUARTERS):
        if (str(de), str(start), str(end)) in have:
            continue
        key = forecast_key(start, end, None, data_hash=source.data_hash,
                           model_version=versions_key(model_version, blend, survival), scores_version=scores_version,
                           settings=settings, home=settings.home)

        def run(start=start, end=end):
            tell(f"renewal forecast {start} – {end} (to freeze)")
            return compute(source, start, end, None, estimator, model_version, blend, survival, memo)

        res = cache.get_or_compute(key, run)
        for method in ("model", "blend") if "blend" in res["methods"] else ("model",):
            ids.append(freeze(db, frozen_entry(res, data_hash=source.data_hash, method=method, trigger="score")))
    return ids
