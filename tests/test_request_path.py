"""The one request path as a hostile caller meets it: canonical paths, the operation allowlist, strict
JSON bodies, the URL the upstream receives for every route, and the answer to everything else.

Requests are written as raw bytes on a socket: HTTP clients and URL libraries normalise dot segments
and encodings before sending, which is exactly what an attacker does not do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.harness import NewWorld, RawAnswer, World, raw_request

CHAT = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()
V = "api-version=2024-10-21"


@pytest.fixture(scope="module")
def world(new_world: NewWorld) -> Iterator[World]:
    with new_world() as world:
        yield world


def send(world: World, method: str, target: bytes, body: bytes | None = None,
         token: bool = True) -> RawAnswer:
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    if token:
        lines.append(b"Authorization: Bearer " + world.token.encode())
    if body is not None:
        lines += [b"Content-Type: application/json", b"Content-Length: " + str(len(body)).encode()]
    return raw_request(world.port, b"\r\n".join(lines) + b"\r\n\r\n" + (body or b""))


REFUSED_PATHS = [
    ("dot-dot-after-operation", b"/v1/chat/completions/.."),
    ("dot-dot-in-deployment-operation",
     b"/openai/deployments/gpt-4o/../../v1/chat/completions?" + V.encode()),
    ("dot-dot-in-v1-operation", b"/openai/v1/chat/../../deployments/x/chat/completions"),
    ("single-dot-segment", b"/v1/./chat/completions"),
    ("encoded-slash-lower", b"/openai/v1/chat%2fcompletions"),
    ("encoded-slash-upper", b"/openai/deployments/gpt-4o%2Fchat/completions?" + V.encode()),
    ("encoded-dot-dot", b"/openai/v1/%2e%2e/%2E%2E/openai/deployments/x/chat/completions"),
    ("encoded-single-dot", b"/v1/%2E/chat/completions"),
    ("encoded-backslash", b"/openai/v1/chat%5Ccompletions"),
    ("encoded-backslash-lower", b"/openai/v1/..%5c..%5cfiles"),
    ("double-encoded-slash", b"/openai/v1/chat%252Fcompletions"),
    ("raw-backslash", b"/openai/v1/chat\\completions"),
    ("empty-segment", b"/v1//chat/completions"),
    ("empty-segment-in-deployment", b"/openai/deployments//chat/completions?" + V.encode()),
    ("trailing-slash", b"/v1/chat/completions/"),
    ("encoded-newline", b"/v1/chat/completions%0a"),
    ("encoded-nul", b"/openai/v1/chat%00/completions"),
    ("encoded-delete", b"/v1/chat%7F/completions"),
]


@pytest.mark.parametrize(("case", "target"), REFUSED_PATHS, ids=[c for c, _ in REFUSED_PATHS])
def test_attack_path_confusion_is_refused_before_routing(world: World, case: str,
                                                         target: bytes) -> None:
    seen = len(world.emulator.requests)
    answer = send(world, "POST", target, CHAT)
    assert answer.status == 400, answer.body
    assert answer.error()["code"] == "invalid_request"
    assert "request path" in answer.error()["message"]
    assert answer.headers["x-request-id"]
    assert len(world.emulator.requests) == seen       # nothing was forwarded


@pytest.mark.parametrize("target", [
    b"/openai/deployments/gpt-4o/fine_tuning/jobs?" + V.encode(),
    b"/openai/deployments/gpt-4o/chat/completions/extra?" + V.encode(),
    b"/openai/deployments/gpt-4o/files?" + V.encode(),
    b"/openai/v1/fine_tuning/jobs",
    b"/openai/v1/assistants",
    b"/openai/v1/chat/completions/x",
    b"/openai/v1/Chat/Completions",
])
def test_attack_unsupported_operation_is_not_forwarded(world: World, target: bytes) -> None:
    seen = len(world.emulator.requests)
    answer = send(world, "POST", target, CHAT)
    assert answer.status == 404
    assert answer.error()["code"] == "not_found" and answer.error()["type"] == "invalid_request_error"
    assert "fine_tuning" not in answer.error()["message"]          # never echoes the caller's path
    assert len(world.emulator.requests) == seen


@pytest.mark.parametrize("version", [b"2024-10-21%26x%3Dy", b"..%2F..", b"latest",
                                     b"2024-10-21&api-version=x"])
def test_attack_api_version_smuggling_is_refused(world: World, version: bytes) -> None:
    seen = len(world.emulator.requests)
    answer = send(world, "POST", b"/openai/deployments/gpt-4o/chat/completions?api-version=" + version, CHAT)
    assert answer.status == 400 and answer.error()["param"] == "api-version"
    assert len(world.emulator.requests) == seen


EMBED = json.dumps({"model": "embed", "input": "hi"}).encode()
RESPONSES = json.dumps({"model": "gpt-4o", "input": "hi"}).encode()
COMPLETION = json.dumps({"model": "gpt-4o", "prompt": "hi"}).encode()
UPSTREAM_URLS = [
    ("/v1/chat/completions", CHAT, "/openai/deployments/gpt-4o-dep/chat/completions"),
    ("/v1/completions", COMPLETION, "/openai/deployments/gpt-4o-dep/completions"),
    ("/v1/embeddings", EMBED, "/openai/deployments/embed-dep/embeddings"),
    ("/v1/responses", RESPONSES, "/openai/v1/responses"),
    (f"/openai/deployments/gpt-4o/chat/completions?{V}", CHAT,
     "/openai/deployments/gpt-4o-dep/chat/completions"),
    (f"/openai/deployments/gpt-4o/completions?{V}", COMPLETION, "/openai/deployments/gpt-4o-dep/completions"),
    (f"/openai/deployments/embed/embeddings?{V}", EMBED, "/openai/deployments/embed-dep/embeddings"),
    ("/openai/v1/chat/completions", CHAT, "/openai/deployments/gpt-4o-dep/chat/completions"),
    ("/openai/v1/embeddings", EMBED, "/openai/deployments/embed-dep/embeddings"),
    ("/openai/v1/responses", RESPONSES, "/openai/v1/responses"),
]


@pytest.mark.parametrize(("path", "body", "upstream"), UPSTREAM_URLS, ids=[p for p, _, _ in UPSTREAM_URLS])
def test_the_upstream_receives_a_url_built_from_parsed_parts(world: World, path: str, body: bytes,
                                                            upstream: str) -> None:
    seen = len(world.emulator.requests)
    answer = send(world, "POST", path.encode() + (b"&" if "?" in path else b"?") + b"foo=bar%2F..", body)
    assert answer.status == 200, answer.body
    [received] = world.emulator.requests[seen:]
    assert received.path == upstream
    assert set(received.query) <= {"api-version"}          # nothing else of the caller's query
    assert received.query.get("api-version", "2024-10-21") == "2024-10-21"


TOO_DEEP = "nested too deeply (more than 64 levels)"
STRICT_JSON = [
    ("duplicate-member", b'{"model": "secret-model", "model": "gpt-4o", "messages": []}', "duplicate member"),
    ("nan", b'{"model": "gpt-4o", "temperature": NaN}', "NaN"),
    ("infinity", b'{"model": "gpt-4o", "temperature": -Infinity}', "Infinity"),
    ("float-overflow", b'{"model": "gpt-4o", "temperature": 1e400}', "out of range"),
    ("integer-overflow", b'{"model": "gpt-4o", "seed": 99999999999999999999999}', "out of range"),
    ("lone-surrogate", b'{"model": "gpt-4o", "user": "\\ud800"}', "unpaired surrogate"),
    ("nested-65", b'{"model": "gpt-4o", "x": ' + b"[" * 64 + b"]" * 64 + b"}", TOO_DEEP),
    ("nested-100000", b"[" * 100_000 + b"]" * 100_000, TOO_DEEP),
    ("invalid-utf8", b'{"model": "gpt-4o", "user": "\xff"}', "UTF-8"),
    ("not-an-object", b'["model", "gpt-4o"]', "must be a JSON object"),
]


@pytest.mark.parametrize(("case", "body", "problem"), STRICT_JSON, ids=[c for c, _, _ in STRICT_JSON])
def test_attack_non_strict_json_body_is_refused(world: World, case: str, body: bytes,
                                               problem: str) -> None:
    seen = len(world.emulator.requests)
    answer = send(world, "POST", b"/v1/chat/completions", body)
    assert answer.status == 400, answer.body
    assert answer.error()["code"] == "invalid_request" and problem in answer.error()["message"]
    assert len(world.emulator.requests) == seen


def test_strict_json_admits_what_callers_send(world: World) -> None:
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "héllo 😀"}],
                       "seed": 2**63 - 1, "temperature": 0.5,
                       "tools": [{"type": "function", "function": {"name": "f", "parameters": {
                           "type": "object", "properties": {"a": {"type": "object", "properties": {}}}}}}]})
    assert send(world, "POST", b"/v1/chat/completions", body.encode()).status == 200


def test_the_management_plane_parses_strictly_too(world: World) -> None:
    """The body is parsed (strictly) before the caller's role on the new workspace is weighed."""
    answer = send(world, "PUT", b"/manage/workspaces/w", b'{"name": "w", "name": "x"}')
    assert answer.status == 400 and "duplicate member" in answer.error()["message"]


