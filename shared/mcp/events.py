"""Server-sent events as MCP streams them: a stream's text split into events, and an event's data.

An event is a run of lines ended by a blank line; lines end in CRLF, LF or CR; a `data` field's value
loses one leading space, and several `data` lines join with LF (the WHATWG rules MCP clients follow).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_LINE = re.compile(r"\r\n|\r|\n")


def events(text: str) -> Iterator[list[str]]:
    """The complete events of `text` (an unterminated last one is left out), each as its lines."""
    event: list[str] = []
    lines = _LINE.split(text)
    for line in lines[:-1]:       # the last piece has no line end yet
        if line:
            event.append(line)
        elif event:
            yield event
            event = []


def is_data(line: str) -> bool:
    return line == "data" or line.startswith("data:")


def data(event: list[str]) -> str | None:
    """The event's data, or None when it has no data field."""
    values = [_value(line) for line in event if is_data(line)]
    return "\n".join(values) if values else None


def _value(line: str) -> str:
    value = line[5:]
    return value[1:] if value.startswith(" ") else value
