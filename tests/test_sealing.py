"""The sealing key: session ids any instance can open for their own principal only, encryption bound to
what it belongs to, and identity assertions every instance signs with the published key."""

from __future__ import annotations

import base64
import time

import jwt
import pytest

from shared.auth.identities import Principal
from shared.remote.assertions import LIFETIME_S, AssertionSigner
from shared.remote.seal import Sealer
from shared.settings import SettingsError, load

KEY = b"k" * 32
ALICE = Principal("okta", "00u-alice", "alice@example.com", frozenset())
BOB = Principal("okta", "00u-bob", None, frozenset())


def test_another_instance_with_the_same_key_opens_a_sealed_session() -> None:
    sealed = Sealer(KEY).seal_session("docs", ALICE.user, "upstream-123")
    assert Sealer(KEY).open_session("docs", ALICE.user, sealed) == "upstream-123"
    assert sealed.startswith("gs1.") and sealed != "upstream-123"


@pytest.mark.parametrize(("server", "principal"), [
    ("docs", BOB.user),                    # another principal replays Alice's session id
    ("other", ALICE.user),                 # Alice's session id sent to another server
])
def test_session_reuse_by_another_principal_or_server_is_refused(server: str, principal: str) -> None:
    sealed = Sealer(KEY).seal_session("docs", ALICE.user, "upstream-123")
    assert Sealer(KEY).open_session(server, principal, sealed) is None


@pytest.mark.parametrize("forged", [
    "upstream-123", "gs1.", "gs1.dXBzdHJlYW0tMTIz.", "gs1.dXBzdHJlYW0tMTIz.AAAAAAAAAAAAAAAAAAAAAA",
    "gs1.!!!.???", "gs1." + "A" * 600,
])
def test_a_forged_session_id_does_not_open(forged: str) -> None:
    assert Sealer(KEY).open_session("docs", ALICE.user, forged) is None


def test_a_session_sealed_under_another_key_does_not_open() -> None:
    sealed = Sealer(b"x" * 32).seal_session("docs", ALICE.user, "u")
    assert Sealer(KEY).open_session("docs", ALICE.user, sealed) is None


def test_encryption_is_bound_to_its_purpose_and_context() -> None:
    token = Sealer(KEY).encrypt("oauth-token", b"secret", context="docs|user:okta/alice")
    assert b"secret" not in base64.urlsafe_b64decode(token[3:] + "==")
    assert Sealer(KEY).decrypt("oauth-token", token, context="docs|user:okta/alice") == b"secret"
    assert Sealer(KEY).decrypt("oauth-token", token, context="docs|user:okta/bob") is None
    assert Sealer(KEY).decrypt("oauth-state", token, context="docs|user:okta/alice") is None
    assert Sealer(KEY).decrypt("oauth-token", token[:-2] + "AA", context="docs|user:okta/alice") is None


def test_identity_assertions_verify_with_the_published_key_of_any_instance() -> None:
    now = time.time()
    one = AssertionSigner(Sealer(KEY), "https://gw.example.com", clock=lambda: now)
    other = AssertionSigner(Sealer(KEY), "https://gw.example.com", clock=lambda: now)
    token = one.assertion(ALICE, audience="https://mcp.example.com/mcp")
    jwk = jwt.PyJWK(other.jwks()["keys"][0])
    claims = jwt.decode(token, jwk.key, algorithms=["ES256"], audience="https://mcp.example.com/mcp",
                        issuer="https://gw.example.com", options={"verify_exp": False})
    assert claims["sub"] == "user:okta/00u-alice" and claims["email"] == "alice@example.com"
    assert claims["exp"] - claims["iat"] == LIFETIME_S <= 300
    assert jwt.get_unverified_header(token)["kid"] == other.kid
    assert "email" not in jwt.decode(one.assertion(BOB, audience="a"), options={"verify_signature": False})


def test_without_a_key_each_process_draws_its_own() -> None:
    assert Sealer(None).signing_key.public_key() != Sealer(None).signing_key.public_key()
    assert not Sealer(None).persistent and Sealer(KEY).persistent


@pytest.mark.parametrize(("value", "says"), [
    ("not base64!", "base64"),
    (base64.b64encode(b"short").decode(), "at least 32 bytes"),
])
def test_a_bad_sealing_key_names_the_setting(value: str, says: str) -> None:
    with pytest.raises(SettingsError, match="GATEWAY_SEALING_KEY") as refused:
        load({"GATEWAY_SEALING_KEY": value})
    assert says in str(refused.value)


@pytest.mark.parametrize(("env", "public_url"), [
    ({}, "http://127.0.0.1:7071"),
    ({"GATEWAY_PORT": "8080"}, "http://127.0.0.1:8080"),
    ({"WEBSITE_HOSTNAME": "gw-prod.azurewebsites.net"}, "https://gw-prod.azurewebsites.net"),
    ({"GATEWAY_PUBLIC_URL": "https://ai.example.com/gw/", "WEBSITE_HOSTNAME": "x"}, "https://ai.example.com/gw"),
])
def test_the_public_url_never_comes_from_a_request(env: dict[str, str], public_url: str) -> None:
    assert load(env).public_url == public_url


def test_a_bad_public_url_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="GATEWAY_PUBLIC_URL"):
        load({"GATEWAY_PUBLIC_URL": "ftp://x?y"})
