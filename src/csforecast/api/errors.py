"""The API's errors, all under the project's root `CsforecastError`; messages are safe to show to clients.

``http_status`` is what an endpoint answers when the error reaches it (the routers map them explicitly;
`RowErrors` becomes FastAPI's 422 validation body). `validation_body` renders a 422 body that can always
be serialised, whatever the client sent (NaN, Infinity, bytes that are not UTF-8, huge values).
"""
from __future__ import annotations

import math
from typing import Any

from csforecast.errors import CsforecastError

ECHO_CHARS = 200        # at most this much of a client's value is echoed in a 422


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


def echo_input(v: Any) -> Any:
    """A client's value as a 422 may echo it: strings and bytes cut to ECHO_CHARS, NaN / ±Infinity as their
    JSON literals spelled as strings ("NaN", "Infinity", "-Infinity"), integers beyond 2**63 as a cut string,
    containers left out (None: the error's ``loc`` says where)."""
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, float):
        if math.isfinite(v):
            return v
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, int):
        return v if abs(v) < 2 ** 63 else str(v)[:ECHO_CHARS]
    if isinstance(v, bytes | bytearray):
        return bytes(v[:ECHO_CHARS]).decode("utf-8", "replace")
    if isinstance(v, str):
        return v[:ECHO_CHARS]
    return None


def validation_body(errors) -> dict:
    """FastAPI's 422 body ``{"detail": [{type, loc, msg, input, ctx?}, …]}`` for ``errors`` (pydantic or our
    own dicts), with every part made safe to serialise (`echo_input`)."""
    detail = []
    for err in errors:
        out = {"type": str(err.get("type", "value_error")),
               "loc": [x if isinstance(x, int) and not isinstance(x, bool) else str(x)[:ECHO_CHARS]
                       for x in err.get("loc", ())],
               "msg": str(err.get("msg", ""))[:1000], "input": echo_input(err.get("input"))}
        if err.get("ctx"):
            out["ctx"] = {str(k): str(x)[:ECHO_CHARS] for k, x in err["ctx"].items()}
        detail.append(out)
    return {"detail": detail}
