"""Dashboard sessions: the same API keys as /v1, exchanged once at /ui/login for a signed cookie.

The cookie holds ``<key id>.<expiry>.<HMAC>``; the HMAC covers the key's id, scope, expiry and its stored
hash under a server secret kept in ``CSFORECAST_HOME/ui_session.key``, so the raw key is never stored,
logged or echoed, a revoked or re-created key ends its sessions at once, and sessions survive restarts and
work across workers.

CSRF: the login and logout forms carry a token that only this server can make. The login form's token is
an HMAC over a random nonce kept in a short-lived cookie of its own (``csforecast_csrf``; a form posted
from another site carries neither), the logout form's an HMAC over the session cookie. A session key that
cannot be created or read (read-only or full home) is a `StorageError` naming the file, and the login
page says so (503) instead of failing.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

from fastapi import HTTPException, Request

from csforecast.api.auth import Principal
from csforecast.errors import StorageError, storage_error

COOKIE = "csforecast_ui"
SESSION_SECONDS = 8 * 3600
SECRET_FILE = "ui_session.key"
CSRF_COOKIE = "csforecast_csrf"
CSRF_FIELD = "csrf"
CSRF_SECONDS = 3600

_secret_lock = threading.Lock()
_secrets: dict[str, bytes] = {}


def server_secret(home: Path) -> bytes:
    """32 random bytes in CSFORECAST_HOME/ui_session.key (mode 0600), created on first use.

    Raises StorageError (naming the file and the cause) when it cannot be created or read, or is too short.
    """
    path = Path(home) / SECRET_FILE
    key = str(path)
    with _secret_lock:
        if key in _secrets:
            return _secrets[key]
        try:
            data = _read_or_create(path)
        except OSError as e:
            raise (storage_error(e, path, "create") or StorageError(
                f"cannot create or read the dashboard's session key {path}: {e.strerror or e}")) from e
        if len(data) < 16:
            raise StorageError(f"{path} is too short to be a session secret; delete it to make a new one")
        _secrets[key] = data
        return data


def _read_or_create(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=SECRET_FILE + ".", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)          # atomic create-if-absent: a concurrent writer's secret wins
        except FileExistsError:
            pass
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return path.read_bytes()


def csrf_token(secret: bytes, purpose: str, binding: str) -> str:
    """The CSRF token of a form: HMAC of ``purpose`` ("login", "logout") and ``binding`` (the login nonce
    cookie, or the session cookie) under the server secret."""
    return hmac.new(secret, f"csrf|{purpose}|{binding}".encode(), hashlib.sha256).hexdigest()


def check_csrf(secret: bytes, purpose: str, binding: str | None, token: str | None) -> bool:
    """Whether ``token`` is the CSRF token of ``purpose`` for ``binding`` (constant time; False when either
    is missing or oversized)."""
    if not binding or not token or len(binding) > 200 or len(token) > 200:
        return False
    return hmac.compare_digest(token, csrf_token(secret, purpose, binding))


def new_csrf_nonce() -> str:
    """A fresh random value for the login form's CSRF cookie."""
    return secrets.token_urlsafe(24)


def key_records(keys) -> dict[str, dict]:
    """id -> stored record (id, scope, salt, hash) of the API key store (re-read when the file changes)."""
    return keys.records()


def _signature(secret: bytes, rec: dict, expires: int, sid: str) -> str:
    msg = f"{rec.get('id')}|{rec.get('scope')}|{expires}|{sid}|{rec.get('hash')}".encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def make_session(secret: bytes, rec: dict, now: float | None = None) -> str:
    """A session token for the key record ``rec``, valid SESSION_SECONDS from ``now``: ``id.expires.sid.sig``.
    ``sid`` is random, so two sign-ins with the same key in the same second are still two sessions (each with
    its own logout CSRF token)."""
    expires = int((now or time.time()) + SESSION_SECONDS)
    sid = secrets.token_hex(8)
    return f"{rec['id']}.{expires}.{sid}.{_signature(secret, rec, expires, sid)}"


def check_session(secret: bytes, records: dict[str, dict], token: str | None, now: float | None = None
                  ) -> Principal | None:
    """The principal of a valid, unexpired ``token`` whose key is still in ``records``, else None."""
    if not token or len(token) > 200:
        return None
    parts = token.split(".")
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    key_id, exp, sid, sig = parts[0], int(parts[1]), parts[2], parts[3]
    rec = records.get(key_id)
    if rec is None or exp < (now or time.time()):
        hmac.compare_digest(sig, "0" * 64)
        return None
    if not hmac.compare_digest(sig, _signature(secret, rec, exp, sid)):
        return None
    return Principal(str(rec["id"]), str(rec.get("scope")))


def safe_next(target: str | None) -> str:
    """Only a local /ui path (no scheme, host or protocol-relative //) may be a redirect target."""
    if (not target or not target.startswith("/ui") or target.startswith("//") or "\\" in target
            or any(ord(ch) < 32 for ch in target) or len(target) > 1000 or target.startswith("/ui/log")):
        return "/ui/"
    return target


def root_path(request: Request) -> str:
    """The path the app is mounted under (empty at the root)."""
    return request.scope.get("root_path", "") or ""


def principal(request: Request) -> Principal:
    """The logged-in key, or a 303 to the login form (with the page to come back to)."""
    s = request.app.state.settings
    token = request.cookies.get(COOKIE)
    try:
        p = check_session(server_secret(s.home), key_records(request.app.state.keys), token) if token else None
    except StorageError as e:
        raise HTTPException(503, detail=f"dashboard sessions are unavailable: {e}") from None
    if p is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        loc = f"{root_path(request)}/ui/login?next={quote(safe_next(target[len(root_path(request)):]), safe='/')}"
        raise HTTPException(303, detail="login required", headers={"Location": loc})
    return p
