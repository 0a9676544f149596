// One screen per /manage resource kind: a server-paged list, a form to create or edit one (PUT with
// If-None-Match: * or the ETag last read, so a concurrent edit is refused rather than lost), delete after
// a confirmation, and the Collaborators dialog. Buttons the caller's role does not allow are hidden.

import {atLeast, whoami} from "./access.js";
import {del, get, put} from "./api.js";
import {clearError, guarded, showError} from "./banner.js";
import {collaboratorsButton} from "./collaborators.js";
import {confirmAction} from "./confirm.js";
import {el, heading, replace} from "./dom.js";
import {control, documentOf, fill, labelledControl} from "./fields.js";
import {pagedTable} from "./list.js";

// spec: {path, singular, prefix (of testids), intro, resource (access prefix, e.g. "mcp-server"; none
// for kinds only admins see), adminWrites (only admins change it even with a role), fields, columns,
// tools(ctx) -> nodes shown under a stored item's form}.
// Builds into a node of its own, so work finishing after the user has moved on lands nowhere.
export function resourceScreen(main, ctx, spec) {
  const root = el("div");
  main.append(heading(ctx.screen.label), el("p", {class: "muted", text: spec.intro}), root);
  build(root, ctx, spec).catch(showError);
}

async function build(main, ctx, spec) {
  const me = await whoami();
  if (!spec.resource && !me.admin) {
    main.append(el("p", {testid: `${spec.prefix}-admins-only`, text: `Only gateway admins manage ${spec.path.replace(/-/g, " ")}.`}));
    return;
  }
  const notice = el("p", {class: "muted", role: "status", testid: "notice"});
  const area = el("section", {class: "editor", hidden: true});
  const limit = Number(ctx.params.get("limit")) || 50;
  const table = pagedTable({
    path: `manage/${spec.path}`, limit, rowTestid: `${spec.prefix}-row`, rowName: item => item.name,
    columns: [{label: "Name", value: item => el("button", {type: "button", class: "link", testid: `${spec.prefix}-open`,
                                                          text: item.name, on: {click: () => open(item.name)}})},
              ...spec.columns],
  });
  const create = el("button", {type: "button", class: "primary", testid: `${spec.prefix}-new`,
                               text: `New ${spec.singular}`, hidden: !me.admin,
                               on: {click: () => edit({doc: {}, etag: null, role: "admin"})}});
  main.append(el("div", {class: "actions"}, create), notice, area, table.element);
  // a click anywhere on a row (but on another control) opens it, as its name's button does
  table.element.addEventListener("click", event => {
    const row = event.target.closest("tr[data-name]");
    if (row && !event.target.closest("button, a, input, select, textarea")) open(row.dataset.name);
  });
  const itemPath = name => `manage/${spec.path}/${encodeURIComponent(name)}`;

  async function open(name) {
    await guarded(async () => {
      const {data, etag} = await get(itemPath(name));
      const role = me.admin ? "admin" : spec.resource ? (await whoami(`${spec.resource}:${name}`)).role : null;
      edit({doc: data, etag, role});
    });
  }

  function edit(state) {
    clearError();
    notice.textContent = "";
    replace(area, form(state));
    area.hidden = false;
    area.querySelector("input:not([readonly]):not([disabled]), textarea:not([disabled])")?.focus();
  }

  function form({doc, etag, role}) {
    const stored = etag !== null;
    const canEdit = me.admin || (!spec.adminWrites && atLeast(role, "editor"));
    const canDelete = stored && (me.admin || (!spec.adminWrites && atLeast(role, "manager")));
    const name = el("input", {type: "text", testid: `${spec.prefix}-name`, autocomplete: "off",
                              spellcheck: "false", readonly: stored, value: doc.name || "",
                              pattern: "[A-Za-z0-9][A-Za-z0-9\\-]{0,63}", required: true});
    const inputs = new Map();
    const rows = spec.fields.map(field => {
      const input = control(field, `${spec.prefix}-${field.key.replace(/_/g, "-")}`);
      fill(field, input, doc[field.key]);
      input.disabled = !canEdit || (field.admin && !me.admin);
      inputs.set(field.key, input);
      return labelledControl(field, input);
    });
    const save = el("button", {type: "submit", testid: `${spec.prefix}-save`, text: stored ? "Save" : "Create", hidden: !canEdit});
    const close = el("button", {type: "button", text: "Close", on: {click: () => { area.hidden = true; replace(area); }}});
    const remove = el("button", {type: "button", class: "danger", testid: `${spec.prefix}-delete`, text: "Delete",
                                 hidden: !canDelete, on: {click: () => removeItem(doc.name, etag)}});
    const collaborators = stored && spec.resource && (me.admin || atLeast(role, "manager"))
      ? collaboratorsButton(`${spec.resource}:${doc.name}`) : null;
    const title = stored ? `${spec.singular} ${doc.name}` : `New ${spec.singular}`;
    const node = el("form", {class: "resource-form", testid: `${spec.prefix}-form`, "aria-label": title},
      el("h3", {text: title}),
      stored && !canEdit ? el("p", {class: "muted", text: "Your role lets you read this, not change it."}) : null,
      labelledControl({label: "Name"}, name), rows,
      el("div", {class: "actions"}, save, remove, collaborators, close));
    node.addEventListener("submit", event => {
      event.preventDefault();
      saveItem(name.value.trim(), etag, role, () => documentOf(spec.fields, inputs, doc));
    });
    const tools = stored && spec.tools ? spec.tools({name: doc.name, admin: me.admin, role}) : null;
    return tools ? [node, el("div", {class: "tools"}, tools)] : [node];
  }

  async function saveItem(name, etag, role, documentFn) {
    await guarded(async () => {
      if (!name) throw new Error("Name: required (letters, digits and hyphens)");
      const body = documentFn();
      const headers = etag ? {"if-match": etag} : {"if-none-match": "*"};
      const answer = await put(itemPath(name), body, {headers});
      edit({doc: answer.data, etag: answer.etag, role});
      notice.textContent = `Saved ${spec.singular} ${name}.`;
      await table.reload();
    });
  }

  async function removeItem(name, etag) {
    if (!await confirmAction(`Delete ${spec.singular} ${name}? Its collaborator bindings go with it.`)) return;
    await guarded(async () => {
      await del(itemPath(name), {headers: {"if-match": etag}});
      area.hidden = true;
      replace(area);
      notice.textContent = `Deleted ${spec.singular} ${name}.`;
      await table.reload();
    });
  }

  await table.reload();
  if (ctx.params.get("name")) await open(ctx.params.get("name"));
}
