"""Reads the configuration file format (docs/configuration.md) into frozen values, naming the field
at fault."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import console_sign_in, rules, teams
from .allowlist import Allowlist
from .fields import NAME_RE as NAME_RE  # re-exported: /manage's schemas and routes use it
from .fields import (
    ConfigError,
    parse_principal,
    principal_reference,
    read_count,
    read_flag,
    read_matching,
    read_name,
    read_record,
    read_text,
    unknown_reference,
)
from .kinds import BY_SECTION, GATEWAY, RESOURCE_FORMS, split_resource
from .kinds import RESOURCE_RE as RESOURCE_RE  # re-exported: derived from the kinds table there
from .model import (
    API_STYLES,
    DEFAULT_API_VERSIONS,
    MAX_REMOTE_TIMEOUT_S,
    REMOTE_AUTH_TYPES,
    ROLES,
    Account,
    AccountAuth,
    Agent,
    Collaborator,
    Config,
    ExternalIdentity,
    IdentityProvider,
    McpServer,
    Model,
    RemoteAuth,
    Target,
    ToolFilter,
    Workspace,
    frozen_mapping,
)

# Azure's own rules for deployment names, and nothing a URL library could read as a path step: the
# deployment is a segment of the upstream URL the gateway calls with its own identity.
DEPLOYMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# A Kubernetes object name (DNS subdomain): namespaces and service accounts become TokenRequest URL segments.
KUBERNETES_NAME_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?$")
API_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:-preview)?$")
AUTH_TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # type: (required fields, optional fields); authority_host and scope apply to Entra types
    "workload-identity": (("tenant_id", "client_id", "assertion"), ("authority_host", "scope")),
    "managed-identity": ((), ("client_id", "scope")),
    "client-secret": (("tenant_id", "client_id", "secret_env"), ("authority_host", "scope")),
    "certificate": (("tenant_id", "client_id", "certificate_path"), ("authority_host", "scope")),
    "api-key": (("key_env",), ()),
}
ASSERTION_SOURCES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "managed-identity": (("client_id",), ()),
    "token-file": (("path",), ()),
    # namespace and service_account default to the pod's own (assertions.py), so the federated
    # credential's subject is the gateway's without naming it twice
    "kubernetes": ((), ("namespace", "service_account", "api_server", "token_path", "ca_path")),
}
STRICT = Allowlist()   # the built-in values only: what a parse without the settings' allowlist admits


def _url(value: Any, where: str, *, optional: bool = False) -> str | None:
    text = read_text(value, where, optional=optional)
    if text is None:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(where, f"{text!r} must be an absolute https URL")
    if parts.username or parts.password:
        raise ConfigError(where, "must not contain credentials")
    return text


def _list(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(key, "must be a list")
    return value


def _provider(raw: Any, where: str) -> IdentityProvider:
    d = read_record(raw, where, ("name",), ("jwks_uri", "issuer", "audiences", "unique_id_claim",
                                            "email_claim", "discovery", "allow_private_network",
                                            "groups_from_graph", *console_sign_in.FIELDS))
    discovery = read_flag(d.get("discovery", False), f"{where}.discovery")
    jwks_uri = _url(d.get("jwks_uri"), f"{where}.jwks_uri", optional=True)
    issuer = read_text(d.get("issuer"), f"{where}.issuer", optional=True)
    if discovery and not issuer:
        raise ConfigError(f"{where}.issuer", "is required when discovery is true")
    if discovery and jwks_uri:
        raise ConfigError(f"{where}.jwks_uri", "must not be set when discovery is true")
    if not discovery and not jwks_uri:
        raise ConfigError(f"{where}.jwks_uri", "is required (or set discovery: true with issuer)")
    audiences = d.get("audiences", [])
    if isinstance(audiences, str):
        audiences = [audiences]
    if not isinstance(audiences, list):
        raise ConfigError(f"{where}.audiences", "must be a list of strings")
    return IdentityProvider(
        name=read_name(d["name"], f"{where}.name"),
        jwks_uri=jwks_uri,
        issuer=issuer,
        audiences=tuple(str(read_text(a, f"{where}.audiences[{i}]")) for i, a in enumerate(audiences)),
        unique_id_claim=str(read_text(d.get("unique_id_claim", "sub"), f"{where}.unique_id_claim")),
        email_claim=str(read_text(d.get("email_claim", "email"), f"{where}.email_claim")),
        discovery=discovery,
        allow_private_network=read_flag(d.get("allow_private_network", False),
                                    f"{where}.allow_private_network"),
        groups_from_graph=read_flag(d.get("groups_from_graph", False), f"{where}.groups_from_graph"),
        **console_sign_in.read(d, where),
    )


def _identity(raw: Any, where: str) -> ExternalIdentity:
    d = read_record(raw, where, ("name", "identity_provider"), ("claims",))
    claims = d.get("claims") or {}
    if not isinstance(claims, Mapping):
        raise ConfigError(f"{where}.claims", "must be a mapping of claim to value")
    for key, value in claims.items():
        read_text(key, f"{where}.claims")
        if not isinstance(value, str | int | bool) or value is None:
            raise ConfigError(f"{where}.claims.{key}", "must be a string, number or boolean")
    return ExternalIdentity(name=read_name(d["name"], f"{where}.name"),
                            identity_provider=read_name(d["identity_provider"], f"{where}.identity_provider"),
                            claims=frozen_mapping(claims))


def _auth(raw: Any, where: str) -> AccountAuth:
    if not isinstance(raw, Mapping):
        raise ConfigError(where, "must be a mapping")
    kind = raw.get("type", "workload-identity")
    if kind not in AUTH_TYPES:
        raise ConfigError(f"{where}.type", f"must be one of {', '.join(AUTH_TYPES)}")
    required, optional = AUTH_TYPES[kind]
    d = read_record(raw, where, required, ("type", *optional))
    d.pop("type", None)
    for key, value in d.items():
        if key == "assertion":
            continue
        if key in ("authority_host",):
            _url(value, f"{where}.{key}")
        else:
            read_text(value, f"{where}.{key}")
    if "assertion" in d:
        a = d["assertion"]
        if not isinstance(a, Mapping) or a.get("source") not in ASSERTION_SOURCES:
            raise ConfigError(f"{where}.assertion.source", f"must be one of {', '.join(ASSERTION_SOURCES)}")
        a_req, a_opt = ASSERTION_SOURCES[a["source"]]
        a = read_record(a, f"{where}.assertion", a_req, ("source", *a_opt))
        for key, value in a.items():
            read_text(value, f"{where}.assertion.{key}")
            if a["source"] == "kubernetes" and key in ("namespace", "service_account"):
                read_matching(value, f"{where}.assertion.{key}", KUBERNETES_NAME_RE,
                              "must be a Kubernetes name (lower case letters, digits, '-' and '.')")
        d["assertion"] = frozen_mapping(a)
    return AccountAuth(type=kind, options=frozen_mapping(d))


def _api_style(value: Any, kind: str, endpoint: str, where: str) -> str:
    """The account's upstream API; `models` (the Azure AI Model Inference API) is served only by a
    Foundry resource's own endpoint, not by Azure OpenAI nor under a Foundry project's path."""
    if value not in API_STYLES:
        raise ConfigError(where, f"must be one of {', '.join(API_STYLES)}")
    if value == "models" and kind != "ai-foundry":
        raise ConfigError(where, "models is only for kind ai-foundry (the Azure AI Model Inference API "
                                 "of a Foundry resource)")
    if value == "models" and urlsplit(endpoint).path.strip("/"):
        raise ConfigError(where, "models needs the resource's endpoint "
                                 "(https://<resource>.services.ai.azure.com), not a project's")
    return str(value)


def _account(raw: Any, where: str) -> Account:
    d = read_record(raw, where, ("name", "endpoint"), ("kind", "auth", "api_style", "api_version"))
    kind = d.get("kind", "azure-openai")
    if kind not in ("azure-openai", "ai-foundry"):
        raise ConfigError(f"{where}.kind", "must be azure-openai or ai-foundry")
    endpoint = _url(d["endpoint"], f"{where}.endpoint")
    assert endpoint is not None
    style = _api_style(d.get("api_style", "deployments"), kind, endpoint, f"{where}.api_style")
    return Account(name=read_name(d["name"], f"{where}.name"), kind=kind, endpoint=endpoint.rstrip("/"),
                   auth=_auth(d.get("auth", {"type": "workload-identity"}), f"{where}.auth"),
                   api_style=style,
                   api_version=read_matching(d.get("api_version", DEFAULT_API_VERSIONS[style]),
                                             f"{where}.api_version", API_VERSION_RE,
                                             "must look like 2024-10-21 or 2025-04-01-preview"))


def _model(raw: Any, where: str) -> Model:
    d = read_record(raw, where, ("name", "targets"), ("workspace", "max_output_tokens"))
    targets = d["targets"]
    if not isinstance(targets, list) or not targets:
        raise ConfigError(f"{where}.targets", "must be a non-empty list")
    parsed = []
    for i, t in enumerate(targets):
        td = read_record(t, f"{where}.targets[{i}]", ("account", "deployment"), ())
        parsed.append(Target(account=read_name(td["account"], f"{where}.targets[{i}].account"),
                             deployment=read_matching(td["deployment"], f"{where}.targets[{i}].deployment",
                                                      DEPLOYMENT_RE, "must be letters, digits, '.', '_' and "
                                                      "'-', starting with a letter or digit (at most 64)")))
    workspace = d.get("workspace")
    cap = d.get("max_output_tokens")
    return Model(name=read_name(d["name"], f"{where}.name"), targets=tuple(parsed),
                 workspace=read_name(workspace, f"{where}.workspace") if workspace is not None else None,
                 max_output_tokens=None if cap is None else read_count(cap, f"{where}.max_output_tokens"))


# Outbound headers an MCP server's or agent's `headers` auth may set: a token name, none that frames the
# request or that the gateway sets itself (the session, protocol and content headers).
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
RESERVED_HEADERS = frozenset({
    "host", "content-length", "content-type", "transfer-encoding", "connection", "keep-alive", "te",
    "trailer", "upgrade", "proxy-authorization", "proxy-connection", "accept", "accept-encoding",
    "cookie", "mcp-session-id", "mcp-protocol-version", "mcp-method", "mcp-name", "last-event-id",
    "a2a-version", "x-request-id", "forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto",
})
REMOTE_AUTH_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "none": ((), ()),
    "headers": (("headers_env",), ()),
    "entra": (("scope",), ("account",)),
    "identity-assertion": ((), ()),
    "oauth": (("client_id",), ("client_secret_env", "scopes", "authorization_server")),
}
MAX_GLOBS = 100


def _remote_auth(raw: Any, where: str) -> RemoteAuth:
    if not isinstance(raw, Mapping):
        raise ConfigError(where, "must be a mapping")
    kind = raw.get("type", "none")
    if kind not in REMOTE_AUTH_FIELDS:
        raise ConfigError(f"{where}.type", f"must be one of {', '.join(REMOTE_AUTH_TYPES)}")
    required, optional = REMOTE_AUTH_FIELDS[kind]
    d = read_record(raw, where, required, ("type", *optional))
    d.pop("type", None)
    if "headers_env" in d:
        d["headers_env"] = frozen_mapping(_headers_env(d["headers_env"], f"{where}.headers_env"))
    if "scopes" in d:
        d["scopes"] = tuple(_strings(d["scopes"], f"{where}.scopes", limit=20))
    for key in ("scope", "client_id", "client_secret_env"):
        if key in d:
            read_text(d[key], f"{where}.{key}")
    if "account" in d:
        read_name(d["account"], f"{where}.account")
    if "authorization_server" in d:
        _url(d["authorization_server"], f"{where}.authorization_server")
    return RemoteAuth(type=kind, options=frozen_mapping(d))


def _headers_env(raw: Any, where: str) -> dict[str, str]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(where, "must be a non-empty mapping of header name to environment variable")
    out: dict[str, str] = {}
    for name, env in raw.items():
        header = read_matching(name, where, HEADER_NAME_RE, "header names must be letters, digits and '-'")
        if header.lower() in RESERVED_HEADERS:
            raise ConfigError(where, f"the header {header} is set by the gateway itself")
        if header.lower() in {h.lower() for h in out}:
            raise ConfigError(where, f"the header {header} is named twice")
        out[header] = str(read_text(env, f"{where}.{header}"))
    return out


def _strings(raw: Any, where: str, *, limit: int) -> list[str]:
    if not isinstance(raw, list) or len(raw) > limit:
        raise ConfigError(where, f"must be a list of at most {limit} strings")
    return [str(read_text(v, f"{where}[{i}]")) for i, v in enumerate(raw)]


def _tools(raw: Any, where: str) -> ToolFilter:
    d = read_record(raw if raw is not None else {}, where, (), ("allow", "deny"))
    return ToolFilter(allow=tuple(_strings(d.get("allow", []), f"{where}.allow", limit=MAX_GLOBS)),
                      deny=tuple(_strings(d.get("deny", []), f"{where}.deny", limit=MAX_GLOBS)))


def _timeout(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 < raw <= MAX_REMOTE_TIMEOUT_S:
        raise ConfigError(where, f"must be a number of seconds above 0 and at most {MAX_REMOTE_TIMEOUT_S:g} "
                                 "(Functions ends an HTTP request that has not answered within 230 s)")
    return float(raw)


def _remote_common(d: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The fields MCP servers and agents share."""
    ws = d.get("workspace")
    return {"name": read_name(d["name"], f"{where}.name"),
            "workspace": read_name(ws, f"{where}.workspace") if ws is not None else None,
            "auth": _remote_auth(d.get("auth", {"type": "none"}), f"{where}.auth"),
            "timeout_s": _timeout(d.get("timeout_s", 120), f"{where}.timeout_s"),
            "allow_private_network": read_flag(d.get("allow_private_network", False),
                                               f"{where}.allow_private_network")}


