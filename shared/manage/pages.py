"""Pages of /manage lists: `?limit=` (default 100, at most 1,000) and `?cursor=` (the previous page's
`next_cursor`), answered as `{"items": [...], "next_cursor": "..." | null}`.

A page reads at most `limit` + 1 rows of storage whoever asks, so no request costs more than that.
Items the caller may not see are left out after reading, so a page may hold fewer than `limit` items
and still have a `next_cursor`: the list ends when `next_cursor` is null.

A cursor is the position after the last row the previous page read, bound by a checksum to the list
it came from (its path and filters): an edited cursor, or one from another list, answers 400. The
checksum needs no secret: a cursor is only a position, and every item of every page is still checked
against the caller's roles, so a forged cursor shows nothing more than walking the list does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass

from starlette.requests import Request

from ..errors import InvalidRequest

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CURSOR = 4096
_DIGITS = re.compile(r"^[0-9]{1,4}$")
Position = tuple[str | None, ...]


def _digest(scope: str, payload: bytes) -> str:
    return hashlib.sha256(scope.encode() + b"\n" + payload).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class Page:
    scope: str                  # the list: path and filters
    limit: int
    after: Position | None      # where the previous page stopped; None: from the start

    def cursor(self, *position: str | None) -> str:
        payload = json.dumps(list(position), separators=(",", ":"), ensure_ascii=False).encode()
        return f"{_b64(payload)}.{_digest(self.scope, payload)}"


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not _DIGITS.match(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidRequest(f"limit: must be a whole number from 1 to {MAX_LIMIT}", param="limit")
    return int(raw)


def _position(raw: str, scope: str) -> Position:
    bad = InvalidRequest("cursor: not a cursor this list gave out; start again without one", param="cursor")
    encoded, dot, digest = raw.partition(".")
    if len(raw) > MAX_CURSOR or not dot:
        raise bad
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        position = json.loads(payload)
    except (binascii.Error, ValueError):
        raise bad from None
    if digest != _digest(scope, payload) or not isinstance(position, list) or not position or \
            not all(p is None or isinstance(p, str) for p in position):
        raise bad
    return tuple(position)


def page_of(req: Request, *filters: str | None) -> Page:
    """The page a list request asks for; `filters` are the list's other query values."""
    scope = "\n".join([req.url.path, *(f or "" for f in filters)])
    raw = req.query_params.get("cursor")
    return Page(scope, _limit(req.query_params.get("limit")),
                None if raw is None else _position(raw, scope))


def answer(items: list[object], next_cursor: str | None) -> dict[str, object]:
    return {"items": items, "next_cursor": next_cursor}
