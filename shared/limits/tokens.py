"""What one request reserves before it is sent: its prompt tokens (estimated) plus its output cap.

The prompt is counted with the model's tokenizer (shared/limits/encodings.py) the way OpenAI counts it:
every message costs its text plus a fixed overhead, names one token more, and the reply is primed with
a few tokens. What cannot be tokenized from the body is bounded instead: an image part costs a fixed
number of tokens at least as large as the model's largest image, an audio part one token per 32 base64
characters, a file part one token per byte, and any shape the estimate does not know one token per
byte of its JSON (no byte-level BPE makes more tokens than bytes). So the estimate never falls below
the usage the upstream reports for the same body; settlement then replaces it with that usage.

The output cap is the caller's (`max_tokens`, `max_completion_tokens`, `max_output_tokens`), clamped to
the model's `max_output_tokens`; when the caller sent none (or null, or a value that is not a positive
integer), a default is injected, so the reservation bounds what the call can consume. A chat request to
a reasoning model (o1, o3, o4, gpt-5: they refuse `max_tokens`) gets `max_completion_tokens`; every
other chat request gets `max_tokens`, which every other model accepts on every api-version, the AI
Foundry model inference API included (it knows no other). The output reserved is the cap times the
choices asked for (`n`, `best_of`, and each prompt of a completions batch).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config.model import Model
from .encodings import encoding, encoding_names

# The body member that caps the output, per operation (embeddings have no output).
CAP_MEMBERS: Mapping[str, tuple[str, ...]] = {
    "chat/completions": ("max_completion_tokens", "max_tokens"),
    "completions": ("max_tokens",),
    "responses": ("max_output_tokens",),
    "embeddings": (),
}

MESSAGE_TOKENS = 3
"""Per chat message or responses input item: `<|start|>{role}<|message|>...<|end|>`."""
NAME_TOKENS = 1
"""A message's `name` costs one token beyond its text."""
REPLY_TOKENS = 3
"""Every reply is primed with `<|start|>assistant<|message|>`."""
TOOL_TOKENS = 24
"""Per tool or function, on top of its JSON's tokens: the namespace and type lines OpenAI wraps around
each (its JSON, counted whole, is longer than the text OpenAI renders from it)."""
TOOLS_TOKENS = 16
"""Once per request with tools: the tools section's header and footer."""
IMAGE_TOKENS: tuple[tuple[str, int], ...] = (("gpt-4o-mini", 48_169), ("nano", 3_779), ("mini", 2_643))
"""An image part, per model family (first name fragment that matches): the most tokens the model bills
for one image at high detail. gpt-4o-mini bills 2,833 + 5,667 per 512 px tile (8 at most); the patch
models bill at most 1,536 patches times their multiplier (nano 2.46, mini 1.72)."""
DEFAULT_IMAGE_TOKENS = 1_536
"""An image for every other model: above gpt-4o's 85 + 170 x 8 tiles and the patch models' 1,536."""
AUDIO_CHARS_PER_TOKEN = 32
"""Base64 characters of audio per token: at least 24 bytes of audio a token, several times what the
audio models bill (about ten tokens a second) even at low bit rates."""
THREAD_BYTES = 32 * 1024
"""Bodies larger than this are counted in a worker thread (tokenizing runs at about 0.15 s per MB)."""

_REASONING = re.compile(r"^(?:o\d|gpt-?5|codex)")


@dataclass(frozen=True, slots=True)
class Reservation:
    prompt: int                            # estimated prompt tokens (never below the real count)
    output: int                            # the most output tokens the call can produce
    doc: Mapping[str, Any] | None = None   # the body with the cap injected or clamped; None: unchanged

    @property
    def tokens(self) -> int:
        return self.prompt + self.output


def model_names(model: Model) -> tuple[str, ...]:
    """The names a model is known by: its own and its targets' deployments (what the estimate's choice
    of tokenizer, image size and cap member reads)."""
    return (model.name, *(t.deployment for t in model.targets))


