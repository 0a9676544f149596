"""The vector store routes on the three shapes: /v1, /openai/v1 and the classic /openai (api-version).

Each path is one route (both hosts match a path once), its methods each their own work; a work is told
whether it serves the classic shape, whose api-version it checks and does not pass on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from ..http import Route, route
from . import vector_store_files as vf
from . import vector_stores as vs

if TYPE_CHECKING:
    from starlette.responses import Response

    from ..http import Call

Work = Callable[["Call", bool], Awaitable["Response"]]

_STORE = "vector_stores/{vector_store_id}"
_FILE = _STORE + "/files/{file_id}"
_BATCH = _STORE + "/file_batches/{batch_id}"
PATHS: tuple[tuple[str, str, Mapping[str, Work]], ...] = (
    ("vector_stores", "vector_stores", {"GET": vs.list_stores, "POST": vs.create}),
    (_STORE, "vector_store", {"GET": vs.retrieve, "POST": vs.update, "DELETE": vs.delete}),
    (_STORE + "/search", "vector_store_search", {"POST": vs.search}),
    (_STORE + "/files", "vector_store_files", {"GET": vf.list_files, "POST": vf.attach}),
    (_FILE, "vector_store_file", {"GET": vf.retrieve_file, "POST": vf.update_file, "DELETE": vf.detach}),
    (_FILE + "/content", "vector_store_file_content", {"GET": vf.file_content}),
    (_STORE + "/file_batches", "vector_store_file_batches", {"POST": vf.create_batch}),
    (_BATCH, "vector_store_file_batch", {"GET": vf.batch}),
    (_BATCH + "/cancel", "vector_store_file_batch_cancel", {"POST": vf.cancel_batch}),
    (_BATCH + "/files", "vector_store_file_batch_files", {"GET": vf.batch_files}),
)
"""(path under the shape's prefix, route name, method -> work)."""


def _bound(works: Mapping[str, Work], classic: bool) -> Callable[[Call], Awaitable[Response]]:
    async def dispatch(call: Call) -> Response:
        return await works[call.request.method](call, classic)

    return dispatch


def _routes() -> tuple[Route, ...]:
    shapes = (("v1/", "", False), ("openai/v1/", "_azure_v1", False), ("openai/", "_azure", True))
    return tuple(route(prefix + path, tuple(works), name + suffix, _bound(works, classic))
                 for prefix, suffix, classic in shapes for path, name, works in PATHS)


ROUTES: tuple[Route, ...] = _routes()
