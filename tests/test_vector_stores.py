"""Vector stores through the gateway with the openai SDK: each store reachable only by the caller who created
it, its files only ones its creator may use, in its own account.

Alice and Bob both hold viewer on the same models, so they share the gateway's one credential for the
emulator's account: only the gateway's records keep Bob away from Alice's stores and files. The second
account ("other") is the same emulator under another name, so whatever it refuses is refused by the
gateway, not by the upstream.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import requests
from azure.data.tables import TableServiceClient

from sandbox.emulator import AzureOpenAIEmulator, Fault
from sandbox.idp import DevIdentityProvider
from tests.harness import DEVELOPER, EMULATOR_KEY_ENV, NewWorld, World, sandbox_config, sdk_client

API_VERSION = "2025-04-01-preview"
SHAPES = ["v1", "openai_v1", "azure"]
NO_STORE = {"message": "no such vector store, or you do not have access to it",
            "type": "invalid_request_error", "code": "not_found", "param": "vector_store_id"}
NO_FILE = {"message": "no such file, or you do not have access to it", "type": "invalid_request_error",
           "code": "not_found", "param": "file_id"}
MANAGER = "user:dev/manny"


def config_with_two_accounts(idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> dict[str, Any]:
    config = sandbox_config(idp, emulator)
    config["accounts"].append({"name": "other", "kind": "azure-openai", "endpoint": emulator.url,
                               "auth": {"type": "api-key", "key_env": EMULATOR_KEY_ENV}})
    config["models"].append({"name": "elsewhere",
                             "targets": [{"account": "other", "deployment": "gpt-4o-dep"}]})
    config["collaborators"] += [
        {"resource": "model:elsewhere", "principal": "identity:developers", "role": "viewer"},
        {"resource": "model:gpt-4o", "principal": MANAGER, "role": "manager"}]
    return config


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> Iterator[World]:
    with new_world(config=config_with_two_accounts(idp, emulator),
                   tokens={"alice": DEVELOPER, "bob": DEVELOPER, "manny": None}) as world:
        yield world


def client(world: World, who: str, shape: str = "v1") -> openai.OpenAI:
    return sdk_client(world, who, shape, api_version=API_VERSION)


def prefix(shape: str) -> str:
    return {"v1": "/v1", "openai_v1": "/openai/v1", "azure": "/openai"}[shape] + "/vector_stores"


def query(shape: str) -> dict[str, str]:
    return {"api-version": API_VERSION} if shape == "azure" else {}


def upload(c: openai.OpenAI, data: bytes = b"the quick brown fox\n", model: str = "gpt-4o") -> str:
    created = c.files.create(file=("notes.txt", io.BytesIO(data), "text/plain"), purpose="assistants",
                             extra_body={"model": model})
    return created.id


def new_store(c: openai.OpenAI, model: str = "gpt-4o", **more: Any) -> Any:
    return c.vector_stores.create(extra_body={"model": model}, **more)


def raw(world: World, who: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {world.tokens[who]}", **kwargs.pop("headers", {})}
    return requests.request(method, world.url + path, headers=headers, timeout=30, **kwargs)


@pytest.mark.parametrize("shape", SHAPES)
def test_owner_creates_fills_searches_and_deletes_a_store(world: World, shape: str) -> None:
    alice = client(world, "alice", shape)
    fox, dog = upload(alice, b"the quick brown fox\n"), upload(alice, b"the lazy dog\n")
    store = new_store(alice, name="notes", file_ids=[fox], metadata={"team": "a"},
                      expires_after={"anchor": "last_active_at", "days": 2})
    assert store.id.startswith("vs_") and store.status == "completed" and store.file_counts.completed == 1
    assert store.expires_at == store.created_at + 2 * 86400
    assert alice.vector_stores.retrieve(store.id).name == "notes"
    assert alice.vector_stores.update(store.id, name="renamed").name == "renamed"
    attached = alice.vector_stores.files.create(vector_store_id=store.id, file_id=dog, attributes={"k": "v"})
    assert (attached.id, attached.object, attached.status) == (dog, "vector_store.file", "completed")
    assert {f.id for f in alice.vector_stores.files.list(vector_store_id=store.id)} == {fox, dog}
    assert alice.vector_stores.files.retrieve(file_id=dog, vector_store_id=store.id).attributes == {"k": "v"}
    hits = alice.vector_stores.search(vector_store_id=store.id, query="lazy")
    assert [h.file_id for h in hits.data] == [dog]
    assert alice.vector_stores.files.delete(file_id=dog, vector_store_id=store.id).deleted is True
    assert [f.id for f in alice.vector_stores.files.list(vector_store_id=store.id)] == [fox]
    assert store.id in [s.id for s in alice.vector_stores.list()]
    assert alice.vector_stores.delete(store.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        alice.vector_stores.retrieve(store.id)
    assert store.id not in [s.id for s in alice.vector_stores.list()]
    assert alice.files.retrieve(dog).id == dog      # detaching and deleting the store leave the file


def test_requests_go_to_the_v1_surface_with_only_the_checked_members(world: World) -> None:
    """The account is `deployments`-style, yet vector stores are asked of its v1 surface (its classic one
    serves them only under preview api-versions); `model` is the gateway's and never sent."""
    alice = client(world, "alice", "azure")
    seen = len(world.emulator.requests)
    store = new_store(alice, name="v1")
    alice.vector_stores.retrieve(store.id)
    sent = world.emulator.requests[seen:]
    assert [(r.method, r.path, r.query) for r in sent] == [
        ("POST", "/openai/v1/vector_stores", {}), ("GET", f"/openai/v1/vector_stores/{store.id}", {})]
    assert json.loads(sent[0].body) == {"name": "v1"}


