// Run history, and one run's events streamed live (server-sent events).
import { enc, get, post } from "../api.js";
import { button, h, statusLine, table, when } from "../dom.js";

const EVERY_MS = 5000;
// The event names the daemon sends (palyra.agents.events), and the stream's own last one.
const EVENT_TYPES = [
  "run_started",
  "model_delta",
  "tool_call",
  "tool_result",
  "turn_completed",
  "run_completed",
  "run_failed",
  "run_cancelled",
  "run_timed_out",
  "run_closed",
];

function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function tokens(run) {
  if (run.input_tokens === null && run.output_tokens === null) return "—";
  return `${run.input_tokens ?? 0} in / ${run.output_tokens ?? 0} out`;
}

function badge(status) {
  return h("span", { class: `badge run-${status}` }, status);
}

export async function render(root, [runId]) {
  return runId ? detail(root, runId) : history(root);
}

async function history(root) {
  const status = statusLine();
  const listEl = h("div", {});
  let timer = null;
  root.append(
    h("h1", {}, "Runs"),
    h("p", {}, `The latest agent runs, newest first, refreshed every ${EVERY_MS / 1000} seconds.`),
    status.el,
    listEl,
  );
  async function refresh() {
    clearTimeout(timer);
    try {
      const runs = (await get("/runs?limit=100")).data;
      listEl.replaceChildren(
        table(
          "Run history",
          ["Run", "Job", "Agent", "Status", "Started", "Duration", "Tokens", "Error"],
          runs.map((r) => [
            h("a", { href: `#runs/${enc(r.id)}` }, r.id),
            r.job_id || "ad hoc",
            r.agent_id || "—",
            badge(r.status),
            when(r.started_at || r.created_at),
            duration(r.duration_ms),
            tokens(r),
            r.error_category || "—",
          ]),
          "no runs yet.",
        ),
      );
    } catch (err) {
      status.error(err);
    }
    timer = setTimeout(refresh, EVERY_MS);
  }
  await refresh();
  return () => clearTimeout(timer);
}

function eventText(event) {
  const { run_id: _run, seq: _seq, type: _type, at: _at, ...rest } = event;
  const text = JSON.stringify(rest);
  return text === "{}" ? "" : text;
}

async function detail(root, runId) {
  const status = statusLine();
  const summary = h("dl", { class: "summary" });
  const events = h("ol", { class: "events", "aria-live": "polite", "aria-label": "Events" });
  const cancel = button("Cancel run", async () => {
    try {
      await post(`/runs/${enc(runId)}/cancel`);
      status.ok("Cancel requested.");
    } catch (err) {
      status.error(err);
    }
  }, { class: "danger" });
  root.append(
    h("p", {}, h("a", { href: "#runs" }, "All runs")),
    h("h1", {}, `Run ${runId}`),
    status.el,
    summary,
    h("div", { class: "actions" }, cancel),
    h("h2", {}, "Events"),
    events,
  );

  function show(run) {
    const pairs = [
      ["Status", badge(run.status)],
      ["Job", run.job_id || "ad hoc"],
      ["Agent", run.agent_id || "—"],
      ["Auth profile", run.auth_profile_id || "—"],
      ["Started", when(run.started_at)],
      ["Finished", when(run.finished_at)],
      ["Duration", duration(run.duration_ms)],
      ["Tokens", tokens(run)],
      ["Error", run.error_category || "—"],
      ["Reason", run.reason || "—"],
    ];
    summary.replaceChildren(...pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    cancel.hidden = ["succeeded", "failed", "cancelled", "timed_out", "skipped", "interrupted"].includes(run.status);
  }

  show(await get(`/runs/${enc(runId)}`));
  const seen = new Set();
  const source = new EventSource(`/console/v1/runs/${enc(runId)}/events`);
  const onEvent = (message) => {
    const event = JSON.parse(message.data);
    if (message.type === "run_closed") {
      show(event);
      status.ok("The run has ended.");
      source.close();
      return;
    }
    if (seen.has(event.seq)) return;
    seen.add(event.seq);
    events.append(
      h("li", { class: "event", "data-type": event.type }, h("strong", {}, event.type), " ", when(event.at), " ", h("code", {}, eventText(event))),
    );
  };
  for (const type of EVENT_TYPES) source.addEventListener(type, onEvent);
  source.onmessage = onEvent;
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) return;
    status.error("the event stream was interrupted; it reconnects by itself");
  };
  return () => source.close();
}
