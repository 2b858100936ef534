"""A family's champion (estimator, version) for commands that only read it (``csforecast forecast``): loaded
from the registry once per registry change, then from disk (CSFORECAST_HOME/cache/champions/) without
importing MLflow, which alone costs seconds a command.

Kept only for a local sqlite registry, the default: the key is the database file's size and modification
time (and its journal's), which every registration and alias move changes. The stamp is read before and after
the registry is; a registry written meanwhile is not kept. Any other tracking URI is read through MLflow
every time.
"""
from __future__ import annotations

import contextlib
import pickle
from pathlib import Path

from csforecast.config import get_settings
from csforecast.diskcache import DiskCache, key_digest

__all__ = ["registry_stamp", "load_champion"]


def registry_stamp(tracking_uri: str) -> str | None:
    """Size and modification time (ns) of a sqlite registry's files; None for any other registry or when the
    database does not exist."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    parts = []
    for f in (db, db.with_name(db.name + "-journal"), db.with_name(db.name + "-wal")):
        with contextlib.suppress(FileNotFoundError):
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts) if parts and parts[0].startswith(db.name + ":") else None


def _from_registry(family: str):
    from csforecast.tracking import store

    mv = store.champion_version(family)
    if mv is None:
        return None, None
    return store.load_estimator(f"models:/{store.model_name(family)}/{mv.version}"), str(mv.version)


def load_champion(family: str):
    """(estimator, version) of the champion of ``family``; (None, None) when there is none.
    :class:`~csforecast.tracking.store.RegistryError` when the registry cannot be read."""
    settings = get_settings()
    uri = settings.tracking_uri
    before = registry_stamp(uri)
    if before is None:
        return _from_registry(family)
    cache = DiskCache(settings.home / "cache" / "champions", ".pkl", keep=8)
    key = key_digest("champion", family, uri, before)
    kept = cache.get_or_compute(
        key, lambda: dict(zip(("estimator", "version"), _from_registry(family))),
        load=lambda p: pickle.loads(p.read_bytes()),
        dump=lambda value, p: p.write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)),
        keep=lambda _value: registry_stamp(uri) == before)      # not written while it was read
    return kept["estimator"], kept["version"]
