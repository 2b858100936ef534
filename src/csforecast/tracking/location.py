"""Where the MLflow tracking store is, answered without importing MLflow (~2 s): for commands that only need
to know whether there is a registry to read at all (``csforecast validate`` compares the data with the
champions' only when there are champions), or whether a run could be recorded there (``csforecast train``
probes before it fits)."""
from __future__ import annotations

from pathlib import Path

from csforecast.config import Settings, get_settings
from csforecast.errors import check_writable

__all__ = ["check_writable_store", "has_registry"]


def has_registry(settings: Settings | None = None) -> bool:
    """False when the tracking URI is a sqlite file that does not exist yet (reading it would create it)."""
    uri = (settings or get_settings()).tracking_uri
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).exists()
    return True


def check_writable_store(settings: Settings | None = None) -> None:
    """Fail early, before a training run's work, when the run could not be recorded: CSFORECAST_HOME (the
    artifacts, the model cache, the lock) and, with a SQLite tracking URI, the database's folder must each take
    a new file (:func:`errors.check_writable`; a read-only or full disk is a StorageError naming the folder).
    A remote tracking server is not probed: its faults are reported when the run is logged."""
    s = settings or get_settings()
    folders = [Path(s.home)]
    if s.tracking_uri.startswith("sqlite:///"):
        folders.append(Path(s.tracking_uri.removeprefix("sqlite:///")).parent)
    for folder in dict.fromkeys(f.resolve() for f in folders):
        check_writable(folder)
