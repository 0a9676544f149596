"""A2A agents on loopback for the agent-plane tests, built with the official `a2a-sdk` server.

One Starlette app serves several agents under different paths:

    /a2a                                  an a2a-sdk JSON-RPC endpoint (protocol 1.0, 0.3 compatible;
                                          it has an extended card too)
    /.well-known/agent-card.json          its card, as the SDK serves it (both card shapes merged)
    /legacy/a2a, /legacy/card.json        the same agent behind a card of protocol 0.3 only
    /bounce                               answers every request with a redirect to /elsewhere
    /elsewhere                            where the redirect leads (must never be reached)

The agent answers every message with a task: `STEPS` status updates `STEP_DELAY_S` apart, then an
artifact echoing the text, then completion; the text `slow` makes it wait `SLOW_S` first. It notes
when it produced each event, and every request's headers are recorded, so a test can see what
reached it and when. Every response carries hostile headers the gateway must not relay.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from a2a.helpers.proto_helpers import new_task_from_user_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events.event_queue_v2 import EventQueue
from a2a.server.request_handlers import DefaultRequestHandlerV2
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    SecurityScheme,
    TaskState,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sandbox.azurite import free_port

STEPS = 3
STEP_DELAY_S = 0.4
SLOW_S = 3.0
HOSTILE = {"Set-Cookie": "agent_session=evil-cookie; Path=/", "Server": "Hostile-Agent/1.0",
           "WWW-Authenticate": 'Bearer realm="evil-realm"', "X-Agent-Internal": "evil-internal",
           "Location": "https://evil.example/steal"}


@dataclass
class Seen:
    """What reached the agents: each request's path and headers (names lower-cased), each body, and
    when the agent produced each streamed event (time.monotonic)."""

    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    bodies: list[tuple[str, bytes]] = field(default_factory=list)
    produced: list[float] = field(default_factory=list)

    def headers(self, path: str) -> list[dict[str, str]]:
        return [headers for seen, headers in self.requests if seen == path]

    def methods(self) -> list[str]:
        """The JSON-RPC methods posted, in order."""
        return [json.loads(body)["method"] for _, body in self.bodies if body.startswith(b"{")]

    def clear(self) -> None:
        self.requests.clear()
        self.bodies.clear()
        self.produced.clear()


class StepsExecutor(AgentExecutor):
    def __init__(self, seen: Seen) -> None:
        self._seen = seen

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input()
        assert context.message is not None
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        if text == "slow":
            await asyncio.sleep(SLOW_S)
        for step in range(STEPS):
            self._seen.produced.append(time.monotonic())
            await updater.update_status(TaskState.TASK_STATE_WORKING,
                                        message=new_text_message(f"step {step}", task_id=task.id,
                                                                 context_id=task.context_id))
            await asyncio.sleep(STEP_DELAY_S)
        await updater.add_artifact([new_text_part(f"echo: {text}")], name="echo")
        self._seen.produced.append(time.monotonic())
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def agent_card(base: str) -> AgentCard:
    """A 1.0 card with a JSON-RPC and a gRPC interface, an OAuth scheme of the agent's own, a skill
    with its own requirement, and informational links."""
    card = AgentCard(
        name="Echo agent", description="Echoes, step by step", version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=f"{base}/a2a", protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url=f"{base}/grpc", protocol_binding="GRPC", protocol_version="1.0")],
        capabilities=AgentCapabilities(streaming=True, extended_agent_card=True),
        default_input_modes=["text/plain"], default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="echo", description="echoes", tags=["echo"])],
        documentation_url="https://docs.example/echo")
    card.security_schemes["agent-oauth"].CopyFrom(SecurityScheme())
    flow = card.security_schemes["agent-oauth"].oauth2_security_scheme.flows.client_credentials
    flow.token_url = f"{base}/token"
    flow.scopes["echo"] = "use the echo skill"
    card.security_requirements.add().schemes["agent-oauth"].list.append("echo")
    card.skills[0].security_requirements.add().schemes["agent-oauth"].list.append("echo")
    return card


def legacy_card(base: str) -> dict[str, Any]:
    """A card as a 0.3 agent writes it: top-level url and transport, additional interfaces."""
    return {"name": "Legacy echo", "description": "0.3 agent", "version": "0.3.0", "protocolVersion": "0.3.0",
            "url": f"{base}/legacy/a2a", "preferredTransport": "JSONRPC",
            "additionalInterfaces": [{"url": f"{base}/legacy/a2a", "transport": "JSONRPC"},
                                     {"url": f"{base}/legacy/grpc", "transport": "GRPC"}],
            "capabilities": {"streaming": True}, "defaultInputModes": ["text/plain"],
            "defaultOutputModes": ["text/plain"],
            "skills": [{"id": "echo", "name": "echo", "description": "echoes", "tags": ["echo"]}],
            "securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "X-Agent-Key"}},
            "security": [{"key": []}],
            "signatures": [{"protected": "e30", "signature": "c2ln"}]}


class Recorder:
    """ASGI middleware: records each request, adds the hostile headers to each response."""

    def __init__(self, app: Any, seen: Seen) -> None:
        self._app = app
        self._seen = seen

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path = scope["path"]
        self._seen.requests.append((path, {k.decode().lower(): v.decode() for k, v in scope["headers"]}))
        chunks: list[bytes] = []

        async def recording() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    self._seen.bodies.append((path, b"".join(chunks)))
            return message

        async def hostile(message: Any) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in HOSTILE.items()]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self._app(scope, recording, hostile)


class Agents:
    """The app above under uvicorn, in the session's background loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen = Seen()
        card = agent_card(self.url)
        extended = agent_card(self.url)
        extended.name = "Echo agent (extended)"
        handler = DefaultRequestHandlerV2(StepsExecutor(self.seen), InMemoryTaskStore(), card,
                                          extended_agent_card=extended)
        routes = [*create_agent_card_routes(card),
                  *create_jsonrpc_routes(handler, "/a2a", enable_v0_3_compat=True),
                  *create_jsonrpc_routes(handler, "/legacy/a2a", enable_v0_3_compat=True),
                  Route("/legacy/card.json", self._legacy_card),
                  Route("/bounce", self._bounce, methods=["GET", "POST"]),
                  Route("/elsewhere", self._elsewhere, methods=["GET", "POST"])]
        app = Recorder(Starlette(routes=routes), self.seen)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def _legacy_card(self, request: Request) -> Response:
        return JSONResponse(legacy_card(self.url))

    async def _bounce(self, request: Request) -> Response:
        return RedirectResponse(f"{self.url}/elsewhere", status_code=307)

    async def _elsewhere(self, request: Request) -> Response:
        return JSONResponse({"jsonrpc": "2.0", "id": 1, "result": {"reached": "elsewhere"}})

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stops serving, then cancels what the SDK left running (tasks of abandoned streams)."""
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
