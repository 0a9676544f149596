// The audit log screen: the change trail (/manage/audit), oldest first, a server page at a time, filtered
// by time, resource or principal.

import {el, heading, replace} from "./dom.js";
import {pagedTable} from "./list.js";

function change(entry) {
  const text = JSON.stringify({before: entry.before, after: entry.after}, null, 2);
  return el("details", {}, el("summary", {text: "Before and after"}), el("pre", {text}));
}

const COLUMNS = [
  {label: "When", value: e => e.at}, {label: "Actor", value: e => e.actor},
  {label: "Action", value: e => e.action}, {label: "Kind", value: e => e.kind},
  {label: "Key", value: e => e.key.replace("\n", " → ")}, {label: "Change", value: change},
];

function filter(id, label, placeholder, value) {
  const input = el("input", {id, testid: id, type: "text", placeholder, value: value || "", spellcheck: "false"});
  return {input, field: el("div", {class: "field"}, el("label", {for: id, text: label}), input)};
}

export function render(main, ctx) {
  const since = filter("audit-since", "Since", "7d, 12h or 2026-01-31", ctx.params.get("since") || "30d");
  const resource = filter("audit-resource", "Resource", "model:gpt-4o", ctx.params.get("resource"));
  const principal = filter("audit-principal", "Principal", "user:dev/alice", ctx.params.get("principal"));
  const apply = el("button", {type: "submit", testid: "audit-apply", text: "Show"});
  const form = el("form", {class: "actions", "aria-label": "Filter the audit log"},
                  since.field, resource.field, principal.field, apply);
  const out = el("div");
  main.append(heading(ctx.screen.label), form, out);
  const limit = Number(ctx.params.get("limit")) || 50;

  function show() {
    const params = {since: since.input.value.trim(), resource: resource.input.value.trim(),
                    principal: principal.input.value.trim()};
    const table = pagedTable({path: "manage/audit", params, limit, columns: COLUMNS, rowTestid: "audit-row",
                              empty: "No change in this period."});
    replace(out, table.element);
    table.reload();
  }

  form.addEventListener("submit", event => { event.preventDefault(); show(); });
  show();
}
