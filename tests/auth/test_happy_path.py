"""The whole path once per key type: a real provider, real keys, a real token, a principal."""

from __future__ import annotations

import pytest

from sandbox.idp import DevIdentityProvider
from shared.auth.authenticator import Authenticator
from shared.auth.identities import Principal
from shared.config.model import ExternalIdentity, frozen_mapping
from tests.auth.conftest import AUDIENCE, config, provider

KINDS = ["RS256", "RS256-3072", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
         "EdDSA"]


@pytest.mark.parametrize("kind", KINDS)
async def test_every_key_type_verifies(kind: str, dev_idp: DevIdentityProvider, auth: Authenticator) -> None:
    kid = dev_idp.add_key(kind)
    token = dev_idp.mint("alice", kid=kid, audience=AUDIENCE, claims={"email": "alice@example.com"})
    principal = await auth.authenticate(token, config(provider(dev_idp)))
    assert principal == Principal(provider="dev", unique_id="alice", email="alice@example.com",
                                  identities=frozenset())
    assert principal.user == "user:dev/alice"
    assert principal.principals == frozenset({"user:dev/alice"})


async def test_identities_and_principals(dev_idp: DevIdentityProvider, auth: Authenticator) -> None:
    identities = (ExternalIdentity("developers", "dev", frozen_mapping({"groups": "developers"})),
                  ExternalIdentity("everyone", "dev"),
                  ExternalIdentity("admins", "dev", frozen_mapping({"groups": "admins"})),
                  ExternalIdentity("others", "elsewhere"))
    token = dev_idp.mint("system:serviceaccount:ns:sa", audience=AUDIENCE,
                         claims={"groups": ["developers", "readers"]})
    principal = await auth.authenticate(token, config(provider(dev_idp), identities=identities))
    assert principal.identities == frozenset({"developers", "everyone"})
    assert principal.principals == frozenset({"user:dev/system:serviceaccount:ns:sa",
                                              "identity:developers", "identity:everyone"})
    assert dev_idp.fetch_count == 1