REMOTE_FIELDS = ("workspace", "auth", "timeout_s", "allow_private_network")


def _mcp_server(raw: Any, where: str) -> McpServer:
    d = read_record(raw, where, ("name", "url"), (*REMOTE_FIELDS, "tools"))
    url = _url(d["url"], f"{where}.url")
    assert url is not None
    return McpServer(url=url, tools=_tools(d.get("tools"), f"{where}.tools"), **_remote_common(d, where))


def _agent(raw: Any, where: str) -> Agent:
    d = read_record(raw, where, ("name",), (*REMOTE_FIELDS, "url", "card_url"))
    if isinstance(d.get("auth"), Mapping) and d["auth"].get("type") == "oauth":
        raise ConfigError(f"{where}.auth.type", "oauth is for MCP servers only: an agent takes none, "
                                                "headers, entra or identity-assertion")
    return Agent(url=_url(d.get("url"), f"{where}.url", optional=True),
                 card_url=_url(d.get("card_url"), f"{where}.card_url", optional=True),
                 **_remote_common(d, where))


def _workspace(raw: Any, where: str) -> Workspace:
    d = read_record(raw, where, ("name",), ())
    return Workspace(name=read_name(d["name"], f"{where}.name"))


def parse_resource(text: str, where: str) -> str:
    """An access resource: <kind>:<name> of a stored kind, or gateway:default."""
    found = split_resource(text)
    if found is None:
        raise ConfigError(where, f"{text!r} must be {RESOURCE_FORMS}")
    if found[0].section:
        read_name(found[1], where)
    return text


