// A screen not built yet: says so.

import {el, heading} from "./dom.js";

export function render(main, ctx) {
  main.append(heading(ctx.screen.label), el("p", {class: "muted", text: "This screen is not available yet."}));
}
