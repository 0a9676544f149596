"""The agent plane under the Functions host stand-in (function_app.py, the real worker path): the card
comes back rewritten to the gateway, and the a2a-sdk client that follows it gets a streamed message's
events as the agent produces them, not all at once when it is done."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from a2a.types.a2a_pb2 import TaskState

from sandbox.azurite import free_port
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from tests.agents.conftest import SEALING_KEY, a2a_client, agents_config, text_message
from tests.agents.servers import STEP_DELAY_S, STEPS, Agents
from tests.harness import DEVELOPER, NewWorld, World


@pytest.fixture(scope="module")
def functions_world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator,
                    agents: Agents) -> Iterator[World]:
    port = free_port()
    env = {"GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
           "GATEWAY_SEALING_KEY": base64.b64encode(SEALING_KEY).decode()}
    with new_world(config=agents_config(idp, emulator, agents.url), env=env, port=port, host="functions",
                   tokens={"alice": DEVELOPER}) as world:
        yield world


@pytest.fixture
async def alice(functions_world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {functions_world.tokens['alice']}"},
                                 timeout=30) as client:
        yield client


@pytest.mark.parametrize("agent", ["helper", "legacy"])
async def test_card_is_rewritten_through_the_functions_host(alice: httpx.AsyncClient, functions_world: World,
                                                            agents: Agents, agent: str) -> None:
    answer = await alice.get(f"{functions_world.url}/agents/{agent}/.well-known/agent-card.json")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    card = answer.json()
    endpoint = f"{functions_world.url}/agents/{agent}"
    urls = [i["url"] for i in card.get("supportedInterfaces", []) + card.get("additionalInterfaces", [])]
    assert urls and set(urls) == {endpoint} and card.get("url", endpoint) == endpoint
    assert agents.url not in answer.text, "an agent URL was left in the card"


@pytest.mark.parametrize("agent", ["helper", "legacy"])
async def test_streamed_message_events_arrive_spread_over_time(alice: httpx.AsyncClient,
                                                               functions_world: World, agents: Agents,
                                                               agent: str) -> None:
    client = await a2a_client(alice, functions_world, agent, streaming=True)
    arrivals: list[tuple[float, Any]] = []
    async for event in client.send_message(text_message("stream me")):
        arrivals.append((time.monotonic(), event))
    kinds = [event.WhichOneof("payload") for _, event in arrivals]
    assert kinds[0] == "task" and kinds.count("status_update") >= STEPS and "artifact_update" in kinds
    assert arrivals[-1][1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    assert arrivals[0][0] < agents.seen.produced[-1] - 0.5, "the first event came once the agent was done"
    assert arrivals[-1][0] - arrivals[0][0] > (STEPS - 1) * STEP_DELAY_S, "the events came all at once"