def parse_collaborator(raw: Any, where: str) -> Collaborator:
    d = read_record(raw, where, ("resource", "principal", "role"), ())
    resource = parse_resource(str(read_text(d["resource"], f"{where}.resource")), f"{where}.resource")
    role = d["role"]
    if role not in ROLES:
        raise ConfigError(f"{where}.role", f"must be one of {', '.join(ROLES)}")
    if role == "admin" and resource != GATEWAY:
        raise ConfigError(f"{where}.role", f"admin is only granted on {GATEWAY}")
    if role != "admin" and resource == GATEWAY:
        raise ConfigError(f"{where}.role", f"only admin is granted on {GATEWAY}")
    return Collaborator(resource=resource,
                        principal=parse_principal(str(read_text(d["principal"], f"{where}.principal")),
                                                  f"{where}.principal", teams=True),
                        role=role)


PARSERS = {
    "identity_providers": _provider, "external_identities": _identity, "teams": teams.read_team,
    "accounts": _account,
    "workspaces": _workspace, "models": _model, "mcp_servers": _mcp_server, "agents": _agent,
    **rules.PARSERS,
}


def _allowed(section: str, item: Any, where: str, allowlist: Allowlist | None) -> Any:
    """`item` if the allowlist admits what it makes the gateway read or send its identity to."""
    if allowlist is None:
        return item
    refused = None
    if section == "accounts":
        refused = allowlist.account_problem(item)
    elif section in ("mcp_servers", "agents"):
        refused = allowlist.remote_problem(item)
    if refused is not None:
        raise ConfigError(f"{where}.{refused.field}", refused.problem)
    return item


