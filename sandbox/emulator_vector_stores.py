"""Azure OpenAI's vector stores for the emulator: stores, their files and file batches, and search, on the
v1 surface (/openai/v1/vector_stores...) and the classic one (/openai/vector_stores...?api-version=).

Stores are kept in memory and every file is processed at once (`status: completed`). A file is attached
only when the emulator's files store holds it. Search is a substring match over the attached files'
bytes. Request bodies are checked for members the API does not define, as Azure does, so a gateway that
forwards a member of its own is seen. Shapes follow OpenAI's API as Azure serves it.
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
from .emulator_files import Files

CREATED = 1700000000
DAY = 86400
_ROUTE = re.compile(r"^/openai/(?P<v1>v1/)?vector_stores(?:/(?P<store>[^/]+)"
                    r"(?:/(?P<sub>files|file_batches|search)(?:/(?P<item>[^/]+)(?:/(?P<action>[a-z_]+))?)?)?)?$")
_FIELDS = {
    "create": {"name", "description", "file_ids", "expires_after", "chunking_strategy", "metadata"},
    "update": {"name", "expires_after", "metadata"},
    "search": {"query", "filters", "max_num_results", "ranking_options", "rewrite_query"},
    "attach": {"file_id", "attributes", "chunking_strategy"},
    "file_update": {"attributes"},
    "batch": {"file_ids", "files", "attributes", "chunking_strategy"},
}
_AUTO = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}
_PATHS = answers.Paths(_ROUTE)
matches, is_v1 = _PATHS.matches, _PATHS.is_v1
_error, _json = answers.invalid_request, answers.json_answer


class _Refused(Exception):
    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param






@dataclass
class Store:
    id: str
    created_at: int
    name: str | None = None
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    expires_after: dict[str, Any] | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)     # file id -> vector_store.file
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)

    def object(self) -> dict[str, Any]:
        done = len(self.files)
        counts = {"in_progress": 0, "completed": done, "failed": 0, "cancelled": 0, "total": done}
        expires_at = (self.created_at + int(self.expires_after.get("days", 0)) * DAY
                      if self.expires_after else None)
        return {"id": self.id, "object": "vector_store", "created_at": self.created_at, "name": self.name,
                "description": self.description,
                "usage_bytes": sum(f["usage_bytes"] for f in self.files.values()), "file_counts": counts,
                "status": "completed", "expires_after": self.expires_after, "expires_at": expires_at,
                "last_active_at": self.created_at, "metadata": self.metadata}


class VectorStores:
    def __init__(self, files: Files) -> None:
        self.files = files
        self.stores: dict[str, Store] = {}
        self._ids = itertools.count(1)

    async def handle(self, request: web.BaseRequest, body: bytes) -> web.Response:
        match = _ROUTE.match(request.path)
        assert match is not None
        if match["v1"] is None and not request.query.get("api-version"):
            return _error(400, "Missing required query parameter api-version", "api-version")
        try:
            return _json(self._answer(request.method, match, request.query, body))
        except _Refused as refused:
            return _error(refused.status, refused.message, refused.param)

    def _answer(self, method: str, match: re.Match[str], query: Any, body: bytes) -> dict[str, Any]:
        if match["store"] is None:
            if method == "POST":
                return self._create(_payload(body, "create"))
            if method == "GET":
                return _page([s.object() for s in self.stores.values()], query)
            raise _Refused(405, "Method not allowed")
        store = self.stores.get(match["store"])
        if store is None:
            raise _Refused(404, f"No vector store found with id '{match['store']}'.")
        if match["sub"] is None:
            return self._one(method, store, body)
        if match["sub"] == "search" and match["item"] is None and method == "POST":
            return _search(self, store, _payload(body, "search"))
        if match["sub"] == "files":
            return self._file(method, store, match["item"], match["action"], body, query)
        if match["sub"] == "file_batches":
            return self._batch(method, store, match["item"], match["action"], body, query)
        raise _Refused(404, "Resource not found")

    def _create(self, payload: dict[str, Any]) -> dict[str, Any]:
        file_ids = payload.get("file_ids") or []
        for file_id in file_ids:
            self.file_bytes(file_id)
        seq = next(self._ids)
        store = Store(id=f"vs_{seq:024x}", created_at=CREATED + seq, name=payload.get("name"),
                      description=payload.get("description"), metadata=payload.get("metadata") or {},
                      expires_after=payload.get("expires_after"))
        self.stores[store.id] = store
        for file_id in file_ids:
            self._attach(store, file_id, {}, payload.get("chunking_strategy"))
        return store.object()

    def _one(self, method: str, store: Store, body: bytes) -> dict[str, Any]:
        if method == "GET":
            return store.object()
        if method == "DELETE":
            del self.stores[store.id]
            return {"id": store.id, "object": "vector_store.deleted", "deleted": True}
        if method == "POST":
            payload = _payload(body, "update")
            store.name = payload.get("name", store.name)
            store.metadata = payload.get("metadata", store.metadata) or {}
            store.expires_after = payload.get("expires_after", store.expires_after)
            return store.object()
        raise _Refused(405, "Method not allowed")

    def file_bytes(self, file_id: object) -> bytes:
        stored = self.files.files.get(file_id) if isinstance(file_id, str) else None
        if stored is None:
            raise _Refused(404, f"No file found with id '{file_id}'.", "file_id")
        return stored.data

    def _attach(self, store: Store, file_id: str, attributes: dict[str, Any] | None,
                chunking: dict[str, Any] | None) -> dict[str, Any]:
        data = self.file_bytes(file_id)
        attached = {"id": file_id, "object": "vector_store.file", "usage_bytes": len(data),
                    "created_at": store.created_at + len(store.files) + 1, "vector_store_id": store.id,
                    "status": "completed", "last_error": None, "chunking_strategy": chunking or _AUTO,
                    "attributes": attributes or {}}
        store.files[file_id] = attached
        return attached

    def _file(self, method: str, store: Store, file_id: str | None, action: str | None, body: bytes,
              query: Any) -> dict[str, Any]:
        if file_id is None:
            if method == "POST":
                payload = _payload(body, "attach")
                return self._attach(store, payload.get("file_id"), payload.get("attributes"),
                                    payload.get("chunking_strategy"))
            return _page(list(store.files.values()), query)
        attached = store.files.get(file_id)
        if attached is None:
            raise _Refused(404, f"No file found with id '{file_id}' in vector store '{store.id}'.")
        if action == "content" and method == "GET":
            text = self.file_bytes(file_id).decode("utf-8", "replace")
            return {"object": "vector_store.file_content.page", "data": [{"type": "text", "text": text}],
                    "has_more": False, "next_page": None}
        if action is not None:
            raise _Refused(404, "Resource not found")
        if method == "DELETE":
            del store.files[file_id]
            return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}
        if method == "POST":
            attached["attributes"] = _payload(body, "file_update").get("attributes") or {}
        return attached

    def _batch(self, method: str, store: Store, batch_id: str | None, action: str | None, body: bytes,
               query: Any) -> dict[str, Any]:
        if batch_id is None and method == "POST":
            return self._new_batch(store, _payload(body, "batch"))
        batch = store.batches.get(batch_id or "")
        if batch is None:
            raise _Refused(404, f"No file batch found with id '{batch_id}'.")
        if action == "cancel" and method == "POST":
            return batch    # every file was processed at once: nothing is left to cancel
        if action == "files" and method == "GET":
            return _page([store.files[i] for i in batch["_files"] if i in store.files], query)
        if action is None and method == "GET":
            return {k: v for k, v in batch.items() if k != "_files"}
        raise _Refused(404, "Resource not found")

    def _new_batch(self, store: Store, payload: dict[str, Any]) -> dict[str, Any]:
        entries = [{"file_id": i} for i in payload.get("file_ids") or []] + list(payload.get("files") or [])
        for entry in entries:
            self.file_bytes(entry.get("file_id"))
        for entry in entries:
            self._attach(store, entry["file_id"], entry.get("attributes", payload.get("attributes")),
                         entry.get("chunking_strategy", payload.get("chunking_strategy")))
        seq = next(self._ids)
        count = len(entries)
        batch = {"id": f"vsfb_{seq:024x}", "object": "vector_store.files_batch", "created_at": CREATED + seq,
                 "vector_store_id": store.id, "status": "completed",
                 "file_counts": {"in_progress": 0, "completed": count, "failed": 0, "cancelled": 0,
                                 "total": count},
                 "_files": [e["file_id"] for e in entries]}
        store.batches[batch["id"]] = batch
        return {k: v for k, v in batch.items() if k != "_files"}


def _payload(body: bytes, action: str) -> dict[str, Any]:
    try:
        payload = json.loads(body) if body else {}
    except ValueError:
        raise _Refused(400, "The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise _Refused(400, "The request body must be a JSON object.")
    for name in payload:
        if name not in _FIELDS[action]:
            raise _Refused(400, f"Unrecognized request argument supplied: {name}", name)
    return payload


def _search(stores: VectorStores, store: Store, payload: dict[str, Any]) -> dict[str, Any]:
    query = payload.get("query")
    if not isinstance(query, str) or not query:
        raise _Refused(400, "query must be a non-empty string", "query")
    hits = []
    for file_id, attached in store.files.items():
        text = stores.file_bytes(file_id).decode("utf-8", "replace")
        if query.lower() in text.lower():
            name = stores.files.files[file_id].filename
            hits.append({"file_id": file_id, "filename": name, "score": 1.0,
                         "attributes": attached["attributes"], "content": [{"type": "text", "text": text}]})
    limit = payload.get("max_num_results", 10)
    return {"object": "vector_store.search_results.page", "search_query": [query], "data": hits[:limit],
            "has_more": False, "next_page": None}


def _page(items: list[dict[str, Any]], query: Any) -> dict[str, Any]:
    """OpenAI's list page: `order` by creation (default desc), `after`/`before` an id, `limit` 1-100."""
    descending = query.get("order", "desc") == "desc"
    ordered = sorted(items, key=lambda i: (i["created_at"], i["id"]), reverse=descending)
    ids = [i["id"] for i in ordered]
    if (after := query.get("after")) is not None:
        ordered = ordered[ids.index(after) + 1:] if after in ids else []
    if (before := query.get("before")) is not None:
        ids = [i["id"] for i in ordered]
        ordered = ordered[:ids.index(before)] if before in ids else []
    if (status := query.get("filter")) is not None:
        ordered = [i for i in ordered if i.get("status") == status]
    limit = int(query.get("limit", "20"))
    page = ordered[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(ordered) > limit}
