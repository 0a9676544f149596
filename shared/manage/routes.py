"""The /manage API: CRUD for every resource kind and for collaborator bindings, with ETags, paged
lists, the audit trail, usage and remote-call reports, plus status, explain and the OpenAPI document.

Reads go to storage (fresh, with each entity's ETag); authorization uses the snapshot's Policy plus
GATEWAY_ADMINS (authz.py), and decides before storage is read when it can. Every change goes
through `ConfigStore.write`: all or nothing, audited with the caller's principal, the store's
invariants kept (no binding on a deleted resource, the last admin stays), and the configuration
version moved on so every process reloads.

`ROUTES` is this plane's route table; shared/routes.py composes it with the other planes'.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..callers import authenticate
from ..config import teams
from ..config.audit import Filter, parse_since
from ..config.document import item_document
from ..config.entities import MAX_SPEC_CHARS, Write, collaborator_key, encode_spec
from ..config.kinds import BY_SECTION, GATEWAY, MANAGED, NAMED, Kind, split_resource
from ..config.rules import PARSERS as RULE_SECTIONS
from ..config.rules import references
from ..config.schema import (
    NAME_RE,
    ConfigError,
    parse_collaborator,
    parse_item,
    parse_principal,
    parse_resource,
    principal_reference,
    unknown_reference,
)
from ..errors import Conflict, InvalidRequest, NotFound, RequestTooLarge, Unavailable
from ..http import Call, Route, route
from . import authz, checks, pages, remote_calls, usage, whoami

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

def _unknown(field: str, section: str, name: str) -> InvalidRequest:
    """A reference to something absent, worded the same whether it is absent or hidden from the caller."""
    return InvalidRequest(f"{field}: {unknown_reference(section, name)}", param=field)


async def _references(gw: Gateway, kind: Kind, item: Any) -> None:
    """Every resource the new document names must exist in storage (400 naming the field)."""
    needed: list[tuple[str, str, str]] = []   # (field, section, name)
    if kind.section == "external_identities":
        needed.append(("identity_provider", "identity_providers", item.identity_provider))
    if kind.section == "models":
        needed += [(f"targets[{i}].account", "accounts", t.account) for i, t in enumerate(item.targets)]
    if kind.in_workspace and getattr(item, "workspace", None):
        needed.append(("workspace", "workspaces", item.workspace))
    if kind.section in RULE_SECTIONS:
        needed += references(kind.section, item)
    if kind.section == "teams":
        needed += teams.references(item)
    for field, section, name in needed:
        if await gw.store.get(section, name) is None:
            raise _unknown(field, section, name)


def _check_targets(caller: authz.Caller, kind: Kind, item: Any, stored: dict[str, Any] | None) -> None:
    """A target on an account the model did not use before needs viewer on that account; without it
    the answer is the one for an account that does not exist."""
    if kind.section != "models":
        return
    had = {t.get("account") for t in (stored or {}).get("targets", []) if isinstance(t, dict)}
    for i, target in enumerate(item.targets):
        if target.account not in had and not authz.may_target(caller, target.account):
            raise _unknown(f"targets[{i}].account", "accounts", target.account)


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
        for other in NAMED:
            if other.in_workspace and other.section:
                members = await gw.store.list_section(other.section)
                found += [f"{other.singular} {d['name']}" for d, _ in members if d.get("workspace") == name]
    if kind.section in ("identity_providers", "external_identities", "models", "workspaces"):
        found += await _rule_referrers(gw, kind.section, name)
    if kind.section in ("identity_providers", "external_identities"):
        found += [f"team {d['name']}" for d, _ in await gw.store.list_section("teams")
                  if any(principal_reference(m) == (kind.section, name) for m in d.get("members", ()))]
    if kind.section in ("identity_providers", "external_identities", "teams"):
        sets, _ = await gw.store.binding_sets(None, inclusive=True, count=10**9)
        found += [f"the role of {p} on {r}" for r, roles in sets for p in sorted(roles)
                  if principal_reference(p) == (kind.section, name)]
    return found


async def _rule_referrers(gw: Gateway, section: str, name: str) -> list[str]:
    """The rate limits, budgets and prices that name the resource about to be deleted."""
    found: list[str] = []
    for rule_section in RULE_SECTIONS:
        for doc, _ in await gw.store.list_section(rule_section):
            try:
                item = parse_item(rule_section, doc, allowlist=None)
            except ConfigError:     # an invalid stored item names nothing the gateway uses
                continue
            if any((named, value) == (section, name) for _, named, value in references(rule_section, item)):
                found.append(f"{BY_SECTION[rule_section].singular} {item.name}")
    return found


def _normalized(kind: Kind, stored: dict[str, Any]) -> dict[str, Any]:
    """A stored document as item_document writes it today, so a field spelled another way by an older
    writer does not count as changed; a stored document that no longer parses is compared as it is."""
    assert kind.section is not None
    try:
        return item_document(parse_item(kind.section, stored, allowlist=None))
    except ConfigError:
        return stored


def _after(page: pages.Page) -> str | None:
    return page.after[0] if page.after and isinstance(page.after[0], str) else None


async def _holds_admin(gw: Gateway, principal: str) -> bool:
    """Whether storage binds `principal` as admin on gateway:default now (read fresh: a grant made a
    moment ago counts before the snapshot has it)."""
    return await gw.store.get("collaborators", collaborator_key(GATEWAY, principal)) is not None


def _resource_handlers(kind: Kind) -> tuple[Work, Work]:
    label = (kind.path or "").replace("-", " ")

    async def collection(req: Request) -> Response:
        gw, caller = await _caller(req)
        if kind.prefix is None:
            authz.require_admin(caller, f"read {label}")
        page = pages.page_of(req)
        if not caller.is_admin and not caller.may_see_any(kind):   # decided without reading storage
            return JSONResponse(pages.answer([], None))
        assert kind.section is not None
        rows, more = await gw.store.page(kind.section, _after(page), page.limit)
        items = [doc for doc, _ in rows if authz.can_read(caller, kind, doc[kind.key], doc)]
        return JSONResponse(pages.answer(items, page.cursor(rows[-1][0][kind.key]) if more else None))

    async def item(req: Request) -> Response:
        gw, caller = await _caller(req)
        name = req.path_params[kind.key]
        valid = bool(NAME_RE.match(name))
        if req.method == "PUT":
            return await _put(req, gw, caller, name, valid)
        assert kind.section is not None
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
            authz.require_admin(caller, f"manage {label}")
        doc = await _body(req)
        key = kind.key
        if not valid:
            raise InvalidRequest(f"{key}: {name!r} must be letters, digits and hyphens (at most 64)",
                                 param=key)
        if doc.setdefault(key, name) != name:
            raise InvalidRequest(f"{key}: the body names {doc[key]!r} but the path {name!r}", param=key)
        assert kind.section is not None
        try:
            parsed = parse_item(kind.section, doc, "body", allowlist=gw.allowlist)
        except ConfigError as exc:
            raise _invalid(exc) from None
        document = item_document(parsed)
        if len(encode_spec(document)) > MAX_SPEC_CHARS:
            raise RequestTooLarge(f"the {kind.singular} is over {MAX_SPEC_CHARS // 1024} KiB of JSON")
        found = await gw.store.get(kind.section, name)
        authz.check_resource(caller, kind, name, "write", found[0] if found else None, document)
        if kind.section == "teams" and found is not None:
            authz.check_admin_team(caller, name, await _holds_admin(gw, f"team:{name}"))
        authz.check_admin_fields(caller, kind, _normalized(kind, found[0]) if found else None, document)
        _check_targets(caller, kind, parsed, found[0] if found else None)
        await _references(gw, kind, parsed)
        expected = {(kind.section, name): condition["etag"]} if condition else None
        applied = await gw.store.write([Write(kind.section, name, document)], actor=caller.name,
                                       expected=expected)
        return JSONResponse(document, status_code=201 if applied[0].before is None else 200,
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
        assert kind.section is not None
        expected = {(kind.section, name): condition["etag"]} if condition else None
        # the store takes the resource's collaborator bindings with it, in the same change set
        await gw.store.write([Write(kind.section, name, None)], actor=caller.name, expected=expected)
        return Response(status_code=204)

    return (_handler(f"manage_{kind.ident}", collection), _handler(f"manage_{kind.ident}_item", item))


# -- collaborators ---------------------------------------------------------------------------------

def _resource_param(value: str, field: str) -> str:
    try:
        return parse_resource(value, field)
    except ConfigError as exc:
        raise _invalid(exc) from None


def _principal_param(value: str, field: str, *, teams: bool = True) -> str:
    """A principal of a binding (team:<name> too, unless `teams` is False)."""
    try:
        return parse_principal(value, field, teams=teams)
    except ConfigError as exc:
        raise _invalid(exc) from None


async def _stored(gw: Gateway, resource: str) -> tuple[bool, str | None]:
    """Whether the resource exists in storage, and its stored workspace."""
    found = split_resource(resource)
    assert found is not None
    kind, name = found
    if kind.section is None:
        return True, None
    entity = await gw.store.get(kind.section, name)
    workspace = entity[0].get("workspace") if entity and kind.in_workspace else None
    return entity is not None, workspace if isinstance(workspace, str) else None


async def _list_collaborators(req: Request, gw: Gateway, caller: authz.Caller) -> Response:
    """A page of bindings by (resource, principal); the cursor is the last one given, or
    (resource, null) when the page ended between two resources."""
    resource, principal = req.query_params.get("resource"), req.query_params.get("principal")
    if resource is not None:
        resource = _resource_param(resource, "resource")
        authz.check_bindings(caller, resource, (await _stored(gw, resource))[1])
    if principal is not None:
        principal = _principal_param(principal, "principal")
    page = pages.page_of(req, resource, principal)
    if not caller.is_admin and not caller.manages_any():      # decided without reading storage
        return JSONResponse(pages.answer([], None))
    after = page.after if page.after and len(page.after) == 2 and isinstance(page.after[0], str) else None
    sets, more = await gw.store.binding_sets(after[0] if after else None, inclusive=bool(after and after[1]),
                                             count=page.limit, only=resource)
    items: list[dict[str, str]] = []
    for bound, roles in sets:
        if not authz.manages(caller, bound):
            continue
        for who in sorted(roles):
            if (after and (bound, who) <= (after[0], after[1] or "")) or principal not in (None, who):
                continue
            if len(items) == page.limit:
                last = items[-1]
                return JSONResponse(pages.answer(items, page.cursor(last["resource"], last["principal"])))
            items.append({"resource": bound, "principal": who, "role": roles[who]})
    next_cursor = page.cursor(sets[-1][0], None) if more else None
    return JSONResponse(pages.answer(items, next_cursor))


def _binding_of(req: Request, doc: dict[str, Any]) -> tuple[str, str, str | None]:
    """(resource, principal, role) of a PUT (role required) or DELETE (role optional) body."""
    if req.method == "PUT":
        try:
            binding = parse_collaborator(doc, "body")
        except ConfigError as exc:
            raise _invalid(exc) from None
        return binding.resource, binding.principal, binding.role
    extra = sorted(set(doc) - {"resource", "principal", "role"})
    if extra:
        raise InvalidRequest(f"{extra[0]}: unknown field", param=extra[0])
    for field in ("resource", "principal"):
        if not isinstance(doc.get(field), str):
            raise InvalidRequest(f"{field}: is required", param=field)
    role = doc.get("role")
    if role is not None and role not in ("viewer", "editor", "manager", "admin"):
        raise InvalidRequest("role: must be one of viewer, editor, manager, admin", param="role")
    return _resource_param(doc["resource"], "resource"), _principal_param(doc["principal"], "principal"), role


async def _collaborators_work(req: Request) -> Response:
    gw, caller = await _caller(req)
    if req.method == "GET":
        return await _list_collaborators(req, gw, caller)
    condition = _precondition(req)
    resource, principal, role = _binding_of(req, await _body(req))
    exists, workspace = await _stored(gw, resource)
    authz.check_bindings(caller, resource, workspace)
    key = collaborator_key(resource, principal)
    expected = {("collaborators", key): condition["etag"]} if condition else None
    if req.method == "PUT":
        if not exists:
            raise InvalidRequest(f"resource: unknown resource {resource!r}", param="resource")
        section, name = principal_reference(principal)
        if await gw.store.get(section, name) is None:
            raise _unknown("principal", section, name)
        document = {"resource": resource, "principal": principal, "role": role}
        applied = await gw.store.write([Write("collaborators", key, document)], actor=caller.name,
                                       expected=expected)
        return JSONResponse(document, status_code=201 if applied[0].before is None else 200,
                            headers=_etag_headers(applied[0].etag))
    existing = await gw.store.get("collaborators", key)
    if existing is None or (role is not None and existing[0]["role"] != role):
        raise NotFound(f"{principal} has no {role or 'role'} on {resource}")
    await gw.store.write([Write("collaborators", key, None)], actor=caller.name, expected=expected)
    return Response(status_code=204)


# -- the audit trail -------------------------------------------------------------------------------

async def _audit_work(req: Request) -> Response:
    gw, caller = await _caller(req)
    authz.require_admin(caller, "read the audit trail")
    query = req.query_params
    since = None
    if query.get("since") is not None:
        try:
            since = parse_since(query["since"])
        except ValueError as exc:
            raise InvalidRequest(f"since: {exc}", param="since") from None
    resource = _resource_param(query["resource"], "resource") if "resource" in query else None
    principal = _principal_param(query["principal"], "principal") if "principal" in query else None
    page = pages.page_of(req, query.get("since"), resource, principal)
    entries, after = await gw.store.audit_page(Filter(since, resource, principal), _after(page), page.limit)
    return JSONResponse(pages.answer(entries, page.cursor(after) if after else None))


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


async def _oauth_tokens_work(req: Request) -> Response:
    """Forget users' OAuth tokens at an MCP server (shared/remote/oauth.py): `?principal=` one user's,
    else everyone's. Needs manager on the server, as deleting it does, or gateway admin."""
    gw, caller = await _caller(req)
    name, kind = req.path_params["name"], BY_SECTION["mcp_servers"]
    if not NAME_RE.match(name):
        raise authz.not_found(kind.singular, name)
    found = await gw.store.get("mcp_servers", name)
    authz.check_resource(caller, kind, name, "delete", found[0] if found else None)   # admins pass
    if gw.remote.oauth is None:
        raise Unavailable("per-user OAuth is not available in this process")
    principal = req.query_params.get("principal")
    if principal is not None:
        await gw.remote.oauth.revoke(name, _principal_param(principal, "principal", teams=False))
        return JSONResponse({"revoked": 1})
    return JSONResponse({"revoked": await gw.remote.oauth.revoke_all(name)})


