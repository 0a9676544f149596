"""Token usage: counted per principal, model and day from what callers really did through the gateway,
written off the request path, and printed by `python -m shared usage`."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import aiohttp
import openai
import pytest
from azure.data.tables.aio import TableServiceClient

from sandbox.azurite import Azurite, free_port
from sandbox.emulator import AzureOpenAIEmulator, Fault
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from shared.upstream.usage import UsageRecorder, read_usage
from tests.harness import (
    EMULATOR_KEY,
    ROOT,
    GatewayProcess,
    Tables,
    gateway_env,
    sandbox_config,
    start_world,
    unique_prefix,
)

API_VERSION = "2024-10-21"
MESSAGES = [{"role": "user", "content": "Count my tokens please"}]
ODD_SUB = "okta/a|b#c?d\\e ü"      # every character a table key may not hold, and more


@pytest.fixture(scope="module")
def tables(azurite: Azurite, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> Tables:
    t = Tables(azurite, unique_prefix())
    base = sandbox_config(idp, emulator)
    t.apply({**base, "collaborators": [*base["collaborators"],
                                       {"resource": "model:gpt-4o", "principal": f"user:dev/{ODD_SUB}",
                                        "role": "viewer"}]})
    return t


def token(idp: DevIdentityProvider, sub: str = "alice") -> str:
    return idp.mint(sub, claims={"groups": ["developers"]}, audience="api://ai-gateway")


def direct(emulator: AzureOpenAIEmulator) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(azure_endpoint=emulator.url, api_key=EMULATOR_KEY, api_version=API_VERSION)


def usage_cli(tables: Tables, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared", "usage", *args], cwd=ROOT, text=True,
                          capture_output=True, env={**os.environ, **tables.env}, timeout=60, check=False)


def rows_of(tables: Tables) -> list[dict[str, Any]]:
    done = usage_cli(tables, "--json", "--by", "day,user,model")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def traffic(tables: Tables, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two gateway processes on the same tables serve a mix of calls, then shut down (their last flush)."""
    log_dir = tmp_path_factory.mktemp("gw")
    first = GatewayProcess(gateway_env(tables), log_dir / "first.log")
    second = GatewayProcess(gateway_env(tables), log_dir / "second.log")
    expect = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    streams: dict[str, tuple[bytes, bytes]] = {}

    def add(usage: Any) -> None:
        expect["requests"] += 1
        for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            expect[name] += getattr(usage, name, 0) or 0

    alice = token(idp)
    for gw in (first, second):
        with openai.OpenAI(base_url=gw.url + "/v1", api_key=alice) as client:
            add(client.chat.completions.create(model="gpt-4o", messages=MESSAGES).usage)
            # a stream whose caller did not ask for usage: counted all the same
            with client.chat.completions.with_streaming_response.create(
                    model="gpt-4o", messages=MESSAGES, stream=True) as response:
                through = b"".join(response.iter_bytes())
            assert emulator.requests[-1].json()["stream_options"] == {"include_usage": True}
            with direct(emulator).chat.completions.with_streaming_response.create(
                    model="gpt-4o-dep", messages=MESSAGES, stream=True) as response:
                streams[f"chat-{gw.port}"] = (through, b"".join(response.iter_bytes()))
            add(direct(emulator).chat.completions.create(model="gpt-4o-dep", messages=MESSAGES).usage)
            # a stream whose caller asked for usage gets it
            chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                         stream_options={"include_usage": True}))
            assert chunks[-1].choices == [] and chunks[-1].usage is not None
            add(chunks[-1].usage)
    with openai.OpenAI(base_url=first.url + "/v1", api_key=alice) as client:
        with client.completions.with_streaming_response.create(
                model="gpt-4o", prompt="Say this", stream=True) as response:
            through = b"".join(response.iter_bytes())
        with direct(emulator).completions.with_streaming_response.create(
                model="gpt-4o-dep", prompt="Say this", stream=True) as response:
            streams["completions"] = (through, b"".join(response.iter_bytes()))
        add(direct(emulator).completions.create(model="gpt-4o-dep", prompt="Say this").usage)
        embedded = client.embeddings.create(model="embed", input=["one two", "three"])
    with openai.OpenAI(base_url=second.url + "/v1", api_key=token(idp, ODD_SUB)) as client:
        odd = client.chat.completions.create(model="gpt-4o", messages=MESSAGES).usage
    first.stop()
    second.stop()
    yield {"expect": expect, "streams": streams, "embedded": embedded.usage, "odd": odd}


