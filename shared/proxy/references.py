"""References to stored objects inside a JSON request body: each must name an object the caller may use,
and the request goes only to the account that holds them.

Every caller shares the gateway's upstream credential, so an id placed inside a chat or responses body
(a content part's `file_id`, a file_search tool's `vector_store_ids`, a code interpreter's `file_ids`)
would make the upstream read another caller's object without any by-id route being asked. So:

- a body is walked only when its raw bytes hold one of `MARKERS` (a bytes `in` test: a plain chat body
  costs nothing more). A JSON escape (`\\u`) could spell a key without its plain bytes, so any escape
  also means a walk;
- every `file_id` / `file_ids`, `vector_store_ids`, `previous_response_id` and `comparison_response_id`
  must name a recorded object the caller may use (`may_use`); anything else, a malformed id included,
  is the same 404 as that object's by-id routes give, and nothing is forwarded;
- the request is then confined to the model's targets on the account holding them: 400 when the model
  has none there, or when they sit in two accounts;
- id-bearing fields naming objects the gateway keeps no owner for (containers, skills, tunnels, stored
  prompts, earlier audio answers, reasoning items without their content, item references), and any
  other `..._id` / `..._ids` field not known to be a mere correlation id, are 400 naming the field:
  deny by default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest
from . import by_id, files, responses_store, vector_store_access

if TYPE_CHECKING:
    from ..auth.identities import Principal
    from ..config.model import Model
    from ..config.snapshot import View
    from ..runtime import Gateway

MARKERS = (b"_id", b'"id"', b"container", b"\\u")
"""Bytes every id-bearing key contains (or, escaped, the escape): without any, there is nothing to walk."""
MAX_REFERENCES = 100
"""References checked per request: each is a record lookup."""

SINGLE: Mapping[str, str] = {"file_id": "file", "previous_response_id": "response",
                             "comparison_response_id": "response"}
LISTED: Mapping[str, str] = {"file_ids": "file", "vector_store_ids": "vector_store"}
CORRELATION = frozenset({"call_id", "tool_call_id", "caller_id", "approval_request_id", "connector_id",
                         "continuation_id"})
"""`..._id` fields that name no stored object: a call within the request, a fixed connector's name, an
opaque priority key."""
OPAQUE = frozenset({"metadata", "parameters", "schema", "input_schema", "attributes", "headers"})
"""Members whose keys are the caller's own data (schemas, metadata, headers): the upstream reads no
reference there."""

_SAFE_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class Reference:
    kind: str           # an ObjectStore kind
    object_id: str      # as the caller wrote it: checked before any lookup
    field: str          # where, e.g. "input[0].content[1].file_id" (keys only when plain)


KINDS: Mapping[str, by_id.Kind] = {"file": files.KIND, "response": responses_store.BY_ID,
                                  "vector_store": vector_store_access.BY_ID}
"""Each ObjectStore kind a body may reference: its id's shape, and the 404 its by-id routes answer."""


# -- finding them --------------------------------------------------------------------------------------

def marked(raw: bytes) -> bool:
    """Whether the body may hold a reference at all (the only cost of a body that holds none)."""
    return any(marker in raw for marker in MARKERS)


def found(doc: Mapping[str, Any], raw: bytes) -> tuple[Reference, ...]:
    """The references in `doc` (parsed from `raw`); 400 for a field the gateway cannot check."""
    if not marked(raw):
        return ()
    out: list[Reference] = []
    _walk(doc, "", out)
    if len(out) > MAX_REFERENCES:
        raise InvalidRequest(f"a request may reference at most {MAX_REFERENCES} stored objects")
    return tuple(out)


def _name(where: str, key: str) -> str:
    """A field's path for an error: caller-chosen keys only when they are plain identifiers."""
    shown = key if _SAFE_KEY.match(key) else "?"
    return f"{where}.{shown}" if where else shown


def _refuse(field: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"{field} names {what}, which the gateway keeps no owner for, so it cannot be "
                          "used through the gateway", param=field)


def _walk(value: object, where: str, out: list[Reference]) -> None:
    if isinstance(value, list):
        for n, item in enumerate(value):
            _walk(item, f"{where}[{n}]", out)
        return
    if not isinstance(value, dict):
        return
    _check_item(value, where)
    for key, item in value.items():
        if key in OPAQUE:
            continue
        field = _name(where, key)
        if _member(key, item, field, out):
            _walk(item, field, out)


def _check_item(item: Mapping[str, Any], where: str) -> None:
    """Refuses the input items that name stored upstream content by id alone."""
    kind = item.get("type")
    if kind == "item_reference":
        raise _refuse(_name(where, "id"), "a stored item")
    if kind == "reasoning" and "id" in item and item.get("encrypted_content") is None:
        raise _refuse(_name(where, "id"), "stored reasoning (send it with encrypted_content, or use "
                                          "previous_response_id)")


def _member(key: str, value: object, field: str, out: list[Reference]) -> bool:
    """Records or refuses one member; whether to walk into its value."""
    if key in SINGLE:
        if value is not None:
            if not isinstance(value, str):
                raise InvalidRequest(f"{field} must be a string", param=field)
            out.append(Reference(SINGLE[key], value, field))
        return False
    if key in LISTED:
        if value is not None:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InvalidRequest(f"{field} must be a list of strings", param=field)
            out.extend(Reference(LISTED[key], v, f"{field}[{n}]") for n, v in enumerate(value))
        return False
    if key.endswith(("_id", "_ids")) and key not in CORRELATION:
        raise _refuse(field, "an upstream object")
    if key == "container" and isinstance(value, str):
        raise _refuse(field, "a container")
    if key == "prompt" and isinstance(value, dict):
        raise _refuse(field, "a stored prompt template")
    if key == "audio" and isinstance(value, dict) and "id" in value:
        raise _refuse(_name(field, "id"), "an earlier audio answer")
    return True


# -- checking them -------------------------------------------------------------------------------------

async def confine(gw: Gateway, view: View, principal: Principal, model: Model, doc: Mapping[str, Any],
                  raw: bytes) -> Model:
    """`model`, with only its targets on the account holding the objects the body references (unchanged
    when it references none); 404 for an object the caller may not use, as if it did not exist."""
    refs = found(doc, raw)
    if not refs:
        return model
    where: dict[str, Reference] = {}
    for ref in refs:
        owned = await by_id.usable(gw, view, principal, KINDS[ref.kind], ref.object_id)
        where.setdefault(owned.account, ref)
    if len(where) > 1:
        first, second = list(where.values())[:2]
        raise InvalidRequest(f"{first.field} and {second.field} are held by different accounts; a request "
                             "may only reference objects of one", param=second.field)
    account, ref = next(iter(where.items()))
    targets = tuple(t for t in model.targets if t.account == account)
    if not targets:
        raise InvalidRequest(f"{ref.field} is held by an account model {model.name!r} does not use",
                             param=ref.field)
    return model if targets == model.targets else replace(model, targets=targets)
