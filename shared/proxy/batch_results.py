"""A finished batch's results: its output and error files recorded as its owner's, its usage charged once.

The upstream writes a batch's result files itself, so the gateway learns their ids only from the batch
object. When it sees a finished batch (retrieved or listed), it records each result file as the batch
owner's (through the batch's model) before the batch object is answered, so the owner can download them
through the files routes and nobody else can. The batch's usage (its `usage`, else the sum of its
output file's lines, read at most GATEWAY_MAX_BATCH_INPUT_BYTES of it) is charged to its owner once:
the record is marked settled by a conditional write first, so of many processes seeing it, one charges.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import GatewayError, UpstreamError
from ..objects.store import Owned
from ..upstream.scoped import AccountRequest, send
from ..upstream.usage import Counts, counts_of
from .files import FILE_ID

if TYPE_CHECKING:
    from ..config.model import Account
    from ..runtime import Gateway

log = logging.getLogger("gateway.proxy.batch_results")

FINISHED = frozenset({"completed", "failed", "expired", "cancelled"})
RESULT_FILES = ("output_file_id", "error_file_id")


async def settle(gw: Gateway, account: Account, batch: Owned, doc: Mapping[str, Any],
                 request_id: str) -> None:
    """Once `doc` (the upstream's batch object) is finished: its files are the owner's, its usage charged."""
    if doc.get("status") not in FINISHED:
        return
    for key in RESULT_FILES:
        await _adopt(gw, account, batch, doc.get(key))
    if batch.settled or not await gw.objects.settle(batch):
        return
    usage = doc.get("usage")
    if not isinstance(usage, dict):
        usage = await _summed(gw, account, doc.get("output_file_id"), request_id)
    gw.usage.charge_later(batch.owner, batch.model or "", usage)


async def _adopt(gw: Gateway, account: Account, batch: Owned, file_id: object) -> None:
    if file_id is None:
        return
    if not isinstance(file_id, str) or not FILE_ID.match(file_id):
        raise UpstreamError(f"account {account.name} answered a batch with a malformed result file id")
    known = await gw.objects.find("file", file_id)
    if known is None:
        await gw.objects.record(Owned(kind="file", object_id=file_id, account=account.name, owner=batch.owner,
                                      model=batch.model, created=time.time()))
    elif (known.owner, known.account) != (batch.owner, account.name):
        raise UpstreamError(f"account {account.name} answered a batch whose result file is recorded for "
                            "another owner or account")


async def _summed(gw: Gateway, account: Account, file_id: object, request_id: str) -> dict[str, Any] | None:
    """The usage of every answered line of the output file (as far as the limit reads), or None."""
    if not isinstance(file_id, str) or not FILE_ID.match(file_id):
        return None
    total = Counts()
    try:
        answer = await send(gw.forwarder.transport, account, AccountRequest(
            "GET", ("files", file_id, "content"), request_id, stream=True))
        if not 200 <= answer.status < 300 or answer.chunks is None:
            raise UpstreamError(f"HTTP {answer.status}")
        try:
            await _add_lines(answer.chunks, gw.settings.max_batch_input_bytes, total)
        finally:
            if answer.close is not None:
                answer.close()
    except GatewayError as exc:
        log.warning("request %s: the output file of a batch could not be read for its usage (%s); what "
                    "was read is charged", request_id, exc.message)
    return {"prompt_tokens": total.prompt_tokens, "completion_tokens": total.completion_tokens,
            "total_tokens": total.total_tokens,
            "prompt_tokens_details": {"cached_tokens": total.cached_tokens}}


async def _add_lines(chunks: Any, limit: int, total: Counts) -> None:
    pending, size = b"", 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            log.warning("a batch's output file is over %d bytes: its usage is summed up to there", limit)
            return
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            total.add(_line_usage(line))
    total.add(_line_usage(pending))


def _line_usage(line: bytes) -> Counts:
    try:
        doc = json.loads(line)
        usage = doc["response"]["body"]["usage"]
    except (ValueError, KeyError, TypeError):
        return Counts()
    return counts_of(usage) if isinstance(usage, dict) else Counts()


async def discard_file(gw: Gateway, account: Account, file: Owned, request_id: str, *,
                       recorded: bool = True) -> None:
    """Best effort: a batch's rewritten input file no batch uses is deleted (and forgotten once the
    upstream confirmed)."""
    try:
        answer = await send(gw.forwarder.transport, account,
                            AccountRequest("DELETE", ("files", file.object_id), request_id))
        if 200 <= answer.status < 300:
            if recorded:
                await gw.objects.forget(file)
            return
        problem = f"HTTP {answer.status}"
    except GatewayError as exc:
        problem = exc.message
    log.error("request %s: file %s in account %s, written for a batch that was not created, could not be "
              "deleted (%s)", request_id, file.object_id, account.name, problem)
