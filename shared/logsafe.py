"""Log lines an attacker cannot forge or colour.

Paths, header values and token claims (`sub`, `kid`, `iss`, model names) reach log lines. A CR or LF
in one would start a fake record, an ESC sequence would recolour or erase a terminal, bidi controls
reorder what an operator reads. So every record that goes through a protected handler has the control
characters of its message and of its structured `extra` values escaped (`\\r`, `\\x1b`, `\\u202e`),
and a formatted traceback is indented so that only a record can start a line.

`escape` is for the few places that build a string before it is logged.
"""

from __future__ import annotations

import logging
import re

# C0 and C1 controls, DEL, the Unicode line and paragraph separators, and the bidi controls.
_OTHERS = "\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f{_OTHERS}]")
_UNSAFE_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f{_OTHERS}]")
_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def _one(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """`text` with every control character written as an escape; unchanged when there is none."""
    return _UNSAFE.sub(_one, text) if _UNSAFE.search(text) else text


class EscapeControls(logging.Filter):
    """Escapes the formatted message and the string `extra` values of every record it sees.

    The message is formatted here once (`args` cleared), so the formatter does not format it again.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            # uvicorn's access formatter unpacks `args` (the Functions worker's HTTP server uses it):
            # each is escaped in place instead; numbers (the status) stay numbers.
            record.args = tuple(a if isinstance(a, int) else escape(str(a)) for a in record.args)
        elif record.args or not isinstance(record.msg, str) or _UNSAFE.search(record.msg):
            record.msg = escape(record.getMessage())
            record.args = None
        extras = record.__dict__.keys() - _STANDARD
        for key in extras:
            value = record.__dict__[key]
            if isinstance(value, str) and _UNSAFE.search(value):
                record.__dict__[key] = escape(value)
        return True


class SafeFormatter(logging.Formatter):
    """Tracebacks and stacks keep their lines but are indented and stripped of other controls, so an
    exception message holding a CR, LF or ESC cannot start or colour a line of its own."""

    def formatException(self, ei: object) -> str:  # type: ignore[override]
        return _indent(super().formatException(ei))  # type: ignore[arg-type]

    def formatStack(self, stack_info: str) -> str:
        return _indent(super().formatStack(stack_info))


def _indent(text: str) -> str:
    text = _UNSAFE_BUT_NEWLINE.sub(_one, text)
    return "\n".join("    " + line for line in text.split("\n"))


_FILTER = EscapeControls()


def protect(handler: logging.Handler) -> None:
    """Add the escaping filter to `handler` (once)."""
    if not any(isinstance(f, EscapeControls) for f in handler.filters):
        handler.addFilter(_FILTER)


def install() -> None:
    """Protect every handler the gateway's records can reach: the root's, the gateway logger's (where
    the exporters add theirs) and uvicorn's. Call again after adding handlers; it is idempotent."""
    for name in ("", "gateway", "uvicorn", "uvicorn.error", "uvicorn.access"):
        for handler in logging.getLogger(name).handlers:
            protect(handler)


def stream_handler() -> logging.Handler:
    """A stderr handler with the gateway's format, protected."""
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter(FORMAT))
    protect(handler)
    return handler
