"""The console's sign-in routes, unauthenticated by nature (they are how a browser gets a token):
`GET /console/auth/providers` lists the providers that offer it, `POST /console/auth/token` redeems a
code from one of them (exchange.py). Both answer `Cache-Control: no-store` and the console's headers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import JSONResponse, Response

from .. import runtime
from ..auth.fetch import HttpFetcher
from ..config.model import IdentityProvider
from ..errors import GatewayError, InvalidRequest, NotFound, Unavailable, to_response
from ..http import Call
from .endpoints import EndpointCache, EndpointsError
from .exchange import check_origin, read_request, redeem
from .handlers import SECURITY_HEADERS

log = logging.getLogger("gateway.console.signin")

MAX_BODY = 16 * 1024
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
_cache: EndpointCache | None = None


def _endpoints(gw: runtime.Gateway) -> EndpointCache:
    global _cache
    if _cache is None:
        _cache = EndpointCache(allow_http_loopback=gw.settings.allow_http_loopback)
    return _cache


def _answered(work: Callable[[Call], Awaitable[dict[str, Any]]]) -> Callable[[Call], Awaitable[Response]]:
    """`work`'s JSON, or its failure as the gateway's error body, never cached, with the console's headers."""

    async def answer(call: Call) -> Response:
        try:
            response: Response = JSONResponse(await work(call))
        except GatewayError as exc:
            response = to_response(exc, call.request_id)
        response.headers.update({**SECURITY_HEADERS, **NO_STORE})
        return response

    return answer


async def _offer(cache: EndpointCache, provider: IdentityProvider) -> dict[str, Any] | None:
    try:
        found = await cache.of(provider)
    except EndpointsError as exc:
        log.warning("console sign-in: identity provider %s left out: %s", provider.name, exc)
        return None
    return {"name": provider.name, "client_id": provider.console_client_id,
            "authorization_endpoint": found.authorization, "scopes": list(provider.console_scopes)}


async def _providers(call: Call) -> dict[str, Any]:
    gw = await runtime.gateway()
    view = await gw.snapshot.current()
    offered = [p for p in view.config.identity_providers if p.console_client_id]
    cache = _endpoints(gw)
    cache.forget({p.name for p in offered})
    found = await asyncio.gather(*(_offer(cache, p) for p in offered))
    return {"providers": [p for p in found if p is not None]}


async def _token(call: Call) -> dict[str, Any]:
    headers = call.request.headers
    origin = check_origin(headers.get("origin"), headers.get("host"), headers.get("sec-fetch-site"))
    if headers.get("content-type", "").split(";", 1)[0].strip().lower() != "application/json":
        raise InvalidRequest("the code exchange is sent as application/json")
    request = read_request(await call.json(MAX_BODY), origin)
    gw = await runtime.gateway()
    view = await gw.snapshot.current()
    provider = next((p for p in view.config.identity_providers
                     if p.name == request.provider and p.console_client_id), None)
    if provider is None or provider.console_client_id is None:
        raise NotFound(f"no identity provider {request.provider!r} offers console sign-in", param="provider")
    try:
        endpoints = await _endpoints(gw).of(provider)
    except EndpointsError as exc:
        log.warning("console sign-in with %s: %s", provider.name, exc)
        raise Unavailable(f"the identity provider {provider.name}'s sign-in endpoints cannot be read now "
                          "(the gateway's log says why)") from None
    fetcher = HttpFetcher(allow_http_loopback=gw.settings.allow_http_loopback)
    try:
        signed = await redeem(fetcher, endpoints.token, provider.console_client_id, request,
                              allow_private_network=provider.allow_private_network)
    finally:
        await fetcher.aclose()
    return {"token": signed.token, "expires_in": signed.expires_in, "token_type": signed.token_type}


providers = _answered(_providers)
token = _answered(_token)
