"""JSON for hostile input.

Python's json keeps the last of duplicate members (another parser may keep the first: a classic
differential), accepts NaN and Infinity, and recurses without a depth limit of its own. Here duplicates,
non-standard constants, invalid UTF-8, lone surrogates and deep nesting are all refused.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 20


class StrictJSONError(ValueError):
    """The bytes are not acceptable JSON; the message says why (without echoing the input)."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJSONError("duplicate member " + _short(key))
        result[key] = value
    return result


def _short(key: str) -> str:
    return repr(key[:32]) + ("..." if len(key) > 32 else "")


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
        raise StrictJSONError("nested too deeply") from None
    except ValueError:
        raise StrictJSONError("not valid JSON") from None
    _check(value, max_depth)
    return value


def _check(value: Any, max_depth: int) -> None:
    """Depth and lone surrogates (escaped as \\ud800 they decode to text no UTF-8 encoder accepts)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _text(item)
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise StrictJSONError(f"nested deeper than {max_depth} levels")
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
