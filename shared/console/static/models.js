// The models screen.

import {el, heading} from "./dom.js";

export function render(main, ctx) {
  main.append(heading(ctx.screen.label), el("p", {class: "muted", text: "Coming next."}));
}
