// A table of one /manage list, a server page at a time: ?limit= and ?cursor=, with a next-page button
// while the answer has a next_cursor. The page never loads more rows than it shows.

import {get} from "./api.js";
import {guarded} from "./banner.js";
import {el, replace} from "./dom.js";

// columns: [{label, value: item => text or Node}]; rowTestid and rowName(item) mark each row;
// actions(item) answers the nodes of the row's last cell (buttons the caller's role allows); rowData(item)
// adds data- attributes.
export function pagedTable({path, params = {}, limit = 50, signal, columns, rowTestid, rowName, rowData, actions, empty = "Nothing here yet."}) {
  const body = el("tbody");
  const status = el("p", {class: "muted", "aria-live": "polite", testid: "page-status"});
  const first = el("button", {type: "button", text: "First page", hidden: true});
  const next = el("button", {type: "button", testid: "next-page", text: "Next page", hidden: true});
  const heads = columns.map(c => el("th", {scope: "col", text: c.label}));
  if (actions) heads.push(el("th", {scope: "col"}, el("span", {class: "sr-only", text: "Actions"})));
  const table = el("table", {class: "list"}, el("thead", {}, el("tr", {}, heads)), body);
  let cursor = null;
  let page = 1;

  function row(item) {
    const cells = columns.map(c => el("td", {"data-label": c.label}, c.value(item)));
    if (actions) cells.push(el("td", {class: "row-actions"}, actions(item)));
    return el("tr", {testid: rowTestid, data: {...(rowName ? {name: rowName(item)} : {}), ...(rowData ? rowData(item) : {})}}, cells);
  }

  async function load(from) {
    const answer = await guarded(() => get(path, {params: {...params, limit, cursor: from}, signal}));
    if (!answer) return;
    const {items, next_cursor: nextCursor} = answer.data;
    replace(body, items.map(row));
    cursor = nextCursor;
    next.hidden = !nextCursor;
    first.hidden = page === 1;
    status.textContent = items.length ? `Page ${page}` : (page === 1 ? empty : `Page ${page} is empty`);
  }

  next.addEventListener("click", () => { page += 1; load(cursor); });
  first.addEventListener("click", () => { page = 1; load(null); });
  const element = el("div", {class: "paged"}, el("div", {class: "table-scroll"}, table), status,
    el("div", {class: "pager"}, first, next));
  return {element, reload: () => { page = 1; return load(null); }};
}
