"""Finds the token usage in upstream answers and streams, and undoes the gateway's own usage request.

The usage is read from parsed JSON, at its one documented place, never by searching the text: the
top-level `usage` of an answer or of a chat/completions stream event, and `response.usage` of the
Responses API's final stream event (`response.completed`, `.incomplete` or `.failed`). Nothing else
that happens to be called `usage` (a member of echoed metadata or tool schemas, a string) counts.
A member given twice on that path (the top level, `response`, or the usage object itself) would let
whoever chose the order choose what is counted, so such a usage is ambiguous: an answer carrying one is
refused (`AmbiguousUsage`), and a stream event carrying one counts no tokens (and is logged).

A streaming chat/completions or completions request that did not ask for usage is sent with
`stream_options.include_usage`; the caller's stream then loses exactly what that added (the usage-only
event and every event's `"usage":null`), so its bytes are what they would have been. Events are cut
as they complete, without buffering the stream.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

USAGE_OPERATIONS = frozenset({"chat/completions", "completions"})
"""Streaming operations for which the gateway asks upstream for a usage chunk the caller did not ask for."""
FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
"""Responses API stream events that carry the response's usage."""
MAX_EVENT_BYTES = 1 << 20
"""An SSE event longer than this is passed on but not scanned for usage."""


class AmbiguousUsage(ValueError):
    """An answer gives its usage, or a member of it, more than once."""


class _Repeated(dict[str, Any]):
    """A JSON object in which some members were given more than once (kept last, as Python's json
    does; another parser may keep the first)."""

    repeated: frozenset[str]


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) == len(pairs):
        return value
    seen: set[str] = set()
    twice: set[str] = set()
    for key, _ in pairs:
        (twice if key in seen else seen).add(key)
    repeated = _Repeated(value)
    repeated.repeated = frozenset(twice)
    return repeated


def _repeats(holder: object, *names: str) -> bool:
    return isinstance(holder, _Repeated) and any(name in holder.repeated for name in names)


# Numbers other than integers are never token counts: kept as text, which skips converting the floats
# of an embeddings answer.
_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_float=str)


def _parse(data: bytes) -> Any:
    try:
        return _DECODER.decode(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return None


def injects_usage(operation: str, doc: Mapping[str, object]) -> bool:
    """A streaming chat/completions or completions request that did not ask for usage."""
    if operation not in USAGE_OPERATIONS or doc.get("stream") is not True:
        return False
    options = doc.get("stream_options")
    if options is None:
        return True
    return isinstance(options, dict) and options.get("include_usage") is not True


def with_usage_requested(doc: Mapping[str, object]) -> dict[str, object]:
    options = doc.get("stream_options")
    return {**doc, "stream_options": {**(options if isinstance(options, dict) else {}),
                                      "include_usage": True}}


_ASK_USAGE = b',"stream_options":{"include_usage":true}'


def body_with_usage_requested(raw: bytes, doc: Mapping[str, object]) -> bytes:
    """The caller's bytes asking for usage too. Without `stream_options` in them (the usual case) the
    member is added before the object's closing brace, so the rest stays byte for byte as sent and
    nothing is serialised again; otherwise the body is written from the parsed `doc`."""
    if "stream_options" not in doc:
        end = raw.rfind(b"}")
        if end > 0 and raw[end + 1:].strip() == b"" and raw[:end].strip() not in (b"", b"{"):
            return raw[:end] + _ASK_USAGE + raw[end:]
    return json.dumps(with_usage_requested(doc), separators=(",", ":")).encode()


def _usage_member(holder: object) -> Mapping[str, object] | None:
    """`holder.usage` when it is an object; AmbiguousUsage when it or a member of it is repeated."""
    if not isinstance(holder, dict):
        return None
    usage = holder.get("usage")
    if _repeats(holder, "usage") or isinstance(usage, _Repeated):
        raise AmbiguousUsage("the usage, or a member of it, is given more than once")
    return usage if isinstance(usage, dict) else None


def usage_of_doc(doc: object) -> Mapping[str, object] | None:
    """The usage of a parsed answer or stream event (see the module's docstring for where it is)."""
    if isinstance(doc, dict) and doc.get("type") in FINAL_RESPONSE_EVENTS:
        if _repeats(doc, "type", "response"):
            raise AmbiguousUsage("a final response event gives its type or response more than once")
        return _usage_member(doc.get("response"))
    if _repeats(doc, "type"):
        raise AmbiguousUsage("an event gives its type more than once")
    return _usage_member(doc)


def answer_doc(answer: bytes) -> Any:
    """A whole JSON answer parsed as usage is read from it (None when it is not JSON)."""
    return _parse(answer)


def usage_of_json(answer: bytes) -> Mapping[str, object] | None:
    """The usage of a whole JSON answer; None when it is not JSON or has none; AmbiguousUsage."""
    return usage_of_doc(_parse(answer))


_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
"""Events that may carry a usage object; only these are parsed (a cheap filter, not how usage is read)."""
_NULL_USAGE_AT_END = re.compile(rb',\s*"usage"\s*:\s*null(?=\s*\}\s*(?:\r?\n|$))')
_NULL_USAGE = re.compile(rb',\s*"usage"\s*:\s*null(?=\s*[,}])|"usage"\s*:\s*null\s*,')


def _event_data(event: bytes) -> bytes:
    return b"\n".join(line[5:].lstrip(b" ") for line in event.splitlines() if line.startswith(b"data:"))


class EventScanner:
    """Cuts a byte stream into SSE events as they complete; keeps only the unfinished tail, and the
    usage of the last event that carried one."""

    def __init__(self) -> None:
        self._tail = b""
        self.usage: Mapping[str, object] | None = None
        self.ambiguous = False

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._tail + chunk if self._tail else chunk
        events, start = [], 0
        while True:  # an event ends at a blank line: "\n\n" or "\r\n\r\n" (bytes.find beats a regex)
            lf, crlf = data.find(b"\n\n", start), data.find(b"\n\r\n", start)
            if lf < 0 and crlf < 0:
                break
            end = lf + 2 if crlf < 0 or 0 <= lf < crlf else crlf + 3
            events.append(data[start:end])
            start = end
        self._tail = data[start:]
        return events

    def rest(self) -> bytes:
        tail, self._tail = self._tail, b""
        return tail

    def overlong(self) -> bool:
        return len(self._tail) > MAX_EVENT_BYTES

    def usage_of(self, event: bytes) -> tuple[Mapping[str, object] | None, bool]:
        """(usage, usage_only) of one event: the usage object it carries, and whether it carries
        nothing else a caller would see (`"choices": []`)."""
        if _USAGE_OBJECT.search(event) is None:
            return None, False
        doc = _parse(_event_data(event))
        try:
            usage = usage_of_doc(doc)
        except AmbiguousUsage:
            self.ambiguous = True
            return None, False
        if usage is None:
            return None, False
        self.usage = usage
        return usage, doc.get("choices") == []


def strip_null_usage(event: bytes) -> bytes:
    """The event without the top-level `"usage":null` that include_usage adds to every chunk."""
    if b'"usage"' not in event:
        return event
    out, n = _NULL_USAGE_AT_END.subn(b"", event, count=1)
    if n:
        return out
    return _NULL_USAGE.sub(b"", event, count=1)
