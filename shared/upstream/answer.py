"""What the caller gets back from upstream, as a plain value (`response.to_starlette` makes it HTTP).

Upstream answers are hostile input: only an allowlist of their headers reaches the caller (redirect
targets, authentication challenges, server banners, cookies and deployment or region names never do),
and an upstream error's body names the gateway's model where it named the deployment. The
`Content-Length` a caller sees is always computed from the bytes the gateway sends, never copied from
upstream; a stream has none.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from ..errors import GatewayError

PASSED_ON = frozenset({"content-type", "retry-after", "openai-processing-ms", "openai-version",
                       "apim-request-id"})
"""Upstream response headers a caller may see, with every `x-ratelimit-*` (the openai SDK reads them)."""
PASSED_ON_PREFIX = "x-ratelimit-"


@dataclass(frozen=True, slots=True)
class Answer:
    """Status, the headers the caller may see, and either the whole body or its chunks. `close` must be
    called once the caller's side is over, however it ended (it ends the upstream side of a stream)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    chunks: AsyncIterator[bytes] | None = None
    close: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What became of a request sent to a model's targets: the `Answer` the caller gets, or the failure
    they get; and, for the gateway's own log and trace only (never a response), the account and
    deployment that answered and how many targets were tried (on a failure: every attempt made)."""

    result: Answer | GatewayError
    account: str | None
    deployment: str | None
    attempts: int


def passed_on(upstream: Mapping[str, str], request_id: str) -> dict[str, str]:
    """The allowed upstream headers (printable ASCII values only), and the gateway's request id."""
    headers = {}
    for name, value in upstream.items():
        name = name.lower()
        if (name in PASSED_ON or name.startswith(PASSED_ON_PREFIX)) and value.isascii() \
                and value.isprintable():
            headers[name] = value
    headers["x-request-id"] = request_id
    return headers


_NAME_CHARS = rb"A-Za-z0-9._-"


def hide_deployment(body: bytes, deployment: str, model: str) -> bytes:
    """An upstream error's body with the deployment's name (as JSON text or in a URL) replaced by the
    gateway's model name wherever it stands as a whole name."""
    if deployment == model:
        return body
    spellings = {json.dumps(deployment)[1:-1], json.dumps(deployment, ensure_ascii=False)[1:-1],
                 quote(deployment, safe="")}
    replacement = model.encode()
    for spelling in spellings:
        name = spelling.encode()
        if name and name in body:
            pattern = rb"(?<![" + _NAME_CHARS + rb"])" + re.escape(name) + rb"(?![" + _NAME_CHARS + rb"])"
            body = re.sub(pattern, lambda _: replacement, body)
    return body
