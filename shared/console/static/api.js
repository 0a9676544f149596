// The gateway's HTTP API as the console uses it: relative URLs (so the console works behind a path
// prefix), the signed-in token as a bearer header, and the gateway's error body turned into words.

import {current} from "./session.js";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// The page is served at <base>/console/ (or <base>/console/index.html): "../" is <base>/.
export function apiUrl(path, params) {
  const query = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "")).toString() : "";
  return `../${path.replace(/^\/+/, "")}${query ? `?${query}` : ""}`;
}

export function authHeaders(extra = {}) {
  const token = current();
  return token ? {...extra, authorization: `Bearer ${token}`} : {...extra};
}

// The words for a failed answer: the gateway's error message and code, or the status alone.
export async function errorOf(response) {
  let code = "", message = "";
  try {
    const body = await response.json();
    code = String(body?.error?.code ?? "");
    message = String(body?.error?.message ?? "");
  } catch {
    // not the gateway's JSON error body (a proxy's page, say): the status says what is known
  }
  const words = message || `the gateway answered HTTP ${response.status}`;
  return new ApiError(response.status, code, code ? `${words} (${response.status} ${code})` : words);
}

// fetch with the token; answers the Response as is (streaming callers read it themselves).
export function send(method, path, {params, body, headers = {}, signal} = {}) {
  const init = {method, headers: authHeaders(headers), signal, cache: "no-store", credentials: "omit",
                redirect: "error"};
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch(apiUrl(path, params), init);
}

// A JSON call: {status, etag, data}; throws ApiError on a failed answer.
export async function request(method, path, options = {}) {
  const response = await send(method, path, options);
  if (!response.ok) throw await errorOf(response);
  const text = await response.text();
  return {status: response.status, etag: response.headers.get("etag"), data: text ? JSON.parse(text) : null};
}

export const get = (path, options) => request("GET", path, options);
export const post = (path, body, options = {}) => request("POST", path, {...options, body});
export const put = (path, body, options = {}) => request("PUT", path, {...options, body});
export const del = (path, options) => request("DELETE", path, options);
