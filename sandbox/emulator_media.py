"""Azure OpenAI's image generation and edits, text to speech, transcription and translation for the
emulator, per deployment and on v1.

Images answer OpenAI's shape ({"created", "data": [{"b64_json" or "url", "revised_prompt"}]}), one item
per requested `n`. Edits, transcriptions and translations take a multipart form (read here with the
standard library's parser, not the gateway's); a v1 request names its deployment in the form's
`model`. A transcription's audio lasts one second per AUDIO_BYTES_PER_SECOND bytes of the file and is
answered per `response_format` (json with a duration `usage`, text, srt, vtt, or verbose_json with its
`duration`), or with `stream=true` as `transcript.text.delta` events and a `transcript.text.done` with a
token usage. Speech answers audio/mpeg bytes written in `pieces` chunks, `interval` apart; a test
may set `hold` (a threading.Event) to stop the audio after its first chunk until the event is set, to see
that a relay passes audio on before it has all of it. Both are deterministic functions of the request.
Development tooling only: never deployed, never imported by the gateway.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import hashlib
import json
import logging
import math
import re
import threading
from dataclasses import dataclass
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


FORM_OPERATIONS = ("images/edits", "audio/transcriptions", "audio/translations")
_FORM_ROUTE = re.compile(r"^/openai/(?:deployments/(?P<deployment>[^/]+)|v1)/"
                         r"(?P<op>images/edits|audio/transcriptions|audio/translations)$")
AUDIO_BYTES_PER_SECOND = 16_000
AUDIO_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")


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
    """The emulator's media operations; `produced` counts speech chunks and transcript events written,
    for tests."""

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
            return _refused(exc)
        return await self._speak(request, chunks, headers)

    async def form(self, request: web.BaseRequest, route: FormRoute, body: bytes,
                   headers: dict[str, str]) -> web.StreamResponse:
        """An image edit, transcription or translation, answered as Azure shapes it."""
        try:
            if not route.v1 and not request.query.get("api-version"):
                raise MediaRefused("Missing required query parameter api-version", "api-version")
            text, files = read_form(request.headers.get("Content-Type", ""), body)
            if route.v1 and not text.get("model", [""])[0]:
                raise MediaRefused("'model' is a required property", "model")
            if route.op == "images/edits":
                images = files.get("image", []) + files.get("image[]", [])
                if not images:
                    raise MediaRefused("'image' is a required property", "image")
                return web.Response(body=json.dumps(edited_images(text, images)).encode(),
                                    headers={"Content-Type": "application/json", **headers})
            if len(files.get("file", [])) != 1:
                raise MediaRefused("'file' is a required property", "file")
            upload = files["file"][0]
            if text.get("stream", ["false"])[0] == "true":
                return await self._events(request, transcript_events(route.op, text, upload), headers)
            content_type, answer = audio_answer(route.op, text, upload)
        except MediaRefused as exc:
            return _refused(exc)
        return web.Response(body=answer, headers={"Content-Type": content_type, **headers})

    async def _events(self, request: web.BaseRequest, events: list[bytes],
                      headers: dict[str, str]) -> web.StreamResponse:
        return await self._paced(request, events, {"Content-Type": "text/event-stream", **headers})

    async def _speak(self, request: web.BaseRequest, chunks: list[bytes],
                     headers: dict[str, str]) -> web.StreamResponse:
        return await self._paced(request, chunks, {"Content-Type": "audio/mpeg", **headers})

    async def _paced(self, request: web.BaseRequest, pieces: list[bytes],
                     headers: dict[str, str]) -> web.StreamResponse:
        """`pieces` written `interval` apart (held after the first while `hold` is unset)."""
        response = web.StreamResponse(headers=headers)
        try:
            await response.prepare(request)
            for index, piece in enumerate(pieces):
                if index:
                    await asyncio.sleep(self.interval)
                self.produced += 1      # before the write: the caller may read it before write returns
                await response.write(piece)
                if index == 0 and self.hold is not None:
                    await asyncio.to_thread(self.hold.wait, 30)
            await response.write_eof()
        except ConnectionError:
            log.debug("client went away mid-answer")
        return response


def _refused(exc: MediaRefused) -> web.Response:
    body = {"error": {"code": "invalid_request_error", "message": exc.message, "param": exc.param,
                      "type": "invalid_request_error"}}
    return web.Response(status=400, body=json.dumps(body).encode(),
                        headers={"Content-Type": "application/json"})


@dataclass(frozen=True)
class FormRoute:
    op: str
    deployment: str | None      # from the path; on v1, the form's `model`

    @property
    def v1(self) -> bool:
        return self.deployment is None


def form_route(path: str) -> FormRoute | None:
    match = _FORM_ROUTE.match(path)
    return FormRoute(match["op"], match["deployment"]) if match else None


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


def read_form(content_type: str, body: bytes) -> tuple[dict[str, list[str]], dict[str, list[Upload]]]:
    """A multipart form's text fields and files, each name with all its values in order."""
    if not content_type.startswith("multipart/form-data"):
        raise MediaRefused("the body must be multipart/form-data", "file")
    message = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body,
                                       policy=email.policy.HTTP)
    if not message.is_multipart():
        raise MediaRefused("the multipart body could not be read", "file")
    text: dict[str, list[str]] = {}
    files: dict[str, list[Upload]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            raise MediaRefused("a form part has no name", "file")
        filename = part.get_filename()
        if filename is None:
            text.setdefault(name, []).append(payload.decode())
        else:
            files.setdefault(name, []).append(Upload(filename, part.get_content_type(), payload))
    return text, files


def form_deployment(route: FormRoute, content_type: str, body: bytes) -> str:
    """The deployment a form request is for (the path's, or on v1 the form's `model`)."""
    if route.deployment is not None:
        return route.deployment
    try:
        text, _ = read_form(content_type, body)
    except MediaRefused:
        return ""
    return text.get("model", [""])[0]


def transcript(op: str, upload: Upload, prompt: str | None) -> tuple[str, float]:
    """The text and duration (seconds) of an audio file: deterministic functions of it."""
    verb = "Translation" if op == "audio/translations" else "Transcript"
    digest = hashlib.sha256(upload.data).hexdigest()[:8]
    text = f"{verb} of {upload.filename} {digest}" + (f" after {prompt}" if prompt else "")
    return text, round(len(upload.data) / AUDIO_BYTES_PER_SECOND, 2)


def _timestamp(seconds: float, separator: str) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}{separator}" \
        f"{int(round(seconds - whole, 3) * 1000):03d}"


