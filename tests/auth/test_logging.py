"""Logs never contain a token: every record of a varied run is scanned for each token and each of its
segments. Refusals carry iss, kid, alg and a fingerprint, with attacker-controlled strings escaped."""

from __future__ import annotations

import logging
import re

import pytest

from sandbox.idp import DevIdentityProvider, public_jwk
from shared.auth.authenticator import Authenticator
from shared.auth.redact import digest, fingerprint
from shared.errors import InvalidToken
from tests.auth.conftest import AUDIENCE, config, provider
from tests.auth.craft import jws, split


async def test_logs_never_contain_a_token(dev_idp: DevIdentityProvider, auth: Authenticator,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway")
    key = dev_idp.key().private_key
    hostile_kid = "evil\r\nINFO gateway.auth token accepted user=admin\x00"
    enc = {**public_jwk(key, "RS256", "enc\nkid"), "use": "enc"}
    dev_idp.extra_jwks.append(enc)
    cfg = config(provider(dev_idp))
    now = 2_000_000_000
    tokens = [
        dev_idp.mint("alice", audience=AUDIENCE),                                       # accepted
        dev_idp.mint("alice", audience="api://other"),                                  # audience
        dev_idp.mint("alice", audience=AUDIENCE, issuer="https://evil.example/\r\nx"),  # issuer
        dev_idp.mint("alice", audience=AUDIENCE, expires_in=-3600),                     # expired
        dev_idp.mint("alice", audience=AUDIENCE, headers={"kid": hostile_kid}),         # kid
        dev_idp.mint("alice", audience=AUDIENCE, headers={"kid": "enc\nkid"}),          # refused key
        jws({"alg": "none", "kid": hostile_kid}, {"iss": dev_idp.issuer}, signature=b""),
        jws({"alg": "RS256", "kid": dev_idp.default_kid},
            {"iss": dev_idp.issuer, "sub": "x", "aud": AUDIENCE, "exp": now}, key=key)[:-8] + "AAAAAAAA",
    ]
    outcomes = []
    for token in tokens:
        try:
            await auth.authenticate(token, cfg)
            outcomes.append("ok")
        except InvalidToken as exc:
            outcomes.append(exc.reason)
            assert token not in exc.message
    assert outcomes[0] == "ok" and all(o != "ok" for o in outcomes[1:])

    records = caplog.records
    text = "\n".join(r.getMessage() for r in records)
    assert records, "expected log records"
    for token in tokens:
        assert token not in text
        for segment in split(token):
            if len(segment) >= 16:
                assert segment not in text, "a token segment reached the logs"
    for record in records:
        message = record.getMessage()
        assert "\r" not in message and "\n" not in message and "\x00" not in message, message

    refusals = [r.getMessage() for r in records if r.getMessage().startswith("token refused")]
    assert len(refusals) == len(tokens) - 1
    for token, line in zip(tokens[1:], refusals, strict=True):
        assert f"fp={fingerprint(digest(token))}" in line
        assert re.search(r" iss=\S", line) and re.search(r" kid=\S", line) and re.search(r" alg=\S", line)
    assert "kid='evil\\r\\nINFO gateway.auth token accepted user=admin\\x00'" in text
    assert "iss='https://evil.example/\\r\\nx'" in text
    assert "jwks key refused provider=dev kid='enc\\nkid' reason=use is 'enc', not sig" in text
    accepted = [r.getMessage() for r in records if r.getMessage().startswith("token accepted")]
    assert accepted == [f"token accepted provider=dev iss={dev_idp.issuer!r} kid={dev_idp.default_kid!r} "
                        f"alg='RS256' fp={fingerprint(digest(tokens[0]))}"]


async def test_reasons_are_bounded_and_escaped(dev_idp: DevIdentityProvider, auth: Authenticator) -> None:
    long_iss = "https://evil.example/" + "A" * 4000 + "\r\n"
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(dev_idp.mint("a", audience=AUDIENCE, issuer=long_iss),
                                config(provider(dev_idp)))
    assert len(info.value.reason) < 200
    assert "\r" not in info.value.reason and "\n" not in info.value.reason
    assert "(4023 chars)" in info.value.reason
