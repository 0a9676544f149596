"""Strict parsing of a compact JWS, before any key is looked up: the cheap checks come first.

Size before decoding (8 KB), exactly three segments, canonical unpadded base64url, strict JSON objects,
and a header policy: the algorithm must be an asymmetric one we implement (the key decides later which
one it really is), and nothing in the header may point at a key (`jku`, `x5u`, `x5c`, `jwk`), change how
the payload is read (`crit`, `b64`, `zip`, nested `cty: JWT`) or mark an encrypted token.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import strict_json
from .redact import show
from .trace import Context, Refused

MAX_TOKEN_BYTES = 8192
MAX_KID_CHARS = 256
ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                        "ES256", "ES384", "ES512", "EdDSA"})
_KEY_POINTERS = ("jku", "x5u", "x5c", "jwk")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class ParsedToken:
    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    signing_input: bytes
    signature: bytes
    alg: str
    kid: str | None


def b64url_decode(segment: str) -> bytes:
    """Canonical base64url only: no padding, no `+/`, no whitespace, no stray trailing bits."""
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise ValueError("not base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != segment:
        raise ValueError("non-canonical base64url")
    return raw


def parse(token: str, context: Context | None = None) -> ParsedToken:
    """The token's parts, or `Refused` naming the first failed check (`size`, `format`, `header`).
    `context` learns the header's alg and kid and the payload's iss as soon as they are decoded."""
    if len(token) > MAX_TOKEN_BYTES:
        raise Refused("size", f"token is larger than {MAX_TOKEN_BYTES // 1024} KB")
    dots = token.count(".")
    if dots == 4:
        raise Refused("format", "encrypted tokens (JWE, 5 segments) are not accepted")
    if dots != 2:
        raise Refused("format", f"malformed token: {dots + 1} segments, a signed JWT has 3")
    head_b64, body_b64, sig_b64 = token.split(".")
    header = _json_object(head_b64, "header")
    if context is not None:
        context.alg, context.kid = header.get("alg"), header.get("kid")
    alg, kid = _header_policy(header)
    claims = _json_object(body_b64, "payload")
    if context is not None:
        context.iss = claims.get("iss")
    if not sig_b64:
        raise Refused("format", "token has no signature")
    try:
        signature = b64url_decode(sig_b64)
    except ValueError as exc:
        raise Refused("format", f"malformed token: signature is {exc}") from None
    return ParsedToken(header=header, claims=claims,
                       signing_input=f"{head_b64}.{body_b64}".encode("ascii"),
                       signature=signature, alg=alg, kid=kid)


def _json_object(segment: str, part: str) -> dict[str, Any]:
    check = "header" if part == "header" else "format"
    if not segment:
        raise Refused("format", f"malformed token: empty {part}")
    try:
        raw = b64url_decode(segment)
    except ValueError as exc:
        raise Refused("format", f"malformed token: {part} is {exc}") from None
    try:
        value = strict_json.loads(raw)
    except strict_json.StrictJSONError as exc:
        raise Refused(check, f"malformed token: {part} JSON {exc}") from None
    if not isinstance(value, dict):
        raise Refused(check, f"malformed token: {part} is not a JSON object")
    return value


def _header_policy(header: Mapping[str, Any]) -> tuple[str, str | None]:
    if "alg" not in header:
        raise Refused("header", "token header has no alg")
    alg = header["alg"]
    if not isinstance(alg, str):
        raise Refused("header", "token header alg is not a string")
    if alg.lower() == "none":
        raise Refused("header", "unsigned tokens (alg none) are not accepted")
    if alg.upper().startswith("HS"):
        raise Refused("header", f"symmetric algorithm {show(alg)} is not accepted: "
                                "keys come only from the provider's JWKS")
    if alg not in ALGORITHMS:
        raise Refused("header", f"algorithm {show(alg)} is not accepted")
    if "enc" in header:
        raise Refused("header", "encrypted tokens (JWE) are not accepted")
    for name in _KEY_POINTERS:
        if name in header:
            raise Refused("header", f"header parameter {name!r} is not accepted: keys come only from "
                                    "the provider's configured JWKS")
    if "crit" in header:
        raise Refused("header", "critical header extensions (crit) are not supported")
    if "b64" in header:
        raise Refused("header", "unencoded payloads (b64) are not accepted")
    if "zip" in header:
        raise Refused("header", "compressed payloads (zip) are not accepted")
    cty = header.get("cty")
    if cty is not None and (not isinstance(cty, str) or cty.upper() in ("JWT", "APPLICATION/JWT")):
        raise Refused("header", "nested tokens (cty JWT) are not accepted")
    if "nonce" in header:
        raise Refused("header", "the token header has a nonce: it is a Microsoft Graph access token, "
                                "which only Graph can verify; request a token for the gateway's own "
                                "audience (its App ID URI or client id)")
    typ = header.get("typ")
    if typ is not None and not isinstance(typ, str):
        raise Refused("header", "token header typ is not a string")
    kid = header.get("kid")
    if "kid" in header:
        if not isinstance(kid, str):
            raise Refused("header", "token header kid is not a string")
        if not kid:
            raise Refused("header", "token header kid is empty")
        if len(kid) > MAX_KID_CHARS:
            raise Refused("header", f"token header kid is longer than {MAX_KID_CHARS} characters")
        if not kid.isprintable():
            raise Refused("header", f"token header kid {show(kid)} contains control characters")
    return alg, kid
