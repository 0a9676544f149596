"""A JWK becomes a public key bound to exactly one algorithm; a JWKS becomes a key set.

The key, not the token, decides the algorithm: its `alg` when published (and consistent with its type),
else the only one its type allows (RSA -> RS256, P-256 -> ES256, P-384 -> ES384, P-521 -> ES512,
Ed25519/Ed448 -> EdDSA). Refused, each with a reason and without harming its neighbours: symmetric
(`oct`) keys, encryption keys (`use: enc`, `key_ops` without verify, X25519), RSA under 2048 bits, points
off their curve, and any key published with its private part.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from .. import strict_json
from .jws import ALGORITHMS, MAX_KID_CHARS
from .redact import show

MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
MAX_KEYS = 100
_CURVES: dict[str, tuple[ec.EllipticCurve, int, str]] = {
    "P-256": (ec.SECP256R1(), 32, "ES256"), "P-384": (ec.SECP384R1(), 48, "ES384"),
    "P-521": (ec.SECP521R1(), 66, "ES512")}
_OKP: dict[str, int] = {"Ed25519": 32, "Ed448": 57}
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_B64 = re.compile(r"[A-Za-z0-9_-]+={0,2}")


class KeyRefused(ValueError):
    """This JWK cannot be used; the message says why."""


class KeySetError(ValueError):
    """The JWKS as a whole is unusable (not JSON, no keys, only refused keys)."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    kid: str | None
    alg: str
    kty: str
    key: PublicKeyTypes = field(repr=False, compare=False)
    thumbprint: str          # RFC 7638, base64url SHA-256: identifies the key material


@dataclass(frozen=True, slots=True)
class KeySet:
    by_kid: Mapping[str, PublicKey]
    unnamed: tuple[PublicKey, ...] = ()
    refused: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # kid -> reason

    def __len__(self) -> int:
        return len(self.by_kid) + len(self.unnamed)

    def sole(self) -> PublicKey | None:
        """The only key of the set, for a token without `kid`; None when there are several."""
        keys = [*self.by_kid.values(), *self.unnamed]
        return keys[0] if len(keys) == 1 else None

    def kids(self) -> list[str]:
        return sorted(self.by_kid)


def _b64_int(jwk: Mapping[str, Any], name: str) -> int:
    return int.from_bytes(_b64_bytes(jwk, name), "big")


def _b64_bytes(jwk: Mapping[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str) or not _B64.fullmatch(value):
        raise KeyRefused(f"member {name!r} is missing or not base64url")
    stripped = value.rstrip("=")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except ValueError:
        raise KeyRefused(f"member {name!r} is not base64url") from None


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _thumbprint(members: dict[str, str]) -> str:
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode("ascii")
    return _b64e(hashlib.sha256(canonical).digest())


def load_jwk(jwk: Any) -> PublicKey:
    """One JWK as a verification key, or `KeyRefused`."""
    if not isinstance(jwk, Mapping):
        raise KeyRefused("not a JSON object")
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > MAX_KID_CHARS):
        raise KeyRefused("kid is not a non-empty string of at most 256 characters")
    kty = jwk.get("kty")
    if kty == "oct":
        raise KeyRefused("symmetric (kty oct) keys are refused in a remote JWKS")
    if any(member in jwk for member in _PRIVATE_MEMBERS):
        raise KeyRefused("the JWKS publishes private key material for this key: it is compromised")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise KeyRefused(f"use is {show(use)}, not sig: not a signing key")
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise KeyRefused("key_ops does not include verify")
    alg = jwk.get("alg")
    if alg is not None and (not isinstance(alg, str) or alg not in ALGORITHMS):
        raise KeyRefused(f"alg {show(alg)} is not an accepted signature algorithm")
    if kty == "RSA":
        return _rsa(jwk, kid, alg)
    if kty == "EC":
        return _ec(jwk, kid, alg)
    if kty == "OKP":
        return _okp(jwk, kid, alg)
    raise KeyRefused(f"key type {show(kty)} is not supported")


