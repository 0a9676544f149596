"""The Batch API, each batch reachable only by the caller who created it: create, retrieve, list, cancel.

Every caller shares the gateway's credential for an account, so a `batch_...` id alone would let anyone
read or cancel someone else's batch, and a batch file's `model` would reach any deployment. So a create
takes an input file the caller may use, checks and rewrites its lines to the deployment of the one model
they name (`batch_input`), uploads the rewritten file to the same account as the caller's, creates the
batch on it, and records the batch as the caller's before its id reaches them. Requests by id answer 404,
exactly as for an id that never existed, to anyone who may not use the batch, and go to the account
that holds it; a finished batch's result files become its owner's and its usage is charged once
(`batch_results`).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response

from ..callers import authenticate
from ..errors import InvalidRequest, NotFound, UpstreamError
from ..http import Route, route
from ..limits.rules import Facts
from ..limits.tokens import Reservation
from ..objects.access import may_use
from ..objects.store import Owned
from ..upstream.response import to_starlette
from ..upstream.scoped import AccountRequest, send
from . import batch_results, by_id, listing, recording
from .batch_create import CreateRequest, creation, upload_rewritten
from .batch_input import Rewritten
from .files import FILE_ID, by_method, classic, no_such_file

if TYPE_CHECKING:
    from ..config.model import Account
    from ..http import Call
    from ..runtime import Gateway
    from ..upstream.answer import Answer

log = logging.getLogger("gateway.proxy.batches")

KIND = "batch"
BATCH_ID = re.compile(r"^batch_[A-Za-z0-9_-]{1,200}$")
CREATION = recording.Creation("batch", BATCH_ID, ("batches",), cancel=True)
"""Azure's batch ids: `batch_` and a GUID-like tail."""
NO_SUCH = "no such batch, or you do not have access to it"
MAX_LIST, DEFAULT_LIST = 100, 20
LIST_QUERY = frozenset({"after", "limit", "api-version"})
NOTHING_RESERVED = Reservation(prompt=0, output=0)


def _absent() -> NotFound:
    return NotFound(NO_SUCH, param="batch_id")


BY_ID = by_id.Kind(KIND, "batch", "batch_id", BATCH_ID, _absent)


# -- creating ------------------------------------------------------------------------------------------

async def create(call: Call) -> Response:
    gw, view, principal = await authenticate(call)
    request = CreateRequest.of(await call.json(gw.settings.max_body_bytes))
    if not FILE_ID.match(request.input_file_id):
        raise no_such_file()
    source = await gw.objects.find("file", request.input_file_id)
    if source is None or not may_use(source, principal.principals, view.policy):
        raise no_such_file()
    account = by_id.holder(view.accounts, source.account, "file")
    call.account = account.name
    rewritten = await creation(gw, view, principal, account, request, call.request_id)
    call.model = rewritten.model
    model = view.models[rewritten.model]
    ticket, rules = None, gw.limiter.rules(view.version, view.config)
    if rules:   # a batch is one request to the limits; its tokens are charged once it finished
        ticket = await gw.limiter.admit(rules, Facts.of(principal, model), NOTHING_RESERVED)
    try:
        answer = await _created(gw, account, principal.user, request, rewritten, call.request_id)
    except BaseException:
        if ticket is not None:
            ticket.cancel()
        raise
    if ticket is not None:
        if 200 <= answer.status < 300:
            ticket.settle(None)
        else:
            ticket.cancel()
    return to_starlette(answer)


async def _created(gw: Gateway, account: Account, owner: str, request: CreateRequest,
                   rewritten: Rewritten, request_id: str) -> Answer:
    """Upload the rewritten file, create the batch on it, and record the batch before it is answered."""
    file = await upload_rewritten(gw, account, owner, rewritten, request_id)
    answer = await send(gw.forwarder.transport, account, AccountRequest(
        "POST", ("batches",), request_id, body=json.dumps(request.upstream(file.object_id)).encode(),
        content_type="application/json"))
    if not 200 <= answer.status < 300:
        await batch_results.discard_file(gw, account, file, request_id)
        return answer
    batch_id, doc = await recording.created_id(gw, account, answer.body, CREATION, request_id)
    await recording.record(gw, account, Owned(
        kind=KIND, object_id=batch_id, account=account.name, owner=owner, model=rewritten.model,
        created=time.time(), expires=_expires(doc)), CREATION, request_id)
    return answer


