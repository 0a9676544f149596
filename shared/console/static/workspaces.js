// The workspaces screen: a role on workspace:<name> applies to every resource in it.

import {resourceScreen} from "./resource-screen.js";

const SPEC = {
  path: "workspaces", singular: "workspace", prefix: "workspace", resource: "workspace",
  intro: "Groups of models, MCP servers and agents: a role on the workspace applies to all of them.",
  columns: [],
  fields: [],
};

export function render(main, ctx) {
  resourceScreen(main, ctx, SPEC);
}
