// Building the page: elements, tables, notices, times. Text always goes in as text nodes,
// never as HTML, so nothing from the API can inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// kind: "info" | "error" | "warn" | "ok"
export function notice(kind, ...children) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" },
    ...children);
}

// columns: [{title, value: row => text|Node, num?: true}]; key(row): the row's data-key
export function table(columns, rows, caption, key) {
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : "" }, c.title)));
  const body = rows.map((row) =>
    h("tr", { "data-key": key ? key(row) : null },
      columns.map((c) => h("td", { class: c.num ? "num" : "" }, c.value(row)))));
  return h("div", { class: "scroll" },
    h("table", {}, caption ? h("caption", { class: "muted small" }, caption) : null,
      h("thead", {}, head), h("tbody", {}, body)));
}

// raw: the value as the API gave it, kept on the element (data-value) for scripts and tests
export function stat(label, value, note, raw) {
  return h("div", { class: "stat", "data-value": raw === undefined ? null : String(raw) },
    h("div", { class: "k" }, label), h("div", { class: "v" }, value),
    note ? h("div", { class: "k" }, note) : null);
}

// Times: the API speaks UTC ISO 8601 and so does the page (labelled "UTC").
export function fmtTime(iso) {
  if (!iso) return "—";
  const d = iso instanceof Date ? iso : new Date(iso);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "").replace(/Z$/, "") + " UTC";
}

export function fmtSpan(a, b) {
  return `${fmtTime(a)} → ${b ? fmtTime(b) : "now"}`;
}

export function iso(date) {
  return new Date(date).toISOString();
}

// <input type="datetime-local"> holds a zone-less time; the page labels it UTC.
export function toInput(date) {
  return new Date(date).toISOString().slice(0, 19);
}

export function fromInput(value) {
  return new Date(value.length === 16 ? `${value}:00Z` : `${value}Z`);
}

export function fmtNum(x, digits = 1) {
  if (x === null || x === undefined || Number.isNaN(x)) return "—";
  return Number(x).toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 ** 2).toFixed(1)} MB`;
}

export function timeField(label, value, name) {
  return h("label", {}, `${label} (UTC)`,
    h("input", { type: "datetime-local", step: "1", name, value: toInput(value), required: true }));
}

// A status line for screen readers and sighted users alike.
export function live() {
  return h("p", { class: "muted", role: "status", "aria-live": "polite" });
}