def parse_item(section: str, raw: Any, where: str | None = None, *, allowlist: Allowlist | None) -> Any:
    """One resource of `section`, validated on its own (the /manage API uses this too). `allowlist` is
    the one built from the settings; None checks the shape only, for reading stored resources, which
    the snapshot then holds to the allowlist (so a stored account it refuses is named, not lost)."""
    where = where or section
    return _allowed(section, PARSERS[section](raw, where), where, allowlist)


def parse(doc: Any, *, allowlist: Allowlist = STRICT) -> Config:
    """A whole configuration document, validated, including references between resources and the
    allowlist (the built-in values only, unless the settings' is given)."""
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise ConfigError("(document)", "must be a mapping of sections")
    for key in doc:
        if key not in PARSERS and key != "collaborators":
            raise ConfigError(str(key), "unknown section")
    sections: dict[str, tuple[Any, ...]] = {}
    for section, parser in PARSERS.items():
        items = tuple(_allowed(section, parser(raw, f"{section}[{i}]"), f"{section}[{i}]", allowlist)
                      for i, raw in enumerate(_list(doc, section)))
        seen: set[str] = set()
        key = BY_SECTION[section].key
        for i, item in enumerate(items):
            if item.name in seen:
                raise ConfigError(f"{section}[{i}].{key}", f"duplicate {key} {item.name!r}")
            seen.add(item.name)
        sections[section] = items
    collaborators = tuple(parse_collaborator(raw, f"collaborators[{i}]")
                          for i, raw in enumerate(_list(doc, "collaborators")))
    check_references(Config(**sections, collaborators=collaborators))  # file order: indexes match
    # canonical order, so two equal configurations compare equal whatever their files' order
    return Config(**{k: tuple(sorted(v, key=lambda item: item.name)) for k, v in sections.items()},
                  collaborators=tuple(sorted(collaborators, key=lambda c: (c.resource, c.principal))))


