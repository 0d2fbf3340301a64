// A few DOM helpers. Text always goes in as text (never as markup), so nothing the daemon
// returns can inject script or style into the page.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

let ids = 0;

// A labelled control: <label for> + the control, in one wrapper.
export function field(label, control, hint) {
  const id = control.id || `f${++ids}`;
  control.id = id;
  const parts = [h("label", { for: id }, label), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("p", { class: "hint", id: hintId }, hint));
  }
  return h("div", { class: "field" }, parts);
}

export function input(name, attrs = {}) {
  return h("input", { name, type: "text", autocomplete: "off", spellcheck: "false", ...attrs });
}

export function select(name, options, value) {
  const el = h("select", { name });
  for (const option of options) {
    const [val, text] = Array.isArray(option) ? option : [option, option];
    el.append(h("option", { value: val, selected: val === value }, text));
  }
  return el;
}

export function button(text, onclick, attrs = {}) {
  return h("button", { type: "button", onclick, ...attrs }, text);
}

// A table with a caption and column headers; each row is a list of cells (text or nodes).
export function table(caption, headers, rows, empty = "Nothing yet.") {
  if (!rows.length) return h("p", { class: "empty" }, `${caption}: ${empty}`);
  return h(
    "div",
    { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption },
    h(
      "table",
      {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
      h(
        "tbody",
        {},
        rows.map((cells) =>
          h("tr", {}, cells.map((cell, i) => h("td", { "data-label": headers[i] }, cell ?? "—"))),
        ),
      ),
    ),
  );
}

// The live status line of a section: errors in words, read out by screen readers.
export function statusLine() {
  const el = h("p", { class: "status", role: "status", "aria-live": "polite" });
  return {
    el,
    ok(text) {
      el.className = "status ok";
      el.textContent = text;
    },
    error(err) {
      el.className = "status error";
      el.textContent = err instanceof Error ? err.message : String(err);
    },
    clear() {
      el.className = "status";
      el.textContent = "";
    },
  };
}

export function when(iso) {
  if (!iso) return "—";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  return h("time", { datetime: iso, title: iso }, at.toLocaleString());
}

export function inZone(iso, zone) {
  if (!iso) return "—";
  const at = new Date(iso);
  try {
    const text = new Intl.DateTimeFormat(undefined, {
      dateStyle: "medium",
      timeStyle: "long",
      timeZone: zone || "UTC",
    }).format(at);
    return h("time", { datetime: iso, title: iso }, text);
  } catch {
    return when(iso);
  }
}

export function formData(form) {
  const out = {};
  for (const [key, value] of new FormData(form).entries()) {
    const text = String(value).trim();
    if (text !== "") out[key] = text;
  }
  return out;
}
