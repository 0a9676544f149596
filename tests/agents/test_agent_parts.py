"""The agent plane's pure parts: card rewriting, the JSON-RPC envelope, the SSE error spotter, the card
cache. What the a2a SDK makes of a rewritten card is checked too: its own card parser is the client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from a2a.client.card_resolver import parse_agent_card

from shared.agents.card import CardCache, card_url
from shared.agents.rewrite import rewrite_card
from shared.agents.rpc import parse_request
from shared.agents.stream import ErrorSpotter
from shared.config.model import Agent
from shared.errors import JsonRpcError

AGENT = "https://agent.internal.example"
GATEWAY = "https://gw.example/agents/triage"

MODERN = {"name": "m", "supportedInterfaces": [
    {"url": f"{AGENT}/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
    {"url": f"{AGENT}/a2a/v03", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
    {"url": f"{AGENT}:50051", "protocolBinding": "GRPC", "protocolVersion": "1.0"},
    {"url": f"{AGENT}/rest", "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"}],
    "securitySchemes": {"oauth": {"oauth2SecurityScheme": {"flows": {"clientCredentials": {
        "tokenUrl": f"{AGENT}/token", "scopes": {"a": "a"}}}}}},
    "securityRequirements": [{"schemes": {"oauth": {"list": ["a"]}}}],
    "skills": [{"id": "s", "name": "s", "description": "d", "tags": [],
                "securityRequirements": [{"schemes": {"oauth": {"list": ["a"]}}}]}],
    "signatures": [{"protected": "e30", "signature": "c2ln"}],
    "provider": {"organization": "Acme", "url": "https://acme.example"}, "capabilities": {"streaming": True}}
LEGACY = {"name": "l", "url": f"{AGENT}/a2a", "preferredTransport": "GRPC", "protocolVersion": "0.3.0",
          "additionalInterfaces": [{"url": f"{AGENT}/a2a", "transport": "JSONRPC"},
                                   {"url": f"{AGENT}:50051", "transport": "GRPC"}],
          "securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "X-Key"}},
          "security": [{"key": []}], "skills": [{"id": "s", "name": "s", "description": "d", "tags": [],
                                                  "security": [{"key": []}]}]}
MERGED = {**MODERN, **{k: v for k, v in LEGACY.items() if k not in ("name", "skills", "securitySchemes")}}


@pytest.mark.parametrize("card", [MODERN, LEGACY, MERGED], ids=["1.0", "0.3", "both"])
def test_every_way_in_leads_through_the_gateway(card: dict[str, Any]) -> None:
    out = rewrite_card(card, GATEWAY)
    assert AGENT not in json.dumps(out)
    assert "signatures" not in out and list(out["securitySchemes"]) == ["gateway"]
    parsed = parse_agent_card(json.loads(json.dumps(out)))      # what an a2a-sdk client reads
    assert parsed.supported_interfaces and {i.url for i in parsed.supported_interfaces} == {GATEWAY}
    assert {i.protocol_binding for i in parsed.supported_interfaces} == {"JSONRPC"}
    assert parsed.security_schemes["gateway"].http_auth_security_scheme.scheme.lower() == "bearer"
    assert [list(r.schemes) for r in parsed.security_requirements] == [["gateway"]]
    assert not parsed.skills[0].security_requirements


def test_both_protocol_versions_of_a_modern_card_stay_and_the_rest_is_kept() -> None:
    out = rewrite_card(MODERN, GATEWAY)
    assert [i["protocolVersion"] for i in out["supportedInterfaces"]] == ["1.0", "0.3"]
    assert out["provider"] == MODERN["provider"] and out["capabilities"] == {"streaming": True}
    assert MODERN["supportedInterfaces"][0]["url"] == f"{AGENT}/a2a", "the input was changed"


def test_a_legacy_card_prefers_json_rpc_through_the_gateway() -> None:
    out = rewrite_card(LEGACY, GATEWAY)
    assert out["url"] == GATEWAY and out["preferredTransport"] == "JSONRPC"
    assert out["additionalInterfaces"] == [{"url": GATEWAY, "transport": "JSONRPC"}]
    assert out["security"] == [{"gateway": []}] and "supportedInterfaces" not in out


@pytest.mark.parametrize(("raw", "code", "rpc_id"), [
    (b'{"jsonrpc":"2.0","id":"abc-1","method":"x"}', None, "abc-1"),
    (b'{"jsonrpc":"2.0","id":5,"method":"x"}', None, 5),
    (b'{"jsonrpc":"2.0","id":"<script>","method":"x"}', None, None),   # not repeated in errors
    (b'{"jsonrpc":"2.0","id":true,"method":"x"}', None, None),
    (b'{"jsonrpc":"1.0","id":"a","method":"x"}', -32600, "a"),
    (b'{"jsonrpc":"2.0","id":"a","method":""}', -32600, "a"),
    (b'{"jsonrpc":"2.0","id":"a","method":"x","id":"b"}', -32700, None),
    (b'"just a string"', -32600, None),
])
def test_parse_request(raw: bytes, code: int | None, rpc_id: Any) -> None:
    if code is None:
        assert parse_request(raw).rpc_id == rpc_id
        return
    with pytest.raises(JsonRpcError) as caught:
        parse_request(raw)
    body: Any = caught.value.body()
    assert body["error"]["code"] == code and body["id"] == rpc_id
    assert caught.value.status == 400


@pytest.mark.parametrize(("chunks", "seen"), [
    ([b'data: {"jsonrpc":"2.0","id":1,"result":{"task":{}}}\n\n'], False),
    ([b'data: {"jsonrpc":"2.0","id":1,"err', b'or":{"code":-32001,"message":"x"}}\n\n'], True),
    ([b'data: {"jsonrpc":"2.0","id":1,"result":{"text":"error"}}\r\n\r\n'], False),
    ([b'event: message\ndata: {"jsonrpc":"2.0","id":1,"error":{}}\n\n'], True),
    ([b'data: ' + b"x" * (2 * 1024 * 1024), b'tail\ndata: {"result":1}\n\n'], False),
])
def test_error_spotter(chunks: list[bytes], seen: bool) -> None:
    spotter = ErrorSpotter()
    for chunk in chunks:
        spotter.feed(chunk)
    assert spotter.seen is seen


def test_the_card_is_kept_briefly() -> None:
    now = [0.0]
    cache = CardCache(ttl_s=30, clock=lambda: now[0])
    cache.put(("a",), b"{}")
    now[0] = 29.9
    assert cache.get(("a",)) == b"{}"
    now[0] = 30.0
    assert cache.get(("a",)) is None


@pytest.mark.parametrize(("agent", "expected"), [
    (Agent("a", url="https://agents.example:8443/a2a/triage"),
     "https://agents.example:8443/.well-known/agent-card.json"),
    (Agent("a", url="https://x.example/a2a", card_url="https://x.example/card.json"),
     "https://x.example/card.json"),
])
def test_card_url(agent: Agent, expected: str) -> None:
    assert card_url(agent) == expected
