// The identity providers screen: the providers whose tokens the gateway accepts, with "validate JWKS"
// (the gateway fetches the keys: the page may only talk to the gateway) and "test a token" (explain).

import {post} from "./api.js";
import {guarded} from "./banner.js";
import {el, replace} from "./dom.js";
import {resourceScreen} from "./resource-screen.js";

const SPEC = {
  path: "identity-providers", singular: "identity provider", prefix: "idp",
  intro: "Where callers' tokens come from: each provider's keys, issuer and audiences.",
  columns: [{label: "JWKS URI", value: p => p.jwks_uri || (p.discovery ? "(discovered)" : "")},
            {label: "Issuer", value: p => p.issuer || ""},
            {label: "Audiences", value: p => (p.audiences || []).join(", ")}],
  fields: [
    {key: "jwks_uri", label: "JWKS URI", hint: "https URL of the provider's signing keys"},
    {key: "issuer", label: "Issuer", hint: "the exact iss claim of its tokens"},
    {key: "audiences", label: "Audiences", type: "list", hint: "comma-separated; a token must carry one of them"},
    {key: "unique_id_claim", label: "Unique id claim", placeholder: "sub"},
    {key: "email_claim", label: "Email claim", placeholder: "email"},
    {key: "discovery", label: "Read the JWKS URI from the issuer's OpenID configuration", type: "bool"},
    {key: "allow_private_network", label: "The JWKS host may be on a private network", type: "bool"},
    {key: "console_client_id", label: "Console client id",
     hint: "a public (single-page) client registered at the provider: offers \"Sign in with\" this provider here"},
    {key: "console_scopes", label: "Console scopes", type: "list", placeholder: "openid",
     hint: "comma-separated; include the one whose access token is for the gateway (api://ai-gateway/.default)"},
  ],
  tools: ({name}) => [validateTool(name), testTokenTool(name)],
};

function validateTool(name) {
  const result = el("p", {testid: "idp-validate-result", "aria-live": "polite"});
  const run = () => guarded(async () => {
    replace(result, "Fetching the keys…");
    const {data} = await post(`manage/identity-providers/${encodeURIComponent(name)}/check`);
    result.dataset.outcome = data.ok ? "pass" : "fail";
    result.className = data.ok ? "outcome-pass" : "outcome-fail";
    replace(result, data.ok
      ? `${data.kids.length} key${data.kids.length === 1 ? "" : "s"} (${data.kids.join(", ")}) from ${data.jwks_uri}`
      : `No usable keys: ${data.error}`);
  });
  return el("section", {"aria-label": "Validate JWKS"}, el("h3", {text: "Validate JWKS"}),
    el("button", {type: "button", testid: "idp-validate", text: "Validate JWKS", on: {click: run}}), result);
}

function testTokenTool(name) {
  const token = el("textarea", {id: "idp-test-token", testid: "idp-test-token", rows: "3", spellcheck: "false",
                                autocomplete: "off"});
  const resource = el("input", {id: "idp-test-resource", testid: "idp-test-resource", type: "text",
                                value: "gateway:default", spellcheck: "false"});
  const result = el("ol", {class: "checks", testid: "idp-test-result", "aria-live": "polite"});
  const run = () => guarded(async () => {
    const {data} = await post("manage/explain", {token: token.value.trim(), resource: resource.value.trim()});
    const checks = data.checks.map(c => el("li", {testid: "idp-test-check", data: {check: c.check, outcome: c.passed ? "pass" : "fail"},
      class: c.passed ? "outcome-pass" : "outcome-fail"}, `${c.passed ? "✓" : "✗"} ${c.check}: ${c.detail}`));
    const summary = data.provider && data.provider !== name
      ? `This token is for provider ${data.provider}, not ${name}.` : `Role: ${data.role ?? "none"}.`;
    replace(result, checks, el("li", {text: summary}));
  });
  return el("section", {"aria-label": "Test a token"}, el("h3", {text: "Test a token"}),
    el("p", {class: "muted", text: "Paste a token from this provider: the gateway shows every check it makes."}),
    el("div", {class: "field"}, el("label", {for: token.id, text: "Token"}), token),
    el("div", {class: "field"}, el("label", {for: resource.id, text: "Resource"}), resource),
    el("button", {type: "button", testid: "idp-test-run", text: "Test the token", on: {click: run}}), result);
}

export function render(main, ctx) {
  resourceScreen(main, ctx, SPEC);
}
