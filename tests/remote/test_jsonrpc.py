"""The JSON-RPC envelope both remote planes read and answer with (shared/remote/jsonrpc.py): the same
body is refused the same way by the MCP plane and the agent plane, an error repeats only a plain id,
and every error carries the gateway's own code in `data.gateway_error`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from shared.agents.rpc import as_rpc, parse_request
from shared.errors import JsonRpcError, NotFound, UpstreamTimeout
from shared.mcp import codes, wire
from shared.remote import jsonrpc

PLANES: dict[str, Callable[[bytes], Any]] = {"mcp": lambda raw: wire.parse(raw, None),
                                             "agents": parse_request}


@pytest.mark.parametrize("plane", PLANES)
@pytest.mark.parametrize(("raw", "rpc_code"), [
    (b"{", -32700),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "a", "method": "b"}', -32700),     # duplicate key
    (b'{"jsonrpc": "2.0", "id": 1, "method": "a", "params": {"n": NaN}}', -32700),
    (b'[{"jsonrpc": "2.0", "id": 1, "method": "a"}]', -32600),                  # a batch
    (b'"text"', -32600),
    (b"[]", -32600),
], ids=["truncated", "duplicate-key", "nan", "batch", "string", "empty-batch"])
def test_both_planes_refuse_the_same_bodies_the_same_way(plane: str, raw: bytes, rpc_code: int) -> None:
    with pytest.raises(JsonRpcError) as raised:
        PLANES[plane](raw)
    body: Any = raised.value.body()
    assert raised.value.status == 400
    assert body["error"]["code"] == rpc_code and body["id"] is None
    assert body["error"]["data"] == {"gateway_error": "invalid_request"}


@pytest.mark.parametrize(("sent", "echoed"), [
    (7, 7), ("req-1", "req-1"), ("0f8b:2.a_b", "0f8b:2.a_b"),
    ("<script>alert(1)</script>", None), ("x" * 129, None), (True, None), (1.5, None), ({"a": 1}, None),
    ("line\r\nInjected: yes", None),
])
def test_hostile_request_id_is_not_echoed_in_the_gateways_errors(sent: Any, echoed: Any) -> None:
    """A 'tools/call' of a hidden tool (MCP) and a malformed request (agents) both repeat a plain id,
    never caller text of another shape."""
    mcp = json.dumps({"jsonrpc": "2.0", "id": sent, "method": "tools/call", "params": []}).encode()
    agents = json.dumps({"jsonrpc": "1.0", "id": sent, "method": "SendMessage"}).encode()
    for plane, raw in (("mcp", mcp), ("agents", agents)):
        with pytest.raises(JsonRpcError) as raised:
            PLANES[plane](raw)
        assert raised.value.body()["id"] == echoed, plane


@pytest.mark.parametrize(("error", "mcp_code", "agents_code"), [
    (NotFound("no such thing"), -32004, -32000),
    (UpstreamTimeout("too slow"), -32001, -32603),
])
def test_each_plane_keeps_its_codes_and_the_gateways_reason(error: Any, mcp_code: int,
                                                             agents_code: int) -> None:
    for made, rpc_code in ((codes.as_jsonrpc(error, 3), mcp_code), (as_rpc(error, 3), agents_code)):
        assert made.status == error.status
        assert made.body() == {"jsonrpc": "2.0", "id": 3, "error": {
            "code": rpc_code, "message": error.public, "data": {"gateway_error": error.code}}}


def test_an_error_event_stands_alone_after_a_half_written_one() -> None:
    error = codes.as_jsonrpc(UpstreamTimeout("too slow"), 1)
    stream = b'data: {"jsonrpc": "2.0", "id": 1, "res' + jsonrpc.error_event(error)
    events = [e for e in stream.split(b"\n\n") if e.strip()]
    assert json.loads(events[-1].removeprefix(b"data: ")) == error.body()
