"""Hand-built tokens for the hostile corpus: any header and payload bytes, any signature bytes.

Signatures come from PyJWT's algorithm objects (an implementation independent of the gateway's), or
are given raw.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from jwt.algorithms import get_default_algorithms

from shared.auth.fetch import Fetcher

_ALGORITHMS = get_default_algorithms()


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def js(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def sign(alg: str, key: Any, data: bytes) -> bytes:
    if alg.startswith("HS"):
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        return hmac.new(key, data, digest).digest()
    return bytes(_ALGORITHMS[alg].sign(data, key))


def jws(header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes, *, key: Any = None,
        alg: str | None = None, signature: bytes | None = None) -> str:
    """A compact JWS of exactly these header and payload bytes, signed with `key` under `alg` (default:
    the header's alg) unless a raw `signature` is given."""
    head = header if isinstance(header, bytes) else js(header)
    body = payload if isinstance(payload, bytes) else js(payload)
    signing_input = f"{b64(head)}.{b64(body)}"
    if signature is None:
        chosen = alg or (header["alg"] if isinstance(header, dict) else None)
        assert chosen is not None and key is not None
        signature = sign(chosen, key, signing_input.encode())
    return f"{signing_input}.{b64(signature)}"


def split(token: str) -> tuple[str, str, str]:
    head, body, sig = token.split(".")
    return head, body, sig


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class RecordingFetcher:
    """Wraps the real fetcher and records every URL the gateway asked for."""

    def __init__(self, inner: Fetcher) -> None:
        self.inner = inner
        self.urls: list[str] = []

    async def get(self, url: str, *, allow_private_network: bool) -> bytes:
        self.urls.append(url)
        return await self.inner.get(url, allow_private_network=allow_private_network)

    async def aclose(self) -> None:
        await self.inner.aclose()