KEPT_AFTER_WINDOW = 30 * 86_400
"""A batch's `expires_at` closes its completion window, not its life: the batch and its results stay
readable after it, so its record lapses (and is pruned) 30 days later, as a stored response's does."""


def _expires(doc: Mapping[str, Any]) -> float | None:
    closes = recording.expires_of(doc)
    return None if closes is None else closes + KEPT_AFTER_WINDOW


# -- by id ---------------------------------------------------------------------------------------------

async def _owned(call: Call) -> by_id.Found:
    return await by_id.find(call, BY_ID)


async def retrieve(call: Call) -> Response:
    """The batch; once finished, its result files become its owner's (before they are answered)."""
    found = await _owned(call)
    answer = await send(found.gw.forwarder.transport, found.account, AccountRequest(
        "GET", ("batches", found.owned.object_id), call.request_id, headers=call.request.headers))
    if 200 <= answer.status < 300:
        doc = recording.object_of(answer.body)
        if doc is None or doc.get("id") != found.owned.object_id:
            raise UpstreamError(f"account {found.account.name} answered a batch that is not the one asked")
        await batch_results.settle(found.gw, found.account, found.owned, doc, call.request_id)
    return to_starlette(answer)


async def cancel(call: Call) -> Response:
    found = await _owned(call)
    answer = await send(found.gw.forwarder.transport, found.account, AccountRequest(
        "POST", ("batches", found.owned.object_id, "cancel"), call.request_id, headers=call.request.headers))
    return to_starlette(answer)


async def list_batches(call: Call) -> Response:
    """The caller's own batches, gathered from the accounts holding them and paged by the gateway."""
    gw, view, principal = await authenticate(call)
    query = call.request.query_params
    unknown = sorted(set(query.keys()) - LIST_QUERY)
    if unknown:
        raise InvalidRequest("a batch list takes only the query parameters after and limit", param="query")
    paging = listing.paging(query, max_limit=MAX_LIST, default_limit=DEFAULT_LIST)
    mine = {o.object_id: o for o in await gw.objects.owned_by(KIND, principal.user)
            if may_use(o, principal.principals, view.policy)}
    found = await listing.gather(gw, view, mine, listing.Listing(("batches",), "batch", page_size=MAX_LIST),
                                 call.request_id, call.request.headers)
    if isinstance(found, Response):
        return found
    for item in found:      # a finished batch's files are its owner's whichever way it was seen
        owned = mine[item["id"]]
        account = view.accounts.get(owned.account)
        if account is not None:
            await batch_results.settle(gw, account, owned, item, call.request_id)
    return JSONResponse(listing.page(found, paging, mine, "batch"))


# -- routes --------------------------------------------------------------------------------------------

def routes() -> tuple[Route, ...]:
    """The batch routes on the three shapes: /v1, /openai/v1 and the classic /openai (api-version)."""
    shapes = (("v1/batches", ""), ("openai/v1/batches", "_azure_v1"), ("openai/batches", "_azure"))
    out: list[Route] = []
    for path, suffix in shapes:
        wrap = classic if suffix == "_azure" else (lambda w: w)
        out += [
            route(path, ("GET", "POST"), f"batches{suffix}",
                  wrap(by_method({"GET": list_batches, "POST": create}))),
            route(path + "/{batch_id}", ("GET",), f"batch{suffix}", wrap(retrieve)),
            route(path + "/{batch_id}/cancel", ("POST",), f"batch_cancel{suffix}", wrap(cancel)),
        ]
    return tuple(out)
