// The usage screen: requests, tokens and cost per model, user, identity or day (/manage/usage), as a
// table and a bar chart. Admins see everyone's usage; anyone else sees their own.

import {get} from "./api.js";
import {guarded} from "./banner.js";
import {el, heading, replace} from "./dom.js";
import {barChart} from "./svg.js";

const GROUPS = [["model", "Model"], ["user", "User"], ["identity", "Identity"], ["day", "Day"]];
const SINCE = [["1d", "Last day"], ["7d", "Last 7 days"], ["30d", "Last 30 days"], ["365d", "Last year"]];
const METRICS = [["requests", "Requests"], ["total_tokens", "Tokens"], ["cost_usd", "Cost (USD)"]];

function select(id, label, options, value) {
  const control = el("select", {id, testid: id}, options.map(([v, text]) => el("option", {value: v, text})));
  control.value = value;
  return {control, field: el("div", {class: "field"}, el("label", {for: id, text: label}), control)};
}

const usd = value => `$${value.toFixed(value < 1 ? 4 : 2)}`;
const format = metric => value => (metric === "cost_usd" ? usd(value) : value.toLocaleString("en"));

function table(rows, key, label) {
  const head = ["Requests", "Prompt tokens", "Completion tokens", "Total tokens", "Cost (USD)"];
  return el("div", {class: "table-scroll"}, el("table", {class: "list", testid: "usage-table"},
    el("thead", {}, el("tr", {}, [label, ...head].map(h => el("th", {scope: "col", text: h})))),
    el("tbody", {}, rows.map(r => el("tr", {testid: "usage-row", data: {key: r[key]}},
      el("td", {"data-label": label, text: r[key] || "(none)"}),
      [r.requests, r.prompt_tokens, r.completion_tokens, r.total_tokens].map((n, i) =>
        el("td", {"data-label": head[i], text: n.toLocaleString("en")})),
      el("td", {"data-label": "Cost (USD)", text: `${r.unpriced_requests ? "≥ " : ""}${usd(r.cost_usd)}`}))))));
}

export function render(main, ctx) {
  const group = select("usage-group", "Group by", GROUPS, ctx.params.get("group_by") || "model");
  const since = select("usage-since", "Period", SINCE, ctx.params.get("since") || "30d");
  const metric = select("usage-metric", "Chart", METRICS, "requests");
  const refresh = el("button", {type: "button", testid: "usage-refresh", text: "Refresh"});
  const scope = el("p", {class: "muted", testid: "usage-scope"});
  const out = el("div", {testid: "usage-result", "aria-live": "polite"});
  main.append(heading(ctx.screen.label), el("div", {class: "actions"}, group.field, since.field, metric.field, refresh), scope, out);
  let report = null;

  function draw() {
    if (!report) return;
    const key = report.group_by[0];
    const label = GROUPS.find(([v]) => v === group.control.value)[1];
    const which = metric.control.value;
    scope.textContent = report.all_users ? "Everyone's usage." : "Your own usage (admins see everyone's).";
    if (!report.data.length) { replace(out, el("p", {text: "No usage in this period."})); return; }
    const title = `${METRICS.find(([v]) => v === which)[1]} by ${label.toLowerCase()}`;
    replace(out, barChart(title, report.data.map(r => ({label: r[key] || "(none)", value: r[which]})), format(which)),
            table(report.data, key, label));
  }

  async function load() {
    const answer = await guarded(() => get("manage/usage", {params: {group_by: group.control.value,
                                                                     since: since.control.value}}));
    if (answer) { report = answer.data; draw(); }
  }

  group.control.addEventListener("change", load);
  since.control.addEventListener("change", load);
  metric.control.addEventListener("change", draw);
  refresh.addEventListener("click", load);
  load();
}