@pytest.mark.parametrize(("method", "target", "status", "code"), [
    ("GET", b"/no/such/route", 404, "not_found"),
    ("POST", b"/v2/chat/completions", 404, "not_found"),
    ("GET", b"/", 404, "not_found"),
    ("GET", b"/v1/chat/completions", 405, "method_not_allowed"),
    ("DELETE", b"/v1/models", 405, "method_not_allowed"),
    ("POST", b"/health", 405, "method_not_allowed"),
    ("TRACE", b"/health", 405, "method_not_allowed"),
])
def test_everything_else_gets_an_openai_shaped_answer_with_a_request_id(world: World, method: str,
                                                                       target: bytes, status: int,
                                                                       code: str) -> None:
    answer = send(world, method, target, token=False)
    assert answer.status == status and answer.error()["code"] == code
    assert answer.headers["x-request-id"]
    if status == 405:
        assert answer.headers["allow"]


def test_health_carries_a_request_id(world: World) -> None:
    answer = send(world, "GET", b"/health", token=False)
    assert answer.status == 200 and json.loads(answer.body) == {"status": "ok"}
    assert len(answer.headers["x-request-id"]) == 32


def test_azure_style_model_lists_match_v1_models(world: World) -> None:
    lists = [json.loads(send(world, "GET", path).body) for path in (b"/v1/models", b"/openai/models",
                                                                     b"/openai/v1/models")]
    assert lists[0] == lists[1] == lists[2]
    assert [m["id"] for m in lists[0]["data"]] == ["embed", "gpt-4o"]
