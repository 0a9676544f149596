// The signed-in token: held in this module's memory only, or also in sessionStorage when the user ticks
// "Keep for this tab" (never a cookie, never localStorage). Forget clears both.

const KEY = "gateway-console-token";
let token = null;
const listeners = new Set();

export function current() {
  return token;
}

export function onChange(fn) {
  listeners.add(fn);
}

function changed() {
  for (const fn of listeners) fn(token);
}

export function signIn(value, keep) {
  token = value.trim().replace(/^bearer\s+/i, "") || null;
  if (keep && token) sessionStorage.setItem(KEY, token);
  else sessionStorage.removeItem(KEY);
  changed();
}

export function forget() {
  token = null;
  sessionStorage.removeItem(KEY);
  changed();
}

// The token kept for this tab, if the user opted in earlier.
export function restore() {
  const kept = sessionStorage.getItem(KEY);
  if (kept) {
    token = kept;
    changed();
  }
  return Boolean(kept);
}

export function isKept() {
  return sessionStorage.getItem(KEY) !== null;
}

// The token's claims, decoded for display only (the gateway validates the token; the page never does).
export function claimsOf(jwt) {
  const parts = (jwt || "").split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, "=")), c => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" && !Array.isArray(claims) ? claims : null;
  } catch {
    return null;
  }
}

// Seconds until the token's exp claim (negative once expired), or null without one.
export function secondsLeft(claims, now = Date.now()) {
  return claims && typeof claims.exp === "number" ? Math.floor(claims.exp - now / 1000) : null;
}

export function describeLeft(seconds) {
  if (seconds === null) return "no expiry claim";
  if (seconds <= 0) return "expired";
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  return `expires in ${h ? `${h}h ` : ""}${h || m ? `${m}m ` : ""}${s}s`;
}
