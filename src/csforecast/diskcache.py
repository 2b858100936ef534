"""Derived results kept on disk between commands, under CSFORECAST_HOME/cache/<kind>/: the one definition of
how such a file is keyed, written and pruned.

A cached result is a pure function of its key: the key names everything the result was computed from (the
data's content hash, the arguments, and :func:`code_digest` of the modules that compute it), so a changed
input or a changed program is a new key and an old file is never returned for it. Writes are atomic (a
temporary file, then a rename) and best effort: a read-only or full disk only costs the next command a
recomputation. An unreadable file is a miss. Each folder keeps its ``keep`` most recently used files.

Lowest level of the package (imports nothing from csforecast but its version), so every layer can use it.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["key_digest", "code_digest", "DiskCache"]


def key_digest(*parts: Any) -> str:
    """A short hex digest of JSON-serialisable ``parts`` (``str`` for anything else, e.g. dates)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


@lru_cache(maxsize=None)
def code_digest(*modules: str) -> str:
    """A digest of the source files of ``modules`` (dotted names of csforecast packages or modules; a package
    counts all its ``.py`` files) and of the csforecast version: what a cached result's program was."""
    from csforecast import __version__

    root = Path(__file__).resolve().parent
    h = hashlib.blake2b(__version__.encode(), digest_size=12)
    for mod in sorted(modules):
        p = root.joinpath(*mod.split(".")[1:])
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p.with_suffix(".py")]
        for f in files:
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


class DiskCache:
    """Files named ``<key><suffix>`` in ``folder``.

    ``get(key, read)``: ``read(path)`` of the file, or None when there is none or it cannot be read.
    ``put(key, write)``: ``write(path)`` into a temporary file, renamed into place; then the folder is pruned to
    its ``keep`` most recently used files.
    ``get_or_compute(key, compute, load=, dump=)``: the kept value, else ``compute()``, kept when it may be."""

    def __init__(self, folder: Path, suffix: str, keep: int = 16):
        self.folder = Path(folder)
        self.suffix = suffix
        self.keep = keep

    def path(self, key: str) -> Path:
        return self.folder / f"{key}{self.suffix}"

    def get(self, key: str, read: Callable[[Path], Any]) -> Any:
        p = self.path(key)
        try:
            value = read(p)
        except Exception:  # noqa: BLE001 - missing, truncated or foreign: a miss, never an error
            return None
        with contextlib.suppress(OSError):
            os.utime(p)                      # most recently used: kept by the pruning
        return value

    def put(self, key: str, write: Callable[[Path], None]) -> None:
        tmp = self.folder / f".{key}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write(tmp)
            os.replace(tmp, self.path(key))
        except Exception:  # noqa: BLE001 - best effort: a cache that cannot be written costs a recomputation
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        self._prune()

    def get_or_compute(self, key: str, compute: Callable[[], Any], *, load: Callable[[Path], Any],
                       dump: Callable[[Any, Path], None], keep: Callable[[Any], bool] | None = None) -> Any:
        """The value kept under ``key`` (``load(path)``), else ``compute()``, then kept (``dump(value, path)``)
        unless ``keep(value)`` says no: e.g. a failed validation, or a value read while its source changed."""
        value = self.get(key, load)
        if value is None:
            value = compute()
            if keep is None or keep(value):
                self.put(key, lambda path: dump(value, path))
        return value

    def _prune(self) -> None:
        with contextlib.suppress(OSError):
            files = sorted(self.folder.glob(f"*{self.suffix}"), key=lambda f: f.stat().st_mtime, reverse=True)
            for f in files[self.keep:]:
                with contextlib.suppress(OSError):
                    f.unlink()
