"""Azure OpenAI's image generation and text to speech for the emulator, per deployment and on v1.

Images answer OpenAI's shape ({"created", "data": [{"b64_json" or "url", "revised_prompt"}]}), one item
per requested `n`. Speech answers audio/mpeg bytes written in `pieces` chunks, `interval` apart; a test
may set `hold` (a threading.Event) to stop the audio after its first chunk until the event is set, to see
that a relay passes audio on before it has all of it. Both are deterministic functions of the request.
Development tooling only: never deployed, never imported by the gateway.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import threading
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

CREATED = 1700000000
OPERATIONS = ("images/generations", "audio/speech")
RESPONSE_FORMATS = ("b64_json", "url")
VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer",
                    "verse"})
# An MPEG audio frame header (MPEG-1 layer III, 128 kbit/s, 44.1 kHz): what an audio/mpeg body starts with.
FRAME_HEADER = b"\xff\xfb\x90\x64"


class MediaRefused(Exception):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message, self.param = message, param


def image_bytes(prompt: str, index: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + hashlib.sha256(f"{index}:{prompt}".encode()).digest()


def images(payload: dict[str, Any]) -> dict[str, Any]:
    """The generated images' description; 400 without a prompt or with an unknown format."""
    prompt, n = payload.get("prompt"), payload.get("n", 1)
    if not isinstance(prompt, str) or not prompt:
        raise MediaRefused("'prompt' is a required property", "prompt")
    if not isinstance(n, int) or not 1 <= n <= 10:
        raise MediaRefused("'n' must be between 1 and 10", "n")
    fmt = payload.get("response_format", "b64_json")
    if fmt not in RESPONSE_FORMATS:
        raise MediaRefused("'response_format' must be b64_json or url", "response_format")
    data = []
    for index in range(n):
        picture = image_bytes(prompt, index)
        item = {"b64_json": base64.b64encode(picture).decode()} if fmt == "b64_json" else \
            {"url": f"https://images.example.invalid/{hashlib.sha256(picture).hexdigest()}.png"}
        data.append({**item, "revised_prompt": f"A picture of {prompt}"})
    return {"created": CREATED, "data": data}


def speech_bytes(payload: dict[str, Any], pieces: int) -> list[bytes]:
    """The audio for a request, in `pieces` chunks; 400 without input or with an unknown voice."""
    text, voice = payload.get("input"), payload.get("voice")
    if not isinstance(text, str) or not text:
        raise MediaRefused("'input' is a required property", "input")
    if voice not in VOICES:
        raise MediaRefused("'voice' must be one of " + ", ".join(sorted(VOICES)), "voice")
    seed = json.dumps([text, voice, payload.get("speed", 1.0)]).encode()
    return [FRAME_HEADER + hashlib.sha256(seed + bytes([i])).digest() * 8 for i in range(pieces)]


class Media:
    """The emulator's media operations; `produced` counts speech chunks written, for tests."""

    def __init__(self, pieces: int = 4, interval: float = 0.05) -> None:
        self.pieces, self.interval = pieces, interval
        self.hold: threading.Event | None = None
        self.produced = 0

    async def answer(self, request: web.BaseRequest, op: str, payload: dict[str, Any],
                     headers: dict[str, str]) -> web.StreamResponse:
        try:
            if op == "images/generations":
                return web.Response(body=json.dumps(images(payload)).encode(),
                                    headers={"Content-Type": "application/json", **headers})
            chunks = speech_bytes(payload, self.pieces)
        except MediaRefused as exc:
            body = {"error": {"code": "invalid_request_error", "message": exc.message, "param": exc.param,
                              "type": "invalid_request_error"}}
            return web.Response(status=400, body=json.dumps(body).encode(),
                                headers={"Content-Type": "application/json"})
        return await self._speak(request, chunks, headers)

    async def _speak(self, request: web.BaseRequest, chunks: list[bytes],
                     headers: dict[str, str]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "audio/mpeg", **headers})
        try:
            await response.prepare(request)
            for index, chunk in enumerate(chunks):
                if index:
                    await asyncio.sleep(self.interval)
                await response.write(chunk)
                self.produced += 1
                if index == 0 and self.hold is not None:
                    await asyncio.to_thread(self.hold.wait, 30)
            await response.write_eof()
        except ConnectionError:
            log.debug("client went away mid-speech")
        return response
