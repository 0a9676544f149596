"""Batches through the gateway with the openai SDK: input files checked and rewritten to the deployment,
each batch reachable only by the caller who created it, its usage charged once.

Alice and Bob both hold viewer on the same models, so they share the gateway's one credential for the
emulator's account: only the gateway's records keep Bob away from Alice's batches and their results.
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

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.emulator_batches import COMPLETION_TOKENS, PROMPT_TOKENS
from sandbox.idp import DevIdentityProvider
from shared.errors import InvalidRequest
from shared.proxy.batch_input import Rewriter
from tests.harness import DEVELOPER, NewWorld, World, sandbox_config, sdk_client

API_VERSION = "2024-10-21"
SHAPES = ["v1", "openai_v1", "azure"]
NOT_FOUND = {"message": "no such batch, or you do not have access to it", "type": "invalid_request_error",
             "code": "not_found", "param": "batch_id"}
NO_SUCH_FILE = {"message": "no such file, or you do not have access to it", "type": "invalid_request_error",
                "code": "not_found", "param": "file_id"}


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> Iterator[World]:
    config = sandbox_config(idp, emulator)
    config["models"].append({"name": "elsewhere",
                             "targets": [{"account": "other", "deployment": "gpt-4o-dep"}]})
    config["accounts"].append({**config["accounts"][0], "name": "other", "endpoint": emulator.url})
    config["collaborators"].append({"resource": "model:elsewhere", "principal": "identity:developers",
                                    "role": "viewer"})
    with new_world(config=config, tokens={"alice": DEVELOPER, "bob": DEVELOPER}) as world:
        yield world


def client(world: World, who: str, shape: str = "v1") -> openai.OpenAI:
    if who not in world.tokens:
        world.tokens[who] = world.idp.mint(who, claims=DEVELOPER, audience="api://ai-gateway")
    return sdk_client(world, who, shape, api_version=API_VERSION)


def endpoint(shape: str) -> str:
    """What each shape's callers write: the SDK's /v1 spelling, or Azure's classic one."""
    return "/chat/completions" if shape == "azure" else "/v1/chat/completions"


def prefix(shape: str) -> str:
    return {"v1": "/v1/batches", "openai_v1": "/openai/v1/batches", "azure": "/openai/batches"}[shape]


def query(shape: str) -> dict[str, str]:
    return {"api-version": API_VERSION} if shape == "azure" else {}


def line(n: int, model: str = "gpt-4o", url: str = "/v1/chat/completions", **more: Any) -> dict[str, Any]:
    return {"custom_id": f"task-{n}", "method": "POST", "url": url,
            "body": {"model": model, "messages": [{"role": "user", "content": f"question {n}"}]}, **more}


def jsonl(*lines: dict[str, Any] | bytes) -> bytes:
    return b"".join((item if isinstance(item, bytes) else json.dumps(item).encode()) + b"\n"
                    for item in lines)


def upload(c: openai.OpenAI, data: bytes, model: str = "gpt-4o") -> str:
    return c.files.create(file=("input.jsonl", io.BytesIO(data), "application/jsonl"), purpose="batch",
                          extra_body={"model": model}).id


def create(c: openai.OpenAI, file_id: str) -> Any:
    return c.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")


def start(c: openai.OpenAI, data: bytes, shape: str = "v1", **more: Any) -> Any:
    return c.batches.create(input_file_id=upload(c, data), endpoint=endpoint(shape),  # type: ignore[arg-type]
                            completion_window="24h", **more)


def finished(c: openai.OpenAI, batch_id: str) -> Any:
    for _ in range(5):
        batch = c.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "cancelled", "expired"):
            return batch
    raise AssertionError(f"batch {batch_id} did not finish")


