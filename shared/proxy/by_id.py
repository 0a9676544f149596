"""A stored object named in a request's path: found only when the caller may use it, with the account
that holds it.

An id that is malformed, unknown, or another caller's (who is not a manager of its model nor an admin)
gets one and the same 404, so nothing tells them apart, and nothing is forwarded. The account comes
from the record, not from the model's targets today: an object lives where it was made.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..callers import authenticate
from ..errors import NotFound, Unavailable
from ..objects.access import may_use

if TYPE_CHECKING:
    from ..auth.identities import Principal
    from ..config.model import Account
    from ..config.snapshot import View
    from ..http import Call
    from ..objects.store import Owned
    from ..runtime import Gateway


@dataclass(frozen=True, slots=True)
class Kind:
    name: str                       # the ObjectStore kind: "file", "batch", "vector_store"
    what: str                       # in words, for errors: "vector store"
    param: str                      # the path parameter holding the id
    pattern: re.Pattern[str]        # the shape an id must have before it is looked up
    absent: Callable[[], NotFound]  # the one 404 for every id the caller may not reach


@dataclass(frozen=True, slots=True)
class Found:
    gw: Gateway
    view: View
    principal: Principal
    owned: Owned
    account: Account


async def find(call: Call, kind: Kind) -> Found:
    gw, view, principal = await authenticate(call)
    owned = await usable(gw, view, principal, kind, call.request.path_params[kind.param])
    call.model = owned.model
    account = holder(view.accounts, owned.account, kind.what)
    call.account = account.name
    return Found(gw, view, principal, owned, account)


async def usable(gw: Gateway, view: View, principal: Principal, kind: Kind, object_id: str) -> Owned:
    """The record of an object of `kind` the caller may use; the kind's one 404 otherwise."""
    if not kind.pattern.match(object_id):
        raise kind.absent()
    owned = await gw.objects.find(kind.name, object_id)
    if owned is None or not may_use(owned, principal.principals, view.policy):
        raise kind.absent()
    return owned


def holder(accounts: Mapping[str, Account], name: str, what: str) -> Account:
    """The account holding an object, or 503 when it is no longer configured or usable."""
    account = accounts.get(name)
    if account is None:
        raise Unavailable(f"account {name!r}, which holds a {what}, is not configured or not usable",
                          public=f"the account that holds this {what} is not usable now; the gateway's "
                                 "status and log say why")
    return account
