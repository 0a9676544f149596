"""Signing in to the console with an identity provider (authorization code + PKCE): end to end in the
browser against the sandbox provider, the code exchange's refusals over plain HTTP, and the identity
provider fields that turn it on (console_client_id, console_scopes) in the file, /manage and export."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from playwright.sync_api import Page, Route, expect

from sandbox.idp import DevIdentityProvider
from shared.config.document import item_document, to_document
from shared.config.fields import ConfigError
from shared.config.schema import parse_item
from tests.console.browser import off_thread, open_console
from tests.console.conftest import ADMIN, world_of
from tests.harness import AUDIENCE, DEVELOPER, NewWorld, World, dev_provider, free_port, sandbox_config

CLIENT = "console-spa"
SCOPES = ["openid", "api://ai-gateway/.default"]


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: Any) -> Iterator[World]:
    """The sandbox configuration with console sign-in on `dev`; `plain` offers none, and `broken` offers
    it from an issuer that answers nothing (so it is left out)."""
    dev = {**dev_provider(idp), "console_client_id": CLIENT, "console_scopes": SCOPES}
    plain = {"name": "plain", "jwks_uri": idp.jwks_uri, "issuer": "https://plain.example"}
    dead = f"http://127.0.0.1:{free_port()}"
    broken = {"name": "broken", "jwks_uri": dead + "/keys", "issuer": dead, "console_client_id": "broken-spa"}
    config = sandbox_config(idp, emulator, identity_providers=[dev, plain, broken])
    with world_of(new_world, config=config, env={"GATEWAY_ADMINS": ADMIN},
                  tokens={"root": None, "alice": DEVELOPER}) as started:
        idp.register_client(CLIENT, f"{started.url}/console/")
        yield started
        idp.clients.pop(CLIENT, None)


@pytest.fixture
def login(idp: DevIdentityProvider) -> Iterator[DevIdentityProvider]:
    """The sandbox provider approving alice the developer; reset afterwards (it is the session's)."""
    idp.login_as, idp.login_claims = "alice", dict(DEVELOPER)
    yield idp
    idp.login_as, idp.login_claims, idp.login_error, idp.opaque_access_tokens = None, {}, None, False


# -- in the browser ----------------------------------------------------------------------------------

def provider_button(page: Page, name: str = "dev") -> Any:
    return page.locator(f'[data-testid="signin-provider"][data-name="{name}"]')


@pytest.mark.parametrize("keep", [False, True])
def test_sign_in_with_the_provider(page: Page, world: World, login: DevIdentityProvider, keep: bool) -> None:
    open_console(page, world.url)
    expect(page.get_by_test_id("signin-provider")).to_have_count(1)      # not plain, not broken
    if keep:
        page.get_by_label("Keep for this tab").check()
    provider_button(page).click()

    claims = page.get_by_test_id("token-claims")
    expect(claims).to_contain_text('"sub": "alice"')
    expect(claims).to_contain_text(f'"aud": "{AUDIENCE}"')                # the access token, for the gateway
    expect(page).to_have_url(f"{world.url}/console/")                     # no code, no state
    page.get_by_test_id("nav-models").click()
    expect(page.locator('[data-testid="model-row"][data-name="gpt-4o"]')).to_be_visible()
    assert page.evaluate("() => Object.keys(sessionStorage)") == (["gateway-console-token"] if keep else [])

    page.reload()
    expect(claims).to_contain_text('"sub": "alice"') if keep else expect(claims).to_be_hidden()
    assert page.context.cookies() == [] and page.evaluate("() => localStorage.length") == 0


def test_a_tampered_state_is_refused(page: Page, world: World, login: DevIdentityProvider) -> None:
    def tamper(route: Route) -> None:
        answer = route.fetch(max_redirects=0)
        back = urlsplit(answer.headers["location"])
        query = {k: v[0] for k, v in parse_qs(back.query).items()}
        route.fulfill(status=302, headers={"location": back._replace(
            query=urlencode({**query, "state": "forged-" + query["state"]})).geturl()})

    page.route(f"{login.issuer}/authorize?*", tamper)
    open_console(page, world.url)
    redeemed = len(login.token_outcomes)
    provider_button(page).click()

    expect(page.get_by_test_id("error-banner")).to_contain_text("state does not match")
    expect(page).to_have_url(f"{world.url}/console/")
    expect(page.get_by_test_id("token-claims")).to_be_hidden()
    assert len(login.token_outcomes) == redeemed                          # the code was never sent
    assert page.evaluate("() => sessionStorage.length") == 0


def test_an_error_from_the_provider_is_shown_in_words(page: Page, world: World,
                                                      login: DevIdentityProvider) -> None:
    login.login_error = "access_denied"
    open_console(page, world.url)
    provider_button(page).click()

    expect(page.get_by_test_id("error-banner")).to_have_text(
        "Sign-in failed: access was denied (access_denied).")
    expect(page).to_have_url(f"{world.url}/console/")
    expect(page.get_by_test_id("token-claims")).to_be_hidden()


def test_a_refused_exchange_is_shown_in_words(page: Page, world: World, login: DevIdentityProvider) -> None:
    def replay(route: Route) -> None:      # the provider forgets the code before the gateway redeems it
        answer = route.fetch(max_redirects=0)
        login.codes.clear()
        route.fulfill(response=answer)

    page.route(f"{login.issuer}/authorize?*", replay)
    open_console(page, world.url)
    provider_button(page).click()
    banner = page.get_by_test_id("error-banner")
    expect(banner).to_contain_text("Sign-in with dev failed: the identity provider dev refused the sign-in: "
                                   "the code is expired, already used")
    expect(banner).not_to_contain_text("<b>")


def test_the_form_sets_the_console_client_id(page: Page, world: World) -> None:
    admin = world.api("root")
    assert admin.put("identity-providers/formed", {"jwks_uri": world.idp.jwks_uri,
                                                   "issuer": "https://formed.example"}).status_code == 201
    try:
        open_console(page, world.url)
        page.get_by_test_id("token-input").fill(world.tokens["root"])
        page.get_by_test_id("token-apply").click()
        page.goto(f"{world.url}/console/#/identity-providers?name=formed")
        for client_id, scopes in (("formed-spa", ", ".join(SCOPES)), ("", "")):
            page.get_by_test_id("idp-console-client-id").fill(client_id)
            page.get_by_test_id("idp-console-scopes").fill(scopes)
            with page.expect_response(lambda r: r.request.method == "PUT") as saved:
                page.get_by_test_id("idp-save").click()
            assert saved.value.ok
            stored = admin.get("identity-providers/formed").json()
            if client_id:
                assert (stored["console_client_id"], stored["console_scopes"]) == (client_id, SCOPES)
            else:
                assert "console_client_id" not in stored and "console_scopes" not in stored
    finally:
        admin.delete("identity-providers/formed")


# -- the routes over plain HTTP --------------------------------------------------------------------

def verifier_and_challenge() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize(idp: DevIdentityProvider, redirect_uri: str, challenge: str) -> str:
    """A code from the provider, as the browser would bring it back."""
    query = {"response_type": "code", "client_id": CLIENT, "redirect_uri": redirect_uri, "state": "s",
             "scope": " ".join(SCOPES), "code_challenge": challenge, "code_challenge_method": "S256"}
    answer = requests.get(f"{idp.issuer}/authorize", params=query, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]


def exchange(world: World, body: dict[str, Any], origin: str | None = "self",
             **headers: str) -> requests.Response:
    sent = {"content-type": "application/json", **headers}
    if origin is not None:
        sent["origin"] = world.url if origin == "self" else origin
    return requests.post(f"{world.url}/console/auth/token", data=json.dumps(body), headers=sent, timeout=30)


def fresh(world: World, idp: DevIdentityProvider) -> dict[str, Any]:
    verifier, challenge = verifier_and_challenge()
    redirect = f"{world.url}/console/"
    return {"provider": "dev", "code": authorize(idp, redirect, challenge), "code_verifier": verifier,
            "redirect_uri": redirect}


def test_the_providers_offered(world: World) -> None:
    answer = requests.get(f"{world.url}/console/auth/providers", timeout=30)
    assert answer.status_code == 200
    assert answer.json() == {"providers": [{"name": "dev", "client_id": CLIENT, "scopes": SCOPES,
                                            "authorization_endpoint": f"{world.idp.issuer}/authorize"}]}
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    assert "identity provider broken left out: OpenID configuration: cannot connect" in world.logs()


def test_a_code_is_exchanged_for_one_bearer_token_once(world: World, login: DevIdentityProvider) -> None:
    body = fresh(world, login)
    answer = exchange(world, body)
    assert answer.status_code == 200, answer.text
    assert set(answer.json()) == {"token", "expires_in", "token_type"}    # no refresh token, no id token
    assert answer.headers["cache-control"] == "no-store"
    claims = jwt.decode(answer.json()["token"], options={"verify_signature": False})
    assert (claims["sub"], claims["aud"]) == ("alice", AUDIENCE)
    models = requests.get(f"{world.url}/v1/models", timeout=30,
                          headers={"authorization": f"Bearer {answer.json()['token']}"})
    assert "gpt-4o" in {m["id"] for m in models.json()["data"]}

    replayed = exchange(world, body)
    assert replayed.status_code == 400
    assert replayed.json()["error"]["message"] == (
        "the identity provider dev refused the sign-in: the code is expired, already used, or was issued "
        "for another redirect URI or verifier: sign in again (invalid_grant)")
    assert login.token_outcomes[-2:] == ["issued", "invalid_grant"]


def test_an_opaque_access_token_gives_the_id_token(world: World, login: DevIdentityProvider) -> None:
    login.opaque_access_tokens = True
    answer = exchange(world, fresh(world, login))
    assert answer.status_code == 200, answer.text
    assert jwt.decode(answer.json()["token"], options={"verify_signature": False})["aud"] == CLIENT


OTHER = "http://evil.example"


@pytest.mark.parametrize(("change", "origin", "headers", "status", "words"), [
    ({}, None, {}, 403, "Origin header is missing"),
    ({}, OTHER, {}, 403, "not another origin's"),
    ({}, "null", {}, 403, "Origin header is missing or not an origin"),
    ({}, "self", {"sec-fetch-site": "cross-site"}, 403, "not another origin's"),
    # a client that forges a browser's headers still meets the provider's own check of the redirect URI
    ({"redirect_uri": OTHER + "/console/"}, OTHER, {"sec-fetch-site": "same-origin"}, 400,
     "another redirect URI"),
    ({"redirect_uri": OTHER + "/console/"}, "self", {}, 400, "redirect_uri must be the console's own page"),
    ({"redirect_uri": "{url}/elsewhere/"}, "self", {}, 400, "redirect_uri must be the console's own page"),
    ({"redirect_uri": "{url}/console/?x=1"}, "self", {}, 400, "redirect_uri must be the console's own page"),
    ({"redirect_uri": "/console/"}, "self", {}, 400, "redirect_uri must be the console's own page"),
    ({"provider": "nobody"}, "self", {}, 404, "no identity provider 'nobody' offers console sign-in"),
    ({"provider": "plain"}, "self", {}, 404, "no identity provider 'plain' offers console sign-in"),
    ({"provider": "broken"}, "self", {}, 503, "sign-in endpoints cannot be read now"),
    ({"provider": "../x"}, "self", {}, 400, "provider must be an identity provider's name"),
    ({"code_verifier": "short"}, "self", {}, 400, "code_verifier must be 43 to 128"),
    ({"code_verifier": "x" * 43 + " "}, "self", {}, 400, "code_verifier must be 43 to 128"),
    ({"code_verifier": "A" * 64}, "self", {}, 400, "refused the sign-in: the code is expired, already used"),
    ({"code": "a b"}, "self", {}, 400, "code must be the code from the provider"),
    ({"extra": "1"}, "self", {}, 400, "unknown field 'extra'"),
    ({}, "self", {"content-type": "text/plain"}, 400, "sent as application/json"),
])
def test_the_exchange_refuses(world: World, login: DevIdentityProvider, change: dict[str, str],
                              origin: str | None, headers: dict[str, str], status: int, words: str) -> None:
    body = {**fresh(world, login), **{k: v.replace("{url}", world.url) for k, v in change.items()}}
    answer = exchange(world, body, origin, **headers)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]["message"]
    assert answer.headers["cache-control"] == "no-store"
    assert "token" not in answer.json()