def check_references(config: Config) -> None:
    names = {s: {item.name for item in getattr(config, s)} for s in PARSERS}
    for i, ident in enumerate(config.external_identities):
        if ident.identity_provider not in names["identity_providers"]:
            raise ConfigError(f"external_identities[{i}].identity_provider",
                              f"unknown identity provider {ident.identity_provider!r}")
    for i, team in enumerate(config.teams):
        for field, section, name in teams.references(team):
            if name not in names[section]:
                raise ConfigError(f"teams[{i}].{field}", unknown_reference(section, name))
    for section in ("models", "mcp_servers", "agents"):
        for i, item in enumerate(getattr(config, section)):
            if item.workspace is not None and item.workspace not in names["workspaces"]:
                raise ConfigError(f"{section}[{i}].workspace", f"unknown workspace {item.workspace!r}")
    for section in ("mcp_servers", "agents"):
        for i, item in enumerate(getattr(config, section)):
            account = item.auth.options.get("account")
            if account is not None and account not in names["accounts"]:
                raise ConfigError(f"{section}[{i}].auth.account", f"unknown account {account!r}")
    for i, model in enumerate(config.models):
        for j, target in enumerate(model.targets):
            if target.account not in names["accounts"]:
                raise ConfigError(f"models[{i}].targets[{j}].account", f"unknown account {target.account!r}")
    for section in rules.PARSERS:
        for i, item in enumerate(getattr(config, section)):
            for field, named_section, name in rules.references(section, item):
                if name not in names[named_section]:
                    raise ConfigError(f"{section}[{i}].{field}", unknown_reference(named_section, name))
    seen: set[tuple[str, str]] = set()
    for i, c in enumerate(config.collaborators):
        kind, name = split_resource(c.resource) or (None, "")
        if kind is not None and kind.section and name not in names[kind.section]:
            raise ConfigError(f"collaborators[{i}].resource", f"unknown resource {c.resource!r}")
        section, named = principal_reference(c.principal)
        if named not in names[section]:
            raise ConfigError(f"collaborators[{i}].principal", unknown_reference(section, named))
        if (c.resource, c.principal) in seen:
            raise ConfigError(f"collaborators[{i}]", f"{c.principal} already has a role on {c.resource}")
        seen.add((c.resource, c.principal))


def load_file(path: Path, *, allowlist: Allowlist = STRICT) -> Config:
    """Parse a YAML or JSON file; a syntax error is a ConfigError on the file itself."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot be read: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), f"is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                          f"{exc}") from None
    return parse(doc, allowlist=allowlist)
