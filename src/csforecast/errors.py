"""The one exception root of csforecast, and how an error maps to a CLI exit code and an HTTP status.

Every error csforecast raises on purpose derives from :class:`CsforecastError`. Its message is *user-safe*:
it names the table, column, row, value, option or request field at fault and what to do, and never holds a
traceback, a secret or an internal object's repr. Callers at the edge (the CLI, the API) print the message
as it is and use :func:`exit_code` / :func:`http_status` to pick the exit code / status.

The categories below carry the mapping; concrete errors subclass one of them (and, where older callers
catch a builtin type, that builtin too, e.g. ``class SpecError(InputError, ValueError)``).

=====================  =========  ===========  ==============================================================
class                  exit code  HTTP status  meaning
=====================  =========  ===========  ==============================================================
``CsforecastError``    1          500          anything else we raise on purpose
``InputError``         2          422          the user's input (data, spec, option, request) is invalid
``NotFoundError``      2          404          a named thing (run, model version, account) does not exist
``ConflictError``      2          409          the request contradicts the current state (already registered)
``UnavailableError``   1          503          something needed is not there yet (no champion, no registry)
=====================  =========  ===========  ==============================================================
"""
from __future__ import annotations

__all__ = ["CsforecastError", "InputError", "NotFoundError", "ConflictError", "UnavailableError",
           "TrainingDataError", "exit_code", "http_status"]


class CsforecastError(Exception):
    """Root of every error csforecast raises on purpose. ``str(error)`` is safe to show to a user."""

    exit_code: int = 1
    http_status: int = 500

    @property
    def user_message(self) -> str:
        """The message for the user (the exception's text)."""
        return str(self)


class InputError(CsforecastError):
    """The user's input (data, spec file, option or request field) is invalid; the message says where."""

    exit_code, http_status = 2, 422


class NotFoundError(CsforecastError):
    """A thing the user named (a run, a model version, an account) does not exist."""

    exit_code, http_status = 2, 404


class ConflictError(CsforecastError):
    """The request contradicts the current state (e.g. the run is already registered)."""

    exit_code, http_status = 2, 409


class UnavailableError(CsforecastError):
    """Something the request needs is not available yet (no champion model, registry unreachable)."""

    exit_code, http_status = 1, 503


class TrainingDataError(InputError, ValueError):
    """The data cannot train a model: too little history, or too few outcomes on a side of the time split."""


def exit_code(error: BaseException) -> int:
    """The CLI exit code for ``error``: its category's code for a :class:`CsforecastError`, else 1."""
    return error.exit_code if isinstance(error, CsforecastError) else 1


def http_status(error: BaseException) -> int:
    """The HTTP status for ``error``: its category's status for a :class:`CsforecastError`, else 500."""
    return error.http_status if isinstance(error, CsforecastError) else 500
