// The accounts screen: the upstream Azure OpenAI and AI Foundry accounts, with "get a token now": the
// gateway obtains the account's upstream token once and shows its expiry, or the federation error in
// words with the field to fix. The token itself never reaches the page.

import {post} from "./api.js";
import {guarded} from "./banner.js";
import {el, replace} from "./dom.js";
import {resourceScreen} from "./resource-screen.js";

const SPEC = {
  path: "accounts", singular: "account", prefix: "account", resource: "account", adminWrites: true,
  intro: "Where models are served, and how the gateway authenticates to them (only admins change them).",
  columns: [{label: "Kind", value: a => a.kind || "azure-openai"}, {label: "Endpoint", value: a => a.endpoint},
            {label: "Auth", value: a => a.auth?.type || ""}],
  fields: [
    {key: "kind", label: "Kind", type: "select", options: ["", "azure-openai", "ai-foundry"]},
    {key: "endpoint", label: "Endpoint", hint: "https://<resource>.openai.azure.com"},
    {key: "auth", label: "Auth", type: "json",
     hint: 'JSON, as in the configuration file, e.g. {"type": "workload-identity", "tenant_id": "…", "client_id": "…"}'},
    {key: "api_style", label: "API style", type: "select", options: ["", "deployments", "v1", "models"]},
    {key: "api_version", label: "API version"},
  ],
  tools: ({name, admin}) => admin ? [checkTool(name)] : [],
};

function when(epoch) {
  const left = Math.round(epoch - Date.now() / 1000);
  return `${new Date(epoch * 1000).toISOString()} (${left >= 0 ? `in ${Math.round(left / 60)} min` : "expired"})`;
}

function checkTool(name) {
  const result = el("p", {testid: "account-check-result", "aria-live": "polite"});
  const run = () => guarded(async () => {
    replace(result, "Getting a token…");
    const {data} = await post(`manage/accounts/${encodeURIComponent(name)}/check`);
    result.dataset.outcome = data.ok ? "pass" : "fail";
    result.className = data.ok ? "outcome-pass" : "outcome-fail";
    if (!data.ok) replace(result, `No token: ${data.error}${data.field ? ` (fix: ${data.field})` : ""}`);
    else replace(result, data.expires_on ? `Token obtained (${data.auth}); it expires ${when(data.expires_on)}.`
                                         : `Credential usable (${data.auth}).`);
  });
  return el("section", {"aria-label": "Get a token now"}, el("h3", {text: "Get a token now"}),
    el("p", {class: "muted", text: "The gateway asks for this account's upstream token once, as a request would."}),
    el("button", {type: "button", testid: "account-check", text: "Get a token now", on: {click: run}}), result);
}

export function render(main, ctx) {
  resourceScreen(main, ctx, SPEC);
}
