// Calls to /console/v1 with the session cookie. The CSRF token lives in this module's memory
// only (never in localStorage, sessionStorage or the page), and goes with every state change.

let csrf = null;

export class ApiError extends Error {
  constructor(status, message, param) {
    super(message);
    this.status = status;
    this.param = param;
  }
}

export function setCsrf(token) {
  csrf = token;
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  let param = null;
  try {
    const body = await response.json();
    const error = body.error || {};
    if (error.message) message = error.message;
    param = error.param || null;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, message, param);
}

export async function call(method, path, body) {
  const headers = { accept: "application/json" };
  if (method !== "GET") {
    if (csrf) headers["x-palyra-csrf"] = csrf;
  }
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`/console/v1${path}`, init);
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body ?? {});
export const put = (path, body) => call("PUT", path, body);
export const patch = (path, body) => call("PATCH", path, body);
export const del = (path) => call("DELETE", path);

export function enc(part) {
  return encodeURIComponent(part);
}
