"""The operations the data plane forwards, per route shape: an allowlist, never a pattern.

A caller's `{operation}` is looked up here and replaced by the constant it names, so the upstream URL
is built from the account's endpoint, the target's deployment and one of these strings, and never from
caller text. Anything else is 404 `not_found` and is not forwarded. An operation the model's accounts
do not serve (the Azure AI Model Inference API has no completions, responses, images or audio) is 400,
not forwarded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ..config.model import Account, Model
from ..config.schema import API_VERSION_RE
from ..errors import InvalidRequest, NotFound
from ..upstream.address import MODELS_OPERATIONS, serves

OPERATIONS: dict[str, str] = {op: op for op in ("chat/completions", "completions", "embeddings", "responses",
                                                "images/generations", "audio/speech")}
"""Operation as the caller spells it -> the constant the gateway sends upstream."""
MULTIPART = ("images/edits", "audio/transcriptions", "audio/translations")
"""Operations whose body is a multipart form (shared/proxy/media.py), each on routes of its own; the
operation names are these constants. Azure does not serve image variations on any surface."""
UNESTIMATED = frozenset({"images/generations", "audio/speech", *MULTIPART})
"""Operations whose tokens cannot be estimated from the body: they reserve none, and are settled with
the usage their answer reports."""


def operation(name: str) -> str:
    known = OPERATIONS.get(name)
    if known is None:
        raise NotFound("unknown operation: the gateway forwards " + ", ".join(OPERATIONS))
    return known


def api_version(value: str | None) -> str:
    if value is None:
        raise InvalidRequest("missing query parameter api-version", param="api-version")
    if not API_VERSION_RE.match(value):
        raise InvalidRequest("api-version must look like 2024-10-21 or 2025-04-01-preview",
                             param="api-version")
    return value


def served(model: Model, accounts: Mapping[str, Account], operation: str) -> Model:
    """`model` with only the targets whose account serves `operation` (a target whose account is not
    usable stays: forwarding says why); 400 when none does, rather than an upstream's puzzling 404."""
    targets = tuple(t for t in model.targets
                    if (account := accounts.get(t.account)) is None or serves(account, operation))
    if len(targets) == len(model.targets):
        return model
    if not targets:
        raise InvalidRequest(f"model {model.name!r} does not support {operation}; it supports "
                             + " and ".join(sorted(MODELS_OPERATIONS)), param="model")
    return replace(model, targets=targets)
