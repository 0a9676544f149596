"""Several identity providers at once: chosen by exact issuer, never by falling back to the first one;
issuer-less providers told apart by key id among their own keys; configurable claims; Entra v1 and v2;
OpenID discovery under the same fetch rules."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sandbox.idp import DevIdentityProvider
from shared.auth.authenticator import Authenticator
from shared.config.model import Config
from shared.errors import InvalidToken
from tests.auth.conftest import AUDIENCE, config, provider
from tests.auth.craft import jws

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ENTRA_V1 = f"https://sts.windows.net/{TENANT}/"
ENTRA_V2 = f"https://login.microsoftonline.com/{TENANT}/v2.0"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"


async def refused(auth: Authenticator, token: str, cfg: Config) -> str:
    with pytest.raises(InvalidToken) as info:
        await auth.authenticate(token, cfg)
    return info.value.reason


@pytest.fixture
def two(start_idp: Callable[..., DevIdentityProvider]) -> tuple[DevIdentityProvider, DevIdentityProvider]:
    return start_idp(), start_idp(fresh_key=True)


async def test_chosen_by_exact_issuer(two: tuple[DevIdentityProvider, DevIdentityProvider],
                                      auth: Authenticator) -> None:
    a, b = two
    cfg = config(provider(a, "okta"), provider(b, "auth0"))
    assert (await auth.authenticate(b.mint("bob", audience=AUDIENCE), cfg)).user == "user:auth0/bob"
    assert (a.fetch_count, b.fetch_count) == (0, 1)     # only the chosen provider's keys are fetched
    assert (await auth.authenticate(a.mint("amy", audience=AUDIENCE), cfg)).user == "user:okta/amy"
    assert (a.fetch_count, b.fetch_count) == (1, 1)


async def test_never_falls_back_to_the_first_provider(two: tuple[DevIdentityProvider, DevIdentityProvider],
                                                      auth: Authenticator) -> None:
    a, b = two
    cfg = config(provider(a, "first"), provider(b, "second"))
    no_iss = jws({"alg": "RS256", "kid": a.default_kid}, {"sub": "x", "aud": AUDIENCE, "exp": 9_999_999_999},
                 key=a.key().private_key)
    null_iss = jws({"alg": "RS256", "kid": a.default_kid},
                   {"iss": None, "sub": "x", "aud": AUDIENCE, "exp": 9_999_999_999}, key=a.key().private_key)
    for token, reason in (
            (a.mint("x", audience=AUDIENCE, issuer="https://elsewhere.example"),
             "unknown issuer 'https://elsewhere.example'"),
            (no_iss, "token has no iss claim and every identity provider requires an issuer"),
            (null_iss, "iss claim must be a string")):
        assert await refused(auth, token, cfg) == reason
    assert (a.fetch_count, b.fetch_count) == (0, 0)


async def test_same_unique_id_from_two_providers_is_two_users(
        two: tuple[DevIdentityProvider, DevIdentityProvider], auth: Authenticator) -> None:
    a, b = two
    cfg = config(provider(a, "okta"), provider(b, "entra"))
    pa = await auth.authenticate(a.mint("00u1abcd", audience=AUDIENCE), cfg)
    pb = await auth.authenticate(b.mint("00u1abcd", audience=AUDIENCE), cfg)
    assert (pa.user, pb.user) == ("user:okta/00u1abcd", "user:entra/00u1abcd")
    assert pa != pb and not pa.principals & pb.principals


async def test_issuer_less_providers_are_chosen_by_kid_among_their_own_keys(
        two: tuple[DevIdentityProvider, DevIdentityProvider], auth: Authenticator) -> None:
    a, b = two
    cfg = config(provider(a, "k8s-a", issuer=None), provider(b, "k8s-b", issuer=None))
    assert (await auth.authenticate(b.mint("system:serviceaccount:ns:sa", audience=AUDIENCE), cfg)).user \
        == "user:k8s-b/system:serviceaccount:ns:sa"
    # a's kid, b's signature: looked up only among a's keys, so the signature fails
    forged = jws({"alg": "RS256", "kid": a.default_kid},
                 {"iss": "anything", "sub": "admin", "aud": AUDIENCE, "exp": 9_999_999_999},
                 key=b.key().private_key)
    assert await refused(auth, forged, cfg) == (
        f"signature does not verify with key {a.default_kid!r} of identity provider 'k8s-a'")


async def test_issuer_less_providers_sharing_a_kid_are_ambiguous(
        two: tuple[DevIdentityProvider, DevIdentityProvider], auth: Authenticator) -> None:
    a, b = two
    b.add_private_key(a.key().private_key, "RS256", a.default_kid)   # b republishes a's key
    cfg = config(provider(a, "k8s-a", issuer=None), provider(b, "k8s-b", issuer=None))
    reason = await refused(auth, a.mint("x", audience=AUDIENCE), cfg)
    assert "is held by several identity providers without an issuer ('k8s-a', 'k8s-b')" in reason


async def test_issuer_less_provider_needs_a_kid_when_there_are_several(
        two: tuple[DevIdentityProvider, DevIdentityProvider], auth: Authenticator) -> None:
    a, b = two
    cfg = config(provider(a, "k8s-a", issuer=None), provider(b, "k8s-b", issuer=None))
    token = jws({"alg": "RS256"}, {"sub": "x", "aud": AUDIENCE, "exp": 9_999_999_999},
                key=a.key().private_key)
    assert "token has no kid, which is needed to choose among" in await refused(auth, token, cfg)
    assert (a.fetch_count, b.fetch_count) == (0, 0)


async def test_an_exact_issuer_wins_over_issuer_less_providers(
        two: tuple[DevIdentityProvider, DevIdentityProvider], auth: Authenticator) -> None:
    a, b = two
    b.add_private_key(a.key().private_key, "RS256", a.default_kid)
    cfg = config(provider(b, "open", issuer=None), provider(a, "exact"))
    assert (await auth.authenticate(a.mint("x", audience=AUDIENCE), cfg)).user == "user:exact/x"
    assert b.fetch_count == 0
    unknown_iss = a.mint("y", audience=AUDIENCE, issuer="https://other.example")
    assert (await auth.authenticate(unknown_iss, cfg)).user == "user:open/y"   # issuer-less accepts any iss


async def test_unknown_kid_at_issuer_less_providers_keeps_each_reason(
        two: tuple[DevIdentityProvider, DevIdentityProvider], auth: Authenticator) -> None:
    a, b = two
    b.fault = "down"
    cfg = config(provider(a, "k8s-a", issuer=None), provider(b, "k8s-b", issuer=None))
    token = jws({"alg": "RS256", "kid": "nope"}, {"sub": "x", "aud": AUDIENCE, "exp": 9_999_999_999},
                key=a.key().private_key)
    reason = await refused(auth, token, cfg)
    assert reason.startswith("no identity provider without an issuer holds key id 'nope': ")
    assert "unknown key id 'nope' for identity provider 'k8s-a'" in reason
    assert "signing keys of identity provider 'k8s-b' are unavailable: HTTP 503" in reason


async def test_shared_issuer_told_apart_by_audience(dev_idp: DevIdentityProvider,
                                                    auth: Authenticator) -> None:
    cfg = config(provider(dev_idp, "app-one", audiences=("api://one",)),
                 provider(dev_idp, "app-two", audiences=("api://two",)))
    assert (await auth.authenticate(dev_idp.mint("x", audience="api://two"), cfg)).user == "user:app-two/x"
    reason = await refused(auth, dev_idp.mint("x", audience=["api://one", "api://two"]), cfg)
    assert reason == "ambiguous: providers 'app-one', 'app-two' share this issuer and accept this audience"
    reason = await refused(auth, dev_idp.mint("x", audience="api://three"), cfg)
    assert "audience mismatch" in reason


async def test_unique_id_and_email_claims_are_configurable(dev_idp: DevIdentityProvider,
                                                           auth: Authenticator) -> None:
    cfg = config(provider(dev_idp, "entra", unique_id_claim="oid", email_claim="preferred_username"))
    token = dev_idp.mint("pairwise-sub", audience=AUDIENCE,
                         claims={"oid": "0d5c-oid", "preferred_username": "amy@contoso.com",
                                 "email": "ignored@example.com"})
    principal = await auth.authenticate(token, cfg)
    assert (principal.user, principal.email) == ("user:entra/0d5c-oid", "amy@contoso.com")
    reason = await refused(auth, dev_idp.mint("has-sub-but-no-oid", audience=AUDIENCE), cfg)
    assert reason == "missing unique-id claim 'oid'"
    nested = config(provider(dev_idp, "kc", unique_id_claim="ext.uid"))
    assert (await auth.authenticate(dev_idp.mint("s", audience=AUDIENCE, claims={"ext": {"uid": "u-7"}}),
                                    nested)).user == "user:kc/u-7"
    odd_email = dev_idp.mint("s", audience=AUDIENCE, claims={"email": 5, "oid": "o"})
    no_email = await auth.authenticate(odd_email, cfg)
    assert no_email.email is None           # email is optional; a non-string one is ignored


async def test_entra_v1_and_v2_issuers(dev_idp: DevIdentityProvider, auth: Authenticator) -> None:
    """One tenant, both token versions, the same keys: two providers, two users, each version only
    accepted by its own provider."""
    cfg = config(provider(dev_idp, "entra-v1", issuer=ENTRA_V1, audiences=("api://ai-gateway",),
                          unique_id_claim="oid"),
                 provider(dev_idp, "entra-v2", issuer=ENTRA_V2, audiences=(CLIENT_ID,),
                          unique_id_claim="oid"))
    v1 = dev_idp.mint("p1", issuer=ENTRA_V1, audience="api://ai-gateway", claims={"oid": "o", "tid": TENANT})
    v2 = dev_idp.mint("p2", issuer=ENTRA_V2, audience=CLIENT_ID,
                      claims={"oid": "o", "tid": TENANT})
    assert (await auth.authenticate(v1, cfg)).user == "user:entra-v1/o"
    assert (await auth.authenticate(v2, cfg)).user == "user:entra-v2/o"
    assert dev_idp.fetch_count == 2         # the key cache is per provider, even for a shared jwks_uri
    only_v2 = config(cfg.identity_providers[1])
    assert "an Entra v1 token; provider 'entra-v2' expects v2 tokens" in await refused(auth, v1, only_v2)
    graph = dev_idp.mint("p", issuer=ENTRA_V2, audience="00000003-0000-0000-c000-000000000000",
                         headers={"nonce": "x"})
    assert "Microsoft Graph access token" in await refused(auth, graph, cfg)


async def test_discovery(dev_idp: DevIdentityProvider, auth: Authenticator) -> None:
    cfg = config(provider(dev_idp, "okta", jwks_uri=None, discovery=True))
    assert (await auth.authenticate(dev_idp.mint("alice", audience=AUDIENCE), cfg)).user == "user:okta/alice"
    assert (dev_idp.discovery_count, dev_idp.fetch_count) == (1, 1)
    status = auth.key_status(cfg)["okta"]
    assert status is not None and status.jwks_uri == dev_idp.jwks_uri


async def test_discovery_with_an_issuer_path(dev_idp: DevIdentityProvider, auth: Authenticator) -> None:
    issuer = dev_idp.issuer + f"/{TENANT}/v2.0"
    cfg = config(provider(dev_idp, "entra", jwks_uri=None, issuer=issuer, discovery=True))
    assert (await auth.authenticate(dev_idp.mint("x", audience=AUDIENCE, issuer=issuer), cfg)).user == \
        "user:entra/x"


async def test_discovery_document_must_name_the_configured_issuer(dev_idp: DevIdentityProvider,
                                                                  auth: Authenticator) -> None:
    dev_idp.discovery_issuer = "https://attacker.example"
    cfg = config(provider(dev_idp, "okta", jwks_uri=None, discovery=True))
    reason = await refused(auth, dev_idp.mint("alice", audience=AUDIENCE), cfg)
    assert ("discovery document names issuer 'https://attacker.example', not the configured "
            f"{dev_idp.issuer!r}") in reason
    assert dev_idp.fetch_count == 0


async def test_discovery_follows_the_same_fetch_rules(dev_idp: DevIdentityProvider,
                                                      make_auth: Callable[..., Authenticator]) -> None:
    auth = make_auth(allow_http_loopback=False)
    cfg = config(provider(dev_idp, "okta", jwks_uri=None, discovery=True))
    assert "plain http is refused" in await refused(auth, dev_idp.mint("alice", audience=AUDIENCE), cfg)
    assert (dev_idp.discovery_count, dev_idp.fetch_count) == (0, 0)


async def test_refresh_all_reports_per_provider(two: tuple[DevIdentityProvider, DevIdentityProvider],
                                                auth: Authenticator) -> None:
    a, b = two
    b.fault = "html"
    cfg = config(provider(a, "good"), provider(b, "bad"))
    assert await auth.refresh_all(cfg) == {"good": None, "bad": "JWKS is not valid JSON (not valid JSON)"}
    status = auth.key_status(cfg)
    assert status["good"] is not None and status["good"].kids == (a.default_kid,)
    assert status["bad"] is not None and not status["bad"].usable
