"""`python -m shared mcp list` and `mcp tools NAME` against MCP servers of the official SDK on loopback:
a stateless one on the 2026-07-28 revision and a stateful one that only speaks the 2025 session
revision, each asked with the credential the gateway would send."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from sandbox.azurite import Azurite, free_port
from sandbox.emulator import AzureOpenAIEmulator
from sandbox.idp import DevIdentityProvider
from tests.harness import Tables, gateway_env, sandbox_config, unique_prefix
from tests.manage.conftest import cli

DOCS_KEY = "docs-key-value"
PUBLIC_URL = "https://gateway.example.com"
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")


class Recorder:
    """ASGI middleware: remembers each request's method and headers; with `legacy_only`, answers a
    request in a newer revision as a 2025 server does (400), so the SDK's session path serves it."""

    def __init__(self, app: Any, *, legacy_only: bool = False) -> None:
        self.app = app
        self.legacy_only = legacy_only
        self.seen: list[tuple[str, dict[str, str]]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.seen.append((scope["method"], headers))
        version = headers.get("mcp-protocol-version")
        if self.legacy_only and version is not None and version not in HANDSHAKE_VERSIONS:
            body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {
                "code": -32600, "message": "Bad Request: Unsupported protocol version"}}).encode()
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return None
        return await self.app(scope, receive, send)


def mcp_app(*, stateless: bool, json_response: bool) -> Any:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("docs")

    @server.tool()
    def search_docs(query: str) -> str:
        """Search the documentation."""
        return query

    @server.tool()
    def get_page(page: str) -> str:
        """Read one page."""
        return page

    @server.tool()
    def get_secret_notes() -> str:
        """Notes nobody should read."""
        return ""

    @server.tool()
    def delete_repo(name: str) -> str:
        """Delete a repository \x1b[2J\x1b[31mgone\x1b[0m."""
        return name

    return server.streamable_http_app(stateless_http=stateless, json_response=json_response)


class Served:
    def __init__(self, app: Recorder) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the MCP server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def modern() -> Iterator[Served]:
    with Served(Recorder(mcp_app(stateless=True, json_response=True))) as served:
        yield served


@pytest.fixture(scope="module")
def legacy() -> Iterator[Served]:
    with Served(Recorder(mcp_app(stateless=False, json_response=False), legacy_only=True)) as served:
        yield served


@pytest.fixture(scope="module")
def env(azurite: Azurite, idp: DevIdentityProvider, emulator: AzureOpenAIEmulator, modern: Served,
        legacy: Served) -> dict[str, str]:
    tables = Tables(azurite, unique_prefix())
    doc = sandbox_config(idp, emulator, workspaces=[{"name": "w1"}], mcp_servers=[
        {"name": "docs", "workspace": "w1", "url": modern.url, "auth": {"type": "identity-assertion"},
         "tools": {"allow": ["search_*", "get_*"], "deny": ["get_secret*"]}},
        {"name": "keyed", "url": modern.url,
         "auth": {"type": "headers", "headers_env": {"X-Api-Key": "GATEWAY_SECRET_DOCS_KEY"}}},
        {"name": "old", "url": legacy.url, "tools": {"deny": ["delete_*"]}},
        {"name": "gone", "url": f"http://127.0.0.1:{free_port()}/mcp"},
        {"name": "per-user", "url": "https://mcp.example.com/mcp",
         "auth": {"type": "oauth", "client_id": "c"}},
    ], agents=[{"name": "triage", "url": "https://agents.example.com/a2a",
                "auth": {"type": "entra", "scope": "api://triage/.default"}}])
    doc["collaborators"] += [
        {"resource": "workspace:w1", "principal": "identity:developers", "role": "viewer"},
        {"resource": "mcp-server:old", "principal": "user:dev/bob", "role": "editor"},
        {"resource": "agent:triage", "principal": "user:dev/carol", "role": "viewer"},
    ]
    tables.apply(doc)
    return gateway_env(tables, GATEWAY_SECRET_DOCS_KEY=DOCS_KEY, GATEWAY_PUBLIC_URL=PUBLIC_URL)


