"""The Azure OpenAI emulator speaks the protocol the real openai SDK expects, over real loopback sockets.

The gateway's tests trust the emulator as their upstream, so it is checked here against the SDK itself.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import requests
from openai import AzureOpenAI, OpenAI

from sandbox.azurite import free_port
from sandbox.emulator import UNAUTHORIZED_MESSAGE, AzureOpenAIEmulator, Fault
from sandbox.loop import BackgroundLoop

ROOT = Path(__file__).resolve().parent.parent
KEY = "sandbox-key"
API_VERSION = "2024-10-21"


@pytest.fixture(scope="module")
def bg() -> Iterator[BackgroundLoop]:
    with BackgroundLoop() as background:
        yield background


@pytest.fixture
def make_emulator(bg: BackgroundLoop) -> Iterator[Callable[..., AzureOpenAIEmulator]]:
    started: list[AzureOpenAIEmulator] = []

    def make(**kwargs: Any) -> AzureOpenAIEmulator:
        server = AzureOpenAIEmulator(**kwargs)
        bg.run(server.start())
        started.append(server)
        return server

    yield make
    for server in started:
        bg.run(server.stop())


@pytest.fixture
def emu(make_emulator: Callable[..., AzureOpenAIEmulator]) -> AzureOpenAIEmulator:
    return make_emulator(chunk_interval=0.005)


def azure(emu: AzureOpenAIEmulator, **kwargs: Any) -> AzureOpenAI:
    options: dict[str, Any] = {"api_key": KEY, "max_retries": 0, **kwargs}
    return AzureOpenAI(azure_endpoint=emu.url, api_version=API_VERSION, **options)


def v1(emu: AzureOpenAIEmulator, **kwargs: Any) -> OpenAI:
    return OpenAI(base_url=emu.url + "/openai/v1", api_key=KEY, max_retries=0, **kwargs)


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def user(text: str) -> list[Any]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def test_chat_completion_through_the_azure_client(emu: AzureOpenAIEmulator) -> None:
    with azure(emu) as client:
        reply = client.chat.completions.create(model="gpt-4o-dep", messages=user("what is up"))
    assert reply.choices[0].message.content == "Hello from the emulator. You said: what is up"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.id.startswith("chatcmpl-") and len(reply.id) == len("chatcmpl-") + 24
    assert (reply.created, reply.model) == (1700000000, "gpt-4o-2024-08-06")
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (5, 9, 14)
    [seen] = emu.requests
    assert (seen.method, seen.deployment) == ("POST", "gpt-4o-dep")
    assert seen.path == "/openai/deployments/gpt-4o-dep/chat/completions"
    assert seen.query == {"api-version": API_VERSION}
    assert seen.headers["api-key"] == KEY
    assert seen.json()["messages"][-1]["content"] == "what is up"


def test_list_content_and_completions(emu: AzureOpenAIEmulator) -> None:
    parts = [{"role": "user", "content": [{"type": "text", "text": "one "}, {"type": "text", "text": "two"}]}]
    with azure(emu) as client:
        chat = client.chat.completions.create(model="dep", messages=parts)  # type: ignore[arg-type]
        text = client.completions.create(model="dep", prompt="say this")
    assert chat.choices[0].message.content == "Hello from the emulator. You said: one two"
    assert text.object == "text_completion" and text.id.startswith("cmpl-")
    assert text.choices[0].text == "Hello from the emulator. You said: say this"


def test_v1_surface_takes_the_deployment_from_the_body(emu: AzureOpenAIEmulator) -> None:
    with v1(emu) as client:
        reply = client.chat.completions.create(model="gpt-4o-dep", messages=user("hi"))
    assert reply.choices[0].message.content == "Hello from the emulator. You said: hi"
    [seen] = emu.requests
    assert (seen.path, seen.deployment) == ("/openai/v1/chat/completions", "gpt-4o-dep")
    assert seen.headers["authorization"] == f"Bearer {KEY}"


def test_streaming_spreads_chunks_over_time(make_emulator: Callable[..., AzureOpenAIEmulator]) -> None:
    interval = 0.03
    emu = make_emulator(chunk_interval=interval)
    arrivals: list[float] = []
    chunks = []
    with azure(emu) as client:
        for chunk in client.chat.completions.create(model="dep", messages=user("a b c"), stream=True):
            arrivals.append(time.monotonic())
            chunks.append(chunk)
    answer = "Hello from the emulator. You said: a b c"
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    pieces = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert pieces[:3] == ["Hello", " from", " the"] and "".join(pieces) == answer  # type: ignore[arg-type]
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].choices[0].delta.content is None
    assert {c.id for c in chunks} == {chunks[0].id} and {c.created for c in chunks} == {1700000000}
    assert {c.object for c in chunks} == {"chat.completion.chunk"} and all(c.usage is None for c in chunks)
    # role + 9 words + stop = 11 chunks, 10 intervals apart: streamed, not delivered in one piece.
    assert len(chunks) == 11
    spread = arrivals[-1] - arrivals[0]
    assert 0.7 * 10 * interval < spread < 10 * interval + 1.0
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert sum(gap > interval / 3 for gap in gaps) >= 7


def test_stream_include_usage_and_completions_stream(emu: AzureOpenAIEmulator) -> None:
    with azure(emu) as client:
        chunks = list(client.chat.completions.create(model="dep", messages=user("x y"), stream=True,
                                                     stream_options={"include_usage": True}))
        text_chunks = list(client.completions.create(model="dep", prompt="p q", stream=True))
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (4, 8, 12)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])
    assert {c.object for c in text_chunks} == {"text_completion"}
    assert "".join(c.choices[0].text for c in text_chunks) == "Hello from the emulator. You said: p q"
    assert text_chunks[-1].choices[0].finish_reason == "stop"


def test_embeddings_base64_by_default_and_float(emu: AzureOpenAIEmulator) -> None:
    with azure(emu) as client:
        packed = client.embeddings.create(model="embed-dep", input=["alpha", "beta gamma"])
        floats = client.embeddings.create(model="embed-dep", input=["alpha", "beta gamma"],
                                          encoding_format="float")
        wide = client.embeddings.create(model="embed-dep", input="alpha", dimensions=32)
    assert [r.json()["encoding_format"] for r in emu.requests] == ["base64", "float", "base64"]
    assert json.loads(emu.requests[0].body)["input"] == ["alpha", "beta gamma"]
    assert [d.index for d in packed.data] == [0, 1]
    assert [d.embedding for d in packed.data] == [d.embedding for d in floats.data]
    assert len(packed.data[0].embedding) == 8 and packed.data[0].embedding != packed.data[1].embedding
    assert len(wide.data[0].embedding) == 32 and wide.data[0].embedding[:8] == packed.data[0].embedding
    assert (packed.usage.prompt_tokens, packed.usage.total_tokens) == (3, 3)
    assert packed.model == "gpt-4o-2024-08-06"


def test_responses(emu: AzureOpenAIEmulator) -> None:
    with v1(emu) as client:
        simple = client.responses.create(model="gpt-4o-dep", input="tell me")
        listed = client.responses.create(model="gpt-4o-dep", input=[
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "input_text", "text": "second one"}]}])
    assert simple.output_text == "Hello from the emulator. You said: tell me"
    assert simple.id.startswith("resp_") and simple.status == "completed" and simple.created_at == 1700000000
    assert simple.usage is not None and (simple.usage.input_tokens, simple.usage.output_tokens) == (2, 8)
    assert listed.output_text == "Hello from the emulator. You said: second one"
    assert emu.requests[0].deployment == "gpt-4o-dep"


def test_responses_stream(emu: AzureOpenAIEmulator) -> None:
    """The Responses API's events, as the SDK's own stream helper accumulates them; the usage comes
    only in `response.completed`."""
    with v1(emu) as client:
        events = list(client.responses.create(model="gpt-4o-dep", input="tell me", stream=True))
        whole = client.responses.create(model="gpt-4o-dep", input="tell me")
        with client.responses.stream(model="gpt-4o-dep", input="tell me") as stream:
            accumulated = stream.get_final_response()
    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas[:2] == ["Hello", " from"] and "".join(deltas) == whole.output_text
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == accumulated.output_text == whole.output_text
    assert final.usage == whole.usage and final.usage is not None
    assert all(getattr(e, "response", None) is None or e.response.usage is None for e in events[:-1])


def test_hostile_faults(emu: AzureOpenAIEmulator, bg: BackgroundLoop) -> None:
    """Redirects, extra headers, messages naming the deployment, and raw bodies, as a hostile upstream."""
    url = f"{emu.url}/openai/deployments/dep-9/chat/completions?api-version={API_VERSION}"
    body = {"messages": user("hi")}
    emu.faults.extend([Fault(status=307, headers={"Location": "https://evil.example/x"}),
                       Fault(headers={"Server": "Evil/1.0", "x-ms-region": "evil-region"}),
                       Fault(status=404, message="no deployment {deployment} here"),
                       Fault(body=b'{"usage":{},"usage":{}}', headers={"x-extra": "1"})])
    status, headers, _ = bg.run(raw_post(url, body))
    assert (status, headers["Location"]) == (307, "https://evil.example/x")
    status, headers, content = bg.run(raw_post(url, body))
    assert (status, headers["Server"], headers["x-ms-region"]) == (200, "Evil/1.0", "evil-region")
    assert json.loads(content)["choices"]
    status, _, content = bg.run(raw_post(url, body))
    assert (status, json.loads(content)["error"]["message"]) == (404, "no deployment dep-9 here")
    status, headers, content = bg.run(raw_post(url, body))
    assert (status, content, headers["x-extra"]) == (200, b'{"usage":{},"usage":{}}', "1")
    assert headers["Content-Type"] == "application/json" and not emu.faults


def test_wrong_key_is_401_and_recorded(emu: AzureOpenAIEmulator) -> None:
    with azure(emu, api_key="wrong") as client, pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="dep", messages=user("hi"))
    assert caught.value.status_code == 401
    assert caught.value.response.json() == {"error": {"code": "401", "message": UNAUTHORIZED_MESSAGE}}
    with azure(emu, api_key=None, azure_ad_token=KEY) as client, pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="dep", messages=user("hi"))  # a bearer key only works on v1
    assert [r.headers.get("api-key") for r in emu.requests] == ["wrong", None]


def test_bearer_check(make_emulator: Callable[..., AzureOpenAIEmulator]) -> None:
    emu = make_emulator(api_key=None, bearer_check=lambda token: token == "good-token")
    with azure(emu, api_key=None, azure_ad_token="good-token") as client:
        assert client.embeddings.create(model="e", input="x").data
    with azure(emu, api_key=None, azure_ad_token="bad-token") as client, \
            pytest.raises(openai.AuthenticationError):
        client.embeddings.create(model="e", input="x")
    with azure(emu, api_key=KEY) as client, pytest.raises(openai.AuthenticationError):
        client.embeddings.create(model="e", input="x")  # no key is configured, so none is accepted
    assert emu.requests[0].headers["authorization"] == "Bearer good-token"


async def raw_post(url: str, body: dict[str, Any], key: str = KEY) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, \
            session.post(url, data=json.dumps(body), allow_redirects=False,
                         headers={"api-key": key, "Content-Type": "application/json"}) as resp:
        return resp.status, dict(resp.headers), await resp.read()


def test_answers_are_deterministic_and_ignore_model(emu: AzureOpenAIEmulator, bg: BackgroundLoop) -> None:
    direct = f"{emu.url}/openai/deployments/dep/chat/completions?api-version={API_VERSION}"
    via_v1 = f"{emu.url}/openai/v1/chat/completions"
    body = {"messages": user("same words")}
    for extra in ({}, {"stream": True, "stream_options": {"include_usage": True}}):
        answers = [bg.run(raw_post(direct, {"model": "a", **body, **extra})),
                   bg.run(raw_post(direct, {**body, **extra})),
                   bg.run(raw_post(via_v1, {"model": "other-dep", **body, **extra}))]
        assert {status for status, _, _ in answers} == {200}
        assert len({content for _, _, content in answers}) == 1
    _, headers, streamed = answers[0]
    assert headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert streamed.startswith(b'data: {"id":"chatcmpl-') and streamed.endswith(b"}\n\ndata: [DONE]\n\n")
    _, _, other = bg.run(raw_post(direct, {"messages": user("other words")}))
    _, _, first = bg.run(raw_post(direct, body))
    assert json.loads(other)["id"] != json.loads(first)["id"]


def test_route_and_body_errors(emu: AzureOpenAIEmulator, bg: BackgroundLoop) -> None:
    status, _, content = bg.run(raw_post(f"{emu.url}/openai/deployments/dep/images", {}))
    assert (status, json.loads(content)) == (404, {"error": {"code": "404", "message": "Resource not found"}})
    status, _, content = bg.run(raw_post(f"{emu.url}/openai/deployments/dep/chat/completions", {}))
    assert status == 400 and "api-version" in json.loads(content)["error"]["message"]

    async def bad_json() -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session, session.post(
                f"{emu.url}/openai/v1/embeddings", data=b"{not json", headers={"api-key": KEY}) as resp:
            return resp.status, await resp.json(content_type=None)

    status, answer = bg.run(bad_json())
    assert status == 400 and set(answer["error"]) == {"code", "message"}
    assert len(emu.requests) == 3 and emu.requests[-1].body == b"{not json"


def test_status_faults_are_fifo_and_per_deployment(emu: AzureOpenAIEmulator) -> None:
    emu.faults.extend([Fault(status=429, retry_after=7, deployment="busy"), Fault(status=500)])
    with azure(emu) as client:
        with pytest.raises(openai.InternalServerError) as server_error:
            client.chat.completions.create(model="calm", messages=user("hi"))  # skips the "busy" fault
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(model="busy", messages=user("hi"), stream=True)
        assert client.chat.completions.create(model="busy", messages=user("hi")).choices
    assert not emu.faults
    assert limited.value.status_code == 429 and limited.value.response.headers["retry-after"] == "7"
    assert limited.value.response.json()["error"]["code"] == "429"
    assert server_error.value.status_code == 500 and "retry-after" not in server_error.value.response.headers
    assert server_error.value.response.json()["error"]["code"] == "500"


def test_delay_fault(emu: AzureOpenAIEmulator) -> None:
    emu.faults.extend([Fault(delay=2.0), Fault(delay=0.3)])
    with azure(emu, timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="dep", messages=user("hi"))
        assert time.monotonic() - started < 1.5
    with azure(emu) as client:
        started = time.monotonic()
        assert client.chat.completions.create(model="dep", messages=user("hi")).choices
        assert time.monotonic() - started >= 0.3


def test_reset_mid_stream_is_an_error_for_the_client(emu: AzureOpenAIEmulator) -> None:
    emu.faults.append(Fault(reset_after_chunks=3))
    received = []
    with azure(emu) as client:
        with pytest.raises(openai.APIConnectionError):
            for chunk in client.chat.completions.create(model="dep", messages=user("hi"), stream=True):
                received.append(chunk)
        assert len(received) == 3
        emu.faults.append(Fault(reset_after_chunks=0))
        with pytest.raises(openai.APIConnectionError):
            client.embeddings.create(model="dep", input="x")  # not streaming: dropped unanswered
        assert client.chat.completions.create(model="dep", messages=user("hi")).choices
    assert wait_until(lambda: emu.open_connections == 0)


def test_open_connections_return_to_zero(emu: AzureOpenAIEmulator) -> None:
    assert emu.open_connections == 0
    first, second = azure(emu), v1(emu)
    first.chat.completions.create(model="dep", messages=user("hi"))
    stream = second.chat.completions.create(model="dep", messages=user("a long answer"), stream=True)
    next(iter(stream))  # a stream abandoned part-way
    assert emu.open_connections == 2  # keep-alive holds both sockets
    stream.close()
    first.close()
    second.close()
    assert wait_until(lambda: emu.open_connections == 0)


def test_main_runs_standalone() -> None:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "sandbox.emulator", "--port", str(port),
                                "--api-key", "K"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip().endswith(f"http://127.0.0.1:{port}")
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/openai/v1", api_key="K", max_retries=0)
        with client:
            assert client.embeddings.create(model="e", input="x").data
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0


# ---- the Azure AI Model Inference API of a Foundry resource ----------------------------------------------

MODELS_VERSION = "2024-05-01-preview"


def models(emu: AzureOpenAIEmulator, extra: str | None = "pass-through", **kwargs: Any) -> OpenAI:
    """The openai SDK pointed at /models, as a Foundry caller (or the gateway) asks it."""
    headers = {"api-key": KEY, **({"extra-parameters": extra} if extra else {})}
    return OpenAI(base_url=emu.url + "/models", api_key=KEY, max_retries=0, default_headers=headers,
                  default_query={"api-version": MODELS_VERSION}, **kwargs)


def test_models_surface_chat_stream_and_embeddings(emu: AzureOpenAIEmulator) -> None:
    with models(emu) as client:
        reply = client.chat.completions.create(model="DeepSeek-R1", messages=user("what is up"))
        chunks = list(client.chat.completions.create(model="DeepSeek-R1", messages=user("x y"), stream=True,
                                                     stream_options={"include_usage": True}))
        vectors = client.embeddings.create(model="embed-v-4-0", input=["alpha", "beta"],
                                           encoding_format="float")
    assert reply.choices[0].message.content == "Hello from the emulator. You said: what is up"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Hello from the emulator. You said: x y"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 12
    assert len(vectors.data) == 2 and vectors.usage.total_tokens == 2
    assert [(r.path, r.deployment, r.query) for r in emu.requests] == [
        ("/models/chat/completions", "DeepSeek-R1", {"api-version": MODELS_VERSION}),
        ("/models/chat/completions", "DeepSeek-R1", {"api-version": MODELS_VERSION}),
        ("/models/embeddings", "embed-v-4-0", {"api-version": MODELS_VERSION})]


def test_models_surface_answers_as_the_deployments_route_does(emu: AzureOpenAIEmulator,
                                                               bg: BackgroundLoop) -> None:
    body = {"messages": user("same words"), "stream": True}
    via_models = bg.run(raw_post(f"{emu.url}/models/chat/completions?api-version={MODELS_VERSION}",
                                 {"model": "dep", **body}))
    azure_url = f"{emu.url}/openai/deployments/dep/chat/completions?api-version={API_VERSION}"
    via_azure = bg.run(raw_post(azure_url, body))
    assert via_models[0] == via_azure[0] == 200 and via_models[2] == via_azure[2]


@pytest.mark.parametrize(("path", "headers", "body", "status", "code", "message"), [
    ("/models/chat/completions", {}, {"model": "m", "messages": []}, 400, "BadRequest",
     "Missing required query parameter: api-version"),
    (f"/models/chat/completions?api-version={API_VERSION}", {}, {"model": "m", "messages": []}, 400,
     "BadRequest", "Unsupported api-version '2024-10-21'"),
    (f"/models/chat/completions?api-version={MODELS_VERSION}", {}, {"messages": []}, 400, "no_model_name",
     "No model specified in request"),
    (f"/models/chat/completions?api-version={MODELS_VERSION}", {},
     {"model": "m", "messages": [], "stream_options": {"include_usage": True}, "user": "u"}, 400,
     "BadRequest", "Extra parameters ['stream_options', 'user'] are not allowed when extra-parameters"),
    (f"/models/embeddings?api-version={MODELS_VERSION}", {"extra-parameters": "error"},
     {"model": "m", "input": "x", "user": "u"}, 400, "BadRequest", "Extra parameters ['user']"),
    (f"/models/embeddings?api-version={MODELS_VERSION}", {"extra-parameters": "sometimes"},
     {"model": "m", "input": "x"}, 400, "BadRequest", "extra-parameters must be one of"),
    (f"/models/completions?api-version={MODELS_VERSION}", {}, {"model": "m", "prompt": "x"}, 404, "404",
     "Resource not found"),
])
def test_models_surface_refuses_as_azure_does(emu: AzureOpenAIEmulator, bg: BackgroundLoop, path: str,
                                              headers: dict[str, str], body: dict[str, Any], status: int,
                                              code: str, message: str) -> None:
    async def post() -> tuple[int, dict[str, str], Any]:
        async with aiohttp.ClientSession() as session, session.post(
                emu.url + path, json=body, headers={"api-key": KEY, **headers}) as resp:
            return resp.status, dict(resp.headers), await resp.json(content_type=None)

    got, answer_headers, answer = bg.run(post())
    assert (got, answer["error"]["code"]) == (status, code) and message in answer["error"]["message"]
    if status == 400:
        assert answer_headers["x-ms-error-code"] == code


def test_models_surface_drops_extra_parameters_when_asked(emu: AzureOpenAIEmulator) -> None:
    with models(emu, extra="drop") as client:
        chunks = list(client.chat.completions.create(model="m", messages=user("x"), stream=True,
                                                     stream_options={"include_usage": True}))
    assert all(c.usage is None for c in chunks)      # stream_options was dropped, so no usage chunk
    with models(emu, extra=None) as client, pytest.raises(openai.BadRequestError, match="stream_options"):
        client.chat.completions.create(model="m", messages=user("x"), stream=True,
                                       stream_options={"include_usage": True})


def test_models_info(emu: AzureOpenAIEmulator) -> None:
    info = requests.get(f"{emu.url}/models/info", params={"api-version": MODELS_VERSION},
                        headers={"api-key": KEY}, timeout=10)
    assert info.json() == {"model_name": "gpt-4o-2024-08-06", "model_type": "chat-completion",
                           "model_provider_name": "Emulator"}
    assert requests.get(f"{emu.url}/models/info", headers={"api-key": KEY}, timeout=10).status_code == 400
    assert requests.get(f"{emu.url}/models/info", params={"api-version": MODELS_VERSION},
                        headers={"api-key": "wrong"}, timeout=10).status_code == 401
