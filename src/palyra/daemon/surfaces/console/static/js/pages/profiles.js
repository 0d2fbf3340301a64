// Auth profiles: list, connect an API key, sign in with OpenAI (popup), refresh, reorder,
// delete, and the doctor's findings.
import { del, enc, get, post, put } from "../api.js";
import { button, field, formData, h, input, select, statusLine, table, when } from "../dom.js";

const OAUTH_EVENT = "palyra-openai-oauth-complete";
const POLL_MS = 1500;

function expiry(profile) {
  const credential = profile.credential || {};
  if (credential.kind !== "oauth") return "does not expire";
  return credential.expires_at ? when(credential.expires_at) : "unknown";
}

function health(profile) {
  const text = profile.cooling_down_until
    ? `${profile.health} (cooling down until ${new Date(profile.cooling_down_until).toLocaleString()})`
    : profile.health;
  return h("span", { class: `badge ${profile.health}` }, text);
}

function groupKey(profile) {
  return `${profile.provider} ${profile.scope}`;
}

async function loadAll() {
  const all = [];
  let cursor = null;
  do {
    const page = await get(`/auth/profiles?limit=500${cursor ? `&cursor=${enc(cursor)}` : ""}`);
    all.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor);
  return all;
}

export async function render(root) {
  const status = statusLine();
  const list = h("div", {});
  const doctor = h("div", {});
  root.append(
    h("h1", {}, "Auth profiles"),
    h(
      "p",
      {},
      "The credentials Palyra uses for each provider. Profiles of one provider are tried in order.",
    ),
    status.el,
    list,
    connectForm(refresh, status),
    oauthForm(refresh, status),
    h("section", { "aria-labelledby": "doctor-title" }, h("h2", { id: "doctor-title" }, "Doctor"), doctor),
  );

  async function refresh() {
    const [profiles, findings] = await Promise.all([loadAll(), get("/auth/doctor")]);
    list.replaceChildren(profileTable(profiles, refresh, status));
    doctor.replaceChildren(doctorList(findings));
  }
  await refresh();
  let stopOAuth = null;
  root.addEventListener("oauth-started", (event) => {
    if (stopOAuth) stopOAuth();
    stopOAuth = event.detail;
  });
  return () => stopOAuth && stopOAuth();
}

function profileTable(profiles, refresh, status) {
  const groups = new Map();
  for (const p of profiles) {
    if (!groups.has(groupKey(p))) groups.set(groupKey(p), []);
    groups.get(groupKey(p)).push(p);
  }
  for (const members of groups.values()) members.sort((a, b) => a.order - b.order);

  async function move(profile, delta) {
    const members = groups.get(groupKey(profile));
    const ids = members.map((m) => m.profile_id);
    const at = ids.indexOf(profile.profile_id);
    const to = at + delta;
    if (to < 0 || to >= ids.length) return;
    [ids[at], ids[to]] = [ids[to], ids[at]];
    const agent = profile.scope.startsWith("agent:") ? profile.scope.slice(6) : undefined;
    try {
      await put("/auth/profiles/order", { provider: profile.provider, ids, agent });
      status.ok(`Moved ${profile.profile_id} ${delta < 0 ? "up" : "down"}.`);
      await refresh();
    } catch (err) {
      status.error(err);
    }
  }

  async function refreshToken(profile) {
    status.ok(`Refreshing ${profile.profile_id}…`);
    try {
      const result = await post(`/auth/profiles/${enc(profile.profile_id)}/refresh`);
      const until = result.expires_at ? `; valid until ${new Date(result.expires_at).toLocaleString()}` : "";
      status.ok(`${profile.profile_id}: ${result.result}${until}.`);
      await refresh();
    } catch (err) {
      status.error(err);
    }
  }

  async function remove(profile) {
    if (!window.confirm(`Delete the auth profile ${profile.profile_id} and its stored secrets?`)) return;
    try {
      await del(`/auth/profiles/${enc(profile.profile_id)}`);
      status.ok(`Deleted ${profile.profile_id}.`);
      await refresh();
    } catch (err) {
      status.error(err);
    }
  }

  const rows = [];
  for (const members of groups.values()) {
    members.forEach((p, index) => {
      const name = p.profile_id;
      const actions = h(
        "div",
        { class: "actions" },
        p.credential?.kind === "oauth"
          ? button("Refresh", () => refreshToken(p), { "aria-label": `Refresh ${name}` })
          : null,
        button("Move up", () => move(p, -1), { "aria-label": `Move ${name} up`, disabled: index === 0 }),
        button("Move down", () => move(p, 1), {
          "aria-label": `Move ${name} down`,
          disabled: index === members.length - 1,
        }),
        button("Delete", () => remove(p), { class: "danger", "aria-label": `Delete ${name}` }),
      );
      rows.push([
        name,
        p.display_name,
        p.provider,
        p.credential?.kind === "oauth" ? "OAuth" : "API key",
        p.scope,
        health(p),
        expiry(p),
        String(index + 1),
        p.last_error_category || "—",
        actions,
      ]);
    });
  }
  return table(
    "Auth profiles",
    ["Profile", "Name", "Provider", "Kind", "Scope", "Health", "Expires", "Order", "Last error", "Actions"],
    rows,
    "none yet. Connect an API key or sign in with OpenAI below.",
  );
}

