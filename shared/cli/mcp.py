"""`mcp list` and `mcp tools NAME [--as user:<provider>/<id>]`: the MCP servers and agents, and one
server's tools, as an operator checks them.

`list` shows each one's kind, host, outbound auth, tool filter and who may use it (the principals with
a role on it or on its workspace; gateway admins always may). `tools` asks the server itself
(shared/remote/discover.py) with the credential the gateway would send, and marks each tool allowed or
hidden by the filter. An identity-assertion server gets an assertion about the principal named by
`--as` (required for it: the server may answer per user); an oauth server has no credential without a
user's own authorization, so only its filter is shown. Server text (tool names, descriptions) is
escaped before it reaches the terminal.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..auth.identities import Principal
from ..remote.auth import RemoteAuthProblem
from ..remote.discover import Discoverer, DiscoveryFailed
from .gateway import with_gateway
from .output import CommandError, emit, table

if TYPE_CHECKING:
    from ..config.model import Agent, McpServer, ToolFilter
    from ..config.snapshot import View
    from ..runtime import Gateway

DESCRIPTION = 60
"""Longest tool description shown in the table."""
OPERATOR = Principal(provider="gateway-cli", unique_id="operator", email=None, identities=frozenset())
"""Who a discovery is made for when the server's credential does not depend on a user."""


def plain(text: str, limit: int | None = None) -> str:
    """Someone else's text made safe for a terminal: control and other unprintable characters escaped."""
    out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return out if limit is None or len(out) <= limit else out[:limit - 1] + "…"


def host_of(url: str | None) -> str:
    if not url:
        return "-"
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def filter_of(tools: ToolFilter | None) -> dict[str, list[str]] | None:
    return None if tools is None else {"allow": list(tools.allow), "deny": list(tools.deny)}


def filter_text(tools: ToolFilter | None) -> str:
    if tools is None:
        return "-"
    if tools.everything:
        return "all"
    parts = [f"{word} {', '.join(globs)}" for word, globs in (("allow", tools.allow), ("deny", tools.deny))
             if globs]
    return "; ".join(parts)


def who(view: View, resource: str, workspace: str | None) -> list[dict[str, str]]:
    """The bindings that give a role on `resource`, directly or through its workspace."""
    scopes = {resource, *((f"workspace:{workspace}",) if workspace else ())}
    return [{"principal": c.principal, "role": c.role, "via": c.resource}
            for c in sorted(view.config.collaborators, key=lambda c: (c.resource, c.principal))
            if c.resource in scopes]


def who_text(entries: list[dict[str, str]]) -> str:
    def one(e: dict[str, str]) -> str:
        via = f" via {e['via']}" if e["via"].startswith("workspace:") else ""
        return f"{e['principal']} ({e['role']}{via})"

    named = [one(e) for e in entries]
    return ", ".join(named) or "admins only"


def _entry(view: View, item: McpServer | Agent, kind: str) -> dict[str, Any]:
    prefix = "mcp-server" if kind == "mcp" else "agent"
    resource = f"{prefix}:{item.name}"
    tools = getattr(item, "tools", None)
    return {"name": item.name, "kind": kind, "workspace": item.workspace, "host": host_of(item.url),
            "auth": item.auth.type, "tools": filter_of(tools), "tools_text": filter_text(tools),
            "who": who(view, resource, item.workspace), "refused": view.refused.get(resource)}


def cmd_list(args: argparse.Namespace) -> int:
    async def work(gw: Gateway) -> list[dict[str, Any]]:
        view = await gw.snapshot.current()
        return [*(_entry(view, s, "mcp") for s in view.config.mcp_servers),
                *(_entry(view, a, "agent") for a in view.config.agents)]

    entries = with_gateway(work)
    data = [{k: v for k, v in e.items() if k != "tools_text"} for e in entries]
    emit(args, data, lambda: _render_list(entries))
    return 0


