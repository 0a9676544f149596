"""Image edits, transcriptions and translations: multipart operations on a model, forwarded like the
JSON ones.

The form is read strictly (`multipart`, with this module's per-operation `FORMS`), so unknown fields,
repeats and misplaced files are 400 before anything else. The model is the `model` form field on the
/v1 and /openai/v1 shapes and the path on /openai/deployments/{model}/...; there a `model` form field
may repeat the path's model (the openai SDK's AzureOpenAI sends both) but naming another is 400, so
the path alone decides which model's role is checked and where the request goes. Then as for a JSON
operation: the caller's role on the model (404 model_not_found), the accounts serving the operation,
rate limits and budgets (nothing reserved: the usage the answer reports is what is charged), and
failover across the model's targets. Each target gets a form written for it (`form_writer`) from the
one copy of the body: a v1-style account names its deployment in `model`, a deployments-style account
in the path (no `model` field). Answers are relayed as they come: JSON, plain text (text, srt, vtt),
or an event stream (`stream=true`).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from starlette.responses import Response

from ..callers import authenticate
from ..errors import InvalidRequest, ModelNotFound
from ..http import Route, route
from ..limits.rules import Facts
from ..telemetry import identity_of
from ..upstream.address import uses_v1
from ..upstream.outbound import Body, Outbound
from ..upstream.response import to_starlette
from . import form_writer, handlers, multipart, operations
from .multipart import Spec, Text
from .query import classic_version

if TYPE_CHECKING:
    from ..config.model import Account, Target
    from ..http import Call

PROMPT_BYTES = 128_000
"""An image prompt: 32,000 characters of up to four bytes each."""
AUDIO_PROMPT_BYTES = 8_192
REFERENCE_BYTES = 4 << 20
"""A known speaker's reference: a data URL of a few seconds of audio."""
_ARRAY = Text(repeats=True)

_TRANSCRIPTION = {
    "model": Text(), "language": Text(), "prompt": Text(AUDIO_PROMPT_BYTES, multiline=True),
    "response_format": Text(), "temperature": Text(), "stream": Text(), "chunking_strategy": Text(),
    "chunking_strategy[type]": Text(), "chunking_strategy[prefix_padding_ms]": Text(),
    "chunking_strategy[silence_duration_ms]": Text(), "chunking_strategy[threshold]": Text(),
    "timestamp_granularities[]": _ARRAY, "include[]": _ARRAY, "keywords[]": _ARRAY, "languages[]": _ARRAY,
    "known_speaker_names[]": _ARRAY, "known_speaker_references[]": Text(REFERENCE_BYTES, repeats=True),
}
_TRANSLATION = {"model": Text(), "prompt": Text(AUDIO_PROMPT_BYTES, multiline=True),
                "response_format": Text(), "temperature": Text()}
# No `svg[...]`: its `svg[model]` names a second model, one the caller's role was never checked on.
_EDIT = {
    "model": Text(), "prompt": Text(PROMPT_BYTES, multiline=True), "background": Text(),
    "complexity": Text(), "frame_count": Text(), "frame_duration_ms": Text(), "input_fidelity": Text(),
    "n": Text(), "output_compression": Text(), "output_format": Text(), "partial_images": Text(),
    "quality": Text(), "response_format": Text(), "safety_identifier": Text(), "size": Text(),
    "stream": Text(), "user": Text(),
}
MAX_IMAGES = 16

FORMS: Mapping[str, Spec] = MappingProxyType({
    "audio/transcriptions": Spec(_TRANSCRIPTION, {"file": 1}, max_parts=64),
    "audio/translations": Spec(_TRANSLATION, {"file": 1}),
    "images/edits": Spec(_EDIT, {"image": 1, "image[]": MAX_IMAGES, "mask": 1, "markup": 1}, max_parts=48),
})
"""Each operation's form, from the openai SDK's parameters (arrays as it sends them: `include[]`)."""

CHOICES: Mapping[str, Mapping[str, frozenset[str]]] = MappingProxyType({
    "audio/transcriptions": {"response_format": frozenset({"json", "text", "srt", "verbose_json", "vtt",
                                                           "diarized_json"}),
                             "stream": frozenset({"true", "false"})},
    "audio/translations": {"response_format": frozenset({"json", "text", "srt", "verbose_json", "vtt"})},
    "images/edits": {"response_format": frozenset({"url", "b64_json"}),
                     "stream": frozenset({"true", "false"})},
})
"""Fields the gateway reads (or that decide the answer's shape): each one of these values."""


