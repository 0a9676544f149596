"""Stored objects named inside chat and responses bodies: only the caller's own reach the upstream, and
only on the account holding them.

Alice and Bob hold viewer on the same models, so they share the gateway's credential: without the
check, Bob would put Alice's file id in a content part (or her vector store in a file_search tool) and
the upstream would read it into his answer. Two accounts on the emulator (one deployment each) show
where a request went.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from azure.data.tables.aio import TableServiceClient

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from shared.errors import InvalidRequest
from shared.objects.store import ObjectStore, Owned
from shared.proxy import references
from tests.harness import DEVELOPER, EMULATOR_KEY_ENV, NewWorld, World, sandbox_config, sdk_client

ALICE, BOB = "user:dev/alice", "user:dev/bob"


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> Iterator[World]:
    config = sandbox_config(idp, emulator)
    config["accounts"].append({"name": "west", "kind": "azure-openai", "endpoint": emulator.url,
                               "auth": {"type": "api-key", "key_env": EMULATOR_KEY_ENV}})
    config["models"][0]["targets"] = [{"account": "emulator", "deployment": "east-dep"},
                                      {"account": "west", "deployment": "west-dep"}]
    config["models"].append({"name": "east-only", "targets": [{"account": "emulator", "deployment": "e2"}]})
    config["collaborators"].append({"resource": "model:east-only", "principal": "identity:developers",
                                    "role": "viewer"})
    with new_world(config=config, tokens={"alice": DEVELOPER, "bob": DEVELOPER}) as world:
        yield world


def record(world: World, kind: str, prefix: str, account: str = "west", owner: str = ALICE) -> str:
    """An object of `kind` recorded as `owner`'s on `account`, as the gateway records one it created."""
    ident = prefix + uuid.uuid4().hex

    async def go() -> None:
        connection = world.env["GATEWAY_TABLES_CONNECTION"]
        async with TableServiceClient.from_connection_string(connection) as s:
            await ObjectStore(s, world.env["GATEWAY_TABLE_PREFIX"]).record(
                Owned(kind, ident, account, owner, "gpt-4o", created=1.0))

    asyncio.run(go())
    return ident


def client(world: World, who: str) -> openai.OpenAI:
    return sdk_client(world, who, "v1", api_version="2025-04-01-preview")


def said(text: str) -> str:
    return f"{text} {uuid.uuid4().hex}"


def _message(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "input_text", "text": said("look")}, *parts]}]


# field -> (API, kind, how the body names the object)
FIELDS: dict[str, tuple[str, str, Any]] = {
    "input_file": ("responses", "file", lambda i: {"input": _message({"type": "input_file", "file_id": i})}),
    "input_image": ("responses", "file", lambda i: {"input": _message(
        {"type": "input_image", "file_id": i, "detail": "auto"})}),
    "function_call_output_file": ("responses", "file", lambda i: {"input": [
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_file", "file_id": i}]},
        *_message()]}),
    "computer_screenshot": ("responses", "file", lambda i: {"input": [
        {"type": "computer_call_output", "call_id": "c1",
         "output": {"type": "computer_screenshot", "file_id": i}}, *_message()]}),
    "file_search": ("responses", "vector_store", lambda i: {
        "input": said("find"), "tools": [{"type": "file_search", "vector_store_ids": [i]}]}),
    "code_interpreter": ("responses", "file", lambda i: {
        "input": said("run"), "tools": [{"type": "code_interpreter",
                                         "container": {"type": "auto", "file_ids": [i]}}]}),
    "image_generation_mask": ("responses", "file", lambda i: {
        "input": said("draw"), "tools": [{"type": "image_generation", "input_image_mask": {"file_id": i}}]}),
    "comparison_response": ("responses", "response", lambda i: {
        "input": said("cache"), "prompt_cache_options": {"comparison_response_id": i}}),
    "chat_file_part": ("chat", "file", lambda i: {"messages": [{"role": "user", "content": [
        {"type": "text", "text": said("read")}, {"type": "file", "file": {"file_id": i}}]}]}),
}
PREFIX = {"file": "file-", "vector_store": "vs_", "response": "resp_"}


def send(world: World, who: str, api: str, body: dict[str, Any], model: str = "gpt-4o") -> Any:
    c = client(world, who)
    if api == "chat":
        return c.chat.completions.create(model=model, **body)
    return c.responses.create(model=model, **body)


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_attack_a_reference_to_another_callers_object(world: World, field: str) -> None:
    """Bob names Alice's object: the 404 of an object that never existed, and nothing is forwarded."""
    api, kind, body = FIELDS[field]
    hers = record(world, kind, PREFIX[kind])
    before = len(world.emulator.requests)
    with pytest.raises(openai.NotFoundError) as theirs:
        send(world, "bob", api, body(hers))
    with pytest.raises(openai.NotFoundError) as nobodys:
        send(world, "bob", api, body(PREFIX[kind] + uuid.uuid4().hex))
    with pytest.raises(openai.NotFoundError) as malformed:
        send(world, "bob", api, body(PREFIX[kind] + "a/../b"))
    assert theirs.value.response.content == nobodys.value.response.content == malformed.value.response.content
    assert theirs.value.body["code"] == "not_found"
    assert len(world.emulator.requests) == before


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_the_owner_reference_goes_to_the_account_holding_it(world: World, field: str) -> None:
    api, kind, body = FIELDS[field]
    for account, deployment in (("west", "west-dep"), ("emulator", "east-dep")):
        mine = record(world, kind, PREFIX[kind], account=account)
        send(world, "alice", api, body(mine))
        sent = world.emulator.requests[-1]
        assert sent.deployment == deployment and mine.encode() in sent.body


