// Cron jobs: next run in the job's zone, add, edit, enable/disable, run now, explain, delete.
import { del, enc, get, patch, post } from "../api.js";
import { button, field, h, inZone, input, select, statusLine, table } from "../dom.js";

function zoneOf(job) {
  return job.schedule.timezone || "UTC";
}

function describe(schedule) {
  if (schedule.kind === "cron") return `${schedule.expression} (${schedule.timezone})`;
  if (schedule.kind === "interval") return `every ${schedule.every_s}s`;
  return `at ${schedule.at}`;
}

function scheduleText(schedule) {
  if (schedule.kind === "cron") return schedule.expression;
  if (schedule.kind === "interval") return `every ${schedule.every_s}s`;
  return `at ${schedule.at}`;
}

export async function render(root) {
  const status = statusLine();
  const listEl = h("div", {});
  const editor = h("div", {});
  const explained = h("div", {});
  let agents = [];
  try {
    agents = (await get("/agents")).agents.map((a) => a.id);
  } catch {
    agents = [];
  }
  root.append(
    h("h1", {}, "Cron jobs"),
    h("p", {}, "Agent runs on a schedule. Next runs are shown in each job's own time zone."),
    status.el,
    listEl,
    h("div", { class: "actions" }, button("Add a job", () => edit(null))),
    editor,
    explained,
  );

  function edit(job) {
    const isNew = job === null;
    const j = job || { name: "", agent_id: agents[0] || "", schedule: { kind: "cron", expression: "", timezone: "UTC" }, prompt: "", enabled: true };
    const zone = j.schedule.timezone || Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    const form = h(
      "form",
      { "aria-labelledby": "job-title" },
      h("h2", { id: "job-title" }, isNew ? "Add a job" : `Edit ${j.name}`),
      field("Name", input("name", { required: true, value: j.name })),
      field("Agent", agents.length ? select("agent", agents, j.agent_id) : input("agent", { required: true, value: j.agent_id || "" })),
      field("Schedule", input("schedule", { required: true, value: isNew ? "" : scheduleText(j.schedule) }), "A cron expression (*/5 * * * *, @daily), every 90s, or at 2026-12-24T09:00."),
      field("Time zone", input("tz", { value: isNew ? zone : j.schedule.timezone || "" }), "An IANA zone such as Europe/Berlin."),
      field("Prompt", h("textarea", { name: "prompt", rows: "3", required: true }, j.prompt || "")),
      field("Auth profile", input("profile", { value: j.auth_profile_id || "" }), "Empty: the agent's own."),
      h("div", { class: "field check" }, h("input", { type: "checkbox", name: "enabled", id: "job-enabled", checked: j.enabled }), h("label", { for: "job-enabled" }, "Enabled")),
      h("div", { class: "actions" }, h("button", { type: "submit" }, isNew ? "Add job" : "Save"), button("Cancel", () => editor.replaceChildren())),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = form.elements;
      const body = {
        name: f.name.value.trim(),
        agent: f.agent.value.trim(),
        schedule: f.schedule.value.trim(),
        tz: f.tz.value.trim() || null,
        prompt: f.prompt.value,
        profile: f.profile.value.trim() || null,
        enabled: f.enabled.checked,
      };
      try {
        const saved = isNew ? await post("/cron/jobs", body) : await patch(`/cron/jobs/${enc(j.id)}`, body);
        status.ok(`Saved ${saved.name}; next run `);
        status.el.append(saved.next_run_at ? inZone(saved.next_run_at, zoneOf(saved)) : "none", ".");
        editor.replaceChildren();
        await refresh();
      } catch (err) {
        status.error(err);
      }
    });
    editor.replaceChildren(form);
    form.elements.name.focus();
  }

  async function act(job, what) {
    try {
      if (what === "run-now") {
        const run = await post(`/cron/jobs/${enc(job.id)}/run-now`);
        status.ok(`Started run ${run.id} of ${job.name}: `);
        status.el.append(h("a", { href: `#runs/${enc(run.id)}` }, "watch its events"));
        return;
      }
      if (what === "delete") {
        if (!window.confirm(`Delete the job ${job.name}? Its run history stays.`)) return;
        await del(`/cron/jobs/${enc(job.id)}`);
        status.ok(`Deleted ${job.name}.`);
      } else {
        await post(`/cron/jobs/${enc(job.id)}/${what}`);
        status.ok(`${job.name} is ${what}d.`);
      }
      await refresh();
    } catch (err) {
      status.error(err);
    }
  }

  async function explain(job) {
    try {
      const report = await get(`/cron/jobs/${enc(job.id)}/explain`);
      explained.replaceChildren(
        h("section", { "aria-labelledby": "explain-title", class: "explain", tabindex: "-1" },
          h("h2", { id: "explain-title" }, `Explain ${report.job}`),
          h("p", {}, `${report.schedule}; ${report.enabled ? "enabled" : "disabled"}; zone ${report.zone}.`),
          report.note ? h("p", {}, report.note) : null,
          h("h3", {}, "Next runs"),
          report.next.length ? h("ol", {}, report.next.map((t) => h("li", {}, inZone(t, report.zone)))) : h("p", {}, "none"),
          h("h3", {}, "Recent"),
          report.recent.length
            ? h("ul", {}, report.recent.map((r) => h("li", {}, inZone(r.scheduled_for, report.zone), `: ${r.outcome}`, r.runs.length ? ` (${r.runs.join(", ")})` : "")))
            : h("p", {}, "nothing scheduled has come due yet"),
        ),
      );
      explained.firstChild.focus();
    } catch (err) {
      status.error(err);
    }
  }

  async function refresh() {
    const jobs = (await get("/cron/jobs")).data;
    listEl.replaceChildren(
      table(
        "Jobs",
        ["Name", "Agent", "Schedule", "Next run (job's zone)", "Enabled", "Actions"],
        jobs.map((j) => [
          j.name,
          j.agent_id,
          describe(j.schedule),
          j.next_run_at ? inZone(j.next_run_at, zoneOf(j)) : "none",
          j.enabled ? "yes" : "no",
          h(
            "div",
            { class: "actions" },
            button("Run now", () => act(j, "run-now"), { "aria-label": `Run ${j.name} now` }),
            button(j.enabled ? "Disable" : "Enable", () => act(j, j.enabled ? "disable" : "enable"), { "aria-label": `${j.enabled ? "Disable" : "Enable"} ${j.name}` }),
            button("Edit", () => edit(j), { "aria-label": `Edit ${j.name}` }),
            button("Explain", () => explain(j), { "aria-label": `Explain ${j.name}` }),
            button("Delete", () => act(j, "delete"), { class: "danger", "aria-label": `Delete ${j.name}` }),
          ),
        ]),
        "none yet.",
      ),
    );
  }
  await refresh();
}
