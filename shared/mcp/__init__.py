"""The MCP plane: MCP servers behind the gateway's identities and roles (docs/mcp-and-agents.md).

`ROUTES` is this plane's route table; shared/routes.py composes it with the other planes'.
"""

from __future__ import annotations

from ..http import Route
from . import oauth_routes

ROUTES: tuple[Route, ...] = (*oauth_routes.ROUTES,)
