"""The JSON schema of each resource kind /manage serves, of bindings, pages and errors.

The kinds themselves (path, section, access prefix) come from shared.config.kinds; the handlers
(routes.py) and the OpenAPI document (openapi.py) are both built from them and from `SCHEMAS`, so
the document cannot describe a route or a field the code does not have. The schemas mirror
`shared.config.schema`, which remains the validator: a body the schema admits may still be refused
there with 400 (for example a reference to an account that does not exist).
"""

from __future__ import annotations

from typing import Any

from ..config.console_sign_in import CLIENT_ID_RE, MAX_SCOPES, SCOPE_RE
from ..config.fields import MAX_COUNT
from ..config.kinds import MANAGED, NAMED, Kind
from ..config.model import (
    API_STYLES,
    BUDGET_WINDOWS,
    LIMIT_WINDOWS,
    MAX_REMOTE_TIMEOUT_S,
    PER_DIMENSIONS,
    WHEN_FIELDS,
)
from ..config.rules import MAX_PRICE, MAX_USD, MODES, ON_STORE_ERROR
from ..config.schema import ASSERTION_SOURCES, AUTH_TYPES, MAX_GLOBS, NAME_RE, REMOTE_AUTH_FIELDS
from ..config.teams import MAX_MEMBERS

NAME: dict[str, Any] = {"type": "string", "pattern": NAME_RE.pattern, "maxLength": 64}
TEXT: dict[str, Any] = {"type": "string", "minLength": 1}
URL: dict[str, Any] = {"type": "string", "minLength": 1, "description": "an absolute https URL"}
PRINCIPAL: dict[str, Any] = {"type": "string", "pattern": "^(user:[^/]+/.+|identity:.+)$",
                             "description": "user:<provider>/<unique id> or identity:<external identity>"}
BOUND: dict[str, Any] = {"type": "string", "pattern": "^(user:[^/]+/.+|identity:.+|team:.+)$",
                         "description": "user:<provider>/<unique id>, identity:<external identity> or "
                                        "team:<team>"}
RESOURCE: dict[str, Any] = {
    "type": "string",
    "pattern": f"^(gateway:default|({'|'.join(k.prefix for k in NAMED if k.prefix)}):.+)$",
    "description": ", ".join(f"{k.prefix}:N" for k in NAMED) + " or gateway:default"}
ROLE: dict[str, Any] = {"type": "string", "enum": ["viewer", "editor", "manager", "admin"]}


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}


COUNT: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": MAX_COUNT}


