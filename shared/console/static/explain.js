// Explain: why the gateway accepts or refuses a token on a resource, check by check, from
// POST /manage/explain (an admin's call). The pasted token goes only into that request's body.

import {post} from "./api.js";
import {clearError, guarded} from "./banner.js";
import {el, heading, labelled, replace} from "./dom.js";
import {current} from "./session.js";

function check(item) {
  const outcome = item.passed ? "pass" : "fail";
  return el("li", {testid: "explain-check", data: {check: item.check, outcome}, class: `outcome-${outcome}`},
    el("strong", {text: `${item.passed ? "✓ pass" : "✗ fail"} · ${item.check}`}),
    item.detail ? el("span", {text: ` — ${item.detail}`}) : null);
}

function fact(label, value) {
  return value === null || value === undefined || value === "" ? [] : [el("dt", {text: label}), el("dd", {text: String(value)})];
}

function summary(report) {
  const key = report.key;
  return el("dl", {class: "facts"},
    fact("Outcome", report.allowed ? `allowed: ${report.role} via ${report.role_via}` : `refused: ${report.reason}`),
    fact("Principal", report.principal),
    fact("Email", report.email),
    fact("Identities", (report.identities || []).join(", ") || "none"),
    fact("Effective role", report.role ?? "none"),
    fact("Identity provider", report.provider && `${report.provider}${report.provider_reason ? ` (${report.provider_reason})` : ""}`),
    fact("Key", key && `${key.kid ?? "no kid"} ${key.alg}, ${key.state}, ${key.age_seconds} s old, from ${key.jwks_uri}`),
    fact("Configuration version", report.configuration_version));
}

export function render(main, ctx) {
  const token = el("textarea", {testid: "explain-token", rows: 4, spellcheck: "false", autocomplete: "off",
    placeholder: "The token to explain"});
  const resource = el("input", {testid: "explain-resource", value: ctx.params.get("resource") || "gateway:default",
    spellcheck: "false", placeholder: "model:gpt-4o"});
  const run = el("button", {type: "submit", testid: "explain-run", text: "Explain"});
  const mine = el("button", {type: "button", text: "Use my token", on: {click: () => { token.value = current() || ""; }}});
  const result = el("section", {testid: "explain-result", class: "explain-result", "aria-live": "polite"});
  const form = el("form", {class: "explain-form"},
    labelled("Token", token).field, labelled("Resource (kind:name)", resource).field,
    el("div", {class: "actions"}, run, mine));
  form.addEventListener("submit", async event => {
    event.preventDefault();
    clearError();
    run.disabled = true;
    const answer = await guarded(() => post("manage/explain", {token: token.value, resource: resource.value.trim()}));
    run.disabled = false;
    if (!answer) return;
    const report = answer.data;
    replace(result, el("h3", {text: report.allowed ? "Allowed" : "Refused", class: report.allowed ? "outcome-pass" : "outcome-fail"}),
      summary(report), el("ol", {class: "checks"}, (report.checks || []).map(check)));
    result.dataset.allowed = String(Boolean(report.allowed));
  });
  main.append(heading("Explain a token"),
    el("p", {class: "muted", text: "Every check the gateway makes on a token, with its reason, and the role it gives on a resource."}),
    form, result);
}
