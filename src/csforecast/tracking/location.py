"""Where the MLflow tracking store is, answered without importing MLflow (~2 s): for commands that only need
to know whether there is a registry to read at all (``csforecast validate`` compares the data with the
champions' only when there are champions)."""
from __future__ import annotations

from pathlib import Path

from csforecast.config import Settings, get_settings

__all__ = ["has_registry"]


def has_registry(settings: Settings | None = None) -> bool:
    """False when the tracking URI is a sqlite file that does not exist yet (reading it would create it)."""
    uri = (settings or get_settings()).tracking_uri
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).exists()
    return True
