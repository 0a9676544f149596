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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response

from ..callers import authenticate
from ..errors import GatewayError, InvalidRequest, NotFound, Unavailable, UpstreamError
from ..http import Route, route
from ..limits.rules import Facts
from ..limits.tokens import Reservation
from ..objects.access import may_use
from ..objects.store import Owned
from ..upstream.response import to_starlette
from ..upstream.scoped import AccountRequest, send
from . import batch_results, listing
from .batch_create import CreateRequest, creation, upload_rewritten
from .batch_input import Rewritten
from .files import FILE_ID, classic, no_such_file

if TYPE_CHECKING:
    from ..config.model import Account
    from ..http import Call
    from ..runtime import Gateway
    from ..upstream.answer import Answer

log = logging.getLogger("gateway.proxy.batches")

KIND = "batch"
BATCH_ID = re.compile(r"^batch_[A-Za-z0-9_-]{1,200}$")
"""Azure's batch ids: `batch_` and a GUID-like tail."""
NO_SUCH = "no such batch, or you do not have access to it"
MAX_LIST, DEFAULT_LIST = 100, 20
LIST_QUERY = frozenset({"after", "limit", "api-version"})
NOTHING_RESERVED = Reservation(prompt=0, output=0)


def _absent() -> NotFound:
    return NotFound(NO_SUCH, param="batch_id")


def _account(view_accounts: Mapping[str, Account], name: str, what: str) -> Account:
    account = view_accounts.get(name)
    if account is None:
        raise Unavailable(f"account {name!r}, which holds a {what}, is not configured or not usable",
                          public=f"the account that holds this {what} is not usable now; the gateway's "
                                 "status and log say why")
    return account


# -- creating ------------------------------------------------------------------------------------------

async def create(call: Call) -> Response:
    gw, view, principal = await authenticate(call)
    request = CreateRequest.of(await call.json(gw.settings.max_body_bytes))
    if not FILE_ID.match(request.input_file_id):
        raise no_such_file()
    source = await gw.objects.find("file", request.input_file_id)
    if source is None or not may_use(source, principal.principals, view.policy):
        raise no_such_file()
    account = _account(view.accounts, source.account, "file")
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
    doc = _object(answer.body)
    batch_id = doc.get("id") if doc is not None else None
    if not isinstance(batch_id, str) or not BATCH_ID.match(batch_id):
        raise UpstreamError(f"account {account.name} answered a batch create without a well-formed id")
    owned = Owned(kind=KIND, object_id=batch_id, account=account.name, owner=owner, model=rewritten.model,
                  created=time.time(), expires=_expires(doc))
    try:
        await gw.objects.record(owned)
    except GatewayError as exc:
        log.error("request %s: batch %s could not be recorded: %s", request_id, batch_id, exc.message)
        await _cancel_unrecorded(gw, account, batch_id, request_id)
        raise Unavailable("the new batch could not be recorded as yours, so it was cancelled again; "
                          "try again later") from None
    return answer


def _object(body: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


KEPT_AFTER_WINDOW = 30 * 86_400
"""A batch's `expires_at` closes its completion window, not its life: the batch and its results stay
readable after it, so its record lapses (and is pruned) 30 days later, as a stored response's does."""


def _expires(doc: Mapping[str, Any] | None) -> float | None:
    value = doc.get("expires_at") if doc is not None else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return float(value + KEPT_AFTER_WINDOW)
    return None


async def _cancel_unrecorded(gw: Gateway, account: Account, batch_id: str, request_id: str) -> None:
    """Best effort: a batch nobody may reach is cancelled rather than left to run."""
    try:
        answer = await send(gw.forwarder.transport, account,
                            AccountRequest("POST", ("batches", batch_id, "cancel"), request_id))
        if 200 <= answer.status < 300:
            return
        problem = f"HTTP {answer.status}"
    except GatewayError as exc:
        problem = exc.message
    log.error("request %s: batch %s in account %s could not be recorded nor cancelled (%s): it runs "
              "upstream, owned by no one", request_id, batch_id, account.name, problem)


# -- by id ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Found:
    gw: Gateway
    owned: Owned
    account: Account


async def _owned(call: Call) -> Found:
    gw, view, principal = await authenticate(call)
    batch_id = call.request.path_params["batch_id"]
    if not BATCH_ID.match(batch_id):
        raise _absent()
    owned = await gw.objects.find(KIND, batch_id)
    if owned is None or not may_use(owned, principal.principals, view.policy):
        raise _absent()
    call.model = owned.model
    account = _account(view.accounts, owned.account, "batch")
    call.account = account.name
    return Found(gw, owned, account)


async def retrieve(call: Call) -> Response:
    """The batch; once finished, its result files become its owner's (before they are answered)."""
    found = await _owned(call)
    answer = await send(found.gw.forwarder.transport, found.account, AccountRequest(
        "GET", ("batches", found.owned.object_id), call.request_id, headers=call.request.headers))
    if 200 <= answer.status < 300:
        doc = _object(answer.body)
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

Work = Callable[["Call"], Awaitable[Response]]


def _by_method(works: dict[str, Work]) -> Work:
    async def dispatch(call: Call) -> Response:
        return await works[call.request.method](call)

    return dispatch


def routes() -> tuple[Route, ...]:
    """The batch routes on the three shapes: /v1, /openai/v1 and the classic /openai (api-version)."""
    shapes = (("v1/batches", ""), ("openai/v1/batches", "_azure_v1"), ("openai/batches", "_azure"))
    out: list[Route] = []
    for path, suffix in shapes:
        wrap = classic if suffix == "_azure" else (lambda w: w)
        out += [
            route(path, ("GET", "POST"), f"batches{suffix}",
                  wrap(_by_method({"GET": list_batches, "POST": create}))),
            route(path + "/{batch_id}", ("GET",), f"batch{suffix}", wrap(retrieve)),
            route(path + "/{batch_id}/cancel", ("POST",), f"batch_cancel{suffix}", wrap(cancel)),
        ]
    return tuple(out)
