"""A2A agents behind the gateway as an A2A client sees them: the official `a2a-sdk` client resolves the
card at <gateway>/agents/<name>, follows it back to the gateway, and sends, streams and gets tasks, in
protocol 1.0 and 0.3, with the caller's own bearer token; the agents are a2a-sdk servers on loopback.
"""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from a2a.types.a2a_pb2 import GetTaskRequest, TaskState

from tests.agents.conftest import a2a_client, message_params, rpc, streamed_as_produced, text_message
from tests.agents.servers import Agents
from tests.harness import World


def _audited(world: World, agent: str, method: str, outcome: str, status: int) -> bool:
    line = re.compile(rf"remote call agent {agent} {re.escape(method)} by user:dev/alice: "
                      rf"{outcome} \({status}\)")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if line.search(world.logs()):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(("agent", "sent"), [("helper", "SendMessage"), ("legacy", "message/send")])
async def test_send_message_then_get_task(http: httpx.AsyncClient, world: World, agents: Agents, agent: str,
                                          sent: str) -> None:
    client = await a2a_client(http, world, agent, streaming=False)
    events = [event async for event in client.send_message(text_message("hello"))]
    assert len(events) == 1
    task = events[0].task
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert task.artifacts[0].parts[0].text == "echo: hello"

    again = await client.get_task(GetTaskRequest(id=task.id))
    assert again.id == task.id and again.status.state == TaskState.TASK_STATE_COMPLETED
    assert agents.seen.methods() == [sent, "GetTask" if agent == "helper" else "tasks/get"]
    assert _audited(world, agent, sent, "ok", 200)
    assert "GetTask" not in world.logs() and "tasks/get" not in world.logs()


@pytest.mark.parametrize(("agent", "sent"), [("helper", "SendStreamingMessage"),
                                             ("legacy", "message/stream")])
async def test_streamed_message_arrives_event_by_event(http: httpx.AsyncClient, world: World, agents: Agents,
                                                       agent: str, sent: str) -> None:
    """Each event reaches the client while the agent is still working: the first before the agent has
    produced the last (they are produced 0.4 s apart), nothing buffered whole."""
    await streamed_as_produced(http, world, agents, agent)
    assert _audited(world, agent, sent, "ok", 200)


@pytest.mark.parametrize("agent", ["helper", "legacy"])
async def test_card_urls_lead_through_the_gateway(http: httpx.AsyncClient, world: World, agents: Agents,
                                                  agent: str) -> None:
    answer = await http.get(f"{world.url}/agents/{agent}/.well-known/agent-card.json")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    card = answer.json()
    endpoint = f"{world.url}/agents/{agent}"
    assert agents.url not in answer.text, "an agent URL was left in the card"
    urls = [i["url"] for i in card.get("supportedInterfaces", []) + card.get("additionalInterfaces", [])]
    assert urls and set(urls) == {endpoint}
    assert card.get("url", endpoint) == endpoint
    assert list(card["securitySchemes"]) == ["gateway"] and "signatures" not in card
    assert all("securityRequirements" not in skill and "security" not in skill for skill in card["skills"])
    assert card["name"] in ("Echo agent", "Legacy echo")


async def test_extended_card_is_rewritten_too(http: httpx.AsyncClient, world: World, agents: Agents) -> None:
    answer = await http.post(f"{world.url}/agents/helper", json=rpc("GetExtendedAgentCard"),
                             headers={"A2A-Version": "1.0"})
    card = answer.json()["result"]
    assert card["name"] == "Echo agent (extended)"
    assert agents.url not in answer.text
    assert {i["url"] for i in card["supportedInterfaces"]} == {f"{world.url}/agents/helper"}


