"""An Azure OpenAI data-plane emulator on a real loopback socket, the upstream for tests and the sandbox.

It serves the Azure OpenAI surface (/openai/deployments/..., /openai/v1/...) and a Foundry resource's
Azure AI Model Inference API (/models/chat/completions, /models/embeddings, GET /models/info: the
deployment named in the body's `model`, api-versions of its own, and the `extra-parameters` header
deciding what becomes of parameters that API does not define).

Answers are deterministic functions of the request body without its `model` and `stream_options`
members, so a test can call the emulator directly and through the gateway and compare the bytes. Faults
(statuses, delays, dropped streams, and a hostile upstream's headers, redirects and bodies) are queued
by tests to exercise the gateway's error paths.
Development tooling only: never deployed, never imported by the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import hashlib
import json
import logging
import re
import signal
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import emulator_batches, emulator_files, emulator_media, emulator_vector_stores
from .emulator_responses import Replay, StoredResponses, by_id

log = logging.getLogger(__name__)

CREATED = 1700000000
"""Every `created`/`created_at` is this constant, so answers do not depend on the clock."""

DEFAULT_DIMENSIONS = 8

UNAUTHORIZED_MESSAGE = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
    "key for an active subscription and use a correct regional API endpoint for your resource.")

_STATUS_MESSAGES = {
    400: "The request is invalid.",
    401: UNAUTHORIZED_MESSAGE,
    403: "The principal does not have access to this deployment.",
    404: "Resource not found",
    408: "The request timed out.",
    429: ("Requests to the Azure OpenAI API have exceeded the call rate limit of your current pricing "
          "tier. Please retry after {retry_after} seconds."),
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The service is temporarily unable to process your request. Please try again later.",
    504: "The server did not respond in time.",
}

_DEPLOYMENT_ROUTE = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)/(?P<op>chat/completions|"
                               r"completions|embeddings|images/generations|audio/speech)$")
_V1_ROUTE = re.compile(r"^/openai/v1/(?P<op>chat/completions|completions|embeddings|responses|"
                       r"images/generations|audio/speech)$")
_MODELS_ROUTE = re.compile(r"^/models/(?P<op>chat/completions|embeddings|info)$")

MODELS_API_VERSIONS = ("2024-05-01-preview", "2025-04-01", "2025-05-01")
"""The Model Inference API's versions; any other is refused."""
MODELS_PARAMETERS = {
    "chat/completions": frozenset({
        "messages", "frequency_penalty", "stream", "presence_penalty", "temperature", "top_p", "max_tokens",
        "response_format", "stop", "tools", "tool_choice", "seed", "model", "modalities"}),
    "embeddings": frozenset({"input", "dimensions", "encoding_format", "input_type", "model"}),
}
"""The parameters the Model Inference API defines; the others are extra parameters."""
EXTRA_PARAMETERS = ("error", "drop", "pass-through")
NO_MODEL_MESSAGE = ("No model specified in request. Please provide a model name in the request body or as a "
                    "x-ms-model-mesh-model-name header.")


@dataclass
class Fault:
    """One injected misbehaviour, consumed by the first matching request (FIFO)."""

    status: int | None = None
    retry_after: int | None = None
    delay: float = 0.0
    reset_after_chunks: int | None = None
    deployment: str | None = None
    headers: dict[str, str] | None = None
    """Extra headers on whatever is answered (a status fault, a raw body or the normal answer)."""
    message: str | None = None
    """A status fault's message instead of Azure's; `{deployment}` becomes the deployment's name."""
    body: bytes | None = None
    """Answered as is (with `status`, default 200, and `content_type`) instead of the computed answer."""
    content_type: str = "application/json"

    def matches(self, deployment: str) -> bool:
        return self.deployment is None or self.deployment == deployment


