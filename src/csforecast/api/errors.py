"""The API's errors, all under the project's root `CsforecastError`; messages are safe to show to clients.

``http_status`` is what an endpoint answers when the error reaches it (the routers map them explicitly;
`RowErrors` becomes FastAPI's 422 validation body).
"""
from __future__ import annotations

from csforecast.errors import CsforecastError


class LoadError(CsforecastError):
    """A model set, score set or data source could not be loaded. The message is safe to show to clients."""

    http_status = 503


class RegistryUnavailable(LoadError):
    """The MLflow registry could not be reached or read (as opposed to: reachable, but nothing to serve)."""


class StartupError(CsforecastError):
    """The server cannot start: the registry is unreachable and there is no cached model set."""

    http_status = 503


class DataUnavailable(CsforecastError):
    """No data source is configured, or it cannot be opened (endpoints answer 503 with this message)."""

    http_status = 503


class RowErrors(CsforecastError):
    """Field-level problems in /v1/score rows, in FastAPI's validation-error format (``errors``)."""

    http_status = 422

    def __init__(self, errors: list[dict]):
        super().__init__(f"{len(errors)} error(s)")
        self.errors = errors
