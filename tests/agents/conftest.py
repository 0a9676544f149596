"""One world for the agent-plane tests: the A2A agents of servers.py on loopback, and a gateway whose
public URL is its own address (so an A2A client can follow the rewritten card back to it).

Agents: `helper` (1.0, in workspace research, identity-assertion auth), `legacy` (behind a 0.3 card),
`slow` (the helper with a 1 s timeout), `bouncer` (answers redirects), `nourl` (no url). Callers:
alice (viewer on each agent), bob (viewer on workspace research), carol (no role at all).
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types.a2a_pb2 import Message, Part, Role, SendMessageRequest, TaskState

from sandbox.azurite import free_port
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from tests.agents.servers import STEPS, Agents
from tests.harness import DEVELOPER, NewWorld, World, sandbox_config

SEALING_KEY = bytes(range(32))
ALICE_AGENTS = ("helper", "legacy", "slow", "bouncer", "nourl")


@pytest.fixture(scope="module")
def agents() -> Iterator[Agents]:
    """The agents in a loop of their own, so stopping them can end everything the SDK started."""
    with BackgroundLoop() as loop:
        server = Agents()
        loop.run(server.start())
        yield server
        loop.run(server.stop())


def agents_config(idp: DevIdentityProvider, emulator: AzureOpenAIEmulator, base: str) -> dict[str, Any]:
    doc = sandbox_config(idp, emulator)
    doc["workspaces"] = [{"name": "research"}]
    doc["agents"] = [
        {"name": "helper", "workspace": "research", "url": f"{base}/a2a",
         "auth": {"type": "identity-assertion"}},
        {"name": "legacy", "url": f"{base}/legacy/a2a", "card_url": f"{base}/legacy/card.json"},
        {"name": "slow", "url": f"{base}/a2a", "timeout_s": 1},
        {"name": "bouncer", "url": f"{base}/bounce"},
        {"name": "nourl"},
    ]
    doc["collaborators"] = [
        *doc["collaborators"],
        *({"resource": f"agent:{name}", "principal": "user:dev/alice", "role": "viewer"}
          for name in ALICE_AGENTS),
        {"resource": "workspace:research", "principal": "user:dev/bob", "role": "viewer"},
    ]
    return doc


@contextmanager
def agents_world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator, agents: Agents,
                 **options: Any) -> Iterator[World]:
    """A gateway in front of the agents whose public URL is its own address (`options`: for new_world)."""
    port = free_port()
    env = {"GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
           "GATEWAY_SEALING_KEY": base64.b64encode(SEALING_KEY).decode()}
    with new_world(config=agents_config(idp, emulator, agents.url), env=env, port=port, **options) as world:
        yield world


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator,
          agents: Agents) -> Iterator[World]:
    with agents_world(new_world, idp, emulator, agents,
                      tokens={"alice": DEVELOPER, "bob": None, "carol": None}) as world:
        yield world


@pytest.fixture(autouse=True)
def _fresh(agents: Agents) -> None:
    agents.seen.clear()


@pytest.fixture
async def http(world: World) -> AsyncIterator[httpx.AsyncClient]:
    """Alice's HTTP client: her bearer token on every request."""
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {world.tokens['alice']}"},
                                 timeout=30) as client:
        yield client


def rpc(method: str, params: dict[str, Any] | None = None, rpc_id: Any = "req-1") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params or {}}


async def a2a_client(http: httpx.AsyncClient, world: World, name: str, *, streaming: bool) -> Any:
    """The a2a-sdk client an A2A caller makes: the card resolved at <gateway>/agents/<name>, followed."""
    card = await A2ACardResolver(http, f"{world.url}/agents/{name}").get_agent_card()
    return ClientFactory(ClientConfig(httpx_client=http, streaming=streaming)).create(card)


def text_message(text: str) -> SendMessageRequest:
    return SendMessageRequest(message=Message(role=Role.ROLE_USER, message_id=f"m-{time.monotonic_ns()}",
                                              parts=[Part(text=text)]))


async def streamed_as_produced(http: httpx.AsyncClient, world: World, agents: Agents,
                               agent: str) -> list[float]:
    """A streamed message through the a2a-sdk client, every event in order (the task, a status update
    per step, the artifact, completion), the first while the agent was still working; when each came."""
    client = await a2a_client(http, world, agent, streaming=True)
    arrivals: list[tuple[float, Any]] = []
    async for event in client.send_message(text_message("stream me")):
        arrivals.append((time.monotonic(), event))
    kinds = [event.WhichOneof("payload") for _, event in arrivals]
    assert kinds[0] == "task" and kinds.count("status_update") >= STEPS and "artifact_update" in kinds
    assert arrivals[-1][1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    assert arrivals[0][0] < agents.seen.produced[-1] - 0.5, "the first event came once the agent was done"
    return [when for when, _ in arrivals]


def message_params(text: str) -> dict[str, Any]:
    """SendMessage's params in protocol 1.0's JSON."""
    return {"message": {"role": "ROLE_USER", "messageId": "m-" + text, "parts": [{"text": text}]}}
