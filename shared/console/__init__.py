"""The console plane: the operator console's static files under /console/ (docs/console.md).

The console is HTML, CSS and ES modules with no build step; the browser code talks to /manage and the
data plane over HTTP like any other client, so this plane serves files, and the two unauthenticated
routes of sign-in with an identity provider (authorization code + PKCE), which give the page its token.

    assets     the allowlist of files read once from static/, and index.html pointing at their hash
    handlers   the /console routes: the page, a hashed asset or the gateway's 404, with the headers
    endpoints  a provider's authorization and token endpoints, from its OpenID configuration
    exchange   a code exchange request checked, and the code redeemed at the provider
    signin     the sign-in routes: the providers offered, and the code exchange
"""

from __future__ import annotations

from ..http import Route, route
from . import handlers, signin

ROUTES: tuple[Route, ...] = (    # sign-in before the files' catch-all
    route("console/auth/providers", ("GET",), "console_signin_providers", signin.providers),
    route("console/auth/token", ("POST",), "console_signin_token", signin.token),
    route("console", ("GET",), "console_page", handlers.serve),
    route("console/{*path}", ("GET",), "console_file", handlers.serve),
)
