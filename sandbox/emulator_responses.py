"""The emulator's stored responses: what the Responses API keeps of a response created with `store` not
false, and its routes by id (retrieve, delete, cancel, input items), on the v1 surface
(/openai/v1/responses/{id}...) and the classic one (/openai/responses/{id}...?api-version=).

A background response (`background: true`) is answered `queued`; it completes when first retrieved, and
a cancel before that makes it `cancelled`. Retrieving one with `stream=true` replays its events
(`starting_after=N`: those after sequence number N) as server-sent events. Shapes follow OpenAI's API:
the response object, `response.deleted`, and a list of input items.
Development tooling only: never deployed, never imported by the gateway.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import emulator_answers as answers

_BY_ID = re.compile(r"^/openai/(?P<v1>v1/)?responses/(?P<id>[^/]+)(?:/(?P<action>cancel|input_items))?$")
_METHODS = {None: ("GET", "DELETE"), "cancel": ("POST",), "input_items": ("GET",)}


@dataclass(frozen=True)
class Replay:
    """A stored response's events to stream again: those after sequence number `after`."""

    response: dict[str, Any]
    after: int


@dataclass(frozen=True)
class ById:
    """A request about one stored response."""

    v1: bool
    ident: str
    action: str | None


_error, _json = answers.invalid_request, answers.json_answer


def by_id(path: str) -> ById | None:
    match = _BY_ID.match(path)
    if match is None:
        return None
    return ById(match["v1"] is not None, match["id"], match["action"])


def _items(payload: dict[str, Any], ident: str) -> list[dict[str, Any]]:
    """The request's input as input items, each with an id of its own."""
    raw = payload.get("input", "")
    entries = [{"role": "user", "content": raw}] if isinstance(raw, str) else \
        [e for e in raw if isinstance(e, dict)]
    items = []
    for n, entry in enumerate(entries):
        content = entry.get("content", "")
        if isinstance(content, str):
            content = [{"type": "input_text", "text": content}]
        items.append({"type": "message", "id": f"msg_in{n}_{ident[5:29]}", "status": "completed",
                      "role": entry.get("role", "user"), "content": content})
    return items


class StoredResponses:
    def __init__(self) -> None:
        self.responses: dict[str, dict[str, Any]] = {}
        self.inputs: dict[str, list[dict[str, Any]]] = {}

    def refusal(self, payload: dict[str, Any]) -> web.Response | None:
        """The answer to a create naming a previous response that is not stored."""
        previous = payload.get("previous_response_id")
        if previous is not None and previous not in self.responses:
            return _error(404, f"Previous response with id '{previous}' not found.", "previous_response_id")
        return None

    def created(self, payload: dict[str, Any], final: dict[str, Any]) -> dict[str, Any]:
        """What a create answers: `final`, or a queued background response; kept unless `store` is false."""
        answer = final
        if payload.get("background") is True:
            answer = {**final, "status": "queued", "output": [], "usage": None, "background": True}
        if payload.get("previous_response_id") is not None:
            answer = {**answer, "previous_response_id": payload["previous_response_id"]}
        if payload.get("store") is not False:
            self.responses[final["id"]] = {**answer, "_final": final}
            self.inputs[final["id"]] = _items(payload, final["id"])
        return answer

    def answer(self, request: web.BaseRequest, route: ById) -> web.Response | Replay:
        if request.method not in _METHODS[route.action]:
            return _error(405, "Method not allowed")
        if not route.v1 and not request.query.get("api-version"):
            return _error(400, "Missing required query parameter api-version")
        stored = self.responses.get(route.ident)
        if stored is None:
            return _error(404, f"Response with id '{route.ident}' not found.")
        if request.method == "DELETE":
            del self.responses[route.ident]
            self.inputs.pop(route.ident, None)
            return _json({"id": route.ident, "object": "response.deleted", "deleted": True})
        if route.action == "cancel":
            return self._cancel(route.ident, stored)
        if route.action == "input_items":
            return _json(_page(self.inputs.get(route.ident, []), request.query))
        if stored["status"] == "queued":    # a background response is done by the time anyone looks
            stored = self.responses[route.ident] = {**stored["_final"], "background": True,
                                                    "_final": stored["_final"]}
        if request.query.get("stream") == "true":
            return _replay(stored, request.query.get("starting_after", "-1"))
        return _json(_public(stored))

    def _cancel(self, ident: str, stored: dict[str, Any]) -> web.Response:
        if not stored.get("background"):
            return _error(400, "Cannot cancel a synchronous response.")
        if stored["status"] in ("queued", "in_progress"):
            stored = self.responses[ident] = {**stored, "status": "cancelled"}
        return _json(_public(stored))


def _replay(stored: dict[str, Any], after: str) -> web.Response | Replay:
    if not stored.get("background"):
        return _error(400, "Only responses created with background=true can be streamed.", "stream")
    if not re.fullmatch(r"-1|0|[1-9][0-9]{0,8}", after):
        return _error(400, "Invalid value for starting_after.", "starting_after")
    return Replay(_public(stored), int(after))


def _public(stored: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy({k: v for k, v in stored.items() if k != "_final"})


def _page(items: list[dict[str, Any]], query: Any) -> dict[str, Any]:
    ordered = list(reversed(items)) if query.get("order", "desc") == "desc" else list(items)
    after = query.get("after")
    if after is not None:
        ids = [i["id"] for i in ordered]
        ordered = ordered[ids.index(after) + 1:] if after in ids else []
    limit = int(query.get("limit", "20"))
    page = ordered[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(ordered) > limit}
