// The console's screens, in navigation order. Each module exports render(main, ctx) and may answer a
// function that stops its timers when the user leaves the screen. ctx: {screen, params (the hash's
// query), navigate(id, params), signal (aborted when the user leaves: pass it to api.js calls)}.

export const SCREENS = [
  {id: "explain", label: "Explain", load: () => import("./explain.js")},
  {id: "models", label: "Models", load: () => import("./models.js")},
  {id: "playground", label: "Playground", load: () => import("./playground.js")},
  {id: "identity-providers", label: "Identity providers", load: () => import("./identity-providers.js")},
  {id: "external-identities", label: "External identities", load: () => import("./external-identities.js")},
  {id: "accounts", label: "Accounts", load: () => import("./accounts.js")},
  {id: "mcp-servers", label: "MCP servers", load: () => import("./mcp-servers.js")},
  {id: "agents", label: "Agents", load: () => import("./agents.js")},
  {id: "workspaces", label: "Workspaces", load: () => import("./workspaces.js")},
  {id: "teams", label: "Teams", load: () => import("./teams.js")},
  {id: "usage", label: "Usage", load: () => import("./usage.js")},
  {id: "status", label: "Status", load: () => import("./status.js")},
  {id: "audit", label: "Audit log", load: () => import("./audit.js")},
];

export const DEFAULT_SCREEN = "models";
