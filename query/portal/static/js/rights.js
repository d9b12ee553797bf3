// Data rights: each category's consent with a switch, mode and expiry; withdrawal (and
// deleting what was collected); deletion requests and their receipts, digest checked here.
import { api, catalog, session } from "./api.js";
import { clear, fmtTime, fromInput, h, iso, live, notice, table, timeField } from "./dom.js";
import { consentBadge, vehicle } from "./overview.js";
import { canonicalJson, sha256hex } from "./zip.js";
import { errorNotice } from "./app.js";

const DAYS = [30, 90, 180, 365];

function untilText(s) {
  if (!s.decision) return s.collected ? "by default, until you refuse" : "not collected unless you allow it";
  if (s.decision.mode === "off") return `refused since ${fmtTime(s.decision.from)}`;
  return `until ${fmtTime(s.decision.expires_at)}`;
}

function controls(vin, s, status, refresh) {
  const name = s.category;
  const modes = s.modes.length ? s.modes : ["on"];
  const mode = h("select", { "aria-label": `How to collect ${name}`, name: "mode" },
    modes.map((m) => h("option", { value: m, selected: m === s.mode }, m)));
  const days = h("select", { "aria-label": `For how long to allow ${name}`, name: "days" },
    DAYS.map((d) => h("option", { value: String(d), selected: d === 90 }, `${d} days`)));
  const erase = h("input", { type: "checkbox", name: "delete" });
  const toggle = h("input", { type: "checkbox", role: "switch", name: "collect", checked: s.collected,
    "aria-label": `Collect ${name}`, "data-category": name });
  const write = async (grant) => {
    toggle.disabled = true;
    try {
      const body = grant
        ? await api(`/v1/vehicles/${vin}/consent/${name}`, { method: "PUT", body: { mode: mode.value, days: Number(days.value) } })
        : await api(`/v1/vehicles/${vin}/consent/${name}`, { method: "DELETE", params: { delete_collected: erase.checked ? "true" : undefined } });
      const d = body.decision;
      status.replaceChildren(notice("ok", grant ? `${name}: ${d.mode} from ${fmtTime(d.from)} until ${fmtTime(d.expires_at)}.`
        : `${name}: withdrawn from ${fmtTime(d.from)}.`,
      body.deletion ? ` Deletion of what was collected requested (${body.deletion.request_id}, by ${fmtTime(body.deletion.deadline)}).` : ""));
      await refresh();
    } catch (error) {
      toggle.checked = !grant;
      toggle.disabled = false;
      status.replaceChildren(errorNotice(error));
    }
  };
  toggle.addEventListener("change", () => write(toggle.checked));
  const change = h("button", { type: "button", class: "secondary", onclick: () => write(true),
    disabled: !s.collected }, "Change");
  return h("div", { class: "row" },
    h("label", { class: "inline" }, toggle, "Collect"),
    modes.length > 1 || modes[0] !== "on" ? mode : null, days,
    h("label", { class: "inline small" }, erase, "on withdrawal, also delete what was collected"),
    modes.length > 1 ? change : null);
}

export async function consentPage(body, vin) {
  body.append(h("h1", {}, "Consent: what is collected"));
  const status = h("div", { id: "consent-status", "aria-live": "polite" });
  const holder = h("div");
  if (!session.has("consent:write")) {
    body.append(notice("warn", "Your sign-in may read but not change consent (its scope lacks consent:write)."));
  }
  body.append(h("p", {}, "A grant always ends; a refusal or withdrawal holds until you allow again. " +
    "Decisions take effect from the moment they are recorded, for this car while you own it."), status, holder);
  const refresh = async () => {
    const state = await api(`/v1/vehicles/${vin}/consent`);
    clear(holder).append(
      table([
        { title: "Category", value: (s) => h("strong", {}, s.category) },
        { title: "Now", value: (s) => consentBadge(s) },
        { title: "Until", value: (s) => untilText(s) },
        { title: "Collected by default", value: (s) => (s.collected_by_default ? "yes" : "no") },
        { title: "Change", value: (s) => controls(vin, s, status, refresh) },
      ], state.categories),
      h("h2", {}, "Your decisions"),
      state.history.length ? table([
        { title: "Recorded", value: (d) => fmtTime(d.recorded_at) },
        { title: "Category", value: (d) => d.category },
        { title: "Mode", value: (d) => d.mode },
        { title: "From", value: (d) => fmtTime(d.from) },
        { title: "Expires", value: (d) => (d.expires_at ? fmtTime(d.expires_at) : "never (a refusal)") },
      ], state.history.slice().reverse()) : notice("info", "No decisions yet: the defaults hold."));
    holder.dataset.state = JSON.stringify(state.categories.map((c) => [c.category, c.mode]));
  };
  await refresh();
}

