"""Secrets never reach the access log: query parameters with a secret's name are logged as ``REDACTED``.

Keys belong in the ``X-API-Key`` header (headers are never logged), but a key sent by mistake as
``?api_key=…`` would otherwise land verbatim in uvicorn's access log, and from there in log storage.
`install` adds `RedactSecrets` to the ``uvicorn.access`` logger (once per process, whoever runs the app:
`csforecast serve`, ``uvicorn serving.app:app``, the tests).
"""
from __future__ import annotations

import logging
from urllib.parse import unquote_plus

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "REDACTED"
# parameter names (lower case, '-' read as '_') whose values are secrets
SECRET_PARAMS = frozenset({"api_key", "apikey", "x_api_key", "key", "token", "access_token", "refresh_token",
                           "id_token", "auth", "authorization", "password", "passwd", "pwd", "secret",
                           "client_secret", "session", "csforecast_ui", "csrf", "signature", "sig"})


def redact_query(target: str) -> str:
    """``target`` (a path with its query string) with the value of every secret parameter replaced by
    REDACTED; everything else as it was. A target without a query string is returned unchanged."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    parts = []
    for part in query.split("&"):
        name, eq, _ = part.partition("=")
        if unquote_plus(name).strip().lower().replace("-", "_") in SECRET_PARAMS:
            part = f"{name}={REDACTED}"
        parts.append(part)
    return f"{path}?{'&'.join(parts)}"


class RedactSecrets(logging.Filter):
    """Rewrites the request target in an access-log record (its string arguments with a query string)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, str) and "?" in a for a in args):
            record.args = tuple(redact_query(a) if isinstance(a, str) and "?" in a else a for a in args)
        return True


def install(logger_name: str = ACCESS_LOGGER) -> None:
    """Add `RedactSecrets` to the access logger unless it is there already."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
