"""API keys: created by `csforecast apikey create`, checked on every /v1 request (header X-API-Key).

A key looks like ``csf_<id>_<secret>``. Only ``id``, ``scope``, a random per-key salt and
``HMAC-SHA256(salt, secret)`` are stored, in ``settings.apikeys_file`` (JSON, mode 0600, rewritten
atomically under a lock). The secret is shown once, at creation, and never stored, logged or echoed.
Verification compares digests in constant time and does the same work for unknown ids and malformed
keys, so timing does not tell which part was wrong.

Scopes: ``read`` (every /v1 read endpoint and on-demand scoring), ``write`` (reading, and recording CSM calls
with POST /v1/forecast/calls) and ``admin`` (everything, including /v1/admin/*). The file is re-read when it changes (mtime/size/inode), so keys created or revoked while
the server runs take effect without a restart.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger("csforecast.api")

SCOPES = ("read", "write", "admin")
PREFIX = "csf"
_DUMMY_SALT = secrets.token_bytes(16)
_DUMMY_HASH = hmac.new(_DUMMY_SALT, b"not-a-key", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who made a request: the key's id (safe to log) and its scope."""
    key_id: str
    scope: str

    def allows(self, scope: str) -> bool:
        """admin allows everything; write allows writing calls (and reading); read allows reading."""
        return self.scope == "admin" or self.scope == scope or (self.scope == "write" and scope == "read")


def _digest(salt_hex: str, secret: str) -> str:
    return hmac.new(bytes.fromhex(salt_hex), secret.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def _split(key: str) -> tuple[str, str] | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


class KeyStore:
    """The API-key file. Thread-safe; cheap to call `verify` per request (one stat + one HMAC)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._records: dict[str, dict] = {}

    # ----------------------------------------------------------------------------------------- reading
    def _read_file(self) -> list[dict]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        keys = data.get("keys", []) if isinstance(data, dict) else []
        return [k for k in keys if isinstance(k, dict) and {"id", "scope", "salt", "hash"} <= set(k)]

    def _current(self) -> dict[str, dict]:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            with self._lock:
                try:
                    records = {k["id"]: k for k in self._read_file()}
                except (OSError, ValueError) as e:  # unreadable / corrupt: no key is valid, say why once
                    log.error("cannot read API keys from %s: %s; every /v1 request will get 401", self.path, e)
                    records = {}
                self._records, self._stamp = records, stamp
        return self._records

    def records(self) -> dict[str, dict]:
        """id -> stored record (id, scope, salt, hash, …), re-read when the file changed (dashboard sessions
        sign over a key's stored hash, so a re-created or revoked key ends its sessions)."""
        return self._current()

    def verify(self, key: str | None) -> Principal | None:
        """The key's principal, or None for a missing, malformed, unknown, revoked or wrong key."""
        if not key:
            return None
        records = self._current()
        parsed = _split(key)
        rec = records.get(parsed[0]) if parsed else None
        if rec is None or rec.get("scope") not in SCOPES:
            hmac.compare_digest(_DUMMY_HASH, _digest(_DUMMY_SALT.hex(), parsed[1] if parsed else key))
            return None
        try:
            ok = hmac.compare_digest(str(rec["hash"]), _digest(str(rec["salt"]), parsed[1]))
        except ValueError:  # a salt that is not hex in a hand-edited file
            return None
        return Principal(rec["id"], rec["scope"]) if ok else None

    def list(self) -> list[dict]:
        """Stored records without salts and hashes."""
        return [{k: v for k, v in r.items() if k not in ("salt", "hash")} for r in self._read_file()]

    # ----------------------------------------------------------------------------------------- writing
    @contextlib.contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _write(self, keys: list[dict]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump({"version": 1, "keys": keys}, fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def create(self, scope: str, name: str | None = None) -> tuple[str, dict]:
        """A new key (the only time the secret exists outside the caller) and its public record."""
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}; got {scope!r}")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        rec = {"id": key_id, "scope": scope, "name": name, "salt": salt, "hash": _digest(salt, secret),
               "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        with self._locked():
            keys = self._read_file()
            keys.append(rec)
            self._write(keys)
        return f"{PREFIX}_{key_id}_{secret}", {k: v for k, v in rec.items() if k not in ("salt", "hash")}

    def revoke(self, key_id: str) -> bool:
        with self._locked():
            keys = self._read_file()
            kept = [k for k in keys if k["id"] != key_id]
            if len(kept) == len(keys):
                return False
            self._write(kept)
        return True
