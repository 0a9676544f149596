"""The OpenAPI 3 document of /manage, built from the same kind definitions the handlers are."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from ..access import RANK
from ..config.kinds import MANAGED
from .pages import DEFAULT_LIMIT, MAX_LIMIT
from .resources import (
    AUDIT_ENTRY,
    BINDING,
    ERROR,
    EXPLAIN,
    NAME,
    REMOTE_CALL,
    REMOTE_CALL_REPORT,
    UNBINDING,
    schema_of,
)

_ERRORS = {
    "400": "invalid input; error.param names the field", "401": "no token, or an invalid one",
    "403": "a known resource, but the caller's role does not allow this",
    "404": "no such resource, or the caller has no role on it (the same answer)",
    "409": "the resource is still referred to; or the change would remove the last admin binding on "
           "gateway:default; or the resource was deleted meanwhile",
    "412": "If-Match / If-None-Match did not hold",
    "413": "body too large",
    "500": "a defect in the gateway; the log has the request id", "503": "configuration storage unavailable",
}
_ETAG = {"ETag": {"schema": {"type": "string"}, "description": "pass back in If-Match"}}
_IF = [{"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
        "description": "the ETag last read, or * (must exist); 412 when it no longer matches"},
       {"name": "If-None-Match", "in": "header", "required": False,
        "schema": {"type": "string", "enum": ["*"]},
        "description": "* : create only; 412 when it exists"}]

_NULLABLE = {"type": ["string", "null"]}
_CHECK = {"type": "object", "required": ["name", "ok", "error"], "properties": {
    "name": NAME, "ok": {"type": "boolean"},
    "error": {**_NULLABLE, "description": "what went wrong, in words"},
    "jwks_uri": _NULLABLE, "kids": {"type": "array", "items": {"type": "string"}},
    "auth": _NULLABLE, "expires_on": {"type": ["integer", "null"], "description": "epoch seconds"},
    "field": {**_NULLABLE, "description": "the account field to fix"}}}

_WHOAMI = {"type": "object", "required": ["principal", "principals", "admin", "resource", "role"],
           "properties": {"principal": {"type": "string"}, "principals": {"type": "array",
                                                                          "items": {"type": "string"}},
                          "admin": {"type": "boolean"}, "resource": _NULLABLE,
                          "role": {"type": ["string", "null"], "enum": [*RANK, None],
                                   "description": "null: no role, or no such resource (the same answer)"}}}


def _errors(*codes: str) -> dict[str, Any]:
    """Error answers of an operation; every one may also be 400 for a path that is not canonical and
    500 for a defect."""
    codes = tuple(sorted({*codes, "400", "500"}))
    return {c: {"description": _ERRORS[c], "content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/Error"}}}} for c in codes}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _body(ref: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": ref}}}}


def _list(ref: str) -> dict[str, Any]:
    return {"type": "object", "required": ["items", "next_cursor"], "additionalProperties": False,
            "properties": {"items": {"type": "array", "items": {"$ref": ref}},
                           "next_cursor": {"type": ["string", "null"],
                                           "description": "?cursor= of the next page; null: the end"}}}


_PAGE = [{"name": "limit", "in": "query", "required": False,
          "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
          "description": "at most this many items (a page may hold fewer and still have a next_cursor)"},
         {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
          "description": "the previous page's next_cursor; anything else is 400"}]


def _query(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "string"},
            "description": description}


@cache
def _document() -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR, "Binding": BINDING, "Unbinding": UNBINDING, "Explain": EXPLAIN,
                               "AuditEntry": AUDIT_ENTRY, "RemoteCall": REMOTE_CALL,
                               "RemoteCallReport": REMOTE_CALL_REPORT}
    paths: dict[str, Any] = {}
    for kind in MANAGED:
        assert kind.path is not None
        title = "".join(part.capitalize() for part in kind.path.split("-"))
        schemas[title] = schema_of(kind)
        ref = f"#/components/schemas/{title}"
        who = ("gateway admins only" if kind.prefix is None else
               f"items the caller has a role on ({kind.prefix}:<name>"
               + (", or its workspace)" if kind.in_workspace else ")"))
        paths[f"/manage/{kind.path}"] = {"get": {
            "operationId": f"list_{kind.ident}", "summary": f"a page of {kind.path} ({who}), by name",
            "parameters": _PAGE,
            "responses": {"200": _json(_list(ref), f"the {kind.path}"),
                          **_errors("400", "401", "403", "503")}}}
        name = {"name": kind.key, "in": "path", "required": True, "schema": NAME}
        paths[f"/manage/{kind.path}/{{{kind.key}}}"] = {
            "parameters": [name],
            "get": {"operationId": f"get_{kind.ident}", "summary": f"one {kind.singular}",
                    "responses": {"200": _json({"$ref": ref}, f"the {kind.singular}", _ETAG),
                                  **_errors("401", "403", "404", "503")}},
            "put": {"operationId": f"put_{kind.ident}", "summary": f"create or replace a {kind.singular}",
                    "parameters": _IF,
                    "requestBody": _body(ref),
                    "responses": {"200": _json({"$ref": ref}, "replaced", _ETAG),
                                  "201": _json({"$ref": ref}, "created", _ETAG),
                                  **_errors("400", "401", "403", "404", "412", "413", "503")}},
            "delete": {"operationId": f"delete_{kind.ident}",
                       "summary": f"delete a {kind.singular}" + (" and its collaborator bindings"
                                                                 if kind.prefix else ""),
                       "parameters": _IF,
                       "responses": {"204": {"description": "deleted"},
                                     **_errors("400", "401", "403", "404", "409", "412", "503")}},
        }
    binding = "#/components/schemas/Binding"
    paths["/manage/collaborators"] = {
        "get": {"operationId": "list_collaborators",
                "summary": "a page of the bindings of the resources the caller manages",
                "parameters": [_query("resource", "only this resource's"),
                               _query("principal", "only this principal's"), *_PAGE],
                "responses": {"200": _json(_list(binding), "the bindings"),
                              **_errors("400", "401", "403", "404", "503")}},
        "put": {"operationId": "put_collaborator", "summary": "grant (or change) one principal's role",
                "parameters": _IF,
                "requestBody": _body(binding),
                "responses": {"200": _json({"$ref": binding}, "changed", _ETAG),
                              "201": _json({"$ref": binding}, "granted", _ETAG),
                              **_errors("400", "401", "403", "404", "409", "412", "413", "503")}},
        "delete": {"operationId": "delete_collaborator", "summary": "revoke one binding (role optional)",
                   "parameters": _IF,
                   "requestBody": {"required": True, "content": {"application/json": {"schema": {
                       "$ref": "#/components/schemas/Unbinding"}}}},
                   "responses": {"204": {"description": "revoked"},
                                 **_errors("400", "401", "403", "404", "409", "412", "413", "503")}},
    }
    paths["/manage/audit"] = {"get": {
        "operationId": "audit", "summary": "a page of the change trail, oldest first (admins)",
        "parameters": [_query("since", "an ISO date or time (UTC), or a duration back: 30m, 12h, 7d"),
                       _query("resource", "changes of this resource or its collaborators"),
                       _query("principal", "changes made by this principal, or to its roles"), *_PAGE],
        "responses": {"200": _json(_list("#/components/schemas/AuditEntry"), "the changes"),
                      **_errors("400", "401", "403", "503")}}}
    report = {"type": "object"}
    paths["/manage/status"] = {"get": {
        "operationId": "status", "summary": "keys per identity provider, tokens per account (admins)",
        "responses": {"200": _json(report, "the status report"), **_errors("401", "403", "503")}}}
    paths["/manage/usage"] = {"get": {
        "operationId": "usage",
        "summary": "requests, tokens and cost (admins: everyone's; others: their own)",
        "parameters": [_query("since", "from this UTC day: an ISO date or time, or a duration back: 7d"),
                       _query("until", "to this UTC day (included)"),
                       _query("group_by", "comma-separated: day, user, identity, model")],
        "responses": {"200": _json(report, "the usage report"), **_errors("400", "401", "503")}}}
    paths["/manage/remote-calls"] = {"get": {
        "operationId": "remote_calls",
        "summary": "MCP tool calls and agent messages (admins: all; managers: their servers' and agents')",
        "description": "Without group_by: the records, oldest first, a page at a time (argument values are "
                       "never kept, only args_hash). With group_by: per group, calls, calls per outcome "
                       "(ok, error, refused, timeout, failed) and p50_ms / p95_ms latency.",
        "parameters": [_query("since", "from this time: an ISO date or time (UTC), or a duration back: 7d"),
                       _query("until", "to this time (included)"),
                       {**_query("kind", "only MCP servers' or only agents' calls"),
                        "schema": {"type": "string", "enum": ["mcp", "agent"]}},
                       _query("target", "only this MCP server's or agent's calls"),
                       _query("principal", "only this caller's calls (user:<provider>/<unique id>)"),
                       _query("group_by", "comma-separated: user, target, tool, day"), *_PAGE],
        "responses": {"200": _json({"oneOf": [_list("#/components/schemas/RemoteCall"),
                                              {"$ref": "#/components/schemas/RemoteCallReport"}]},
                                   "the records, or the report when group_by is given"),
                      **_errors("400", "401", "404", "503")}}}
    paths["/manage/explain"] = {"post": {
        "operationId": "explain", "summary": "every check a token passes or fails, and its role (admins)",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/Explain"}}}},
        "responses": {"200": _json(report, "the explanation"),
                      **_errors("400", "401", "403", "413", "503")}}}
    paths["/manage/mcp-servers/{name}/oauth-tokens"] = {
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": NAME}],
        "delete": {"operationId": "revoke_mcp_oauth_tokens",
                   "summary": "forget users' OAuth tokens at an MCP server (its managers, admins)",
                   "parameters": [_query("principal", "only this user's (user:<provider>/<id>), else all")],
                   "responses": {"200": _json({"type": "object", "required": ["revoked"],
                                               "properties": {"revoked": {"type": "integer"}}}, "how many"),
                                 **_errors("400", "401", "403", "404", "503")}}}
    paths["/manage/whoami"] = {"get": {
        "operationId": "whoami", "summary": "the caller's principals, and their own role on a resource",
        "parameters": [_query("resource", "model:N, workspace:N, ... or gateway:default")],
        "responses": {"200": _json(_WHOAMI, "who the caller is"), **_errors("400", "401", "503")}}}
    for path, op, summary in (
            ("identity-providers", "check_identity_provider",
             "fetch a stored provider's keys now: key ids, or the error in words (admins)"),
            ("accounts", "check_account",
             "get a stored account's upstream token now: its expiry, or the error and field to fix "
             "(admins; never the token)")):
        paths[f"/manage/{path}/{{name}}/check"] = {
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": NAME}],
            "post": {"operationId": op, "summary": summary,
                     "responses": {"200": _json(_CHECK, "the outcome"),
                                   **_errors("401", "403", "404", "503")}}}
    paths["/manage/openapi.json"] = {"get": {
        "operationId": "openapi", "summary": "this document", "security": [],
        "responses": {"200": _json({"type": "object"}, "the OpenAPI document")}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "AI gateway management API", "version": "1",
                 "description": "Every error is {\"error\": {message, type, code, param}}."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }


def document() -> dict[str, Any]:
    return copy.deepcopy(_document())