def audio_answer(op: str, text: dict[str, list[str]], upload: Upload) -> tuple[str, bytes]:
    """(content type, body) of a transcription or translation per its response_format."""
    said, duration = transcript(op, upload, text.get("prompt", [None])[0])
    fmt = text.get("response_format", ["json"])[0]
    if fmt not in AUDIO_FORMATS:
        raise MediaRefused("'response_format' must be one of " + ", ".join(AUDIO_FORMATS), "response_format")
    if fmt == "json":
        usage = {"type": "duration", "seconds": math.ceil(duration)}
        return "application/json", json.dumps({"text": said, "usage": usage}).encode()
    if fmt == "verbose_json":
        task = "translate" if op == "audio/translations" else "transcribe"
        segment = {"id": 0, "seek": 0, "start": 0.0, "end": duration, "text": said, "tokens": [1, 2],
                   "temperature": 0.0, "avg_logprob": -0.1, "compression_ratio": 1.0, "no_speech_prob": 0.0}
        return "application/json", json.dumps({
            "task": task, "language": "english", "duration": duration, "text": said,
            "segments": [segment]}).encode()
    if fmt == "text":
        return "text/plain; charset=utf-8", f"{said}\n".encode()
    if fmt == "srt":
        return "text/plain; charset=utf-8", \
            f"1\n{_timestamp(0, ',')} --> {_timestamp(duration, ',')}\n{said}\n\n".encode()
    return "text/plain; charset=utf-8", \
        f"WEBVTT\n\n{_timestamp(0, '.')} --> {_timestamp(duration, '.')}\n{said}\n\n".encode()


def transcript_events(op: str, text: dict[str, list[str]], upload: Upload) -> list[bytes]:
    """A streamed transcription: the text word by word, then the whole text with a token usage."""
    said, duration = transcript(op, upload, text.get("prompt", [None])[0])
    words = said.split(" ")
    events = [{"type": "transcript.text.delta", "delta": word if i == 0 else " " + word, "logprobs": None}
              for i, word in enumerate(words)]
    audio_tokens = max(1, math.ceil(duration * 10))
    events.append({"type": "transcript.text.done", "text": said, "logprobs": None,
                   "usage": {"type": "tokens", "input_tokens": audio_tokens, "output_tokens": len(words),
                             "total_tokens": audio_tokens + len(words),
                             "input_token_details": {"audio_tokens": audio_tokens, "text_tokens": 0}}})
    return [b"data: " + json.dumps(event).encode() + b"\n\n" for event in events]


def edited_images(text: dict[str, list[str]], images: list[Upload]) -> dict[str, Any]:
    """The edited images: one per requested `n`, a function of the prompt and the input images."""
    prompt = text.get("prompt", [""])[0]
    if not prompt:
        raise MediaRefused("'prompt' is a required property", "prompt")
    n = text.get("n", ["1"])[0]
    if not n.isdigit() or not 1 <= int(n) <= 10:
        raise MediaRefused("'n' must be between 1 and 10", "n")
    seed = edit_seed(prompt, [i.data for i in images])
    data = [{"b64_json": base64.b64encode(image_bytes(seed, index)).decode()} for index in range(int(n))]
    words = len(prompt.split())
    return {"created": CREATED, "data": data,
            "usage": {"input_tokens": words + 100 * len(images), "output_tokens": 200 * int(n),
                      "total_tokens": words + 100 * len(images) + 200 * int(n),
                      "input_tokens_details": {"text_tokens": words, "image_tokens": 100 * len(images)}}}


def edit_seed(prompt: str, images: list[bytes]) -> str:
    """What an edit's images are generated from (for tests comparing them)."""
    return prompt + ":" + ",".join(hashlib.sha256(i).hexdigest()[:8] for i in images)
