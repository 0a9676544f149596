"""Azure OpenAI's Batch API for the emulator: create, retrieve, list and cancel, on the classic surface
(/openai/batches?api-version=) and the v1 surface (/openai/v1/batches).

A batch reads its input file from the emulator's files. As Azure does, it is created `validating` and
validated afterwards: on the next retrieve, a line naming a deployment the emulator does not know fails
the batch (`failed`, with `errors` naming the line); else it moves to `in_progress`, and on the retrieve
after that to `completed`, with an output file of one answer (with its usage) per line written into the
emulator's files and the batch's `usage` set (unless `report_usage` is off, as with older api-versions).
A cancel makes it `cancelling`, and the next retrieve `cancelled`.
Development tooling only: never deployed, never imported by the gateway.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import emulator_answers as answers
from .emulator_files import Files, StoredFile

CREATED = 1700000000
DAY = 86400
ENDPOINTS = frozenset({"/chat/completions", "/embeddings", "/responses", "/v1/chat/completions",
                       "/v1/embeddings", "/v1/responses", "/v1/completions", "/completions"})
DEPLOYMENTS = frozenset({"gpt-4o-dep", "embed-dep", "x", "gpt-4o", "text-embedding-3-small"})
"""The deployments the emulator knows: those of the tests' and the sandbox's configurations."""
PROMPT_TOKENS, COMPLETION_TOKENS = 7, 3
"""Each answered line's usage."""
_ROUTE = re.compile(r"^/openai/(?P<v1>v1/)?batches(?:/(?P<id>[^/]+)(?P<cancel>/cancel)?)?$")
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
_PATHS = answers.Paths(_ROUTE)
matches, is_v1 = _PATHS.matches, _PATHS.is_v1
_error, _json = answers.coded_error, answers.json_answer






@dataclass
class Batch:
    id: str
    endpoint: str
    input_file_id: str
    created_at: int
    metadata: dict[str, str] | None
    status: str = "validating"
    times: dict[str, int | None] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: dict[str, Any] | None = None
    counts: dict[str, int] = field(default_factory=lambda: {"total": 0, "completed": 0, "failed": 0})
    usage: dict[str, Any] | None = None

    def object(self) -> dict[str, Any]:
        stamps = {name: self.times.get(name) for name in (
            "in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at",
            "cancelled_at")}
        out = {"id": self.id, "object": "batch", "endpoint": self.endpoint, "errors": self.errors,
               "input_file_id": self.input_file_id, "completion_window": "24h", "status": self.status,
               "output_file_id": self.output_file_id, "error_file_id": self.error_file_id,
               "created_at": self.created_at, "expires_at": self.created_at + DAY, **stamps,
               "request_counts": dict(self.counts), "metadata": self.metadata}
        if self.usage is not None:
            out["usage"] = self.usage
        return out


