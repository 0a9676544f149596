"""JSON for hostile input: request bodies, token segments, key sets and discovery documents.

Strict RFC 8259 as profiled by I-JSON (RFC 7493). Python's json keeps the last of duplicate members
(another parser may keep the first: a classic differential that lets a caller show the gateway one
`model` and the upstream another), accepts NaN and Infinity, turns 1e400 into infinity, and recurses
without a depth limit of its own. Here duplicates, non-standard constants, numbers out of range,
invalid UTF-8, lone surrogates and deep nesting are all refused, with a message naming the problem and
never echoing more than a short, escaped piece of the input.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 20
"""Tokens and key sets: nothing legitimate nests deeper."""
BODY_DEPTH = 64
"""Request bodies (tool schemas nest, but not this deep)."""
INT_LIMIT = 2**63
"""Integers must fit a signed 64-bit integer: what upstream services parse numbers into."""


class StrictJSONError(ValueError):
    """The bytes are not acceptable JSON; the message says why (without echoing the input)."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise StrictJSONError("duplicate member " + _short(key))
            seen.add(key)
    return result


def _short(key: str) -> str:
    return ascii(key[:32]) + ("..." if len(key) > 32 else "")


def _constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant)


def loads(data: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise StrictJSONError("not valid UTF-8") from None
    try:
        value = _DECODER.decode(text)
    except StrictJSONError:
        raise
    except RecursionError:
        raise StrictJSONError(f"nested too deeply (more than {max_depth} levels)") from None
    except ValueError:
        raise StrictJSONError("not valid JSON") from None
    _check(value, max_depth)
    return value


def _check(value: Any, max_depth: int) -> None:
    """Depth, numbers and lone surrogates (escaped as \\ud800 they decode to text no UTF-8 encoder
    accepts), in one walk after the C decoder: cheaper than a Python hook per number."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _text(item)
        elif isinstance(item, int):
            if not -INT_LIMIT <= item < INT_LIMIT:
                raise StrictJSONError("a number is out of range (integers must fit in 64 bits)")
        elif isinstance(item, float):
            if not math.isfinite(item):      # Infinity itself is refused by the decoder: this overflowed
                raise StrictJSONError("a number is out of range (it overflows a double)")
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise StrictJSONError(f"nested too deeply (more than {max_depth} levels)")
            if isinstance(item, dict):
                for key, member in item.items():
                    _text(key)
                    stack.append((member, depth + 1))
            else:
                stack.extend((member, depth + 1) for member in item)


def _text(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise StrictJSONError("contains an unpaired surrogate") from None
