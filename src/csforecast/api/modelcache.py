"""The last good model set on disk (``settings.model_cache``): what the server falls back to when the
registry cannot be reached at start.

Written after every successful registry load (atomically, skipped when the versions did not change); read
only at start. A cache that cannot be written or read is logged, never raised: it must not stop serving.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from csforecast.jsonsafe import error_text
from csforecast.api.registry import ModelSet

log = logging.getLogger("csforecast.api")

CACHE_FILE = "champions.pkl"
CACHE_META = "champions.json"


def cache_path(settings) -> Path:
    """Where the pickled model set lives."""
    return Path(settings.model_cache) / CACHE_FILE


def save_model_cache(settings, models: ModelSet) -> None:
    """Pickle the estimators + versions to settings.model_cache (atomically); skipped when unchanged."""
    d = Path(settings.model_cache)
    meta = {"versions": models.versions, "tracking_uri": settings.tracking_uri}
    try:
        d.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError, ValueError):
            old = json.loads((d / CACHE_META).read_text())
            if {k: old.get(k) for k in meta} == meta and (d / CACHE_FILE).exists():
                return
        payload = {"format": 1, "versions": models.versions, "estimators": models.estimators, "info": models.info,
                   "saved_at": datetime.now(timezone.utc).isoformat(), "tracking_uri": settings.tracking_uri}
        for name, data in ((CACHE_FILE, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)),
                           (CACHE_META, json.dumps({**meta, "saved_at": payload["saved_at"]}).encode())):
            fd, tmp = tempfile.mkstemp(prefix=name + ".", suffix=".tmp", dir=d)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, d / name)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
    except Exception as e:  # noqa: BLE001 - a cache that cannot be written must not stop serving
        log.warning("could not write the model cache to %s: %s", d, error_text(e))


def cached_versions(settings) -> dict[str, str] | None:
    """The versions in the model cache when it was saved from this registry (``settings.tracking_uri``), else
    None: what the registry served before (read from the small JSON beside the pickle)."""
    try:
        meta = json.loads((Path(settings.model_cache) / CACHE_META).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("tracking_uri") != settings.tracking_uri:
        return None
    versions = meta.get("versions")
    return {str(k): str(v) for k, v in versions.items()} if isinstance(versions, dict) else None


def load_model_cache(settings) -> ModelSet | None:
    """The cached model set (source "cache", loaded_at = when it was saved), or None if absent/unreadable."""
    path = cache_path(settings)
    if not path.exists():
        return None
    try:
        with open(path, "rb") as fh:
            payload = pickle.load(fh)  # noqa: S301 - our own file under CSFORECAST_HOME
        saved = datetime.fromisoformat(payload["saved_at"])
        return ModelSet(dict(payload["estimators"]), dict(payload["versions"]), "cache", saved,
                        dict(payload.get("info") or {}))
    except Exception as e:  # noqa: BLE001
        log.error("the model cache %s cannot be read: %s", path, error_text(e))
        return None