async def _media(call: Call, operation: str, path_model: str | None) -> Response:
    gw, view, principal = await authenticate(call)
    boundary = multipart.boundary_of(call.request.headers.get("content-type", ""))
    raw = await call.body(gw.settings.max_body_bytes)
    form = multipart.read(raw, boundary, FORMS[operation])
    model_name = _model_name(form, path_model)
    call.model = model_name
    model = view.models.get(model_name)
    if model is None or not view.policy.allows(principal.principals, f"model:{model_name}", "viewer"):
        raise ModelNotFound(model_name)
    _complete(operation, form)
    model = operations.served(model, view.accounts, operation)
    ticket, rules = None, gw.limiter.rules(view.version, view.config)
    if rules:   # nothing is reserved: the answer's usage settles it
        ticket = await gw.limiter.admit(rules, Facts.of(principal, model), handlers.NOTHING_RESERVED)
    text = tuple((name, value) for name, value in form.text if name != "model")
    stream = form.one("stream") == "true"
    query = {"api-version": call.request.query_params["api-version"]} if path_model is not None else {}
    out = Outbound(method="POST", operation=operation, query=query, headers=call.request.headers,
                   body=b"", doc={"stream": stream}, stream=stream, model=model, principal=principal.user,
                   identity=identity_of(principal.identities), request_id=call.request_id, ticket=ticket,
                   body_for=functools.partial(_form_for, operation, text, form.files))
    return to_starlette(await handlers.forward(call, gw, view.accounts, out, ticket))


def _model_name(form: multipart.Parts, path_model: str | None) -> str:
    named = form.one("model")
    if path_model is None:
        if not named:
            raise InvalidRequest("the form has no 'model'", param="model")
        return named
    if named is not None and named != path_model:
        raise InvalidRequest("the form's 'model' must be the path's model, or be left out", param="model")
    return path_model


def _complete(operation: str, form: multipart.Parts) -> None:
    """The parts the operation cannot do without, and the values the gateway knows."""
    names = {file.name for file in form.files}
    if operation == "images/edits":
        if "image" in names and "image[]" in names:
            raise InvalidRequest("give the images as 'image' or as 'image[]', not both", param="image")
        if not names & {"image", "image[]"}:
            raise InvalidRequest("the form has no 'image'", param="image")
        if form.one("prompt") is None:
            raise InvalidRequest("the form has no 'prompt'", param="prompt")
    elif "file" not in names:
        raise InvalidRequest("the form has no 'file'", param="file")
    for name, allowed in CHOICES[operation].items():
        value = form.one(name)
        if value is not None and value not in allowed:
            raise InvalidRequest(f"'{name}' must be one of " + ", ".join(sorted(allowed)), param=name)


def _form_for(operation: str, text: tuple[tuple[str, str], ...], files: tuple[multipart.FilePart, ...],
              account: Account, target: Target) -> Body:
    """The form one target gets: on the v1 surface its deployment is the form's `model`."""
    if uses_v1(account, operation):
        text = (("model", target.deployment), *text)
    return form_writer.form(text, files)


Work = Callable[["Call"], Awaitable[Response]]


def _work(operation: str, deployments: bool) -> Work:
    async def work(call: Call) -> Response:
        if not deployments:
            return await _media(call, operation, None)
        classic_version(call.request.query_params)
        return await _media(call, operation, call.request.path_params["model"])

    return work


def routes() -> tuple[Route, ...]:
    """Each multipart operation on the three shapes (before the JSON operations' catch-all routes)."""
    out: list[Route] = []
    for operation in operations.MULTIPART:
        name = operation.replace("/", "_")
        out += [route(f"v1/{operation}", ("POST",), name, _work(operation, False)),
                route(f"openai/v1/{operation}", ("POST",), f"{name}_azure_v1", _work(operation, False)),
                route(f"openai/deployments/{{model}}/{operation}", ("POST",), f"{name}_azure",
                      _work(operation, True))]
    return tuple(out)
