"""The development identity provider itself: persistence of its key, its endpoints and its faults."""

from __future__ import annotations

import json
import stat
import urllib.request
from pathlib import Path

import pytest

from sandbox.idp import FAULTS, KINDS, DevIdentityProvider
from sandbox.loop import BackgroundLoop
from shared.auth.authenticator import Authenticator
from tests.auth.conftest import AUDIENCE, config, provider


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


async def test_key_file_keeps_tokens_valid_across_restarts(tmp_path: Path, idp_loop: BackgroundLoop,
                                                            auth: Authenticator) -> None:
    key_file = tmp_path / "state" / "idp-key.pem"
    first = DevIdentityProvider(key_file=key_file)
    idp_loop.run(first.start())
    token = first.mint("alice", audience=AUDIENCE, expires_in=86400)
    idp_loop.run(first.stop())
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    second = DevIdentityProvider(key_file=key_file, port=first.port)
    idp_loop.run(second.start())
    try:
        assert second.default_kid == first.default_kid
        assert (await auth.authenticate(token, config(provider(second)))).unique_id == "alice"
    finally:
        idp_loop.run(second.stop())


def test_endpoints(dev_idp: DevIdentityProvider) -> None:
    assert dev_idp.issuer == f"http://127.0.0.1:{dev_idp.port}" and dev_idp.port > 0
    assert dev_idp.jwks_uri == dev_idp.issuer + "/keys"
    status, body = get(dev_idp.jwks_uri)
    assert status == 200 and [k["kid"] for k in json.loads(body)["keys"]] == [dev_idp.default_kid]
    status, body = get(dev_idp.issuer + "/.well-known/openid-configuration")
    assert json.loads(body)["issuer"] == dev_idp.issuer and json.loads(body)["jwks_uri"] == dev_idp.jwks_uri
    assert dev_idp.fetch_count == 1 and dev_idp.discovery_count == 1


def test_keys(dev_idp: DevIdentityProvider) -> None:
    kids = {kind: dev_idp.add_key(kind) for kind in ("ES256", "EdDSA")}
    assert dev_idp.add_key("ES384", kid="chosen") == "chosen"
    published = {k["kid"]: k for k in dev_idp.jwks()["keys"]}
    assert published[kids["ES256"]]["alg"] == "ES256" and published[kids["EdDSA"]]["crv"] == "Ed25519"
    assert all(k["use"] == "sig" for k in published.values())
    dev_idp.remove_key("chosen")
    assert "chosen" not in {k["kid"] for k in dev_idp.jwks()["keys"]}
    with pytest.raises(ValueError, match="unknown key kind"):
        dev_idp.add_key("HS256")
    with pytest.raises(KeyError, match="no signing key 'chosen'"):
        dev_idp.mint(kid="chosen")
    assert set(KINDS) >= {"RS256", "RS256-3072", "PS256", "ES256", "ES384", "EdDSA"}


@pytest.mark.parametrize("fault", [f for f in FAULTS if f not in (None, "huge", "trickle")])
def test_faults(fault: str, dev_idp: DevIdentityProvider) -> None:
    dev_idp.fault = fault
    try:
        status, body = get(dev_idp.jwks_uri)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, b""
    expected = {"down": (503, None), "html": (200, b"<html>"), "empty": (200, b'{"keys": []}'),
                "redirect": (200, b'"keys"'), "garbage-keys": (200, b'"kty": "oct"')}[fault]
    assert status == expected[0]
    if expected[1]:
        assert expected[1] in body
    assert dev_idp.redirect_target_hits == (1 if fault == "redirect" else 0)   # urllib follows; we don't
