"""Finds the token usage in upstream answers and streams, and undoes the gateway's own usage request.

A streaming chat/completions or completions request that did not ask for usage is sent with
`stream_options.include_usage`; the caller's stream then loses exactly what that added (the usage-only
event and every event's `"usage":null`), so its bytes are what they would have been. Events are cut
as they complete, without buffering the stream.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping

USAGE_OPERATIONS = frozenset({"chat/completions", "completions"})
"""Streaming operations for which the gateway asks upstream for a usage chunk the caller did not ask for."""
MAX_EVENT_BYTES = 1 << 20
"""An SSE event longer than this is passed on but not scanned for usage."""

UsageSink = Callable[[Mapping[str, object] | None], None]


def injects_usage(operation: str, doc: Mapping[str, object]) -> bool:
    """A streaming chat/completions or completions request that did not ask for usage."""
    if operation not in USAGE_OPERATIONS or doc.get("stream") is not True:
        return False
    options = doc.get("stream_options")
    if options is None:
        return True
    return isinstance(options, dict) and options.get("include_usage") is not True


def with_usage_requested(doc: dict[str, object]) -> dict[str, object]:
    options = doc.get("stream_options")
    return {**doc, "stream_options": {**(options if isinstance(options, dict) else {}),
                                      "include_usage": True}}


def _usage_value(text: bytes, at: int) -> Mapping[str, object] | None:
    """The JSON object that follows the `"usage"` key at `at`, or None."""
    colon = text.find(b":", at + 7)
    if colon < 0 or text[at + 7:colon].strip():
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[colon + 1:].lstrip().decode("utf-8", "replace"))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def usage_of_json(answer: bytes) -> Mapping[str, object] | None:
    """The top-level `usage` of a JSON answer, found from the end (where every API puts it) so a large
    answer (embeddings) is not parsed whole. A `"usage"` inside a string is escaped, so never matches."""
    at = answer.rfind(b'"usage"')
    return _usage_value(answer, at) if at >= 0 else None


_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_NULL_USAGE_AT_END = re.compile(rb',\s*"usage"\s*:\s*null(?=\s*\}\s*(?:\r?\n|$))')
_NULL_USAGE = re.compile(rb',\s*"usage"\s*:\s*null(?=\s*[,}])|"usage"\s*:\s*null\s*,')


def _event_data(event: bytes) -> bytes:
    return b"\n".join(line[5:].lstrip(b" ") for line in event.splitlines() if line.startswith(b"data:"))


class EventScanner:
    """Cuts a byte stream into SSE events as they complete; keeps only the unfinished tail."""

    def __init__(self) -> None:
        self._tail = b""
        self.usage: Mapping[str, object] | None = None

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
        found = _USAGE_OBJECT.search(event)
        if found is None:
            return None, False
        try:
            doc = json.loads(_event_data(event))
        except ValueError:
            return None, False
        if not isinstance(doc, dict) or not isinstance(doc.get("usage"), dict):
            return None, False
        self.usage = doc["usage"]
        return doc["usage"], doc.get("choices") == []


def strip_null_usage(event: bytes) -> bytes:
    """The event without the top-level `"usage":null` that include_usage adds to every chunk."""
    if b'"usage"' not in event:
        return event
    out, n = _NULL_USAGE_AT_END.subn(b"", event, count=1)
    if n:
        return out
    return _NULL_USAGE.sub(b"", event, count=1)
