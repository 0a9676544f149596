"""The documents an MCP client reads before it calls: the server's protected-resource metadata
(RFC 9728), which names where to get a token, and the keys of the gateway's identity assertions.

Neither needs a token. The metadata reads the same for every well-formed name, configured or not, so
it reveals no server's existence; it lists the issuers of the configured identity providers (the
gateway accepts their tokens, for every server alike).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import JSONResponse, Response

from .. import runtime
from ..config.schema import NAME_RE
from ..errors import NotFound

if TYPE_CHECKING:
    from ..http import Call

CACHE = "public, max-age=300"


async def protected_resource(call: Call) -> Response:
    name = call.request.path_params["name"]
    if not NAME_RE.match(name):
        raise NotFound("no such route: see the README for the gateway's routes")
    gw = await runtime.gateway()
    view = await gw.snapshot.current()
    issuers = sorted({p.issuer for p in view.config.identity_providers if p.issuer})
    return JSONResponse({"resource": f"{gw.settings.public_url}/mcp/{name}",
                         "authorization_servers": issuers,
                         "bearer_methods_supported": ["header"]},
                        headers={"Cache-Control": CACHE})


async def jwks(call: Call) -> Response:
    """The public keys a server verifies the gateway's identity assertions with."""
    gw = await runtime.gateway()
    return JSONResponse(gw.remote.assertions.jwks(), headers={"Cache-Control": CACHE})
