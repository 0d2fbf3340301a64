// Client tokens: create (shown once), list, revoke, bind to an agent.
import { del, enc, get, post } from "../api.js";
import { button, field, formData, h, input, select, statusLine, table, when } from "../dom.js";

async function agentIds() {
  try {
    return (await get("/agents")).agents.map((a) => a.id);
  } catch {
    return [];
  }
}

export async function render(root) {
  const status = statusLine();
  const list = h("div", {});
  const reveal = h("div", { class: "reveal", hidden: true, tabindex: "-1" });
  const agents = await agentIds();
  const form = h(
    "form",
    { "aria-labelledby": "create-title" },
    h("h2", { id: "create-title" }, "Create a token"),
    field("Kind", select("kind", [["client", "Client (calls /v1)"], ["admin", "Admin (opens the console)"], ["metrics", "Metrics (/metrics only)"]], "client")),
    field("Name", input("name")),
    field("Agent", select("agent", [["", "None"], ...agents.map((a) => [a, a])], ""), "A client token bound to an agent uses that agent's auth profiles."),
    field("Expires after (days)", input("expires_days", { type: "number", min: "1", step: "any" }), "Empty: never."),
    h("button", { type: "submit" }, "Create token"),
  );
  root.append(
    h("h1", {}, "Client tokens"),
    h("p", {}, "Tokens that open this daemon. Only their hashes are stored: a new token is shown once."),
    status.el,
    reveal,
    form,
    list,
  );

  function showOnce(created) {
    const code = h("code", { class: "secret" }, created.token);
    const hide = () => {
      reveal.replaceChildren();
      reveal.hidden = true;
    };
    reveal.replaceChildren(
      h("h2", {}, "Your new token"),
      h("p", {}, `Copy it now: ${created.name} (${created.id}) will not be shown again.`),
      code,
      h(
        "div",
        { class: "actions" },
        button("Copy", async () => {
          try {
            await navigator.clipboard.writeText(created.token);
            status.ok("Copied.");
          } catch {
            status.error("the browser refused the clipboard; select the token and copy it");
          }
        }),
        button("I have saved it", hide),
      ),
    );
    reveal.hidden = false;
    reveal.focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = formData(form);
    if (data.expires_days) data.expires_days = Number(data.expires_days);
    try {
      const created = await post("/tokens", data);
      form.reset();
      showOnce(created);
      status.ok(`Created ${created.id}.`);
      await refresh();
    } catch (err) {
      status.error(err);
    }
  });

  async function revoke(token) {
    if (!window.confirm(`Revoke ${token.name} (${token.id})? Anything using it is refused at once.`)) return;
    try {
      await del(`/tokens/${enc(token.id)}`);
      status.ok(`Revoked ${token.id}.`);
      await refresh();
    } catch (err) {
      status.error(err);
    }
  }

  async function refresh() {
    try {
      const tokens = (await get("/tokens")).data;
      list.replaceChildren(
        table(
          "Tokens",
          ["Id", "Kind", "Name", "Status", "Agent", "Created", "Expires", "Last used", "Actions"],
          tokens.map((t) => [
            t.id,
            t.kind,
            t.name,
            h("span", { class: `badge ${t.status}` }, t.status),
            t.agent || "—",
            when(t.created),
            t.expires ? when(t.expires) : "never",
            when(t.last_used),
            t.status === "active"
              ? button("Revoke", () => revoke(t), { class: "danger", "aria-label": `Revoke ${t.name}` })
              : "—",
          ]),
          "none yet.",
        ),
      );
    } catch (err) {
      status.error(err);
    }
  }
  await refresh();
}