def _json_bytes(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


class _Counter:
    """Counts the prompt of one body with one encoding."""

    def __init__(self, encoding_name: str, names: Sequence[str]) -> None:
        self._encode = encoding(encoding_name).encode_ordinary
        lowered = [n.lower() for n in names]
        self._image = next((tokens for fragment, tokens in IMAGE_TOKENS
                            if any(fragment in n for n in lowered)), DEFAULT_IMAGE_TOKENS)

    def text(self, value: str) -> int:
        return len(self._encode(value)) if value else 0

    def json(self, value: object) -> int:
        """A value whose rendering the estimate does not know: the tokens of its JSON."""
        return self.text(json.dumps(value, ensure_ascii=False, separators=(",", ":")))

    def part(self, part: object) -> int:
        """One content part of a message (chat or responses)."""
        if isinstance(part, str):
            return self.text(part)
        if not isinstance(part, dict):
            return _json_bytes(part)
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text", "refusal"):
            value = part.get("text", part.get("refusal"))
            if isinstance(value, str):
                return self.text(value)
        if kind in ("image_url", "input_image"):
            return self._image
        if kind == "input_audio":
            audio = part.get("input_audio")
            data = audio.get("data") if isinstance(audio, dict) else part.get("data")
            if isinstance(data, str):
                return math.ceil(len(data) / AUDIO_CHARS_PER_TOKEN)
        return _json_bytes(part)   # files and unknown parts: one token per byte

    def content(self, content: object) -> int:
        if isinstance(content, str):
            return self.text(content)
        if isinstance(content, list):
            return sum(self.part(p) for p in content)
        return 0 if content is None else _json_bytes(content)

    def message(self, message: object) -> int:
        if not isinstance(message, dict):
            return _json_bytes(message)
        total = MESSAGE_TOKENS
        for key, value in message.items():
            if key == "content":
                total += self.content(value)
            elif isinstance(value, str):
                total += self.text(value) + (NAME_TOKENS if key == "name" else 0)
            elif value is not None:
                total += self.json(value)   # tool_calls, function_call, audio references
        return total

    def tools(self, tools: object) -> int:
        if not isinstance(tools, list) or not tools:
            return 0 if tools is None or tools == [] else _json_bytes(tools)
        return TOOLS_TOKENS + sum(TOOL_TOKENS + self.json(t) for t in tools)

    def inputs(self, value: object) -> int:
        """A completions prompt or an embeddings input: text, texts, a token array or token arrays."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            if all(isinstance(v, int) for v in value):
                return len(value)
            return sum(self.inputs(v) if isinstance(v, str | list) else _json_bytes(v) for v in value)
        return _json_bytes(value)

    def chat(self, doc: Mapping[str, Any]) -> int:
        messages = doc.get("messages")
        total = REPLY_TOKENS + (sum(self.message(m) for m in messages) if isinstance(messages, list)
                                else _json_bytes(messages))
        total += self.tools(doc.get("tools")) + self.tools(doc.get("functions"))
        return total + self._format(doc.get("response_format"))

    def responses(self, doc: Mapping[str, Any]) -> int:
        total = REPLY_TOKENS
        instructions = doc.get("instructions")
        if instructions is not None:
            total += MESSAGE_TOKENS + self.content(instructions)
        given = doc.get("input")
        if isinstance(given, str):
            total += MESSAGE_TOKENS + self.text(given)
        elif isinstance(given, list):
            total += sum(self.message(item) for item in given)
        elif given is not None:
            total += _json_bytes(given)
        text = doc.get("text")
        return total + self.tools(doc.get("tools")) + self._format(
            text.get("format") if isinstance(text, dict) else text)

    def _format(self, value: object) -> int:
        """A structured-output schema is part of the prompt."""
        return 0 if value is None else self.json(value)


def _count(operation: str, doc: Mapping[str, Any], counter: _Counter) -> int:
    if operation == "chat/completions":
        return counter.chat(doc)
    if operation == "responses":
        return counter.responses(doc)
    if operation == "completions":
        suffix = doc.get("suffix")
        return counter.inputs(doc.get("prompt", "")) + (counter.content(suffix) if suffix else 0)
    if operation == "embeddings":
        return counter.inputs(doc.get("input", ""))
    return byte_bound(doc)


_PROMPT_MEMBERS = ("messages", "prompt", "input", "instructions", "tools", "functions", "suffix",
                   "response_format", "text")


def byte_bound(doc: Mapping[str, Any]) -> int:
    """An upper bound for any body: no byte-level tokenizer produces more than one token per byte of
    UTF-8 text, so the bytes of the prompt members bound their tokens."""
    size = 0
    for member in _PROMPT_MEMBERS:
        if member in doc:
            value = doc[member]
            size += len(value.encode()) if isinstance(value, str) else _json_bytes(value)
    return size


def estimate_prompt(operation: str, doc: Mapping[str, Any], names: Sequence[str] = ()) -> int:
    """An estimate of the prompt's tokens that is never below what the upstream counts; with names
    that disagree on the tokenizer, the larger of the counts."""
    return max(_count(operation, doc, _Counter(e, names)) for e in encoding_names(names))


def _choices(operation: str, doc: Mapping[str, Any]) -> int:
    """How many outputs the call can produce, each up to the cap."""
    if operation == "responses":
        return 1
    n = max((v for v in (doc.get("n"), doc.get("best_of")) if _is_count(v)), default=1)
    prompt = doc.get("prompt")
    if operation == "completions" and isinstance(prompt, list) and prompt \
            and not all(isinstance(v, int) for v in prompt):
        n *= len(prompt)
    return n


def reasoning(names: Iterable[str]) -> bool:
    """A reasoning model by one of its names: chat requests to it must cap with max_completion_tokens."""
    return _reasoning(tuple(names))


@functools.lru_cache(maxsize=1024)
def _reasoning(names: tuple[str, ...]) -> bool:
    return any(_REASONING.match(n.strip().lower()) for n in names if n)


def _cap_members(operation: str, doc: Mapping[str, Any], names: Sequence[str]) -> tuple[str, ...]:
    """The members to set: those the caller sent, else the one this model accepts."""
    members = CAP_MEMBERS.get(operation, ())
    sent = tuple(m for m in members if m in doc)
    if sent:
        return sent
    if operation == "chat/completions":
        return ("max_completion_tokens",) if reasoning(names) else ("max_tokens",)
    return members[:1]


def reserve(operation: str, doc: Mapping[str, Any], *, default_max_tokens: int,
            max_output: int | None = None, names: Sequence[str] = ()) -> Reservation:
    """The reservation of one request: `names` are the model's (see `model_names`)."""
    prompt = estimate_prompt(operation, doc, names)
    if not CAP_MEMBERS.get(operation):
        return Reservation(prompt=prompt, output=0)
    members = _cap_members(operation, doc, names)
    caps = [int(doc[m]) if _is_count(doc.get(m)) else default_max_tokens for m in members]
    if max_output is not None:
        caps = [min(cap, max_output) for cap in caps]
    output = max(caps) * _choices(operation, doc)
    if all(m in doc and doc[m] == cap and _is_count(doc[m]) for m, cap in zip(members, caps, strict=True)):
        return Reservation(prompt=prompt, output=output)
    return Reservation(prompt=prompt, output=output,
                       doc={**doc, **dict(zip(members, caps, strict=True))})


async def areserve(operation: str, doc: Mapping[str, Any], *, size: int, default_max_tokens: int,
                   max_output: int | None = None, names: Sequence[str] = ()) -> Reservation:
    """`reserve`, off the event loop for a body of more than THREAD_BYTES (`size`, its bytes), so one
    large prompt does not stall every other request of the process."""
    if size <= THREAD_BYTES:
        return reserve(operation, doc, default_max_tokens=default_max_tokens, max_output=max_output,
                       names=names)
    return await asyncio.to_thread(reserve, operation, doc, default_max_tokens=default_max_tokens,
                                   max_output=max_output, names=names)
