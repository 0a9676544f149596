"""An agent's card, fetched with the gateway's outbound auth and kept briefly, rewritten for callers.

The card is fetched from the agent's `card_url` (default `<url's origin>/.well-known/agent-card.json`),
capped in size, strict JSON, and rewritten (rewrite.py) before anyone sees it. It is kept per agent,
not per user, for `CARD_TTL_S`: a card is the same for every caller, while each request is still
authorized on its own before the kept card is served.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .. import strict_json
from ..errors import GatewayError, UpstreamError
from ..remote.auth import RemoteAuthProblem
from ..remote.client import RemoteFailure, RemoteRequest
from .failures import from_auth, from_remote, from_status
from .rewrite import rewrite_card

if TYPE_CHECKING:
    from ..auth.identities import Principal
    from ..config.model import Agent
    from ..config.snapshot import View
    from ..remote.services import RemoteServices

WELL_KNOWN = "/.well-known/agent-card.json"
CARD_LIMIT = 1024 * 1024
CARD_TTL_S = 30.0
_KEPT_MAX = 1024


def card_url(agent: Agent) -> str:
    if agent.card_url:
        return agent.card_url
    assert agent.url is not None
    parts = urlsplit(agent.url)
    return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}"


class CardCache:
    """Rewritten cards by (agent, where it is fetched from, where it points to), for a short while."""

    def __init__(self, ttl_s: float = CARD_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_s
        self._clock = clock
        self._kept: dict[tuple[str, ...], tuple[float, bytes]] = {}

    def get(self, key: tuple[str, ...]) -> bytes | None:
        entry = self._kept.get(key)
        if entry is None or self._clock() - entry[0] >= self._ttl:
            return None
        return entry[1]

    def put(self, key: tuple[str, ...], card: bytes) -> None:
        if len(self._kept) >= _KEPT_MAX:
            self._kept.clear()
        self._kept[key] = (self._clock(), card)


CARDS = CardCache()


async def agent_card(remote: RemoteServices, agent: Agent, principal: Principal, view: View,
                     endpoint: str) -> bytes:
    """The card as JSON bytes, every agent URL in it `endpoint`."""
    source = card_url(agent)
    key = (agent.name, agent.url or "", source, endpoint)
    kept = CARDS.get(key)
    if kept is not None:
        return kept
    card = rewrite_card(await _fetch(remote, agent, principal, view, source), endpoint)
    body = json.dumps(card, ensure_ascii=False, separators=(",", ":")).encode()
    CARDS.put(key, body)
    return body


async def _fetch(remote: RemoteServices, agent: Agent, principal: Principal, view: View,
                 source: str) -> dict[str, object]:
    try:
        headers = {"Accept": "application/json", **await remote.auth.headers(agent, principal, view)}
        reply = await remote.client.open(RemoteRequest("GET", source, headers, None, agent.timeout_s,
                                                       agent.allow_private_network))
        if reply.status != 200:
            reply.release()
            raise _card_error(from_status(reply.status, None))
        raw = await reply.read(CARD_LIMIT)
    except RemoteFailure as failure:
        raise _card_error(from_remote(failure)) from None
    except RemoteAuthProblem as problem:
        raise from_auth(problem) from None
    try:
        card = strict_json.loads(raw, max_depth=strict_json.BODY_DEPTH)
    except strict_json.StrictJSONError:
        card = None
    if not isinstance(card, dict):
        raise UpstreamError("the agent's card is not a JSON object")
    return card


def _card_error(error: GatewayError) -> GatewayError:
    error.message = error.public = f"the agent's card could not be fetched: {error.message}"
    return error
