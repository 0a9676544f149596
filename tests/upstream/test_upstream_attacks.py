"""A hostile upstream as a caller sees it: the gateway (its own process) in front of an emulator that
answers with redirects, authentication challenges, banners, deployment names and region headers.

Only the allowlisted upstream headers reach the caller; a redirect is neither followed nor relayed
(the target counts as failed and the next one is tried); neither a deployment name nor an upstream
challenge ever reaches the caller.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from sandbox.emulator import AzureOpenAIEmulator, Fault
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from tests.harness import NewWorld, World, accounts_config, emulator_running

DEPLOYMENT = "secret-dep-7"
MESSAGES = [{"role": "user", "content": "Are you there?"}]
ALLOWED = {"x-ratelimit-remaining-requests": "99", "x-ratelimit-reset-tokens": "6m0s",
           "openai-processing-ms": "12", "openai-version": "2020-10-01", "apim-request-id": "apim-1"}
HOSTILE = {"Location": "https://evil.example/steal", "WWW-Authenticate": 'Bearer realm="evil-realm"',
           "Server": "Hostile-Banner/1.0", "Set-Cookie": "session=evil-cookie; Path=/",
           "x-ms-deployment-name": DEPLOYMENT, "azureml-model-deployment": DEPLOYMENT,
           "x-ms-region": "evil-region", "x-anything-else": "evil-extra", "Content-Location": "/evil-path"}
LEAKS = ("evil", DEPLOYMENT, "Hostile")
"""Text that must appear nowhere in what the caller gets."""
GATEWAY_OWN = {"content-type", "content-length", "x-request-id", "date", "server", "transfer-encoding"}


@pytest.fixture(scope="module")
def primary(loop: BackgroundLoop) -> Iterator[AzureOpenAIEmulator]:
    with emulator_running(loop, 0.002) as server:
        yield server


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator,
          primary: AzureOpenAIEmulator) -> Iterator[World]:
    models = {"solo": [("primary", DEPLOYMENT)], "fo": [("primary", DEPLOYMENT), ("backup", "b-dep")]}
    config = accounts_config(idp, {"primary": primary.url, "backup": emulator.url}, models)
    with new_world(config=config, upstreams={"primary": primary, "backup": emulator}) as world:
        yield world


@dataclass(frozen=True)
class Reply:
    """What the caller got: status, every header (repeats kept) and the whole body."""

    status_code: int
    headers: CIMultiDict[str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self) -> Any:
        return json.loads(self.content)


async def _post(url: str, body: dict[str, Any], token: str) -> Reply:
    async with aiohttp.ClientSession() as session, session.post(
            url, json=body, headers={"Authorization": f"Bearer {token}"}, allow_redirects=False) as resp:
        return Reply(resp.status, CIMultiDict(resp.headers), await resp.read())


@pytest.fixture
def call(world: World, idp: DevIdentityProvider, loop: BackgroundLoop) -> Iterator[Any]:
    token = idp.mint("alice", audience="api://ai-gateway")

    def post(model: str, stream: bool = False) -> Reply:
        body = {"model": model, "messages": MESSAGES, "stream": stream}
        return loop.run(_post(world.url + "/v1/chat/completions", body, token))

    yield post
    world.upstreams["primary"].faults.clear()
    world.upstreams["backup"].faults.clear()


def leaked(response: Reply) -> list[str]:
    """Every leak text found in the response's headers or body."""
    seen = "\n".join(f"{k}: {v}" for k, v in response.headers.items()) + "\n" + response.text
    return [text for text in LEAKS if text in seen]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_attack_upstream_headers_not_relayed(world: World, call: Any, stream: bool) -> None:
    world.upstreams["primary"].faults.append(Fault(headers={**HOSTILE, **ALLOWED}))
    response = call("solo", stream)
    assert response.status_code == 200 and "Hello" in response.text
    assert leaked(response) == []
    passed = {k.lower(): v for k, v in response.headers.items() if k.lower() not in GATEWAY_OWN}
    assert passed == ALLOWED
    assert response.headers["server"] != HOSTILE["Server"]
    # a stream has no length; a JSON answer's is that of the bytes the caller got
    assert ("content-length" in response.headers) is not stream
    if not stream:
        assert int(response.headers["content-length"]) == len(response.content)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_attack_upstream_redirect_not_followed(world: World, call: Any, status: int) -> None:
    """The redirect points at another upstream the gateway knows: following it would be visible there."""
    backup: AzureOpenAIEmulator = world.upstreams["backup"]
    trap = f"{backup.url}/openai/deployments/trap/chat/completions?api-version=2024-10-21"
    before = len(backup.requests)
    world.upstreams["primary"].faults.append(Fault(status=status, headers={"Location": trap}))
    response = call("solo")
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_error"
    assert "location" not in response.headers and "trap" not in response.text
    assert leaked(response) == []
    assert len(backup.requests) == before       # never followed


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_attack_upstream_redirect_moves_on_to_the_next_target(world: World, call: Any,
                                                              stream: bool) -> None:
    backup: AzureOpenAIEmulator = world.upstreams["backup"]
    before = len(backup.requests)
    world.upstreams["primary"].faults.append(Fault(status=307, headers={"Location": "https://evil.example/x"}))
    response = call("fo", stream)
    assert response.status_code == 200 and "Hello" in response.text
    assert [r.deployment for r in backup.requests[before:]] == ["b-dep"]
    assert leaked(response) == []


@pytest.mark.parametrize(("status", "model", "answered"), [
    (401, "solo", 502), (403, "solo", 502), (401, "fo", 200), (403, "fo", 200)])
def test_attack_upstream_www_authenticate_hidden(world: World, call: Any, status: int,
                                                 model: str, answered: int) -> None:
    challenge = ('Bearer realm="evil-realm", authorization_uri="https://login.microsoftonline.com/'
                 'evil-tenant/oauth2/authorize", error="invalid_token"')
    world.upstreams["primary"].faults.append(Fault(status=status, headers={"WWW-Authenticate": challenge,
                                                                           **HOSTILE}))
    response = call(model)
    assert response.status_code == answered
    assert "www-authenticate" not in response.headers
    assert leaked(response) == []


@pytest.mark.parametrize("status", [400, 404, 422])
def test_attack_upstream_error_does_not_name_the_deployment(world: World, call: Any,
                                                            status: int) -> None:
    """Relayed upstream errors name the gateway's model; the error itself passes on unchanged."""
    world.upstreams["primary"].faults.append(Fault(
        status=status, message="The API deployment {deployment} does not support this ({deployment}). "
                               f"Deployments like {DEPLOYMENT}x stay as they are.",
        headers={"x-ms-deployment-name": DEPLOYMENT}))
    response = call("solo")
    assert response.status_code == status
    assert response.json()["error"]["message"] == (
        f"The API deployment solo does not support this (solo). Deployments like {DEPLOYMENT}x stay as "
        "they are.")
    assert int(response.headers["content-length"]) == len(response.content)
    assert "x-ms-deployment-name" not in response.headers


@pytest.mark.parametrize("fault", [Fault(status=500), Fault(status=429, retry_after=3), Fault(delay=0),
                                   Fault(status=503, headers=HOSTILE)], ids=["500", "429", "ok", "503"])
def test_failure_messages_never_name_the_deployment(world: World, call: Any, fault: Fault) -> None:
    world.upstreams["primary"].faults.append(fault)
    response = call("solo")
    assert DEPLOYMENT not in response.text and leaked(response) == []
