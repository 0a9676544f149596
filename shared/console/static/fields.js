// A resource's form fields and the document they edit. A field left empty is left out of the document;
// fields the form does not show are kept as stored, so saving never drops what the form cannot edit.

import {el} from "./dom.js";

// field: {key, label, type: "text" | "number" | "list" | "json" | "bool" | "select", options, hint,
//         admin (only gateway admins set it)}; testid: the control's data-testid.
export function control(field, testid) {
  const type = field.type || "text";
  if (type === "bool") return el("input", {type: "checkbox", testid});
  if (type === "select") {
    return el("select", {testid}, field.options.map(o => el("option", {value: o, text: o || "(default)"})));
  }
  if (type === "json") return el("textarea", {testid, rows: "4", spellcheck: "false"});
  return el("input", {type: "text", testid, autocomplete: "off", spellcheck: "false",
                      inputmode: type === "number" ? "decimal" : undefined, placeholder: field.placeholder});
}

// The control with its label and hint.
let counter = 0;
export function labelledControl(field, input) {
  input.id = `fld${++counter}`;
  const hint = field.hint ? el("small", {class: "muted", id: `${input.id}-hint`, text: field.hint}) : null;
  if (hint) input.setAttribute("aria-describedby", hint.id);
  if (field.type === "bool") {
    return el("div", {class: "field"}, el("label", {class: "check", for: input.id}, input, ` ${field.label}`), hint);
  }
  return el("div", {class: "field"}, el("label", {for: input.id, text: field.label}), input, hint);
}

export function fill(field, input, value) {
  const type = field.type || "text";
  if (type === "bool") input.checked = Boolean(value);
  else if (type === "list") input.value = Array.isArray(value) ? value.join(", ") : "";
  else if (type === "json") input.value = value === undefined || value === null ? "" : JSON.stringify(value, null, 2);
  else input.value = value === undefined || value === null ? "" : String(value);
}

// The field's value, or undefined when left empty; throws an Error naming the field when unreadable.
export function read(field, input) {
  const type = field.type || "text";
  if (type === "bool") return input.checked || undefined;
  const text = input.value.trim();
  if (!text) return undefined;
  if (type === "list") {
    const items = text.split(",").map(s => s.trim()).filter(Boolean);
    return items.length ? items : undefined;
  }
  if (type === "number") {
    const number = Number(text);
    if (!Number.isFinite(number)) throw new Error(`${field.label}: not a number`);
    return number;
  }
  if (type === "json") {
    try {
      return JSON.parse(text);
    } catch {
      throw new Error(`${field.label}: not valid JSON`);
    }
  }
  return text;
}

// `base` (the stored document) with each shown field set from its control, or removed when empty.
export function documentOf(fields, inputs, base) {
  const doc = {...base};
  for (const field of fields) {
    const value = read(field, inputs.get(field.key));
    if (value === undefined) delete doc[field.key];
    else doc[field.key] = value;
  }
  return doc;
}