def raw(world: World, who: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {world.tokens[who]}", **kwargs.pop("headers", {})}
    return requests.request(method, world.url + path, headers=headers, timeout=30, **kwargs)


def upstream_state(world: World) -> tuple[int, int, int]:
    """What exists upstream, and how many requests created something."""
    creates = sum(r.method == "POST" for r in world.emulator.requests)
    return len(world.emulator.files.files), len(world.emulator.batches.batches), creates


@pytest.mark.parametrize("shape", SHAPES)
def test_a_batch_runs_through_the_gateway(world: World, shape: str) -> None:
    alice = client(world, "alice", shape)
    lines = [line(n, url=endpoint(shape)) for n in range(3)]
    batch = start(alice, jsonl(*lines), shape, metadata={"job": "nightly"})
    assert batch.status == "validating" and batch.metadata == {"job": "nightly"}
    upstream = world.emulator.batches.batches[batch.id]
    sent = [json.loads(x) for x in world.emulator.files.files[upstream.input_file_id].data.splitlines()]
    assert [s["body"]["model"] for s in sent] == ["gpt-4o-dep"] * 3     # never the gateway's model name
    assert [s["custom_id"] for s in sent] == ["task-0", "task-1", "task-2"]
    assert [s["body"]["messages"] for s in sent] == [x["body"]["messages"] for x in lines]
    assert batch.id in [b.id for b in alice.batches.list()]
    done = finished(alice, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 3
    output = [json.loads(x) for x in alice.files.content(done.output_file_id).read().splitlines()]
    assert [o["custom_id"] for o in output] == ["task-0", "task-1", "task-2"]
    assert all(o["response"]["status_code"] == 200 for o in output)


def test_the_azure_sdk_and_the_v1_spelling_of_the_endpoint_mix(world: World) -> None:
    """Azure takes lines spelled /v1/chat/completions in a /chat/completions batch: the same operation."""
    alice = client(world, "alice", "azure")
    data = jsonl(line(1, url="/v1/chat/completions"), line(2, url="/chat/completions"))
    batch = start(alice, data, "azure")
    assert finished(alice, batch.id).status == "completed"


@pytest.mark.parametrize("model", ["secret-model", "no-such-model"])
def test_attack_a_line_naming_a_model_the_caller_lacks_creates_nothing(world: World, model: str) -> None:
    bob = client(world, "bob")
    file_id = upload(bob, jsonl(line(1), line(2, model=model), line(3)))
    before = upstream_state(world)
    with pytest.raises(openai.NotFoundError) as refused:
        create(bob, file_id)
    error = refused.value.body
    assert error["code"] == "model_not_found" and "line 2" in error["message"]
    assert model not in json.dumps(error)       # the line's number, never the caller's text
    assert upstream_state(world) == before


@pytest.mark.parametrize(("data", "number", "problem"), [
    (jsonl(line(1), line(2, model="embed")), 2, "another model"),
    (jsonl(line(1), b"{not json"), 2, "strict JSON"),
    (jsonl(line(1), {**line(2), "custom_id": "task-1"}), 2, "repeats"),
    (jsonl({k: v for k, v in line(1).items() if k != "custom_id"}), 1, "exactly"),
    (jsonl(line(1, extra=True)), 1, "exactly"),
    (jsonl({**line(1), "method": "GET"}), 1, "POST"),
    (jsonl(line(1), line(2, url="/v1/embeddings")), 2, "url"),
    (jsonl(line(1), {**line(2), "body": {"messages": []}}), 2, "model"),
    (jsonl(line(1), {**line(2), "body": "text"}), 2, "model"),
    (jsonl(line(1)) + b"\n" + jsonl(line(2)), 2, "empty"),
    (jsonl(line(1)).replace(b'"custom_id"', b'"method": "POST", "custom_id"', 1), 1, "duplicate"),
    (jsonl(line(1), line(2, model="elsewhere")), 2, "no deployment in the account"),
    (jsonl(line(1, model="elsewhere")), 1, "no deployment in the account"),
])
def test_malformed_input_lines_are_refused_by_number(world: World, data: bytes, number: int,
                                                     problem: str) -> None:
    alice = client(world, "alice")
    file_id = upload(alice, data)
    before = upstream_state(world)
    with pytest.raises(openai.BadRequestError) as refused:
        create(alice, file_id)
    error = refused.value.body
    assert error["param"] == "input_file_id" and f"line {number} " in error["message"], error
    assert problem in error["message"]
    assert upstream_state(world) == before


def test_the_same_lines_without_their_flaw_are_taken(world: World) -> None:
    """The table above fails for its flaw alone; trailing blank lines and CRLF endings are fine."""
    alice = client(world, "alice")
    data = jsonl(line(1), line(2)).replace(b"\n", b"\r\n") + b"\n\n"
    assert start(alice, data).status == "validating"


@pytest.mark.parametrize(("body", "param"), [
    ({"endpoint": "/v1/chat/completions", "completion_window": "24h"}, "input_file_id"),
    ({"input_file_id": "FILE", "endpoint": "/v1/moderations", "completion_window": "24h"}, "endpoint"),
    ({"input_file_id": "FILE", "endpoint": "/v1/chat/completions", "completion_window": "1h"},
     "completion_window"),
    ({"input_file_id": "FILE", "endpoint": "/v1/chat/completions", "completion_window": "24h",
      "priority": "high"}, "priority"),
    ({"input_file_id": "FILE", "endpoint": "/v1/chat/completions", "completion_window": "24h",
      "metadata": {"k": 1}}, "metadata"),
    ({"input_file_id": "FILE", "endpoint": "/v1/chat/completions", "completion_window": "24h",
      "output_expires_after": {"anchor": "created_at", "seconds": 60}}, "output_expires_after"),
])
def test_a_create_request_is_read_strictly(world: World, body: dict[str, Any], param: str) -> None:
    file_id = upload(client(world, "alice"), jsonl(line(1)))
    before = upstream_state(world)
    body = {k: (file_id if v == "FILE" else v) for k, v in body.items()}
    answer = raw(world, "alice", "POST", "/v1/batches", json=body)
    assert (answer.status_code, answer.json()["error"]["param"]) == (400, param), answer.text
    assert upstream_state(world) == before


@pytest.mark.parametrize("shape", SHAPES)
def test_attack_another_caller_cannot_reach_a_batch_or_its_results(world: World, shape: str) -> None:
    alice = client(world, "alice", shape)
    batch = start(alice, jsonl(line(1, url=endpoint(shape))), shape)
    done = finished(alice, batch.id)
    assert batch.id not in [b.id for b in client(world, "bob", shape).batches.list()]
    seen = len(world.emulator.requests)
    base, params = prefix(shape), query(shape)
    for batch_id in (batch.id, "batch_00000000-dead-beef-0000-000000000000"):
        answers = [raw(world, "bob", "GET", f"{base}/{batch_id}", params=params),
                   raw(world, "bob", "POST", f"{base}/{batch_id}/cancel", params=params)]
        assert [(a.status_code, a.json()["error"]) for a in answers] == [(404, NOT_FOUND)] * 2
    files = {"v1": "/v1/files", "openai_v1": "/openai/v1/files", "azure": "/openai/files"}[shape]
    for file_id in (done.output_file_id, done.input_file_id):
        stolen = raw(world, "bob", "GET", f"{files}/{file_id}/content", params=params)
        assert (stolen.status_code, stolen.json()["error"]) == (404, NO_SUCH_FILE)
    assert len(world.emulator.requests) == seen
    assert alice.batches.retrieve(batch.id).status == "completed"


def test_attack_a_batch_over_another_callers_file(world: World) -> None:
    file_id = upload(client(world, "alice"), jsonl(line(1)))
    seen = len(world.emulator.requests)
    with pytest.raises(openai.NotFoundError) as refused:
        create(client(world, "bob"), file_id)
    assert refused.value.body == NO_SUCH_FILE
    assert len(world.emulator.requests) == seen


@pytest.mark.parametrize("bad_id", ["resp_abc", "batch_a.b", "batch_" + "a" * 201, "batch_a%20b", "batch_",
                                    "BATCH_abc"])
def test_attack_a_malformed_id_is_never_forwarded(world: World, bad_id: str) -> None:
    seen = len(world.emulator.requests)
    for method, suffix in (("GET", ""), ("POST", "/cancel")):
        answer = raw(world, "alice", method, f"/v1/batches/{bad_id}{suffix}")
        assert (answer.status_code, answer.json()["error"]) == (404, NOT_FOUND)
    assert len(world.emulator.requests) == seen


def test_a_batch_is_cancelled(world: World) -> None:
    alice = client(world, "alice")
    batch = start(alice, jsonl(line(1)))
    assert alice.batches.cancel(batch.id).status == "cancelling"
    assert alice.batches.retrieve(batch.id).status == "cancelled"


@pytest.mark.parametrize("report_usage", [True, False])
def test_usage_is_charged_once_when_the_batch_finished(world: World, report_usage: bool) -> None:
    """From the batch's usage, or (older api-versions) summed from its output file's lines."""
    who = f"usage-{report_usage}".lower()
    c = client(world, who)
    batch = start(c, jsonl(line(1), line(2), line(3), line(4)))
    world.emulator.batches.report_usage = report_usage
    try:
        finished(c, batch.id)
        for _ in range(3):
            c.batches.retrieve(batch.id)
        c.batches.list()
    finally:
        world.emulator.batches.report_usage = True
    rows = world.api(who, **DEVELOPER).get("usage", params={"group_by": "model"}).json()["data"]
    assert [(r["model"], r["requests"], r["prompt_tokens"], r["completion_tokens"]) for r in rows] == [
        ("gpt-4o", 1, 4 * PROMPT_TOKENS, 4 * COMPLETION_TOKENS)]


def test_lists_hold_only_the_callers_batches_and_page(world: World) -> None:
    dave = client(world, "dave")
    ids = [start(dave, jsonl(line(n))).id for n in range(3)]
    start(client(world, "alice"), jsonl(line(1)))
    first = dave.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2] and first.has_more is True
    assert [b.id for b in dave.batches.list(limit=2)] == ids[::-1]       # the SDK follows `after`
    answer = raw(world, "dave", "GET", "/v1/batches", params={"limit": "101"})
    assert (answer.status_code, answer.json()["error"]["param"]) == (400, "limit")
    answer = raw(world, "dave", "GET", "/v1/batches", params={"order": "asc"})
    assert answer.status_code == 400


def test_a_batch_that_cannot_be_recorded_leaves_nothing_upstream(new_world: NewWorld) -> None:
    with new_world() as world:
        alice = client(world, "alice")
        file_id = upload(alice, jsonl(line(1)))     # recorded: the gateway holds it in memory
        TableServiceClient.from_connection_string(world.env["GATEWAY_TABLES_CONNECTION"]).delete_table(
            world.env["GATEWAY_TABLE_PREFIX"] + "objects")
        files, batches = set(world.emulator.files.files), set(world.emulator.batches.batches)
        with pytest.raises(openai.APIStatusError) as refused:
            create(alice, file_id)
        assert (refused.value.status_code, refused.value.body["code"]) == (503, "unavailable")
        assert set(world.emulator.files.files) == files and set(world.emulator.batches.batches) == batches
        assert world.emulator.requests[-1].method == "DELETE"


def test_an_input_file_over_the_limit_creates_nothing(new_world: NewWorld) -> None:
    with new_world(env={"GATEWAY_MAX_BATCH_INPUT_BYTES": "1024"}) as world:
        alice = client(world, "alice")
        small, large = upload(alice, jsonl(line(1))), upload(alice, jsonl(*(line(n) for n in range(20))))
        before = upstream_state(world)
        with pytest.raises(openai.BadRequestError) as refused:
            create(alice, large)
        error = refused.value.body
        assert error["param"] == "input_file_id" and "1024 bytes" in error["message"]
        assert upstream_state(world) == before
        assert create(alice, small).status == "validating"


def test_a_batch_counts_as_one_request_against_the_models_rate_limits(
        new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> None:
    config = sandbox_config(idp, emulator, rate_limits=[
        {"name": "one-a-day", "when": {"models": {"in": ["gpt-4o"]}}, "per": ["user"],
         "limits": [{"requests": 1, "per": "day"}]}])
    with new_world(config=config) as world:
        alice = client(world, "alice")
        start(alice, jsonl(line(1), line(2)))
        file_id = upload(alice, jsonl(line(1)))
        before = upstream_state(world)
        with pytest.raises(openai.RateLimitError) as refused:
            create(alice, file_id)
        assert "one-a-day" in refused.value.body["message"]
        assert upstream_state(world) == before
        other = upload(alice, jsonl(line(1, model="embed")), model="embed")
        assert create(alice, other).status == "validating"


@pytest.mark.parametrize("shape", ["v1", "azure"])
def test_batches_under_the_functions_host(new_world: NewWorld, shape: str) -> None:
    with new_world(host="functions") as world:
        alice = client(world, "alice", shape)
        batch = start(alice, jsonl(line(1, url=endpoint(shape))), shape)
        assert [b.id for b in alice.batches.list()] == [batch.id]
        done = finished(alice, batch.id)
        assert json.loads(alice.files.content(done.output_file_id).read())["custom_id"] == "task-1"
        refused = raw(world, "alice", "DELETE", prefix(shape) + f"/{batch.id}", params=query(shape))
        assert refused.status_code == 405 and refused.headers["Allow"] == "GET"



def rewriter() -> Rewriter:
    return Rewriter("/v1/chat/completions", lambda model, n: f"{model}-dep", max_line_bytes=1 << 16)


def test_lines_cut_anywhere_by_the_pieces_of_the_file_are_read_whole() -> None:
    """The input file arrives in pieces that cut lines anywhere: fed a byte at a time, the same lines."""
    data = jsonl(*(line(n) for n in range(3))).replace(b"\n", b"\r\n")
    whole, pieces = rewriter(), rewriter()
    whole.feed(data)
    for byte in data:
        pieces.feed(bytes([byte]))
    done = pieces.finish()
    assert whole.finish() == done and done.model == "gpt-4o" and done.size == sum(map(len, done.lines))
    assert [json.loads(x)["body"]["model"] for x in done.lines] == ["gpt-4o-dep"] * 3


def test_a_line_longer_than_the_limit_is_refused_before_it_ends() -> None:
    r = Rewriter("/v1/chat/completions", lambda model, n: "dep", max_line_bytes=1024)
    r.feed(jsonl(line(1)))
    with pytest.raises(InvalidRequest) as refused:
        r.feed(b'{"custom_id": "' + b"x" * 2000)
    assert "line 2 " in refused.value.message


def test_a_batch_naming_a_deployment_the_upstream_lacks_fails_there(world: World) -> None:
    """The emulator validates as Azure does: the batch is created, then fails; its failure is relayed."""
    c = client(world, "failing")
    batch = start(c, jsonl(line(1)))
    known = set(world.emulator.batches.deployments)
    world.emulator.batches.deployments.clear()
    try:
        done = finished(c, batch.id)
    finally:
        world.emulator.batches.deployments.update(known)
    assert done.status == "failed" and done.errors.data[0].line == 1 and done.output_file_id is None
