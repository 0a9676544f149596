"""Stored responses belong to the caller who created them: recorded at creation, checked on every use.

Every caller shares the gateway's upstream credential, so a `resp_...` id alone would let anyone who
learns it read, chain from, cancel or delete someone else's stored response. So:

- creating one (`store` not false) records its owner before its id reaches the caller: from a JSON
  answer's `id` before the body is relayed, from a stream's first `response.*` event before any byte is
  relayed. If recording fails, the caller gets 503 and the upstream response is deleted (best effort);
- a create that names `previous_response_id` must name one the caller may use, and goes to the account
  that holds it (checked with every other reference inside a body, in `references`); `conversation`
  and `item_reference` inputs name upstream objects the gateway keeps no record of, so they are refused;
- reading, cancelling, deleting and listing the input items of one go to the account in its record, and
  answer 404, exactly as for an id that never existed, to anyone who may not use it (`may_use`).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from ..errors import GatewayError, InvalidRequest, NotFound, Unavailable, UpstreamError
from ..http import Route, route
from ..objects.store import Owned
from ..upstream.answer import Answer
from ..upstream.response import to_starlette
from ..upstream.scoped import AccountRequest, send
from . import by_id
from .query import allowlisted

if TYPE_CHECKING:
    from ..auth.identities import Principal
    from ..config.model import Account, Model
    from ..config.snapshot import View
    from ..http import Call
    from ..runtime import Gateway

log = logging.getLogger("gateway.proxy.responses_store")

KIND = "response"
COLLECTION = "responses"
RESPONSE_ID = re.compile(r"^resp_[A-Za-z0-9_-]{1,200}$")
NO_SUCH = "no such response, or you do not have access to it"
RETENTION_SECONDS = 30 * 86_400
"""How long the upstream keeps a stored response (30 days): its record expires then, and is pruned."""
HELD_LIMIT = 1 << 20
"""Bytes of a stream held back while looking for its response's id."""

_INCLUDE = re.compile(r"^[a-z_]{1,40}(?:\.[a-z_]{1,40}){0,4}$")
_ITEM_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
_BOOLEAN = re.compile(r"^(?:true|false)$")
_QUERY: Mapping[str, Mapping[str, re.Pattern[str]]] = {
    "retrieve": {"include": _INCLUDE, "include[]": _INCLUDE, "stream": _BOOLEAN,
                 "starting_after": re.compile(r"^(?:0|[1-9][0-9]{0,8})$"), "include_obfuscation": _BOOLEAN},
    "delete": {},
    "input_items": {"include": _INCLUDE, "include[]": _INCLUDE, "after": _ITEM_ID, "before": _ITEM_ID,
                    "limit": re.compile(r"^(?:[1-9]|[1-9][0-9]|100)$"),
                    "order": re.compile(r"^(?:asc|desc)$")},
    "cancel": {},
}
"""The query parameters passed on, per action, and what their values must look like."""


_ARRAYS = frozenset({"include", "include[]"})
"""Query parameters that may be given more than once (an array)."""


def no_such_response() -> NotFound:
    """One answer for an unknown, malformed or foreign id: nothing tells them apart."""
    return NotFound(NO_SUCH)


BY_ID = by_id.Kind(KIND, "response", "response_id", RESPONSE_ID, no_such_response)


# -- creating ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Creation:
    """One create request whose answer's id must be recorded before the caller sees it."""

    gw: Gateway
    accounts: Mapping[str, Account]
    owner: str
    model: str
    request_id: str

    async def keep(self, answer: Answer, account: str | None) -> Answer:
        """`answer`, once the response it names is recorded as the caller's."""
        if not 200 <= answer.status < 300 or account is None:
            return answer
        if answer.chunks is None:
            await self._record(_id_of_json(answer.body), answer.body, account)
            return answer
        try:
            held, ident = await _until_identified(answer.chunks)
            await self._record(ident, b"".join(held), account)
        except BaseException:
            if answer.close is not None:
                answer.close()
            raise
        return replace(answer, chunks=_prefixed(held, answer.chunks))

    async def _record(self, ident: str | None, seen: bytes, account: str) -> None:
        if ident is None:
            if b"resp_" in seen:    # an id in an unexpected place: never hand out one not recorded
                raise UpstreamError(f"account {account} answered a stored response without a usable id")
            return
        try:
            known = await self.gw.objects.find(KIND, ident)
            if known is None:
                now = time.time()
                await self.gw.objects.record(Owned(kind=KIND, object_id=ident, account=account,
                                                   owner=self.owner, model=self.model, created=now,
                                                   expires=now + RETENTION_SECONDS))
        except GatewayError as exc:
            log.warning("request %s: the new response's owner was not recorded (%s); deleting it upstream",
                        self.request_id, exc.message)
            await self._discard(ident, account)
            raise Unavailable(f"could not record the owner of a new stored response: {exc.message}",
                              public="the gateway could not record who owns the new response, so it "
                                     "was not kept; try again later") from None
        if known is not None and (known.owner, known.account) != (self.owner, account):
            # Never deleted: the id is someone else's response.
            raise UpstreamError(f"account {account} answered with a response id already recorded for "
                                "another owner or account")

    async def _discard(self, ident: str, account: str) -> None:
        """Best effort: a response nobody may reach is deleted rather than left upstream."""
        target = self.accounts.get(account)
        if target is None:
            return
        try:
            answer = await send(self.gw.forwarder.transport, target,
                                AccountRequest("DELETE", (COLLECTION, ident), self.request_id, v1=True))
        except GatewayError as exc:
            log.warning("request %s: deleting the unrecorded response failed: %s", self.request_id,
                        exc.message)
            return
        if answer.status >= 300:
            log.warning("request %s: deleting the unrecorded response answered HTTP %d", self.request_id,
                        answer.status)