@dataclass(frozen=True)
class RecordedRequest:
    """What arrived, so tests can assert on exactly what the gateway forwarded."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    deployment: str

    def json(self) -> Any:
        return json.loads(self.body)


class _BadRequest(Exception):
    """A client error to answer with an Azure-shaped body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _json_object(body: bytes) -> dict[str, Any]:
    """The request body as Azure parses it: JSON, and an object."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise _BadRequest(400, "BadRequest", f"The request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise _BadRequest(400, "BadRequest", "The request body must be a JSON object")
    return payload


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _error_response(status: int, code: str, message: str,
                    headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=_dumps(error_body(code, message)),
                        content_type="application/json", headers=headers)


def _dumps(value: Any) -> bytes:
    """Compact JSON, the way Azure writes it, and stable for equal inputs."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _words(text: str) -> int:
    return len(text.split())


def _pieces(text: str) -> list[str]:
    """Word-sized stream deltas that keep the leading spaces ("Hello", " from", ...) and join to `text`."""
    return re.findall(r"\s*\S+\s*$|\s*\S+", text)


def _content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content
                       if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""


def _last_user_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def _all_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    return " ".join(_content_text(m.get("content")) for m in messages if isinstance(m, dict))


def answer_for(said: str) -> str:
    return f"Hello from the emulator. You said: {said}"


def embedding_vector(item: Any, dimensions: int) -> list[float]:
    """A deterministic vector whose values are exact float32s, so `float` and `base64` agree bit for bit."""
    seed = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    raw = b""
    counter = 0
    while len(raw) < 2 * dimensions:
        raw += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return [value / 32768 for value in struct.unpack(f"<{dimensions}h", raw[:2 * dimensions])]


