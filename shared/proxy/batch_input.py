"""A batch's input file, checked line by line and rewritten from gateway model names to the deployment.

A batch file names, in each line's `body.model`, what the caller calls the model: a gateway model name.
The upstream knows only deployments, and every caller shares the gateway's credential, so the file is
read here as it arrives (never more than its limit), each line strictly: one JSON object with exactly
`custom_id` (unique), `method` `POST`, `url` (the batch's endpoint) and `body` (an object with a
`model`). Each line's model is resolved by the caller's rule (the caller's roles, and a deployment in
the account holding the file); Azure takes one deployment per batch file, so every line must name the
same model. Errors name the line by number, never by the caller's text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from .. import strict_json
from ..errors import InvalidRequest

ENDPOINTS = {"/v1/chat/completions": "chat/completions", "/chat/completions": "chat/completions",
             "/v1/embeddings": "embeddings", "/embeddings": "embeddings",
             "/v1/responses": "responses", "/responses": "responses"}
"""The endpoints a batch may name (as Azure spells them, on its v1 and classic surfaces), and the
operation each is: a line's `url` must be the same operation as its batch's endpoint."""
MAX_LINES = 100_000
"""Requests per input file: Azure's own limit."""
MAX_CUSTOM_ID = 512
LINE_KEYS = frozenset({"custom_id", "method", "url", "body"})

Resolve = Callable[[str, int], str]
"""(model name, line number) -> its deployment in the file's account; raises the refusal."""


@dataclass(frozen=True, slots=True)
class Rewritten:
    lines: tuple[bytes, ...]    # each rewritten line, newline-terminated
    model: str                  # the gateway model every line names
    size: int                   # bytes of all lines


def operation_of(endpoint: object) -> str:
    if not isinstance(endpoint, str) or endpoint not in ENDPOINTS:
        raise InvalidRequest("endpoint must be one of " + ", ".join(ENDPOINTS), param="endpoint")
    return ENDPOINTS[endpoint]


def _refuse(number: int, problem: str) -> InvalidRequest:
    return InvalidRequest(f"line {number} of the input file {problem}", param="input_file_id")


class Rewriter:
    """Fed the file's bytes as they arrive (`feed`), then `finish`ed: its lines, rewritten."""

    def __init__(self, endpoint: str, resolve: Resolve, *, max_line_bytes: int) -> None:
        self._operation = operation_of(endpoint)
        self._resolve = resolve
        self._max_line = max_line_bytes
        self._pending = b""
        self._number = 0
        self._blank: int | None = None      # the first empty line seen: refused unless nothing follows
        self._ids: set[str] = set()
        self._model: tuple[str, str] | None = None     # (gateway model, deployment) of line 1
        self._out: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        *whole, self._pending = (self._pending + chunk).split(b"\n")
        for line in whole:
            self._line(line)
        if len(self._pending) > self._max_line:
            raise _refuse(self._number + 1, f"is longer than {self._max_line} bytes")

    def finish(self) -> Rewritten:
        if self._pending:
            self._line(self._pending)
            self._pending = b""
        if self._model is None:
            raise InvalidRequest("the input file holds no requests", param="input_file_id")
        return Rewritten(tuple(self._out), self._model[0], self._size)

    def _line(self, raw: bytes) -> None:
        self._number += 1
        raw = raw.removesuffix(b"\r")
        if not raw.strip():
            self._blank = self._blank or self._number
            return
        if self._blank is not None:
            raise _refuse(self._blank, "is empty")
        if len(raw) > self._max_line:
            raise _refuse(self._number, f"is longer than {self._max_line} bytes")
        if len(self._ids) >= MAX_LINES:
            raise InvalidRequest(f"the input file holds more than {MAX_LINES} requests",
                                 param="input_file_id")
        doc = self._parsed(raw)
        deployment = self._deployment(doc["body"]["model"])
        body = {k: (deployment if k == "model" else v) for k, v in doc["body"].items()}
        line = {"custom_id": doc["custom_id"], "method": "POST", "url": doc["url"], "body": body}
        out = json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        self._out.append(out)
        self._size += len(out)

    def _parsed(self, raw: bytes) -> dict[str, object]:
        number = self._number
        try:
            doc = strict_json.loads(raw, max_depth=strict_json.BODY_DEPTH)
        except strict_json.StrictJSONError as exc:
            raise _refuse(number, f"is not strict JSON: {exc}") from None
        if not isinstance(doc, dict) or set(doc) != LINE_KEYS:
            raise _refuse(number, "must be an object with exactly custom_id, method, url and body")
        custom_id = doc["custom_id"]
        if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= MAX_CUSTOM_ID:
            raise _refuse(number, f"needs a custom_id of 1 to {MAX_CUSTOM_ID} characters")
        if custom_id in self._ids:
            raise _refuse(number, "repeats the custom_id of an earlier line")
        self._ids.add(custom_id)
        if doc["method"] != "POST":
            raise _refuse(number, "must have method POST")
        if not isinstance(doc["url"], str) or ENDPOINTS.get(doc["url"]) != self._operation:
            raise _refuse(number, "has a url other than the batch's endpoint")
        body = doc["body"]
        if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not body["model"]:
            raise _refuse(number, "needs a body object with a model")
        return doc

    def _deployment(self, model: str) -> str:
        if self._model is not None and model == self._model[0]:
            return self._model[1]
        deployment = self._resolve(model, self._number)     # refuses a model the caller may not use
        if self._model is not None:
            raise _refuse(self._number, "names another model than line 1: a batch takes one model "
                                        "(Azure runs a batch file on one deployment)")
        self._model = (model, deployment)
        return deployment
