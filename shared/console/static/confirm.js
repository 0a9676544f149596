// A confirmation inside the page (a modal <dialog>, never window.confirm): Escape or Cancel says no.

import {el} from "./dom.js";

export function confirmAction(message, okLabel = "Delete") {
  return new Promise(resolve => {
    const ok = el("button", {type: "button", class: "danger", testid: "confirm-ok", text: okLabel});
    const cancel = el("button", {type: "button", testid: "confirm-cancel", text: "Cancel"});
    const dialog = el("dialog", {class: "confirm", "aria-label": "Confirm"},
      el("p", {text: message}), el("div", {class: "actions"}, cancel, ok));
    let answer = false;
    ok.addEventListener("click", () => { answer = true; dialog.close(); });
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => { dialog.remove(); resolve(answer); });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