def test_a_stream_is_byte_for_byte_what_the_caller_asked_for(traffic: dict[str, Any]) -> None:
    """The gateway asked upstream for usage; the caller's bytes do not show it."""
    for name, (through, direct_bytes) in traffic["streams"].items():
        assert through == direct_bytes, name
        assert b'"usage"' not in through and through.endswith(b"data: [DONE]\n\n")


def test_usage_is_counted_per_principal_model_and_day(tables: Tables, traffic: dict[str, Any]) -> None:
    today = dt.datetime.now(dt.UTC).date().isoformat()
    rows = {(r["day"], r["principal"], r["model"]): r for r in rows_of(tables)}
    chat = rows.pop((today, "user:dev/alice", "gpt-4o"))
    assert {k: chat[k] for k in traffic["expect"]} == traffic["expect"]
    embed = rows.pop((today, "user:dev/alice", "embed"))
    assert (embed["requests"], embed["prompt_tokens"], embed["total_tokens"]) == (
        1, traffic["embedded"].prompt_tokens, traffic["embedded"].total_tokens)
    odd = rows.pop((today, f"user:dev/{ODD_SUB}", "gpt-4o"))
    assert (odd["requests"], odd["total_tokens"]) == (1, traffic["odd"].total_tokens)
    assert rows == {}


def test_the_usage_command_prints_a_table_and_filters_by_day(tables: Tables,
                                                             traffic: dict[str, Any]) -> None:
    done = usage_cli(tables, "--by", "day,user,model")
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header.split() == ["day", "principal", "model", "requests", "prompt_tokens", "cached_tokens",
                              "completion_tokens", "total_tokens", "cost_usd", "unpriced"]
    assert any(ODD_SUB in line for line in lines) and len(lines) == 3
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    later = usage_cli(tables, "--since", tomorrow)
    assert later.returncode == 0 and later.stdout.strip() == "no usage recorded"
    bad = usage_cli(tables, "--since", "yesterday")
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr


async def test_counts_survive_storage_being_down_and_are_written_when_it_is_back(
        azurite: Azurite) -> None:
    """A real table client on a port nobody listens on, then the real Azurite."""
    prefix = unique_prefix()
    dead = azurite.connection_string.replace(f":{azurite.table_port}/", f":{free_port()}/")
    services = iter([TableServiceClient.from_connection_string(dead, retry_total=0),
                     TableServiceClient.from_connection_string(azurite.connection_string)])
    recorder = UsageRecorder(lambda: next(services), prefix, flush_seconds=0.05)
    recorder.record("user:dev/bob", "gpt-4o", {"prompt_tokens": 3, "completion_tokens": 4,
                                               "total_tokens": 7})
    recorder.record("user:dev/bob", "gpt-4o", None)      # an answer without usage is still a request
    assert not await recorder.flush()                     # storage down: kept, nothing raised
    assert sum(c.requests for c in recorder.pending.values()) == 2
    recorder.record("user:dev/bob", "gpt-4o", {"input_tokens": 1, "output_tokens": 2})
    await asyncio.sleep(0)
    async with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        for _ in range(200):        # the background flush every 50 ms writes it
            rows = await read_usage(service, prefix)
            if rows:
                break
            await asyncio.sleep(0.05)
        await recorder.aclose()
        rows = await read_usage(service, prefix)
    assert [(r["principal"], r["requests"], r["prompt_tokens"], r["completion_tokens"],
             r["total_tokens"]) for r in rows] == [("user:dev/bob", 3, 4, 6, 10)]



