// The MCP servers screen: the servers the gateway fronts, which tools callers see, and how the gateway
// authenticates to them (url and auth only admins set: they decide where credentials go).

import {resourceScreen} from "./resource-screen.js";

const SPEC = {
  path: "mcp-servers", singular: "MCP server", prefix: "mcp-server", resource: "mcp-server",
  intro: "MCP servers reached through the gateway at /mcp/<name>.",
  columns: [{label: "URL", value: s => s.url}, {label: "Workspace", value: s => s.workspace || ""},
            {label: "Auth", value: s => s.auth?.type || "none"}],
  fields: [
    {key: "url", label: "URL", admin: true, hint: "https URL of the server (admins)"},
    {key: "workspace", label: "Workspace"},
    {key: "auth", label: "Auth", type: "json", admin: true, hint: 'JSON, e.g. {"type": "none"} (admins)'},
    {key: "tools", label: "Tools", type: "json", hint: 'JSON globs, e.g. {"allow": ["search_*"], "deny": []}'},
    {key: "timeout_s", label: "Timeout (seconds)", type: "number"},
    {key: "allow_private_network", label: "The URL may be on a private network", type: "bool", admin: true},
  ],
};

export function render(main, ctx) {
  resourceScreen(main, ctx, SPEC);
}
