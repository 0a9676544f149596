"""MCP servers and agents in the configuration: their auth, tool filters and timeouts read, written back
and held to the allowlist, so whoever may edit one cannot make the gateway send its own credentials,
its identity assertions or a secret variable where they choose."""

from __future__ import annotations

from typing import Any

import pytest

from shared.config.allowlist import Allowlist
from shared.config.document import to_document
from shared.config.model import ToolFilter
from shared.config.schema import ConfigError, parse

SERVER = {"name": "docs", "url": "https://mcp.example.com/mcp"}
DEV = Allowlist(http_loopback=True)


def _server(**fields: Any) -> dict[str, Any]:
    return {"mcp_servers": [{**SERVER, **fields}]}


@pytest.mark.parametrize("doc", [
    _server(),
    _server(workspace="research", timeout_s=30, tools={"allow": ["search_*"], "deny": ["search_admin"]}),
    _server(auth={"type": "headers", "headers_env": {"X-Api-Key": "GATEWAY_SECRET_DOCS"}}),
    _server(auth={"type": "entra", "scope": "api://docs-mcp/.default"}),
    _server(auth={"type": "entra", "scope": "api://docs-mcp/.default", "account": "aoai"}),
    _server(auth={"type": "identity-assertion"}, allow_private_network=True),
    _server(auth={"type": "oauth", "client_id": "gw", "client_secret_env": "GATEWAY_SECRET_DOCS_OAUTH",
                  "scopes": ["read"], "authorization_server": "https://login.example.com"}),
    {"agents": [{"name": "triage", "url": "https://agents.example.com/a2a/triage",
                 "card_url": "https://agents.example.com/triage/card.json",
                 "auth": {"type": "entra", "scope": "api://triage/.default"}, "timeout_s": 200}]},
])
def test_export_gives_back_what_apply_read(doc: dict[str, Any]) -> None:
    doc = {**doc, "workspaces": [{"name": "research"}],
           "accounts": [{"name": "aoai", "endpoint": "https://a.openai.azure.com",
                         "auth": {"type": "managed-identity"}}]}
    config = parse(doc)
    written = to_document(config)
    for section in ("mcp_servers", "agents"):
        assert written[section] == doc.get(section, [])
    assert parse(written) == config


@pytest.mark.parametrize(("tools", "tool", "allowed"), [
    ({}, "anything", True),
    ({"allow": ["search_*", "get_*"]}, "search_docs", True),
    ({"allow": ["search_*", "get_*"]}, "delete_docs", False),
    ({"allow": ["search_*"], "deny": ["search_admin*"]}, "search_admin_users", False),
    ({"deny": ["delete_*"]}, "delete_item", False),
    ({"deny": ["delete_*"]}, "Delete_item", True),      # globs are case-sensitive, as tool names are
])
def test_tool_filters_deny_wins_and_default_allows_all(tools: dict[str, Any], tool: str,
                                                       allowed: bool) -> None:
    server = parse(_server(tools=tools)).mcp_servers[0]
    assert server.tools.allows(tool) is allowed
    assert ToolFilter().allows(tool)


