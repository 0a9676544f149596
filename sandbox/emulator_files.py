"""Azure OpenAI's files API for the emulator: upload, list, retrieve, content and delete, on the classic
surface (/openai/files?api-version=) and the v1 surface (/openai/v1/files).

Files are kept in memory, processed at once (`status: processed`). Content is written in pieces of
`piece_bytes`; a test may set `hold` (a threading.Event) to stop the content after its first piece until
the event is set, to see that a relay does not wait for the whole body.
Development tooling only: never deployed, never imported by the gateway.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import emulator_answers as answers

CREATED = 1700000000
PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
_ROUTE = re.compile(r"^/openai/(?P<v1>v1/)?files(?:/(?P<id>[^/]+)(?P<content>/content)?)?$")
_PATHS = answers.Paths(_ROUTE)
matches, is_v1 = _PATHS.matches, _PATHS.is_v1
_error, _json = answers.coded_error, answers.json_answer


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int
    expires_at: int | None

    def object(self) -> dict[str, Any]:
        return {"object": "file", "id": self.id, "bytes": len(self.data), "created_at": self.created_at,
                "expires_at": self.expires_at, "filename": self.filename, "purpose": self.purpose,
                "status": "processed", "status_details": None}






class Files:
    def __init__(self, piece_bytes: int = 65536) -> None:
        self.files: dict[str, StoredFile] = {}
        self.piece_bytes = piece_bytes
        self.hold: threading.Event | None = None
        self.page_size: int | None = None     # a test may make lists page, as Azure's do past their limit
        self._ids = itertools.count(1)

    async def handle(self, request: web.BaseRequest, body: bytes) -> web.StreamResponse:
        match = _ROUTE.match(request.path)
        assert match is not None
        if match["v1"] is None and not request.query.get("api-version"):
            return _error(400, "BadRequest", "Missing required query parameter api-version")
        file_id, method = match["id"], request.method
        if file_id is None and method == "POST":
            return self._upload(request, body)
        if file_id is None and method == "GET":
            return self._list(request, v1=match["v1"] is not None)
        if file_id is None or method not in (("GET",) if match["content"] else ("GET", "DELETE")):
            return _error(404, "404", "Resource not found")
        stored = self.files.get(file_id)
        if stored is None:
            return _error(404, "invalidPayload", f"File with id '{file_id}' not found.")
        if match["content"]:
            return await self._content(request, stored)
        if method == "DELETE":
            del self.files[file_id]
            return _json({"object": "file", "id": file_id, "deleted": True})
        return _json(stored.object())

    def _upload(self, request: web.BaseRequest, body: bytes) -> web.Response:
        try:
            fields, file = _form(request.headers.get("Content-Type", ""), body)
        except ValueError as exc:
            return _error(400, "invalidPayload", str(exc))
        purpose = fields.get("purpose")
        if purpose not in PURPOSES or file is None:
            return _error(400, "invalidPayload", "purpose and file are required")
        seq = next(self._ids)
        created = CREATED + seq
        seconds = fields.get("expires_after[seconds]")
        stored = StoredFile(id=f"file-{seq:032x}", filename=file[0], purpose=purpose, data=file[1],
                            created_at=created, expires_at=created + int(seconds) if seconds else None)
        self.files[stored.id] = stored
        return _json(stored.object())

    def _list(self, request: web.BaseRequest, v1: bool) -> web.Response:
        purpose = request.query.get("purpose")
        data = [f.object() for f in sorted(self.files.values(), key=lambda f: f.created_at, reverse=True)
                if purpose is None or f.purpose == purpose]
        after = request.query.get("after")
        if after is not None:
            ids = [f["id"] for f in data]
            data = data[ids.index(after) + 1:] if after in ids else []
        size = min(int(request.query.get("limit", "10000")), self.page_size or 10000)
        more, data = len(data) > size, data[:size]
        if not v1:
            return _json({"object": "list", "data": data, "has_more": more})
        ends = {"first_id": data[0]["id"], "last_id": data[-1]["id"]} if data else \
            {"first_id": None, "last_id": None}
        return _json({"object": "list", "data": data, "has_more": more, **ends})

    async def _content(self, request: web.BaseRequest, stored: StoredFile) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        for start in range(0, len(stored.data), self.piece_bytes):
            await response.write(stored.data[start:start + self.piece_bytes])
            if start == 0 and self.hold is not None:
                await asyncio.to_thread(self.hold.wait, 30)
        await response.write_eof()
        return response


def _form(content_type: str, body: bytes) -> tuple[dict[str, str], tuple[str, bytes] | None]:
    """A plain multipart/form-data reading: the text fields, and the file's name and bytes."""
    found = re.search(r"boundary=\"?([^\";]+)\"?", content_type)
    if not content_type.startswith("multipart/form-data") or found is None:
        raise ValueError("Content-Type must be multipart/form-data")
    delimiter = b"--" + found[1].encode()
    fields: dict[str, str] = {}
    file = None
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part[2:].partition(b"\r\n\r\n")
        content = content[:-2] if content.endswith(b"\r\n") else content
        name = re.search(rb'name="([^"]*)"', head)
        filename = re.search(rb'filename="([^"]*)"', head)
        if name is None:
            raise ValueError("a part has no name")
        if filename is not None:
            file = (filename[1].decode(), content)
        else:
            fields[name[1].decode()] = content.decode()
    return fields, file