def _rsa(jwk: Mapping[str, Any], kid: str | None, alg: str | None) -> PublicKey:
    alg = alg or "RS256"
    if alg[:2] not in ("RS", "PS"):
        raise KeyRefused(f"alg {alg} does not fit an RSA key")
    n, e = _b64_int(jwk, "n"), _b64_int(jwk, "e")
    if n.bit_length() < MIN_RSA_BITS:
        raise KeyRefused(f"RSA key of {n.bit_length()} bits is too short (at least {MIN_RSA_BITS})")
    if n.bit_length() > MAX_RSA_BITS:
        raise KeyRefused(f"RSA key of {n.bit_length()} bits is too long (at most {MAX_RSA_BITS})")
    if e < 3 or e % 2 == 0 or e.bit_length() > 32:
        raise KeyRefused("RSA public exponent is invalid")
    try:
        key = rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as exc:
        raise KeyRefused(f"invalid RSA key: {exc}") from None
    members = {"e": _b64e(e.to_bytes((e.bit_length() + 7) // 8, "big")), "kty": "RSA",
               "n": _b64e(n.to_bytes((n.bit_length() + 7) // 8, "big"))}
    return PublicKey(kid=kid, alg=alg, kty="RSA", key=key, thumbprint=_thumbprint(members))


def _ec(jwk: Mapping[str, Any], kid: str | None, alg: str | None) -> PublicKey:
    crv = jwk.get("crv")
    if not isinstance(crv, str) or crv not in _CURVES:
        raise KeyRefused(f"curve {show(crv)} is not supported")
    curve, size, curve_alg = _CURVES[crv]
    if alg is not None and alg != curve_alg:
        raise KeyRefused(f"alg {alg} does not fit curve {crv} (only {curve_alg})")
    x, y = _b64_bytes(jwk, "x"), _b64_bytes(jwk, "y")
    if len(x) != size or len(y) != size:
        raise KeyRefused(f"coordinates of a {crv} key must be {size} bytes")
    try:
        key = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                            curve).public_key()
    except ValueError:
        raise KeyRefused(f"the point is not on curve {crv}") from None
    members = {"crv": crv, "kty": "EC", "x": _b64e(x), "y": _b64e(y)}
    return PublicKey(kid=kid, alg=curve_alg, kty="EC", key=key, thumbprint=_thumbprint(members))


def _okp(jwk: Mapping[str, Any], kid: str | None, alg: str | None) -> PublicKey:
    crv = jwk.get("crv")
    if not isinstance(crv, str) or crv not in _OKP:
        raise KeyRefused(f"curve {show(crv)} is not a signature curve")
    if alg is not None and alg != "EdDSA":
        raise KeyRefused(f"alg {alg} does not fit an {crv} key (only EdDSA)")
    x = _b64_bytes(jwk, "x")
    if len(x) != _OKP[crv]:
        raise KeyRefused(f"an {crv} key must be {_OKP[crv]} bytes")
    try:
        key: PublicKeyTypes = (ed25519.Ed25519PublicKey.from_public_bytes(x) if crv == "Ed25519"
                               else ed448.Ed448PublicKey.from_public_bytes(x))
    except ValueError:
        raise KeyRefused(f"invalid {crv} key") from None
    members = {"crv": crv, "kty": "OKP", "x": _b64e(x)}
    return PublicKey(kid=kid, alg="EdDSA", kty="OKP", key=key, thumbprint=_thumbprint(members))


def parse_jwks(raw: bytes) -> tuple[KeySet, list[tuple[str | None, str]]]:
    """The usable keys of a JWKS document and, for logging, every refused key with its reason.

    Raises `KeySetError` when nothing usable remains, so a garbage answer never replaces good keys.
    """
    try:
        doc = strict_json.loads(raw)
    except strict_json.StrictJSONError as exc:
        raise KeySetError(f"JWKS is not valid JSON ({exc})") from None
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list):
        raise KeySetError("JWKS has no 'keys' list")
    if not keys:
        raise KeySetError("JWKS has no keys")
    if len(keys) > MAX_KEYS:
        raise KeySetError(f"JWKS has {len(keys)} keys, more than {MAX_KEYS}")
    candidates: dict[str, list[PublicKey]] = {}
    unnamed: list[PublicKey] = []
    refused: dict[str, str] = {}
    dropped: list[tuple[str | None, str]] = []
    for item in keys:
        kid = item.get("kid") if isinstance(item, Mapping) else None
        kid = kid if isinstance(kid, str) else None
        try:
            key = load_jwk(item)
        except KeyRefused as exc:
            dropped.append((kid, str(exc)))
            if kid is not None:
                refused.setdefault(kid, str(exc))
            continue
        if key.kid is None:
            unnamed.append(key)
        else:
            candidates.setdefault(key.kid, []).append(key)
    by_kid: dict[str, PublicKey] = {}
    for kid, found in candidates.items():
        if len({(k.thumbprint, k.alg) for k in found}) == 1:
            by_kid[kid] = found[0]               # listed once, or the same key listed twice
            refused.pop(kid, None)               # a refused neighbour (say use: enc) does not matter
        else:
            refused[kid] = "key id is published for two different keys"
            dropped.append((kid, refused[kid]))
    if not by_kid and not unnamed:
        reasons = "; ".join(f"{show(k)}: {r}" for k, r in dropped[:5])
        raise KeySetError(f"JWKS has no usable signing keys ({len(dropped)} refused: {reasons})")
    return (KeySet(by_kid=MappingProxyType(by_kid), unnamed=tuple(unnamed),
                   refused=MappingProxyType(refused)), dropped)
