"""The files of a vector store and its file batches: attach, list, retrieve, update, detach, content;
batches create, retrieve, cancel and list files.

A vector store file's id is the file's own id, and the store's ownership governs its files: who may use
the store may list, read and detach every file in it (the upstream answers 404 for a file not in it).
Attaching is where a caller could reach someone else's file, so every file named by an attach or a
file batch must be one the caller may use, held by the store's account (`check_files`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from ..errors import InvalidRequest, NotFound
from ..upstream.response import to_starlette
from . import vector_store_access as access
from .files import FILE_ID, no_such_file

if TYPE_CHECKING:
    from ..http import Call

ATTACH = ("file_id", "attributes", "chunking_strategy")
UPDATE = ("attributes",)
BATCH = ("file_ids", "files", "attributes", "chunking_strategy")
BATCH_FILE = frozenset({"file_id", "attributes", "chunking_strategy"})
BATCH_ID = re.compile(r"^vsfb_[A-Za-z0-9_-]{1,200}$")
NO_SUCH_BATCH = "no such file batch, or you do not have access to it"


def _file_id(call: Call) -> str:
    """The file named in the path; a malformed one is the 404 of a file not in the store."""
    file_id = call.request.path_params["file_id"]
    if not FILE_ID.match(file_id):
        raise no_such_file()
    return file_id


def _batch_id(call: Call) -> str:
    batch_id = call.request.path_params["batch_id"]
    if not BATCH_ID.match(batch_id):
        raise NotFound(NO_SUCH_BATCH, param="batch_id")
    return batch_id


async def attach(call: Call, classic: bool) -> Response:
    store = await access.store_of(call)
    access.query_of(call, {}, classic)
    doc = await access.body_of(call, ATTACH, store.gw.settings.max_body_bytes)
    file_id = doc.get("file_id")
    if not isinstance(file_id, str):
        raise InvalidRequest("file_id must be the id of a file", param="file_id")
    await access.check_files(store.gw, store.view, store.principal, [("file_id", file_id)], store.account)
    return to_starlette(await access.forward(store, call, "POST", ("files",), body=doc))


async def list_files(call: Call, classic: bool) -> Response:
    """The upstream's page as it is: every file in the caller's store is theirs to see."""
    store = await access.store_of(call)
    query = access.query_of(call, access.FILE_LIST, classic)
    return to_starlette(await access.forward(store, call, "GET", ("files",), query=query))


async def retrieve_file(call: Call, classic: bool) -> Response:
    store = await access.store_of(call)
    access.query_of(call, {}, classic)
    return to_starlette(await access.forward(store, call, "GET", ("files", _file_id(call))))


async def update_file(call: Call, classic: bool) -> Response:
    store = await access.store_of(call)
    access.query_of(call, {}, classic)
    file_id = _file_id(call)
    doc = await access.body_of(call, UPDATE, store.gw.settings.max_body_bytes)
    return to_starlette(await access.forward(store, call, "POST", ("files", file_id), body=doc))


async def detach(call: Call, classic: bool) -> Response:
    """Removes the file from the store; the file itself stays (and stays its uploader's)."""
    store = await access.store_of(call)
    access.query_of(call, {}, classic)
    return to_starlette(await access.forward(store, call, "DELETE", ("files", _file_id(call))))


async def file_content(call: Call, classic: bool) -> Response:
    store = await access.store_of(call)
    access.query_of(call, {}, classic)
    return to_starlette(await access.forward(store, call, "GET", ("files", _file_id(call), "content")))


async def create_batch(call: Call, classic: bool) -> Response:
    store = await access.store_of(call)
    access.query_of(call, {}, classic)
    doc = await access.body_of(call, BATCH, store.gw.settings.max_body_bytes)
    named = _batch_files(doc)
    await access.check_files(store.gw, store.view, store.principal, named, store.account)
    return to_starlette(await access.forward(store, call, "POST", ("file_batches",), body=doc))


def _batch_files(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, file id) of every file a batch names: `file_ids`, or `files[].file_id`."""
    named = [(f"file_ids[{n}]", i) for n, i in enumerate(access.file_ids_of(doc["file_ids"], "file_ids"))] \
        if "file_ids" in doc else []
    entries = doc.get("files", [])
    if not isinstance(entries, list) or len(entries) > access.MAX_FILES:
        raise InvalidRequest(f"files must be an array of at most {access.MAX_FILES} objects", param="files")
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("file_id"), str) \
                or not set(entry) <= BATCH_FILE:
            raise InvalidRequest("each of files must be an object with file_id, and optionally attributes "
                                 "and chunking_strategy", param=f"files[{n}]")
        named.append((f"files[{n}].file_id", entry["file_id"]))
    if not named:
        raise InvalidRequest("a file batch needs file_ids or files", param="file_ids")
    return named


async def batch(call: Call, classic: bool) -> Response:
    store = await access.store_of(call)
    access.query_of(call, {}, classic)
    return to_starlette(await access.forward(store, call, "GET", ("file_batches", _batch_id(call))))


async def cancel_batch(call: Call, classic: bool) -> Response:
    store = await access.store_of(call)
    access.query_of(call, {}, classic)
    path = ("file_batches", _batch_id(call), "cancel")
    return to_starlette(await access.forward(store, call, "POST", path))


async def batch_files(call: Call, classic: bool) -> Response:
    store = await access.store_of(call)
    query = access.query_of(call, access.FILE_LIST, classic)
    return to_starlette(await access.forward(store, call, "GET", ("file_batches", _batch_id(call), "files"),
                                             query=query))
