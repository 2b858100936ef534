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
``StorageError``       1          503          a state file cannot be written or read (read-only, full, damaged)
=====================  =========  ===========  ==============================================================

:func:`storage_error` recognises a disk or permission fault (a full disk, a read-only file system, no
permission) anywhere in an exception's chain, as the OS, SQLite (MLflow) and DuckDB report it, and turns it
into a :class:`StorageError` naming the path and the cause; :func:`check_writable` finds such a fault before a
command starts work that it would lose.
"""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

__all__ = ["CsforecastError", "InputError", "NotFoundError", "ConflictError", "UnavailableError",
           "StorageError", "TrainingDataError", "check_writable", "exit_code", "http_status", "storage_error"]


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


class StorageError(UnavailableError):
    """A state file (under CSFORECAST_HOME, or the MLflow store) cannot be written or read: a read-only file
    system, a full disk, no permission, a damaged file. The message names the path and the cause."""


class TrainingDataError(InputError, ValueError):
    """The data cannot train a model: too little history, or too few outcomes on a side of the time split."""


def exit_code(error: BaseException) -> int:
    """The CLI exit code for ``error``: its category's code for a :class:`CsforecastError`, else 1."""
    return error.exit_code if isinstance(error, CsforecastError) else 1


def http_status(error: BaseException) -> int:
    """The HTTP status for ``error``: its category's status for a :class:`CsforecastError`, else 500."""
    return error.http_status if isinstance(error, CsforecastError) else 500


# errno → the words used in messages; and the same faults as SQLite and DuckDB spell them in their messages
_STORAGE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EROFS: "read-only file system",
                   errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                   errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large"}
_STORAGE_PHRASES = (("no space left on device", "no space left on the device"),
                    ("database or disk is full", "no space left on the device"),
                    ("disk quota exceeded", "disk quota exceeded"),
                    ("read-only file system", "read-only file system"),
                    ("readonly database", "read-only file system or file"),
                    ("permission denied", "permission denied"))


def _chain(error: BaseException):
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def storage_error(error: BaseException, path: object, action: str = "write") -> StorageError | None:
    """A :class:`StorageError` "cannot <action> <path>: <cause>" when a disk or permission fault is anywhere in
    ``error``'s chain (an ``OSError`` with ENOSPC, EROFS, EACCES, EPERM, EDQUOT or EFBIG, or a database error
    whose message says so), else None. ``path`` names the file or folder when the fault itself does not."""
    for e in _chain(error):
        if isinstance(e, StorageError):
            return e
        if isinstance(e, OSError) and e.errno in _STORAGE_ERRNOS:
            return StorageError(f"cannot {action} {e.filename or path}: {_STORAGE_ERRNOS[e.errno]} "
                                f"({os.strerror(e.errno)})")
        text = str(e).lower()
        for phrase, cause in _STORAGE_PHRASES:
            if phrase in text:
                return StorageError(f"cannot {action} {path}: {cause}")
    return None


def check_writable(folder) -> None:
    """Fail early, before work that would be lost, when ``folder`` cannot take a new file: a probe file of one
    4 KiB block is written, synced and removed (``folder`` and its parents are created if missing). A full
    disk, a read-only file system or no permission raise a :class:`StorageError` naming the folder (never
    the probe file) and the cause (:func:`storage_error`); room for the probe does not promise room for
    everything that follows."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(b"\0" * 4096)
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            with contextlib.suppress(OSError):
                os.unlink(probe)
    except OSError as e:
        # the fault is the folder's: name it, not the probe file the OSError carries
        raise (storage_error(OSError(e.errno, e.strerror), folder)
               or StorageError(f"cannot write {folder}: {e}")) from e