def _exactly_one(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object with exactly one of `properties` (besides `required`): `{in: [...]}` or `{not_in: [...]}`,
    `{requests: N, per: ...}` or `{tokens: N, per: ...}`."""
    count = len(required) + 1
    return {**_object(properties, required), "minProperties": count, "maxProperties": count}


def _condition(field: str) -> dict[str, Any]:
    values = {"type": "array", "minItems": 1, "uniqueItems": True,
              "items": PRINCIPAL if field == "principals" else NAME}
    return _exactly_one({"in": values, "not_in": values})


WHEN: dict[str, Any] = {**_object({field: _condition(field) for field in WHEN_FIELDS}),
                        "description": "every listed condition must hold"}
PER: dict[str, Any] = {"type": "array", "maxItems": 2, "uniqueItems": True,
                       "items": {"type": "string", "enum": list(PER_DIMENSIONS)},
                       "description": "a bucket per value of each; [] or absent: one bucket shared by all"}
LIMITS: dict[str, Any] = {"type": "array", "minItems": 1, "items": _exactly_one(
    {"requests": COUNT, "tokens": COUNT, "per": {"type": "string", "enum": list(LIMIT_WINDOWS)}}, ("per",)),
    "description": "at most one limit per metric and window (fixed UTC windows)"}
BUCKET: dict[str, Any] = {**_object({
    "user": {"type": "string", "pattern": "^user:[^/]+/.+$"}, "identity": NAME, "model": NAME,
    "workspace": NAME}), "minProperties": 1, "maxProperties": 2,
    "description": "a value for each of the rule's per dimensions, and no other"}
USD: dict[str, Any] = {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": MAX_USD}
PRICE: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": MAX_PRICE,
                         "description": "USD per million tokens"}


def _assertion() -> dict[str, Any]:
    """One shape per assertion source, with the fields the configuration file requires of it (a
    kubernetes assertion may leave namespace and service_account to default to the pod's own)."""
    return {"oneOf": [_object({"source": {"type": "string", "enum": [source]},
                               **{field: TEXT for field in (*required, *optional)}}, ("source", *required))
                      for source, (required, optional) in ASSERTION_SOURCES.items()]}


_REMOTE_AUTH_FIELD: dict[str, dict[str, Any]] = {
    "headers_env": {"type": "object", "minProperties": 1,
                    "additionalProperties": {"type": "string", "minLength": 1},
                    "description": "header name -> the GATEWAY_SECRET_* variable holding its value"},
    "scope": {**TEXT, "description": "api://<app>/.default, or a scope listed in GATEWAY_ENTRA_SCOPES"},
    "account": NAME, "client_id": TEXT, "client_secret_env": TEXT,
    "scopes": {"type": "array", "maxItems": 20, "items": TEXT}, "authorization_server": URL,
}


def _remote_auth(kinds: tuple[str, ...] = tuple(REMOTE_AUTH_FIELDS)) -> dict[str, Any]:
    """One shape per outbound auth type of an MCP server or agent, with the fields the file takes."""
    return {"oneOf": [_object({"type": {"type": "string", "enum": [kind]},
                               **{f: _REMOTE_AUTH_FIELD[f] for f in (*required, *optional)}},
                              (*(("type",) if kind != "none" else ()), *required))   # type defaults to none
                      for kind, (required, optional) in REMOTE_AUTH_FIELDS.items() if kind in kinds],
            "description": "how the gateway authenticates itself to the server (never with the "
                           "caller's token); only gateway admins set or change it"}


_GLOBS: dict[str, Any] = {"type": "array", "maxItems": MAX_GLOBS, "items": TEXT}
REMOTE: dict[str, Any] = {
    "auth": _remote_auth(),
    "timeout_s": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": MAX_REMOTE_TIMEOUT_S,
                  "description": "seconds each upstream call may take (default 120)"},
    "allow_private_network": {"type": "boolean", "description": "the url may resolve to a private "
                                                                "address; only gateway admins set it"},
}
ADMIN_URL: dict[str, Any] = {**URL, "description": "an absolute https URL; only gateway admins set it"}
_auth_types = list(AUTH_TYPES)
SCHEMAS: dict[str, dict[str, Any]] = {
    "identity_providers": _object({
        "name": NAME, "jwks_uri": URL, "issuer": TEXT,
        "audiences": {"type": "array", "items": TEXT}, "unique_id_claim": TEXT, "email_claim": TEXT,
        "discovery": {"type": "boolean"}, "allow_private_network": {"type": "boolean"},
        "groups_from_graph": {"type": "boolean", "description": "Entra ID: when a token leaves its groups "
                              "out (more than 200), read them from Microsoft Graph with the gateway's own "
                              "identity (GroupMember.Read.All)"},
        "console_client_id": {"type": "string", "pattern": CLIENT_ID_RE.pattern,
                              "description": "a public (SPA) client at the provider: the console signs in "
                                             "with it (authorization code + PKCE)"},
        "console_scopes": {"type": "array", "minItems": 1, "maxItems": MAX_SCOPES, "uniqueItems": True,
                           "items": {"type": "string", "pattern": SCOPE_RE.pattern},
                           "description": "scopes the console asks for (default [openid]); include the "
                                          "one whose access token is for the gateway"}}),
    "external_identities": _object({
        "name": NAME, "identity_provider": NAME,
        "claims": {"type": "object", "additionalProperties": {"type": ["string", "integer", "boolean"]},
                   "description": "claim (dotted path) -> value it must equal, or a list claim contain"}},
        ("identity_provider",)),
    "teams": _object({
        "name": NAME,
        "members": {"type": "array", "maxItems": MAX_MEMBERS, "uniqueItems": True, "items": PRINCIPAL,
                    "description": "users and external identities (teams do not nest); a caller is a "
                                   "member when any of their principals is listed; changing them needs "
                                   "manager on team:<name>"}}),
    "accounts": _object({
        "name": NAME, "kind": {"type": "string", "enum": ["azure-openai", "ai-foundry"]}, "endpoint": URL,
        "auth": {"type": "object", "properties": {
            "type": {"type": "string", "enum": _auth_types},
            "assertion": _assertion()},
            "additionalProperties": {"type": ["string", "object"]},
            "description": "the fields of each type as in the configuration file"},
        "api_style": {"type": "string", "enum": list(API_STYLES),
                      "description": "deployments (default) or v1: the Azure OpenAI surface; models "
                                     "(ai-foundry only): the Azure AI Model Inference API"},
        "api_version": {**TEXT, "description": "used when the caller sends none (deployments) and always "
                                               "for models; default 2024-10-21, 2024-05-01-preview "
                                               "for models"}},
        ("endpoint",)),
    "models": _object({
        "name": NAME, "workspace": NAME,
        "targets": {"type": "array", "minItems": 1, "items": _object(
            {"account": NAME, "deployment": TEXT}, ("account", "deployment"))},
        "max_output_tokens": {**COUNT, "description": "requests ask for at most this many output tokens"}},
        ("targets",)),
    "mcp_servers": _object({
        "name": NAME, "workspace": NAME, "url": ADMIN_URL, **REMOTE,
        "tools": {**_object({"allow": _GLOBS, "deny": _GLOBS}),
                  "description": "globs of the tools callers see and may call; deny wins; default: all"}},
        ("url",)),
    "agents": _object({
        "name": NAME, "workspace": NAME, "url": ADMIN_URL, **REMOTE,
        "auth": _remote_auth(tuple(k for k in REMOTE_AUTH_FIELDS if k != "oauth")),   # per-user: MCP only
        "card_url": {**ADMIN_URL, "description": "default: <url's origin>/.well-known/agent-card.json; "
                                                 "only gateway admins set it"}}),
    "workspaces": _object({"name": NAME}),
    "rate_limits": _object({
        "name": NAME, "when": WHEN, "per": PER, "limits": LIMITS,
        "overrides": {"type": "array", "items": _object({"bucket": BUCKET, "limits": LIMITS},
                                                        ("bucket", "limits"))},
        "mode": {"type": "string", "enum": list(MODES), "description": "audit: count and log, never refuse"}},
        ("limits",)),
    "budgets": _object({
        "name": NAME, "when": WHEN, "per": PER,
        "usd": {**_object({window: USD for window in BUDGET_WINDOWS}), "minProperties": 1},
        "on_store_error": {"type": "string", "enum": list(ON_STORE_ERROR),
                           "description": "what a request meets when the counters cannot be reached"}},
        ("usd",)),
    "prices": _object({
        "model": NAME, "input": PRICE, "cached_input": PRICE, "output": PRICE,
        "from": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$",
                 "description": "in force from this date (UTC), YYYY-MM-DD"}},
        ("input", "output")),
}
BY_PATH: dict[str, Kind] = {k.path: k for k in MANAGED if k.path}


