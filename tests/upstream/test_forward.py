"""Forwarding rules that hold whatever the upstream answers: addresses, which answers fail, what of an
answer reaches the caller, and where its usage is read."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from shared import strict_json
from shared.config.model import Target
from shared.config.schema import parse_item
from shared.errors import Unavailable
from shared.upstream.address import check_endpoint, upstream_body, upstream_url
from shared.upstream.answer import hide_deployment, passed_on
from shared.upstream.failover import refusal
from shared.upstream.outbound import passed_headers
from shared.upstream.usage_scan import AmbiguousUsage, body_with_usage_requested, usage_of_json


def account(endpoint: str, **extra: str):  # type: ignore[no-untyped-def]
    doc = {"name": "a", "endpoint": endpoint, "auth": {"type": "api-key", "key_env": "GATEWAY_SECRET_K"},
           **extra}
    return parse_item("accounts", doc, allowlist=None)   # forward's own checks, whatever the allowlist


@pytest.mark.parametrize(("endpoint", "allow", "ok"), [
    ("https://acme.openai.azure.com", False, True),
    ("http://127.0.0.1:7082", True, True),
    ("http://[::1]:7082", True, True),
    ("http://localhost:7082", True, True),
    ("http://127.0.0.1:7082", False, False),
    ("http://acme.openai.azure.com", True, False),
    ("http://10.0.0.5", True, False),
])
def test_plain_http_only_on_loopback_with_the_bypass(endpoint: str, allow: bool, ok: bool) -> None:
    if ok:
        check_endpoint(account(endpoint), allow)
    else:
        with pytest.raises(Unavailable, match="must use https"):
            check_endpoint(account(endpoint), allow)


def test_deployment_style_keeps_the_callers_bytes() -> None:
    a = account("https://x.openai.azure.com")
    target = Target(account="a", deployment="dep/1")   # the schema refuses it; the URL still quotes it
    assert upstream_url(a, target, "chat/completions", {"api-version": "2025-01-01", "x": "y"}) == (
        "https://x.openai.azure.com/openai/deployments/dep%2F1/chat/completions?api-version=2025-01-01")
    assert upstream_url(a, target, "embeddings", {}).endswith("?api-version=2024-10-21")
    raw = b'{"model": "m", "input": "hi"}'
    assert upstream_body(a, target, "embeddings", raw, {"model": "m", "input": "hi"}) is raw
    assert upstream_url(a, target, "responses", {}) == "https://x.openai.azure.com/openai/v1/responses"
    assert upstream_body(a, target, "responses", raw, {"model": "m"}) == b'{"model":"dep/1"}'
    v1 = account("https://x.openai.azure.com", api_style="v1")
    assert upstream_url(v1, target, "embeddings", {}) == "https://x.openai.azure.com/openai/v1/embeddings"
    assert upstream_body(v1, target, "embeddings", raw, {"model": "m", "input": "hi"}) == (
        b'{"model":"dep/1","input":"hi"}')


@pytest.mark.parametrize(("answer", "usage"), [
    (b'{"usage":{"prompt_tokens":3}}', {"prompt_tokens": 3}),
    (b'{"usage":{"input_tokens":7},"metadata":{"usage":"none"}}', {"input_tokens": 7}),
    (b'{"tools":[{"parameters":{"usage":{"prompt_tokens":9}}}],"usage":{"prompt_tokens":1}}',
     {"prompt_tokens": 1}),
    (b'{"text":"\\"usage\\":{\\"prompt_tokens\\":9}"}', None),
    (b'{"a":1,"a":2,"usage":{"total_tokens":4}}', {"total_tokens": 4}),   # a repeat elsewhere is no matter
    (b'{"\\u0075sage":{"total_tokens":5}}', {"total_tokens": 5}),
    (b'{"data":[[0.5,1e400]],"usage":{"total_tokens":6}}', {"total_tokens": 6}),
    (b'{"usage":null}', None), (b"[]", None), (b"not json", None), (b"\xff", None),
    (b'{"usage":{"x":1},"usage":{"x":2}}', AmbiguousUsage),
    (b'{"usage":{"x":1,"x":2}}', AmbiguousUsage),
    (b'{"type":"response.completed","response":{"usage":{"input_tokens":2}}}', {"input_tokens": 2}),
    (b'{"type":"response.completed","response":{"usage":{}},"response":{"usage":{"x":1}}}', AmbiguousUsage),
    (b'{"type":"response.output_text.delta","usage":{"x":1},"type":"response.completed"}', AmbiguousUsage),
])
def test_usage_is_read_from_parsed_json(answer: bytes, usage: object) -> None:
    if usage is AmbiguousUsage:
        with pytest.raises(AmbiguousUsage):
            usage_of_json(answer)
    else:
        assert usage_of_json(answer) == usage


@pytest.mark.parametrize(("status", "moves_on"), [
    (200, False), (204, False), (301, True), (302, True), (304, True), (307, True), (308, True),
    (400, False), (401, True), (403, True), (404, False), (422, False), (429, True), (500, True),
    (503, True)])
def test_which_statuses_move_on(status: int, moves_on: bool) -> None:
    failure = refusal(account("https://x.openai.azure.com"), status, {})
    assert (failure is not None) is moves_on
    if failure is not None:
        assert "dep" not in failure.message and "x.openai.azure.com" not in failure.message


def test_only_allowed_upstream_headers_pass() -> None:
    upstream = CIMultiDict([
        ("Content-Type", "application/json"), ("Content-Length", "12"), ("Location", "https://evil"),
        ("WWW-Authenticate", "Bearer"), ("Server", "x"), ("Set-Cookie", "a=b"), ("x-request-id", "theirs"),
        ("X-RateLimit-Remaining-Tokens", "9"), ("openai-version", "2020-10-01"), ("apim-request-id", "i"),
        ("openai-processing-ms", "3"), ("Retry-After", "2"), ("x-ratelimit-bad", "caf\u00e9"),
        ("x-ms-deployment-name", "dep"), ("Transfer-Encoding", "chunked")])
    assert passed_on(upstream, "ours") == {
        "content-type": "application/json", "x-ratelimit-remaining-tokens": "9",
        "openai-version": "2020-10-01", "apim-request-id": "i", "openai-processing-ms": "3",
        "retry-after": "2", "x-request-id": "ours"}


@pytest.mark.parametrize(("body", "hidden"), [
    (b'{"error":{"message":"deployment gpt-4o-prod not found"}}',
     b'{"error":{"message":"deployment chat not found"}}'),
    (b'"gpt-4o-prod-2 and xgpt-4o-prod stay"', b'"gpt-4o-prod-2 and xgpt-4o-prod stay"'),
    (b'"/openai/deployments/gpt-4o-prod/chat"', b'"/openai/deployments/chat/chat"'),
])
def test_upstream_errors_name_the_model_not_the_deployment(body: bytes, hidden: bytes) -> None:
    assert hide_deployment(body, "gpt-4o-prod", "chat") == hidden
    assert hide_deployment(b'"dep/1 dep%2F1"', "dep/1", "m") == b'"m m"'


@pytest.mark.parametrize(("sent", "upstream"), [
    # no stream_options: the member is added, every other byte as the caller sent it
    (b'{"model":"m","stream":true}', b'{"model":"m","stream":true,"stream_options":{"include_usage":true}}'),
    (b'{ "stream" : true,\n "x": [1.50, "\\u00e9"] }\n',
     b'{ "stream" : true,\n "x": [1.50, "\\u00e9"] ,"stream_options":{"include_usage":true}}\n'),
    # stream_options given without include_usage: written again from the parsed body
    (b'{"stream":true,"stream_options":{"x":1}}',
     b'{"stream":true,"stream_options":{"x":1,"include_usage":true}}'),
])
def test_usage_is_asked_for_without_rewriting_the_callers_bytes(sent: bytes, upstream: bytes) -> None:
    doc = strict_json.loads(sent)
    assert body_with_usage_requested(sent, doc) == upstream
    assert strict_json.loads(upstream)["stream_options"]["include_usage"] is True


def test_only_allowed_caller_headers_pass_from_raw_or_mapped_headers() -> None:
    from starlette.datastructures import Headers

    raw = [(b"content-type", b"application/json"), (b"authorization", b"Bearer t"), (b"accept", b"*/*"),
           (b"cookie", b"a=b"), (b"openai-beta", b"assistants=v2")]
    expected = {"content-type": "application/json", "accept": "*/*", "openai-beta": "assistants=v2",
                "x-request-id": "r", "x-ms-client-request-id": "r", "accept-encoding": "identity"}
    assert passed_headers(Headers(raw=raw), "r") == expected
    assert passed_headers({k.decode(): v.decode() for k, v in raw}, "r") == expected
