"""Image edits, transcriptions and translations through the gateway with the official openai SDK: the
multipart form read strictly and written anew for each target, the model's role checked as for every
model request, failover rebuilding the form for the next target's API style, answers relayed in the
shape asked for (a streamed transcript as it arrives), and images and audio seconds counted as usage.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import math
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import requests

from sandbox.emulator import AzureOpenAIEmulator, Fault, RecordedRequest
from sandbox.emulator_media import AUDIO_BYTES_PER_SECOND, edit_seed, image_bytes
from sandbox.idp import DevIdentityProvider
from tests.harness import DEVELOPER, EMULATOR_KEY_ENV, ROOT, NewWorld, World, sandbox_config, sdk_client

API_VERSION = "2025-04-01-preview"
SHAPES = ["v1", "openai_v1", "azure"]
AUDIO = bytes(range(256)) * 150          # 38,400 bytes: 2.4 seconds of the emulator's audio
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x01" * 500
LIMIT = 262_144
SPEAKER_TOKENS = 50


@pytest.fixture(scope="module")
def world(new_world: NewWorld, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator) -> Iterator[World]:
    config = sandbox_config(idp, emulator)
    auth = {"type": "api-key", "key_env": EMULATOR_KEY_ENV}
    config["accounts"] += [
        {"name": "emulator-v1", "kind": "azure-openai", "endpoint": emulator.url, "api_style": "v1",
         "auth": auth},
        {"name": "foundry", "kind": "ai-foundry", "endpoint": emulator.url, "api_style": "models",
         "auth": auth}]
    config["models"] += [
        {"name": "whisper", "targets": [{"account": "emulator", "deployment": "whisper-dep"}]},
        {"name": "fallback", "targets": [{"account": "emulator", "deployment": "dep-a"},
                                         {"account": "emulator-v1", "deployment": "dep-b"}]},
        {"name": "v1only", "targets": [{"account": "emulator-v1", "deployment": "whisper-v1"}]},
        {"name": "speaker", "targets": [{"account": "emulator", "deployment": "tts-dep"}]},
        {"name": "phi", "targets": [{"account": "foundry", "deployment": "Phi-4"}]}]
    config["collaborators"] += [{"resource": f"model:{name}", "principal": "identity:developers",
                                 "role": "viewer"} for name in ("whisper", "fallback", "v1only", "speaker",
                                                                "phi")]
    config["rate_limits"] = [{"name": "speaker-tokens", "when": {"models": {"in": ["speaker"]}},
                              "per": ["user"], "limits": [{"tokens": SPEAKER_TOKENS, "per": "minute"}]}]
    with new_world(config=config, env={"GATEWAY_MAX_BODY_BYTES": str(LIMIT)},
                   tokens={"alice": DEVELOPER, "carol": DEVELOPER, "eve": None}) as world:
        yield world


def client(world: World, who: str = "alice", shape: str = "v1") -> openai.OpenAI:
    return sdk_client(world, who, shape, api_version=API_VERSION)


def form_of(sent: RecordedRequest) -> tuple[dict[str, list[str]], dict[str, list[bytes]]]:
    """What the upstream received, read with the standard library's parser (not the gateway's)."""
    message = email.message_from_bytes(f"Content-Type: {sent.headers['content-type']}\r\n\r\n".encode()
                                       + sent.body, policy=email.policy.HTTP)
    text: dict[str, list[str]] = {}
    files: dict[str, list[bytes]] = {}
    for part in message.iter_parts():
        name, payload = part.get_param("name", header="content-disposition"), part.get_payload(decode=True)
        if part.get_filename() is None:
            text.setdefault(name, []).append(payload.decode())
        else:
            files.setdefault(name, []).append(payload)
    return text, files


def transcript(name: str, data: bytes = AUDIO, verb: str = "Transcript") -> str:
    return f"{verb} of {name} {hashlib.sha256(data).hexdigest()[:8]}"


@pytest.mark.parametrize("shape", SHAPES)
def test_a_transcription_on_each_shape(world: World, shape: str) -> None:
    with client(world, shape=shape) as c:
        done = c.audio.transcriptions.create(model="whisper", file=("hello.wav", AUDIO, "audio/wav"),
                                             language="en", timestamp_granularities=["word", "segment"],
                                             response_format="verbose_json")
    assert done.text == transcript("hello.wav") and done.duration == 2.4
    sent = world.emulator.requests[-1]
    assert sent.path == "/openai/deployments/whisper-dep/audio/transcriptions"
    text, files = form_of(sent)
    # No `model`: the deployment is in the path; the gateway's own boundary; the file's bytes intact.
    assert text == {"language": ["en"], "timestamp_granularities[]": ["word", "segment"],
                    "response_format": ["verbose_json"]}
    assert files == {"file": [AUDIO]} and int(sent.headers["content-length"]) == len(sent.body)


@pytest.mark.parametrize("shape", SHAPES)
def test_a_translation_on_each_shape(world: World, shape: str) -> None:
    with client(world, shape=shape) as c:
        done = c.audio.translations.create(model="whisper", file=("bonjour.mp3", AUDIO, "audio/mpeg"),
                                           prompt="A greeting.\nIn French.")
    assert done.text == transcript("bonjour.mp3", verb="Translation") + " after A greeting.\nIn French."
    sent = world.emulator.requests[-1]
    assert sent.path == "/openai/deployments/whisper-dep/audio/translations"
    assert form_of(sent) == ({"prompt": ["A greeting.\nIn French."]}, {"file": [AUDIO]})


@pytest.mark.parametrize("shape", SHAPES)
def test_an_image_edit_on_each_shape(world: World, shape: str) -> None:
    second = PNG + b"second"
    with client(world, shape=shape) as c:
        edited = c.images.edit(model="gpt-4o", prompt="add a hat", n=2, size="1024x1024",
                               image=[("a.png", PNG, "image/png"), ("b.png", second, "image/png")])
    seed = edit_seed("add a hat", [PNG, second])
    assert [base64.b64decode(i.b64_json) for i in edited.data] == [image_bytes(seed, 0), image_bytes(seed, 1)]
    sent = world.emulator.requests[-1]
    assert sent.path == "/openai/deployments/gpt-4o-dep/images/edits"
    assert form_of(sent) == ({"prompt": ["add a hat"], "n": ["2"], "size": ["1024x1024"]},
                             {"image[]": [PNG, second]})


def test_one_image_and_a_mask(world: World) -> None:
    with client(world) as c:
        edited = c.images.edit(model="gpt-4o", image=("a.png", PNG, "image/png"),
                               mask=("m.png", PNG + b"mask", "image/png"), prompt="paint it")
    assert base64.b64decode(edited.data[0].b64_json) == image_bytes(edit_seed("paint it", [PNG]), 0)
    assert form_of(world.emulator.requests[-1])[1] == {"image": [PNG], "mask": [PNG + b"mask"]}


AUDIO_SECONDS = len(AUDIO) / AUDIO_BYTES_PER_SECOND


@pytest.mark.parametrize(("fmt", "expected"), [
    ("text", transcript("a.wav") + "\n"),
    ("srt", f"1\n00:00:00,000 --> 00:00:02,400\n{transcript('a.wav')}\n\n"),
    ("vtt", f"WEBVTT\n\n00:00:00.000 --> 00:00:02.400\n{transcript('a.wav')}\n\n"),
])
def test_text_formats_are_relayed_as_they_are(world: World, fmt: str, expected: str) -> None:
    with client(world) as c:
        done = c.audio.transcriptions.with_raw_response.create(model="whisper", file=("a.wav", AUDIO),
                                                               response_format=fmt)
    assert done.http_response.text == expected
    assert done.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("shape", SHAPES)
def test_a_streamed_transcription_is_relayed_as_it_arrives(world: World, shape: str) -> None:
    with client(world, shape=shape) as c:
        stream = c.audio.transcriptions.create(model="whisper", file=("a.wav", AUDIO), stream=True)
        events = list(stream)
    words = transcript("a.wav").split(" ")
    assert [e.type for e in events] == ["transcript.text.delta"] * len(words) + ["transcript.text.done"]
    assert "".join(e.delta for e in events[:-1]) == events[-1].text == transcript("a.wav")
    assert events[-1].usage.input_tokens == math.ceil(AUDIO_SECONDS * 10)
    assert form_of(world.emulator.requests[-1])[0] == {"stream": ["true"]}


def test_a_streamed_transcript_arrives_in_pieces(world: World) -> None:
    media = world.emulator.media
    before, media.hold = media.produced, threading.Event()
    try:
        with client(world) as c:
            stream = c.audio.transcriptions.create(model="whisper", file=("a.wav", AUDIO), stream=True)
            first = next(iter(stream))
            # The rest is held upstream until the caller has the first event.
            assert first.type == "transcript.text.delta" and media.produced == before + 1
            media.hold.set()
            rest = list(stream)
    finally:
        media.hold.set()
        media.hold = None
    assert rest[-1].type == "transcript.text.done" and media.produced == before + 1 + len(rest)


def test_a_v1_account_gets_its_deployment_as_the_form_model(world: World) -> None:
    with client(world, shape="azure") as c:       # the caller's shape does not choose the upstream's
        done = c.audio.transcriptions.create(model="v1only", file=("a.wav", AUDIO))
    assert done.text == transcript("a.wav")
    sent = world.emulator.requests[-1]
    assert (sent.path, sent.query) == ("/openai/v1/audio/transcriptions", {})
    assert form_of(sent) == ({"model": ["whisper-v1"]}, {"file": [AUDIO]})


def test_failover_writes_the_form_anew_for_the_next_target(world: World) -> None:
    world.emulator.faults.append(Fault(status=500, deployment="dep-a"))
    sent = len(world.emulator.requests)
    with client(world) as c:
        done = c.audio.transcriptions.create(model="fallback", file=("a.wav", AUDIO), language="de")
    assert done.text == transcript("a.wav")
    first, second = world.emulator.requests[sent:]
    assert first.path == "/openai/deployments/dep-a/audio/transcriptions"
    assert form_of(first) == ({"language": ["de"]}, {"file": [AUDIO]})
    assert second.path == "/openai/v1/audio/transcriptions"
    assert form_of(second) == ({"model": ["dep-b"], "language": ["de"]}, {"file": [AUDIO]})
    assert first.headers["content-type"] != second.headers["content-type"]    # a boundary each


def post(world: World, path: str, parts: list[tuple[str, Any]], who: str = "alice",
         **params: str) -> requests.Response:
    """A multipart POST as the caller writes it (requests' own encoder), each part a (name, value)
    pair: a string, or (filename, bytes) for a file."""
    files = [(name, (None, value) if isinstance(value, str) else value) for name, value in parts]
    return requests.post(world.url + path, files=files, params=params, timeout=30,
                         headers={"Authorization": f"Bearer {world.tokens[who]}"})


def refused_upstream(world: World, answer: requests.Response, sent: int, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert len(world.emulator.requests) == sent
    error: dict[str, Any] = answer.json()["error"]
    return error


AUDIO_PART = ("file", ("a.wav", AUDIO))


@pytest.mark.parametrize(("who", "model"), [("eve", "whisper"), ("alice", "secret-model"),
                                            ("alice", "no-such-model")])
@pytest.mark.parametrize("shape", SHAPES)
def test_a_model_without_a_role_is_not_found(world: World, who: str, model: str, shape: str) -> None:
    sent = len(world.emulator.requests)
    with client(world, who, shape) as c, pytest.raises(openai.NotFoundError) as caught:
        c.audio.transcriptions.create(model=model, file=("a.wav", AUDIO))
    assert caught.value.body["code"] == "model_not_found"
    assert len(world.emulator.requests) == sent


@pytest.mark.parametrize("named", ["secret-model", "gpt-4o"])
def test_a_deployments_path_decides_the_model(world: World, named: str) -> None:
    """The form's `model` may only repeat the path's model: never a way to another model's role."""
    sent = len(world.emulator.requests)
    answer = post(world, "/openai/deployments/whisper/audio/transcriptions", [("model", named), AUDIO_PART],
                  **{"api-version": API_VERSION})
    error = refused_upstream(world, answer, sent, 400)
    assert error["param"] == "model" and error["message"] == (
        "the form's 'model' must be the path's model, or be left out")


def test_a_deployments_path_needs_no_form_model(world: World) -> None:
    answer = post(world, "/openai/deployments/whisper/audio/transcriptions", [AUDIO_PART],
                  **{"api-version": API_VERSION})
    assert answer.status_code == 200 and answer.json()["text"] == transcript("a.wav")


def test_a_body_over_the_limit_is_refused(world: World) -> None:
    sent = len(world.emulator.requests)
    too_long = ("file", ("a.wav", b"x" * LIMIT))
    answer = post(world, "/v1/audio/transcriptions", [("model", "whisper"), too_long])
    assert refused_upstream(world, answer, sent, 413)["code"] == "request_too_large"


IMAGE = ("image", ("a.png", PNG))
EDIT = [("model", "gpt-4o"), ("prompt", "a hat")]


@pytest.mark.parametrize(("path", "parts", "param", "message"), [
    ("audio/transcriptions", [("model", "whisper"), ("language", "en"), ("language", "de"), AUDIO_PART],
     "language", "the form field 'language' is given more than once"),
    ("audio/transcriptions", [("model", "whisper"), AUDIO_PART, AUDIO_PART], "file",
     "the form has more than one 'file'"),
    ("audio/transcriptions", [("model", "whisper")], "file", "the form has no 'file'"),
    ("audio/transcriptions", [("model", "whisper"), ("file", "not a file")], "file",
     "the form field 'file' must be a file (with a filename)"),
    ("audio/transcriptions", [AUDIO_PART], "model", "the form has no 'model'"),
    ("audio/transcriptions", [("model", "whisper"), ("response_format", "mp3"), AUDIO_PART],
     "response_format", "'response_format' must be one of diarized_json, json, srt, text, verbose_json, vtt"),
    ("audio/transcriptions", [("model", "whisper"), ("stream", "yes"), AUDIO_PART], "stream",
     "'stream' must be one of false, true"),
    ("audio/transcriptions", [("model", "whisper"), ("prompt", "x" * 8193), AUDIO_PART], "prompt",
     "the form field 'prompt' is longer than 8192 bytes"),
    ("audio/translations", [("model", "whisper"), ("language", "en"), AUDIO_PART], None, None),
    ("images/edits", [*EDIT, ("colour", "red"), IMAGE], None, None),
    ("images/edits", [*EDIT, ("svg[model]", "secret-model"), IMAGE], None, None),
    ("images/edits", [*EDIT, ("mask", ("m.png", PNG)), ("mask", ("m.png", PNG)), IMAGE], "mask",
     "the form has more than one 'mask'"),
    ("images/edits", [*EDIT, *[("image[]", ("a.png", PNG))] * 17], "image[]",
     "the form has more than 16 'image[]'"),
    ("images/edits", [*EDIT, IMAGE, ("image[]", ("b.png", PNG))], "image",
     "give the images as 'image' or as 'image[]', not both"),
    ("images/edits", EDIT, "image", "the form has no 'image'"),
    ("images/edits", [("model", "gpt-4o"), IMAGE], "prompt", "the form has no 'prompt'"),
])
def test_a_malformed_form_is_refused_naming_the_field(world: World, path: str, parts: list[tuple[str, Any]],
                                                      param: str | None, message: str | None) -> None:
    sent = len(world.emulator.requests)
    error = refused_upstream(world, post(world, "/v1/" + path, parts), sent, 400)
    assert error["code"] == "invalid_request" and error["param"] == param
    if message is not None:
        assert error["message"] == message
    else:   # a field the gateway does not take: the ones it takes are listed, the caller's is not echoed
        assert error["message"].startswith("the form has a field the gateway does not accept; it accepts ")
        assert "colour" not in error["message"] and "svg" not in error["message"]


def test_a_body_that_is_not_a_form_is_refused(world: World) -> None:
    sent = len(world.emulator.requests)
    answer = requests.post(world.url + "/v1/audio/transcriptions", json={"model": "whisper"}, timeout=30,
                           headers={"Authorization": f"Bearer {world.tokens['alice']}"})
    assert refused_upstream(world, answer, sent, 400)["message"] == "the body must be multipart/form-data"


@pytest.mark.parametrize("path", ["audio/transcriptions", "audio/translations", "images/edits"])
def test_the_model_inference_api_serves_none(world: World, path: str) -> None:
    sent = len(world.emulator.requests)
    parts = [("model", "phi"), ("prompt", "x"), IMAGE if path == "images/edits" else AUDIO_PART]
    error = refused_upstream(world, post(world, "/v1/" + path, parts), sent, 400)
    assert error["message"] == (f"model 'phi' does not support {path}; it supports chat/completions and "
                                "embeddings")


@pytest.mark.parametrize("path", ["/v1/images/variations", "/openai/v1/images/variations",
                                  f"/openai/deployments/gpt-4o/images/variations?api-version={API_VERSION}"])
def test_image_variations_are_not_served(world: World, path: str) -> None:
    """Azure serves no image variations, on any surface."""
    sent = len(world.emulator.requests)
    answer = post(world, path, [("model", "gpt-4o"), IMAGE])
    assert refused_upstream(world, answer, sent, 404)["code"] == "not_found"


def test_media_usage_is_counted(world: World) -> None:
    """Carol's images, audio seconds and speech characters, as /manage/usage shows them to her."""
    with client(world, "carol") as c:
        edited = c.images.edit(model="gpt-4o", image=("a.png", PNG), prompt="one two three", n=3)
        c.audio.transcriptions.create(model="whisper", file=("a.wav", AUDIO))                 # usage: 3 s
        c.audio.translations.create(model="whisper", file=("a.wav", AUDIO * 2),
                                    response_format="verbose_json")                          # duration 4.8 s
        c.audio.transcriptions.create(model="whisper", file=("a.wav", AUDIO), response_format="text")
        c.audio.speech.create(model="gpt-4o", voice="alloy", input="Hello there").read()
    answer = world.api("carol").get("usage", params={"group_by": "model"})
    assert answer.status_code == 200, answer.text
    rows = {r["model"]: r for r in answer.json()["data"]}
    assert (rows["gpt-4o"]["requests"], rows["gpt-4o"]["images"], rows["gpt-4o"]["speech_characters"]) == (
        2, 3, len("Hello there"))
    assert rows["gpt-4o"]["total_tokens"] == edited.usage.total_tokens
    assert (rows["whisper"]["requests"], rows["whisper"]["audio_seconds"], rows["whisper"]["images"]) == (
        3, math.ceil(AUDIO_SECONDS) + math.ceil(2 * AUDIO_SECONDS), 0)
    done = subprocess.run([sys.executable, "-m", "shared", "usage", "--by", "user,model"], cwd=ROOT,
                          text=True, capture_output=True, env={**os.environ, **world.env}, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header.split()[-3:] == ["images", "audio_seconds", "speech_characters"]
    assert next(line.split() for line in lines if "carol" in line and "whisper" in line)[-3:] == [
        "0", str(rows["whisper"]["audio_seconds"]), "0"]


def test_speech_reserves_no_tokens(world: World) -> None:
    """A media request's tokens cannot be estimated from its body: it reserves none, so a long input
    is not refused by a token limit it would not use (its answer reports no tokens either)."""
    text = "word " * SPEAKER_TOKENS * 2
    with client(world) as c:
        for _ in range(3):
            with c.audio.speech.with_streaming_response.create(model="speaker", voice="alloy",
                                                               input=text) as response:
                assert response.read().startswith(b"\xff")
                assert response.headers["x-ratelimit-limit-tokens"] == str(SPEAKER_TOKENS)
                assert response.headers["x-ratelimit-remaining-tokens"] == str(SPEAKER_TOKENS)


@pytest.mark.parametrize("shape", ["v1", "azure"])
def test_media_under_the_functions_host(new_world: NewWorld, shape: str) -> None:
    with new_world(host="functions") as world, client(world, shape=shape) as c:
        done = c.audio.transcriptions.create(model="gpt-4o", file=("a.wav", AUDIO), response_format="srt")
        edited = c.images.edit(model="gpt-4o", image=("a.png", PNG), prompt="a hat")
    assert done == f"1\n00:00:00,000 --> 00:00:02,400\n{transcript('a.wav')}\n\n"
    assert base64.b64decode(edited.data[0].b64_json) == image_bytes(edit_seed("a hat", [PNG]), 0)
