"""The route table both hosts serve: function_app.py (Azure Functions) and server.py (uvicorn).

It only composes the planes' own tables (each plane registers its routes) and ends with the fallback
that answers 404 or 405 for everything else, so even an unknown path gets the gateway's error body
and an `x-request-id`.
"""

from __future__ import annotations

from .agents import ROUTES as AGENT_ROUTES
from .console import ROUTES as CONSOLE_ROUTES
from .http import Route, fallback
from .manage.routes import ROUTES as MANAGE_ROUTES
from .mcp import ROUTES as MCP_ROUTES
from .proxy import ROUTES as PROXY_ROUTES

PLANES: tuple[Route, ...] = (*PROXY_ROUTES, *MCP_ROUTES, *AGENT_ROUTES, *MANAGE_ROUTES,
                              *CONSOLE_ROUTES)
ROUTES: tuple[Route, ...] = (*PLANES, fallback(PLANES))
