"""The plane's reading of MCP's wire: header values as clients encode them, and tools/list answers
filtered in every framing a server may use (a hostile one included)."""

from __future__ import annotations

import json

import pytest

from shared.errors import JsonRpcError
from shared.mcp import tools, wire


@pytest.mark.parametrize(("value", "decoded"), [
    ("search_docs", "search_docs"),
    ("=?base64?Y2Fmw6k=?=", "caf\u00e9"),
    ("=?base64?!!!?=", None),              # not base64
    ("=?base64?/w==?=", None),             # not UTF-8
    (None, None),
])
def test_header_values_decode_as_clients_encode_them(value: str | None, decoded: str | None) -> None:
    assert wire.decode_header_value(value) == decoded


def allows(name: str) -> bool:
    return not name.startswith("delete_")


LISTED = {"jsonrpc": "2.0", "id": 2, "result": {"tools": [{"name": "get_item"}, {"name": "delete_item"}]}}


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_tools_list_events_are_filtered_whatever_the_line_ends(newline: str) -> None:
    n = newline
    stream = f"event: message{n}data: {json.dumps(LISTED)}{n}{n}: keep-alive{n}{n}"
    out = tools.filter_events(stream.encode(), allows).decode()
    data = [json.loads(line[6:]) for line in out.split("\n") if line.startswith("data: ")]
    assert data == [{**LISTED, "result": {"tools": [{"name": "get_item"}], "cacheScope": "private"}}]
    assert "event: message" in out and ": keep-alive" in out


def test_tools_list_event_split_over_data_lines_is_filtered() -> None:
    text = json.dumps(LISTED, indent=1)
    stream = "".join(f"data: {line}\n" for line in text.split("\n")) + "\n"
    assert "delete_item" not in tools.filter_events(stream.encode(), allows).decode()


@pytest.mark.parametrize("data", [
    '{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"get_item"}]},"result":{"tools":[{"name":"delete_item"}]}}',
    '{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"delete_item"}]}',
], ids=["duplicate-result", "truncated"])
def test_attack_unreadable_tools_list_event_is_dropped_not_relayed(data: str) -> None:
    assert tools.filter_events(f"data: {data}\n\n".encode(), allows) == b""


def test_attack_unreadable_tools_list_json_is_refused() -> None:
    doubled = b'{"id":1,"result":{"tools":[]},"result":{"tools":[{"name":"delete_item"}]}}'
    with pytest.raises(tools.Unreadable):
        tools.filter_json(doubled, allows)


@pytest.mark.parametrize(("raw", "code"), [
    (b"[]", -32600), (b'"text"', -32600), (b"{", -32700), (b'{"method": 5}', -32600),
    (b'{"method": "tools/call", "params": []}', -32600),
])
def test_a_message_is_one_json_rpc_object(raw: bytes, code: int) -> None:
    with pytest.raises(JsonRpcError) as raised:
        wire.parse(raw, None)
    assert raised.value.body()["error"]["code"] == code  # type: ignore[index]
