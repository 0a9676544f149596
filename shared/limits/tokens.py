"""What one request reserves before it is sent: its prompt tokens (estimated) plus its output cap.

The output cap is the caller's (`max_tokens`, `max_completion_tokens`, `max_output_tokens`), clamped to
the model's `max_output_tokens`; when the caller sent none, a default is injected into the body, so the
reservation bounds what the call can consume. Settlement later replaces the reservation with the usage
the upstream reports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The body member that caps the output, per operation (embeddings have no output).
CAP_MEMBERS: Mapping[str, tuple[str, ...]] = {
    "chat/completions": ("max_completion_tokens", "max_tokens"),
    "completions": ("max_tokens",),
    "responses": ("max_output_tokens",),
    "embeddings": (),
}
_PROMPT_MEMBERS = ("messages", "prompt", "input", "instructions", "tools")


@dataclass(frozen=True, slots=True)
class Reservation:
    prompt: int                            # estimated prompt tokens
    output: int                            # the output cap the upstream will honour
    doc: Mapping[str, Any] | None = None   # the body with the cap injected or clamped; None: unchanged

    @property
    def tokens(self) -> int:
        return self.prompt + self.output


def estimate_prompt(operation: str, doc: Mapping[str, Any]) -> int:
    """An upper estimate of the prompt's tokens: no tokenizer produces more than one token per byte of
    UTF-8 text, so the bytes of the prompt members bound it."""
    size = 0
    for member in _PROMPT_MEMBERS:
        if member in doc:
            value = doc[member]
            size += len(value.encode()) if isinstance(value, str) else len(
                json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    return size


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def reserve(operation: str, doc: Mapping[str, Any], *, default_max_tokens: int,
            max_output: int | None = None) -> Reservation:
    members = CAP_MEMBERS.get(operation, ())
    prompt = estimate_prompt(operation, doc)
    if not members:
        return Reservation(prompt=prompt, output=0)
    sent = next((m for m in members if _is_count(doc.get(m))), None)
    cap = int(doc[sent]) if sent else default_max_tokens
    if max_output is not None:
        cap = min(cap, max_output)
    if sent and cap == doc[sent]:
        return Reservation(prompt=prompt, output=cap)
    return Reservation(prompt=prompt, output=cap, doc={**doc, sent or members[-1]: cap})
