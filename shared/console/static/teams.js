// The teams screen: named lists of principals, so a role granted to team:<name> reaches every member.
// Changing the members grants or takes away roles, so it needs manager on the team (admins create and
// delete teams).

import {resourceScreen} from "./resource-screen.js";

const SPEC = {
  path: "teams", singular: "team", prefix: "team", resource: "team", writeRole: "manager", adminDeletes: true,
  intro: "People and external identities granted roles together: grant roles to team:<name>.",
  columns: [{label: "Members", value: t => String((t.members || []).length)}],
  fields: [
    {key: "members", label: "Members", type: "list",
     hint: "comma-separated principals: user:<provider>/<id> or identity:<name>"},
  ],
};

export function render(main, ctx) {
  resourceScreen(main, ctx, SPEC);
}
