"""Answers /console requests: the page, a hashed asset, or the gateway's 404, each with the headers that
keep the console's page from running anything but its own files.

The page lives at /console/ so that its relative references resolve inside /console/ behind any path
prefix; /console alone is sent there with a relative redirect for the same reason.
"""

from __future__ import annotations

from starlette.responses import Response

from ..errors import GatewayError, NotFound, to_response
from ..http import Call
from .assets import BUNDLE, Asset

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
PAGE_CACHE = "no-cache"
ASSET_CACHE = "public, max-age=31536000, immutable"


def _file(asset: Asset, cache: str) -> Response:
    return Response(asset.body, media_type=asset.content_type,
                    headers={"cache-control": cache, "etag": asset.etag})


def _answer(rest: str) -> Response:
    """`rest` is the path after /console."""
    if rest == "":
        return Response(status_code=308, headers={"location": "console/", "cache-control": PAGE_CACHE})
    if rest in ("/", "/index.html"):
        return _file(BUNDLE.index, PAGE_CACHE)
    parts = rest.split("/")
    if len(parts) == 4 and parts[1] == "a" and parts[2] == BUNDLE.release and parts[3] in BUNDLE.assets:
        return _file(BUNDLE.assets[parts[3]], ASSET_CACHE)
    raise NotFound("no such console file")


async def serve(call: Call) -> Response:
    path: str = call.request.scope["path"]
    try:
        if path != "/console" and not path.startswith("/console/"):
            raise NotFound("no such console file")
        response = _answer(path.removeprefix("/console"))
    except GatewayError as exc:
        response = to_response(exc, call.request_id)
    response.headers.update(SECURITY_HEADERS)
    return response
