// The external identities screen: groups of callers of one identity provider, named by claim conditions,
// so roles can be granted to identity:<name> rather than to each user.

import {resourceScreen} from "./resource-screen.js";

const SPEC = {
  path: "external-identities", singular: "external identity", prefix: "external-identity",
  intro: "Callers of one identity provider whose claims hold: grant roles to identity:<name>.",
  columns: [{label: "Identity provider", value: i => i.identity_provider},
            {label: "Claims", value: i => JSON.stringify(i.claims || {})}],
  fields: [
    {key: "identity_provider", label: "Identity provider", hint: "the name of a configured provider"},
    {key: "claims", label: "Claims", type: "json",
     hint: 'JSON: claim (dotted path) -> the value it must equal, or a list claim contain, e.g. {"groups": "ops"}'},
  ],
};

export function render(main, ctx) {
  resourceScreen(main, ctx, SPEC);
}
