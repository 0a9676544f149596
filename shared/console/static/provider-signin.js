// Sign-in with an identity provider: the authorization code flow with PKCE (RFC 7636). The page makes a
// verifier and a state, sends the browser to the provider, and on its return asks the gateway to redeem
// the code (the page may talk to the gateway only). The verifier, state and provider wait in
// sessionStorage under one key only while the browser is away, and are removed as soon as it is back;
// the token is then kept exactly as a pasted one (memory, and sessionStorage only if the user opted in).

import {apiUrl, errorOf} from "./api.js";
import {el, replace} from "./dom.js";
import * as session from "./session.js";

const PENDING = "gateway-console-signin";
const UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";   // 66 characters
const PROVIDER_ERRORS = {
  access_denied: "access was denied",
  login_required: "the provider needs you to sign in there first",
  consent_required: "the provider needs your consent first",
  interaction_required: "the provider needs you to act there first",
  invalid_scope: "the provider refused the scopes asked for (the provider's console_scopes)",
  unauthorized_client: "the client (console_client_id) may not sign in this way",
  invalid_request: "the provider refused the request (is this page's URL a registered redirect URI?)",
  unsupported_response_type: "the provider does not offer the authorization code flow to this client",
  server_error: "the provider failed",
  temporarily_unavailable: "the provider is unavailable for now",
};
const OPTIONS = {cache: "no-store", credentials: "omit", redirect: "error"};

// `length` characters from the unreserved set, each equally likely (bytes of 198 and up are redrawn).
function randomText(length) {
  let out = "";
  while (out.length < length) {
    for (const byte of crypto.getRandomValues(new Uint8Array(length * 2))) {
      if (byte < 198 && out.length < length) out += UNRESERVED[byte % 66];
    }
  }
  return out;
}

function base64url(buffer) {
  let text = "";
  for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// The console's own page, where the provider sends the browser back: this URL without query, hash or
// index.html, so it works behind any path prefix.
export function consoleUrl() {
  return location.origin + location.pathname.replace(/index\.html$/, "");
}

async function start(provider, keep) {
  if (!crypto.subtle) throw new Error("Signing in with a provider needs the console on https.");
  const verifier = randomText(64), state = randomText(32), redirectUri = consoleUrl();
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PENDING, JSON.stringify({provider: provider.name, verifier, state, redirectUri, keep}));
  const url = new URL(provider.authorization_endpoint);
  const params = {response_type: "code", client_id: provider.client_id, redirect_uri: redirectUri,
                  scope: provider.scopes.join(" "), state, code_challenge: challenge, code_challenge_method: "S256"};
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  location.assign(url.href);
}

// One "Sign in with <name>" button per provider the gateway offers; none (and nothing shown) if it
// offers none or cannot say: pasting a token works all the same.
export async function showProviders(container, keepBox, onError) {
  let providers = [];
  try {
    const response = await fetch(apiUrl("console/auth/providers"), OPTIONS);
    if (response.ok) providers = (await response.json()).providers || [];
  } catch {
    providers = [];
  }
  replace(container, providers.map(p => el("button", {
    type: "button", testid: "signin-provider", data: {name: p.name}, text: `Sign in with ${p.name}`,
    on: {click: () => start(p, keepBox.checked).catch(onError)}})));
  container.hidden = providers.length === 0;
}

function pendingSignIn() {
  const kept = sessionStorage.getItem(PENDING);
  sessionStorage.removeItem(PENDING);
  try {
    return kept ? JSON.parse(kept) : null;
  } catch {
    return null;
  }
}

function providerError(code) {
  if (Object.hasOwn(PROVIDER_ERRORS, code)) return `${PROVIDER_ERRORS[code]} (${code})`;
  return /^[a-z_]{1,40}$/.test(code) ? `the provider refused (${code})` : "the provider refused";
}

async function redeem(pending, code) {
  const response = await fetch(apiUrl("console/auth/token"), {...OPTIONS, method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify({provider: pending.provider, code, code_verifier: pending.verifier,
                          redirect_uri: pending.redirectUri})});
  if (!response.ok) throw new Error(`Sign-in with ${pending.provider} failed: ${(await errorOf(response)).message}`);
  return (await response.json()).token;
}

// On the provider's return (?code=&state= or ?error=): the address bar is cleaned at once, the state
// checked against the one kept, and the code redeemed by the gateway. Throws an Error in words.
export async function completeSignIn(keepBox) {
  const params = new URLSearchParams(location.search);
  if (!["code", "state", "error"].some(name => params.has(name))) return;
  history.replaceState(null, "", location.pathname + location.hash);
  const pending = pendingSignIn();
  if (params.has("error")) throw new Error(`Sign-in failed: ${providerError(params.get("error"))}.`);
  if (!pending || !params.get("state") || params.get("state") !== pending.state || !params.get("code")) {
    throw new Error("Sign-in refused: the answer does not belong to a sign-in started on this page " +
                    "(its state does not match). Sign in again.");
  }
  const token = await redeem(pending, params.get("code"));
  keepBox.checked = Boolean(pending.keep);
  session.signIn(token, Boolean(pending.keep));
}
