"""Image generation and speech through the gateway with the openai SDK: JSON images relayed, audio relayed
as it arrives (the first chunk reaches the caller before the upstream has produced the last), the
model's role checked as for every model request, and the Model Inference API refusing both."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator

import openai
import pytest
import requests

from sandbox.emulator import AzureOpenAIEmulator
from sandbox.emulator_media import FRAME_HEADER, image_bytes
from sandbox.idp import DevIdentityProvider
from tests.harness import DEVELOPER, EMULATOR_KEY_ENV, NewWorld, World, sandbox_config, sdk_client

API_VERSION = "2025-04-01-preview"
SHAPES = ["v1", "openai_v1", "azure"]


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> Iterator[World]:
    config = sandbox_config(idp, emulator)
    auth = {"type": "api-key", "key_env": EMULATOR_KEY_ENV}
    config["accounts"].append({"name": "foundry", "kind": "ai-foundry", "endpoint": emulator.url,
                               "api_style": "models", "auth": auth})
    config["models"].append({"name": "phi", "targets": [{"account": "foundry", "deployment": "Phi-4"}]})
    config["collaborators"].append({"resource": "model:phi", "principal": "identity:developers",
                                    "role": "viewer"})
    with new_world(config=config, tokens={"alice": DEVELOPER, "eve": None}) as world:
        yield world


def client(world: World, who: str = "alice", shape: str = "v1") -> openai.OpenAI:
    return sdk_client(world, who, shape, api_version=API_VERSION)


UPSTREAM = "/openai/deployments/gpt-4o-dep/"
"""Whatever shape the caller used, the account's style (deployments) decides the upstream path."""


@pytest.mark.parametrize("shape", SHAPES)
def test_images_are_generated(world: World, shape: str) -> None:
    with client(world, shape=shape) as c:
        images = c.images.generate(model="gpt-4o", prompt="a lighthouse at dusk", n=2)
    assert [base64.b64decode(i.b64_json) for i in images.data] == \
        [image_bytes("a lighthouse at dusk", 0), image_bytes("a lighthouse at dusk", 1)]
    assert images.data[0].revised_prompt == "A picture of a lighthouse at dusk"
    assert world.emulator.requests[-1].path == UPSTREAM + "images/generations"


@pytest.mark.parametrize("shape", SHAPES)
def test_speech_arrives_in_pieces(world: World, shape: str) -> None:
    media = world.emulator.media
    before, media.hold = media.produced, threading.Event()
    try:
        with client(world, shape=shape) as c, c.audio.speech.with_streaming_response.create(
                model="gpt-4o", voice="alloy", input="Hello there") as response:
            assert response.headers["content-type"] == "audio/mpeg"
            assert "content-length" not in response.headers
            pieces = response.iter_bytes()
            first = next(pieces)
            # The rest is held upstream until the caller has the first chunk.
            assert first.startswith(FRAME_HEADER) and media.produced == before + 1
            media.hold.set()
            audio = first + b"".join(pieces)
    finally:
        media.hold.set()
        media.hold = None
    assert media.produced == before + media.pieces and audio.count(FRAME_HEADER) == media.pieces
    assert world.emulator.requests[-1].path == UPSTREAM + "audio/speech"


@pytest.mark.parametrize("call", [
    lambda c: c.images.generate(model="gpt-4o", prompt="a cat"),
    lambda c: c.audio.speech.create(model="gpt-4o", voice="alloy", input="hi").read(),
])
def test_a_caller_without_a_role_gets_model_not_found(world: World, call: object) -> None:
    with client(world, "eve") as c, pytest.raises(openai.NotFoundError) as caught:
        call(c)  # type: ignore[operator]
    assert caught.value.body["code"] == "model_not_found"


@pytest.mark.parametrize("operation", ["images/generations", "audio/speech"])
def test_the_model_inference_api_serves_neither(world: World, operation: str) -> None:
    sent = len(world.emulator.requests)
    answer = requests.post(f"{world.url}/v1/{operation}", json={"model": "phi", "prompt": "x", "input": "x"},
                           headers={"Authorization": f"Bearer {world.tokens['alice']}"}, timeout=30)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["message"] == (f"model 'phi' does not support {operation}; it supports "
                                                 "chat/completions and embeddings")
    assert len(world.emulator.requests) == sent


@pytest.mark.parametrize("path", ["/openai/deployments/gpt-4o/images/variations?api-version=" + API_VERSION,
                                  "/openai/v1/audio/voices", "/openai/v1/images/variations"])
def test_an_unknown_operation_is_still_not_found(world: World, path: str) -> None:
    sent = len(world.emulator.requests)
    answer = requests.post(world.url + path, json={"model": "gpt-4o", "prompt": "x"},
                           headers={"Authorization": f"Bearer {world.tokens['alice']}"}, timeout=30)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "not_found"
    assert len(world.emulator.requests) == sent
