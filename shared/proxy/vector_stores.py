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

import logging
import re
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse, Response

from ..callers import authenticate
from ..errors import GatewayError, InvalidRequest, ModelNotFound
from ..objects.access import may_use
from ..objects.store import Owned
from ..upstream.response import to_starlette
from ..upstream.scoped import AccountRequest, send
from . import listing, recording
from . import vector_store_access as access
from .upload import account_of

if TYPE_CHECKING:
    from ..http import Call

log = logging.getLogger("gateway.proxy.vector_stores")

CREATE = ("name", "description", "file_ids", "expires_after", "chunking_strategy", "metadata")
UPDATE = ("name", "expires_after", "metadata")
SEARCH = ("query", "filters", "max_num_results", "ranking_options", "rewrite_query")
MAX_LIST, DEFAULT_LIST = 100, 20
CREATION = recording.Creation("vector store", access.STORE_ID, (access.COLLECTION,), v1=True)
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
    store_id, created = await recording.created_id(gw, account, answer.body, CREATION, call.request_id)
    await recording.record(gw, account, Owned(
        kind=access.KIND, object_id=store_id, account=account.name, owner=principal.user, model=model_name,
        created=time.time(), expires=recording.expires_of(created)), CREATION, call.request_id)
    return to_starlette(answer)


def _model_name(in_body: object, in_query: str | None) -> str:
    if in_body is not None and in_query is not None:
        raise InvalidRequest("give 'model' once: as a body member or a query parameter", param="model")
    name = in_body if in_body is not None else in_query
    if not isinstance(name, str) or not name:
        raise InvalidRequest("name the gateway model whose account holds the vector store: the body member "
                             "'model' or the query parameter 'model'", param="model")
    return name


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
    updated = recording.object_of(answer.body) if 200 <= answer.status < 300 else None
    if updated is not None and recording.expires_of(updated) != store.owned.expires:
        try:
            await store.gw.objects.record(replace(store.owned, expires=recording.expires_of(updated)))
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