def creation(gw: Gateway, view: View, principal: Principal, model: Model, doc: Mapping[str, Any],
             request_id: str) -> Creation | None:
    """The Creation to keep the answer with (None when nothing is stored). A `previous_response_id` and
    `item_reference` inputs were checked with every other stored-object reference (`references`),
    which already confined `model` to the account holding them."""
    if "conversation" in doc:
        raise InvalidRequest("the gateway does not support 'conversation'; use previous_response_id",
                             param="conversation")
    if doc.get("store") is False:
        return None
    return Creation(gw, view.accounts, principal.user, model.name, request_id)


def _id_of_json(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    ident = doc.get("id") if isinstance(doc, dict) else None
    return ident if isinstance(ident, str) and RESPONSE_ID.match(ident) else None


async def _until_identified(chunks: AsyncIterator[bytes]) -> tuple[list[bytes], str | None]:
    """The chunks read up to the first event naming the response (`response.created` comes first),
    and its id; None when the stream ended, or HELD_LIMIT was read, without one."""
    held: list[bytes] = []
    pending, size = b"", 0
    while size <= HELD_LIMIT:
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            break
        held.append(chunk)
        size += len(chunk)
        pending += chunk.replace(b"\r\n", b"\n")
        *events, pending = pending.split(b"\n\n")
        for event in events:
            ident = _id_of_event(event)
            if ident is not None:
                return held, ident
    return held, None


def _id_of_event(event: bytes) -> str | None:
    data = b"\n".join(line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:"))
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not str(doc.get("type", "")).startswith("response."):
        return None
    response = doc.get("response")
    ident = response.get("id") if isinstance(response, dict) else None
    return ident if isinstance(ident, str) and RESPONSE_ID.match(ident) else None


async def _prefixed(held: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in held:
        yield chunk
    async for chunk in rest:
        yield chunk


# -- using one -----------------------------------------------------------------------------------------

async def _use(call: Call, action: str | None, azure: bool) -> Response:
    found = await by_id.find(call, BY_ID)
    gw, owned, account = found.gw, found.owned, found.account
    req = call.request
    named = action or ("delete" if req.method == "DELETE" else "retrieve")
    query = allowlisted(req.query_params, _QUERY[named], classic=azure, repeatable=_ARRAYS)
    path = (COLLECTION, owned.object_id, *((action,) if action else ()))
    streamed = ("stream", "true") in query     # the upstream's events, relayed as they arrive
    answer = await send(gw.forwarder.transport, account, AccountRequest(
        req.method, path, call.request_id, query=tuple(query), headers=req.headers, stream=streamed, v1=True))
    if named == "retrieve" and answer.status == 404:
        await _gone(gw, owned, call.request_id)
        raise no_such_response()
    if named == "delete" and 200 <= answer.status < 300:
        await _forget(gw, owned, call.request_id)
    return to_starlette(answer)


async def _gone(gw: Gateway, owned: Owned, request_id: str) -> None:
    """The upstream no longer has a recorded response (it expired, or was deleted elsewhere): its
    record goes too, so it stops appearing anywhere."""
    log.info("request %s: the upstream has no response %s any more; forgetting it", request_id,
             owned.object_id)
    await _forget(gw, owned, request_id)


async def _forget(gw: Gateway, owned: Owned, request_id: str) -> None:
    try:
        await gw.objects.forget(owned)
    except GatewayError as exc:     # gone upstream: a stale record finds only the upstream's 404
        log.warning("request %s: the response's record stays: %s", request_id, exc.message)


async def one(call: Call) -> Response:
    return await _use(call, None, azure=False)


async def cancel(call: Call) -> Response:
    return await _use(call, "cancel", azure=False)


async def input_items(call: Call) -> Response:
    return await _use(call, "input_items", azure=False)


async def one_azure(call: Call) -> Response:
    return await _use(call, None, azure=True)


async def cancel_azure(call: Call) -> Response:
    return await _use(call, "cancel", azure=True)


async def input_items_azure(call: Call) -> Response:
    return await _use(call, "input_items", azure=True)


def _routes(prefix: str, name: str, azure: bool) -> tuple[Route, ...]:
    base = f"{prefix}responses/{{response_id}}"
    return (
        route(base, ("GET", "DELETE"), f"response{name}", one_azure if azure else one),
        route(f"{base}/cancel", ("POST",), f"response_cancel{name}", cancel_azure if azure else cancel),
        route(f"{base}/input_items", ("GET",), f"response_input_items{name}",
              input_items_azure if azure else input_items),
    )


ROUTES: tuple[Route, ...] = (*_routes("v1/", "", False), *_routes("openai/v1/", "_azure_v1", False),
                             *_routes("openai/", "_azure", True))
"""The routes about one stored response, on the OpenAI, Azure v1 and Azure classic shapes."""
