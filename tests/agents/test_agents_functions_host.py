"""The agent plane under the Functions host stand-in (function_app.py, the real worker path): the card
comes back rewritten to the gateway, and the a2a-sdk client that follows it gets a streamed message's
events as the agent produces them, not all at once when it is done."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from tests.agents.conftest import agents_world, streamed_as_produced
from tests.agents.servers import STEP_DELAY_S, STEPS, Agents
from tests.harness import DEVELOPER, NewWorld, World


@pytest.fixture(scope="module")
def functions_world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator,
                    agents: Agents) -> Iterator[World]:
    with agents_world(new_world, idp, emulator, agents, host="functions",
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
    arrivals = await streamed_as_produced(alice, functions_world, agents, agent)
    assert arrivals[-1] - arrivals[0] > (STEPS - 1) * STEP_DELAY_S, "the events came all at once"