function connectForm(refresh, status) {
  const local = statusLine();
  const form = h(
    "form",
    { "aria-labelledby": "connect-title" },
    h("h2", { id: "connect-title" }, "Connect an API key"),
    field("Provider", select("provider", [["openai", "OpenAI"], ["anthropic", "Anthropic"]], "openai")),
    field("Profile id", input("profile_id", { required: true, pattern: "[a-z0-9._-]+" }), "Lower-case letters, digits, dot, dash, underscore."),
    field("Display name", input("name")),
    field("API key", input("api_key", { type: "password", required: true }), "Checked against the provider before it is saved; never shown again."),
    h(
      "details",
      {},
      h("summary", {}, "Advanced"),
      field("Base URL", input("base_url", { type: "url" }), "Leave empty for the provider's own API."),
      field("Agent", input("agent"), "Make the profile belong to one agent instead of all."),
    ),
    h("button", { type: "submit" }, "Connect"),
    local.el,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = formData(form);
    const provider = data.provider;
    delete data.provider;
    local.ok("Checking the key with the provider…");
    try {
      const created = await post(`/auth/providers/${enc(provider)}/api-key`, data);
      form.reset();
      local.ok(`Connected ${created.profile_id}: the provider accepted the key and it is stored.`);
      status.clear();
      await refresh();
    } catch (err) {
      form.elements.api_key.value = "";
      local.error(err);
    }
  });
  return form;
}

function oauthForm(refresh) {
  const local = statusLine();
  const form = h(
    "form",
    { "aria-labelledby": "oauth-title" },
    h("h2", { id: "oauth-title" }, "Sign in with OpenAI"),
    h("p", {}, "Opens OpenAI's sign-in in a popup; the profile is saved when you have approved."),
    field("Profile id", input("profile_id", { pattern: "[a-z0-9._-]+" }), "Empty: openai-default."),
    h(
      "details",
      {},
      h("summary", {}, "Advanced"),
      field("Issuer", input("issuer", { type: "url" }), "Another authorization server (a proxy of OpenAI's, or a test one)."),
      field("Client id", input("client_id")),
      field("Token check URL", input("validate_url", { type: "url" }), "Where the new token is checked (default: OpenAI's API)."),
      field("Scopes", input("scopes")),
    ),
    h("button", { type: "submit" }, "Sign in with OpenAI"),
    local.el,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    // Opened before the request, in the click itself, so no popup blocker stops it.
    const popup = window.open("about:blank", "palyra-openai-auth", "popup,width=720,height=860");
    let started;
    try {
      started = await post("/auth/providers/openai/oauth/start", formData(form));
    } catch (err) {
      if (popup) popup.close();
      local.error(err);
      return;
    }
    if (popup) {
      popup.location.href = started.authorization_url;
      local.ok("Waiting for you to finish signing in in the popup…");
    } else {
      local.ok("Your browser blocked the popup: ");
      local.el.append(
        h("a", { href: started.authorization_url, target: "palyra-openai-auth", rel: "opener" }, "open the sign-in page"),
      );
    }
    form.dispatchEvent(
      new CustomEvent("oauth-started", { bubbles: true, detail: follow(started.attempt_id, local, refresh) }),
    );
  });
  return form;
}

// Polls the attempt until it is settled; a message from the callback page (same origin only,
// same attempt only) just makes the next poll come at once: its content is not trusted.
function follow(attemptId, local, refresh) {
  let timer = null;
  let done = false;
  async function poll() {
    if (done) return;
    clearTimeout(timer);
    try {
      const view = await get(`/auth/providers/openai/oauth/${enc(attemptId)}`);
      if (view.status === "succeeded") {
        stop();
        local.ok(`Signed in with OpenAI: profile ${view.profile_id} is saved.`);
        await refresh();
        return;
      }
      if (view.status === "failed") {
        stop();
        local.error(view.message || "the sign-in failed");
        return;
      }
    } catch (err) {
      stop();
      local.error(err);
      return;
    }
    timer = setTimeout(poll, POLL_MS);
  }
  function onMessage(event) {
    if (event.origin !== window.location.origin) return;
    const data = event.data || {};
    if (data.type === OAUTH_EVENT && data.attempt_id === attemptId) poll();
  }
  function stop() {
    done = true;
    clearTimeout(timer);
    window.removeEventListener("message", onMessage);
  }
  window.addEventListener("message", onMessage);
  timer = setTimeout(poll, POLL_MS);
  return stop;
}

function doctorList(report) {
  if (report.ok) return h("p", { class: "ok" }, "The doctor found nothing to fix.");
  return h(
    "ul",
    { class: "findings" },
    report.findings.map((f) =>
      h(
        "li",
        { class: `finding ${f.severity}` },
        h("strong", {}, `${f.severity}: ${f.profile_id}`),
        " ",
        f.message,
        h("br"),
        "Fix: ",
        h("code", {}, f.hint),
      ),
    ),
  );
}