def test_attack_a_reference_held_by_an_account_the_model_does_not_use(world: World) -> None:
    hers = record(world, "file", "file-", account="west")
    before = len(world.emulator.requests)
    with pytest.raises(openai.BadRequestError) as refused:
        send(world, "alice", "responses", FIELDS["input_file"][2](hers), model="east-only")
    assert refused.value.body["param"] == "input[0].content[1].file_id"
    assert len(world.emulator.requests) == before


def test_references_in_two_accounts_are_refused(world: World) -> None:
    east, west = record(world, "file", "file-", "emulator"), record(world, "file", "file-", "west")
    before = len(world.emulator.requests)
    with pytest.raises(openai.BadRequestError) as refused:
        send(world, "alice", "responses", {"input": _message({"type": "input_file", "file_id": east},
                                                             {"type": "input_file", "file_id": west})})
    assert "different accounts" in refused.value.body["message"]
    assert len(world.emulator.requests) == before


def test_a_reference_uploaded_through_the_files_api_is_the_uploaders(world: World) -> None:
    created = client(world, "alice").files.create(file=("a.pdf", io.BytesIO(b"%PDF-1.4"), "application/pdf"),
                                                  purpose="user_data", extra_body={"model": "east-only"})
    body = FIELDS["input_file"][2](created.id)
    with pytest.raises(openai.NotFoundError):
        send(world, "bob", "responses", body)
    send(world, "alice", "responses", body)
    assert world.emulator.requests[-1].deployment == "east-dep"


# -- unit: the walk ------------------------------------------------------------------------------------

def _found(doc: dict[str, Any]) -> tuple[references.Reference, ...]:
    return references.found(doc, json.dumps(doc).encode())


@pytest.mark.parametrize("raw", [
    b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}',
    b'{"model": "gpt-4o", "messages": [{"role": "system", "content": "be brief"}, '
    b'{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "stream": true, "max_tokens": 9}',
    b'{"model":"gpt-4o","input":"hi","reasoning":{"effort":"low"},"store":false}',
])
def test_a_body_without_markers_is_not_walked(raw: bytes) -> None:
    """The cost-free path: a doc that does hold a reference is not even looked at when the bytes have
    no marker (so a plain chat body is never walked)."""
    referencing = {"messages": [{"content": [{"type": "file", "file": {"file_id": "file-x"}}]}]}
    assert not references.marked(raw)
    assert references.found(referencing, raw) == ()
    assert _found(referencing) != ()


def test_an_escaped_key_is_still_found() -> None:
    raw = b'{"input":[{"type":"input_file","file\\u005fid":"file-x"}]}'
    doc = json.loads(raw)
    assert references.found(doc, raw) == (references.Reference("file", "file-x", "input[0].file_id"),)


@pytest.mark.parametrize(("doc", "expected"), [
    ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_a", "vs_b"]}]},
     [("vector_store", "vs_a", "tools[0].vector_store_ids[0]"),
      ("vector_store", "vs_b", "tools[0].vector_store_ids[1]")]),
    ({"previous_response_id": "resp_1", "input": [{"type": "function_call_output", "call_id": "c"}]},
     [("response", "resp_1", "previous_response_id")]),
    ({"tools": [{"type": "function", "name": "f",
                 "parameters": {"properties": {"user_id": {}, "file_id": {}}}}],
      "metadata": {"customer_id": "x", "file_id": "file-y"}}, []),
    ({"input": [{"type": "message", "role": "user", "content": [{"type": "input_file", "file_id": None,
                                                                "file_url": "https://example.com/a.pdf"}]}]},
     []),
    ({"input": [{"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAA"}]}, []),
])
def test_the_walk_finds_each_reference(doc: dict[str, Any], expected: list[tuple[str, str, str]]) -> None:
    assert [(r.kind, r.object_id, r.field) for r in _found(doc)] == expected


@pytest.mark.parametrize(("doc", "param"), [
    ({"tools": [{"type": "code_interpreter", "container": "cntr_123"}]}, "tools[0].container"),
    ({"tools": [{"type": "shell", "environment": {"type": "container_reference", "container_id": "c"}}]},
     "tools[0].environment.container_id"),
    ({"tools": [{"type": "shell",
                 "environment": {"skills": [{"type": "skill_reference", "skill_id": "s"}]}}]},
     "tools[0].environment.skills[0].skill_id"),
    ({"tools": [{"type": "mcp", "server_label": "x", "tunnel_id": "t"}]}, "tools[0].tunnel_id"),
    ({"prompt": {"id": "pmpt_1", "version": "2"}}, "prompt"),
    ({"messages": [{"role": "assistant", "audio": {"id": "audio_1"}}]}, "messages[0].audio.id"),
    ({"input": [{"type": "reasoning", "id": "rs_1", "summary": []}]}, "input[0].id"),
    ({"input": [{"type": "message", "content": [{"type": "item_reference", "id": "msg_1"}]}]},
     "input[0].content[0].id"),
    ({"input": [{"type": "input_file", "file_id": 7}]}, "input[0].file_id"),
    ({"tools": [{"type": "file_search", "vector_store_ids": "vs_a"}]}, "tools[0].vector_store_ids"),
    ({"some_new_thing_ids": ["x"]}, "some_new_thing_ids"),
    ({"odd key": {"thing_id": "x"}}, "?.thing_id"),
])
def test_attack_fields_the_gateway_cannot_check_are_refused(doc: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        _found(doc)
    assert refused.value.param == param


def test_attack_too_many_references_are_refused() -> None:
    doc = {"tools": [{"type": "code_interpreter", "container": {"type": "auto", "file_ids": [
        f"file-{n}" for n in range(references.MAX_REFERENCES + 1)]}}]}
    with pytest.raises(InvalidRequest):
        _found(doc)
