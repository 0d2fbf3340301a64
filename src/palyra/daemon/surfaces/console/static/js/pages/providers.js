// Providers and models: health per provider, model and credential, refreshed live.
import { get } from "../api.js";
import { button, h, statusLine, table, when } from "../dom.js";

const EVERY_MS = 5000;

function ms(seconds) {
  return seconds === null || seconds === undefined ? "—" : `${Math.round(seconds * 1000)} ms`;
}

function percent(rate) {
  return rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(1)} %`;
}

function breaker(state) {
  if (!state) return "—";
  return h("span", { class: `badge breaker-${state}` }, state);
}

function rowsOf(list) {
  return list.map((row) => [
    row.scope.slice(row.scope.indexOf(":") + 1),
    breaker(row.breaker),
    String(row.requests),
    percent(row.error_rate),
    ms(row.p50_s),
    ms(row.p95_s),
    row.last_failure_class || "—",
    when(row.last_failure_at),
  ]);
}

const HEADERS = ["Name", "Breaker", "Requests", "Error rate", "p50", "p95", "Last failure", "Failed at"];

export async function render(root) {
  const status = statusLine();
  const body = h("div", {});
  const updated = h("p", { class: "hint" });
  let timer = null;
  let live = true;
  const toggle = button("Pause live updates", () => {
    live = !live;
    toggle.textContent = live ? "Pause live updates" : "Resume live updates";
    toggle.setAttribute("aria-pressed", String(!live));
    if (live) refresh();
    else clearTimeout(timer);
  }, { "aria-pressed": "false" });
  root.append(
    h("h1", {}, "Providers and models"),
    h("p", {}, `Health since the daemon started, refreshed every ${EVERY_MS / 1000} seconds.`),
    h("div", { class: "actions" }, toggle),
    updated,
    status.el,
    body,
  );
  async function refresh() {
    clearTimeout(timer);
    try {
      const health = await get("/providers/health");
      body.replaceChildren(
        table("Providers", HEADERS, rowsOf(health.providers), "no traffic yet."),
        table("Models", HEADERS, rowsOf(health.models), "no traffic yet."),
        table("Credentials", HEADERS, rowsOf(health.credentials), "no traffic yet."),
      );
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
      status.clear();
    } catch (err) {
      status.error(err);
    }
    if (live) timer = setTimeout(refresh, EVERY_MS);
  }
  await refresh();
  return () => {
    live = false;
    clearTimeout(timer);
  };
}
