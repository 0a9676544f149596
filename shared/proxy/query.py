"""A route's query parameters, allowlisted: each one known and well formed, at most once unless it is
an array; on Azure's classic shape an `api-version` is required and checked, and never passed on (the
account's own goes upstream)."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from starlette.datastructures import QueryParams

from ..errors import InvalidRequest
from . import operations


def classic_version(query: QueryParams) -> str:
    """The classic shape's api-version: exactly one, of the right form."""
    versions = query.getlist("api-version")
    if len(versions) > 1:
        raise InvalidRequest("more than one api-version", param="api-version")
    return operations.api_version(versions[0] if versions else None)


def allowlisted(query: QueryParams, allowed: Mapping[str, re.Pattern[str]], *, classic: bool,
                repeatable: Collection[str] = ()) -> tuple[tuple[str, str], ...]:
    """The allowed parameters as (name, value) pairs, in the caller's order."""
    kept: list[tuple[str, str]] = []
    for name in dict.fromkeys(query.keys()):
        values = query.getlist(name)
        if classic and name == "api-version":
            continue
        pattern = allowed.get(name)
        if pattern is None:
            raise InvalidRequest("a query parameter is not supported here; supported: "
                                 + (", ".join(allowed) or "none"))
        if len(values) > 1 and name not in repeatable:
            raise InvalidRequest(f"query parameter {name} is given more than once", param=name)
        for value in values:
            if not pattern.match(value):
                raise InvalidRequest(f"query parameter {name} has an invalid value", param=name)
            kept.append((name, value))
    if classic:
        classic_version(query)
    return tuple(kept)
