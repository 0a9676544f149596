// DOM helpers. Data only ever reaches the page as text (textContent, attribute values): never as HTML,
// so a name like <img src=x onerror=alert(1)> shows as those characters.

// el("button", {testid: "x", class: "a", on: {click: f}, data: {name: n}}, "text", childNode, ...)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "testid") node.dataset.testid = value;
    else if (key === "on") for (const [type, fn] of Object.entries(value)) node.addEventListener(type, fn);
    else if (key === "data") for (const [name, v] of Object.entries(value)) node.dataset[name] = v;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) throw new Error(`event handler attribute ${key}: use "on"`);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, ...children);
  return node;
}

export function append(node, ...children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, ...children);
}

// A labelled form control: returns {field, input}.
let counter = 0;
export function labelled(label, control) {
  if (!control.id) control.id = `f${++counter}`;
  const field = el("div", {class: "field"}, el("label", {for: control.id, text: label}), control);
  return {field, input: control};
}

// A screen's heading, focused on navigation so keyboard and screen-reader users land on it.
export function heading(text) {
  return el("h2", {class: "screen-title", tabindex: "-1", text});
}

export function formatMs(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}
