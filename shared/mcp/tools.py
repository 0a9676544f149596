"""The server's tool filter applied to its tools/list answers, JSON or an event stream, every page.

A caller must not learn of a tool it may not call, and the list it gets is its own: every filtered
result says `cacheScope: "private"` so no shared cache hands it to another caller. The answer is read
whole (it is small, and capped) and parsed strictly: a message that cannot be read unambiguously is
dropped (an event) or refused (a JSON body), never passed on unfiltered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .. import strict_json
from .events import data, events, is_data

LIST_LIMIT = 8 * 1024 * 1024
"""The largest tools/list answer the gateway reads (it must hold it whole to filter it)."""

Allows = Callable[[str], bool]


class Unreadable(Exception):
    """A tools/list answer that is not strict JSON: refused rather than relayed unfiltered."""


def filter_result(result: dict[str, Any], allows: Allows) -> dict[str, Any]:
    tools = result.get("tools")
    if isinstance(tools, list):
        result["tools"] = [t for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)
                           and allows(t["name"])]
    result["cacheScope"] = "private"
    return result


def _filter_message(doc: Any, allows: Allows) -> Any:
    if isinstance(doc, dict) and isinstance(doc.get("result"), dict):
        filter_result(doc["result"], allows)
    return doc


def _dumps(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def filter_json(body: bytes, allows: Allows) -> bytes:
    try:
        doc = strict_json.loads(body, max_depth=strict_json.BODY_DEPTH)
    except strict_json.StrictJSONError:
        raise Unreadable("the MCP server's tools/list answer is not strict JSON") from None
    return _dumps(_filter_message(doc, allows)).encode("utf-8")


def filter_events(body: bytes, allows: Allows) -> bytes:
    """Each event of the stream with its data filtered; an event whose data is not strict JSON dropped."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable("the MCP server's tools/list event stream is not UTF-8") from None
    return "".join(_filter_event(event, allows) for event in events(text + "\n\n")).encode("utf-8")


def _filter_event(event: list[str], allows: Allows) -> str:
    fields = "".join(f"{line}\n" for line in event if not is_data(line))
    text = data(event)
    if text is None:
        return fields + "\n"
    try:
        doc = strict_json.loads(text.encode("utf-8"), max_depth=strict_json.BODY_DEPTH)
    except strict_json.StrictJSONError:
        return ""
    return f"{fields}data: {_dumps(_filter_message(doc, allows))}\n\n"
