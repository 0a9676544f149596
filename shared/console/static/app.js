// The console's shell: sign-in (a pasted token, or a provider's), the navigation, and hash routing
// (#/models, #/playground?model=x) to the screens of screens.js.

import {clearError, showError} from "./banner.js";
import {el, replace} from "./dom.js";
import {completeSignIn, showProviders} from "./provider-signin.js";
import {DEFAULT_SCREEN, SCREENS} from "./screens.js";
import * as session from "./session.js";

const $ = id => document.getElementById(id);
let leave = null;      // the current screen's cleanup
let visitAbort = null; // aborts the current screen's requests when the user leaves it
let ticker = null;     // the expiry countdown's timer
let visits = 0;        // counts show()s, so a screen that loads after the user moved on is dropped

function route() {
  const hash = location.hash.startsWith("#/") ? location.hash.slice(2) : "";
  const [id, query = ""] = hash.split("?", 2);
  const screen = SCREENS.find(s => s.id === id) || SCREENS.find(s => s.id === DEFAULT_SCREEN);
  return {screen, params: new URLSearchParams(query)};
}

export function navigate(id, params = {}) {
  const query = new URLSearchParams(params).toString();
  location.hash = `#/${id}${query ? `?${query}` : ""}`;
}

function buildNav() {
  const list = el("ul", {}, SCREENS.map(s => el("li", {}, el("a", {
    href: `#/${s.id}`, testid: `nav-${s.id}`, text: s.label, data: {screen: s.id}}))));
  replace($("nav"), list);
}

async function show(moved = false) {
  if (leave) { leave(); leave = null; }
  if (visitAbort) visitAbort.abort();
  visitAbort = new AbortController();
  const visit = ++visits;
  clearError();
  const {screen, params} = route();
  for (const link of $("nav").querySelectorAll("a")) {
    if (link.dataset.screen === screen.id) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const main = replace($("main"));
  if (!session.current()) {
    main.append(el("h2", {class: "screen-title", text: screen.label}),
      el("p", {text: "Paste a token above and sign in: every screen calls the gateway with it."}));
    return;
  }
  try {
    const module = await screen.load();
    if (visit !== visits) return;    // the user moved on while it loaded
    leave = module.render(main, {screen, params, navigate, signal: visitAbort.signal}) || null;
    if (moved) main.querySelector("h2")?.focus();    // keyboard and screen-reader users land on it
  } catch (error) {
    showError(error);
  }
}

function showWho() {
  if (ticker) { clearInterval(ticker); ticker = null; }
  const token = session.current();
  $("whoami").hidden = !token;
  if (!token) return;
  const claims = session.claimsOf(token);
  $("who").textContent = claims ? `Signed in as ${claims.sub ?? "(no sub claim)"} from ${claims.iss ?? "(no iss claim)"}` : "Signed in (the token is not a readable JWT)";
  $("claims").textContent = claims ? JSON.stringify(claims, null, 2) : "";
  const tick = () => {
    const left = session.secondsLeft(claims);
    $("expiry").textContent = session.describeLeft(left);
    $("expiry").classList.toggle("expired", left !== null && left <= 0);
  };
  tick();
  ticker = setInterval(tick, 1000);
}

function wireSignIn() {
  const input = $("token");
  $("signin").addEventListener("submit", event => {
    event.preventDefault();
    if (!input.value.trim()) { showError("Paste a token first."); return; }
    session.signIn(input.value, $("keep").checked);
    input.value = "";
  });
  $("forget").addEventListener("click", () => {
    session.forget();
    input.value = "";
    $("keep").checked = false;
  });
  session.onChange(() => { showWho(); show(); });
}

function start() {
  buildNav();
  wireSignIn();
  window.addEventListener("hashchange", () => show(true));
  document.querySelector(".skip").addEventListener("click", event => {
    event.preventDefault();     // "#main" is not a screen: focus the screen instead of routing
    $("main").focus();
  });
  if (session.restore()) $("keep").checked = true;
  else show();
  showWho();
  showProviders($("providers"), $("keep"), showError);
  completeSignIn($("keep")).catch(showError);     // back from a provider's sign-in page
}

start();
