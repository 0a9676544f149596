"""The operations the data plane forwards, per route shape: an allowlist, never a pattern.

A caller's `{operation}` is looked up here and replaced by the constant it names, so the upstream URL
is built from the account's endpoint, the target's deployment and one of these strings, and never from
caller text. Anything else is 404 `not_found` and is not forwarded.
"""

from __future__ import annotations

from ..config.schema import API_VERSION_RE
from ..errors import InvalidRequest, NotFound

OPERATIONS: dict[str, str] = {op: op for op in ("chat/completions", "completions", "embeddings", "responses")}
"""Operation as the caller spells it -> the constant the gateway sends upstream."""


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
