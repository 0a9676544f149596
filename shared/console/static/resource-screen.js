// One screen per /manage resource kind: a server-paged list, the form of one resource (created with
// If-None-Match: *, saved with the ETag last read, so a concurrent edit is refused rather than lost),
// delete after a confirmation inside the page. Buttons the caller's role does not allow are hidden.

import {whoami} from "./access.js";
import {del, get, put} from "./api.js";
import {clearError, guarded, showError} from "./banner.js";
import {confirmAction} from "./confirm.js";
import {el, heading, replace} from "./dom.js";
import {pagedTable} from "./list.js";
import {resourceForm} from "./resource-form.js";

// spec: {path, singular, prefix (of testids), intro, resource (access prefix, e.g. "mcp-server"; none
// for kinds only admins see), adminWrites (only admins change it, whatever the role), writeRole (the role that may
// save, when not editor), adminDeletes (only admins delete it), fields (see
// fields.js), columns (see list.js), tools({name, admin, role}) -> nodes under a stored one's form}.
export function resourceScreen(main, ctx, spec) {
  const root = el("div");     // work finishing after the user has moved on lands in a detached node
  main.append(heading(ctx.screen.label), el("p", {class: "muted", text: spec.intro}), root);
  whoami().then(me => new ResourceScreen(root, ctx, spec, me).start()).catch(showError);
}

class ResourceScreen {
  constructor(root, ctx, spec, me) {
    Object.assign(this, {root, ctx, spec, me});
    this.notice = el("p", {class: "muted", role: "status", testid: "notice"});
    this.area = el("section", {class: "editor", hidden: true});
  }

  async start() {
    const {spec, me, ctx} = this;
    if (!spec.resource && !me.admin) {
      this.root.append(el("p", {testid: `${spec.prefix}-admins-only`,
                                text: `Only gateway admins manage ${spec.path.replace(/-/g, " ")}.`}));
      return;
    }
    this.table = pagedTable({
      path: `manage/${spec.path}`, limit: Number(ctx.params.get("limit")) || 50, rowTestid: `${spec.prefix}-row`,
      rowName: item => item.name,
      columns: [{label: "Name", value: item => el("button", {type: "button", class: "link", testid: `${spec.prefix}-open`,
                                                            text: item.name, on: {click: () => this.open(item.name)}})},
                ...spec.columns],
    });
    const create = el("button", {type: "button", class: "primary", testid: `${spec.prefix}-new`,
                                 text: `New ${spec.singular}`, hidden: !me.admin,
                                 on: {click: () => this.edit({doc: {}, etag: null, role: "admin"})}});
    this.root.append(el("div", {class: "actions"}, create), this.notice, this.area, this.table.element);
    // a click anywhere on a row (but on another control) opens it, as its name's button does
    this.table.element.addEventListener("click", event => {
      const row = event.target.closest("tr[data-name]");
      if (row && !event.target.closest("button, a, input, select, textarea")) this.open(row.dataset.name);
    });
    await this.table.reload();
    if (ctx.params.get("name")) await this.open(ctx.params.get("name"));
  }

  path(name) {
    return `manage/${this.spec.path}/${encodeURIComponent(name)}`;
  }

  open(name) {
    return guarded(async () => {
      const {data, etag} = await get(this.path(name));
      const resource = this.spec.resource && !this.me.admin ? `${this.spec.resource}:${name}` : null;
      const role = this.me.admin ? "admin" : resource ? (await whoami(resource)).role : null;
      this.edit({doc: data, etag, role});
    });
  }

  edit(state) {
    clearError();
    this.notice.textContent = "";
    replace(this.area, resourceForm(this.spec, state, this.me.admin, {
      save: (name, documentOf) => this.save(name, state, documentOf),
      remove: () => this.remove(state.doc.name, state.etag),
      close: () => this.close(),
    }));
    this.area.hidden = false;
    this.area.querySelector("input:not([readonly]):not([disabled]), textarea:not([disabled])")?.focus();
  }

  close() {
    this.area.hidden = true;
    replace(this.area);
  }

  save(name, state, documentOf) {
    return guarded(async () => {
      if (!name) throw new Error("Name: required (letters, digits and hyphens)");
      const body = documentOf();
      const headers = state.etag ? {"if-match": state.etag} : {"if-none-match": "*"};
      const answer = await put(this.path(name), body, {headers});
      this.edit({doc: answer.data, etag: answer.etag, role: state.role});
      this.notice.textContent = `Saved ${this.spec.singular} ${name}.`;
      await this.table.reload();
    });
  }

  async remove(name, etag) {
    if (!await confirmAction(`Delete ${this.spec.singular} ${name}? Its collaborator bindings go with it.`)) return;
    await guarded(async () => {
      await del(this.path(name), {headers: {"if-match": etag}});
      this.close();
      this.notice.textContent = `Deleted ${this.spec.singular} ${name}.`;
      await this.table.reload();
    });
  }
}
