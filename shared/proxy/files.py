"""The files API, each file reachable only by the caller who uploaded it: list, retrieve, content, delete.

Every caller shares the gateway's credential for an account, so a file id alone would open anyone's
file. An id is served only when the gateway recorded the file (at upload, see `upload`) and the caller
may use it (its owner, a manager of the model it was uploaded through, or an admin); anything else,
a malformed id included, is the same 404 as an id that never existed, and nothing is forwarded. A
recorded file is asked of the account that holds it, on that account's surface (`scoped`).

A list asks each account holding one of the caller's files for its files and keeps only the caller's;
`purpose` is passed on, and `order`, `after` and `limit` are applied by the gateway to what is kept,
so paging walks the caller's own files.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse, Response

from ..callers import authenticate
from ..errors import InvalidRequest, NotFound
from ..http import Route, route
from ..objects.access import may_use
from ..upstream.response import to_starlette
from ..upstream.scoped import AccountRequest, send
from . import by_id, listing
from .query import classic_version

if TYPE_CHECKING:
    from ..config.model import Account
    from ..http import Call
    from ..objects.store import Owned
    from ..runtime import Gateway

FILE_ID = re.compile(r"^(?:file|assistant)-[A-Za-z0-9_-]{1,200}$")
"""Azure's file ids: `file-...`, and `assistant-...` for some assistants files."""
PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
MAX_LIST = 10_000
NO_SUCH_FILE = "no such file, or you do not have access to it"


def no_such_file() -> NotFound:
    """One answer for an unknown, malformed or foreign id: nothing tells them apart."""
    return NotFound(NO_SUCH_FILE, param="file_id")


KIND = by_id.Kind("file", "file", "file_id", FILE_ID, no_such_file)


def purpose_of(value: str | None) -> str | None:
    if value is not None and value not in PURPOSES:
        raise InvalidRequest("purpose must be one of " + ", ".join(sorted(PURPOSES)), param="purpose")
    return value


async def _owned(call: Call) -> tuple[Gateway, Owned, Account]:
    """The caller's file named in the path, and the account that holds it."""
    found = await by_id.find(call, KIND)
    return found.gw, found.owned, found.account


async def retrieve(call: Call) -> Response:
    gw, owned, account = await _owned(call)
    answer = await send(gw.forwarder.transport, account,
                        AccountRequest("GET", ("files", owned.object_id), call.request_id,
                                       headers=call.request.headers))
    if answer.status == 404:    # gone upstream (expired, or deleted elsewhere): so goes its record
        await gw.objects.forget(owned)
        raise no_such_file()
    return to_starlette(answer)


async def content(call: Call) -> Response:
    """The file's bytes, relayed as they arrive (a file may be far larger than any request body)."""
    gw, owned, account = await _owned(call)
    answer = await send(gw.forwarder.transport, account,
                        AccountRequest("GET", ("files", owned.object_id, "content"), call.request_id,
                                       headers=call.request.headers, stream=True))
    return to_starlette(answer)


async def delete(call: Call) -> Response:
    """Forgets the file only once its account confirmed the delete: a failed delete keeps it owned."""
    gw, owned, account = await _owned(call)
    answer = await send(gw.forwarder.transport, account,
                        AccountRequest("DELETE", ("files", owned.object_id), call.request_id,
                                       headers=call.request.headers))
    if 200 <= answer.status < 300:
        await gw.objects.forget(owned)
    return to_starlette(answer)


async def list_files(call: Call) -> Response:
    gw, view, principal = await authenticate(call)
    query = call.request.query_params
    purpose = purpose_of(listing.single(query, "purpose"))
    paging = listing.paging(query, max_limit=MAX_LIST)
    mine = {o.object_id: o for o in await gw.objects.owned_by("file", principal.user)
            if may_use(o, principal.principals, view.policy)}
    found = await listing.gather(gw, view, mine, listing.Listing(
        ("files",), "file", {"purpose": purpose} if purpose else {}), call.request_id, call.request.headers)
    if isinstance(found, Response):
        return found
    return JSONResponse(listing.page(found, paging, mine, "file"))


Work = Callable[["Call"], Awaitable[Response]]


def classic(work: Work) -> Work:
    """The Azure classic shape (/openai/files...): the same work, once its api-version is well formed.
    The account's own api-version is what goes upstream."""

    async def checked(call: Call) -> Response:
        classic_version(call.request.query_params)
        return await work(call)

    return checked


def by_method(works: dict[str, Work]) -> Work:
    """One route per path (both hosts match a path once), each method its own work."""

    async def dispatch(call: Call) -> Response:
        return await works[call.request.method](call)

    return dispatch


def routes(create: Work) -> tuple[Route, ...]:
    """The files routes on the three shapes: /v1, /openai/v1 and the classic /openai (api-version)."""
    shapes = (("v1/files", ""), ("openai/v1/files", "_azure_v1"), ("openai/files", "_azure"))
    out: list[Route] = []
    for path, suffix in shapes:
        wrap = classic if suffix == "_azure" else (lambda w: w)
        out += [
            route(path, ("GET", "POST"), f"files{suffix}",
                  wrap(by_method({"GET": list_files, "POST": create}))),
            route(path + "/{file_id}", ("GET", "DELETE"), f"file{suffix}",
                  wrap(by_method({"GET": retrieve, "DELETE": delete}))),
            route(path + "/{file_id}/content", ("GET",), f"file_content{suffix}", wrap(content)),
        ]
    return tuple(out)
