// The console shell: session check, sign-in and sign-out, and the hash router over the pages.
import { ApiError, del, get, setCsrf } from "./api.js";
import { clear } from "./dom.js";
import * as agents from "./pages/agents.js";
import * as cron from "./pages/cron.js";
import * as profiles from "./pages/profiles.js";
import * as providers from "./pages/providers.js";
import * as runs from "./pages/runs.js";
import * as tokens from "./pages/tokens.js";

const PAGES = { profiles, providers, tokens, agents, cron, runs };
const $ = (id) => document.getElementById(id);
let cleanup = null;

function showSignedIn(session) {
  setCsrf(session.csrf_token);
  $("sign-in").hidden = true;
  $("nav").hidden = false;
  $("who").hidden = false;
  const who = session.principal;
  $("who-name").textContent = `Signed in (${who.name || who.token_id || "admin token"})`;
}

function showSignedOut(message) {
  setCsrf(null);
  if (cleanup) cleanup();
  cleanup = null;
  clear($("page"));
  $("nav").hidden = true;
  $("who").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-status").textContent = message || "";
  $("sign-in-status").className = message ? "status error" : "status";
  $("admin-token").focus();
}

async function route() {
  if ($("nav").hidden) return;
  const [name, ...rest] = (location.hash.slice(1) || "profiles").split("/");
  const page = PAGES[name] || profiles;
  if (cleanup) cleanup();
  cleanup = null;
  const root = clear($("page"));
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.getAttribute("href") === `#${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    cleanup = (await page.render(root, rest.map(decodeURIComponent))) || null;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      showSignedOut("Your session has ended; sign in again.");
      return;
    }
    throw err;
  }
  const heading = root.querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    document.title = `${heading.textContent} · Palyra console`;
  }
}

async function signIn(event) {
  event.preventDefault();
  const field = $("admin-token");
  const status = $("sign-in-status");
  status.className = "status";
  status.textContent = "Checking…";
  try {
    const response = await fetch("/console/v1/sign-in", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ token: field.value }),
    });
    field.value = "";
    const body = await response.json();
    if (!response.ok) {
      status.className = "status error";
      status.textContent = body.error?.message || `sign-in failed (${response.status})`;
      field.focus();
      return;
    }
    status.textContent = "";
    showSignedIn(body);
    await route();
    $("page").querySelector("h1")?.focus();
  } catch (err) {
    field.value = "";
    status.className = "status error";
    status.textContent = `the daemon could not be reached: ${err.message}`;
  }
}

async function signOut() {
  try {
    await del("/session");
  } finally {
    showSignedOut("Signed out.");
  }
}

async function start() {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", () => {
    route().then(() => $("page").querySelector("h1")?.focus());
  });
  try {
    showSignedIn(await get("/session"));
    await route();
  } catch {
    showSignedOut();
  }
}

start();
