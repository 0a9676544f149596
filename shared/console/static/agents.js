// The agents screen: the A2A agents the gateway fronts (url, card and auth only admins set).

import {resourceScreen} from "./resource-screen.js";

const SPEC = {
  path: "agents", singular: "agent", prefix: "agent", resource: "agent",
  intro: "Agents reached through the gateway.",
  columns: [{label: "URL", value: a => a.url || ""}, {label: "Workspace", value: a => a.workspace || ""}],
  fields: [
    {key: "url", label: "URL", admin: true, hint: "https URL of the agent (admins)"},
    {key: "card_url", label: "Agent card URL", admin: true, hint: "default: <origin>/.well-known/agent-card.json"},
    {key: "workspace", label: "Workspace"},
    {key: "auth", label: "Auth", type: "json", admin: true, hint: 'JSON, e.g. {"type": "none"} (admins)'},
    {key: "timeout_s", label: "Timeout (seconds)", type: "number"},
    {key: "allow_private_network", label: "The URL may be on a private network", type: "bool", admin: true},
  ],
};

export function render(main, ctx) {
  resourceScreen(main, ctx, SPEC);
}
