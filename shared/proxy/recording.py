"""Recording a new upstream object as its creator's before its id reaches them, or taking it back.

Files, vector stores and batches are created the same way: the upstream answers an object with an id;
the gateway checks the id's shape, records the object as the caller's, and only then relays the
answer. An object that cannot be recorded (an id of the wrong shape, storage down) would be one nobody
owns and everyone's credential reaches, so it is taken back upstream (deleted, or a batch cancelled)
and the caller gets the error, never the id.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import GatewayError, Unavailable, UpstreamError
from ..upstream.scoped import AccountRequest, send

if TYPE_CHECKING:
    from ..config.model import Account
    from ..objects.store import Owned
    from ..runtime import Gateway

log = logging.getLogger("gateway.proxy.recording")

ANY_ID = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
"""An id safe to put back in an upstream path to take back an object whose id had the wrong shape."""


@dataclass(frozen=True, slots=True)
class Creation:
    """How one kind of object is recognised and taken back."""
    what: str                   # "file", "vector store", "batch": for errors and logs
    pattern: re.Pattern[str]    # the shape its id must have
    collection: tuple[str, ...]   # its path under the upstream surface: ("files",)
    cancel: bool = False        # taken back by POST .../cancel (a batch) rather than DELETE
    v1: bool = False            # always on the v1 surface (see scoped.AccountRequest)


def object_of(body: bytes) -> dict[str, Any] | None:
    """The answer's object, when it is one with a string id."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("id"), str) else None


def expires_of(doc: Mapping[str, Any]) -> float | None:
    """The object's `expires_at`, when it has a believable one."""
    value = doc.get("expires_at")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    return None


async def created_id(gw: Gateway, account: Account, body: bytes, creation: Creation,
                     request_id: str) -> tuple[str, dict[str, Any]]:
    """The new object's id and document; an answer without a well-formed id is a 502 (the object,
    when its id can be named at all, taken back first)."""
    doc = object_of(body)
    if doc is not None and creation.pattern.match(doc["id"]):
        return doc["id"], doc
    if doc is not None and ANY_ID.match(doc["id"]):
        await take_back(gw, account, doc["id"], creation, request_id)
    raise UpstreamError(f"account {account.name} answered a new {creation.what} without a well-formed id")


async def record(gw: Gateway, account: Account, owned: Owned, creation: Creation, request_id: str) -> None:
    """Record `owned` as its owner's; if that fails, take it back upstream and answer 503."""
    try:
        await gw.objects.record(owned)
    except GatewayError as exc:
        log.error("request %s: %s %s could not be recorded: %s", request_id, creation.what, owned.object_id,
                  exc.message)
        await take_back(gw, account, owned.object_id, creation, request_id)
        done = "cancelled" if creation.cancel else "deleted"
        raise Unavailable(f"the new {creation.what} could not be recorded as yours, so it was {done} again; "
                          "try again later") from None


async def take_back(gw: Gateway, account: Account, object_id: str, creation: Creation,
                    request_id: str) -> None:
    """Best effort: delete (or cancel) an object nobody owns; a failure is logged, never raised."""
    path = (*creation.collection, object_id, *(("cancel",) if creation.cancel else ()))
    try:
        answer = await send(gw.forwarder.transport, account, AccountRequest(
            "POST" if creation.cancel else "DELETE", path, request_id, v1=creation.v1))
        if 200 <= answer.status < 300:
            return
        problem = f"HTTP {answer.status}"
    except GatewayError as exc:
        problem = exc.message
    log.error("request %s: %s %s in account %s could not be recorded nor taken back (%s): it is left "
              "upstream, owned by no one", request_id, creation.what, object_id, account.name, problem)
