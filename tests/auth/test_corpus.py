"""The hostile-token corpus (the token rules of docs/security.md), one parametrized case each, with
real keys and real tokens.

Every token goes through `Authenticator.authenticate` against a development identity provider on a
loopback socket. A refusal must carry the expected words in its reason (the `error_description`);
an acceptance must yield the expected user. Cases marked with `fetches` also count the JWKS GETs.
Extraction cases (Authorization header, query string) live in test_extract.py; JWKS fetch faults in
test_jwks_faults.py; provider selection in test_providers.py.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from sandbox.idp import DevIdentityProvider, public_jwk
from shared.auth.authenticator import Authenticator
from shared.auth.fetch import HttpFetcher
from shared.auth.signature import EC_CURVES
from shared.config.model import Config
from shared.errors import InvalidToken
from tests.auth.conftest import AUDIENCE, Clock, config, provider
from tests.auth.craft import RecordingFetcher, b64, js, jws, split, unb64

LEEWAY = 60
DROP = object()     # a claim or header member to leave out
DEFAULT = object()  # the default key's kid
ENTRA_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ENTRA_V1 = f"https://sts.windows.net/{ENTRA_TENANT}/"
ENTRA_V2 = f"https://login.microsoftonline.com/{ENTRA_TENANT}/v2.0"


@pytest.fixture(scope="session")
def pool() -> dict[str, Any]:
    """Private keys generated once for the whole corpus."""
    return {
        "ps256": rsa.generate_private_key(65537, 2048),
        "rsa3072": rsa.generate_private_key(65537, 3072),
        "es256": ec.generate_private_key(ec.SECP256R1()),
        "es384": ec.generate_private_key(ec.SECP384R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "rsa1024": rsa.generate_private_key(65537, 1024),
        "enc": rsa.generate_private_key(65537, 2048),
        "attacker_rsa": rsa.generate_private_key(65537, 2048),
        "attacker_ec": ec.generate_private_key(ec.SECP256R1()),
        "other_shared": rsa.generate_private_key(65537, 2048),
    }


class Corpus:
    """One case's world: the provider `dev` (an RSA-2048 default key plus PS256, RSA-3072, ES256,
    ES384 and Ed25519 keys), an Authenticator recording its fetches, and builders for tokens."""

    def __init__(self, idp: DevIdentityProvider, start_idp: Callable[..., DevIdentityProvider],
                 pool: dict[str, Any], clock: Clock, make_auth: Callable[..., Authenticator]) -> None:
        self.idp = idp
        self.start_idp = start_idp
        self.pool = pool
        self.clock = clock
        for name, alg in (("ps256", "PS256"), ("rsa3072", "RS256"), ("es256", "ES256"), ("es384", "ES384"),
                          ("ed25519", "EdDSA")):
            idp.add_private_key(pool[name], alg, name)
        self.fetcher = RecordingFetcher(HttpFetcher(allow_http_loopback=True))
        self.auth = make_auth(fetcher=self.fetcher, leeway_seconds=LEEWAY)
        self._other: DevIdentityProvider | None = None

    @property
    def now(self) -> int:
        return int(self.clock.wall())

    @property
    def kid(self) -> str:
        return self.idp.default_kid

    def other(self) -> DevIdentityProvider:
        """A second provider on its own socket, with only its default key."""
        if self._other is None:
            self._other = self.start_idp()
        return self._other

    def config(self, **fields: Any) -> Config:
        return config(provider(self.idp, **fields))

    def claims(self, **changes: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {"iss": self.idp.issuer, "sub": "alice", "aud": AUDIENCE,
                                  "iat": self.now, "exp": self.now + 600}
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not DROP}

    def header(self, kid: Any = DEFAULT, alg: str = "RS256", **changes: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"alg": alg, "typ": "JWT", "kid": self.kid if kid is DEFAULT else kid}
        header.update(changes)
        return {k: v for k, v in header.items() if v is not DROP}

    def token(self, *, header: dict[str, Any] | bytes | None = None,
              claims: dict[str, Any] | bytes | None = None, key: Any = None, alg: str | None = None,
              signature: bytes | None = None) -> str:
        """Signed with the default RSA key unless told otherwise."""
        head = self.header() if header is None else header
        body = self.claims() if claims is None else claims
        if signature is None and key is None:
            key = self.idp.key().private_key
        return jws(head, body, key=key, alg=alg, signature=signature)

    def signed_by(self, name: str, alg: str, **claims: Any) -> str:
        return self.token(header=self.header(kid=name, alg=alg), claims=self.claims(**claims),
                          key=self.pool[name])


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Corpus], str]
    expect: str | None                                 # words of the refusal reason; None: accepted
    setup: Callable[[Corpus], Config] | None = None    # the configuration, when not the default
    fetches: int | None = None                         # JWKS GETs expected, when it matters
    user: str = "user:dev/alice"                       # the accepted principal


def _ok(id: str, build: Callable[[Corpus], str], **kw: Any) -> Case:
    return Case(id, build, None, **kw)


# -- builders that need more than one line ----------------------------------------------------------

def _hs256_with_public_key(form: str) -> Callable[[Corpus], str]:
    def build(c: Corpus) -> str:
        public = c.idp.key().private_key.public_key()  # type: ignore[union-attr]
        if form == "pem":
            secret = public.public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
        elif form == "pkcs1":
            secret = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        else:
            secret = json.dumps(c.idp.key().jwk).encode()
        return c.token(header=c.header(alg="HS256"), key=secret)
    return build


def _ecdsa_raw(make: Callable[[Corpus, int, bytes], bytes]) -> Callable[[Corpus], str]:
    """An ES256 token (kid es256) whose signature bytes are replaced by `make(corpus, n, good_sig)`."""
    def build(c: Corpus) -> str:
        good = c.signed_by("es256", "ES256")
        head, body, sig = split(good)
        raw = make(c, EC_CURVES["ES256"][2], unb64(sig))
        return f"{head}.{body}.{b64(raw)}"
    return build


def _der_signature(c: Corpus, n: int, good: bytes) -> bytes:
    head_body = ".".join(split(c.signed_by("es256", "ES256"))[:2]).encode()
    return c.pool["es256"].sign(head_body, ec.ECDSA(hashes.SHA256()))  # DER, as OpenSSL makes it


def _der_consistent(c: Corpus) -> str:
    """DER over the token's own signing input (so only the encoding is wrong)."""
    header, claims = c.header(kid="es256", alg="ES256"), c.claims()
    signing_input = f"{b64(js(header))}.{b64(js(claims))}".encode()
    der = c.pool["es256"].sign(signing_input, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    assert r and s
    return jws(header, claims, signature=der)


def _self_signed_x5c(c: Corpus) -> str:
    key = c.pool["attacker_rsa"]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    x5c = [b64(cert.public_bytes(serialization.Encoding.DER)).replace("-", "+").replace("_", "/")]
    return c.token(header=c.header(kid="attacker", x5c=x5c), key=key)


def _shared_kid(c: Corpus) -> str:
    """Providers a (dev) and b (other) both publish kid 'shared', with different keys; the token
    claims iss=a but is signed with b's key."""
    c.idp.add_private_key(c.pool["rsa3072"], "RS256", "shared")
    c.other().add_private_key(c.pool["other_shared"], "RS256", "shared")
    return c.token(header=c.header(kid="shared"), key=c.pool["other_shared"])


def _two_providers(c: Corpus) -> Config:
    return config(provider(c.idp, "dev"), provider(c.other(), "other"))


def _with_extra_jwk(jwk: dict[str, Any], kid: str, key_name: str, alg: str) -> Callable[[Corpus], str]:
    def build(c: Corpus) -> str:
        c.idp.extra_jwks.append(jwk if jwk else public_jwk(c.pool[key_name], alg, kid))
        return c.token(header=c.header(kid=kid, alg=alg), key=c.pool[key_name])
    return build


def _enc_key(c: Corpus) -> str:
    jwk = {**public_jwk(c.pool["enc"], "RS256", "enc-1"), "use": "enc"}
    jwk.pop("alg")
    c.idp.extra_jwks.append(jwk)
    return c.token(header=c.header(kid="enc-1"), key=c.pool["enc"])


def _oct_key(alg: str) -> Callable[[Corpus], str]:
    def build(c: Corpus) -> str:
        c.idp.extra_jwks.append({"kty": "oct", "kid": "hmac", "k": b64(b"shared-secret"), "alg": "HS256"})
        key = b"shared-secret" if alg == "HS256" else c.idp.key().private_key
        return c.token(header=c.header(kid="hmac", alg=alg), key=key)
    return build


def _off_curve(c: Corpus, use_bad: bool) -> str:
    good = public_jwk(c.pool["attacker_ec"], "ES256", "off-curve")
    y = bytearray(unb64(good["y"]))
    y[-1] ^= 1
    c.idp.extra_jwks.append({**good, "y": b64(bytes(y))})
    if use_bad:
        return c.token(header=c.header(kid="off-curve", alg="ES256"), key=c.pool["attacker_ec"])
    return c.signed_by("es256", "ES256")


def _leaked_private(c: Corpus) -> str:
    jwk = {**public_jwk(c.pool["attacker_rsa"], "RS256", "leaked"), "d": b64(b"\x01" * 256)}
    c.idp.extra_jwks.append(jwk)
    return c.token(header=c.header(kid="leaked"), key=c.pool["attacker_rsa"])


def _tampered(c: Corpus) -> str:
    head, _, sig = split(c.token())
    return f"{head}.{b64(js(c.claims(sub='mallory')))}.{sig}"


def _truncated(c: Corpus) -> str:
    head, body, sig = split(c.token())
    return f"{head}.{body}.{b64(unb64(sig)[:-1])}"


def _bitflip(c: Corpus) -> str:
    head, body, sig = split(c.token())
    raw = bytearray(unb64(sig))
    raw[10] ^= 0x01
    return f"{head}.{body}.{b64(bytes(raw))}"


def _noncanonical_b64(c: Corpus) -> str:
    """Changes the unused low bits of the last base64url character of the header: same bytes, another
    string (the class of bug PyJWT 2.14 fixed)."""
    head, body, sig = split(c.token())
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    unused = {2: 0b1111, 3: 0b11}[len(head) % 4]
    last = alphabet.index(head[-1])
    assert last & unused == 0, "canonical input"
    return f"{head[:-1]}{alphabet[last | 1]}.{body}.{sig}"


def _with_segment(where: int, transform: Callable[[str], str]) -> Callable[[Corpus], str]:
    def build(c: Corpus) -> str:
        parts = list(split(c.token()))
        parts[where] = transform(parts[where])
        return ".".join(parts)
    return build


def _raw_payload(payload: bytes) -> Callable[[Corpus], str]:
    return lambda c: c.token(claims=payload)


def _raw_header(header: Callable[[Corpus], bytes]) -> Callable[[Corpus], str]:
    return lambda c: c.token(header=header(c), alg="RS256")


def _nested(c: Corpus) -> str:
    inner = c.token()
    return c.token(header=c.header(cty="JWT"), claims=inner.encode())


def _jku(url: str) -> Callable[[Corpus], str]:
    def build(c: Corpus) -> str:
        attacker = c.other()
        attacker.add_private_key(c.pool["attacker_rsa"], "RS256", "attacker")
        target = url.replace("{attacker}", attacker.jwks_uri)
        return c.token(header=c.header(kid="attacker", jku=target), key=c.pool["attacker_rsa"])
    return build


def _x5u(c: Corpus) -> str:
    attacker = c.other()
    return c.token(header=c.header(kid="attacker", x5u=attacker.issuer + "/cert.pem"),
                   key=c.pool["attacker_rsa"])


def _embedded_jwk(c: Corpus) -> str:
    jwk = public_jwk(c.pool["attacker_rsa"], "RS256", "attacker")
    return c.token(header=c.header(kid="attacker", jwk=jwk), key=c.pool["attacker_rsa"])


def _entra(token_issuer: str, configured: str) -> tuple[Callable[[Corpus], str], Callable[[Corpus], Config]]:
    return (lambda c: c.token(claims=c.claims(iss=token_issuer)),
            lambda c: c.config(issuer=configured))


def _deep(levels: int) -> Callable[[Corpus], str]:
    def build(c: Corpus) -> str:
        body = js(c.claims())[:-1] + b',"x":' + b"[" * levels + b"]" * levels + b"}"
        return c.token(claims=body)
    return build


_V1_BUILD, _V1_CONFIG = _entra(ENTRA_V1, ENTRA_V2)
_V2_BUILD, _V2_CONFIG = _entra(ENTRA_V2, ENTRA_V1)
_V2_OK_BUILD, _V2_OK_CONFIG = _entra(ENTRA_V2, ENTRA_V2)


def _cases() -> Iterator[Case]:
    # -- algorithm: from the key, never from the token ----------------------------------------------
    for alg in ("none", "None", "NONE", "nOnE"):
        yield Case(f"alg-{alg}-empty-signature", lambda c, a=alg: c.token(header=c.header(alg=a),
                                                                         signature=b""),
                   "unsigned tokens (alg none)")
        yield Case(f"alg-{alg}-with-signature", lambda c, a=alg: c.token(header=c.header(alg=a),
                                                                        signature=b"sig"),
                   "unsigned tokens (alg none)")
    yield Case("alg-missing", lambda c: c.token(header=c.header(alg=DROP), alg="RS256"), "has no alg")
    for value in (256, None, ["RS256"], {"alg": "RS256"}, True):
        yield Case(f"alg-non-string-{type(value).__name__}",
                   lambda c, v=value: c.token(header=c.header(alg=v), alg="RS256"), "alg is not a string")
    for value in ("RS1", "ES256K", "RSA-OAEP", "rs256", "EdDSA ", "PS256\x00"):
        yield Case(f"alg-unknown-{value!r}", lambda c, v=value: c.token(header=c.header(alg=v), alg="RS256"),
                   "is not accepted")
    for form in ("pem", "pkcs1", "jwk"):
        yield Case(f"hs256-with-rsa-public-key-as-{form}", _hs256_with_public_key(form),
                   "symmetric algorithm 'HS256' is not accepted", fetches=0)
    yield Case("es256-header-on-rsa-key",
               lambda c: c.token(header=c.header(alg="ES256"), key=c.pool["es256"]),
               "token alg 'ES256' does not match key")
    yield Case("ps256-header-on-rs256-key",
               lambda c: c.token(header=c.header(alg="PS256"), key=c.idp.key().private_key),
               "token alg 'PS256' does not match key", )
    yield Case("rs256-header-on-ps256-key",
               lambda c: c.token(header=c.header(kid="ps256", alg="RS256"), key=c.pool["ps256"]),
               "which is PS256 only")
    yield Case("eddsa-header-on-es256-key",
               lambda c: c.token(header=c.header(kid="es256", alg="EdDSA"), key=c.pool["ed25519"]),
               "which is ES256 only")
    yield Case("es384-header-on-es256-key",
               lambda c: c.token(header=c.header(kid="es256", alg="ES384"), key=c.pool["es384"]),
               "which is ES256 only")
    yield Case("symmetric-key-in-jwks-hs256", _oct_key("HS256"), "symmetric algorithm")
    yield Case("symmetric-key-in-jwks-rs256-header", _oct_key("RS256"),
               "key 'hmac' of identity provider 'dev' is not usable: symmetric (kty oct) keys are refused")

    # -- key ids --------------------------------------------------------------------------------
    yield Case("kid-missing-several-keys", lambda c: c.token(header=c.header(kid=DROP)),
               "token has no kid and identity provider 'dev' has 6 keys", fetches=1)
    yield _ok("kid-absent-single-key-accepted",
              lambda c: jws({"alg": "RS256", "typ": "JWT"}, c.claims(iss=c.other().issuer),
                            key=c.other().key().private_key),
              setup=lambda c: config(provider(c.other(), "other")), user="user:other/alice")
    for value in (7, None, ["k"], {"k": 1}, False):
        yield Case(f"kid-non-string-{type(value).__name__}",
                   lambda c, v=value: c.token(header=c.header(kid=v)), "kid is not a string")
    yield Case("kid-empty", lambda c: c.token(header=c.header(kid="")), "kid is empty")
    for name, kid in (("path-traversal", "../../../../etc/passwd"), ("sql", "x' OR '1'='1' --"),
                      ("shell", "$(curl http://169.254.169.254/)`id`"), ("url", "http://127.0.0.1/keys"),
                      ("unicode-bidi", "abc\u202edcba")):
        expect = "contains control characters" if name == "unicode-bidi" else "unknown key id"
        yield Case(f"kid-{name}", lambda c, k=kid: c.token(header=c.header(kid=k)), expect)
    yield Case("kid-10kb", lambda c: c.token(header=c.header(kid="k" * 5000)), "longer than 256 characters")
    yield Case("kid-crlf-nul", lambda c: c.token(header=c.header(kid="a\r\nb\x00c")),
               "contains control characters")
    yield Case("same-kid-two-providers-iss-a-signed-by-b", _shared_kid,
               "signature does not verify with key 'shared' of identity provider 'dev'", setup=_two_providers)
    yield Case("key-use-enc", _enc_key, "key 'enc-1' of identity provider 'dev' is not usable: use is 'enc'")
    yield Case("embedded-jwk", _embedded_jwk, "header parameter 'jwk' is not accepted", fetches=0)
    yield Case("jku-loopback-listener", _jku("{attacker}"), "header parameter 'jku' is not accepted",
               fetches=0)
    yield Case("jku-metadata", _jku("http://169.254.169.254/latest/meta-data/"),
               "header parameter 'jku' is not accepted", fetches=0)
    yield Case("x5u-loopback-listener", _x5u, "header parameter 'x5u' is not accepted", fetches=0)
    yield Case("x5c-self-signed", _self_signed_x5c, "header parameter 'x5c' is not accepted", fetches=0)
    yield Case("crit-unknown", lambda c: c.token(header=c.header(crit=["exp"], exp=1)),
               "critical header extensions (crit)")
    yield Case("crit-b64-false", lambda c: c.token(header=c.header(crit=["b64"], b64=False)),
               "critical header extensions (crit)")
    yield Case("b64-false", lambda c: c.token(header=c.header(b64=False)), "unencoded payloads (b64)")
    yield Case("zip", lambda c: c.token(header=c.header(zip="DEF")), "compressed payloads (zip)")
    yield Case("graph-nonce", lambda c: c.token(header=c.header(nonce="abc")), "Microsoft Graph")
    yield Case("typ-non-string", lambda c: c.token(header=c.header(typ=1)), "typ is not a string")

    # -- time -----------------------------------------------------------------------------------
    yield Case("exp-leeway-minus-1s", lambda c: c.token(claims=c.claims(exp=c.now - LEEWAY - 1)), "expired")
    yield Case("exp-at-leeway", lambda c: c.token(claims=c.claims(exp=c.now - LEEWAY)), "expired")
    yield _ok("exp-within-leeway", lambda c: c.token(claims=c.claims(exp=c.now - LEEWAY + 2)))
    yield _ok("exp-just-passed", lambda c: c.token(claims=c.claims(exp=c.now - 1)))
    yield Case("nbf-beyond-leeway", lambda c: c.token(claims=c.claims(nbf=c.now + LEEWAY + 2)),
               "not valid before")
    yield _ok("nbf-within-leeway", lambda c: c.token(claims=c.claims(nbf=c.now + LEEWAY - 2)))
    yield Case("iat-beyond-leeway", lambda c: c.token(claims=c.claims(iat=c.now + LEEWAY + 2)),
               "issued in the future")
    yield _ok("iat-within-leeway", lambda c: c.token(claims=c.claims(iat=c.now + LEEWAY - 2)))
    yield Case("exp-missing", lambda c: c.token(claims=c.claims(exp=DROP)), "token has no exp claim")
    for label, value, words in (("string", "9999999999", "got str"), ("null", None, "got null"),
                                ("list", [9999999999], "got list"), ("bool", True, "got bool"),
                                ("negative", -1, "out of range"), ("1e300", 1e300, "got float"),
                                ("float", 9999999999.5, "got float"), ("2^53", 2**53, "out of range"),
                                ("object", {"t": 1}, "got dict")):
        yield Case(f"exp-{label}", lambda c, v=value: c.token(claims=c.claims(exp=v)),
                   f"exp claim must be an integer number of seconds, {words}" if "got" in words
                   else f"exp claim is {words}")
    yield Case("nbf-string", lambda c: c.token(claims=c.claims(nbf=str(c.now))),
               "nbf claim must be an integer")
    yield Case("iat-float", lambda c: c.token(claims=c.claims(iat=c.now + 0.5)),
               "iat claim must be an integer")

    # -- issuer ---------------------------------------------------------------------------------
    yield Case("iss-without-trailing-slash", lambda c: c.token(),
               "unknown issuer", setup=lambda c: c.config(issuer=c.idp.issuer + "/"))
    yield Case("iss-with-extra-trailing-slash", lambda c: c.token(claims=c.claims(iss=c.idp.issuer + "/")),
               "issuers must match exactly")
    yield Case("iss-prefix", lambda c: c.token(claims=c.claims(iss=c.idp.issuer + "/tenant")),
               "unknown issuer")
    yield Case("iss-substring", lambda c: c.token(claims=c.claims(iss=c.idp.issuer[:-1])), "unknown issuer")
    yield Case("iss-other-case", lambda c: c.token(claims=c.claims(iss=c.idp.issuer.upper())),
               "unknown issuer")
    yield Case("iss-missing-several-providers", lambda c: c.token(claims=c.claims(iss=DROP)),
               "token has no iss claim and every identity provider requires an issuer",
               setup=_two_providers, fetches=0)
    yield Case("iss-non-string", lambda c: c.token(claims=c.claims(iss=["x"])), "iss claim must be a string")
    yield Case("iss-null-with-issuer-less-provider", lambda c: c.token(claims=c.claims(iss=None)),
               "iss claim must be a string", setup=lambda c: c.config(issuer=None))
    yield Case("iss-unknown-no-fetch", lambda c: c.token(claims=c.claims(iss="https://evil.example")),
               "unknown issuer 'https://evil.example'", fetches=0)
    yield Case("entra-v1-token-v2-configured", _V1_BUILD, "an Entra v1 token", setup=_V1_CONFIG, fetches=0)
    yield Case("entra-v2-token-v1-configured", _V2_BUILD, "an Entra v2 token", setup=_V2_CONFIG, fetches=0)
    yield _ok("entra-v2-token-v2-configured", _V2_OK_BUILD, setup=_V2_OK_CONFIG)

    # -- audience -------------------------------------------------------------------------------
    yield _ok("aud-string-match", lambda c: c.token())
    yield _ok("aud-list-containing-ours", lambda c: c.token(claims=c.claims(aud=["other", AUDIENCE])))
    yield Case("aud-list-without-ours", lambda c: c.token(claims=c.claims(aud=["other", "x"])),
               "audience mismatch", fetches=0)
    yield Case("aud-empty-list", lambda c: c.token(claims=c.claims(aud=[])), "audience mismatch")
    yield Case("aud-substring", lambda c: c.token(claims=c.claims(aud="api://ai")), "audience mismatch")
    yield Case("aud-superstring", lambda c: c.token(claims=c.claims(aud=AUDIENCE + "x")), "audience mismatch")
    yield Case("aud-integer", lambda c: c.token(claims=c.claims(aud=5)),
               "aud claim must be a string or a list of strings")
    yield Case("aud-list-with-non-string", lambda c: c.token(claims=c.claims(aud=[AUDIENCE, 5])),
               "aud claim must be a string or a list of strings")
    yield Case("aud-missing", lambda c: c.token(claims=c.claims(aud=DROP)), "token has no aud claim")
    yield _ok("no-audience-configured-token-has-aud", lambda c: c.token(claims=c.claims(aud="anything")),
              setup=lambda c: c.config(audiences=()))

    # -- unique id ------------------------------------------------------------------------------
    yield Case("sub-missing", lambda c: c.token(claims=c.claims(sub=DROP)), "missing unique-id claim 'sub'",
               fetches=0)
    yield Case("sub-null", lambda c: c.token(claims=c.claims(sub=None)), "must be a string, got null")
    yield Case("sub-empty", lambda c: c.token(claims=c.claims(sub="")), "unique-id claim 'sub' is empty")
    yield Case("sub-integer", lambda c: c.token(claims=c.claims(sub=42)), "must be a string, got int")
    yield _ok("sub-with-slashes-and-unicode", lambda c: c.token(claims=c.claims(sub="a/b:c|d#é")),
              user="user:dev/a/b:c|d#é")

    # -- signature and structure ----------------------------------------------------------------
    yield Case("payload-tampered", _tampered, "signature does not verify")
    yield Case("signature-stripped", lambda c: c.token().rsplit(".", 1)[0] + ".", "token has no signature")
    yield Case("signature-truncated", _truncated, "signature does not verify")
    yield Case("signature-bit-flipped", _bitflip, "signature does not verify")
    yield Case("two-segments", lambda c: ".".join(split(c.token())[:2]), "2 segments")
    yield Case("four-segments", lambda c: c.token() + ".x", "4 segments")
    yield Case("one-segment", lambda c: split(c.token())[1], "1 segments")
    yield Case("jwe-five-segments", lambda c: ".".join([b64(js({"alg": "RSA-OAEP", "enc": "A256GCM"})),
                                                         "a", "b", "c", "d"]), "encrypted tokens (JWE")
    yield Case("jwe-header-three-segments",
               lambda c: c.token(header=c.header(enc="A256GCM")), "encrypted tokens (JWE) are not accepted")
    yield Case("nested-jwt-cty", _nested, "nested tokens (cty JWT)")
    yield Case("nested-jwt-payload-without-cty", lambda c: c.token(claims=c.token().encode()),
               "payload JSON not valid JSON")
    yield Case("duplicate-header-member",
               _raw_header(lambda c: f'{{"alg":"RS256","kid":"{c.kid}","kid":"es256"}}'.encode()),
               "header JSON duplicate member 'kid'")
    yield Case("duplicate-alg-member",
               _raw_header(lambda c: f'{{"alg":"none","kid":"{c.kid}","alg":"RS256"}}'.encode()),
               "duplicate member 'alg'")
    yield Case("duplicate-payload-member",
               lambda c: c.token(claims=js(c.claims())[:-1] + b',"sub":"admin"}'),
               "payload JSON duplicate member 'sub'")
    yield Case("base64-plus-slash", _with_segment(1, lambda s: s[:5] + "+/" + s[7:]), "not base64url")
    yield Case("base64-space", _with_segment(1, lambda s: s[:5] + " " + s[5:]), "not base64url")
    yield Case("base64-padding", _with_segment(0, lambda s: s + "=" * (-len(s) % 4 or 4)), "not base64url")
    yield Case("base64-bad-length", _with_segment(1, lambda s: s + ("A" * ((1 - len(s)) % 4))),
               "not base64url")
    yield Case("base64-non-canonical-bits", _noncanonical_b64, "non-canonical base64url")
    yield Case("base64-signature-padding", _with_segment(2, lambda s: s + "=="), "signature is not base64url")
    yield Case("header-not-json", _raw_header(lambda c: b"alg=RS256"), "header JSON not valid JSON")
    yield Case("header-array", _raw_header(lambda c: b'["RS256"]'), "header is not a JSON object")
    yield Case("payload-array", _raw_payload(b'["alice"]'), "payload is not a JSON object")
    yield Case("payload-string", _raw_payload(b'"alice"'), "payload is not a JSON object")
    yield Case("payload-invalid-utf8", lambda c: c.token(claims=js(c.claims())[:-1] + b',"n":"\xff\xfe"}'),
               "payload JSON not valid UTF-8")
    yield Case("payload-lone-surrogate", lambda c: c.token(claims=js(c.claims())[:-1] + b',"n":"\\ud800"}'),
               "unpaired surrogate")
    yield Case("payload-nan", lambda c: c.token(claims=js(c.claims())[:-1] + b',"n":NaN}'), "NaN is not JSON")
    yield Case("payload-nested-50", _deep(50), "nested too deeply (more than 20 levels)")
    yield Case("payload-nested-2400", _deep(2400), "nested too deeply (more than 20 levels)")
    yield Case("payload-trailing-data", lambda c: c.token(claims=js(c.claims()) + b"{}"), "not valid JSON")
    yield Case("payload-bom", lambda c: c.token(claims=b"\xef\xbb\xbf" + js(c.claims())), "not valid JSON")
    yield Case("token-over-8kb", lambda c: c.token(claims=c.claims(pad="x" * 9000)), "larger than 8 KB")
    yield Case("garbage-over-8kb-refused-before-decoding", lambda c: "\x00<%" * 3000, "larger than 8 KB")

    # -- ECDSA encodings ------------------------------------------------------------------------
    yield _ok("ecdsa-good", lambda c: c.signed_by("es256", "ES256"))
    yield Case("ecdsa-r-s-zero", _ecdsa_raw(lambda c, n, g: bytes(64)), "signature does not verify")
    yield Case("ecdsa-r-s-n", _ecdsa_raw(lambda c, n, g: n.to_bytes(32, "big") * 2),
               "signature does not verify")
    yield Case("ecdsa-s-plus-n-overflow",
               _ecdsa_raw(lambda c, n, g: g[:32] + (int.from_bytes(g[32:], "big") + n).to_bytes(33, "big")),
               "signature does not verify")
    yield Case("ecdsa-der-instead-of-raw", lambda c: _der_consistent(c), "signature does not verify")
    yield Case("ecdsa-der-other-input", _ecdsa_raw(_der_signature), "signature does not verify")
    yield Case("ecdsa-short", _ecdsa_raw(lambda c, n, g: g[:-1]), "signature does not verify")
    yield Case("ecdsa-long", _ecdsa_raw(lambda c, n, g: g + b"\x00"), "signature does not verify")
    yield Case("ecdsa-r-n-minus-one-s-zero",
               _ecdsa_raw(lambda c, n, g: (n - 1).to_bytes(32, "big") + bytes(32)),
               "signature does not verify")

    # -- keys in the JWKS -----------------------------------------------------------------------
    yield _ok("off-curve-neighbour-dropped-good-key-works", lambda c: _off_curve(c, use_bad=False))
    yield Case("off-curve-key-refused", lambda c: _off_curve(c, use_bad=True),
               "key 'off-curve' of identity provider 'dev' is not usable: the point is not on curve P-256")
    yield Case("rsa-1024-key", _with_extra_jwk({}, "weak", "rsa1024", "RS256"),
               "key 'weak' of identity provider 'dev' is not usable: RSA key of 1024 bits is too short")
    yield Case("jwks-publishes-private-key", _leaked_private, "private key material")
    yield _ok("rsa-3072-key", lambda c: c.signed_by("rsa3072", "RS256"))
    yield _ok("es384-key", lambda c: c.signed_by("es384", "ES384"))
    yield _ok("ed25519-key", lambda c: c.signed_by("ed25519", "EdDSA"))
    yield _ok("ps256-key", lambda c: c.signed_by("ps256", "PS256"))


CASES = list(_cases())


@pytest.fixture
def corpus(dev_idp: DevIdentityProvider, start_idp: Callable[..., DevIdentityProvider], pool: dict[str, Any],
           clock: Clock, make_auth: Callable[..., Authenticator]) -> Corpus:
    return Corpus(dev_idp, start_idp, pool, clock, make_auth)


def test_case_ids_are_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_corpus(case: Case, corpus: Corpus) -> None:
    token = case.build(corpus)
    cfg = case.setup(corpus) if case.setup else corpus.config()
    if case.expect is None:
        principal = await corpus.auth.authenticate(token, cfg)
        assert principal.user == case.user
    else:
        with pytest.raises(InvalidToken) as refused:
            await corpus.auth.authenticate(token, cfg)
        assert case.expect in refused.value.reason, refused.value.reason
        assert token not in refused.value.message
        assert token not in refused.value.headers["WWW-Authenticate"]
    if case.fetches is not None:
        assert len(corpus.fetcher.urls) == case.fetches, corpus.fetcher.urls
    if case.id.startswith(("jku", "x5u")):
        assert corpus.other().fetch_count == 0  # the pointed-at listener saw nothing
