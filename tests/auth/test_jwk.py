"""JWK to key: the algorithm comes from the key; unusable keys are refused with a reason, and their
valid neighbours are kept."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sandbox.idp import public_jwk
from shared.auth.jwk import KeyRefused, KeySetError, load_jwk, parse_jwks
from tests.auth.craft import b64

RSA = rsa.generate_private_key(65537, 2048)
EC256 = ec.generate_private_key(ec.SECP256R1())


def okp_jwk(crv: str, public: Any) -> dict[str, Any]:
    return {"kty": "OKP", "crv": crv, "x": b64(public.public_bytes(Encoding.Raw, PublicFormat.Raw))}


def rsa_jwk(**changes: Any) -> dict[str, Any]:
    jwk = public_jwk(RSA, "RS256", "r")
    jwk.pop("alg")
    jwk.update(changes)
    return {k: v for k, v in jwk.items() if v is not None}


def ec_jwk(**changes: Any) -> dict[str, Any]:
    jwk = public_jwk(EC256, "ES256", "e")
    jwk.pop("alg")
    jwk.update(changes)
    return {k: v for k, v in jwk.items() if v is not None}


@pytest.mark.parametrize(("jwk", "alg"), [
    (rsa_jwk(), "RS256"), (rsa_jwk(alg="PS256"), "PS256"), (rsa_jwk(alg="RS512"), "RS512"),
    (ec_jwk(), "ES256"), (ec_jwk(alg="ES256"), "ES256"),
    (public_jwk(ec.generate_private_key(ec.SECP384R1()), "ES384", "x") | {"alg": None}, "ES384"),
    (public_jwk(ec.generate_private_key(ec.SECP521R1()), "ES512", "x"), "ES512"),
    (public_jwk(ed25519.Ed25519PrivateKey.generate(), "EdDSA", "x"), "EdDSA"),
    (okp_jwk("Ed448", ed448.Ed448PrivateKey.generate().public_key()), "EdDSA"),
    (rsa_jwk(key_ops=["verify"], use="sig"), "RS256"),
])
def test_algorithm_comes_from_the_key(jwk: dict[str, Any], alg: str) -> None:
    jwk = {k: v for k, v in jwk.items() if v is not None}
    assert load_jwk(jwk).alg == alg


@pytest.mark.parametrize(("jwk", "reason"), [
    ({"kty": "oct", "k": b64(b"secret")}, "symmetric (kty oct) keys are refused"),
    (rsa_jwk(use="enc"), "use is 'enc', not sig"),
    (rsa_jwk(key_ops=["encrypt"]), "key_ops does not include verify"),
    (rsa_jwk(alg="HS256"), "alg 'HS256' is not an accepted signature algorithm"),
    (rsa_jwk(alg="none"), "alg 'none' is not an accepted"),
    (rsa_jwk(alg="ES256"), "alg ES256 does not fit an RSA key"),
    (ec_jwk(alg="ES384"), "alg ES384 does not fit curve P-256 (only ES256)"),
    (ec_jwk(alg="RS256"), "alg RS256 does not fit curve P-256"),
    (ec_jwk(crv="secp256k1"), "curve 'secp256k1' is not supported"),
    (ec_jwk(x=b64(b"\x01" * 31)), "coordinates of a P-256 key must be 32 bytes"),
    (ec_jwk(y=b64(b"\x01" * 32)), "the point is not on curve P-256"),
    (okp_jwk("X25519", x25519.X25519PrivateKey.generate().public_key()),
     "curve 'X25519' is not a signature curve"),
    ({"kty": "OKP", "crv": "Ed25519", "x": b64(b"\x00" * 31)}, "an Ed25519 key must be 32 bytes"),
    (public_jwk(rsa.generate_private_key(65537, 1024), "RS256"), "RSA key of 1024 bits is too short"),
    (rsa_jwk(n=b64((2**9000 + 1).to_bytes(1126, "big"))), "RSA key of 9001 bits is too long"),
    (rsa_jwk(e=b64(b"\x02")), "RSA public exponent is invalid"),
    (rsa_jwk(e=b64(b"\x01")), "RSA public exponent is invalid"),
    (rsa_jwk(n="not base64!"), "member 'n' is missing or not base64url"),
    (rsa_jwk(n=None), "member 'n' is missing"),
    (rsa_jwk(d=b64(b"\x01" * 256)), "publishes private key material"),
    (rsa_jwk(kid=7), "kid is not a non-empty string"),
    (rsa_jwk(kid=""), "kid is not a non-empty string"),
    ({"kty": "RSA-PSS"}, "key type 'RSA-PSS' is not supported"),
    ({}, "key type None is not supported"),
    ("a string", "not a JSON object"),
])
def test_refused_keys(jwk: Any, reason: str) -> None:
    with pytest.raises(KeyRefused) as info:
        load_jwk(jwk)
    assert reason in str(info.value)


def test_rfc7638_thumbprint() -> None:
    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJEC"
         "PebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
         "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4l"
         "Fd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
    key = load_jwk({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"})
    assert key.thumbprint == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def doc(*keys: Any) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


def test_neighbours_of_refused_keys_are_kept() -> None:
    good = rsa_jwk(kid="good")
    keyset, dropped = parse_jwks(doc({"kty": "oct", "kid": "h", "k": "c2VjcmV0"}, good,
                                     ec_jwk(kid="bad", y=b64(b"\x01" * 32)), rsa_jwk(kid="enc", use="enc")))
    assert keyset.kids() == ["good"]
    assert set(keyset.refused) == {"h", "bad", "enc"}
    assert [kid for kid, _ in dropped] == ["h", "bad", "enc"]


def test_one_kid_for_two_different_keys_is_refused_but_duplicates_and_enc_twins_are_fine() -> None:
    other = public_jwk(rsa.generate_private_key(65537, 2048), "RS256", "same")
    keyset, _ = parse_jwks(doc(rsa_jwk(kid="same"), other, rsa_jwk(kid="twice"), rsa_jwk(kid="twice"),
                               rsa_jwk(kid="pair", use="enc"), ec_jwk(kid="pair")))
    assert keyset.kids() == ["pair", "twice"]
    assert keyset.refused["same"] == "key id is published for two different keys"
    assert keyset.by_kid["pair"].alg == "ES256"


def test_a_key_without_kid_serves_only_tokens_without_kid() -> None:
    keyset, _ = parse_jwks(doc(rsa_jwk(kid=None)))
    assert keyset.kids() == [] and keyset.sole() is not None


@pytest.mark.parametrize(("raw", "reason"), [
    (b"<html>", "JWKS is not valid JSON"),
    (b'{"keys": [], "keys": []}', "JWKS is not valid JSON (duplicate member 'keys')"),
    (b"[]", "JWKS has no 'keys' list"),
    (b'{"keys": {}}', "JWKS has no 'keys' list"),
    (b'{"keys": []}', "JWKS has no keys"),
    (doc(*[{"kty": "oct"}] * 101), "JWKS has 101 keys, more than 100"),
    (doc({"kty": "oct", "kid": "a"}, {"kty": "EC"}),
     "JWKS has no usable signing keys (2 refused: 'a': symmetric"),
])
def test_unusable_documents(raw: bytes, reason: str) -> None:
    with pytest.raises(KeySetError) as info:
        parse_jwks(raw)
    assert reason in str(info.value)