class Batches:
    def __init__(self, files: Files, deployments: frozenset[str] = DEPLOYMENTS) -> None:
        self.files = files
        self.deployments = set(deployments)
        self.batches: dict[str, Batch] = {}
        self.report_usage = True
        self._ids = itertools.count(1)

    def handle(self, request: web.BaseRequest, body: bytes) -> web.Response:
        match = _ROUTE.match(request.path)
        assert match is not None
        if match["v1"] is None and not request.query.get("api-version"):
            return _error(400, "BadRequest", "Missing required query parameter api-version")
        batch_id, method = match["id"], request.method
        if batch_id is None:
            if method == "POST":
                return self._create(body)
            return self._list(request) if method == "GET" else _error(404, "404", "Resource not found")
        if method != ("POST" if match["cancel"] else "GET"):
            return _error(404, "404", "Resource not found")
        batch = self.batches.get(batch_id)
        if batch is None:
            return _error(404, "invalidPayload", f"Batch with id '{batch_id}' not found.")
        if match["cancel"]:
            return self._cancel(batch)
        self._advance(batch)
        return _json(batch.object())

    def _create(self, body: bytes) -> web.Response:
        try:
            doc = json.loads(body)
        except ValueError:
            return _error(400, "invalidPayload", "The request body is not JSON.")
        if not isinstance(doc, dict) or doc.get("endpoint") not in ENDPOINTS \
                or doc.get("completion_window") != "24h":
            return _error(400, "invalidPayload", "endpoint and completion_window are required")
        if doc.get("input_file_id") not in self.files.files:
            return _error(404, "invalidPayload", "The input file was not found.")
        seq = next(self._ids)
        batch = Batch(id=f"batch_{seq:08x}-emul-{seq:012x}", endpoint=doc["endpoint"],
                      input_file_id=doc["input_file_id"], created_at=CREATED + seq,
                      metadata=doc.get("metadata"))
        self.batches[batch.id] = batch
        return _json(batch.object())

    def _list(self, request: web.BaseRequest) -> web.Response:
        data = [b.object() for b in sorted(self.batches.values(), key=lambda b: b.created_at, reverse=True)]
        after = request.query.get("after")
        if after is not None:
            ids = [b["id"] for b in data]
            data = data[ids.index(after) + 1:] if after in ids else []
        size = int(request.query.get("limit", "20"))
        more, data = len(data) > size, data[:size]
        ends = {"first_id": data[0]["id"], "last_id": data[-1]["id"]} if data else \
            {"first_id": None, "last_id": None}
        return _json({"object": "list", "data": data, "has_more": more, **ends})

    def _cancel(self, batch: Batch) -> web.Response:
        if batch.status in TERMINAL:
            return _error(409, "conflict", f"Batch {batch.id} is {batch.status} and cannot be cancelled.")
        batch.status = "cancelling"
        batch.times["cancelling_at"] = batch.created_at + 1
        return _json(batch.object())

    def _advance(self, batch: Batch) -> None:
        """One step on: validating -> in_progress (or failed) -> completed; cancelling -> cancelled."""
        if batch.status == "cancelling":
            batch.status, batch.times["cancelled_at"] = "cancelled", batch.created_at + 2
        elif batch.status == "validating":
            self._validate(batch)
        elif batch.status == "in_progress":
            self._complete(batch)

    def _lines(self, batch: Batch) -> list[dict[str, Any]]:
        data = self.files.files[batch.input_file_id].data
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def _validate(self, batch: Batch) -> None:
        problems = [{"code": "invalid_deployment", "line": n, "param": "body.model",
                     "message": "The deployment in the request is not found or does not match the batch."}
                    for n, line in enumerate(self._lines(batch), 1)
                    if line.get("body", {}).get("model") not in self.deployments]
        if problems:
            batch.status, batch.times["failed_at"] = "failed", batch.created_at + 1
            batch.errors = {"object": "list", "data": problems}
            return
        batch.status, batch.times["in_progress_at"] = "in_progress", batch.created_at + 1
        batch.counts["total"] = len(self._lines(batch))

    def _complete(self, batch: Batch) -> None:
        lines = self._lines(batch)
        out = [{"id": f"batch_req_{n}", "custom_id": line["custom_id"],
                "response": {"status_code": 200, "request_id": f"req-{n}", "body": _answer(line)},
                "error": None} for n, line in enumerate(lines, 1)]
        seq = next(self._ids)
        stored = StoredFile(id=f"file-{seq:024x}batchout", filename=f"{batch.id}_output.jsonl",
                            purpose="batch_output", created_at=batch.created_at + 3, expires_at=None,
                            data=b"".join(json.dumps(o).encode() + b"\n" for o in out))
        self.files.files[stored.id] = stored
        batch.output_file_id = stored.id
        batch.status = "completed"
        batch.times.update(finalizing_at=batch.created_at + 2, completed_at=batch.created_at + 3)
        batch.counts.update(completed=len(lines))
        if self.report_usage:
            batch.usage = {"input_tokens": PROMPT_TOKENS * len(lines),
                           "input_tokens_details": {"cached_tokens": 0},
                           "output_tokens": COMPLETION_TOKENS * len(lines),
                           "output_tokens_details": {"reasoning_tokens": 0},
                           "total_tokens": (PROMPT_TOKENS + COMPLETION_TOKENS) * len(lines)}


def _answer(line: dict[str, Any]) -> dict[str, Any]:
    """One line's answer, as its endpoint shapes it."""
    body, url = line["body"], line["url"]
    usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
             "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}
    if url.endswith("/embeddings"):
        return {"object": "list", "model": body["model"], "usage": {"prompt_tokens": PROMPT_TOKENS,
                                                                    "total_tokens": PROMPT_TOKENS},
                "data": [{"object": "embedding", "index": 0, "embedding": [0.0, 0.5]}]}
    if url.endswith("/responses"):
        return {"id": f"resp_{line['custom_id']}", "object": "response", "status": "completed",
                "model": body["model"], "output": [],
                "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS,
                          "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}}
    return {"id": f"chatcmpl-{line['custom_id']}", "object": "chat.completion", "created": CREATED,
            "model": body["model"], "usage": usage,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"answer to {line['custom_id']}"}}]}
