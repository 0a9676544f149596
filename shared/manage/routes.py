"""The /manage API (SPEC §3): CRUD for every resource kind and for collaborator bindings, with ETags,
plus status, explain and the OpenAPI document.

Reads go to storage (fresh, with each entity's ETag); authorization uses the snapshot's Policy plus
GATEWAY_ADMINS (authz.py). Every change goes through `ConfigStore.write`: all or nothing, audited
with the caller's principal, and the configuration version moved on so every process reloads.

`ROUTES` is this plane's route table; shared/routes.py composes it with the other planes'.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..callers import authenticate
from ..config.document import item_document
from ..config.entities import MAX_SPEC_CHARS, Write, collaborator_key, encode_spec
from ..config.schema import NAME_RE, RESOURCE_RE, ConfigError, parse_collaborator, parse_item
from ..config.schema import parse_principal as _parse_principal
from ..errors import Conflict, InvalidRequest, NotFound, RequestTooLarge
from ..http import Call, Route, route
from . import authz
from .resources import BY_PREFIX, KINDS, Kind

if TYPE_CHECKING:
    from ..runtime import Gateway

Work = Callable[[Call], Awaitable[Response]]
MAX_MANAGE_BODY = 256 * 1024


async def _caller(req: Request) -> tuple[Gateway, authz.Caller]:
    gw, view, principal = await authenticate(Call.of(req))
    return gw, authz.Caller.of(view.policy, principal.principals, principal.user)


async def _body(req: Request) -> dict[str, Any]:
    return await Call.of(req).json(MAX_MANAGE_BODY)


def _invalid(exc: ConfigError) -> InvalidRequest:
    field = exc.field.removeprefix("body").lstrip(".") or None
    return InvalidRequest(f"{field}: {exc.problem}" if field else exc.problem, param=field)


def _precondition(req: Request) -> dict[str, Any]:
    """If-Match (an ETag, or * for "must exist") / If-None-Match: * ("must not exist")."""
    if_match = req.headers.get("if-match")
    if if_match is not None:
        return {"etag": if_match.strip()}
    if_none = req.headers.get("if-none-match")
    if if_none is not None:
        if if_none.strip() != "*":
            raise InvalidRequest("If-None-Match accepts only *", param="If-None-Match")
        return {"etag": None}
    return {}


def _etag_headers(etag: str | None) -> dict[str, str]:
    return {"ETag": etag} if etag else {}


def _handler(name: str, work: Callable[[Request], Awaitable[Response]]) -> Work:
    """A /manage handler written against the Request, as a work function of the one request path
    (shared/http.py), which names, frames, logs and answers errors for it."""
    async def run(call: Call) -> Response:
        return await work(call.request)

    run.__name__ = run.__qualname__ = name
    return run


# -- resources -------------------------------------------------------------------------------------

async def _references(gw: Gateway, kind: Kind, item: Any) -> None:
    """Every resource the new document names must exist in storage (400 naming the field)."""
    store = gw.store
    needed: list[tuple[str, str, str]] = []   # (field, section, name)
    if kind.section == "external_identities":
        needed.append(("identity_provider", "identity_providers", item.identity_provider))
    if kind.section == "models":
        needed += [(f"targets[{i}].account", "accounts", t.account) for i, t in enumerate(item.targets)]
    if kind.has_workspace and getattr(item, "workspace", None):
        needed.append(("workspace", "workspaces", item.workspace))
    for field, section, name in needed:
        if await store.get(section, name) is None:
            raise InvalidRequest(f"{field}: unknown {section[:-1].replace('_', ' ')} {name!r}", param=field)


async def _referrers(gw: Gateway, kind: Kind, name: str) -> list[str]:
    """What still refers to the resource about to be deleted."""
    found: list[str] = []
    if kind.section == "identity_providers":
        identities = await gw.store.list_section("external_identities")
        found += [f"external identity {d['name']}" for d, _ in identities
                  if d.get("identity_provider") == name]
    if kind.section == "accounts":
        found += [f"model {d['name']}" for d, _ in await gw.store.list_section("models")
                  if any(t.get("account") == name for t in d.get("targets", []))]
    if kind.section == "workspaces":
        for other in KINDS:
            if other.has_workspace:
                members = await gw.store.list_section(other.section)
                found += [f"{other.singular} {d['name']}" for d, _ in members if d.get("workspace") == name]
    return found


def _resource_handlers(kind: Kind) -> tuple[Work, Work]:
    async def collection(req: Request) -> Response:
        gw, caller = await _caller(req)
        if kind.prefix is None:
            authz.require_admin(caller, f"read {kind.path.replace('-', ' ')}")
        items = [doc for doc, _ in await gw.store.list_section(kind.section)
                 if authz.can_read(caller, kind, doc["name"], doc)]
        return JSONResponse({"items": items})

    async def item(req: Request) -> Response:
        gw, caller = await _caller(req)
        name = req.path_params["name"]
        valid = bool(NAME_RE.match(name))
        if req.method == "PUT":
            return await _put(req, gw, caller, name, valid)
        found = await gw.store.get(kind.section, name) if valid else None
        stored = found[0] if found else None
        if req.method == "GET":
            authz.check_resource(caller, kind, name, "read", stored)
            if found is None:
                raise authz.not_found(kind.singular, name)
            return JSONResponse(found[0], headers=_etag_headers(found[1]))
        return await _delete(req, gw, caller, name, found)

    async def _put(req: Request, gw: Gateway, caller: authz.Caller, name: str, valid: bool) -> Response:
        condition = _precondition(req)
        if kind.prefix is None:  # before looking at the body: nothing about it is any of their business
            authz.require_admin(caller, f"manage {kind.path.replace('-', ' ')}")
        doc = await _body(req)
        if not valid:
            raise InvalidRequest(f"name: {name!r} must be letters, digits and hyphens (at most 64)",
                                 param="name")
        if doc.setdefault("name", name) != name:
            raise InvalidRequest(f"name: the body names {doc['name']!r} but the path {name!r}", param="name")
        try:
            parsed = parse_item(kind.section, doc, "body", allowlist=gw.allowlist)
        except ConfigError as exc:
            raise _invalid(exc) from None
        document = item_document(parsed)
        if len(encode_spec(document)) > MAX_SPEC_CHARS:
            raise RequestTooLarge(f"the {kind.singular} is over {MAX_SPEC_CHARS // 1024} KiB of JSON")
        found = await gw.store.get(kind.section, name)
        authz.check_resource(caller, kind, name, "write", found[0] if found else None, document)
        await _references(gw, kind, parsed)
        expected = {(kind.section, name): condition["etag"]} if condition else None
        applied = await gw.store.write([Write(kind.section, name, document)], actor=caller.name,
                                       expected=expected)
        return JSONResponse(document, status_code=200 if found else 201,
                            headers=_etag_headers(applied[0].etag))

    async def _delete(req: Request, gw: Gateway, caller: authz.Caller, name: str,
                      found: tuple[dict[str, Any], str] | None) -> Response:
        condition = _precondition(req)
        authz.check_resource(caller, kind, name, "delete", found[0] if found else None)
        if found is None:
            raise authz.not_found(kind.singular, name)
        referrers = await _referrers(gw, kind, name)
        if referrers:
            raise Conflict(f"{kind.singular} {name!r} is still used by {', '.join(referrers[:10])}"
                           f"{' and more' if len(referrers) > 10 else ''}: change those first")
        writes = []
        resource = kind.resource(name)
        if resource:  # its bindings go first, so no binding ever names a missing resource
            writes += [Write("collaborators", collaborator_key(d["resource"], d["principal"]), None)
                       for d, _ in await gw.store.bindings(resource=resource)]
        writes.append(Write(kind.section, name, None))
        expected = {(kind.section, name): condition["etag"]} if condition else None
        await gw.store.write(writes, actor=caller.name, expected=expected)
        return Response(status_code=204)

    return (_handler(f"manage_{kind.ident}", collection), _handler(f"manage_{kind.ident}_item", item))


# -- collaborators ---------------------------------------------------------------------------------

def _resource_param(value: str, field: str) -> str:
    if value != "gateway:default":
        m = RESOURCE_RE.match(value)
        if not m or not NAME_RE.match(m.group(2)):
            raise InvalidRequest(f"{field}: {value!r} must be model:, mcp-server:, agent:, workspace:<name> "
                                 "or gateway:default", param=field)
    return value


def _principal_param(value: str, field: str) -> str:
    try:
        return _parse_principal(value, field)
    except ConfigError as exc:
        raise _invalid(exc) from None


async def _resource_exists(gw: Gateway, resource: str) -> bool:
    if resource == "gateway:default":
        return True
    m = RESOURCE_RE.match(resource)
    assert m is not None
    return await gw.store.get(BY_PREFIX[m.group(1)].section, m.group(2)) is not None


async def _collaborators_work(req: Request) -> Response:
    gw, caller = await _caller(req)
    if req.method == "GET":
        resource = req.query_params.get("resource")
        principal = req.query_params.get("principal")
        if resource is not None:
            authz.check_bindings(caller, _resource_param(resource, "resource"))
        if principal is not None:
            _principal_param(principal, "principal")
        found = await gw.store.bindings(resource=resource, principal=principal)
        return JSONResponse({"items": [d for d, _ in found if authz.manages(caller, d["resource"])]})
    condition = _precondition(req)
    doc = await _body(req)
    if req.method == "PUT":
        try:
            binding = parse_collaborator(doc, "body")
        except ConfigError as exc:
            raise _invalid(exc) from None
        resource, principal, role = binding.resource, binding.principal, binding.role
    else:
        extra = sorted(set(doc) - {"resource", "principal", "role"})
        if extra:
            raise InvalidRequest(f"{extra[0]}: unknown field", param=extra[0])
        for field in ("resource", "principal"):
            if not isinstance(doc.get(field), str):
                raise InvalidRequest(f"{field}: is required", param=field)
        resource = _resource_param(doc["resource"], "resource")
        principal = _principal_param(doc["principal"], "principal")
        role = doc.get("role")
        if role is not None and role not in ("viewer", "editor", "manager", "admin"):
            raise InvalidRequest("role: must be one of viewer, editor, manager, admin", param="role")
    authz.check_bindings(caller, resource)
    key = collaborator_key(resource, principal)
    expected = {("collaborators", key): condition["etag"]} if condition else None
    if req.method == "PUT":
        if not await _resource_exists(gw, resource):
            raise InvalidRequest(f"resource: unknown resource {resource!r}", param="resource")
        if role == "admin" and not caller.is_admin:
            raise authz.PermissionDenied("only gateway admins may grant admin")
        document = {"resource": resource, "principal": principal, "role": role}
        existed = await gw.store.get("collaborators", key)
        applied = await gw.store.write([Write("collaborators", key, document)], actor=caller.name,
                                       expected=expected)
        return JSONResponse(document, status_code=200 if existed else 201,
                            headers=_etag_headers(applied[0].etag))
    existing = await gw.store.get("collaborators", key)
    if existing is None or (role is not None and existing[0]["role"] != role):
        raise NotFound(f"{principal} has no {role or 'role'} on {resource}")
    await gw.store.write([Write("collaborators", key, None)], actor=caller.name, expected=expected)
    return Response(status_code=204)


# -- operator tools --------------------------------------------------------------------------------

async def _status_work(req: Request) -> Response:
    from ..status import status

    gw, caller = await _caller(req)
    authz.require_admin(caller, "read the gateway's status")
    return JSONResponse(json.loads(json.dumps(await status(gw), default=str)))


async def _explain_work(req: Request) -> Response:
    from ..explain import explain

    gw, caller = await _caller(req)
    authz.require_admin(caller, "explain tokens")
    doc = await _body(req)
    for field in ("token", "resource"):
        if not isinstance(doc.get(field), str) or not doc[field].strip():
            raise InvalidRequest(f"{field}: must be a non-empty string", param=field)
    extra = sorted(set(doc) - {"token", "resource"})
    if extra:
        raise InvalidRequest(f"{extra[0]}: unknown field", param=extra[0])
    return JSONResponse(json.loads(json.dumps(await explain(gw, doc["token"], doc["resource"]),
                                              default=str)))


async def _openapi_work(req: Request) -> Response:
    from .openapi import document

    return JSONResponse(document())


def _routes() -> tuple[Route, ...]:
    out: list[Route] = []
    for kind in KINDS:
        collection, item = _resource_handlers(kind)
        out.append(route(f"manage/{kind.path}", ("GET",), collection.__name__, collection))
        out.append(route(f"manage/{kind.path}/{{name}}", ("GET", "PUT", "DELETE"), item.__name__, item))
    for template, methods, work in (
            ("manage/collaborators", ("GET", "PUT", "DELETE"),
             _handler("manage_collaborators", _collaborators_work)),
            ("manage/status", ("GET",), _handler("manage_status", _status_work)),
            ("manage/explain", ("POST",), _handler("manage_explain", _explain_work)),
            ("manage/openapi.json", ("GET",), _handler("manage_openapi", _openapi_work))):
        out.append(route(template, methods, work.__name__, work))
    return tuple(out)


ROUTES: tuple[Route, ...] = _routes()
"""This plane's route table; shared/routes.py composes it with the others."""