async def _openapi_work(req: Request) -> Response:
    from .openapi import document

    return JSONResponse(document())


def _routes() -> tuple[Route, ...]:
    out: list[Route] = []
    for kind in MANAGED:
        collection, item = _resource_handlers(kind)
        out.append(route(f"manage/{kind.path}", ("GET",), collection.__name__, collection))
        out.append(route(f"manage/{kind.path}/{{{kind.key}}}", ("GET", "PUT", "DELETE"), item.__name__, item))
    for template, methods, work in (
            ("manage/collaborators", ("GET", "PUT", "DELETE"),
             _handler("manage_collaborators", _collaborators_work)),
            ("manage/audit", ("GET",), _handler("manage_audit", _audit_work)),
            ("manage/status", ("GET",), _handler("manage_status", _status_work)),
            ("manage/usage", ("GET",), _handler("manage_usage", usage.usage_work)),
            ("manage/remote-calls", ("GET",),
             _handler("manage_remote_calls", remote_calls.remote_calls_work)),
            ("manage/explain", ("POST",), _handler("manage_explain", _explain_work)),
            ("manage/whoami", ("GET",), whoami.whoami_work),
            ("manage/identity-providers/{name}/check", ("POST",), checks.check_provider),
            ("manage/accounts/{name}/check", ("POST",), checks.check_account),
            ("manage/mcp-servers/{name}/oauth-tokens", ("DELETE",),
             _handler("manage_mcp_oauth_tokens", _oauth_tokens_work)),
            ("manage/openapi.json", ("GET",), _handler("manage_openapi", _openapi_work))):
        out.append(route(template, methods, work.__name__, work))
    return tuple(out)


ROUTES: tuple[Route, ...] = _routes()
"""This plane's route table; shared/routes.py composes it with the others."""
