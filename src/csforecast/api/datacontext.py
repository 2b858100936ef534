"""The data source behind forecasts and metrics, opened on first use, results cached per serving state.

A new `DataContext` comes with every serving state (one score set and model set), so a reload drops cached
frames and results; forecasts are also kept on disk by key (scoring/forecasts.py), so a restart or a reload
to the same score set and models answers at once.

Waiting (issue 15 item 4): a read never waits on another read's computation. The source's DuckDB
connection is not safe to share between threads, so there are two: frames and the data end are read through
their own source (`_reader`), forecasts compute on another (`_source`), one at a time; every result is
computed once per key ("single flight": concurrent requests for the same key wait for that one computation,
requests for other keys do not wait at all).
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from concurrent.futures import Future
from datetime import date
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from csforecast.api.errors import DataUnavailable
from csforecast.jsonsafe import error_text

log = logging.getLogger("csforecast.api")


class DataContext:
    """The data source for forecasts and retention metrics: opened on first use, frames and results cached.

    ``cache_dir``: where forecasts are kept on disk (default CSFORECAST_HOME/cache/forecasts)."""

    def __init__(self, location: str | None, column_map: dict | None = None, cache_size: int = 64,
                 cache_dir: Path | None = None):
        self.location = location
        self.column_map = column_map or {}
        self._open_lock = threading.Lock()       # opening a source
        self.lock = threading.RLock()            # the compute source's connection: one thread at a time
        self._frames_lock = threading.Lock()     # the reader source's connection
        self._source = None
        self._reader = None
        self._frames: dict[str, pd.DataFrame] = {}
        self._data_end: date | None = None
        self._cache: OrderedDict = OrderedDict()
        self._cache_lock = threading.Lock()
        self._flights: dict[tuple, Future] = {}
        self._cache_size = cache_size
        self._cache_dir = cache_dir
        self.precomputing: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------ sources
    def _open(self):
        if not self.location:
            raise DataUnavailable("no data source configured: start the server with `csforecast serve --data SRC` "
                                  "or set CSFORECAST_DATA")
        from csforecast.data.sources import SourceError, open_source

        try:
            return open_source(self.location, self.column_map)
        except SourceError as e:
            raise DataUnavailable(f"data source {self.location} cannot be opened: {e}") from e
        except Exception as e:  # noqa: BLE001
            raise DataUnavailable(f"data source {self.location} cannot be opened: {error_text(e)}") from e

    def source(self):
        """The source forecasts compute on; use it while holding `lock`."""
        with self._open_lock:
            if self._source is None:
                self._source = self._open()
            return self._source

    def _reading(self):
        """The source frames and the data end are read from (never busy with a forecast)."""
        with self._open_lock:
            if self._reader is None:
                self._reader = self._open()
            return self._reader

    def frame(self, name: str) -> pd.DataFrame:
        if name in self._frames:
            return self._frames[name]
        with self._frames_lock:
            if name not in self._frames:
                src = self._reading()
                if not src.has(name):
                    raise DataUnavailable(f"data source {self.location} has no {name} table")
                try:
                    self._frames[name] = src.frame(name)
                except Exception as e:  # noqa: BLE001
                    raise DataUnavailable(f"cannot read {name} from {self.location}: {error_text(e)}") from e
            return self._frames[name]

    def optional_frame(self, name: str) -> pd.DataFrame | None:
        """An optional table's frame, or None when the source has no such table (or it is empty)."""
        with self._frames_lock:
            present = self._reading().has(name)
        return self.frame(name) if present else None

    def data_end(self) -> date:
        if self._data_end is not None:
            return self._data_end
        with self._frames_lock:
            if self._data_end is None:
                from csforecast.features.snapshot import data_end

                try:
                    self._data_end = data_end(self._reading())
                except DataUnavailable:
                    raise
                except Exception as e:  # noqa: BLE001
                    raise DataUnavailable(f"cannot find where the data in {self.location} ends: {error_text(e)}") from e
            return self._data_end

    def data_hash(self) -> str | None:
        try:
            src = self._reading()
        except DataUnavailable:
            raise
        with self._frames_lock:
            try:
                return src.data_hash
            except Exception:  # noqa: BLE001
                return None

    # ------------------------------------------------------------------------------------------ results
    def peek(self, key: tuple) -> Any | None:
        """The cached result of ``key`` if there is one (never computes, never waits)."""
        with self._cache_lock:
            return self._cache.get(key)

    def cached(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """The result of ``key``, computed once: a request for a key being computed waits for that computation
        (and gets its result or its error); a request for another key does not wait. Errors are not cached."""
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            flight = self._flights.get(key)
            owner = flight is None
            if owner:
                flight = self._flights[key] = Future()
        if not owner:
            return flight.result()
        try:
            value = compute()
        except BaseException as e:
            with self._cache_lock:
                self._flights.pop(key, None)
            flight.set_exception(e)
            raise
        with self._cache_lock:
            self._cache[key] = value
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            self._flights.pop(key, None)
        flight.set_result(value)
        return value

    # ------------------------------------------------------------------------------------------ forecasts
    def _disk(self):
        from csforecast.config import get_settings
        from csforecast.scoring.forecasts import ForecastCache

        settings = get_settings()
        return ForecastCache(self._cache_dir or settings.home / "cache" / "forecasts"), settings

    def forecast(self, start: date, end: date, group_by: str | None, estimator, model_version: str | None,
                 scores_version: int | None, blend=None, survival=None) -> dict:
        """The renewal forecast of [start, end) with the served churn model (and the served blend, as
        (estimator, version), for the blend method): from memory, else from the disk cache, else computed (on
        the compute source, one forecast at a time) and kept in both. ``survival``: the served survival model
        as (estimator, version), for the renewals beyond the churn model's horizon."""
        from csforecast.scoring.forecasts import versions_key

        versions = versions_key(model_version, blend, survival)

        def run() -> dict:
            from csforecast.scoring.forecasts import compute, forecast_key

            cache, settings = self._disk()
            key = forecast_key(start, end, group_by, data_hash=self.data_hash() or "", model_version=versions,
                               scores_version=scores_version, settings=settings, home=settings.home)

            def computed() -> dict:
                with self.lock:     # windows as of this data's end share the expansion fit, kept with the results
                    return compute(self.source(), start, end, group_by, estimator, model_version, blend, survival,
                                   memo=self.cached)

            return cache.get_or_compute(key, computed)

        return self.cached(("forecast", start, end, group_by, versions, scores_version), run)

    def precompute_forecasts(self, estimator, model_version: str | None, scores_version: int | None,
                             blend=None, survival=None) -> None:
        """In the background: the forecasts of the quarters of the next year (what a dashboard and most API
        clients ask for first), in order, into the cache. Failures are logged; requests then compute (and
        report) them themselves."""
        if not self.location or estimator is None or self.precomputing is not None:
            return

        def run() -> None:
            from csforecast.scoring.forecasts import next_quarters

            try:
                for start, end in next_quarters(self.data_end()):
                    self.forecast(start, end, None, estimator, model_version, scores_version, blend, survival)
            except Exception as e:  # noqa: BLE001 - logged; a request for it reports the problem itself
                log.warning("precomputing the renewal forecasts failed: %s", error_text(e))

        self.precomputing = threading.Thread(target=run, name="csforecast-forecasts", daemon=True)
        self.precomputing.start()
