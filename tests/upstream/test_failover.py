"""Failover as a caller sees it: the openai SDK -> the gateway (its own process) -> two emulators.

The first account answers 429, 5xx, too late, or not at all; the second one answers. When every
target fails the SDK sees 429 (with the soonest Retry-After, capped), 502 or 504. A stream cut off
upstream ends with the gateway's error event, and no upstream socket is left open.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from sandbox.azurite import Azurite, free_port
from sandbox.emulator import AzureOpenAIEmulator, Fault
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from tests.conftest import EMULATOR_KEY, EMULATOR_KEY_ENV, GatewayProcess, Tables, gateway_env, unique_prefix

MESSAGES = [{"role": "user", "content": "Are you there?"}]
ANSWER = "Hello from the emulator. You said: Are you there?"
TIMEOUT = 1.0   # GATEWAY_UPSTREAM_TIMEOUT_SECONDS of this module's gateway


def _emulator(loop: BackgroundLoop, chunk_interval: float) -> Iterator[AzureOpenAIEmulator]:
    server = AzureOpenAIEmulator(api_key=EMULATOR_KEY, chunk_interval=chunk_interval)
    loop.run(server.start())
    yield server
    loop.run(server.stop())


@pytest.fixture(scope="module")
def primary(loop: BackgroundLoop) -> Iterator[AzureOpenAIEmulator]:
    yield from _emulator(loop, 0.005)


@pytest.fixture(scope="module")
def streamer(loop: BackgroundLoop) -> Iterator[AzureOpenAIEmulator]:
    """Used only by the stream tests, so its open-connection count is theirs alone."""
    yield from _emulator(loop, 0.05)


@pytest.fixture(scope="module")
def world(azurite: Azurite, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator,
          primary: AzureOpenAIEmulator, streamer: AzureOpenAIEmulator,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    def account(name: str, url: str) -> dict[str, Any]:
        return {"name": name, "kind": "azure-openai", "endpoint": url,
                "auth": {"type": "api-key", "key_env": EMULATOR_KEY_ENV}}

    models = {
        "fo": [("primary", "p-dep"), ("backup", "b-dep")],
        "dead-first": [("dead", "x-dep"), ("backup", "b-dep")],
        "both": [("primary", "p2-dep"), ("backup", "b2-dep")],
        "solo": [("primary", "solo-dep")],
        "stream": [("streamer", "s-dep")],
    }
    tables = Tables(azurite, unique_prefix())
    tables.apply({
        "identity_providers": [{"name": "dev", "jwks_uri": idp.jwks_uri, "issuer": idp.issuer,
                                "audiences": ["api://ai-gateway"]}],
        "accounts": [account("primary", primary.url), account("backup", emulator.url),
                     account("dead", f"http://127.0.0.1:{free_port()}"), account("streamer", streamer.url)],
        "models": [{"name": name, "targets": [{"account": a, "deployment": d} for a, d in targets]}
                   for name, targets in models.items()],
        "collaborators": [{"resource": f"model:{name}", "principal": "user:dev/alice", "role": "viewer"}
                          for name in models],
    })
    gw = GatewayProcess(gateway_env(tables, GATEWAY_UPSTREAM_TIMEOUT_SECONDS=str(TIMEOUT)),
                        tmp_path_factory.mktemp("gw") / "gateway.log")
    yield {"gw": gw, "primary": primary, "backup": emulator, "streamer": streamer}
    gw.stop()


@pytest.fixture
def client(world: dict[str, Any], idp: DevIdentityProvider) -> Iterator[openai.OpenAI]:
    token = idp.mint("alice", audience="api://ai-gateway")
    # max_retries=0: the test sees what the gateway answered, not the SDK's own retries
    with openai.OpenAI(base_url=world["gw"].url + "/v1", api_key=token, max_retries=0) as sdk:
        yield sdk
    for name in ("primary", "backup", "streamer"):
        world[name].faults.clear()


def wait_for(check: Any, seconds: float = 10.0) -> None:
    """A functional deadline: `check` must come true, however long it takes within `seconds`."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.mark.parametrize("fault", [
    Fault(status=429, retry_after=5), Fault(status=500), Fault(status=503), Fault(status=401),
    Fault(delay=3 * TIMEOUT),
], ids=["429", "500", "503", "401", "timeout"])
def test_the_next_target_answers_when_the_first_fails(world: dict[str, Any], client: openai.OpenAI,
                                                      fault: Fault) -> None:
    primary, backup = world["primary"], world["backup"]
    tried, answered = len(primary.requests), len(backup.requests)
    primary.faults.append(Fault(status=fault.status, retry_after=fault.retry_after, delay=fault.delay,
                                deployment="p-dep"))
    answer = client.chat.completions.create(model="fo", messages=MESSAGES)
    assert answer.choices[0].message.content == ANSWER
    assert [r.deployment for r in primary.requests[tried:]] == ["p-dep"]
    assert [r.deployment for r in backup.requests[answered:]] == ["b-dep"]


