"""A request about one vector store: the caller's store, the files they attach to it, and what they send.

Every caller shares the gateway's credential for an account, so a `vs_...` id alone would open anyone's
store. A store is served only when the gateway recorded it (at create) and the caller may use it (its
creator, a manager of the model it was made through, or an admin); anything else, a malformed id
included, is the same 404 as an id that never existed, and nothing is forwarded. A file attached to a
store must likewise be one the caller may use, and must be held by the store's account.

Requests go to the store's account on Azure's v1 surface (`/openai/v1/vector_stores...`, no
api-version) whatever the account's `api_style`: the classic surface serves vector stores only under
preview api-versions. Query parameters and body members are allowlisted per operation; the body is
strict JSON and is written anew from the members that were checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest, NotFound
from ..objects.access import may_use
from ..upstream.scoped import AccountRequest, send
from . import by_id
from .files import FILE_ID, no_such_file
from .query import allowlisted

if TYPE_CHECKING:
    from ..auth.identities import Principal
    from ..config.model import Account
    from ..config.snapshot import View
    from ..http import Call
    from ..runtime import Gateway
    from ..upstream.answer import Answer

KIND = "vector_store"
COLLECTION = "vector_stores"
STORE_ID = re.compile(r"^vs_[A-Za-z0-9_-]{1,200}$")
NO_SUCH_STORE = "no such vector store, or you do not have access to it"
MAX_FILES = 2000
"""Files named in one request (OpenAI's largest file batch): each is looked up before anything is sent."""

LIST_ID = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
LIMIT = re.compile(r"^(?:[1-9]|[1-9][0-9]|100)$")
ORDER = re.compile(r"^(?:asc|desc)$")
FILE_LIST: Mapping[str, re.Pattern[str]] = {
    "after": LIST_ID, "before": LIST_ID, "limit": LIMIT, "order": ORDER,
    "filter": re.compile(r"^(?:in_progress|completed|failed|cancelled)$")}
"""The query of a list of a store's files (and of a file batch's files)."""


def no_such_store() -> NotFound:
    """One answer for an unknown, malformed or foreign id: nothing tells them apart."""
    return NotFound(NO_SUCH_STORE, param="vector_store_id")


BY_ID = by_id.Kind(KIND, "vector store", "vector_store_id", STORE_ID, no_such_store)


Store = by_id.Found
"""The caller's vector store named in the path, and the account that holds it."""


async def store_of(call: Call) -> Store:
    return await by_id.find(call, BY_ID)


def query_of(call: Call, allowed: Mapping[str, re.Pattern[str]],
             classic: bool) -> tuple[tuple[str, str], ...]:
    """The allowlisted query parameters, each at most once and well formed (see `query`)."""
    return allowlisted(call.request.query_params, allowed, classic=classic)


async def body_of(call: Call, allowed: Iterable[str], max_bytes: int) -> dict[str, Any]:
    """The body as strict JSON, with no member outside `allowed`."""
    doc = await call.json(max_bytes)
    names = frozenset(allowed)
    for name in doc:
        if name not in names:
            raise InvalidRequest("a body member is not supported here; supported: "
                                 + ", ".join(sorted(names)))
    return dict(doc)


def encoded(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def file_ids_of(value: object, param: str) -> list[str]:
    """A list of file ids as sent: a JSON array of strings, at most MAX_FILES."""
    if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
        raise InvalidRequest(f"{param} must be an array of file ids", param=param)
    if len(value) > MAX_FILES:
        raise InvalidRequest(f"{param} may name at most {MAX_FILES} files", param=param)
    return value


async def check_files(gw: Gateway, view: View, principal: Principal, named: Sequence[tuple[str, str]],
                      account: Account) -> None:
    """Each (param, file id) names a file the caller may use, held by `account`. A file they may not
    use is the 404 of an unknown file; one of theirs in another account is 400 naming where it was given
    (it could never be attached: a vector store holds only files of its own account)."""
    for param, file_id in named:
        if not FILE_ID.match(file_id):
            raise no_such_file()
        owned = await gw.objects.find("file", file_id)
        if owned is None or not may_use(owned, principal.principals, view.policy):
            raise no_such_file()
        if owned.account != account.name:
            raise InvalidRequest(f"{param} names a file held by another account than the vector store's; "
                                 "upload it through a model of the vector store's account", param=param)


async def forward(store: Store, call: Call, method: str, path: Sequence[str], *,
                  query: Sequence[tuple[str, str]] = (), body: Mapping[str, Any] | None = None) -> Answer:
    """One request about the store to its account; `path` is under the store: ("files", <id>)."""
    return await send(store.gw.forwarder.transport, store.account, AccountRequest(
        method, (COLLECTION, store.owned.object_id, *path), call.request_id, query=query,
        headers=call.request.headers, body=None if body is None else encoded(body),
        content_type=None if body is None else "application/json", v1=True))
