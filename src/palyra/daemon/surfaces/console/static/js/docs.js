// The API reference: the daemon's OpenAPI document (admins only) drawn as plain HTML.
import { h } from "./dom.js";

const status = document.getElementById("docs-status");
const root = document.getElementById("docs");
const filter = document.getElementById("docs-filter");

function schemaText(schema) {
  if (!schema) return "";
  return JSON.stringify(schema, null, 2);
}

function operation(path, method, op) {
  const params = op.parameters || [];
  const body = op.requestBody?.content?.["application/json"]?.schema;
  const responses = Object.entries(op.responses || {});
  return h(
    "details",
    { class: "operation", "data-search": `${method} ${path} ${op.summary || ""}`.toLowerCase() },
    h("summary", {}, h("code", { class: `method ${method}` }, method.toUpperCase()), " ", h("code", {}, path), op.summary ? ` · ${op.summary}` : ""),
    op.description ? h("p", {}, op.description) : null,
    params.length
      ? h("section", {}, h("h3", {}, "Parameters"), h("ul", {}, params.map((p) => h("li", {}, h("code", {}, p.name), ` (${p.in}${p.required ? ", required" : ""})`, p.description ? `: ${p.description}` : ""))))
      : null,
    body ? h("section", {}, h("h3", {}, "Body"), h("pre", {}, schemaText(body))) : null,
    h("section", {}, h("h3", {}, "Responses"), h("ul", {}, responses.map(([code, r]) => h("li", {}, h("code", {}, code), ` ${r.description || ""}`)))),
  );
}

async function start() {
  const response = await fetch("/console/v1/openapi.json", { credentials: "same-origin" });
  if (response.status === 401) {
    status.className = "status error";
    status.textContent = "Sign in to the console first: ";
    status.append(h("a", { href: "/console" }, "open the console"));
    return;
  }
  if (!response.ok) {
    status.className = "status error";
    status.textContent = `the document could not be loaded (${response.status})`;
    return;
  }
  const doc = await response.json();
  status.className = "status";
  status.textContent = `${doc.info.title} ${doc.info.version}, OpenAPI ${doc.openapi}.`;
  const groups = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    const group = path.split("/").slice(0, 3).join("/") || "/";
    if (!groups.has(group)) groups.set(group, []);
    for (const [method, op] of Object.entries(item)) groups.get(group).push(operation(path, method, op));
  }
  for (const [group, ops] of groups) {
    root.append(h("section", { class: "group" }, h("h2", {}, group), ops));
  }
  document.getElementById("docs-filter-field").hidden = false;
  filter.addEventListener("input", () => {
    const q = filter.value.trim().toLowerCase();
    for (const op of root.querySelectorAll(".operation")) op.hidden = q !== "" && !op.dataset.search.includes(q);
  });
}

start();
