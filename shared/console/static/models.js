// Models: the models the caller may use (GET /v1/models), each with Test (a small real chat call through
// the gateway: status, latency and the error in words) and Open in playground; then the configured
// models the caller may see in /manage, a server page at a time.

import {errorOf, get, send} from "./api.js";
import {guarded} from "./banner.js";
import {el, formatMs, heading, replace} from "./dom.js";
import {pagedTable} from "./list.js";
import {atLeast, whoami} from "./access.js";
import {collaboratorsButton} from "./collaborators.js";

const PROBE = {messages: [{role: "user", content: "Reply with the word OK."}], max_tokens: 16};

// One Test: what the caller would see, in words.
export async function testModel(name) {
  const started = performance.now();
  try {
    const response = await send("POST", "v1/chat/completions", {body: {model: name, ...PROBE}});
    const ms = performance.now() - started;
    if (!response.ok) return {ok: false, text: `${(await errorOf(response)).message} after ${formatMs(ms)}`};
    const body = await response.json();
    const reply = body?.choices?.[0]?.message?.content ?? "";
    return {ok: true, text: `${response.status} OK in ${formatMs(ms)}: “${String(reply).slice(0, 120)}”`};
  } catch (error) {
    return {ok: false, text: `the gateway could not be reached: ${error.message}`};
  }
}

function modelRow(model, ctx) {
  const result = el("output", {testid: "model-test-result", class: "test-result", "aria-live": "polite"});
  const test = el("button", {type: "button", testid: "model-test", text: "Test"});
  test.addEventListener("click", async () => {
    test.disabled = true;
    delete result.dataset.outcome;
    result.textContent = "Testing…";
    const outcome = await testModel(model.id);
    result.dataset.outcome = outcome.ok ? "pass" : "fail";
    result.className = `test-result outcome-${result.dataset.outcome}`;
    result.textContent = outcome.text;
    test.disabled = false;
  });
  const open = el("button", {type: "button", testid: "model-open-playground", text: "Open in playground",
    on: {click: () => ctx.navigate("playground", {model: model.id})}});
  return el("tr", {testid: "model-row", data: {name: model.id}},
    el("td", {"data-label": "Model"}, el("code", {text: model.id})),
    el("td", {"data-label": "Actions"}, el("div", {class: "row-actions"}, test, open)),
    el("td", {"data-label": "Test", class: "result-cell"}, result));
}

function targets(item) {
  return (item.targets || []).map(t => `${t.account}/${t.deployment}`).join(", ");
}

// The Collaborators button of a configured model, once the caller's role on it is known to allow it.
function collaboratorsSlot(item) {
  const slot = el("span");
  const resource = `model:${item.name}`;
  whoami(resource).then(me => {
    if (me.admin || atLeast(me.role, "manager")) slot.append(collaboratorsButton(resource));
  }).catch(() => {});
  return slot;
}

export function render(main, ctx) {
  const rows = el("tbody");
  const usable = el("table", {class: "list models"},
    el("thead", {}, el("tr", {}, ["Model", "Actions", "Test"].map(h => el("th", {scope: "col", text: h})))), rows);
  const configured = pagedTable({path: "manage/models", signal: ctx.signal, columns: [
    {label: "Name", value: item => el("code", {text: item.name})},
    {label: "Targets", value: targets},
  ], rowTestid: "configured-model-row", rowName: item => item.name, actions: collaboratorsSlot, empty: "No configured model is visible to you."});
  main.append(heading("Models"),
    el("p", {class: "muted", text: "The models your token may use. Test makes a small real call through the gateway."}),
    el("div", {class: "table-scroll"}, usable),
    el("h3", {text: "Configuration"}), configured.element);
  guarded(async () => {
    const answer = await get("v1/models", {signal: ctx.signal});
    const models = answer.data?.data || [];
    replace(rows, models.length ? models.map(m => modelRow(m, ctx))
      : el("tr", {}, el("td", {colspan: 3, text: "Your token may use no model."})));
  });
  configured.reload();
}
