"""The agent plane: A2A agents behind the gateway's identities and roles (docs/mcp-and-agents.md).

`ROUTES` is this plane's route table; shared/routes.py composes it with the other planes'.

    rpc        the JSON-RPC envelope: the request a caller posts, the error it gets back
    handlers   the two routes: authenticate, authorize on agent:<name>, relay or serve the card, audit
    relay      one JSON-RPC request to the agent and its answer back, headers allowlisted both ways
    stream     an SSE answer relayed as it arrives, its outcome noticed for the audit
    card       the agent's card fetched with the gateway's outbound auth, kept briefly
    rewrite    the card made to lead every caller through the gateway
    failures   what a failed exchange with an agent means to the caller
"""

from __future__ import annotations

from ..http import Route, route
from . import handlers

ROUTES: tuple[Route, ...] = (
    route("agents/{name}", ("POST",), "agent_message", handlers.message),
    route("agents/{name}/.well-known/agent-card.json", ("GET",), "agent_card", handlers.card),
)
