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
NO_STORE = {"message": "no such vector store, or you do not have access to it", "type": "invalid_request_error",
            "code": "not_found", "param": "vector_store_id"}
NO_FILE = {"message": "no such file, or you do not have access to it", "type": "invalid_request_error",
           "code": "not_found", "param": "file_id"}
MANAGER = "user:dev/manny"


def config_with_two_accounts(idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> dict[str, Any]:
    config = sandbox_config(idp, emulator)
    config["accounts"].append({"name": "other", "kind": "azure-openai", "endpoint": emulator.url,
                               "auth": {"type": "api-key", "key_env": EMULATOR_KEY_ENV}})
    config["models"].append({"name": "elsewhere", "targets": [{"account": "other", "deployment": "gpt-4o-dep"}]})
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
    store = new_store(alice, name="notes", file_ids=[fox], expires_after={"anchor": "last_active_at", "days": 2},
                      metadata={"team": "a"})
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
