"""What the emulator's object routes (files, batches, vector stores, stored responses) share: which
paths are theirs, and Azure's JSON answers. Development tooling only: never deployed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Paths:
    """A kind's routes, on both surfaces: `/openai/<kind>...` and `/openai/v1/<kind>...` (group `v1`)."""
    route: re.Pattern[str]

    def matches(self, path: str) -> bool:
        return self.route.match(path) is not None

    def is_v1(self, path: str) -> bool:
        match = self.route.match(path)
        return match is not None and match["v1"] is not None


def json_answer(value: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(value, separators=(",", ":")).encode(),
                        content_type="application/json")


def coded_error(status: int, code: str, message: str) -> web.Response:
    """Azure's error body with a code (files, batches)."""
    return json_answer({"error": {"code": code, "message": message}}, status)


def invalid_request(status: int, message: str, param: str | None = None) -> web.Response:
    """OpenAI's error body with a param (vector stores, stored responses)."""
    return json_answer({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                  "code": None}}, status)