// -- deletion ------------------------------------------------------------------------------

async function receiptCheck(request) {
  if (!request.receipt || !request.digest) return null;
  const got = await sha256hex(new TextEncoder().encode(canonicalJson(request.receipt)));
  return got === request.digest;
}

async function requestCard(r) {
  const ok = await receiptCheck(r);
  const removed = r.receipt ? Object.entries(r.receipt.removed).flatMap(([t, byCat]) =>
    Object.entries(byCat).map(([c, n]) => ({ t, c, n }))) : [];
  return h("article", { class: "card deletion", "data-request": r.request_id, "data-status": r.status },
    h("h3", {}, `${r.categories.join(", ")}: ${r.status}`),
    h("p", { class: "small" }, `Requested ${fmtTime(r.requested_at)}, deadline ${fmtTime(r.deadline)}; range ${fmtTime(r.from)} → ${fmtTime(r.to)}`,
      h("br"), "Request ", h("span", { class: "mono" }, r.request_id)),
    r.status !== "done" ? notice("info", "Pending: no new data in this scope is stored any more; the deletion itself runs shortly.") : null,
    r.receipt ? h("div", { class: "receipt" },
      h("p", {}, `Done ${fmtTime(r.done_at)}. Remaining: `, h("strong", {}, String(r.receipt.remaining)),
        `; dead letters removed: ${r.receipt.removed_dead_letters}.`),
      table([{ title: "Table", value: (x) => x.t }, { title: "Category", value: (x) => x.c },
        { title: "Rows removed", num: true, value: (x) => String(x.n) }], removed),
      h("p", {}, "Receipt digest (SHA-256): ", h("span", { class: "mono receipt-digest" }, r.digest), " ",
        ok ? h("span", { class: "ok-mark", "data-verified": "true" }, "✓ checked here") : h("span", { class: "bad-mark" }, "✗ does not match the receipt"))) : null);
}

export async function deletionPage(body, vin) {
  body.append(h("h1", {}, "Delete data"));
  const [car, cat] = await Promise.all([vehicle(vin), catalog()]);
  const mine = cat.categories.filter((c) => session.has(c));
  const status = live();
  const list = h("div", { id: "deletions" });
  const start = car ? car.periods[0].start : new Date(Date.now() - 86400e3);
  const form = h("form", { id: "deletion-form" },
    h("fieldset", {}, h("legend", {}, "Categories to delete"),
      mine.map((c) => h("label", { class: "inline" }, h("input", { type: "checkbox", name: "category", value: c }), c))),
    h("div", { class: "row" }, timeField("From", start, "from"), timeField("To", Date.now() + 60e3, "to")),
    h("p", {}, h("label", { class: "inline" }, h("input", { type: "checkbox", name: "confirm", required: true }),
      "I understand that deleted data cannot be brought back.")),
    h("button", { type: "submit" }, "Request deletion"), status);
  if (!session.has("data:delete")) body.append(notice("warn", "Your sign-in cannot request deletions (its scope lacks data:delete)."));
  body.append(h("p", {}, "Only data of your own ownership periods is deleted; the deadline is 10 working days, " +
    "and a receipt says what was removed."), form, h("h2", {}, "Your deletion requests for this car"), list);

  let timer;
  const refresh = async () => {
    const { requests } = await api("/v1/deletions");
    const ours = requests.filter((r) => r.vin === vin);
    const cards = await Promise.all(ours.map(requestCard));
    clear(list).append(...(cards.length ? cards : [notice("info", "No deletion requests for this car.")]));
    clearTimeout(timer);
    // The receipt appears when the executor is done: look again while one is pending.
    if (ours.some((r) => r.status !== "done") && list.isConnected) timer = setTimeout(() => refresh().catch(() => {}), 1500);
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const categories = [...form.querySelectorAll("input[name=category]:checked")].map((i) => i.value);
    if (!categories.length) {
      status.textContent = "Pick at least one category.";
      return;
    }
    try {
      const r = await api(`/v1/vehicles/${vin}/deletions`, { method: "POST",
        body: { categories, from: iso(fromInput(form.from.value)), to: iso(fromInput(form.to.value)) } });
      status.textContent = `Deletion requested (${r.request_id}); deadline ${fmtTime(r.deadline)}.`;
      form.reset();
      await refresh();
    } catch (error) {
      status.replaceChildren(errorNotice(error));
    }
  });
  await refresh();
}
