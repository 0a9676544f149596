"""The signature check for the one algorithm a key is bound to.

Written against `cryptography` directly so that every parameter is visible: PKCS#1 v1.5 and PSS (salt
length = hash length, RFC 7518 3.5), ECDSA with the raw fixed-length r||s form only (DER, short, long,
zero or out-of-range values are refused before OpenSSL sees them), and EdDSA.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384,
                                                  "512": hashes.SHA512}

# alg -> (curve name, coordinate bytes, group order n); the orders are checked in tests against OpenSSL.
EC_CURVES: dict[str, tuple[str, int, int]] = {
    "ES256": ("secp256r1", 32, int("FFFFFFFF00000000FFFFFFFFFFFFFFFF"
                                   "BCE6FAADA7179E84F3B9CAC2FC632551", 16)),
    "ES384": ("secp384r1", 48, int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
                                   "C7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16)),
    "ES512": ("secp521r1", 66, int("01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA"
                                   "51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409", 16)),
}


def verify(alg: str, key: PublicKeyTypes, signing_input: bytes, signature: bytes) -> bool:
    """True only if `signature` is a valid `alg` signature of `signing_input` under `key`."""
    check = _CHECKS.get(alg[:2] if alg != "EdDSA" else alg)
    if check is None:
        return False
    try:
        return check(alg, key, signing_input, signature)
    except InvalidSignature:
        return False


def _rsa_pkcs1(alg: str, key: PublicKeyTypes, data: bytes, sig: bytes) -> bool:
    if not isinstance(key, rsa.RSAPublicKey) or len(sig) != (key.key_size + 7) // 8:
        return False
    key.verify(sig, data, padding.PKCS1v15(), _HASHES[alg[2:]]())
    return True


def _rsa_pss(alg: str, key: PublicKeyTypes, data: bytes, sig: bytes) -> bool:
    if not isinstance(key, rsa.RSAPublicKey) or len(sig) != (key.key_size + 7) // 8:
        return False
    digest = _HASHES[alg[2:]]()
    key.verify(sig, data, padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size), digest)
    return True


def _ecdsa(alg: str, key: PublicKeyTypes, data: bytes, sig: bytes) -> bool:
    curve, size, order = EC_CURVES[alg]
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != curve or len(sig) != 2 * size:
        return False
    r, s = int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big")
    if not (0 < r < order and 0 < s < order):
        return False
    key.verify(encode_dss_signature(r, s), data, ec.ECDSA(_HASHES[alg[2:]]()))
    return True


def _eddsa(alg: str, key: PublicKeyTypes, data: bytes, sig: bytes) -> bool:
    if isinstance(key, ed25519.Ed25519PublicKey) and len(sig) == 64:
        key.verify(sig, data)
        return True
    if isinstance(key, ed448.Ed448PublicKey) and len(sig) == 114:
        key.verify(sig, data)
        return True
    return False


_CHECKS: dict[str, Callable[[str, PublicKeyTypes, bytes, bytes], bool]] = {
    "RS": _rsa_pkcs1, "PS": _rsa_pss, "ES": _ecdsa, "EdDSA": _eddsa}