def test_the_log_holds_no_code_verifier_or_token(world: World, login: DevIdentityProvider) -> None:
    body = fresh(world, login)
    assert exchange(world, body).status_code == 200
    assert exchange(world, body).status_code == 400
    logs = world.logs()
    assert "console sign-in with dev: code redeemed" in logs
    assert "the token endpoint refused the code (HTTP 400, error invalid_grant)" in logs
    leaked = [s for s in (*login.issued, body["code_verifier"]) if s in logs]
    assert leaked == [] and "refused</b>" not in logs


# -- the configuration fields ----------------------------------------------------------------------

BASE = {"name": "p", "jwks_uri": "https://idp.example/keys", "issuer": "https://idp.example"}


@pytest.mark.parametrize(("fields", "problem"), [
    ({"console_client_id": "11111111-2222-3333-4444-555555555555"}, None),
    ({"console_client_id": "api://console", "console_scopes": SCOPES}, None),
    ({"console_client_id": "0oa1b2c3.d_e-f"}, None),
    ({"console_client_id": ""}, "console_client_id: must be a non-empty string"),
    ({"console_client_id": "has space"}, "console_client_id: must be 1 to 256 letters"),
    ({"console_client_id": "x" * 257}, "console_client_id: must be 1 to 256 letters"),
    ({"console_client_id": "a?b=c"}, "console_client_id: must be 1 to 256 letters"),
    ({"console_client_id": 7}, "console_client_id: must be a non-empty string"),
    ({"console_scopes": ["openid"]}, "console_scopes: is only used with console_client_id"),
    ({"console_client_id": "c", "console_scopes": []}, "console_scopes: must be a list of 1 to 20"),
    ({"console_client_id": "c", "console_scopes": "openid"}, "console_scopes: must be a list of 1 to 20"),
    ({"console_client_id": "c", "console_scopes": ["open id"]}, "console_scopes[0]: must be one scope"),
    ({"console_client_id": "c", "console_scopes": ['a"b']}, "console_scopes[0]: must be one scope"),
    ({"console_client_id": "c", "console_scopes": ["a", "a"]}, "console_scopes: names a scope twice"),
    ({"console_client_id": "c", "console_scopes": [f"s{i}" for i in range(21)]}, "must be a list of 1 to 20"),
])
def test_the_fields_in_the_file(fields: dict[str, Any], problem: str | None) -> None:
    doc = {**BASE, **fields}
    if problem is None:
        # export writes back what was read
        assert item_document(parse_item("identity_providers", doc, allowlist=None)) == doc
    else:
        with pytest.raises(ConfigError, match=problem.replace("[", r"\[").replace("]", r"\]")):
            parse_item("identity_providers", doc, allowlist=None)