def _render_list(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "no MCP servers or agents configured"
    rows = [(e["name"], e["kind"], e["host"], e["auth"], e["tools_text"], who_text(e["who"])
             + (f"  [not served: {e['refused']}]" if e["refused"] else "")) for e in entries]
    return table(("name", "kind", "host", "auth", "tools", "who may use it"), rows) + \
        "\n(gateway admins may use every one)"


def parse_as(text: str | None) -> Principal | None:
    if text is None:
        return None
    provider, slash, unique = text.removeprefix("user:").partition("/")
    if not text.startswith("user:") or not slash or not provider or not unique:
        raise CommandError(f"--as: {plain(text, 80)!r} must be user:<provider>/<unique id>")
    return Principal(provider=provider, unique_id=unique, email=None, identities=frozenset())


def cmd_tools(args: argparse.Namespace) -> int:
    principal = parse_as(args.as_principal)
    report = with_gateway(lambda gw: _tools(gw, args.name, principal))
    emit(args, report, lambda: _render_tools(report))
    return 0


async def _tools(gw: Gateway, name: str, principal: Principal | None) -> dict[str, Any]:
    view = await gw.snapshot.current()
    server = next((s for s in view.config.mcp_servers if s.name == name), None)
    if server is None:
        raise CommandError(f"no MCP server named {plain(name, 80)!r} is configured (see: mcp list)")
    resource = f"mcp-server:{name}"
    if resource in view.refused:
        raise CommandError(f"{resource} is not served: {view.refused[resource]}")
    if principal is not None and principal.provider not in {p.name for p in view.config.identity_providers}:
        raise CommandError(f"--as: no identity provider named {plain(principal.provider, 80)!r}")
    report: dict[str, Any] = {"server": name, "host": host_of(server.url), "auth": server.auth.type,
                              "filter": filter_of(server.tools), "who": who(view, resource, server.workspace),
                              "as": principal.user if principal else None, "protocol": None, "tools": None}
    if principal is not None:
        report["as_may_use"] = view.policy.allows(principal.principals, resource, "viewer")
    if server.auth.type == "oauth":
        report["note"] = ("the server takes each user's own OAuth token: its tools cannot be listed without "
                          "a user's authorization; the filter is shown instead")
        return report
    if server.auth.type == "identity-assertion" and principal is None:
        raise CommandError(f"{resource} authenticates users by identity assertion: name the user to ask "
                           "as with --as user:<provider>/<unique id>")
    try:
        headers = await gw.remote.auth.headers(server, principal or OPERATOR, view)
        found = await Discoverer(gw.remote.client, server, headers).tools()
    except RemoteAuthProblem as exc:
        raise CommandError(f"{resource}: {exc.message}") from None
    except DiscoveryFailed as exc:
        raise CommandError(f"{resource}: could not list its tools: {exc.message}") from None
    report["protocol"] = found.protocol
    report["tools"] = [{"name": t.name, "allowed": server.tools.allows(t.name), "description": t.description}
                       for t in found.tools]
    return report


def _render_tools(report: dict[str, Any]) -> str:
    filt = report["filter"] or {}
    lines = [f"MCP server {report['server']} at {report['host']}, auth {report['auth']}"
             + (f", asked as {report['as']}" if report["as"] else "")
             + (f", protocol {report['protocol']}" if report["protocol"] else ""),
             f"tool filter: allow {', '.join(filt.get('allow') or ['*'])}"
             + (f"; deny {', '.join(filt['deny'])}" if filt.get("deny") else ""),
             f"who may use its allowed tools: {who_text(report['who'])} (and gateway admins)"]
    if report.get("as_may_use") is False:
        lines.append(f"note: {report['as']} has no role on mcp-server:{report['server']}")
    if report.get("note"):
        lines.append(f"note: {report['note']}")
    if report["tools"] is not None:
        rows = [(plain(t["name"]), "allowed" if t["allowed"] else "hidden",
                 plain(t["description"], DESCRIPTION)) for t in report["tools"]]
        lines += ["", table(("tool", "callers", "description"), rows) if rows
                  else "the server lists no tools"]
    return "\n".join(lines)


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add `mcp list` and `mcp tools NAME` to the CLI's subcommands."""
    p = sub.add_parser("mcp", help="MCP servers and agents: who may use them, and a server's tools")
    inner = p.add_subparsers(dest="mcp_command", required=True)
    q = inner.add_parser("list", help="MCP servers and agents: host, auth, tool filter, who may use them",
                         parents=parents)
    q.set_defaults(run=cmd_list)
    q = inner.add_parser("tools", help="an MCP server's tools, each allowed or hidden by its filter",
                         parents=parents)
    q.add_argument("name", help="the MCP server's name")
    q.add_argument("--as", dest="as_principal", metavar="user:<provider>/<id>",
                   help="ask as this user (required for identity-assertion servers)")
    q.set_defaults(run=cmd_tools)