# ---- attacks on usage accounting ----------------------------------------------------------------------
# One gateway serves every attack below (each as its own principal), then shuts down (its last flush);
# each test then reads its principal's row of the usage table.

CHAT_HEAD = ('{"id":"chatcmpl-x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
             '"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],')
BIG = '{"prompt_tokens":900,"completion_tokens":900,"total_tokens":1800}'
SMALL = '{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}'


def usage_event(*members: str) -> bytes:
    return (b'data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"m",'
            b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
            b'data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
            + ",".join(f'"usage":{m}' for m in members).encode() + b'}\n\ndata: [DONE]\n\n')


DUPLICATES = {
    # name: (upstream body, its content type, status the caller gets, (requests, total_tokens) or None)
    "usage-twice-big-first": (f'{CHAT_HEAD}"usage":{BIG},"usage":{SMALL}}}'.encode(), "application/json",
                              502, None),
    "usage-twice-small-first": (f'{CHAT_HEAD}"usage":{SMALL},"usage":{BIG}}}'.encode(), "application/json",
                                502, None),
    "member-twice-in-usage": (f'{CHAT_HEAD}"usage":{{"prompt_tokens":900,"prompt_tokens":1,'
                              '"total_tokens":2}}'.encode(), "application/json", 502, None),
    "stream-usage-twice-big-first": (usage_event(BIG, SMALL), "text/event-stream", 200, (1, 0)),
    "stream-usage-twice-small-first": (usage_event(SMALL, BIG), "text/event-stream", 200, (1, 0)),
}
LATER_USAGE = (b'{"id":"resp_x","object":"response","created_at":1,"status":"completed","model":"m",'
               b'"output":[],"usage":{"input_tokens":7,"output_tokens":5,"total_tokens":12},'
               b'"metadata":{"usage":"none"},"user":null}')


async def _leave_after_last_chunk(url: str, body: dict[str, Any], bearer: str) -> bytes:
    """Reads a stream until its last content chunk, then drops the connection."""
    async with aiohttp.ClientSession() as session:
        resp = await session.post(url, json=body, headers={"Authorization": f"Bearer {bearer}"})
        got = b""
        async for chunk in resp.content.iter_any():
            got += chunk
            if b'"finish_reason":"stop"' in got:
                break
        resp.close()
        return got


def _exchange(create: Any) -> tuple[int, bytes]:
    """Status and body of one call, whether it succeeds or not."""
    try:
        with create() as response:
            return response.status_code, b"".join(response.iter_bytes())
    except openai.APIStatusError as exc:
        return exc.status_code, exc.response.content


def _drive_attacks(gw: GatewayProcess, slow: AzureOpenAIEmulator, idp: DevIdentityProvider,
                   loop: BackgroundLoop) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=token(idp, "responses-stream"),
                       max_retries=0) as client, client.responses.with_streaming_response.create(
            model="gpt-4o", input="Count my tokens please", stream=True) as response:
        seen["responses-stream"] = b"".join(response.iter_bytes())
    with openai.OpenAI(base_url=slow.url + "/openai/v1", api_key=EMULATOR_KEY) as client, \
            client.responses.with_streaming_response.create(
                model="gpt-4o-dep", input="Count my tokens please", stream=True) as response:
        seen["responses-direct"] = b"".join(response.iter_bytes())
    for include in (False, True):
        body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True,
                **({"stream_options": {"include_usage": True}} if include else {})}
        seen[f"abort-{include}"] = loop.run(_leave_after_last_chunk(
            gw.url + "/v1/chat/completions", body, token(idp, f"abort-{include}")))
    for name, (upstream, content_type, _, _) in DUPLICATES.items():
        slow.faults.append(Fault(body=upstream, content_type=content_type))
        stream = content_type == "text/event-stream"
        with openai.OpenAI(base_url=gw.url + "/v1", api_key=token(idp, name), max_retries=0) as client:
            seen[name] = _exchange(lambda: client.chat.completions.with_streaming_response.create(
                model="gpt-4o", messages=MESSAGES, stream=stream,  # noqa: B023 (called at once)
                stream_options={"include_usage": True} if stream else openai.omit))  # noqa: B023
    slow.faults.append(Fault(body=LATER_USAGE))
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=token(idp, "later-usage"), max_retries=0) as client:
        seen["later-usage"] = _exchange(lambda: client.responses.with_streaming_response.create(
            model="gpt-4o", input="hi"))
    return seen


