"""What the explain tool will show: each check's outcome, the provider and why, where the key came from."""

from __future__ import annotations

import pytest

from sandbox.idp import DevIdentityProvider
from shared.auth.authenticator import Authenticator
from shared.auth.trace import Trace
from shared.config.model import ExternalIdentity, frozen_mapping
from shared.errors import InvalidToken
from tests.auth.conftest import AUDIENCE, Clock, config, provider

ORDER = ["size", "format", "header", "issuer", "time", "audience", "unique_id", "key", "signature",
         "identities"]


async def test_accepted_token_trace(dev_idp: DevIdentityProvider, clock: Clock, auth: Authenticator) -> None:
    cfg = config(provider(dev_idp), identities=(
        ExternalIdentity("developers", "dev", frozen_mapping({"groups": "developers"})),))
    token = dev_idp.mint("alice", audience=AUDIENCE, claims={"groups": ["developers"]})
    trace = Trace()
    await auth.authenticate(token, cfg, trace=trace)
    assert [c.name for c in trace.checks] == ORDER
    assert trace.ok and all(c.passed for c in trace.checks)
    assert trace.provider == "dev"
    assert trace.provider_reason == "iss matches the issuer of 'dev' exactly"
    assert trace.key is not None
    assert (trace.key.kid, trace.key.alg, trace.key.state, trace.key.jwks_uri) == (
        dev_idp.default_kid, "RS256", "fetched", dev_idp.jwks_uri)
    assert trace.checks[-1].detail == "developers"

    clock.advance(700)
    again = Trace()
    await auth.authenticate(token, cfg, trace=again)
    assert again.key is not None and again.key.state == "stale"
    assert again.key.age_seconds == pytest.approx(700)
    report = again.as_dict()
    assert report["ok"] and report["provider"] == "dev" and report["key"]["state"] == "stale"


async def test_refused_token_trace(dev_idp: DevIdentityProvider, auth: Authenticator) -> None:
    trace = Trace()
    with pytest.raises(InvalidToken):
        await auth.authenticate(dev_idp.mint("alice", audience="api://other"), config(provider(dev_idp)),
                                trace=trace)
    assert [(c.name, c.passed) for c in trace.checks] == [
        ("size", True), ("format", True), ("header", True), ("issuer", True), ("time", True),
        ("audience", False)]
    assert "audience mismatch" in trace.checks[-1].detail
    assert not trace.ok and trace.key is None