def run_json(env: dict[str, str], *args: str) -> Any:
    done = cli(env, *args, "--output", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def test_mcp_list_shows_each_server_and_agent_and_who_may_use_it(env: dict[str, str]) -> None:
    listed = {e["name"]: e for e in run_json(env, "mcp", "list")}
    assert set(listed) == {"docs", "keyed", "old", "gone", "per-user", "triage"}
    docs = listed["docs"]
    assert (docs["kind"], docs["host"].split(":")[0], docs["auth"]) == \
        ("mcp", "127.0.0.1", "identity-assertion")
    assert docs["tools"] == {"allow": ["search_*", "get_*"], "deny": ["get_secret*"]}
    assert docs["who"] == [{"principal": "identity:developers", "role": "viewer", "via": "workspace:w1"}]
    assert listed["triage"]["kind"] == "agent" and listed["triage"]["auth"] == "entra"
    assert listed["triage"]["host"] == "agents.example.com" and listed["triage"]["tools"] is None
    assert listed["triage"]["who"] == [
        {"principal": "user:dev/carol", "role": "viewer", "via": "agent:triage"}]
    text = cli(env, "mcp", "list").stdout
    assert "identity:developers (viewer via workspace:w1)" in text and "user:dev/bob (editor)" in text
    assert "allow search_*, get_*; deny get_secret*" in text


@pytest.mark.parametrize(("name", "extra", "protocol", "allowed"), [
    ("docs", ("--as", "user:dev/alice"), "2026-07-28", {"search_docs", "get_page"}),
    ("keyed", (), "2026-07-28", {"search_docs", "get_page", "get_secret_notes", "delete_repo"}),
    ("old", (), "2025-11-25", {"search_docs", "get_page", "get_secret_notes"}),
])
def test_mcp_tools_marks_each_tool_allowed_or_hidden(env: dict[str, str], name: str, extra: tuple[str, ...],
                                                     protocol: str, allowed: set[str]) -> None:
    report = run_json(env, "mcp", "tools", name, *extra)
    assert report["protocol"] == protocol
    tools = {t["name"]: t["allowed"] for t in report["tools"]}
    assert set(tools) == {"search_docs", "get_page", "get_secret_notes", "delete_repo"}
    assert {t for t, ok in tools.items() if ok} == allowed


def test_an_identity_assertion_server_is_asked_as_the_named_user(env: dict[str, str], modern: Served) -> None:
    modern.app.seen.clear()
    report = run_json(env, "mcp", "tools", "docs", "--as", "user:dev/alice")
    assert report["as"] == "user:dev/alice" and report["as_may_use"] is False   # no groups claim known
    sent = [h for _, h in modern.app.seen]
    assert [h["mcp-method"] for h in sent] == ["server/discover", "tools/list"]
    token = sent[0]["authorization"].removeprefix("Bearer ")
    assert claims(token)["sub"] == "user:dev/alice"
    assert (claims(token)["aud"], claims(token)["iss"]) == (modern.url, PUBLIC_URL)


def test_a_headers_server_gets_its_secret_header_and_nothing_else(env: dict[str, str],
                                                                  modern: Served) -> None:
    modern.app.seen.clear()
    run_json(env, "mcp", "tools", "keyed")
    assert modern.app.seen and all(h.get("x-api-key") == DOCS_KEY for _, h in modern.app.seen)
    assert not any("authorization" in h or "cookie" in h for _, h in modern.app.seen)


def test_a_session_era_server_is_initialised_and_its_session_ended(env: dict[str, str],
                                                                   legacy: Served) -> None:
    legacy.app.seen.clear()
    run_json(env, "mcp", "tools", "old")
    methods = [m for m, _ in legacy.app.seen]
    assert methods[-1] == "DELETE"
    sessions = {h.get("mcp-session-id") for m, h in legacy.app.seen[2:]}
    assert len(sessions) == 1 and None not in sessions        # every call after initialize, one session


def test_hostile_tool_text_cannot_drive_the_operators_terminal(env: dict[str, str]) -> None:
    text = cli(env, "mcp", "tools", "old").stdout
    assert "\x1b" not in text and "\\x1b[2J" in text
    rows = {line.split()[0]: line.split()[1] for line in text.splitlines()
            if line.startswith(("delete_", "search_"))}
    assert rows == {"delete_repo": "hidden", "search_docs": "allowed"}


@pytest.mark.parametrize(("args", "message"), [
    (("docs",), "--as user:<provider>/<unique id>"),
    (("docs", "--as", "alice"), "must be user:<provider>/<unique id>"),
    (("docs", "--as", "user:nobody/alice"), "no identity provider named 'nobody'"),
    (("gone",), "cannot be reached"),
    (("ghost",), "no MCP server named 'ghost'"),
])
def test_mcp_tools_errors_say_what_to_do(env: dict[str, str], args: tuple[str, ...], message: str) -> None:
    done = cli(env, "mcp", "tools", *args)
    assert done.returncode == 2 and done.stdout == "", done.stdout
    assert message in done.stderr


def test_an_oauth_server_shows_its_filter_only(env: dict[str, str]) -> None:
    report = run_json(env, "mcp", "tools", "per-user")
    assert report["tools"] is None and "authorization" in report["note"]
    assert report["filter"] == {"allow": [], "deny": []}
    assert "cannot be listed" in cli(env, "mcp", "tools", "per-user").stdout
