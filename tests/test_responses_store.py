"""Stored responses belong to their creator: the openai SDK, two callers and a workspace manager, a real
gateway on Azurite, and the emulator storing what the gateway forwards."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
import requests
from azure.data.tables import TableServiceClient

from sandbox.azurite import Azurite
from sandbox.emulator import Fault
from sandbox.loop import BackgroundLoop
from tests.harness import DEVELOPER, NewWorld, World, emulator_running, sandbox_config, sdk_client

API_VERSION = "2025-04-01-preview"
SHAPES = ("openai", "azure_v1", "azure")


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: Any, emulator: Any) -> Iterator[World]:
    config = sandbox_config(idp, emulator, workspaces=[{"name": "team"}])
    config["models"][0]["workspace"] = "team"
    config["collaborators"].append({"resource": "workspace:team", "principal": "user:dev/mgr",
                                    "role": "manager"})
    with new_world(config=config, tokens={"alice": DEVELOPER, "bob": DEVELOPER, "mgr": {}}) as world:
        yield world


def client(world: World, who: str, shape: str = "openai") -> openai.OpenAI:
    surface = {"openai": "v1", "azure_v1": "openai_v1", "azure": "azure"}[shape]
    return sdk_client(world, who, surface, api_version=API_VERSION, azure_ad_token=True)


def said(text: str) -> str:
    """An input of its own (the emulator's ids are functions of the request)."""
    return f"{text} {uuid.uuid4().hex}"


def upstream_saw(world: World, needle: str) -> bool:
    return any(needle in r.path or needle.encode() in r.body for r in world.emulator.requests)


def raw(world: World, who: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {world.tokens[who]}"}
    return requests.request(method, world.url + path, headers=headers, timeout=30, **kwargs)


@pytest.mark.parametrize("shape", SHAPES)
def test_create_retrieve_list_delete(world: World, shape: str) -> None:
    alice = client(world, "alice", shape)
    created = alice.responses.create(model="gpt-4o", input=said("keep this"))
    assert created.id.startswith("resp_")
    again = alice.responses.retrieve(created.id)
    assert (again.id, again.output_text) == (created.id, created.output_text)
    items = alice.responses.input_items.list(created.id)
    assert [i.type for i in items.data] == ["message"]
    assert items.data[0].content[0].text.startswith("keep this")
    deleted = alice.responses.with_raw_response.delete(created.id)
    assert deleted.status_code == 200 and json.loads(deleted.content)["deleted"] is True
    with pytest.raises(openai.NotFoundError) as gone:
        alice.responses.retrieve(created.id)
    assert gone.value.body["code"] == "not_found"     # the gateway's own: the record went with it


def test_streamed_create_is_recorded_before_its_first_event(world: World) -> None:
    alice = client(world, "alice")
    with alice.responses.create(model="gpt-4o", input=said("stream it"), stream=True) as events:
        seen = list(events)
    assert seen[0].type == "response.created" and seen[-1].type == "response.completed"
    ident = seen[0].response.id
    assert client(world, "alice").responses.retrieve(ident).output_text == seen[-1].response.output_text
    with pytest.raises(openai.NotFoundError):
        client(world, "bob").responses.retrieve(ident)


def test_cancel_a_background_response(world: World) -> None:
    alice = client(world, "alice")
    queued = alice.responses.create(model="gpt-4o", input=said("later"), background=True)
    assert queued.status == "queued"
    assert alice.responses.cancel(queued.id).status == "cancelled"


def test_a_manager_of_the_models_workspace_reads_a_callers_response(world: World) -> None:
    created = client(world, "alice").responses.create(model="gpt-4o", input=said("for review"))
    assert client(world, "mgr").responses.retrieve(created.id).output_text == created.output_text
    assert client(world, "mgr").responses.input_items.list(created.id).data


def test_store_false_is_not_recorded(world: World) -> None:
    created = client(world, "alice").responses.create(model="gpt-4o", input=said("forget me"), store=False)
    before = len(world.emulator.requests)
    with pytest.raises(openai.NotFoundError):
        client(world, "alice").responses.retrieve(created.id)
    assert len(world.emulator.requests) == before


USES: dict[str, Callable[[openai.OpenAI, str], object]] = {
    "retrieve": lambda c, i: c.responses.retrieve(i),
    "delete": lambda c, i: c.responses.delete(i),
    "cancel": lambda c, i: c.responses.cancel(i),
    "input_items": lambda c, i: c.responses.input_items.list(i),
    "retrieve_stream": lambda c, i: list(c.responses.retrieve(i, stream=True)),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("use", sorted(USES))
def test_attack_another_callers_response_is_not_found(world: World, use: str, shape: str) -> None:
    """B learns A's id: every use of it is the 404 of an id that never existed, and nothing is sent."""
    mine = client(world, "alice").responses.create(model="gpt-4o", input=said("private"), background=True)
    unknown = "resp_" + uuid.uuid4().hex
    bob = client(world, "bob", shape)
    before = len(world.emulator.requests)
    with pytest.raises(openai.NotFoundError) as theirs:
        USES[use](bob, mine.id)
    with pytest.raises(openai.NotFoundError) as nobodys:
        USES[use](bob, unknown)
    assert theirs.value.response.content == nobodys.value.response.content
    assert theirs.value.body["code"] == "not_found"
    assert len(world.emulator.requests) == before
    assert client(world, "alice").responses.retrieve(mine.id).status == "completed"


def test_attack_chaining_from_another_callers_response(world: World) -> None:
    """previous_response_id would make the upstream read A's stored response into B's answer."""
    mine = client(world, "alice").responses.create(model="gpt-4o", input=said("my secret"))
    with pytest.raises(openai.NotFoundError) as theirs:
        client(world, "bob").responses.create(model="gpt-4o", input="and then?", previous_response_id=mine.id)
    with pytest.raises(openai.NotFoundError) as nobodys:
        client(world, "bob").responses.create(model="gpt-4o", input="and then?",
                                              previous_response_id="resp_" + uuid.uuid4().hex)
    assert theirs.value.response.content == nobodys.value.response.content
    assert not any(b'"previous_response_id"' in r.body and mine.id.encode() in r.body
                   for r in world.emulator.requests)
    chained = client(world, "alice").responses.create(model="gpt-4o", input=said("and then?"),
                                                      previous_response_id=mine.id)
    assert chained.previous_response_id == mine.id


def test_attack_upstream_repeats_another_callers_id(world: World) -> None:
    """A hostile or faulty upstream answers B with the id of A's response: B never gets it, and A's
    response is neither reassigned nor deleted."""
    text = said("same words")
    mine = client(world, "alice").responses.create(model="gpt-4o", input=text)
    before = len(world.emulator.requests)
    with pytest.raises(openai.APIStatusError) as theirs:
        client(world, "bob").responses.create(model="gpt-4o", input=text)     # the emulator repeats its id
    assert theirs.value.status_code == 502 and mine.id.encode() not in theirs.value.response.content
    assert [r.method for r in world.emulator.requests[before:]] == ["POST"]
    assert client(world, "alice").responses.retrieve(mine.id).id == mine.id
    with pytest.raises(openai.NotFoundError):
        client(world, "bob").responses.retrieve(mine.id)


@pytest.mark.parametrize("extra", [
    {"conversation": "conv_123"},
    {"input": [{"type": "item_reference", "id": "msg_123"}]},
], ids=["conversation", "item_reference"])
def test_attack_stored_objects_without_a_record_are_refused(world: World, extra: dict[str, Any]) -> None:
    before = len(world.emulator.requests)
    answer = raw(world, "bob", "POST", "/v1/responses", json={"model": "gpt-4o", "input": "hi", **extra})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_request"
    assert len(world.emulator.requests) == before


@pytest.mark.parametrize("path", [
    "/v1/responses/resp_a.b", "/v1/responses/file-abc", "/v1/responses/RESP_abc",
    "/v1/responses/resp_" + "a" * 201, "/openai/v1/responses/resp_a%20b/cancel",
    "/v1/responses/resp_a%2F..%2Fb", "/openai/responses/resp_x:y/input_items?api-version=" + API_VERSION,
])
def test_attack_malformed_id_is_never_forwarded(world: World, path: str) -> None:
    before = len(world.emulator.requests)
    method = "POST" if path.endswith("/cancel") else "GET"
    answer = raw(world, "alice", method, path)
    assert answer.status_code in (400, 404), answer.text
    assert len(world.emulator.requests) == before


# -- streamed retrieval ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_a_background_response_is_streamed_again(world: World, shape: str) -> None:
    alice = client(world, "alice", shape)
    queued = alice.responses.create(model="gpt-4o", input=said("replay"), background=True)
    events = list(alice.responses.retrieve(queued.id, stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].response.id == queued.id
    later = list(alice.responses.retrieve(queued.id, stream=True, starting_after=3))
    assert [e.sequence_number for e in later] == list(range(4, len(events)))
    assert world.emulator.requests[-1].query.get("starting_after") == "3"


def test_a_streamed_retrieval_arrives_as_the_upstream_sends_it(new_world: NewWorld, loop: BackgroundLoop,
                                                              idp: Any) -> None:
    """The emulator spaces its events 0.2 s apart: a gateway that held the stream until it ended would
    hand them over all at once."""
    with emulator_running(loop, chunk_interval=0.2) as slow, \
            new_world(config=sandbox_config(idp, slow), tokens={"alice": DEVELOPER}) as world:
        alice = client(world, "alice")
        queued = alice.responses.create(model="gpt-4o", input=said("slowly"), background=True)
        events = alice.responses.retrieve(queued.id, stream=True, starting_after=8)
        arrived = [time.monotonic() for _ in events]
    assert len(arrived) >= 5 and arrived[-1] - arrived[0] >= 0.5


@pytest.mark.parametrize(("query", "status"), [
    ({"stream": "true", "starting_after": "-1"}, 400),
    ({"stream": "yes"}, 400),
    ({"stream": "true", "starting_after": "1", "include[]": "message.output_text.logprobs"}, 200),
    ({"stream": "false", "include_obfuscation": "false"}, 200),
    ({"stream": "true", "limit": "1"}, 400),
])
def test_retrieve_query_is_allowlisted(world: World, query: dict[str, str], status: int) -> None:
    queued = client(world, "alice").responses.create(model="gpt-4o", input=said("q"), background=True)
    before = len(world.emulator.requests)
    answer = raw(world, "alice", "GET", f"/v1/responses/{queued.id}", params=query)
    assert answer.status_code == status, answer.text
    assert len(world.emulator.requests) == before + (status == 200)
    if status == 200:
        assert world.emulator.requests[-1].query == query


# -- records that lapse ------------------------------------------------------------------------------------

def test_a_response_gone_upstream_is_forgotten(world: World, azurite: Azurite) -> None:
    """It expired or was deleted outside the gateway: the caller gets the 404 of an unknown id, and the
    record goes, so the next request does not reach the upstream."""
    alice = client(world, "alice")
    created = alice.responses.create(model="gpt-4o", input=said("expiring"))
    del world.emulator.stored.responses[created.id]
    with pytest.raises(openai.NotFoundError) as gone:
        alice.responses.retrieve(created.id)
    assert gone.value.body["code"] == "not_found"
    assert _entity(world, azurite, created.id) is None
    before = len(world.emulator.requests)
    with pytest.raises(openai.NotFoundError):
        alice.responses.retrieve(created.id)
    assert len(world.emulator.requests) == before


def test_a_stored_response_is_recorded_with_its_expiry(world: World, azurite: Azurite) -> None:
    created = client(world, "alice").responses.create(model="gpt-4o", input=said("thirty days"))
    entity = _entity(world, azurite, created.id)
    assert entity is not None and entity["expires"] - entity["created"] == 30 * 86_400
    assert abs(entity["created"] - time.time()) < 60


def _entity(world: World, azurite: Azurite, ident: str) -> Any:
    table = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(
        f"{world.tables.prefix}objects")
    found = list(table.query_entities("PartitionKey eq 'response' and RowKey eq @id",
                                      parameters={"id": ident}))
    return found[0] if found else None


@pytest.mark.parametrize(("query", "status"), [
    ({"limit": "1", "order": "asc"}, 200),
    ({"stream": "true"}, 400),
    ({"limit": "0"}, 400),
    ({"order": "sideways"}, 400),
    ({"after": "msg_x&limit=1"}, 400),
])
def test_input_items_query_is_allowlisted(world: World, query: dict[str, str], status: int) -> None:
    created = client(world, "alice").responses.create(model="gpt-4o", input=said("items"))
    before = len(world.emulator.requests)
    answer = raw(world, "alice", "GET", f"/v1/responses/{created.id}/input_items", params=query)
    assert answer.status_code == status, answer.text
    assert len(world.emulator.requests) == before + (status == 200)
    if status == 200:
        assert world.emulator.requests[-1].query == query


def test_classic_shape_needs_an_api_version(world: World) -> None:
    created = client(world, "alice").responses.create(model="gpt-4o", input=said("versioned"))
    answer = raw(world, "alice", "GET", f"/openai/responses/{created.id}")
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "api-version"


def test_a_failed_upstream_delete_keeps_the_record(world: World) -> None:
    alice = client(world, "alice")
    created = alice.responses.create(model="gpt-4o", input=said("sticky"))
    world.emulator.faults.append(Fault(status=500))
    with pytest.raises(openai.InternalServerError):
        alice.responses.delete(created.id)
    assert alice.responses.retrieve(created.id).id == created.id


def test_a_record_store_outage_fails_the_create_cleanly(world: World, azurite: Azurite) -> None:
    """No id reaches the caller unrecorded, and the unreachable response is deleted upstream."""
    client(world, "alice").responses.create(model="gpt-4o", input=said("table made"))
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    table = f"{world.tables.prefix}objects"
    service.delete_table(table)
    try:
        text = said("no record")
        with pytest.raises(openai.APIStatusError) as failed:
            client(world, "alice").responses.create(model="gpt-4o", input=text)
        assert failed.value.status_code == 503 and failed.value.body["code"] == "unavailable"
        assert b"resp_" not in failed.value.response.content
        deletes = [r for r in world.emulator.requests if r.method == "DELETE"]
        assert deletes and deletes[-1].path.startswith("/openai/v1/responses/resp_")
        assert deletes[-1].path.rsplit("/", 1)[1] not in world.emulator.stored.responses
    finally:
        service.create_table(table)


def test_functions_host_routes_the_same(new_world: NewWorld) -> None:
    """Under the Functions host, the routes by id win over the /openai/v1/{*operation} catch-all."""
    with new_world(host="functions", tokens={"alice": DEVELOPER, "bob": DEVELOPER}) as world:
        alice = client(world, "alice", "azure_v1")
        queued = alice.responses.create(model="gpt-4o", input=said("hosted"), background=True)
        assert alice.responses.cancel(queued.id).status == "cancelled"
        assert client(world, "alice", "azure").responses.retrieve(queued.id).id == queued.id
        with pytest.raises(openai.NotFoundError):
            client(world, "bob", "azure_v1").responses.cancel(queued.id)
