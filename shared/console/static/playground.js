// Playground: a chat call through the gateway, streamed as it arrives (fetch and a stream reader),
// stopped with an AbortController; time to first token, latency, usage and cost (when the caller may
// read the model's price); and a Code tab with the same request for curl, Python and JavaScript.

import {errorOf, get, send} from "./api.js";
import {clearError, guarded, showError} from "./banner.js";
import {el, formatMs, heading, labelled, replace} from "./dom.js";
import {snippets} from "./snippets.js";
import {readEvents} from "./sse.js";

function requestBody(model, input) {
  return {model, messages: [{role: "user", content: input}], stream: true, stream_options: {include_usage: true}};
}

// Cost in USD of `usage`, from the model's price (USD per million tokens), or null when not visible.
async function costOf(model, usage, signal) {
  try {
    const price = (await get(`manage/prices/${encodeURIComponent(model)}`, {signal})).data;
    return (usage.prompt_tokens * price.input + usage.completion_tokens * price.output) / 1e6;
  } catch {
    return null;
  }
}

function describe({ttft, total, usage, cost, stopped}) {
  const parts = [];
  if (stopped) parts.push("stopped");
  if (ttft !== null) parts.push(`first token ${formatMs(ttft)}`);
  parts.push(`${stopped ? "ran" : "latency"} ${formatMs(total)}`);
  if (usage) parts.push(`${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion = ${usage.total_tokens} tokens`);
  if (cost !== null && cost !== undefined) parts.push(`cost $${cost.toFixed(6)}`);
  else if (usage) parts.push("cost: no price visible to you");
  return parts.join(" · ");
}

function codeView(body) {
  return snippets(body).map(([language, code]) => el("section", {class: "snippet"},
    el("h4", {text: language}), el("pre", {}, el("code", {text: code}))));
}

export function render(main, ctx) {
  const model = el("select", {testid: "playground-model"});
  const input = el("textarea", {testid: "playground-input", rows: 4, placeholder: "Say something to the model"});
  const sendButton = el("button", {type: "submit", testid: "playground-send", text: "Send"});
  const stop = el("button", {type: "button", testid: "playground-stop", text: "Stop", disabled: true});
  const output = el("pre", {testid: "playground-output", class: "playground-output", tabindex: "0",
    "aria-label": "Answer", "aria-live": "off"});
  const usage = el("p", {testid: "playground-usage", class: "playground-usage muted", "aria-live": "polite"});
  const code = el("div", {testid: "playground-code", class: "playground-code", hidden: true});
  const answerTab = el("button", {type: "button", role: "tab", "aria-selected": "true", text: "Answer", testid: "playground-tab-answer"});
  const codeTab = el("button", {type: "button", role: "tab", "aria-selected": "false", text: "Code", testid: "playground-tab-code"});
  const answerPanel = el("div", {role: "tabpanel", "aria-label": "Answer"}, output, usage);
  let controller = null;

  function select(tab) {
    const showCode = tab === codeTab;
    answerTab.setAttribute("aria-selected", String(!showCode));
    codeTab.setAttribute("aria-selected", String(showCode));
    answerPanel.hidden = showCode;
    code.hidden = !showCode;
    if (showCode) replace(code, codeView(requestBody(model.value || "MODEL", input.value)));
  }
  answerTab.addEventListener("click", () => select(answerTab));
  codeTab.addEventListener("click", () => select(codeTab));

  async function run() {
    clearError();
    select(answerTab);
    controller = new AbortController();
    sendButton.disabled = true;
    stop.disabled = false;
    output.textContent = "";
    usage.textContent = "Waiting for the first token…";
    const started = performance.now();
    const stats = {ttft: null, total: 0, usage: null, cost: null, stopped: false};
    const text = document.createTextNode("");
    output.append(text);
    try {
      const response = await send("POST", "v1/chat/completions", {body: requestBody(model.value, input.value), signal: controller.signal});
      if (!response.ok) throw await errorOf(response);
      await readEvents(response, chunk => {
        const piece = chunk?.choices?.[0]?.delta?.content;
        if (piece) {
          if (stats.ttft === null) stats.ttft = performance.now() - started;
          text.appendData(piece);
          output.scrollTop = output.scrollHeight;
        }
        if (chunk?.usage) stats.usage = chunk.usage;
      });
    } catch (error) {
      if (error?.name === "AbortError") stats.stopped = true;
      else showError(error);
    } finally {
      stats.total = performance.now() - started;
      sendButton.disabled = false;
      stop.disabled = true;
      controller = null;
    }
    if (stats.usage) stats.cost = await costOf(model.value, stats.usage, ctx.signal);
    usage.textContent = describe(stats);
    output.dataset.state = stats.stopped ? "stopped" : "done";
  }

  const form = el("form", {class: "playground"},
    labelled("Model", model).field, labelled("Message", input).field,
    el("div", {class: "actions"}, sendButton, stop));
  form.addEventListener("submit", event => { event.preventDefault(); if (!controller) run(); });
  stop.addEventListener("click", () => controller?.abort());
  main.append(heading("Playground"), form,
    el("div", {role: "tablist", class: "tabs", "aria-label": "Views"}, answerTab, codeTab), answerPanel, code);

  guarded(async () => {
    const models = (await get("v1/models", {signal: ctx.signal})).data?.data || [];
    replace(model, models.map(m => el("option", {value: m.id, text: m.id})));
    const wanted = ctx.params.get("model");
    if (wanted && models.some(m => m.id === wanted)) model.value = wanted;
  });
  return () => controller?.abort();
}
