// The form of one resource: its name and fields as stored, and only the buttons the caller's role
// allows (Save from editor, Delete and Collaborators from manager; accounts: admins only; teams: Save
// from manager, Delete by admins).

import {atLeast} from "./access.js";
import {collaboratorsButton} from "./collaborators.js";
import {el} from "./dom.js";
import {control, documentOf, fill, labelledControl} from "./fields.js";

function rights(spec, state, admin) {
  const stored = state.etag !== null;
  const edit = admin || (!spec.adminWrites && atLeast(state.role, spec.writeRole || "editor"));
  const remove = admin || (!spec.adminWrites && !spec.adminDeletes && atLeast(state.role, "manager"));
  return {stored, edit, delete: stored && remove,
          collaborators: stored && Boolean(spec.resource) && (admin || atLeast(state.role, "manager"))};
}

function fieldRows(spec, doc, inputs, may, admin) {
  return spec.fields.map(field => {
    const input = control(field, `${spec.prefix}-${field.key.replace(/_/g, "-")}`);
    fill(field, input, doc[field.key]);
    input.disabled = !may.edit || (field.admin && !admin);
    inputs.set(field.key, input);
    return labelledControl(field, input);
  });
}

// state: {doc, etag (null: a new one), role}; on: {save(name, document), remove(), close()}.
export function resourceForm(spec, state, admin, on) {
  const {doc} = state;
  const may = rights(spec, state, admin);
  const name = el("input", {type: "text", testid: `${spec.prefix}-name`, autocomplete: "off", spellcheck: "false",
                            readonly: may.stored, value: doc.name || "", required: true,
                            pattern: "[A-Za-z0-9][A-Za-z0-9\\-]{0,63}"});
  const inputs = new Map();
  const title = may.stored ? `${spec.singular} ${doc.name}` : `New ${spec.singular}`;
  const buttons = el("div", {class: "actions"},
    el("button", {type: "submit", testid: `${spec.prefix}-save`, text: may.stored ? "Save" : "Create", hidden: !may.edit}),
    el("button", {type: "button", class: "danger", testid: `${spec.prefix}-delete`, text: "Delete",
                  hidden: !may.delete, on: {click: on.remove}}),
    may.collaborators ? collaboratorsButton(`${spec.resource}:${doc.name}`) : null,
    el("button", {type: "button", text: "Close", on: {click: on.close}}));
  const form = el("form", {class: "resource-form", testid: `${spec.prefix}-form`, "aria-label": title},
    el("h3", {text: title}),
    may.stored && !may.edit ? el("p", {class: "muted", text: "Your role lets you read this, not change it."}) : null,
    labelledControl({label: "Name"}, name), fieldRows(spec, doc, inputs, may, admin), buttons);
  form.addEventListener("submit", event => {
    event.preventDefault();
    on.save(name.value.trim(), () => documentOf(spec.fields, inputs, doc));
  });
  const tools = may.stored && spec.tools ? spec.tools({name: doc.name, admin, role: state.role}) : null;
  return tools && tools.length ? [form, el("div", {class: "tools"}, tools)] : [form];
}
