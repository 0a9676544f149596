"""What a media answer says was used, beyond tokens: images made, seconds of audio heard, characters
spoken.

The usage handed to the usage sink is the answer's own `usage` object (tokens, for the GPT image and
gpt-4o transcription models), with these members added by the gateway:

    images      an images answer's `data` items (generations and edits)
    seconds     a transcription's or translation's audio: `usage.seconds` of a `duration` usage, else
                a verbose_json answer's `duration`; rounded up to whole seconds
    characters  speech: the characters of the request's `input` (its answer is audio, with no usage)

A text, srt or vtt transcription reports nothing, so it counts as a request only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .outbound import Outbound
from .usage_scan import answer_doc, usage_of_doc

IMAGES = frozenset({"images/generations", "images/edits"})
AUDIO_IN = frozenset({"audio/transcriptions", "audio/translations"})
MEDIA = IMAGES | AUDIO_IN | {"audio/speech"}
MAX_SECONDS = 1 << 31
"""More seconds than any one recording: a larger count is not believed."""


def usage_of_answer(operation: str, answer: bytes) -> Mapping[str, object] | None:
    """The usage of a whole JSON answer to `operation` (AmbiguousUsage as `usage_scan`)."""
    doc = answer_doc(answer)
    usage = usage_of_doc(doc)
    if operation not in MEDIA or not isinstance(doc, dict):
        return usage
    added: dict[str, object] = {}
    if operation in IMAGES and isinstance(doc.get("data"), list):
        added["images"] = len(doc["data"])
    elif operation in AUDIO_IN:
        seconds = _seconds(usage.get("seconds")) if usage and usage.get("type") == "duration" else None
        seconds = seconds if seconds is not None else _seconds(doc.get("duration"))
        if seconds is not None:
            added["seconds"] = seconds
    return {**(usage or {}), **added} if added else usage


def usage_of_request(out: Outbound) -> Mapping[str, object] | None:
    """What an answer without a usage (audio) is counted by: speech, the characters it was asked to
    speak."""
    text = out.doc.get("input")
    if out.operation == "audio/speech" and isinstance(text, str):
        return {"characters": len(text)}
    return None


def _seconds(value: Any) -> int | None:
    """Whole seconds (rounded up) of a JSON number; the answer parser keeps fractions as text."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number) or not 0 <= number < MAX_SECONDS:
        return None
    return math.ceil(number)