def schema_of(kind: Kind) -> dict[str, Any]:
    assert kind.section is not None
    return SCHEMAS[kind.section]


BINDING = _object({"resource": RESOURCE, "principal": BOUND, "role": ROLE},
                  ("resource", "principal", "role"))
UNBINDING = _object({"resource": RESOURCE, "principal": BOUND, "role": ROLE}, ("resource", "principal"))
AUDIT_ENTRY = _object({
    "at": {"type": "string", "description": "ISO 8601, UTC"},
    "actor": {"type": "string", "description": "the principal, or os:<user> for the CLI"},
    "change_set": {"type": "string"}, "action": {"type": "string", "enum": ["create", "update", "delete"]},
    "kind": {"type": "string", "description": "the file section, or collaborators"},
    "key": {"type": "string", "description": "the name, or <resource>\\n<principal> for collaborators"},
    "before": {"type": ["object", "null"]}, "after": {"type": ["object", "null"]}},
    ("at", "actor", "change_set", "action", "kind", "key", "before", "after"))
_NULLABLE_TEXT: dict[str, Any] = {"type": ["string", "null"]}
REMOTE_CALL = _object({
    "at": {"type": "string", "description": "ISO 8601, UTC, to the millisecond"},
    "kind": {"type": "string", "enum": ["mcp", "agent"]}, "target": {"type": "string"},
    "principal": {"type": "string"}, "method": {"type": "string", "description": "the JSON-RPC method"},
    "tool": {**_NULLABLE_TEXT, "description": "tools/call's tool"},
    "outcome": {"type": "string", "description": "ok, error (the server's JSON-RPC error), refused, timeout "
                                                 "or failed"},
    "status": {"type": "integer", "description": "the HTTP status the caller got"},
    "latency_ms": {"type": "number"}, "request_id": {"type": "string"},
    "args_hash": {**_NULLABLE_TEXT, "description": "SHA-256 of the arguments' canonical JSON"},
    "email": _NULLABLE_TEXT, "identities": {"type": "array", "items": {"type": "string"}}},
    ("at", "kind", "target", "principal", "method", "tool", "outcome", "status", "latency_ms", "request_id",
     "args_hash", "email", "identities"))
_COUNT0: dict[str, Any] = {"type": "integer", "minimum": 0}
REMOTE_CALL_REPORT = _object({
    "group_by": {"type": "array",
                 "items": {"type": "string", "enum": ["principal", "target", "tool", "day"]}},
    "all_calls": {"type": "boolean", "description": "true for an admin; else only the targets they manage"},
    "truncated": {"type": "boolean", "description": "the window held more records than one report reads"},
    "data": {"type": "array", "items": {"type": "object", "required": ["calls", "p50_ms", "p95_ms"],
                                        "properties": {
        "principal": {"type": "string"}, "kind": {"type": "string"}, "target": {"type": "string"},
        "tool": {"type": "string"}, "day": {"type": "string"}, "calls": _COUNT0,
        **{outcome: _COUNT0 for outcome in ("ok", "error", "refused", "timeout", "failed")},
        "p50_ms": {"type": "number"}, "p95_ms": {"type": "number"}}}}},
    ("group_by", "all_calls", "truncated", "data"))
EXPLAIN = _object({"token": {"type": "string"}, "resource": {"type": "string"}}, ("token", "resource"))
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type", "code", "param"], "properties": {
        "message": {"type": "string"}, "type": {"type": "string"}, "code": {"type": "string"},
        "param": {"type": ["string", "null"]}}}}}