class AzureOpenAIEmulator:
    """The Azure OpenAI data plane (chat, completions, embeddings, responses, images, speech) with
    scripted faults."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, api_key: str | None = "sandbox-key",
                 bearer_check: Callable[[str], bool] | None = None, chunk_interval: float = 0.02,
                 model_name: str = "gpt-4o-2024-08-06") -> None:
        self.host, self.port = host, port
        self.api_key = api_key
        self.bearer_check = bearer_check
        self.chunk_interval = chunk_interval
        self.model_name = model_name
        self.requests: list[RecordedRequest] = []
        self.faults: collections.deque[Fault] = collections.deque()
        self.open_connections = 0
        self.stored = StoredResponses()
        self.files = emulator_files.Files()
        self.media = emulator_media.Media()
        self.vector_stores = emulator_vector_stores.VectorStores(self.files)
        self.batches = emulator_batches.Batches(self.files)
        self._url: str | None = None
        self._runner: web.ServerRunner | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the emulator is not started")
        return self._url

    async def start(self) -> None:
        server = _CountingServer(self._handle, self._connection_changed, handler_cancellation=True,
                                 access_log=None)
        # A short shutdown grace: a test's stop() must not wait out a long injected delay.
        self._runner = web.ServerRunner(server, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._url = f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _connection_changed(self, delta: int) -> None:
        self.open_connections += delta

    def take_fault(self, deployment: str) -> Fault | None:
        """Pop the first queued fault that applies to this deployment."""
        for fault in list(self.faults):
            if fault.matches(deployment):
                with contextlib.suppress(ValueError):
                    self.faults.remove(fault)
                return fault
        return None

    def _authorized(self, request: web.BaseRequest, v1: bool) -> bool:
        key = request.headers.get("api-key")
        if self.api_key is not None and key == self.api_key:
            return True
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        if self.bearer_check is not None and self.bearer_check(token.strip()):
            return True
        # The v1 surface also takes the resource key as a bearer token (what the plain OpenAI SDK sends).
        return v1 and self.api_key is not None and token.strip() == self.api_key

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        route = _route(request.path)
        form = None
        parsed: Any = None
        with contextlib.suppress(ValueError):
            parsed = json.loads(body) if body else None
        if route is not None and route.deployment is not None:
            deployment = route.deployment
        elif route is not None and isinstance(parsed, dict) and isinstance(parsed.get("model"), str):
            deployment = parsed["model"]
        elif (form := emulator_media.form_route(request.path)) is not None:
            deployment = emulator_media.form_deployment(form, request.headers.get("Content-Type", ""), body)
        else:
            deployment = ""
        self.requests.append(RecordedRequest(
            method=request.method, path=request.path, query=dict(request.query),
            headers={name.lower(): value for name, value in request.headers.items()},
            body=body, deployment=deployment))

        if (stored := by_id(request.path)) is not None:
            if not self._authorized(request, v1=stored.v1):
                return _error_response(401, "401", UNAUTHORIZED_MESSAGE)
            fault = self.take_fault("")
            if fault is not None:
                return self._fault_response(fault, "")
            answer = self.stored.answer(request, stored)
            if isinstance(answer, Replay):
                events = _response_events(answer.response)[answer.after + 1:]
                return await self._stream(request, events, None, {})
            return answer
        if emulator_files.matches(request.path):
            if not self._authorized(request, v1=emulator_files.is_v1(request.path)):
                return _error_response(401, "401", UNAUTHORIZED_MESSAGE)
            if (fault := self.take_fault("files")) is not None and fault.status is not None:
                return self._fault_response(fault, "files")
            return await self.files.handle(request, body)
        if emulator_vector_stores.matches(request.path):
            if not self._authorized(request, v1=emulator_vector_stores.is_v1(request.path)):
                return _error_response(401, "401", UNAUTHORIZED_MESSAGE)
            if (fault := self.take_fault("vector_stores")) is not None and fault.status is not None:
                return self._fault_response(fault, "vector_stores")
            return await self.vector_stores.handle(request, body)
        if form is not None and request.method == "POST":
            if not self._authorized(request, v1=form.v1):
                return _error_response(401, "401", UNAUTHORIZED_MESSAGE)
            if (fault := self.take_fault(deployment)) is not None and fault.status is not None:
                return self._fault_response(fault, deployment)
            return await self.media.form(request, form, body, (fault.headers if fault else None) or {})
        if emulator_batches.matches(request.path):
            if not self._authorized(request, v1=emulator_batches.is_v1(request.path)):
                return _error_response(401, "401", UNAUTHORIZED_MESSAGE)
            if (fault := self.take_fault("batches")) is not None and fault.status is not None:
                return self._fault_response(fault, "batches")
            return self.batches.handle(request, body)
        if not self._authorized(request, v1=route is not None and route.surface != "deployments"):
            return _error_response(401, "401", UNAUTHORIZED_MESSAGE)
        if route is None or request.method != ("GET" if route.op == "info" else "POST"):
            return _error_response(404, "404", "Resource not found")
        try:
            if route.surface == "models":
                payload = _validate_models(request, route.op, body)
            else:
                payload = self._validate(request, route.op, route.surface == "deployments", body, parsed)
        except _BadRequest as exc:
            return _error_response(exc.status, exc.code, exc.message,
                                   {"x-ms-error-code": exc.code} if route.surface == "models" else None)
        if route.op == "info":
            return _json_response({"model_name": self.model_name, "model_type": "chat-completion",
                                   "model_provider_name": "Emulator"})

        fault = self.take_fault(deployment)
        stream = bool(payload.get("stream"))
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.body is not None:
                return web.Response(status=fault.status or 200, body=fault.body, headers={
                    "Content-Type": fault.content_type, **(fault.headers or {})})
            if fault.status is not None:
                return self._fault_response(fault, deployment)
            if fault.reset_after_chunks is not None and not stream:
                # A non-streaming request has nothing to cut short: drop the connection unanswered.
                _abort(request)
                return web.Response(status=500)
        reset_after = fault.reset_after_chunks if fault is not None else None
        extra = (fault.headers if fault is not None else None) or {}
        try:
            return await self._answer(request, route.op, payload, stream, reset_after, extra)
        except _BadRequest as exc:
            return _error_response(exc.status, exc.code, exc.message)

    def _validate(self, request: web.BaseRequest, op: str, deployments_route: bool, body: bytes,
                  parsed: Any) -> dict[str, Any]:
        if deployments_route and not request.query.get("api-version"):
            raise _BadRequest(400, "BadRequest", "Missing required query parameter api-version")
        return _json_object(body)

    def _fault_response(self, fault: Fault, deployment: str) -> web.Response:
        status = fault.status or 500
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        headers.update(fault.headers or {})
        if fault.message is not None:
            message = fault.message.replace("{deployment}", deployment)
        else:
            message = _STATUS_MESSAGES.get(status, "Injected fault").format(
                retry_after=fault.retry_after or 1)
        return _error_response(status, str(status), message, headers)

    async def _answer(self, request: web.BaseRequest, op: str, payload: dict[str, Any], stream: bool,
                      reset_after: int | None, headers: dict[str, str]) -> web.StreamResponse:
        # `stream_options` only changes whether a usage chunk is sent, never the answer or its id.
        digest = _digest({k: v for k, v in payload.items() if k not in ("model", "stream_options")})
        if op == "embeddings":
            return _json_response(self._embeddings(payload), headers)
        if op in emulator_media.OPERATIONS:
            return await self.media.answer(request, op, payload, headers)
        if op == "responses":
            if (refused := self.stored.refusal(payload)) is not None:
                return refused
            final = self.stored.created(payload, self._responses(payload, digest))
            if stream:
                return await self._stream(request, _response_events(final), reset_after, headers)
            return _json_response(final, headers)
        chat = op == "chat/completions"
        if chat:
            said, prompt_text = _last_user_text(payload.get("messages")), _all_text(payload.get("messages"))
        else:
            prompt = payload.get("prompt", "")
            prompt_text = said = " ".join(map(str, prompt)) if isinstance(prompt, list) else str(prompt)
        text = answer_for(said)
        usage = {"prompt_tokens": _words(prompt_text), "completion_tokens": _words(text),
                 "total_tokens": _words(prompt_text) + _words(text)}
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{digest[:24]}"
        if stream:
            options = payload.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            chunks = self._chat_chunks(ident, text, usage if include_usage else None) if chat \
                else self._completion_chunks(ident, text, usage if include_usage else None)
            events = [b"data: " + _dumps(chunk) + b"\n\n" for chunk in chunks] + [b"data: [DONE]\n\n"]
            return await self._stream(request, events, reset_after, headers)
        if chat:
            return _json_response({
                "id": ident, "object": "chat.completion", "created": CREATED, "model": self.model_name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": usage, "system_fingerprint": "fp_emulator"}, headers)
        return _json_response({
            "id": ident, "object": "text_completion", "created": CREATED, "model": self.model_name,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
            "usage": usage}, headers)

    def _chat_chunks(self, ident: str, text: str, usage: dict[str, int] | None) -> list[dict[str, Any]]:
        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": ident, "object": "chat.completion.chunk", "created": CREATED, "model": self.model_name,
                "system_fingerprint": "fp_emulator",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if usage is not None:
                out["usage"] = None
            return out

        chunks = [chunk({"role": "assistant", "content": ""}, None)]
        chunks += [chunk({"content": piece}, None) for piece in _pieces(text)]
        chunks.append(chunk({}, "stop"))
        if usage is not None:
            chunks.append({"id": ident, "object": "chat.completion.chunk", "created": CREATED,
                           "model": self.model_name, "system_fingerprint": "fp_emulator",
                           "choices": [], "usage": usage})
        return chunks

    def _completion_chunks(self, ident: str, text: str,
                           usage: dict[str, int] | None) -> list[dict[str, Any]]:
        def chunk(piece: str, finish: str | None) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": ident, "object": "text_completion", "created": CREATED, "model": self.model_name,
                "choices": [{"text": piece, "index": 0, "logprobs": None, "finish_reason": finish}]}
            if usage is not None:
                out["usage"] = None
            return out

        chunks = [chunk(piece, None) for piece in _pieces(text)]
        chunks.append(chunk("", "stop"))
        if usage is not None:
            chunks.append({"id": ident, "object": "text_completion", "created": CREATED,
                           "model": self.model_name, "choices": [], "usage": usage})
        return chunks

    async def _stream(self, request: web.BaseRequest, events: list[bytes], reset_after: int | None,
                      headers: dict[str, str]) -> web.StreamResponse:
        """Server-sent events, each written (and so flushed) on its own, `chunk_interval` apart."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                               "Cache-Control": "no-cache", **headers})
        try:
            await response.prepare(request)
            for index, event in enumerate(events):
                if reset_after is not None and index >= reset_after:
                    break
                if index:
                    await asyncio.sleep(self.chunk_interval)
                await response.write(event)
            if reset_after is not None:
                # Let the last chunk leave, then drop the socket without the terminating chunk.
                await asyncio.sleep(self.chunk_interval)
                _abort(request)
                return response
            await response.write_eof()
        except ConnectionError:
            log.debug("client went away mid-stream")
        return response

    def _embeddings(self, payload: dict[str, Any]) -> dict[str, Any]:
        raw = payload.get("input")
        if isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw)):
            items: list[Any] = [raw]
        elif isinstance(raw, list) and raw:
            items = raw
        else:
            raise _BadRequest(400, "BadRequest", "'input' must be a string or a non-empty array")
        dimensions = payload.get("dimensions", DEFAULT_DIMENSIONS)
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= 4096:
            raise _BadRequest(400, "BadRequest", "'dimensions' must be an integer between 1 and 4096")
        encoding = payload.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise _BadRequest(400, "BadRequest", "'encoding_format' must be 'float' or 'base64'")
        data = []
        tokens = 0
        for index, item in enumerate(items):
            vector = embedding_vector(item, dimensions)
            tokens += _words(item) if isinstance(item, str) else len(item) if isinstance(item, list) else 1
            embedding: Any = vector if encoding == "float" else \
                base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        return {"object": "list", "data": data, "model": self.model_name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def _responses(self, payload: dict[str, Any], digest: str) -> dict[str, Any]:
        raw = payload.get("input", "")
        if isinstance(raw, str):
            said = prompt_text = raw
        else:
            said, prompt_text = _last_user_text(raw), _all_text(raw)
        if isinstance(payload.get("instructions"), str):
            prompt_text = f"{payload['instructions']} {prompt_text}"
        text = answer_for(said)
        input_tokens, output_tokens = _words(prompt_text), _words(text)
        return {
            "id": f"resp_{digest[:48]}", "object": "response", "created_at": CREATED, "status": "completed",
            "error": None, "incomplete_details": None, "instructions": payload.get("instructions"),
            "model": self.model_name,
            "output": [{"type": "message", "id": f"msg_{digest[-48:]}", "status": "completed",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "usage": {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": input_tokens + output_tokens}}


@dataclass(frozen=True)
class _Route:
    surface: str                # deployments, v1 or models
    op: str
    deployment: str | None      # from the path (deployments); else the body's `model`


def _route(path: str) -> _Route | None:
    if match := _DEPLOYMENT_ROUTE.match(path):
        return _Route("deployments", match["op"], match["deployment"])
    if match := _V1_ROUTE.match(path):
        return _Route("v1", match["op"], None)
    if match := _MODELS_ROUTE.match(path):
        return _Route("models", match["op"], None)
    return None


def _validate_models(request: web.BaseRequest, op: str, body: bytes) -> dict[str, Any]:
    """What the Model Inference API checks before it answers: the api-version, then (but for `info`)
    a JSON object naming its model, and parameters it does not define unless `extra-parameters`
    says to drop them (dropped here) or pass them through."""
    version = request.query.get("api-version")
    if not version:
        raise _BadRequest(400, "BadRequest", "Missing required query parameter: api-version")
    if version not in MODELS_API_VERSIONS:
        raise _BadRequest(400, "BadRequest", f"Unsupported api-version {version!r}. The supported versions "
                          f"are: {', '.join(MODELS_API_VERSIONS)}")
    if op == "info":
        return {}
    payload = _json_object(body)
    if not isinstance(payload.get("model"), str) or not payload["model"]:
        raise _BadRequest(400, "no_model_name", NO_MODEL_MESSAGE)
    mode = request.headers.get("extra-parameters", "error")
    if mode not in EXTRA_PARAMETERS:
        raise _BadRequest(400, "BadRequest", f"extra-parameters must be one of {', '.join(EXTRA_PARAMETERS)}")
    extra = sorted(set(payload) - MODELS_PARAMETERS[op])
    if extra and mode == "error":
        raise _BadRequest(400, "BadRequest", f"Extra parameters {extra} are not allowed when "
                          "extra-parameters is not set or set to be 'error'. Set extra-parameters to "
                          "'pass-through' to pass to the model.")
    if mode == "drop":
        payload = {k: v for k, v in payload.items() if k not in extra}
    return payload


def _json_response(value: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_dumps(value), headers={"Content-Type": "application/json", **(headers or {})})


def _response_events(final: dict[str, Any]) -> list[bytes]:
    """The Responses API's stream of one text answer: created, the text in word-sized deltas, and
    `response.completed` with the whole response, whose `usage` is the only one in the stream."""
    item = final["output"][0]
    part = item["content"][0]
    text, where = part["text"], {"item_id": item["id"], "output_index": 0, "content_index": 0}
    started = {**final, "status": "in_progress", "output": [], "usage": None}
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": started}),
        ("response.in_progress", {"response": started}),
        ("response.output_item.added", {"output_index": 0, "item": {**item, "status": "in_progress",
                                                                     "content": []}}),
        ("response.content_part.added", {**where, "part": {**part, "text": ""}}),
        *(("response.output_text.delta", {**where, "delta": piece, "logprobs": []})
          for piece in _pieces(text)),
        ("response.output_text.done", {**where, "text": text, "logprobs": []}),
        ("response.content_part.done", {**where, "part": part}),
        ("response.output_item.done", {"output_index": 0, "item": item}),
        ("response.completed", {"response": final}),
    ]
    return [b"event: " + name.encode() + b"\ndata: " + _dumps({"type": name, "sequence_number": n, **fields})
            + b"\n\n" for n, (name, fields) in enumerate(events)]


def _abort(request: web.BaseRequest) -> None:
    if request.transport is not None:
        request.transport.abort()


class _CountingServer(web.Server):
    """aiohttp's low-level server, told of every accepted and every closed socket: the leak tests' count."""

    def __init__(self, handler: Callable[[web.BaseRequest], Any], on_change: Callable[[int], None],
                 **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._on_change = on_change
        self._open: set[web.RequestHandler] = set()

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if handler not in self._open:
            self._open.add(handler)
            self._on_change(1)

    def connection_lost(self, handler: web.RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        if handler in self._open:
            self._open.discard(handler)
            self._on_change(-1)


async def _serve(args: argparse.Namespace) -> None:
    emulator = AzureOpenAIEmulator(host=args.host, port=args.port, api_key=args.api_key,
                                   chunk_interval=args.chunk_interval, model_name=args.model_name)
    await emulator.start()
    print(f"Azure OpenAI emulator listening on {emulator.url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m sandbox.emulator`: the emulator on its own, for the local sandbox."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7082)
    parser.add_argument("--api-key", default="sandbox-key")
    parser.add_argument("--chunk-interval", type=float, default=0.02)
    parser.add_argument("--model-name", default="gpt-4o-2024-08-06")
    args = parser.parse_args(argv)
    # Ctrl-C stops it even when started by a process that ignores SIGINT (an ignored signal stays
    # ignored across exec, and Python then installs no handler of its own).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
