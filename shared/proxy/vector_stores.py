"""Vector stores, each reachable only by the caller who created it: create, list, retrieve, update, delete,
search.

A vector store belongs to an account, but callers are granted models; so a create names a gateway model
the caller holds viewer on (query parameter `model`, or a body member `model` that is not sent on), and
the store goes to the account of that model's first usable target, as an uploaded file does. Every file
in `file_ids` must be one the caller may use in that same account. The store is recorded as the
caller's before its id reaches them; if the record cannot be written, the store is deleted upstream
again and the caller gets 503. A delete forgets the record only once the account confirmed it.

A list asks each account holding one of the caller's stores and keeps only the caller's own, paged by
the gateway (`listing`).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response

from ..callers import authenticate
from ..errors import GatewayError, InvalidRequest, ModelNotFound, Unavailable, UpstreamError
from ..objects.access import may_use
from ..objects.store import Owned
from ..upstream.response import to_starlette
from ..upstream.scoped import AccountRequest, send
from . import listing
from . import vector_store_access as access
from .upload import account_of

if TYPE_CHECKING:
    from ..config.model import Account
    from ..http import Call
    from ..runtime import Gateway

log = logging.getLogger("gateway.proxy.vector_stores")

CREATE = ("name", "description", "file_ids", "expires_after", "chunking_strategy", "metadata")
UPDATE = ("name", "expires_after", "metadata")
SEARCH = ("query", "filters", "max_num_results", "ranking_options", "rewrite_query")
MAX_LIST, DEFAULT_LIST = 100, 20
_MODEL = {"model": re.compile(r"^.{1,256}$")}
_LIST = {"after": access.STORE_ID, "limit": access.LIMIT, "order": access.ORDER}


async def create(call: Call, classic: bool) -> Response:
    gw, view, principal = await authenticate(call)
    query = dict(access.query_of(call, _MODEL, classic))
    doc = await access.body_of(call, (*CREATE, "model"), gw.settings.max_body_bytes)
    model_name = _model_name(doc.pop("model", None), query.get("model"))
    call.model = model_name
    model = view.models.get(model_name)
    if model is None or not view.policy.allows(principal.principals, f"model:{model_name}", "viewer"):
        raise ModelNotFound(model_name)
    account = account_of(model, view.accounts)
    call.account = account.name
    if "file_ids" in doc:
        ids = access.file_ids_of(doc["file_ids"], "file_ids")
        await access.check_files(gw, view, principal, [(f"file_ids[{n}]", i) for n, i in enumerate(ids)],
                                 account)
    answer = await send(gw.forwarder.transport, account, AccountRequest(
        "POST", (access.COLLECTION,), call.request_id, headers=call.request.headers, body=access.encoded(doc),
        content_type="application/json", v1=True))
    if not 200 <= answer.status < 300:
        return to_starlette(answer)
    created = _object(answer.body)
    if created is None or not access.STORE_ID.match(str(created["id"])):
        if created is not None and access.LIST_ID.match(str(created["id"])):
            await _undo(gw, account, str(created["id"]), call.request_id)
        raise UpstreamError(f"account {account.name} answered a vector store without a well-formed id")
    owned = Owned(kind=access.KIND, object_id=str(created["id"]), account=account.name, owner=principal.user,
                  model=model_name, created=time.time(), expires=_expires(created))
    try:
        await gw.objects.record(owned)
    except GatewayError as exc:
        log.error("request %s: vector store %s could not be recorded: %s", call.request_id, owned.object_id,
                  exc.message)
        await _undo(gw, account, owned.object_id, call.request_id)
        raise Unavailable("the new vector store could not be recorded as yours, so it was deleted again; "
                          "try again later") from None
    return to_starlette(answer)


def _model_name(in_body: object, in_query: str | None) -> str:
    if in_body is not None and in_query is not None:
        raise InvalidRequest("give 'model' once: as a body member or a query parameter", param="model")
    name = in_body if in_body is not None else in_query
    if not isinstance(name, str) or not name:
        raise InvalidRequest("name the gateway model whose account holds the vector store: the body member "
                             "'model' or the query parameter 'model'", param="model")
    return name


def _object(body: bytes) -> dict[str, Any] | None:
    """The answer's object, when it is one with a string id."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("id"), str) else None


def _expires(doc: Mapping[str, Any]) -> float | None:
    value = doc.get("expires_at")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


async def _undo(gw: Gateway, account: Account, store_id: str, request_id: str) -> None:
    """The store could not be recorded: delete it upstream, so no store is left that nobody owns."""
    try:
        answer = await send(gw.forwarder.transport, account,
                            AccountRequest("DELETE", (access.COLLECTION, store_id), request_id, v1=True))
        if 200 <= answer.status < 300:
            return
        problem = f"HTTP {answer.status}"
    except GatewayError as exc:
        problem = exc.message
    log.error("request %s: vector store %s in account %s could not be recorded nor deleted (%s): it is "
              "left upstream, owned by no one", request_id, store_id, account.name, problem)


async def list_stores(call: Call, classic: bool) -> Response:
    gw, view, principal = await authenticate(call)
    access.query_of(call, _LIST, classic)
    paging = listing.paging(call.request.query_params, max_limit=MAX_LIST, default_limit=DEFAULT_LIST)
    mine = {o.object_id: o for o in await gw.objects.owned_by(access.KIND, principal.user)
            if may_use(o, principal.principals, view.policy)}
    found = await listing.gather(gw, view, mine, listing.Listing(
        (access.COLLECTION,), "vector store", page_size=MAX_LIST, v1=True), call.request_id,
        call.request.headers)
    if isinstance(found, Response):
        return found
    return JSONResponse(listing.page(found, paging, mine, "vector store"))


async def retrieve(call: Call, classic: bool) -> Response:
    store = await access.store_of(call)
    access.query_of(call, {}, classic)
    return to_starlette(await access.forward(store, call, "GET", ()))


async def update(call: Call, classic: bool) -> Response:
    """A changed expiry is written to the record too (best effort: the upstream's is the one that counts)."""
    store = await access.store_of(call)
    access.query_of(call, {}, classic)
    doc = await access.body_of(call, UPDATE, store.gw.settings.max_body_bytes)
    answer = await access.forward(store, call, "POST", (), body=doc)
    updated = _object(answer.body) if 200 <= answer.status < 300 else None
    if updated is not None and _expires(updated) != store.owned.expires:
        try:
            await store.gw.objects.record(replace(store.owned, expires=_expires(updated)))
        except GatewayError as exc:
            log.warning("request %s: the vector store's new expiry was not recorded: %s", call.request_id,
                        exc.message)
    return to_starlette(answer)


async def delete(call: Call, classic: bool) -> Response:
    """Forgets the store only once its account confirmed the delete: a failed delete keeps it owned."""
    store = await access.store_of(call)
    access.query_of(call, {}, classic)
    answer = await access.forward(store, call, "DELETE", ())
    if 200 <= answer.status < 300:
        try:
            await store.gw.objects.forget(store.owned)
        except GatewayError as exc:     # deleted upstream: a stale record finds only the upstream's 404
            log.warning("request %s: the deleted vector store's record stays: %s", call.request_id,
                        exc.message)
    return to_starlette(answer)


async def search(call: Call, classic: bool) -> Response:
    store = await access.store_of(call)
    access.query_of(call, {}, classic)
    doc = await access.body_of(call, SEARCH, store.gw.settings.max_body_bytes)
    return to_starlette(await access.forward(store, call, "POST", ("search",), body=doc))
