"""Azure AI Foundry accounts as a caller sees them: the openai SDK -> the gateway (its own process) -> the
emulator serving a Foundry resource's two surfaces.

An `ai-foundry` account with `api_style: models` reaches the Azure AI Model Inference API
(/models/chat/completions and /models/embeddings, the deployment named in `model`); one without it
reaches the resource's Azure OpenAI surface. The caller's routes and bodies are the same either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
import requests
from azure.data.tables.aio import TableServiceClient

from sandbox.azurite import Azurite
from sandbox.emulator import AzureOpenAIEmulator, Fault
from sandbox.idp import DevIdentityProvider
from sandbox.loop import BackgroundLoop
from shared.upstream.usage import read_usage
from tests.harness import (
    EMULATOR_KEY,
    EMULATOR_KEY_ENV,
    NewWorld,
    World,
    dev_provider,
    emulator_running,
)

MESSAGES = [{"role": "user", "content": "Are you there?"}]
ANSWER = "Hello from the emulator. You said: Are you there?"
API_VERSION = "2024-10-21"
MODELS_VERSION = "2024-05-01-preview"
AUTH = {"type": "api-key", "key_env": EMULATOR_KEY_ENV}
MODELS = {
    # model -> [(account, deployment)]
    "deepseek": [("foundry-models", "DeepSeek-R1")],
    "cohere-embed": [("foundry-models", "embed-v-4-0")],
    "foundry-gpt": [("foundry-openai", "gpt-4o-dep")],
    "fallback": [("aoai", "busy-dep"), ("foundry-models", "Llama-3.3-70B-Instruct")],
    "mixed": [("foundry-models", "Phi-4"), ("aoai", "gpt-4o-dep")],
}


def foundry_config(idp: DevIdentityProvider, url: str) -> dict[str, Any]:
    accounts = [
        {"name": "foundry-models", "kind": "ai-foundry", "endpoint": url, "api_style": "models",
         "auth": AUTH},
        {"name": "foundry-openai", "kind": "ai-foundry", "endpoint": url, "auth": AUTH},
        {"name": "aoai", "kind": "azure-openai", "endpoint": url, "auth": AUTH},
    ]
    return {
        "identity_providers": [dev_provider(idp)],
        "accounts": accounts,
        "models": [{"name": name, "targets": [{"account": a, "deployment": d} for a, d in targets]}
                   for name, targets in MODELS.items()],
        "collaborators": [{"resource": f"model:{name}", "principal": "user:dev/alice", "role": "viewer"}
                          for name in MODELS],
    }


@pytest.fixture(scope="module")
def foundry(loop: BackgroundLoop) -> Iterator[AzureOpenAIEmulator]:
    with emulator_running(loop, 0.002) as server:
        yield server


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, foundry: AzureOpenAIEmulator) -> Iterator[World]:
    with new_world(config=foundry_config(idp, foundry.url), tokens={"alice": None},
                   env={"GATEWAY_ADMINS": "user:dev/root"}) as world:
        yield world


@pytest.fixture
def client(world: World, foundry: AzureOpenAIEmulator) -> Iterator[openai.OpenAI]:
    # max_retries=0: the test sees what the gateway answered, not the SDK's own retries
    with openai.OpenAI(base_url=world.url + "/v1", api_key=world.token, max_retries=0) as sdk:
        yield sdk
    foundry.faults.clear()


def direct_models(foundry: AzureOpenAIEmulator, op: str, body: dict[str, Any]) -> bytes:
    """The bytes the Model Inference API itself answers, asked as the gateway asks it."""
    answer = requests.post(f"{foundry.url}/models/{op}", params={"api-version": MODELS_VERSION}, json=body,
                           headers={"api-key": EMULATOR_KEY, "extra-parameters": "pass-through"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.content


def test_chat_reaches_the_model_inference_api(client: openai.OpenAI, foundry: AzureOpenAIEmulator) -> None:
    reply = client.chat.completions.create(model="deepseek", messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == ANSWER
    seen = foundry.requests[-1]
    assert (seen.path, seen.query) == ("/models/chat/completions", {"api-version": MODELS_VERSION})
    assert seen.json()["model"] == "DeepSeek-R1" and seen.json()["messages"] == MESSAGES
    assert seen.headers["extra-parameters"] == "pass-through"


def test_azure_route_reaches_it_too(world: World, foundry: AzureOpenAIEmulator) -> None:
    """The caller's Azure api-version is its own business: the Model Inference API gets its own."""
    with openai.AzureOpenAI(azure_endpoint=world.url, api_version=API_VERSION, api_key=world.token,
                            max_retries=0) as azure:
        reply = azure.chat.completions.create(model="deepseek", messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == ANSWER
    seen = foundry.requests[-1]
    assert (seen.path, seen.query["api-version"], seen.json()["model"]) == (
        "/models/chat/completions", MODELS_VERSION, "DeepSeek-R1")


def test_streamed_chat_is_what_the_model_streams(client: openai.OpenAI, foundry: AzureOpenAIEmulator) -> None:
    """The gateway asks for the stream's usage (passed through to the model); the caller's bytes do not
    show it."""
    with client.chat.completions.with_streaming_response.create(
            model="deepseek", messages=MESSAGES, stream=True) as response:  # type: ignore[arg-type]
        through = b"".join(response.iter_bytes())
    sent = foundry.requests[-1].json()
    assert sent["stream_options"] == {"include_usage": True}
    direct = direct_models(foundry, "chat/completions", {"model": "DeepSeek-R1", "messages": MESSAGES,
                                                         "stream": True})
    assert through == direct and b'"usage"' not in through and through.endswith(b"data: [DONE]\n\n")
    chunks = list(client.chat.completions.create(model="deepseek", messages=MESSAGES,  # type: ignore[arg-type]
                                                 stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_embeddings(client: openai.OpenAI, foundry: AzureOpenAIEmulator) -> None:
    texts = ["one two", "three"]
    answer = client.embeddings.create(model="cohere-embed", input=texts, encoding_format="float")
    seen = foundry.requests[-1]
    assert (seen.path, seen.json()["model"]) == ("/models/embeddings", "embed-v-4-0")
    direct = requests.post(f"{foundry.url}/models/embeddings", params={"api-version": MODELS_VERSION},
                           json={"model": "embed-v-4-0", "input": texts, "encoding_format": "float"},
                           headers={"api-key": EMULATOR_KEY}, timeout=10).json()
    assert [d.embedding for d in answer.data] == [d["embedding"] for d in direct["data"]]
    assert answer.usage.total_tokens == direct["usage"]["total_tokens"] == 3


def test_deployments_style_on_a_foundry_account(world: World, client: openai.OpenAI,
                                                foundry: AzureOpenAIEmulator) -> None:
    reply = client.chat.completions.create(model="foundry-gpt", messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == ANSWER
    seen = foundry.requests[-1]
    assert (seen.path, seen.query) == ("/openai/deployments/gpt-4o-dep/chat/completions",
                                       {"api-version": "2024-10-21"})
    assert "extra-parameters" not in seen.headers


@pytest.mark.parametrize(("call", "operation"), [
    (lambda c: c.completions.create(model="deepseek", prompt="hi"), "completions"),
    (lambda c: c.responses.create(model="deepseek", input="hi"), "responses"),
])
def test_an_operation_the_models_api_lacks_is_refused(client: openai.OpenAI, foundry: AzureOpenAIEmulator,
                                                      call: Any, operation: str) -> None:
    before = len(foundry.requests)
    with pytest.raises(openai.BadRequestError) as caught:
        call(client)
    error = caught.value.response.json()["error"]
    assert error["code"] == "invalid_request" and error["param"] == "model"
    assert error["message"] == (f"model 'deepseek' does not support {operation}; it supports "
                                "chat/completions and embeddings")
    assert len(foundry.requests) == before     # nothing was sent upstream


def test_a_mixed_model_sends_what_the_models_api_lacks_to_its_other_target(
        client: openai.OpenAI, foundry: AzureOpenAIEmulator) -> None:
    answer = client.completions.create(model="mixed", prompt="hi")
    assert answer.choices[0].text == "Hello from the emulator. You said: hi"
    assert [r.path for r in foundry.requests[-1:]] == ["/openai/deployments/gpt-4o-dep/completions"]
    client.chat.completions.create(model="mixed", messages=MESSAGES)  # type: ignore[arg-type]
    assert (foundry.requests[-1].path, foundry.requests[-1].json()["model"]) == ("/models/chat/completions",
                                                                                 "Phi-4")


def test_failover_from_azure_openai_to_foundry(client: openai.OpenAI, foundry: AzureOpenAIEmulator) -> None:
    foundry.faults.append(Fault(status=429, retry_after=3, deployment="busy-dep"))
    reply = client.chat.completions.create(model="fallback", messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == ANSWER
    first, second = foundry.requests[-2:]
    assert first.path == "/openai/deployments/busy-dep/chat/completions"
    assert (second.path, second.json()["model"]) == ("/models/chat/completions", "Llama-3.3-70B-Instruct")


def test_usage_is_recorded(new_world: NewWorld, idp: DevIdentityProvider, foundry: AzureOpenAIEmulator,
                           azurite: Azurite, loop: BackgroundLoop) -> None:
    """Counted from the model's own answers, a stream's included (its gateway's last flush on stopping)."""
    with new_world(config=foundry_config(idp, foundry.url), tokens={"alice": None}) as world, \
            openai.OpenAI(base_url=world.url + "/v1", api_key=world.token, max_retries=0) as client:
        plain = client.chat.completions.create(model="deepseek", messages=MESSAGES)  # type: ignore[arg-type]
        list(client.chat.completions.create(model="deepseek", messages=MESSAGES,  # type: ignore[arg-type]
                                            stream=True))
        embedded = client.embeddings.create(model="cohere-embed", input="one two")
        prefix = world.tables.prefix

    async def rows() -> list[dict[str, Any]]:
        async with TableServiceClient.from_connection_string(azurite.connection_string) as service:
            return await read_usage(service, prefix)

    counted = {r["model"]: (r["requests"], r["total_tokens"]) for r in loop.run(rows())}
    assert plain.usage is not None
    assert counted == {"deepseek": (2, 2 * plain.usage.total_tokens),
                       "cohere-embed": (1, embedded.usage.total_tokens)}


def test_manage_accepts_and_returns_the_api_style(world: World) -> None:
    api = world.api("root")
    body = {"kind": "ai-foundry", "endpoint": "https://acme.services.ai.azure.com", "api_style": "models",
            "auth": {"type": "managed-identity"}}
    created = api.put("accounts/foundry-new", body, headers={"If-None-Match": "*"})
    assert created.status_code == 201, created.text
    got = api.get("accounts/foundry-new").json()
    assert (got["api_style"], "api_version" in got) == ("models", False)   # its default is not written
    newer = api.put("accounts/foundry-new", {**body, "api_version": "2025-04-01"},
                    headers={"If-Match": created.headers["ETag"]})
    assert newer.status_code == 200 and api.get("accounts/foundry-new").json()["api_version"] == "2025-04-01"
    refused = api.put("accounts/aoai-models", {**body, "kind": "azure-openai",
                                               "endpoint": "https://acme.openai.azure.com"})
    error = refused.json()["error"]
    assert (refused.status_code, error["param"]) == (400, "api_style")
    assert "models is only for kind ai-foundry" in error["message"]
    assert api.get("accounts/aoai-models").status_code == 404


def test_the_model_inference_apis_own_refusal_reaches_the_caller_without_the_deployment(
        client: openai.OpenAI, foundry: AzureOpenAIEmulator) -> None:
    foundry.faults.append(Fault(status=400, message="Unknown model: {deployment}", deployment="DeepSeek-R1"))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="deepseek", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.response.json()["error"]["message"] == "Unknown model: deepseek"
