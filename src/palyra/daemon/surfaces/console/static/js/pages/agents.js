// Agents: list, edit and add the agents of agents.toml.
import { enc, get, post, put } from "../api.js";
import { button, field, h, input, statusLine, table } from "../dom.js";

function list(text) {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

export async function render(root) {
  const status = statusLine();
  const listEl = h("div", {});
  const editor = h("div", {});
  root.append(
    h("h1", {}, "Agents"),
    h("p", {}, "Agents from agents.toml; a change applies to the agent's next run."),
    status.el,
    listEl,
    h("div", { class: "actions" }, button("Add an agent", () => edit(null))),
    editor,
  );

  function edit(agent) {
    const isNew = agent === null;
    const a = agent || { id: "", model: "", system_prompt: "", tools: [], max_turns: 8, time_budget_s: 300 };
    const form = h(
      "form",
      { "aria-labelledby": "edit-title" },
      h("h2", { id: "edit-title" }, isNew ? "Add an agent" : `Edit ${a.id}`),
      isNew ? field("Id", input("id", { required: true, pattern: "[a-z0-9._-]+" })) : null,
      field("Display name", input("display_name", { value: a.display_name || "" })),
      field("Model", input("model", { required: true, value: a.model })),
      field("System prompt", h("textarea", { name: "system_prompt", rows: "4" }, a.system_prompt || "")),
      field("Auth profile", input("auth_profile_id", { value: a.auth_profile_id || "" }), "Empty: the provider's own order."),
      field("Tools", input("tools", { value: (a.tools || []).join(", ") }), "Comma-separated allowlist, e.g. text.*"),
      field("Max turns", input("max_turns", { type: "number", min: "1", value: a.max_turns })),
      field("Time budget (s)", input("time_budget_s", { type: "number", min: "1", step: "any", value: a.time_budget_s })),
      field("Token budget", input("token_budget", { type: "number", min: "1", value: a.token_budget ?? "" }), "Empty: none."),
      h("div", { class: "actions" }, h("button", { type: "submit" }, "Save"), button("Cancel", () => editor.replaceChildren())),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = form.elements;
      const body = {
        display_name: f.display_name.value.trim() || null,
        model: f.model.value.trim(),
        system_prompt: f.system_prompt.value,
        auth_profile_id: f.auth_profile_id.value.trim() || null,
        tools: list(f.tools.value),
        max_turns: Number(f.max_turns.value),
        time_budget_s: Number(f.time_budget_s.value),
        token_budget: f.token_budget.value ? Number(f.token_budget.value) : null,
      };
      try {
        if (isNew) await post("/agents", { id: f.id.value.trim(), ...body });
        else await put(`/agents/${enc(a.id)}`, body);
        status.ok(`Saved ${isNew ? f.id.value.trim() : a.id}.`);
        editor.replaceChildren();
        await refresh();
      } catch (err) {
        status.error(err);
      }
    });
    editor.replaceChildren(form);
    form.querySelector("input, textarea")?.focus();
  }

  async function refresh() {
    const agents = (await get("/agents")).agents;
    listEl.replaceChildren(
      table(
        "Agents",
        ["Id", "Name", "Model", "Auth profile", "Tools", "Limits", "Actions"],
        agents.map((a) => [
          a.id,
          a.display_name || "—",
          a.model,
          a.auth_profile_id || "—",
          a.tools.length ? a.tools.join(", ") : "none",
          `${a.max_turns} turns, ${a.time_budget_s} s${a.token_budget ? `, ${a.token_budget} tokens` : ""}`,
          button("Edit", () => edit(a), { "aria-label": `Edit ${a.id}` }),
        ]),
        "none yet.",
      ),
    );
  }
  await refresh();
}
