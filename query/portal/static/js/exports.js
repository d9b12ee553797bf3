// Exports: everything in a range as CSV, JSON Lines or Parquet, streamed with progress
// (bytes, and for the text formats how far through the range), then saved as a file.
import { download, filenameOf, saveLink, session } from "./api.js";
import { catalog } from "./api.js";
import { clear, fmtBytes, fmtNum, fmtTime, fromInput, h, iso, live, notice, timeField } from "./dom.js";
import { sha256hex } from "./zip.js";
import { vehicle } from "./overview.js";
import { errorNotice } from "./app.js";

const STAMP = /(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)/;

// The event time of the last whole line of a text export's chunk (rows come in time order).
function reached(chunk) {
  const tail = new TextDecoder().decode(chunk.subarray(Math.max(0, chunk.length - 4096)));
  const lines = tail.split("\n").filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i -= 1) {
    const m = STAMP.exec(lines[i]);
    if (m) return Date.parse(m[1]);
  }
  return null;
}

export async function exportPage(body, vin, params, config) {
  body.append(h("h1", {}, "Export my data"));
  const [car, cat] = await Promise.all([vehicle(vin), catalog()]);
  const end = car?.periods.at(-1).end ? Date.parse(car.periods.at(-1).end) : Date.now() + 60e3;
  const start = Math.max(car ? Date.parse(car.periods[0].start) : 0, end - config.max_range_days * 86400e3 + 60e3);
  const form = h("form", { id: "export-form" },
    h("div", { class: "row" }, timeField("From", start, "from"), timeField("To", end, "to"),
      h("label", {}, "Format", h("select", { name: "format" },
        h("option", { value: "csv" }, "CSV"), h("option", { value: "jsonl" }, "JSON Lines"),
        h("option", { value: "parquet" }, "Parquet")))),
    h("fieldset", {}, h("legend", {}, "Categories (none ticked: all in your sign-in)"),
      cat.categories.filter((c) => session.has(c)).map((c) =>
        h("label", { class: "inline" }, h("input", { type: "checkbox", name: "category", value: c }), c))),
    h("p", { class: "small muted" }, `At most ${config.max_range_days} days per export.`),
    h("div", { class: "row" }, h("button", { type: "submit", name: "go" }, "Download"),
      h("button", { type: "button", class: "secondary", name: "cancel", disabled: true }, "Cancel")));
  const progress = h("progress", { max: "100", hidden: true, "aria-label": "Export progress" });
  const status = live();
  status.id = "export-status";
  const out = h("div", { id: "export-result" });
  body.append(form, progress, status, out);
  let abort;
  form.cancel.addEventListener("click", () => abort?.abort());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const from = fromInput(form.from.value), to = fromInput(form.to.value);
    const format = form.format.value;
    const categories = [...form.querySelectorAll("input[name=category]:checked")].map((i) => i.value);
    abort = new AbortController();
    form.go.disabled = true;
    form.cancel.disabled = false;
    progress.hidden = false;
    progress.removeAttribute("value"); // indeterminate until the first rows say how far
    clear(out);
    const began = performance.now();
    const onChunk = (bytes, chunk) => {
      const t = format === "parquet" ? null : reached(chunk);
      let where = "";
      if (t !== null) {
        const pct = Math.min(100, Math.max(0, ((t - from) / (to - from)) * 100));
        progress.value = pct;
        where = `, up to ${fmtTime(new Date(t))} (${pct.toFixed(0)} % of the range)`;
      }
      status.textContent = `Receiving: ${fmtBytes(bytes)}${where}…`;
    };
    try {
      const { blob, headers, bytes } = await download(`/v1/vehicles/${vin}/export`,
        { from: iso(from), to: iso(to), format, category: categories.length ? categories : undefined },
        onChunk, abort.signal);
      progress.value = 100;
      const name = filenameOf(headers, `${vin}.${format}`);
      const digest = await sha256hex(await blob.arrayBuffer());
      const rows = format === "parquet" ? null
        : (await blob.text()).split("\n").filter(Boolean).length - (format === "csv" ? 1 : 0);
      status.textContent = `Done in ${((performance.now() - began) / 1000).toFixed(1)} s.`;
      const link = saveLink(blob, name, `Save ${name} again`);
      out.append(notice(rows === 0 ? "warn" : "ok",
        rows === 0 ? `No data between ${fmtTime(from)} and ${fmtTime(to)} in your categories: the file holds only a header.`
          : `${name}: ${fmtBytes(bytes)}${rows === null ? "" : `, ${fmtNum(rows, 0)} rows`}.`,
        h("br"), "SHA-256 ", h("span", { class: "mono", id: "export-digest" }, digest)), h("p", {}, link));
      link.click();
    } catch (error) {
      progress.hidden = true;
      status.textContent = "";
      out.append(error.name === "AbortError" ? notice("warn", "Export cancelled.") : errorNotice(error));
    } finally {
      form.go.disabled = false;
      form.cancel.disabled = true;
    }
  });
}
