"""function_app.py as Azure runs it on Python 3.13: the Functions host stand-in (`python -m funchost`)
starts the proxy worker, which hands every message to the pinned azure-functions-runtime. Requests
reach the gateway through the host's routing, the InvocationRequest and the worker's HttpUri.

The identity provider, the emulator and Azurite are real servers on loopback, as for uvicorn.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import openai
import pytest
import requests

from sandbox.idp import DevIdentityProvider
from shared.routes import ROUTES
from tests.harness import NewWorld, World

ROOT_ADMIN = "user:dev/root"
MESSAGES = [{"role": "user", "content": "How are you today?"}]
API_VERSION = "2024-10-21"


@pytest.fixture(scope="module")
def world(new_world: NewWorld) -> Iterator[World]:
    with new_world(host="functions", env={"GATEWAY_ADMINS": ROOT_ADMIN}) as world:
        yield world


def test_every_function_is_loaded_before_the_host_is_ready(world: World) -> None:
    functions = len(ROUTES) + 2          # every route, the timer and the warm-up trigger
    assert f"Host ready: {functions} functions loaded (chat_completions," in world.logs()
    assert "prewarm_timer" in world.logs() and "warm_up" in world.logs()


def test_chat_with_the_openai_sdk(world: World) -> None:
    client = openai.OpenAI(base_url=world.url + "/v1", api_key=world.token)
    answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content == "Hello from the emulator. You said: How are you today?"
    assert world.emulator.requests[-1].deployment == "gpt-4o-dep"


def test_a_streamed_chat_arrives_in_pieces_as_they_are_produced(world: World) -> None:
    """Neither the worker's HTTP server nor the host's relay buffers the stream."""
    client = openai.OpenAI(base_url=world.url + "/v1", api_key=world.token)
    long_prompt = [{"role": "user", "content": " ".join(["word"] * 40)}]
    arrivals = [time.perf_counter() for _ in client.chat.completions.create(
        model="gpt-4o", messages=long_prompt, stream=True)]
    # ~48 chunks at 5 ms each upstream: arrivals must be spread over most of that time
    assert len(arrivals) > 40
    assert arrivals[-1] - arrivals[0] > 0.15


def test_route_values_reach_the_handler(world: World) -> None:
    """`openai/deployments/{model}/{*operation}`: the host's route values become the request's."""
    client = openai.AzureOpenAI(azure_endpoint=world.url, api_version=API_VERSION, api_key=world.token)
    answer = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.choices[0].message.content.endswith("You said: How are you today?")
    assert world.emulator.requests[-1].path.endswith("/gpt-4o-dep/chat/completions")


def test_models_list(world: World) -> None:
    models = openai.OpenAI(base_url=world.url + "/v1", api_key=world.token).models.list()
    assert "gpt-4o" in {m.id for m in models.data}


def test_no_token_is_a_401_in_the_gateways_shape(world: World) -> None:
    answer = requests.post(world.url + "/v1/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES},
                           timeout=10)
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "authentication_error"
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_manage_as_an_admin(world: World) -> None:
    listed = world.api("root").get("models")
    assert listed.status_code == 200, listed.text
    assert "gpt-4o" in listed.text


@pytest.mark.parametrize(("path", "body"), [
    ("/no/such/route", True),        # the gateway's own catch-all function answers
    ("/v1/models/extra", True),
    ("/admin/no-such-api", False),   # the host's reserved prefix: the host answers, empty
])
def test_unknown_routes_are_404(world: World, path: str, body: bool) -> None:
    answer = requests.get(world.url + path, timeout=10)
    assert answer.status_code == 404
    if body:
        assert answer.json()["error"]["code"] == "not_found"
    else:
        assert answer.content == b""


@pytest.mark.parametrize(("path", "status"), [
    ("/console/", 200), ("/console/index.html", 200), ("/console", 308), ("/console/a/0/app.js", 404)])
def test_the_console_is_served_with_its_policy(world: World, path: str, status: int) -> None:
    answer = requests.get(world.url + path, timeout=10, allow_redirects=False)
    assert answer.status_code == status
    assert answer.headers["content-security-policy"].startswith("default-src 'none'; script-src 'self';")
    assert answer.headers["x-content-type-options"] == "nosniff"
    if status == 200:
        asset = re.search(r'src="\./(a/[0-9a-f]+/app\.js)"', answer.text)
        assert asset is not None
        assert requests.get(f"{world.url}/console/{asset.group(1)}", timeout=10).status_code == 200


def test_the_console_sign_in_routes_are_served(world: World) -> None:
    offered = requests.get(f"{world.url}/console/auth/providers", timeout=10)
    assert offered.status_code == 200 and offered.json() == {"providers": []}
    assert offered.headers["content-security-policy"].startswith("default-src 'none';")
    refused = requests.post(f"{world.url}/console/auth/token", json={}, timeout=10)
    assert refused.status_code == 403      # the sign-in route, not the files' catch-all: no Origin


def test_the_request_id_is_echoed(world: World) -> None:
    answer = requests.get(world.url + "/v1/models", headers={"Authorization": f"Bearer {world.token}",
                                                            "x-request-id": "trace-fh-1"}, timeout=10)
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "trace-fh-1"


def test_the_worker_paths_logs_carry_no_token(world: World, idp: DevIdentityProvider) -> None:
    token = idp.mint("alice", claims={"groups": ["developers"]}, audience="api://ai-gateway")
    for headers in ({"Authorization": f"Bearer {token}"}, {"api-key": token}):
        assert requests.get(world.url + "/v1/models", headers=headers, timeout=10).status_code == 200
    bad = token[:-4] + "AAAA"
    assert requests.get(world.url + "/v1/models", headers={"Authorization": f"Bearer {bad}"},
                        timeout=10).status_code == 401
    logs = world.logs()
    assert "gateway.http: GET /v1/models request_id=" in logs      # the gateway's lines came through
    assert token not in logs and bad not in logs and token.split(".")[2] not in logs
