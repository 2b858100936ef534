"""Opaque page cursors of GET /v1/accounts: the offset, bound to one score set and one query.

A cursor is URL-safe base64 of ``{"o": offset, "v": score set version, "q": query fingerprint}``; it is
not signed (it grants nothing: the key is checked on every page), only checked for shape.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any


def encode_cursor(offset: int, score_set: int, query: str) -> str:
    """The cursor of the page starting at ``offset`` of ``query`` (a `query_fingerprint`) in ``score_set``."""
    raw = json.dumps({"o": offset, "v": score_set, "q": query}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> dict:
    """{"o": offset, "v": score set version, "q": query fingerprint}; ValueError when malformed."""
    if len(token) > 200:
        raise ValueError("cursor is too long")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        d = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as e:
        raise ValueError("malformed cursor") from e
    if (not isinstance(d, dict) or not isinstance(d.get("o"), int) or isinstance(d.get("o"), bool)
            or not isinstance(d.get("v"), int) or not isinstance(d.get("q"), str) or not 0 <= d["o"] < 2 ** 31):
        raise ValueError("malformed cursor")
    return d


def query_fingerprint(*parts: Any) -> str:
    """A short stable hash of the filters and sort order a cursor belongs to."""
    return hashlib.sha256(json.dumps([str(p) if p is not None else None for p in parts]).encode()).hexdigest()[:12]

