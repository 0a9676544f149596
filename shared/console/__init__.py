"""The console plane: the operator console's static files under /console/ (docs/console.md).

The console is HTML, CSS and ES modules with no build step; the browser code talks to /manage and the
data plane over HTTP like any other client, so this plane serves files and nothing else.

    assets     the allowlist of files read once from static/, and index.html pointing at their hash
    handlers   the /console routes: the page, a hashed asset or the gateway's 404, with the headers
"""

from __future__ import annotations

from ..http import Route, route
from . import handlers

ROUTES: tuple[Route, ...] = (
    route("console", ("GET",), "console_page", handlers.serve),
    route("console/{*path}", ("GET",), "console_file", handlers.serve),
)
