"""Lists of a caller's stored objects: gathered from the accounts that hold them, kept to the caller's own,
and paged by the gateway.

Every caller shares the gateway's credential for an account, so an upstream list holds everyone's
objects. A list asks only the accounts that hold one of the caller's recorded objects (none: no
upstream call), follows each account's pages (`has_more`, `after=<last id>`) until every recorded
object of the caller there was seen or the account has no more, and keeps only the caller's. `order`,
`after` and `limit` are then applied by the gateway to what was kept, so a caller's paging walks their
own objects and never reveals how many others there are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from starlette.datastructures import QueryParams
from starlette.responses import Response

from ..errors import InvalidRequest, UpstreamError
from ..upstream.response import to_starlette
from ..upstream.scoped import AccountRequest, send

if TYPE_CHECKING:
    from ..config.model import Account
    from ..config.snapshot import View
    from ..objects.store import Owned
    from ..runtime import Gateway

MAX_PAGES = 100
"""Upstream pages followed per account and list: a list of a caller's objects never turns into an
unbounded walk of everyone's."""
_EMPTY: Mapping[str, str] = MappingProxyType({})
UPSTREAM_ID = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
"""An id an upstream answered, before it goes back to it as `after`."""


@dataclass(frozen=True, slots=True)
class Paging:
    order: str          # "asc" or "desc", by creation time then id
    after: str | None   # one of the caller's ids: the page starts after it
    limit: int


def single(query: QueryParams, name: str) -> str | None:
    """One query parameter's value: given twice is 400 (two readers could pick different ones)."""
    values = query.getlist(name)
    if len(values) > 1:
        raise InvalidRequest(f"query parameter {name} is given more than once", param=name)
    return values[0] if values else None


def paging(query: QueryParams, *, max_limit: int, default_limit: int | None = None) -> Paging:
    order = single(query, "order") or "desc"
    if order not in ("asc", "desc"):
        raise InvalidRequest("order must be asc or desc", param="order")
    value = single(query, "limit")
    limit = default_limit or max_limit
    if value is not None:
        if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= max_limit:
            raise InvalidRequest(f"limit must be a whole number from 1 to {max_limit}", param="limit")
        limit = int(value)
    return Paging(order=order, after=single(query, "after"), limit=limit)


@dataclass(frozen=True, slots=True)
class Listing:
    """One kind's upstream list, as an account serves it."""
    path: tuple[str, ...]                       # ("files",), ("batches",), ("vector_stores",)
    what: str                                   # "file", for errors: "answered a file list that is not one"
    query: Mapping[str, str] = _EMPTY           # allowlisted and validated by the caller
    page_size: int | None = None                # `limit` asked of the upstream per page, when it takes one
    v1: bool = False                            # always the v1 surface (see scoped.AccountRequest)


async def gather(gw: Gateway, view: View, mine: Mapping[str, Owned], listing: Listing, request_id: str,
                 headers: Mapping[str, str]) -> list[dict[str, Any]] | Response:
    """The upstream objects of `mine` (id -> record) that their accounts still list, or an account's
    refusal as the caller's answer. An account no longer configured is skipped: the status page says why."""
    found: list[dict[str, Any]] = []
    for name in sorted({o.account for o in mine.values()}):
        account = view.accounts.get(name)
        if account is None:
            continue
        wanted = {i for i, o in mine.items() if o.account == name}
        listed = await _walk(gw, account, listing, wanted, request_id, headers)
        if isinstance(listed, Response):
            return listed
        found += listed
    return found


async def _walk(gw: Gateway, account: Account, listing: Listing, wanted: set[str], request_id: str,
                headers: Mapping[str, str]) -> list[dict[str, Any]] | Response:
    """Follow the account's pages until every wanted id was seen or it has no more."""
    kept: list[dict[str, Any]] = []
    query = dict(listing.query)
    if listing.page_size is not None:
        query["limit"] = str(listing.page_size)
    for _ in range(MAX_PAGES):
        answer = await send(gw.forwarder.transport, account, AccountRequest(
            "GET", listing.path, request_id, headers=headers, query=query, v1=listing.v1))
        if not 200 <= answer.status < 300:
            return to_starlette(answer)
        data, more = _page_of(answer.body, account, listing.what)
        for item in data:
            if item.get("id") in wanted:
                wanted.discard(item["id"])
                kept.append(item)
        last = data[-1].get("id") if data else None
        if not wanted or not more or not isinstance(last, str) or not UPSTREAM_ID.match(last):
            break
        query["after"] = last
    return kept


def _page_of(body: bytes, account: Account, what: str) -> tuple[list[dict[str, Any]], bool]:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise UpstreamError(f"account {account.name} answered a {what} list that is not one")
    return [i for i in data if isinstance(i, dict)], doc.get("has_more") is True


def page(found: list[dict[str, Any]], paging: Paging, mine: Mapping[str, object],
         what: str) -> dict[str, Any]:
    """OpenAI's list shape over the caller's own objects: sorted by creation, after `after`, `limit` long."""
    if paging.after is not None and paging.after not in mine:
        raise InvalidRequest(f"after must be the id of one of your {what}s", param="after")
    found.sort(key=lambda o: (_created(o), str(o.get("id"))), reverse=paging.order == "desc")
    if paging.after is not None:
        ids = [o.get("id") for o in found]
        found = found[ids.index(paging.after) + 1:] if paging.after in ids else []
    kept = found[:paging.limit]
    return {"object": "list", "data": kept, "has_more": len(found) > paging.limit,
            "first_id": kept[0]["id"] if kept else None, "last_id": kept[-1]["id"] if kept else None}


def _created(item: Mapping[str, Any]) -> int:
    value = item.get("created_at")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
