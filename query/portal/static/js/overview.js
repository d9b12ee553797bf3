// My vehicles, and per car an overview: ownership periods, the latest state, what data is
// held for when, and what was not collected and why.
import { api, catalog, session } from "./api.js";
import { fmtNum, fmtSpan, fmtTime, h, iso, notice, stat, table } from "./dom.js";

const SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current";
const ODOMETER = "Vehicle.TraveledDistance";
const DAY = 86400e3;

export async function vehicle(vin) {
  const { vehicles } = await api("/v1/vehicles");
  return vehicles.find((v) => v.vin === vin) || null;
}

function periodsTable(periods) {
  return table([
    { title: "Began with", value: (p) => p.kind },
    { title: "From", value: (p) => fmtTime(p.start) },
    { title: "Until", value: (p) => (p.end ? fmtTime(p.end) : "now (you own it)") },
  ], periods);
}

export async function carsPage(main) {
  main.append(h("h1", {}, "My vehicles"));
  const { vehicles } = await api("/v1/vehicles");
  if (!vehicles.length) {
    main.append(notice("info", "No vehicles: this sign-in owns or owned no car."));
    return;
  }
  for (const car of vehicles) {
    main.append(h("section", { class: "card vehicle", "data-vin": car.vin },
      h("h2", {}, h("a", { href: `#/car/${car.vin}` }, car.vin)),
      h("p", { class: "small muted" }, "Your ownership periods: you see this car's data only for these."),
      periodsTable(car.periods)));
  }
}

// The last value of `signal` in the quarter hour before `last` (the category's latest sample).
async function latest(vin, signal, last) {
  const end = Date.parse(last) + 1;
  const body = await api(`/v1/vehicles/${vin}/series`, {
    params: { from: iso(end - 15 * 60e3), to: iso(end), signal, page_size: 10000 },
  });
  return body.rows.at(-1) || null;
}

async function latestState(vin, coverage) {
  const byCategory = Object.fromEntries(coverage.map((c) => [c.category, c]));
  const one = async (label, category, signal, unit, digits) => {
    if (!session.has(category)) return stat(label, "—", `${category} is not in your sign-in's scope`);
    const held = byCategory[category];
    if (!held) return stat(label, "—", `no ${category} data`);
    const row = await latest(vin, signal, held.last);
    if (!row) return stat(label, "—", "not reported lately");
    return stat(label, `${fmtNum(row.value, digits)} ${unit}`, `at ${fmtTime(row.time)}`, row.value);
  };
  const shown = [await one("State of charge", "battery_charging", SOC, "%", 1),
    await one("Odometer", "vehicle_state", ODOMETER, "km", 1)];
  [shown[0].dataset.signal, shown[1].dataset.signal] = [SOC, ODOMETER];
  return h("div", { class: "grid", id: "latest" }, shown);
}

function dataTable(categories, coverage, consent) {
  const held = Object.fromEntries(coverage.map((c) => [c.category, c]));
  const state = Object.fromEntries(consent.categories.map((c) => [c.category, c]));
  return table([
    { title: "Category", value: (c) => c },
    { title: "In your sign-in", value: (c) => (session.has(c) ? "yes" : h("span", { class: "badge off" }, "not in scope")) },
    { title: "Collected now", value: (c) => consentBadge(state[c]) },
    { title: "Data from", value: (c) => (held[c] ? fmtTime(held[c].first) : "—") },
    { title: "Data until", value: (c) => (held[c] ? fmtTime(held[c].last) : "—") },
    { title: "Samples", num: true, value: (c) => (held[c] ? fmtNum(held[c].samples, 0) : "—") },
  ], categories, null, (c) => c);
}

export function consentBadge(s) {
  if (!s) return "—";
  const why = s.decision ? "your decision" : "default";
  return h("span", { class: `badge ${s.collected ? "on" : "off"}` }, `${s.mode} (${why})`);
}

async function notCollected(vin, car, consent) {
  const start = Math.max(Date.parse(car.periods[0].start), Date.now() - 91 * DAY);
  const body = await api(`/v1/vehicles/${vin}/not-collected`, {
    params: { from: iso(start), to: iso(Date.now() + 60e3) },
  });
  const totals = {};
  for (const d of body.days) {
    totals[d.category] ||= { category: d.category, samples: 0, reason: d.reason, first: d.day, last: d.day };
    const t = totals[d.category];
    t.samples += d.samples;
    t.first = d.day < t.first ? d.day : t.first;
    t.last = d.day > t.last ? d.day : t.last;
  }
  const state = Object.fromEntries(consent.categories.map((c) => [c.category, c]));
  const rows = Object.values(totals);
  const section = h("section", { id: "not-collected" }, h("h2", {}, "Not collected, and why"));
  if (!rows.length) {
    section.append(notice("ok", `Nothing was held back for want of consent since ${fmtTime(iso(start))}.`));
    return section;
  }
  section.append(
    h("p", {}, `Your car sent ${fmtNum(body.total, 0)} samples that were not stored because ` +
      "you had not allowed their category at the time. Only the counts are kept, never the values."),
    table([
      { title: "Category", value: (t) => t.category },
      { title: "Samples not collected", num: true, value: (t) => fmtNum(t.samples, 0) },
      { title: "Why", value: (t) => t.reason },
      { title: "Days", value: (t) => (t.first === t.last ? t.first : `${t.first} … ${t.last}`) },
      { title: "Now", value: (t) => consentBadge(state[t.category]) },
    ], rows, null, (t) => t.category),
    h("p", {}, h("a", { href: `#/car/${vin}/consent` }, "Change what is collected")));
  return section;
}

export async function overviewPage(body, vin) {
  body.append(h("h1", {}, `Vehicle ${vin}`));
  const [car, cat, cov, consent] = await Promise.all([
    vehicle(vin), catalog(), api(`/v1/vehicles/${vin}/coverage`), api(`/v1/vehicles/${vin}/consent`),
  ]);
  if (!car) {
    body.append(notice("error", "This vehicle is not among yours."));
    return;
  }
  const owned = car.periods;
  body.append(
    h("section", { id: "periods" }, h("h2", {}, "Your ownership"),
      h("p", { class: "small muted" }, `You see data from ${fmtSpan(owned[0].start, owned.at(-1).end)} only.`),
      periodsTable(owned)),
    h("section", {}, h("h2", {}, "Latest state"), await latestState(vin, cov.categories)),
    h("section", { id: "coverage" }, h("h2", {}, "Data held"),
      cov.categories.length ? null : notice("info", "No data of this car in your periods and categories yet."),
      dataTable(cat.categories, cov.categories, consent)),
    await notCollected(vin, car, consent));
}
