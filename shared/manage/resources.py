"""The resource kinds /manage serves: path, file section, access prefix and JSON schema.

The handlers (routes.py) and the OpenAPI document (openapi.py) are both built from `KINDS`, so the
document cannot describe a route or a field the code does not have. The schemas mirror
`shared.config.schema`, which remains the validator: a body the schema admits may still be refused
there with 400 (for example a reference to an account that does not exist).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config.schema import ASSERTION_SOURCES, AUTH_TYPES, NAME_RE

NAME: dict[str, Any] = {"type": "string", "pattern": NAME_RE.pattern, "maxLength": 64}
TEXT: dict[str, Any] = {"type": "string", "minLength": 1}
URL: dict[str, Any] = {"type": "string", "minLength": 1, "description": "an absolute https URL"}
PRINCIPAL: dict[str, Any] = {"type": "string", "pattern": "^(user:[^/]+/.+|identity:.+)$",
                             "description": "user:<provider>/<unique id> or identity:<external identity>"}
RESOURCE: dict[str, Any] = {"type": "string",
                            "pattern": "^(gateway:default|(model|mcp-server|agent|workspace):.+)$",
                            "description": "model:N, mcp-server:N, agent:N, workspace:N or gateway:default"}
ROLE: dict[str, Any] = {"type": "string", "enum": ["viewer", "editor", "manager", "admin"]}


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}


@dataclass(frozen=True, slots=True)
class Kind:
    path: str                   # URL segment under /manage
    section: str                # the configuration file's section (shared.config.schema.PARSERS)
    prefix: str | None          # access resource prefix (model -> model:N); None: gateway admins only
    singular: str               # in messages: "model 'x' does not exist ..."
    schema: dict[str, Any]      # one resource's JSON document (request and response alike)

    def resource(self, name: str) -> str | None:
        return f"{self.prefix}:{name}" if self.prefix else None

    @property
    def has_workspace(self) -> bool:
        return "workspace" in self.schema["properties"]

    @property
    def ident(self) -> str:
        return self.path.replace("-", "_")


_auth_types = list(AUTH_TYPES)
KINDS: tuple[Kind, ...] = (
    Kind("identity-providers", "identity_providers", None, "identity provider", _object({
        "name": NAME, "jwks_uri": URL, "issuer": TEXT,
        "audiences": {"type": "array", "items": TEXT}, "unique_id_claim": TEXT, "email_claim": TEXT,
        "discovery": {"type": "boolean"}, "allow_private_network": {"type": "boolean"}})),
    Kind("external-identities", "external_identities", None, "external identity", _object({
        "name": NAME, "identity_provider": NAME,
        "claims": {"type": "object", "additionalProperties": {"type": ["string", "integer", "boolean"]},
                   "description": "claim (dotted path) -> value it must equal, or a list claim contain"}},
        ("identity_provider",))),
    Kind("accounts", "accounts", None, "account", _object({
        "name": NAME, "kind": {"type": "string", "enum": ["azure-openai", "ai-foundry"]}, "endpoint": URL,
        "auth": {"type": "object", "properties": {
            "type": {"type": "string", "enum": _auth_types},
            "assertion": {"type": "object", "properties": {
                "source": {"type": "string", "enum": list(ASSERTION_SOURCES)}}}},
            "additionalProperties": {"type": ["string", "object"]},
            "description": "the fields of each type as in the configuration file (SPEC §4)"},
        "api_style": {"type": "string", "enum": ["deployments", "v1"]}, "api_version": TEXT},
        ("endpoint",))),
    Kind("models", "models", "model", "model", _object({
        "name": NAME, "workspace": NAME,
        "targets": {"type": "array", "minItems": 1, "items": _object(
            {"account": NAME, "deployment": TEXT}, ("account", "deployment"))}}, ("targets",))),
    Kind("mcp-servers", "mcp_servers", "mcp-server", "MCP server",
         _object({"name": NAME, "workspace": NAME, "url": URL}, ("url",))),
    Kind("agents", "agents", "agent", "agent", _object({"name": NAME, "workspace": NAME, "url": URL})),
    Kind("workspaces", "workspaces", "workspace", "workspace", _object({"name": NAME})),
)
BY_PATH: dict[str, Kind] = {k.path: k for k in KINDS}
BY_SECTION: dict[str, Kind] = {k.section: k for k in KINDS}
BY_PREFIX: dict[str, Kind] = {k.prefix: k for k in KINDS if k.prefix}

BINDING = _object({"resource": RESOURCE, "principal": PRINCIPAL, "role": ROLE},
                  ("resource", "principal", "role"))
UNBINDING = _object({"resource": RESOURCE, "principal": PRINCIPAL, "role": ROLE}, ("resource", "principal"))
EXPLAIN = _object({"token": {"type": "string"}, "resource": {"type": "string"}}, ("token", "resource"))
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type", "code", "param"], "properties": {
        "message": {"type": "string"}, "type": {"type": "string"}, "code": {"type": "string"},
        "param": {"type": ["string", "null"]}}}}}
