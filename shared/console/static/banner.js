// The one error banner: what went wrong, in words, until the next action clears it.

import {replace} from "./dom.js";

function banner() {
  return document.getElementById("banner");
}

export function showError(error) {
  const node = banner();
  replace(node, error instanceof Error ? error.message : String(error));
  node.hidden = false;
}

export function clearError() {
  const node = banner();
  node.hidden = true;
  node.replaceChildren();
}

// Runs `work`, showing its failure in the banner; answers its result, or undefined when it failed.
export async function guarded(work) {
  try {
    return await work();
  } catch (error) {
    if (error?.name !== "AbortError") showError(error);
    return undefined;
  }
}