def test_a_refused_connection_fails_over(world: dict[str, Any], client: openai.OpenAI) -> None:
    answered = len(world["backup"].requests)
    assert client.chat.completions.create(model="dead-first", messages=MESSAGES
                                          ).choices[0].message.content == ANSWER
    assert world["backup"].requests[answered].deployment == "b-dep"


def test_a_stream_fails_over_before_its_first_byte(world: dict[str, Any], client: openai.OpenAI) -> None:
    world["primary"].faults.append(Fault(status=500, deployment="p-dep"))
    chunks = list(client.chat.completions.create(model="fo", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER


def test_every_target_rate_limited_is_429_with_the_soonest_retry_after(
        world: dict[str, Any], client: openai.OpenAI) -> None:
    world["primary"].faults.append(Fault(status=429, retry_after=7, deployment="p2-dep"))
    world["backup"].faults.append(Fault(status=429, retry_after=3, deployment="b2-dep"))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="both", messages=MESSAGES)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.body["code"] == "rate_limited"


@pytest.mark.parametrize(("given", "passed_on"), [(3600, "60"), (0, "1")])
def test_retry_after_is_capped(world: dict[str, Any], client: openai.OpenAI, given: int,
                               passed_on: str) -> None:
    world["primary"].faults.append(Fault(status=429, retry_after=given, deployment="solo-dep"))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="solo", messages=MESSAGES)
    assert caught.value.response.headers["retry-after"] == passed_on


def test_every_target_failing_is_502(world: dict[str, Any], client: openai.OpenAI) -> None:
    world["primary"].faults.append(Fault(status=500, deployment="p2-dep"))
    world["backup"].faults.append(Fault(status=429, retry_after=2, deployment="b2-dep"))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="both", messages=MESSAGES)
    assert caught.value.status_code == 502 and caught.value.body["code"] == "upstream_error"
    assert "primary" in caught.value.message and "backup" in caught.value.message


def test_no_answer_in_time_is_504(world: dict[str, Any], client: openai.OpenAI) -> None:
    world["primary"].faults.append(Fault(delay=3 * TIMEOUT, deployment="solo-dep"))
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="solo", messages=MESSAGES)
    assert caught.value.status_code == 504 and caught.value.body["code"] == "upstream_timeout"
    assert caught.value.response.headers["x-request-id"]


def test_a_stream_cut_off_upstream_ends_with_an_error_event(world: dict[str, Any],
                                                            client: openai.OpenAI) -> None:
    streamer: AzureOpenAIEmulator = world["streamer"]
    wait_for(lambda: streamer.open_connections == 0)
    streamer.faults.append(Fault(reset_after_chunks=3))
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(model="stream", messages=MESSAGES, stream=True):
            received.append(chunk)
    assert len(received) == 3 and received[1].choices[0].delta.content == "Hello"
    assert "broke off" in caught.value.message
    wait_for(lambda: streamer.open_connections == 0)


def test_a_caller_leaving_mid_stream_closes_the_upstream_socket(world: dict[str, Any],
                                                                client: openai.OpenAI) -> None:
    streamer: AzureOpenAIEmulator = world["streamer"]
    wait_for(lambda: streamer.open_connections == 0)
    long = [{"role": "user", "content": " ".join(["word"] * 200)}]     # ~10 s of chunks upstream
    stream = client.chat.completions.create(model="stream", messages=long, stream=True)
    for index, _ in enumerate(stream):
        if index == 2:
            break
    assert streamer.open_connections == 1
    stream.close()
    wait_for(lambda: streamer.open_connections == 0, seconds=5)