def test_the_defaults_are_left_out_of_the_document() -> None:
    provider = parse_item("identity_providers", {**BASE, "console_client_id": "c"}, allowlist=None)
    assert provider.console_scopes == ("openid",)
    explicit = parse_item("identity_providers", {**BASE, "console_client_id": "c",
                                                 "console_scopes": ["openid"]}, allowlist=None)
    assert item_document(explicit) == {**BASE, "console_client_id": "c"}


def test_the_fields_over_manage_and_export(world: World) -> None:
    admin = world.api("root")
    doc = {"jwks_uri": world.idp.jwks_uri, "issuer": "https://mine.example", "console_client_id": "mine-spa",
           "console_scopes": ["openid", "api://mine/.default"]}
    assert admin.put("identity-providers/mine", doc, headers={"If-None-Match": "*"}).status_code == 201
    assert admin.get("identity-providers/mine").json() == {"name": "mine", **doc}
    refused = admin.put("identity-providers/bad", {**doc, "console_client_id": "a b"})
    assert refused.status_code == 400 and "console_client_id" in refused.json()["error"]["message"]
    schema = admin.get("openapi.json").json()["components"]["schemas"]
    assert any("console_client_id" in json.dumps(s) for s in schema.values())

    exported = to_document(off_thread(world.tables.load))
    assert {"name": "mine", **doc} in exported["identity_providers"]
    assert admin.delete("identity-providers/mine").status_code == 204
