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

from sandbox.azurite import free_port
from sandbox.emulator import AzureOpenAIEmulator, Fault
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from tests.harness import NewWorld, World, accounts_config, emulator_running

MESSAGES = [{"role": "user", "content": "Are you there?"}]
ANSWER = "Hello from the emulator. You said: Are you there?"
TIMEOUT = 1.0   # GATEWAY_UPSTREAM_TIMEOUT_SECONDS of this module's gateway


def _emulator(loop: BackgroundLoop, chunk_interval: float) -> Iterator[AzureOpenAIEmulator]:
    with emulator_running(loop, chunk_interval) as server:
        yield server


@pytest.fixture(scope="module")
def primary(loop: BackgroundLoop) -> Iterator[AzureOpenAIEmulator]:
    yield from _emulator(loop, 0.005)


@pytest.fixture(scope="module")
def streamer(loop: BackgroundLoop) -> Iterator[AzureOpenAIEmulator]:
    """Used only by the stream tests, so its open-connection count is theirs alone."""
    yield from _emulator(loop, 0.05)


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator,
          primary: AzureOpenAIEmulator, streamer: AzureOpenAIEmulator) -> Iterator[World]:
    models = {
        "fo": [("primary", "p-dep"), ("backup", "b-dep")],
        "dead-first": [("dead", "x-dep"), ("backup", "b-dep")],
        "both": [("primary", "p2-dep"), ("backup", "b2-dep")],
        "solo": [("primary", "solo-dep")],
        "stream": [("streamer", "s-dep")],
    }
    endpoints = {"primary": primary.url, "backup": emulator.url, "dead": f"http://127.0.0.1:{free_port()}",
                 "streamer": streamer.url}
    with new_world(config=accounts_config(idp, endpoints, models),
                   env={"GATEWAY_UPSTREAM_TIMEOUT_SECONDS": str(TIMEOUT)},
                   upstreams={"primary": primary, "backup": emulator, "streamer": streamer}) as world:
        yield world


@pytest.fixture
def client(world: World, idp: DevIdentityProvider) -> Iterator[openai.OpenAI]:
    token = idp.mint("alice", audience="api://ai-gateway")
    # max_retries=0: the test sees what the gateway answered, not the SDK's own retries
    with openai.OpenAI(base_url=world.url + "/v1", api_key=token, max_retries=0) as sdk:
        yield sdk
    for upstream in world.upstreams.values():
        upstream.faults.clear()


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
def test_the_next_target_answers_when_the_first_fails(world: World, client: openai.OpenAI,
                                                      fault: Fault) -> None:
    primary, backup = world.upstreams["primary"], world.upstreams["backup"]
    tried, answered = len(primary.requests), len(backup.requests)
    primary.faults.append(Fault(status=fault.status, retry_after=fault.retry_after, delay=fault.delay,
                                deployment="p-dep"))
    answer = client.chat.completions.create(model="fo", messages=MESSAGES)
    assert answer.choices[0].message.content == ANSWER
    assert [r.deployment for r in primary.requests[tried:]] == ["p-dep"]
    assert [r.deployment for r in backup.requests[answered:]] == ["b-dep"]


def test_a_refused_connection_fails_over(world: World, client: openai.OpenAI) -> None:
    answered = len(world.upstreams["backup"].requests)
    assert client.chat.completions.create(model="dead-first", messages=MESSAGES
                                          ).choices[0].message.content == ANSWER
    assert world.upstreams["backup"].requests[answered].deployment == "b-dep"


def test_a_stream_fails_over_before_its_first_byte(world: World, client: openai.OpenAI) -> None:
    world.upstreams["primary"].faults.append(Fault(status=500, deployment="p-dep"))
    chunks = list(client.chat.completions.create(model="fo", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER


def test_every_target_rate_limited_is_429_with_the_soonest_retry_after(
        world: World, client: openai.OpenAI) -> None:
    world.upstreams["primary"].faults.append(Fault(status=429, retry_after=7, deployment="p2-dep"))
    world.upstreams["backup"].faults.append(Fault(status=429, retry_after=3, deployment="b2-dep"))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="both", messages=MESSAGES)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.body["code"] == "rate_limited"


@pytest.mark.parametrize(("given", "passed_on"), [(3600, "60"), (0, "1")])
def test_retry_after_is_capped(world: World, client: openai.OpenAI, given: int,
                               passed_on: str) -> None:
    world.upstreams["primary"].faults.append(Fault(status=429, retry_after=given, deployment="solo-dep"))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="solo", messages=MESSAGES)
    assert caught.value.response.headers["retry-after"] == passed_on


def test_every_target_failing_is_502(world: World, client: openai.OpenAI) -> None:
    world.upstreams["primary"].faults.append(Fault(status=500, deployment="p2-dep"))
    world.upstreams["backup"].faults.append(Fault(status=429, retry_after=2, deployment="b2-dep"))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="both", messages=MESSAGES)
    assert caught.value.status_code == 502 and caught.value.body["code"] == "upstream_error"
    assert "primary" in caught.value.message and "backup" in caught.value.message


def test_no_answer_in_time_is_504(world: World, client: openai.OpenAI) -> None:
    world.upstreams["primary"].faults.append(Fault(delay=3 * TIMEOUT, deployment="solo-dep"))
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="solo", messages=MESSAGES)
    assert caught.value.status_code == 504 and caught.value.body["code"] == "upstream_timeout"
    assert caught.value.response.headers["x-request-id"]


def test_a_stream_cut_off_upstream_ends_with_an_error_event(world: World,
                                                            client: openai.OpenAI) -> None:
    streamer: AzureOpenAIEmulator = world.upstreams["streamer"]
    wait_for(lambda: streamer.open_connections == 0)
    streamer.faults.append(Fault(reset_after_chunks=3))
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(model="stream", messages=MESSAGES, stream=True):
            received.append(chunk)
    assert len(received) == 3 and received[1].choices[0].delta.content == "Hello"
    assert "broke off" in caught.value.message
    wait_for(lambda: streamer.open_connections == 0)


def test_a_caller_leaving_mid_stream_closes_the_upstream_socket(world: World,
                                                                client: openai.OpenAI) -> None:
    streamer: AzureOpenAIEmulator = world.upstreams["streamer"]
    wait_for(lambda: streamer.open_connections == 0)
    long = [{"role": "user", "content": " ".join(["word"] * 200)}]     # ~10 s of chunks upstream
    stream = client.chat.completions.create(model="stream", messages=long, stream=True)
    for index, _ in enumerate(stream):
        if index == 2:
            break
    assert streamer.open_connections == 1
    stream.close()
    wait_for(lambda: streamer.open_connections == 0, seconds=5)