def test_the_model_may_be_a_query_parameter(world: World) -> None:
    c = client(world, "alice")
    store = c.vector_stores.create(name="q", extra_query={"model": "gpt-4o"})
    sent = next(r for r in reversed(world.emulator.requests) if r.method == "POST")
    assert store.id.startswith("vs_") and "model" not in sent.query and json.loads(sent.body) == {"name": "q"}


def paths_of_a_store(store_id: str, file_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every route about one store: (method, path under the store's prefix, JSON body)."""
    batch = "vsfb_000000000000000000000001"
    return [("GET", f"/{store_id}", None), ("POST", f"/{store_id}", {"name": "mine now"}),
            ("DELETE", f"/{store_id}", None), ("POST", f"/{store_id}/search", {"query": "fox"}),
            ("GET", f"/{store_id}/files", None), ("POST", f"/{store_id}/files", {"file_id": file_id}),
            ("GET", f"/{store_id}/files/{file_id}", None),
            ("POST", f"/{store_id}/files/{file_id}", {"attributes": {}}),
            ("DELETE", f"/{store_id}/files/{file_id}", None),
            ("GET", f"/{store_id}/files/{file_id}/content", None),
            ("POST", f"/{store_id}/file_batches", {"file_ids": [file_id]}),
            ("GET", f"/{store_id}/file_batches/{batch}", None),
            ("POST", f"/{store_id}/file_batches/{batch}/cancel", None),
            ("GET", f"/{store_id}/file_batches/{batch}/files", None)]


@pytest.mark.parametrize("shape", SHAPES)
def test_attack_another_caller_gets_404_for_every_route_on_a_store(world: World, shape: str) -> None:
    """Bob shares the gateway's credential for the account and knows Alice's store and file ids: every
    route answers exactly what a store that never existed answers, and the upstream is never asked."""
    alice = client(world, "alice", shape)
    secret = upload(alice, b"alice's secret\n")
    store = new_store(alice, file_ids=[secret])
    seen = len(world.emulator.requests)
    for store_id in (store.id, "vs_000000000000000000000dead", "vs_a.b", "file-abc"):
        for method, path, body in paths_of_a_store(store_id, secret):
            answer = raw(world, "bob", method, prefix(shape) + path, params=query(shape), json=body)
            assert (answer.status_code, answer.json()["error"]) == (404, NO_STORE), (method, path)
    assert len(world.emulator.requests) == seen
    assert store.id not in [s.id for s in client(world, "bob", shape).vector_stores.list()]
    assert alice.vector_stores.search(vector_store_id=store.id, query="secret").data[0].file_id == secret


@pytest.mark.parametrize("how", ["create", "attach", "batch_ids", "batch_files"])
def test_attack_a_caller_cannot_put_anothers_file_in_their_own_store(world: World, how: str) -> None:
    secret = upload(client(world, "alice"), b"alice's secret\n")
    bob = client(world, "bob")
    mine = new_store(bob, name="bob's")
    own = upload(bob)
    seen = len(world.emulator.requests)
    with pytest.raises(openai.NotFoundError) as refused:
        if how == "create":
            new_store(bob, file_ids=[own, secret])
        elif how == "attach":
            bob.vector_stores.files.create(vector_store_id=mine.id, file_id=secret)
        elif how == "batch_ids":
            bob.vector_stores.file_batches.create(vector_store_id=mine.id, file_ids=[secret])
        else:
            bob.vector_stores.file_batches.create(vector_store_id=mine.id, files=[{"file_id": secret}])
    assert refused.value.body == NO_FILE
    assert len(world.emulator.requests) == seen
    assert bob.vector_stores.retrieve(mine.id).file_counts.total == 0


@pytest.mark.parametrize("how", ["create", "attach", "batch_ids", "batch_files"])
def test_a_file_of_another_account_cannot_be_attached(world: World, how: str) -> None:
    """Alice's own file, uploaded through a model of the other account: 400 naming where it was given
    (she may know where her file is; no vector store of this account could hold it)."""
    alice = client(world, "alice")
    elsewhere = upload(alice, model="elsewhere")
    here, own = new_store(alice), upload(alice)
    seen = len(world.emulator.requests)
    with pytest.raises(openai.BadRequestError) as refused:
        if how == "create":
            new_store(alice, file_ids=[own, elsewhere])
        elif how == "attach":
            alice.vector_stores.files.create(vector_store_id=here.id, file_id=elsewhere)
        elif how == "batch_ids":
            alice.vector_stores.file_batches.create(vector_store_id=here.id, file_ids=[elsewhere])
        else:
            alice.vector_stores.file_batches.create(vector_store_id=here.id, files=[{"file_id": elsewhere}])
    param = {"create": "file_ids[1]", "attach": "file_id", "batch_ids": "file_ids[0]",
             "batch_files": "files[0].file_id"}[how]
    assert (refused.value.body["code"], refused.value.body["param"]) == ("invalid_request", param)
    assert len(world.emulator.requests) == seen
    assert new_store(alice, model="elsewhere", file_ids=[elsewhere]).file_counts.total == 1


def test_attack_the_store_list_holds_only_the_callers_stores(world: World) -> None:
    erin = world.idp.mint("erin", claims=DEVELOPER, audience="api://ai-gateway")
    c = openai.OpenAI(base_url=world.url + "/v1", api_key=erin, max_retries=0)
    assert c.vector_stores.list().data == []
    mine = [new_store(c, name=f"e{n}").id for n in range(3)]
    theirs = new_store(client(world, "alice")).id
    listed = requests.get(world.url + "/v1/vector_stores", headers={"Authorization": f"Bearer {erin}"},
                          timeout=30).json()
    assert [s["id"] for s in listed["data"]] == mine[::-1] and theirs not in json.dumps(listed)
    first = c.vector_stores.list(limit=2, order="asc")
    assert [s.id for s in first.data] == mine[:2] and first.has_more is True
    assert [s.id for s in c.vector_stores.list(limit=2, order="asc")] == mine      # the SDK follows `after`
    refused = requests.get(world.url + "/v1/vector_stores", params={"after": theirs},
                           headers={"Authorization": f"Bearer {erin}"}, timeout=30)
    assert (refused.status_code, refused.json()["error"]["param"]) == (400, "after")


def test_a_store_with_many_files_lists_them_in_pages(world: World) -> None:
    alice = client(world, "alice")
    ids = [upload(alice, f"doc {n}\n".encode()) for n in range(3)]
    store = new_store(alice)
    made = alice.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=ids)
    assert (made.object, made.status) == ("vector_store.files_batch", "completed")
    assert made.file_counts.completed == 3
    assert alice.vector_stores.file_batches.retrieve(batch_id=made.id, vector_store_id=store.id).id == made.id
    listed = alice.vector_stores.file_batches.list_files(batch_id=made.id, vector_store_id=store.id, limit=2)
    assert len(listed.data) == 2 and listed.has_more is True
    assert {f.id for f in alice.vector_stores.files.list(vector_store_id=store.id, limit=1)} <= set(ids)
    assert len(list(alice.vector_stores.files.list(vector_store_id=store.id, limit=1))) == 3
    cancelled = alice.vector_stores.file_batches.cancel(batch_id=made.id, vector_store_id=store.id)
    assert cancelled.id == made.id
    content = list(alice.vector_stores.files.content(file_id=ids[0], vector_store_id=store.id))
    assert content[0].text == "doc 0\n"


def test_a_manager_of_the_model_reaches_a_store_made_through_it(world: World) -> None:
    alice = client(world, "alice")
    store = new_store(alice, name="managed")
    assert client(world, "manny").vector_stores.retrieve(store.id).name == "managed"
    other = new_store(alice, model="embed")     # manny manages gpt-4o, not embed
    with pytest.raises(openai.NotFoundError):
        client(world, "manny").vector_stores.retrieve(other.id)


@pytest.mark.parametrize(("path", "body", "params", "status", "code", "param"), [
    ("", {"name": "x"}, {}, 400, "invalid_request", "model"),
    ("", {"name": "x", "model": "gpt-4o"}, {"model": "gpt-4o"}, 400, "invalid_request", "model"),
    ("", {"model": 4}, {}, 400, "invalid_request", "model"),
    ("", {"model": "secret-model"}, {}, 404, "model_not_found", "model"),
    ("", {"model": "no-such-model"}, {}, 404, "model_not_found", "model"),
    ("", {"model": "gpt-4o", "tools": []}, {}, 400, "invalid_request", None),
    ("", {"model": "gpt-4o"}, {"extra": "1"}, 400, "invalid_request", None),
    ("", {"model": "gpt-4o", "file_ids": "file-abc"}, {}, 400, "invalid_request", "file_ids"),
    ("", {"model": "gpt-4o", "file_ids": ["x"] * 2001}, {}, 400, "invalid_request", "file_ids"),
    ("", b'{"model": "gpt-4o", "model": "embed"}', {}, 400, "invalid_request", None),
    ("", b'{"model": "gpt-4o", "name": NaN}', {}, 400, "invalid_request", None),
    ("", b"[]", {}, 400, "invalid_request", None),
    ("/{store}", {"file_ids": []}, {}, 400, "invalid_request", None),
    ("/{store}/search", {"query": "x", "model": "gpt-4o"}, {}, 400, "invalid_request", None),
    ("/{store}/files", {"file_id": 1}, {}, 400, "invalid_request", "file_id"),
    ("/{store}/files", {"file_id": "file-abc", "purpose": "x"}, {}, 400, "invalid_request", None),
    ("/{store}/file_batches", {}, {}, 400, "invalid_request", "file_ids"),
    ("/{store}/file_batches", {"files": [{"file_id": "file-a", "x": 1}]}, {}, 400, "invalid_request",
     "files[0]"),
    ("/{store}/file_batches", {"files": "file-a"}, {}, 400, "invalid_request", "files"),
])
def test_attack_malformed_requests_are_refused_before_the_upstream(world: World, path: str, body: Any,
                                                                   params: dict[str, str], status: int,
                                                                   code: str, param: str | None) -> None:
    store = new_store(client(world, "alice"))
    seen = len(world.emulator.requests)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = raw(world, "alice", "POST", "/v1/vector_stores" + path.format(store=store.id), params=params,
                 data=data, headers={"Content-Type": "application/json"})
    error = answer.json()["error"]
    assert (answer.status_code, error["code"], error["param"]) == (status, code, param), error
    assert len(world.emulator.requests) == seen


@pytest.mark.parametrize(("suffix", "params"), [
    ("", {"limit": "101"}), ("", {"order": "sideways"}), ("", {"before": "vs_abc"}), ("", {"limit": "0"}),
    ("", {"after": "vs_a", "limit": "1"} | {"purpose": "x"}),
    ("/{store}/files", {"filter": "everything"}), ("/{store}/files", {"limit": "1000"}),
    ("/{store}/files", {"after": "a/b"}), ("/{store}/files", {"include": "x"}),
    ("/{store}", {"x": "1"}), ("/{store}/files/{file}", {"api-version": API_VERSION}),
])
def test_attack_query_parameters_are_allowlisted(world: World, suffix: str, params: dict[str, str]) -> None:
    alice = client(world, "alice")
    file_id = upload(alice)
    store = new_store(alice, file_ids=[file_id])
    seen = len(world.emulator.requests)
    answer = raw(world, "alice", "GET", "/v1/vector_stores" + suffix.format(store=store.id, file=file_id),
                 params=params)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_request")
    assert len(world.emulator.requests) == seen


@pytest.mark.parametrize(("suffix", "param"), [
    ("/files/file-a.b", "file_id"), ("/files/FILE-abc", "file_id"), ("/files/vs_abc/content", "file_id"),
    ("/file_batches/batch_abc", "batch_id"), ("/file_batches/vsfb_a$b/files", "batch_id"),
])
def test_attack_a_malformed_id_under_a_store_is_never_forwarded(world: World, suffix: str,
                                                                param: str) -> None:
    store = new_store(client(world, "alice"))
    seen = len(world.emulator.requests)
    answer = raw(world, "alice", "GET", f"/v1/vector_stores/{store.id}{suffix}")
    assert (answer.status_code, answer.json()["error"]["param"]) == (404, param)
    assert len(world.emulator.requests) == seen


def test_the_azure_shape_needs_an_api_version(world: World) -> None:
    store = new_store(client(world, "alice"))
    for path in ("/openai/vector_stores", f"/openai/vector_stores/{store.id}"):
        answer = raw(world, "alice", "GET", path)
        assert (answer.status_code, answer.json()["error"]["param"]) == (400, "api-version")
    answer = raw(world, "alice", "GET", "/openai/vector_stores", params={"api-version": "latest"})
    assert (answer.status_code, answer.json()["error"]["param"]) == (400, "api-version")


@pytest.mark.parametrize(("upstream", "seen"), [(500, 502), (409, 409)])
def test_a_failed_upstream_delete_keeps_the_store_owned(world: World, upstream: int, seen: int) -> None:
    alice = client(world, "alice")
    store = new_store(alice)
    world.emulator.faults.append(Fault(status=upstream, deployment="vector_stores"))
    with pytest.raises(openai.APIStatusError) as failed:
        alice.vector_stores.delete(store.id)
    assert failed.value.status_code == seen
    assert alice.vector_stores.retrieve(store.id).id == store.id
    assert alice.vector_stores.delete(store.id).deleted is True
    with pytest.raises(openai.NotFoundError) as gone:
        alice.vector_stores.retrieve(store.id)
    assert gone.value.body == NO_STORE      # the gateway's answer: the record is gone


def test_a_store_that_cannot_be_recorded_is_deleted_upstream(new_world: NewWorld) -> None:
    with new_world() as world:
        alice = client(world, "alice")
        new_store(alice)        # the records table exists, and the gateway knows it does
        TableServiceClient.from_connection_string(world.env["GATEWAY_TABLES_CONNECTION"]).delete_table(
            world.env["GATEWAY_TABLE_PREFIX"] + "objects")
        before = set(world.emulator.vector_stores.stores)
        with pytest.raises(openai.APIStatusError) as refused:
            new_store(alice, name="unrecorded")
        assert (refused.value.status_code, refused.value.body["code"]) == (503, "unavailable")
        created, deleted = world.emulator.requests[-2:]
        assert (created.method, created.path) == ("POST", "/openai/v1/vector_stores")
        assert deleted.method == "DELETE" and deleted.path.startswith("/openai/v1/vector_stores/vs_")
        assert set(world.emulator.vector_stores.stores) == before
        assert "could not be recorded" in world.logs()


@pytest.mark.parametrize("shape", ["v1", "azure"])
def test_vector_stores_under_the_functions_host(new_world: NewWorld, shape: str) -> None:
    with new_world(host="functions") as world:
        alice = client(world, "alice", shape)
        file_id = upload(alice, b"through the host\n")
        store = new_store(alice, file_ids=[file_id])
        assert [s.id for s in alice.vector_stores.list()] == [store.id]
        assert alice.vector_stores.search(vector_store_id=store.id, query="host").data[0].file_id == file_id
        assert alice.vector_stores.delete(store.id).deleted is True
        refused = raw(world, "alice", "PUT", prefix(shape) + f"/{store.id}", params=query(shape))
        assert refused.status_code == 405
        assert set(refused.headers["Allow"].split(", ")) == {"GET", "POST", "DELETE"}


def test_the_record_keeps_the_stores_expiry(world: World) -> None:
    alice = client(world, "alice")
    store = new_store(alice, name="expiring", expires_after={"anchor": "last_active_at", "days": 1})
    service = TableServiceClient.from_connection_string(world.env["GATEWAY_TABLES_CONNECTION"])
    table = service.get_table_client(world.env["GATEWAY_TABLE_PREFIX"] + "objects")

    def recorded() -> dict[str, Any]:
        return dict(table.get_entity("vector_store", store.id))

    assert (recorded()["owner"], recorded()["model"]) == ("user:dev/alice", "gpt-4o")
    assert recorded()["expires"] == store.expires_at
    longer = alice.vector_stores.update(store.id, expires_after={"anchor": "last_active_at", "days": 7})
    assert recorded()["expires"] == longer.expires_at == store.created_at + 7 * 86400
