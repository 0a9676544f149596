"""Files through the gateway with the openai SDK: each file reachable only by the caller who uploaded it.

Alice and Bob both hold viewer on the same models, so they share the gateway's one credential for the
emulator's account: only the gateway's records keep Bob away from Alice's files.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import requests
from azure.data.tables import TableServiceClient

from sandbox.emulator import AzureOpenAIEmulator, Fault
from sandbox.idp import DevIdentityProvider
from tests.harness import DEVELOPER, NewWorld, World, sandbox_config, sdk_client

API_VERSION = "2024-10-21"
SHAPES = ["v1", "openai_v1", "azure"]
NOT_FOUND = {"message": "no such file, or you do not have access to it", "type": "invalid_request_error",
             "code": "not_found", "param": "file_id"}


MANAGER = "user:dev/manny"


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> Iterator[World]:
    config = sandbox_config(idp, emulator)
    config["collaborators"].append({"resource": "model:gpt-4o", "principal": MANAGER, "role": "manager"})
    with new_world(config=config, env={"GATEWAY_MAX_BODY_BYTES": "262144"},
                   tokens={"alice": DEVELOPER, "bob": DEVELOPER, "manny": None}) as world:
        yield world


def client(world: World, who: str, shape: str = "v1") -> openai.OpenAI:
    return sdk_client(world, who, shape, api_version=API_VERSION)


def prefix(shape: str) -> str:
    return {"v1": "/v1/files", "openai_v1": "/openai/v1/files", "azure": "/openai/files"}[shape]


def query(shape: str) -> dict[str, str]:
    return {"api-version": API_VERSION} if shape == "azure" else {}


def upload(c: openai.OpenAI, data: bytes = b'{"a": 1}\n', name: str = "data.jsonl", model: str = "gpt-4o",
           **more: Any) -> Any:
    return c.files.create(file=(name, io.BytesIO(data), "application/jsonl"), purpose="batch",
                          extra_body={"model": model}, **more)


def raw(world: World, who: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {world.tokens[who]}", **kwargs.pop("headers", {})}
    return requests.request(method, world.url + path, headers=headers, timeout=30, **kwargs)


def upstream_paths(world: World) -> list[str]:
    return [r.path for r in world.emulator.requests]


@pytest.mark.parametrize("shape", SHAPES)
def test_owner_uploads_lists_reads_and_deletes(world: World, shape: str) -> None:
    alice = client(world, "alice", shape)
    created = upload(alice, b'{"n": 1}\n' * 3, expires_after={"anchor": "created_at", "seconds": 3600})
    assert created.id.startswith("file-") and created.status == "processed" and created.bytes == 27
    assert created.expires_at == created.created_at + 3600
    assert created.id in [f.id for f in alice.files.list()]
    assert alice.files.retrieve(created.id).filename == "data.jsonl"
    assert alice.files.content(created.id).read() == b'{"n": 1}\n' * 3
    deleted = alice.files.delete(created.id)
    assert deleted.deleted is True and deleted.id == created.id
    with pytest.raises(openai.NotFoundError):
        alice.files.retrieve(created.id)
    assert created.id not in [f.id for f in alice.files.list()]


def bodies_of(answers: list[requests.Response]) -> list[tuple[int, Any]]:
    return [(a.status_code, a.json()["error"]) for a in answers]


@pytest.mark.parametrize("shape", SHAPES)
def test_attack_another_caller_cannot_reach_a_file_by_its_id(world: World, shape: str) -> None:
    """Bob shares the gateway's credential for the account, and knows Alice's file id: he gets exactly
    what an id that never existed gets, and the upstream is never asked."""
    created = upload(client(world, "alice", shape), b"alice's secret\n")
    assert created.id not in [f.id for f in client(world, "bob", shape).files.list()]
    seen = len(world.emulator.requests)
    base, params = prefix(shape), query(shape)
    for file_id in (created.id, "file-0000000000000000000000000000dead"):
        answers = [raw(world, "bob", "GET", f"{base}/{file_id}", params=params),
                   raw(world, "bob", "GET", f"{base}/{file_id}/content", params=params),
                   raw(world, "bob", "DELETE", f"{base}/{file_id}", params=params)]
        assert bodies_of(answers) == [(404, NOT_FOUND)] * 3
    assert len(world.emulator.requests) == seen
    assert client(world, "alice", shape).files.content(created.id).read() == b"alice's secret\n"


def test_attack_lists_hold_only_the_callers_files(world: World) -> None:
    mine = {upload(client(world, "bob"), name=f"bob-{n}.jsonl").id for n in range(2)}
    theirs = upload(client(world, "alice")).id
    listed = raw(world, "bob", "GET", "/v1/files").json()
    assert {f["id"] for f in listed["data"]} == mine and theirs not in json.dumps(listed)
    assert listed["has_more"] is False and {listed["first_id"], listed["last_id"]} == mine


def test_lists_follow_the_upstreams_pages_to_find_the_callers_files(world: World) -> None:
    """The account lists everyone's files two at a time: the caller's own are found on every page."""
    erin = world.idp.mint("erin", claims=DEVELOPER, audience="api://ai-gateway")
    c = openai.OpenAI(base_url=world.url + "/v1", api_key=erin, max_retries=0)
    mine = [upload(c, name="first.jsonl").id]
    others = [upload(client(world, "alice"), name=f"a-{n}.jsonl").id for n in range(5)]
    mine.append(upload(c, name="last.jsonl").id)
    world.emulator.files.page_size = 2
    try:
        seen = len(world.emulator.requests)
        listed = requests.get(world.url + "/v1/files", headers={"Authorization": f"Bearer {erin}"},
                              timeout=30).json()
        asked = len(world.emulator.requests) - seen
    finally:
        world.emulator.files.page_size = None
    assert [f["id"] for f in listed["data"]] == mine[::-1]
    assert not any(other in json.dumps(listed) for other in others)
    assert asked >= 4       # the last one's file is on the first page, the first one's several pages on


def test_a_caller_with_no_files_gets_an_empty_list_without_an_upstream_call(world: World) -> None:
    carol = world.idp.mint("carol", claims=DEVELOPER, audience="api://ai-gateway")
    seen = len(world.emulator.requests)
    answer = requests.get(world.url + "/v1/files", headers={"Authorization": f"Bearer {carol}"}, timeout=30)
    assert answer.json() == {"object": "list", "data": [], "has_more": False, "first_id": None,
                             "last_id": None}
    assert len(world.emulator.requests) == seen


def test_lists_page_through_the_callers_own_files(world: World) -> None:
    dave = world.idp.mint("dave", claims=DEVELOPER, audience="api://ai-gateway")
    c = openai.OpenAI(base_url=world.url + "/v1", api_key=dave, max_retries=0)
    ids = [upload(c, name=f"{n}.jsonl").id for n in range(3)]
    first = c.files.list(limit=2, order="asc")
    assert [f.id for f in first.data] == ids[:2] and first.has_more is True
    assert [f.id for f in c.files.list(limit=2, order="asc")] == ids        # the SDK follows `after`
    assert [f.id for f in c.files.list(order="desc")] == ids[::-1]


def test_attack_upload_through_a_model_without_a_role(world: World) -> None:
    seen = len(world.emulator.requests)
    for model in ("secret-model", "no-such-model"):
        with pytest.raises(openai.NotFoundError) as refused:
            upload(client(world, "bob"), model=model)
        assert refused.value.body["code"] == "model_not_found"
    assert len(world.emulator.requests) == seen


def test_the_model_may_be_a_query_parameter_and_is_never_forwarded(world: World) -> None:
    c = client(world, "alice")
    created = c.files.create(file=("q.jsonl", io.BytesIO(b"{}\n"), "application/jsonl"), purpose="batch",
                             extra_query={"model": "gpt-4o"})
    sent = next(r for r in reversed(world.emulator.requests) if r.method == "POST")
    assert created.id.startswith("file-") and b'name="model"' not in sent.body
    assert "model" not in sent.query and b"{}\n" in sent.body
    with pytest.raises(openai.BadRequestError) as twice:
        upload(c, extra_query={"model": "gpt-4o"})
    assert twice.value.body["param"] == "model"


BOUNDARY = "b0undary"


def form(*parts: tuple[str, str | None, bytes], boundary: str = BOUNDARY) -> bytes:
    out = b""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


PURPOSE = ("purpose", None, b"batch")
MODEL = ("model", None, b"gpt-4o")
FILE = ("file", "a.jsonl", b"{}\n")


@pytest.mark.parametrize(("body", "content_type", "status", "param"), [
    (form(PURPOSE, MODEL, ("file", "a.jsonl", b"x" * 300_000)), None, 413, None),
    (form(PURPOSE, MODEL, FILE, ("file", "b.jsonl", b"{}\n")), None, 400, "file"),
    (form(MODEL, FILE), None, 400, "purpose"),
    (form(PURPOSE, PURPOSE, MODEL, FILE), None, 400, "purpose"),
    (form(PURPOSE, MODEL), None, 400, "file"),
    (form(PURPOSE, FILE), None, 400, "model"),
    (form(("purpose", None, b"steal"), MODEL, FILE), None, 400, "purpose"),
    (form(PURPOSE, MODEL, FILE, ("extra", None, b"1")), None, 400, None),
    (form(PURPOSE, MODEL, ("file", None, b"{}\n")), None, 400, "file"),
    (form(PURPOSE, MODEL, FILE, ("expires_after[seconds]", None, b"5")), None, 400, "expires_after"),
    (b"preamble\r\n" + form(PURPOSE, MODEL, FILE), None, 400, None),
    (form(PURPOSE, MODEL, FILE) + b"epilogue", None, 400, None),
    (form(PURPOSE, MODEL, FILE)[:-12], None, 400, None),
    (b"garbage", None, 400, None),
    (form(PURPOSE, MODEL, FILE), f"multipart/form-data; boundary={BOUNDARY}; boundary=other", 400, None),
    (form(PURPOSE, MODEL, FILE), "application/json", 400, None),
    (form(PURPOSE, MODEL, FILE).replace(b"Content-Disposition: form-data; name=\"purpose\"",
                                        b"Content-Disposition: form-data; name=purpose"), None, 400, None),
])
def test_attack_malformed_uploads_are_refused_before_the_upstream(world: World, body: bytes,
                                                                  content_type: str | None, status: int,
                                                                  param: str | None) -> None:
    seen = len(world.emulator.requests)
    answer = raw(world, "alice", "POST", "/v1/files", data=body, headers={
        "Content-Type": content_type or f"multipart/form-data; boundary={BOUNDARY}"})
    error = answer.json()["error"]
    assert answer.status_code == status, error
    assert error["code"] == ("request_too_large" if status == 413 else "invalid_request")
    if param is not None:
        assert error["param"] is not None and error["param"].startswith(param)
    assert len(world.emulator.requests) == seen


def test_a_well_formed_raw_upload_is_accepted(world: World) -> None:
    """The table above fails for its flaw alone: the same form without it is taken."""
    answer = raw(world, "alice", "POST", "/v1/files", data=form(PURPOSE, MODEL, FILE),
                 headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert answer.status_code == 200 and answer.json()["status"] == "processed"


@pytest.mark.parametrize("bad_id", ["resp_abc", "file-a.b", "file-" + "a" * 201, "file-a%20b", "file-",
                                    "FILE-abc", "file-abc$"])
def test_attack_a_malformed_id_is_never_forwarded(world: World, bad_id: str) -> None:
    seen = len(world.emulator.requests)
    for method, suffix in (("GET", ""), ("GET", "/content"), ("DELETE", "")):
        answer = raw(world, "alice", method, f"/v1/files/{bad_id}{suffix}")
        assert (answer.status_code, answer.json()["error"]) == (404, NOT_FOUND)
    assert len(world.emulator.requests) == seen


def test_the_content_of_a_large_file_arrives_in_pieces(world: World) -> None:
    """The emulator stops after its first 64 KiB until released (three seconds on): a gateway that
    buffered the body would hand over nothing before the release."""
    data = bytes(range(256)) * 800      # 200 KiB
    c = client(world, "alice")
    created = upload(c, data, name="big.bin")
    hold = threading.Event()
    release = threading.Timer(3.0, hold.set)
    world.emulator.files.hold = hold
    try:
        release.start()
        with c.files.with_streaming_response.content(created.id) as answer:
            pieces = answer.iter_bytes()
            first = next(pieces)
            assert not hold.is_set() and 0 < len(first) <= 65536
            rest = b"".join(pieces)
    finally:
        world.emulator.files.hold = None
        release.cancel()
        hold.set()
    assert first + rest == data


def test_the_azure_shape_needs_an_api_version(world: World) -> None:
    answer = raw(world, "alice", "GET", "/openai/files")
    assert (answer.status_code, answer.json()["error"]["param"]) == (400, "api-version")



def test_a_manager_of_the_model_reaches_a_file_uploaded_through_it(world: World) -> None:
    created = upload(client(world, "alice"), b"for the manager\n")
    assert client(world, "manny").files.content(created.id).read() == b"for the manager\n"
    other = upload(client(world, "alice"), model="embed")     # manny manages gpt-4o, not embed
    with pytest.raises(openai.NotFoundError):
        client(world, "manny").files.retrieve(other.id)


def test_a_failed_upstream_delete_keeps_the_file_owned(world: World) -> None:
    alice = client(world, "alice")
    created = upload(alice)
    world.emulator.faults.append(Fault(status=500, deployment="files"))
    with pytest.raises(openai.InternalServerError) as failed:
        alice.files.delete(created.id)
    assert failed.value.status_code == 502
    assert alice.files.retrieve(created.id).id == created.id
    assert alice.files.delete(created.id).deleted is True


def test_an_upload_that_cannot_be_recorded_is_deleted_upstream(new_world: NewWorld) -> None:
    with new_world() as world:
        alice = client(world, "alice")
        upload(alice)       # the records table exists, and the gateway knows it does
        TableServiceClient.from_connection_string(world.env["GATEWAY_TABLES_CONNECTION"]).delete_table(
            world.env["GATEWAY_TABLE_PREFIX"] + "objects")
        before = set(world.emulator.files.files)
        with pytest.raises(openai.APIStatusError) as refused:
            upload(alice)
        assert (refused.value.status_code, refused.value.body["code"]) == (503, "unavailable")
        created = [r for r in world.emulator.requests if r.method == "POST"][-1]
        deleted = world.emulator.requests[-1]
        assert deleted.method == "DELETE" and deleted.path.startswith("/openai/files/file-")
        assert created.path == "/openai/files" and set(world.emulator.files.files) == before
        assert "could not be recorded" in world.logs()


@pytest.mark.parametrize("shape", ["v1", "azure"])
def test_files_under_the_functions_host(new_world: NewWorld, shape: str) -> None:
    with new_world(host="functions") as world:
        alice = client(world, "alice", shape)
        created = upload(alice, b"through the host\n")
        assert [f.id for f in alice.files.list()] == [created.id]
        assert alice.files.content(created.id).read() == b"through the host\n"
        assert alice.files.delete(created.id).deleted is True
        refused = raw(world, "alice", "PUT", prefix(shape) + f"/{created.id}", params=query(shape))
        assert refused.status_code == 405 and set(refused.headers["Allow"].split(", ")) == {"GET", "DELETE"}


def test_a_v1_account_is_asked_on_its_v1_surface(new_world: NewWorld, idp: DevIdentityProvider,
                                                 emulator: AzureOpenAIEmulator) -> None:
    config = sandbox_config(idp, emulator)
    config["accounts"][0]["api_style"] = "v1"
    with new_world(config=config) as world:
        alice = client(world, "alice", "azure")      # the caller's shape does not choose the upstream's
        created = upload(alice, b"v1\n")
        assert alice.files.content(created.id).read() == b"v1\n"
        sent = world.emulator.requests[-2:]
        assert [(r.method, r.path, r.query) for r in sent] == [
            ("POST", "/openai/v1/files", {}), ("GET", f"/openai/v1/files/{created.id}/content", {})]
