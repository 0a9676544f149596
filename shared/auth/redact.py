"""What may leave the verifier: a token never does; its fingerprint and escaped, bounded fields do."""

from __future__ import annotations

import hashlib
from typing import Any

SHOW_LIMIT = 64


def digest(token: str) -> bytes:
    """SHA-256 of the token: the verified-token cache key and the source of its fingerprint."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def fingerprint(token_digest: bytes) -> str:
    """A short, stable, non-reversible name for a token in logs."""
    return "sha256:" + token_digest.hex()[:16]


def show(value: Any, limit: int = SHOW_LIMIT) -> str:
    """An attacker-controlled value made safe for a log line or an error message: repr-escaped
    (CR, LF, NUL, bidi controls become escapes) and cut to `limit` characters."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + f"...({len(value)} chars)"
    text = repr(value)
    return text if len(text) <= limit + 2 else text[:limit] + "...)"
