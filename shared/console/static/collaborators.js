// The Collaborators dialog of one resource: who holds which role on it (a server page at a time), grant
// one, revoke one (/manage/collaborators). Only its managers and gateway admins get the button.

import {del, put} from "./api.js";
import {el, replace} from "./dom.js";
import {pagedTable} from "./list.js";

const ROLES = ["viewer", "editor", "manager"];

// The button that opens the dialog for `resource` ("model:gpt-4o").
export function collaboratorsButton(resource) {
  return el("button", {type: "button", testid: "collaborators-open", text: "Collaborators",
                       on: {click: () => openCollaborators(resource)}});
}

function roleSelect(resource) {
  const roles = resource === "gateway:default" ? ["admin"] : ROLES;
  return el("select", {id: "collab-role", testid: "collaborator-role"}, roles.map(r => el("option", {value: r, text: r})));
}

export function openCollaborators(resource) {
  const problem = el("p", {class: "banner", role: "alert", testid: "collaborators-error", hidden: true});
  const fail = error => { replace(problem, error.message); problem.hidden = false; };
  const table = pagedTable({
    path: "manage/collaborators", params: {resource}, limit: 20, rowTestid: "collaborator-row",
    rowData: b => ({principal: b.principal}), empty: "Nobody has a role here yet.",
    columns: [{label: "Principal", value: b => b.principal}, {label: "Role", value: b => b.role}],
    actions: b => el("button", {type: "button", testid: "collaborator-remove", text: "Remove",
                                "aria-label": `Remove ${b.principal}`, on: {click: () => revoke(b)}}),
  });
  const principal = el("input", {id: "collab-principal", testid: "collaborator-principal", type: "text",
                                 autocomplete: "off", spellcheck: "false",
                                 placeholder: "identity:developers or user:dev/alice"});
  const role = roleSelect(resource);
  const add = el("button", {type: "submit", testid: "collaborator-add", text: "Grant"});
  const form = el("form", {class: "actions", "aria-label": "Grant a role"},
    el("label", {for: principal.id, text: "Principal"}), principal,
    el("label", {for: role.id, text: "Role"}), role, add);
  const close = el("button", {type: "button", testid: "collaborators-close", text: "Close"});
  const dialog = el("dialog", {class: "confirm collaborators", "aria-labelledby": "collab-title"},
    el("h2", {id: "collab-title", text: `Collaborators of ${resource}`}), problem, table.element, form,
    el("div", {class: "actions"}, close));

  async function attempt(work) {
    problem.hidden = true;
    try {
      await work();
      await table.reload();
    } catch (error) {
      fail(error);
    }
  }

  function revoke(binding) {
    return attempt(() => del("manage/collaborators", {body: {resource, principal: binding.principal}}));
  }

  form.addEventListener("submit", event => {
    event.preventDefault();
    const who = principal.value.trim();
    if (!who) { fail(new Error("Principal: required (identity:<name> or user:<provider>/<id>)")); return; }
    attempt(async () => {
      await put("manage/collaborators", {resource, principal: who, role: role.value});
      principal.value = "";
    });
  });
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  principal.focus();
  table.reload();
  return dialog;
}
