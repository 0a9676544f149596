"""The app's functions as the worker indexed them: each one's id, trigger and, for HTTP, its route.

Built from the worker's FunctionMetadataResponse, whose `raw_bindings` are JSON strings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from funchost.routing import Route, RouteTable, parse

ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    function_id: str
    trigger: str                # the trigger binding's type: httpTrigger, timerTrigger, warmupTrigger...
    trigger_param: str          # the parameter the trigger's data is bound to
    binding: dict[str, Any]     # the trigger binding as declared
    metadata: Any               # the RpcFunctionMetadata, sent back in FunctionLoadRequest


def _trigger(metadata: Any) -> dict[str, Any]:
    bindings = [json.loads(raw) for raw in metadata.raw_bindings]
    triggers = [b for b in bindings if str(b.get("type", "")).endswith("Trigger")]
    if len(triggers) != 1:
        raise ValueError(f"function {metadata.name!r} has {len(triggers)} trigger bindings")
    return triggers[0]


def catalog(metadata_results: Iterable[Any]) -> list[Function]:
    """The functions of a FunctionMetadataResponse; ValueError if one is malformed."""
    out = []
    for metadata in metadata_results:
        binding = _trigger(metadata)
        out.append(Function(metadata.name, metadata.function_id, binding["type"], binding["name"],
                            binding, metadata))
    return out


def http_routes(functions: Iterable[Function], prefix: str) -> RouteTable:
    """The HTTP functions' routes; a function without a route is served at its name, as on Azure."""
    routes: list[Route] = []
    for fn in functions:
        if fn.trigger == "httpTrigger":
            methods = fn.binding.get("methods") or ALL_METHODS
            routes.append(parse(fn.name, fn.binding.get("route") or fn.name, methods, prefix))
    return RouteTable(routes)