@pytest.mark.parametrize(("fields", "where", "says"), [
    # an editor pointing the gateway's Entra identity at the control plane, storage, secrets or mail
    ({"auth": {"type": "entra", "scope": "https://management.azure.com/.default"}}, "auth.scope",
     "Resource Manager"),
    ({"auth": {"type": "entra", "scope": "https://storage.azure.com/.default"}}, "auth.scope", "Storage"),
    ({"auth": {"type": "entra", "scope": "https://vault.azure.net/.default"}}, "auth.scope", "Key Vault"),
    ({"auth": {"type": "entra", "scope": "https://graph.microsoft.com/.default"}}, "auth.scope", "Graph"),
    ({"auth": {"type": "entra", "scope": "https://cognitiveservices.azure.com/.default"}}, "auth.scope",
     "application ID URI"),
    # an editor making the gateway read a variable that is not a declared secret
    ({"auth": {"type": "headers", "headers_env": {"X-Key": "GATEWAY_TABLES_CONNECTION"}}},
     "auth.headers_env.X-Key", "GATEWAY_SECRET_"),
    ({"auth": {"type": "oauth", "client_id": "gw", "client_secret_env": "AZURE_CLIENT_SECRET"}},
     "auth.client_secret_env", "GATEWAY_SECRET_"),
    # plain http leaks every assertion and token on the wire
    ({"url": "http://mcp.example.com/mcp"}, "url", "https"),
    ({"auth": {"type": "oauth", "client_id": "gw", "authorization_server": "http://as.example.com"}},
     "auth.authorization_server", "https"),
])
def test_a_hostile_editor_cannot_point_the_gateways_credentials_anywhere(fields: dict[str, Any], where: str,
                                                                          says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse(_server(**fields))
    assert refused.value.field == f"mcp_servers[0].{where}"
    assert says in refused.value.problem


@pytest.mark.parametrize(("fields", "where"), [
    ({"auth": {"type": "headers", "headers_env": {"Host": "GATEWAY_SECRET_X"}}}, "auth.headers_env"),
    ({"auth": {"type": "headers", "headers_env": {"Mcp-Session-Id": "GATEWAY_SECRET_X"}}},
     "auth.headers_env"),
    ({"auth": {"type": "headers", "headers_env": {"Cookie": "GATEWAY_SECRET_X"}}}, "auth.headers_env"),
    ({"auth": {"type": "headers", "headers_env": {"X Bad": "GATEWAY_SECRET_X"}}}, "auth.headers_env"),
    ({"auth": {"type": "headers", "headers_env": {}}}, "auth.headers_env"),
    ({"auth": {"type": "entra"}}, "auth.scope"),
    ({"auth": {"type": "oauth"}}, "auth.client_id"),
    ({"auth": {"type": "identity-assertion", "audience": "x"}}, "auth.audience"),
    ({"auth": {"type": "passthrough"}}, "auth.type"),
    ({"timeout_s": 0}, "timeout_s"),
    ({"timeout_s": 300}, "timeout_s"),
    ({"timeout_s": True}, "timeout_s"),
    ({"tools": {"allow": "search_*"}}, "tools.allow"),
    ({"tools": {"only": ["x"]}}, "tools.only"),
    ({"allow_private_network": "yes"}, "allow_private_network"),
])
def test_bad_fields_are_named(fields: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse(_server(**fields))
    assert refused.value.field == f"mcp_servers[0].{where}"


def test_oauth_is_for_mcp_servers_only() -> None:
    with pytest.raises(ConfigError) as refused:
        parse({"agents": [{"name": "a", "url": "https://a.example.com",
                           "auth": {"type": "oauth", "client_id": "x"}}]})
    assert refused.value.field == "agents[0].auth.type"


def test_an_entra_account_must_exist() -> None:
    with pytest.raises(ConfigError) as refused:
        parse(_server(auth={"type": "entra", "scope": "api://x/.default", "account": "nope"}))
    assert refused.value.field == "mcp_servers[0].auth.account"


def test_plain_http_to_loopback_only_in_development() -> None:
    doc = _server(url="http://127.0.0.1:8931/mcp")
    with pytest.raises(ConfigError):
        parse(doc)
    assert parse(doc, allowlist=DEV).mcp_servers[0].url == "http://127.0.0.1:8931/mcp"
    with pytest.raises(ConfigError):
        parse(_server(url="http://10.0.0.5/mcp"), allowlist=DEV)


def test_a_listed_scope_is_admitted_but_never_a_control_plane_one() -> None:
    listed = Allowlist(scopes=frozenset({"https://custom.example.com/.default",
                                         "https://management.azure.com/.default"}))
    assert parse(_server(auth={"type": "entra", "scope": "https://custom.example.com/.default"}),
                 allowlist=listed).mcp_servers
    with pytest.raises(ConfigError):
        parse(_server(auth={"type": "entra", "scope": "https://management.azure.com/.default"}),
              allowlist=listed)
