"""What a new batch is made of: its request, read strictly, and its input file rewritten to the deployment
and uploaded as the caller's.

The caller's input file is read from its account as it arrives (at most GATEWAY_MAX_BATCH_INPUT_BYTES,
each line at most GATEWAY_MAX_BODY_BYTES, like any request) and checked line by line (`batch_input`);
nothing is created upstream until every line passed. The rewritten file goes to the same account (a
batch runs on a file of its own account) and is recorded as the caller's before the batch uses it; if
the record cannot be written, it is deleted again.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequest, ModelNotFound, NotFound, UpstreamError
from ..objects.store import Owned
from ..upstream.scoped import AccountRequest, send
from . import recording, upload
from .batch_input import Rewriter, Rewritten, operation_of

if TYPE_CHECKING:
    from ..auth.identities import Principal
    from ..config.model import Account
    from ..config.snapshot import View
    from ..runtime import Gateway

log = logging.getLogger("gateway.proxy.batch_create")

FIELDS = frozenset({"input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"})
EXPIRES_SECONDS = (3600, 2_592_000)
METADATA = (16, 64, 512)    # at most 16 pairs, keys up to 64 characters, values up to 512
PIECE = 1 << 16
_NAME = re.compile(r"^[A-Za-z_]{1,40}$")


class LineModelNotFound(ModelNotFound):
    """A line names a model the caller may not use: named by its line number, not the caller's text."""

    def __init__(self, line: int) -> None:
        NotFound.__init__(self, f"line {line} of the input file names a model that does not exist or "
                                "you do not have access to", param="input_file_id")


@dataclass(frozen=True, slots=True)
class CreateRequest:
    input_file_id: str
    endpoint: str
    metadata: Mapping[str, str] | None
    output_expires_after: Mapping[str, Any] | None

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> CreateRequest:
        unknown = sorted(set(doc) - FIELDS)
        if unknown:
            named = [name for name in unknown if _NAME.match(name)]
            raise InvalidRequest("unknown field " + (", ".join(named) if len(named) == len(unknown)
                                                     else "(not shown)"), param=named[0] if named else None)
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(doc.get(name), str):
                raise InvalidRequest(f"{name} is required, a string", param=name)
        operation_of(doc["endpoint"])
        if doc["completion_window"] != "24h":
            raise InvalidRequest("completion_window must be 24h", param="completion_window")
        return cls(doc["input_file_id"], doc["endpoint"], _metadata(doc.get("metadata")),
                   _expires_after(doc.get("output_expires_after")))

    def upstream(self, file_id: str) -> dict[str, Any]:
        """The create request for the upstream: the checked fields, on the rewritten file."""
        out: dict[str, Any] = {"input_file_id": file_id, "endpoint": self.endpoint,
                               "completion_window": "24h"}
        if self.metadata is not None:
            out["metadata"] = dict(self.metadata)
        if self.output_expires_after is not None:
            out["output_expires_after"] = dict(self.output_expires_after)
        return out


def _metadata(value: object) -> Mapping[str, str] | None:
    most, key_len, value_len = METADATA
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > most or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= key_len and len(v) <= value_len
            for k, v in value.items()):
        raise InvalidRequest(f"metadata must be at most {most} string pairs, keys up to {key_len} and values "
                             f"up to {value_len} characters", param="metadata")
    return value


def _expires_after(value: object) -> Mapping[str, Any] | None:
    if value is None:
        return None
    seconds = value.get("seconds") if isinstance(value, dict) else None
    if not isinstance(value, dict) or set(value) != {"anchor", "seconds"} or value["anchor"] != "created_at" \
            or not isinstance(seconds, int) or isinstance(seconds, bool) \
            or not EXPIRES_SECONDS[0] <= seconds <= EXPIRES_SECONDS[1]:
        raise InvalidRequest(f"output_expires_after must be anchor created_at and seconds from "
                             f"{EXPIRES_SECONDS[0]} to {EXPIRES_SECONDS[1]}", param="output_expires_after")
    return value


async def creation(gw: Gateway, view: View, principal: Principal, account: Account, request: CreateRequest,
                   request_id: str) -> Rewritten:
    """The caller's input file, every line checked and rewritten to the deployment in `account`."""

    def resolve(name: str, line: int) -> str:
        model = view.models.get(name)
        if model is None or not view.policy.allows(principal.principals, f"model:{name}", "viewer"):
            raise LineModelNotFound(line)
        for target in model.targets:
            if target.account == account.name:
                return target.deployment
        raise InvalidRequest(f"line {line} of the input file names a model with no deployment in the "
                             "account that holds the file", param="input_file_id")

    rewriter = Rewriter(request.endpoint, resolve, max_line_bytes=gw.settings.max_body_bytes)
    answer = await send(gw.forwarder.transport, account, AccountRequest(
        "GET", ("files", request.input_file_id, "content"), request_id, stream=True))
    if not 200 <= answer.status < 300 or answer.chunks is None:
        raise UpstreamError(f"account {account.name} answered HTTP {answer.status} for a batch's input file")
    limit, size = gw.settings.max_batch_input_bytes, 0
    try:
        async for chunk in answer.chunks:
            size += len(chunk)
            if size > limit:
                raise InvalidRequest(f"the input file is larger than {limit} bytes", param="input_file_id")
            rewriter.feed(chunk)
    finally:
        if answer.close is not None:
            answer.close()
    return rewriter.finish()


async def upload_rewritten(gw: Gateway, account: Account, owner: str, rewritten: Rewritten,
                           request_id: str) -> Owned:
    """The rewritten file, uploaded to `account` for a batch and recorded as `owner`'s."""
    body, length, content_type = _form(rewritten)
    answer = await send(gw.forwarder.transport, account, AccountRequest(
        "POST", ("files",), request_id, body=body, content_type=content_type,
        extra={"Content-Length": str(length)}))
    if not 200 <= answer.status < 300:
        raise UpstreamError(f"account {account.name} refused the upload of a batch's rewritten input file "
                            f"with HTTP {answer.status}")
    file_id, doc = await recording.created_id(gw, account, answer.body, upload.CREATION, request_id)
    owned = Owned(kind="file", object_id=file_id, account=account.name, owner=owner, model=rewritten.model,
                  created=time.time(), expires=recording.expires_of(doc))
    await recording.record(gw, account, owned, upload.CREATION, request_id)
    return owned


def _form(rewritten: Rewritten) -> tuple[AsyncIterator[bytes], int, str]:
    """A multipart form of purpose `batch` and the rewritten lines, with the gateway's boundary."""
    boundary = os.urandom(16).hex()
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="batch_input.jsonl"\r\n'
            "Content-Type: application/jsonl\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield head
        piece: list[bytes] = []
        size = 0
        for line in rewritten.lines:    # written in pieces of about PIECE bytes, not a line at a time
            piece.append(line)
            size += len(line)
            if size >= PIECE:
                yield b"".join(piece)
                piece, size = [], 0
        yield b"".join(piece) + tail

    return chunks(), len(head) + rewritten.size + len(tail), f"multipart/form-data; boundary={boundary}"
