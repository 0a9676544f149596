"""Keys derived from GATEWAY_SEALING_KEY: one secret, so every instance seals and opens alike.

A session id the caller sees is the upstream's id with a MAC over (server, principal, upstream id): any
instance can open it, and it opens for no other principal or server. OAuth state and stored per-user
tokens are encrypted (AES-GCM, bound to what they belong to). The identity-assertion signing key is
derived too, so every instance signs with the key the JWKS publishes. Without the setting a process
draws a random key of its own: fine for one local process, not for several instances.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

SESSION_PREFIX = "gs1."
MAX_UPSTREAM_SESSION_ID = 256
_MAC_BYTES = 16


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _fields(*parts: str) -> bytes:
    """Length-prefixed, so no two different tuples give the same bytes."""
    out = bytearray()
    for part in parts:
        raw = part.encode("utf-8")
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


class Sealer:
    def __init__(self, key: bytes | None) -> None:
        self.persistent = key is not None
        self._key = key if key is not None else os.urandom(32)

    def derive(self, purpose: str) -> bytes:
        """HKDF-SHA256 (RFC 5869, one block) of the sealing key for one purpose."""
        prk = hmac.new(b"ai-gateway sealing key", self._key, hashlib.sha256).digest()
        return hmac.new(prk, purpose.encode() + b"\x01", hashlib.sha256).digest()

    @cached_property
    def _session_key(self) -> bytes:
        return self.derive("mcp-session")

    def seal_session(self, server: str, principal: str, upstream_id: str) -> str:
        mac = hmac.new(self._session_key, _fields(server, principal, upstream_id), hashlib.sha256).digest()
        return f"{SESSION_PREFIX}{b64url(upstream_id.encode('utf-8'))}.{b64url(mac[:_MAC_BYTES])}"

    def open_session(self, server: str, principal: str, sealed: str) -> str | None:
        """The upstream session id, or None when `sealed` was not sealed for this server and principal."""
        if not sealed.startswith(SESSION_PREFIX) or len(sealed) > 2 * MAX_UPSTREAM_SESSION_ID:
            return None
        body, _, mac_text = sealed[len(SESSION_PREFIX):].partition(".")
        raw, mac = unb64url(body), unb64url(mac_text)
        if raw is None or mac is None:
            return None
        try:
            upstream_id = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        fields = _fields(server, principal, upstream_id)
        expected = hmac.new(self._session_key, fields, hashlib.sha256).digest()
        return upstream_id if hmac.compare_digest(mac, expected[:_MAC_BYTES]) else None

    def encrypt(self, purpose: str, plaintext: bytes, *, context: str) -> str:
        """AES-256-GCM under the purpose's key; `context` (what the data belongs to) is authenticated."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        sealed = AESGCM(self.derive(f"aead:{purpose}")).encrypt(nonce, plaintext, context.encode("utf-8"))
        return "v1." + b64url(nonce + sealed)

    def decrypt(self, purpose: str, token: str, *, context: str) -> bytes | None:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        raw = unb64url(token[3:]) if token.startswith("v1.") else None
        if raw is None or len(raw) < 12 + 16:
            return None
        try:
            return AESGCM(self.derive(f"aead:{purpose}")).decrypt(raw[:12], raw[12:], context.encode("utf-8"))
        except InvalidTag:
            return None

    @cached_property
    def signing_key(self) -> EllipticCurvePrivateKey:
        """The P-256 key identity assertions are signed with, the same on every instance."""
        from cryptography.hazmat.primitives.asymmetric import ec

        order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
        seed = int.from_bytes(self.derive("identity-assertion") + self.derive("identity-assertion/2"), "big")
        return ec.derive_private_key(seed % (order - 1) + 1, ec.SECP256R1())