async def test_host_header_does_not_steer_card_urls(http: httpx.AsyncClient, world: World) -> None:
    """The card's URLs come from GATEWAY_PUBLIC_URL, never from the Host header a caller writes."""
    answer = await http.get(f"{world.url}/agents/helper/.well-known/agent-card.json",
                            headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"})
    assert answer.status_code == 200 and "evil" not in answer.text


@pytest.mark.parametrize(("caller", "agent", "status"), [
    ("alice", "helper", 200),        # viewer on agent:helper
    ("bob", "helper", 200),          # viewer on workspace:research, which holds helper
    ("bob", "legacy", 404),          # nothing on legacy
    ("carol", "helper", 404),        # no role anywhere
    ("alice", "no-such-agent", 404),
    ("alice", "nourl", 404),         # configured without a url: not served
])
async def test_access_needs_viewer_on_the_agent(world: World, caller: str, agent: str, status: int) -> None:
    headers = {"Authorization": f"Bearer {world.tokens[caller]}", "A2A-Version": "1.0"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        posted = await client.post(f"{world.url}/agents/{agent}", json=rpc("GetTask", {"id": "none"}))
        card = await client.get(f"{world.url}/agents/{agent}/.well-known/agent-card.json")
    assert posted.status_code == card.status_code == status
    if status == 404:
        assert posted.json() == {"jsonrpc": "2.0", "id": "req-1", "error": {
            "code": -32000, "message": "no such agent, or you do not have access to it",
            "data": {"gateway_error": "not_found"}}}
        assert card.json()["error"] == {"message": "no such agent, or you do not have access to it",
                                        "type": "invalid_request_error", "code": "not_found", "param": None}


async def test_no_token_is_refused_before_anything_else(world: World, agents: Agents) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(f"{world.url}/agents/helper", json=rpc("SendMessage", message_params("x")))
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "missing_token"
    assert agents.seen.requests == []


@pytest.mark.parametrize(("body", "code", "status"), [
    (b"{", -32700, 400),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "method": "GetTask"}', -32700, 400),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"n": NaN}}', -32700, 400),
    (b'[{"jsonrpc": "2.0", "id": 1, "method": "SendMessage"}]', -32600, 400),
    (b'{"id": 1, "method": "SendMessage"}', -32600, 400),
    (b'{"jsonrpc": "2.0", "id": 1}', -32600, 400),
])
async def test_malformed_requests_get_json_rpc_errors(http: httpx.AsyncClient, world: World, agents: Agents,
                                                      body: bytes, code: int, status: int) -> None:
    answer = await http.post(f"{world.url}/agents/helper", content=body,
                             headers={"Content-Type": "application/json"})
    assert answer.status_code == status
    assert answer.json()["jsonrpc"] == "2.0" and answer.json()["error"]["code"] == code
    assert agents.seen.requests == []


async def test_slow_agent_answers_a_json_rpc_timeout_error(http: httpx.AsyncClient, world: World) -> None:
    started = time.monotonic()
    answer = await http.post(f"{world.url}/agents/slow", json=rpc("SendMessage", message_params("slow"), 7),
                             headers={"A2A-Version": "1.0"})
    assert time.monotonic() - started < 2.5
    assert answer.status_code == 504
    body = answer.json()
    assert body["id"] == 7 and body["error"]["code"] == -32603
    assert "did not answer" in body["error"]["message"]
    assert body["error"]["data"] == {"gateway_error": "upstream_timeout"}
    assert _audited(world, "slow", "SendMessage", "timeout", 504)


async def test_silent_stream_ends_with_a_json_rpc_error_event(http: httpx.AsyncClient, world: World) -> None:
    """The agent sends its task, then is silent for longer than the timeout: the caller has the task,
    then a final JSON-RPC error event, and the stream ends."""
    body = rpc("SendStreamingMessage", message_params("slow"))
    async with http.stream("POST", f"{world.url}/agents/slow", json=body,
                           headers={"A2A-Version": "1.0", "Accept": "text/event-stream"}) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[5:]) async for line in answer.aiter_lines() if line.startswith("data:")]
    assert "task" in events[0]["result"]
    assert events[-1]["error"]["code"] == -32603 and "silent" in events[-1]["error"]["message"]
    assert _audited(world, "slow", "SendStreamingMessage", "timeout", 200)


async def test_a_stream_the_caller_abandons_is_audited_when_it_ends(http: httpx.AsyncClient,
                                                                    world: World) -> None:
    body = rpc("SendStreamingMessage", message_params("leaving early"))
    async with http.stream("POST", f"{world.url}/agents/helper", json=body,
                           headers={"A2A-Version": "1.0", "Accept": "text/event-stream"}) as answer:
        async for line in answer.aiter_lines():
            if line.startswith("data:"):
                break
    assert _audited(world, "helper", "SendStreamingMessage", "failed", 200)
