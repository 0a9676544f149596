"""A Microsoft Graph fake on loopback: `POST /v1.0/users/{id}/getMemberGroups`, for the gateway's group
overage lookups.

Answers only to a bearer token the fake Entra issued for https://graph.microsoft.com (401 otherwise), with
the user's group ids `page_size` at a time, each page but the last carrying an `@odata.nextLink` back to
itself (or, with `next_link_host`, to another host, which the gateway must not follow). Counts every
call; `failing` makes it answer 503. Plain http, development tooling only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from .entra import FakeEntra

GRAPH_RESOURCE = "https://graph.microsoft.com"


@dataclass
class GraphCall:
    user: str
    authorized: bool
    body: object
    authorization: str = field(repr=False, default="")


class FakeGraph:
    def __init__(self, entra: FakeEntra, *, host: str = "127.0.0.1", port: int = 0,
                 page_size: int = 2) -> None:
        self.entra = entra
        self.host, self.port = host, port
        self.page_size = page_size
        self.members: dict[str, list[str]] = {}     # user object id -> group ids
        self.calls: list[GraphCall] = []
        self.failing = False
        self.next_link_host: str | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1.0/users/{user}/getMemberGroups", self._member_groups)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _member_groups(self, request: web.Request) -> web.Response:
        user = request.match_info["user"]
        authorization = request.headers.get("Authorization", "")
        authorized = self.entra.verify(authorization.removeprefix("Bearer "), GRAPH_RESOURCE)
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.calls.append(GraphCall(user, authorized, body, authorization))
        if not authorized:
            return web.json_response({"error": {"code": "InvalidAuthenticationToken"}}, status=401)
        if self.failing:
            return web.json_response({"error": {"code": "serviceNotAvailable"}}, status=503)
        if user not in self.members:
            return web.json_response({"error": {"code": "Request_ResourceNotFound"}}, status=404)
        start = int(request.query.get("$skiptoken", "0"))
        groups = self.members[user]
        page: dict[str, object] = {"value": groups[start:start + self.page_size]}
        if start + self.page_size < len(groups):
            host = self.next_link_host or f"{self.host}:{self.port}"
            page["@odata.nextLink"] = (f"http://{host}/v1.0/users/{user}/getMemberGroups"
                                       f"?$skiptoken={start + self.page_size}")
        return web.json_response(page)
