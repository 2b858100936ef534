"""The data source behind forecasts and retention metrics, opened on first use, results cached per state.

A new `DataContext` comes with every serving state, so a reload also drops cached frames and results.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import date
from typing import Any, Callable

import pandas as pd

from csforecast.api.errors import DataUnavailable
from csforecast.jsonsafe import error_text


class DataContext:
    """The data source for forecasts and retention metrics: opened on first use, frames and results cached.

    Source objects hold one DuckDB connection, which is not safe to share between threads, so every use
    of the source is serialised by a lock; results are cached (LRU) per arguments.
    """

    def __init__(self, location: str | None, column_map: dict | None = None, cache_size: int = 64):
        self.location = location
        self.column_map = column_map or {}
        self.lock = threading.RLock()
        self._source = None
        self._frames: dict[str, pd.DataFrame] = {}
        self._data_end: date | None = None
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = cache_size

    def source(self):
        if not self.location:
            raise DataUnavailable("no data source configured: start the server with `csforecast serve --data SRC` "
                                  "or set CSFORECAST_DATA")
        with self.lock:
            if self._source is None:
                from csforecast.data.sources import SourceError, open_source

                try:
                    self._source = open_source(self.location, self.column_map)
                except SourceError as e:
                    raise DataUnavailable(f"data source {self.location} cannot be opened: {e}") from e
                except Exception as e:  # noqa: BLE001
                    raise DataUnavailable(f"data source {self.location} cannot be opened: {error_text(e)}") from e
            return self._source

    def frame(self, name: str) -> pd.DataFrame:
        with self.lock:
            if name not in self._frames:
                src = self.source()
                if not src.has(name):
                    raise DataUnavailable(f"data source {self.location} has no {name} table")
                try:
                    self._frames[name] = src.frame(name)
                except Exception as e:  # noqa: BLE001
                    raise DataUnavailable(f"cannot read {name} from {self.location}: {error_text(e)}") from e
            return self._frames[name]

    def data_end(self) -> date:
        with self.lock:
            if self._data_end is None:
                from csforecast.features.snapshot import data_end

                try:
                    self._data_end = data_end(self.source())
                except DataUnavailable:
                    raise
                except Exception as e:  # noqa: BLE001
                    raise DataUnavailable(f"cannot find where the data in {self.location} ends: {error_text(e)}") from e
            return self._data_end

    def data_hash(self) -> str | None:
        with self.lock:
            try:
                return self.source().data_hash
            except DataUnavailable:
                raise
            except Exception:  # noqa: BLE001
                return None

    def cached(self, key: tuple, compute: Callable[[], Any]) -> Any:
        with self.lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            value = compute()
            self._cache[key] = value
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return value

