// The status screen: what this gateway process sees (/manage/status): its configuration, each identity
// provider's keys and each account's token, and the problems to fix.

import {get} from "./api.js";
import {guarded} from "./banner.js";
import {el, heading, replace} from "./dom.js";

function age(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  return seconds < 120 ? `${Math.round(seconds)} s ago` : `${Math.round(seconds / 60)} min ago`;
}

function expiry(epoch) {
  if (!epoch) return "no expiry";
  const left = Math.round(epoch - Date.now() / 1000);
  return left > 0 ? `token expires in ${Math.round(left / 60)} min` : "token expired";
}

function row(kind, name, ok, detail, error) {
  return el("tr", {testid: "status-row", data: {name: `${kind}:${name}`, outcome: ok ? "pass" : "fail"}},
    el("td", {"data-label": "Kind", text: kind}), el("td", {"data-label": "Name", text: name}),
    el("td", {"data-label": "State", class: ok ? "outcome-pass" : "outcome-fail", text: ok ? "OK" : "Failing"}),
    el("td", {"data-label": "Detail", text: detail}), el("td", {"data-label": "Last error", text: error || ""}));
}

function rows(report) {
  const providers = Object.entries(report.identity_providers || {}).map(([name, p]) =>
    row("identity provider", name, p.usable, `${(p.kids || []).length} keys, fetched ${age(p.age_seconds)}${p.stale ? " (stale)" : ""}`,
        p.last_error));
  const accounts = Object.entries(report.accounts || {}).map(([name, a]) =>
    row("account", name, !a.error, `${a.auth || ""}, ${expiry(a.expires_on)}`,
        a.error ? `${a.error}${a.field ? ` (fix: ${a.field})` : ""}` : ""));
  return [...providers, ...accounts];
}

function view(report) {
  const config = report.configuration || {};
  const heads = ["Kind", "Name", "State", "Detail", "Last error"].map(h => el("th", {scope: "col", text: h}));
  return [
    el("p", {testid: "status-summary", class: report.ok ? "outcome-pass" : "outcome-fail",
             text: `Gateway ${report.ok ? "OK" : "DEGRADED"}; configuration version ${config.version ?? "unknown"}` +
                   (config.error ? `: ${config.error}` : "")}),
    (report.problems || []).length ? el("ul", {}, report.problems.map(p => el("li", {text: p}))) : null,
    el("div", {class: "table-scroll"}, el("table", {class: "list", testid: "status-table"},
      el("thead", {}, el("tr", {}, heads)), el("tbody", {}, rows(report)))),
  ];
}

export function render(main, ctx) {
  const out = el("div", {"aria-live": "polite"});
  const refresh = el("button", {type: "button", testid: "status-refresh", text: "Refresh"});
  main.append(heading(ctx.screen.label), el("p", {class: "muted", text: "What this gateway process sees now."}),
              el("div", {class: "actions"}, refresh), out);
  const load = async () => {
    const answer = await guarded(() => get("manage/status"));
    if (answer) replace(out, view(answer.data));
  };
  refresh.addEventListener("click", load);
  load();
}
