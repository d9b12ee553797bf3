// The access log: every request made on the owner's data, newest first, page by page.
import { api } from "./api.js";
import { fmtNum, fmtTime, h, notice, table } from "./dom.js";
import { errorNotice } from "./app.js";

const COLUMNS = [
  { title: "When", value: (e) => fmtTime(e.at) },
  { title: "What", value: (e) => h("span", { class: "mono" }, e.endpoint) },
  { title: "Vehicle", value: (e) => e.vin || "—" },
  { title: "Categories", value: (e) => e.categories.join(", ") || "—" },
  { title: "Range", value: (e) => (e.from ? `${fmtTime(e.from)} → ${fmtTime(e.to)}` : "—") },
  { title: "Rows", num: true, value: (e) => fmtNum(e.rows, 0) },
  { title: "Status", num: true, value: (e) => `${e.status}${e.aborted ? " (left early)" : ""}` },
];

export async function accessLogPage(main) {
  main.append(h("h1", {}, "Who read my data"),
    h("p", {}, "Every request made on your data, by this portal, the owner app or anyone with your token: " +
      "when, what, which car and categories, how many rows."));
  const holder = h("div", { id: "access-log" });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Older entries");
  main.append(holder, more);
  let cursor = null;
  let shown = 0;
  const load = async () => {
    more.disabled = true;
    try {
      const page = await api("/v1/access-log", { params: { page_size: 50, cursor: cursor || undefined } });
      shown += page.entries.length;
      holder.append(page.entries.length ? table(COLUMNS, page.entries) : notice("info", "No requests recorded yet."));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      holder.dataset.entries = String(shown);
    } catch (error) {
      holder.append(errorNotice(error));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener("click", load);
  await load();
}