@pytest.fixture(scope="module")
def attacks(azurite: Azurite, idp: DevIdentityProvider, loop: BackgroundLoop,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    # Events 0.1 s apart: a caller leaving at the last content chunk is gone before the usage chunk.
    slow = AzureOpenAIEmulator(api_key=EMULATOR_KEY, chunk_interval=0.1)
    loop.run(slow.start())
    try:
        with start_world(azurite, idp, slow, tmp_path_factory.mktemp("gw")) as world, direct(slow) as client:
            seen = _drive_attacks(world.gw, slow, idp, loop)
            chunks = list(client.chat.completions.create(model="gpt-4o-dep", messages=MESSAGES, stream=True,
                                                         stream_options={"include_usage": True}))
    finally:
        loop.run(slow.stop())
    rows = {r["principal"].removeprefix("user:dev/"): r for r in rows_of(world.tables)}
    yield {"seen": seen, "rows": rows, "chat_usage": chunks[-1].usage}


def test_attack_usage_evaded_by_responses_stream(attacks: dict[str, Any]) -> None:
    """A streamed /v1/responses reports its usage only inside `response.completed`."""
    through, direct_bytes = attacks["seen"]["responses-stream"], attacks["seen"]["responses-direct"]
    assert through == direct_bytes and b"event: response.completed" in through
    final = json.loads(through.split(b"event: response.completed\ndata: ")[1])
    usage = final["response"]["usage"]
    row = attacks["rows"]["responses-stream"]
    assert (row["requests"], row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
        1, usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) and usage["total_tokens"]


@pytest.mark.parametrize("include_usage", [False, True], ids=["usage-not-asked", "usage-asked"])
def test_attack_usage_evaded_by_abort_after_last_chunk(attacks: dict[str, Any], include_usage: bool) -> None:
    """The caller has every word of the answer and leaves before the usage chunk that follows it."""
    got = attacks["seen"][f"abort-{include_usage}"]
    text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                   for line in got.decode().splitlines() if line.startswith("data: {"))
    assert text == "Hello from the emulator. You said: Count my tokens please" and b'"usage":{' not in got
    usage = attacks["chat_usage"]
    row = attacks["rows"][f"abort-{include_usage}"]
    assert (row["requests"], row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
        1, usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)


@pytest.mark.parametrize("name", list(DUPLICATES))
def test_attack_usage_duplicate_members(attacks: dict[str, Any], name: str) -> None:
    """A usage given twice (or a member of it) is never resolved in anyone's favour: an answer with one
    is refused (the caller never gets it, nothing is counted); a stream, already relayed, counts the
    request without tokens, whichever order the members come in."""
    _, _, status, counted = DUPLICATES[name]
    got, body = attacks["seen"][name]
    assert got == status
    if status == 502:
        assert json.loads(body)["error"]["code"] == "upstream_error" and b"900" not in body
    row = attacks["rows"].get(name)
    assert (None if row is None else (row["requests"], row["total_tokens"])) == counted


def test_attack_usage_evaded_by_a_later_member_named_usage(attacks: dict[str, Any]) -> None:
    """Echoed metadata with a member called `usage`, after the real one, is not the answer's usage."""
    assert attacks["seen"]["later-usage"] == (200, LATER_USAGE)
    row = attacks["rows"]["later-usage"]
    assert (row["requests"], row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (
        1, 7, 5, 12)
