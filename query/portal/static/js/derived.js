// What the platform derives per car (issue 16): a month of speed from the minute rollup,
// trips with their route, charging sessions, monthly statistics, battery health. A tab
// appears only when the service offers its endpoint (and parameter: its OpenAPI document
// says so), so an older service shows no broken page.
import { allPages, api, session } from "./api.js";
import { align, drawnPoints, drawPanels } from "./chart.js";
import { append, clear, fmtNum, fmtTime, fromInput, h, iso, notice, table, timeField } from "./dom.js";
import { drawRoute, positions, ROUTE_SIGNALS } from "./route.js";
import { vehicle } from "./overview.js";
import { errorNotice } from "./app.js";

const DAY = 86400e3;

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

function place(p) {
  return p ? `${fmtNum(p.lat, 4)}, ${fmtNum(p.lon, 4)}` : "—";
}

function withheldNotice(body) {
  return body.withheld?.length
    ? notice("warn", `Not shown, not in your sign-in's scope: ${body.withheld.join(", ")}.`) : null;
}

// A range form (default: the last 30 days of the car's ownership) that calls show(from, to).
async function rangeForm(body, vin, params, show) {
  const car = await vehicle(vin);
  const end = car?.periods.at(-1).end ? Date.parse(car.periods.at(-1).end) : Date.now() + 60e3;
  const start = Math.max(car ? Date.parse(car.periods[0].start) : 0, end - 30 * DAY);
  const form = h("form", { class: "row", id: "range-form" },
    timeField("From", params.get("from") || start, "from"), timeField("To", params.get("to") || end, "to"),
    h("button", { type: "submit" }, "Show"));
  const out = h("div", { id: "derived-result" });
  const run = async () => {
    clear(out).append(h("p", { class: "muted" }, "Loading…"));
    try {
      const from = fromInput(form.from.value), to = fromInput(form.to.value);
      const shown = await show(from, to);
      clear(out);
      append(out, [shown]);
    } catch (error) {
      clear(out).append(errorNotice(error));
    }
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); run(); });
  body.append(form, out);
  await run();
}

// -- trips ------------------------------------------------------------------------------

async function routeOf(vin, trip, holder) {
  clear(holder).append(h("h2", { id: "route-h" }, `Route: ${fmtTime(trip.start)} → ${fmtTime(trip.end)}`));
  if (!session.has("location")) {
    holder.append(notice("warn", "Location is not in your sign-in's scope: no route to draw."));
    return;
  }
  const end = iso(Date.parse(trip.end) + 1);
  const { items } = await allPages(`/v1/vehicles/${vin}/series`,
    { from: trip.start, to: end, signal: ROUTE_SIGNALS, page_size: 10000 }, "rows");
  const points = positions(items);
  // Coarse consent stores positions rounded to a 0.01° grid (~1.1 km).
  const coarse = points.length > 0 && points.every((p) =>
    [p.lat, p.lon].every((v) => Math.abs(v * 100 - Math.round(v * 100)) < 1e-6));
  window.portal.route = { start: trip.start, end: trip.end, points, coarse };
  if (!points.length) {
    holder.append(notice("info", "No positions for this trip: location was not collected then " +
      "(no location consent at the time), or it was deleted."));
    return;
  }
  const canvas = h("canvas", { class: "route", id: "route", role: "img",
    "aria-label": `Route of ${points.length} positions from ${place(points[0])} to ${place(points.at(-1))}` });
  holder.append(canvas,
    h("p", { class: "small muted", id: "route-note" }, coarse
      ? `${points.length} coarse positions: your location consent was coarse, so each is a cell of about 1 km (dashed).`
      : `${points.length} precise positions, as your location consent allowed. A: start, B: end. No map: nothing is loaded from elsewhere.`));
  drawRoute(canvas, points, { coarse });
}

export async function tripsPage(body, vin, params) {
  body.append(h("h1", {}, "Trips"));
  const routeHolder = h("section", { id: "route-section" });
  await rangeForm(body, vin, params, async (from, to) => {
    const first = await api(`/v1/vehicles/${vin}/trips`, { params: { from: iso(from), to: iso(to), page_size: 500 } });
    const rest = first.next_cursor ? (await allPages(`/v1/vehicles/${vin}/trips`,
      { from: iso(from), to: iso(to), page_size: 500, cursor: first.next_cursor }, "trips")).items : [];
    const trips = [...first.trips, ...rest].reverse(); // newest first
    if (!trips.length) return notice("info", `No trips between ${fmtTime(from)} and ${fmtTime(to)}.`);
    const button = (t) => h("button", { type: "button", class: "secondary", "data-start": t.start,
      onclick: () => routeOf(vin, t, routeHolder).catch((e) => clear(routeHolder).append(errorNotice(e))) }, "Route");
    const shown = h("div", {}, withheldNotice(first),
      table([
        { title: "Start", value: (t) => fmtTime(t.start) },
        { title: "Duration", value: (t) => fmtDuration(t.duration_s) + (t.complete ? "" : " (under way)") },
        { title: "km", num: true, value: (t) => fmtNum(t.distance_km, 1) },
        { title: "Avg km/h", num: true, value: (t) => fmtNum(t.avg_speed_kmh, 0) },
        { title: "Top km/h", num: true, value: (t) => fmtNum(t.max_speed_kmh, 0) },
        { title: "Wh", num: true, value: (t) => fmtNum(t.energy_wh, 0) },
        { title: "Wh/km", num: true, value: (t) => fmtNum(t.efficiency_wh_per_km, 0) },
        { title: "From", value: (t) => place(t.start_place) },
        { title: "To", value: (t) => place(t.end_place) },
        { title: "Hard brakes / ABS / ESC", value: (t) => `${t.hard_brakes} / ${t.abs_events} / ${t.esc_events}` },
        { title: "", value: button },
      ], trips, `${trips.length} trip${trips.length === 1 ? "" : "s"}, newest first`, (t) => t.start),
      routeHolder);
    await routeOf(vin, trips[0], routeHolder).catch((e) => clear(routeHolder).append(errorNotice(e)));
    return shown;
  });
}

// -- charging -------------------------------------------------------------------------------

export async function chargingPage(body, vin, params) {
  body.append(h("h1", {}, "Charging sessions"));
  await rangeForm(body, vin, params, async (from, to) => {
    const { items } = await allPages(`/v1/vehicles/${vin}/charging-sessions`, { from: iso(from), to: iso(to), page_size: 500 }, "sessions");
    if (!items.length) return notice("info", `No charging sessions between ${fmtTime(from)} and ${fmtTime(to)}.`);
    const head = await api(`/v1/vehicles/${vin}/charging-sessions`, { params: { from: iso(from), to: iso(to), page_size: 1 } });
    const total = items.reduce((s, x) => s + x.cost, 0);
    return h("div", {}, withheldNotice(head),
      h("p", {}, `${items.length} session${items.length === 1 ? "" : "s"}, ${fmtNum(items.reduce((s, x) => s + x.energy_kwh, 0), 1)} kWh, ` +
        `${fmtNum(total, 2)} ${head.currency} at the time-of-use tariff.`),
      table([
        { title: "Start", value: (x) => fmtTime(x.start) },
        { title: "Duration", value: (x) => fmtDuration(x.duration_s) + (x.complete ? "" : " (charging)") },
        { title: "Charge", value: (x) => `${fmtNum(x.soc_start, 0)} → ${fmtNum(x.soc_end, 0)} %` },
        { title: "kWh", num: true, value: (x) => fmtNum(x.energy_kwh, 2) },
        { title: "Peak kW", num: true, value: (x) => fmtNum(x.peak_kw, 1) },
        { title: "AC/DC", value: (x) => x.current },
        { title: `Cost (${head.currency})`, num: true, value: (x) => fmtNum(x.cost, 2) },
        { title: "Capacity kWh", num: true, value: (x) => fmtNum(x.capacity_kwh, 1) },
        { title: "Place", value: (x) => place(x.place) },
      ], items.slice().reverse(), "newest first", (x) => x.start));
  });
}

// -- monthly statistics ---------------------------------------------------------------------

// A month's bar stands in its middle; the axis runs from the first month's start to the
// last one's end.
function monthMiddle(month) {
  return Date.parse(`${month}-15T00:00:00Z`) / 1000;
}

export async function statsPage(body, vin, params) {
  body.append(h("h1", {}, "Monthly statistics"));
  const defaults = new URLSearchParams(params);
  if (!defaults.get("from")) defaults.set("from", iso(Date.now() - 365 * DAY));
  await rangeForm(body, vin, defaults, async (from, to) => {
    const res = await api(`/v1/vehicles/${vin}/stats/monthly`, { params: { from: iso(from), to: iso(to) } });
    const months = res.months;
    if (!months.length) return notice("info", `No trips or charging between ${fmtTime(from)} and ${fmtTime(to)}.`);
    const chart = h("div", { id: "stats-chart" });
    const holder = h("div", {}, withheldNotice(res), chart,
      table([
        { title: "Month", value: (x) => x.month },
        { title: "Trips", num: true, value: (x) => fmtNum(x.trips, 0) },
        { title: "Driving", value: (x) => fmtDuration(x.driving_s) },
        { title: "km", num: true, value: (x) => fmtNum(x.distance_km, 1) },
        { title: "kWh used", num: true, value: (x) => fmtNum(x.energy_wh === null ? null : x.energy_wh / 1000, 1) },
        { title: "Wh/km", num: true, value: (x) => fmtNum(x.efficiency_wh_per_km, 0) },
        { title: "Charging", value: (x) => fmtDuration(x.charging_s) },
        { title: "kWh charged", num: true, value: (x) => fmtNum(x.charged_kwh, 1) },
        { title: `Cost (${res.currency})`, num: true, value: (x) => fmtNum(x.charging_cost, 2) },
      ], months, null, (x) => x.month));
    requestAnimationFrame(() => {
      const rows = months.flatMap((x) => [
        { time: `${x.month}-15T00:00:00Z`, signal: "distance", value: x.distance_km },
        { time: `${x.month}-15T00:00:00Z`, signal: "charged", value: x.charged_kwh }]);
      const ticks = months.map((x) => monthMiddle(x.month));
      const range = [ticks[0] - 15 * 86400, ticks.at(-1) + 16 * 86400];
      drawPanels(chart, align(rows, ["distance", "charged"]), [
        { id: "distance", title: "Distance per month", unit: "km", bars: true, series: [{ signal: "distance", label: "km" }] },
        { id: "charged", title: "Energy charged per month", unit: "kWh", bars: true, series: [{ signal: "charged", label: "kWh" }] },
      ], { range, syncKey: "months", ticks, label: (v) => new Date(v * 1000).toISOString().slice(0, 7) });
    });
    return holder;
  });
}

// -- battery health -------------------------------------------------------------------------

export async function batteryPage(body, vin, params) {
  body.append(h("h1", {}, "Battery health"));
  const defaults = new URLSearchParams(params);
  if (!defaults.get("from")) defaults.set("from", iso(Date.now() - 365 * DAY));
  await rangeForm(body, vin, defaults, async (from, to) => {
    const res = await api(`/v1/vehicles/${vin}/battery`, { params: { from: iso(from), to: iso(to) } });
    const chart = h("div", { id: "capacity-chart" });
    const holder = h("div", {},
      h("h2", {}, "Usable capacity"),
      res.capacity.length
        ? h("p", {}, "Estimated from each charging session that added enough charge: the energy added per 100 % of charge.")
        : notice("info", "No charging session in this range added enough charge to estimate the capacity."),
      res.capacity.length ? chart : null,
      res.capacity_by_month.length ? table([
        { title: "Month", value: (x) => x.month },
        { title: "Median kWh", num: true, value: (x) => fmtNum(x.median_kwh, 1) },
        { title: "Sessions", num: true, value: (x) => String(x.sessions) },
      ], res.capacity_by_month, null, (x) => x.month) : null,
      h("h2", {}, "Idle drain"),
      res.idle_drain.length ? table([
        { title: "Month", value: (x) => x.month },
        { title: "Parked (h)", num: true, value: (x) => fmtNum(x.parked_hours, 1) },
        { title: "Charge lost (%)", num: true, value: (x) => fmtNum(x.soc_lost_pct, 1) },
        { title: "% per day parked", num: true, value: (x) => fmtNum(x.pct_per_day, 2) },
      ], res.idle_drain, null, (x) => x.month) : notice("info", "No parked time in this range."));
    if (res.capacity.length) {
      requestAnimationFrame(() => {
        const rows = res.capacity.map((x) => ({ time: x.time, signal: "capacity", value: x.capacity_kwh }));
        const times = rows.map((r) => Date.parse(r.time) / 1000);
        const pad = Math.max(3600, (Math.max(...times) - Math.min(...times)) * 0.05);
        drawPanels(chart, align(rows, ["capacity"]), [{ id: "capacity", title: "Usable capacity per session",
          unit: "kWh", series: [{ signal: "capacity", label: "Capacity" }] }],
        { range: [Math.min(...times) - pad, Math.max(...times) + pad], syncKey: "battery" });
      });
    }
    return holder;
  });
}

// -- month view ------------------------------------------------------------------------------

const MONTH_SIGNAL = "Vehicle.Speed";
const MOST_BUCKETS = 43200; // the service's default VDP_QUERY_MAX_BUCKETS is larger

export async function monthPage(body, vin, params) {
  body.append(h("h1", {}, "Speed over a month"));
  await rangeForm(body, vin, params, async (from, to) => {
    if (!session.has("driving")) return notice("warn", "Driving is not in your sign-in's scope: no speed to show.");
    // Whole minutes: the service reads those from its minute rollup.
    const resolution = 60 * Math.max(1, Math.ceil((to - from) / 1000 / 60 / MOST_BUCKETS));
    const res = await api(`/v1/vehicles/${vin}/series`, { params: { from: iso(from), to: iso(to),
      signal: MONTH_SIGNAL, resolution, shape: "columns" } });
    const [speed] = res.columns;
    if (!speed) return notice("info", `No speed between ${fmtTime(from)} and ${fmtTime(to)}.`);
    const chart = h("div", { class: "charts", id: "month-chart", role: "img",
      "aria-label": `Lowest, mean and highest speed per ${resolution / 60}-minute bucket from ${fmtTime(from)} to ${fmtTime(to)}` });
    const holder = h("div", {},
      h("p", { class: "small muted", id: "month-summary" },
        `${fmtNum(speed.buckets, 0)} buckets of ${resolution / 60} minute${resolution === 60 ? "" : "s"}: ` +
        "the lowest, mean and highest speed in each (columns from the owner API)."), chart);
    requestAnimationFrame(() => {
      const aligned = { x: speed.time,
        bySignal: { min: speed.min, avg: speed.avg, max: speed.max } };
      const plots = drawPanels(chart, aligned, [{ id: "speed", title: "Speed", unit: "km/h",
        series: [{ signal: "min", label: "Lowest" }, { signal: "avg", label: "Mean" }, { signal: "max", label: "Highest" }] }],
      { range: [from.getTime() / 1000, to.getTime() / 1000], syncKey: "month" });
      window.portal.charts.month = { from: iso(from), to: iso(to), resolution, points: drawnPoints(plots) };
    });
    return holder;
  });
}

const VIEWS = [
  ["month", "Month", monthPage, "/v1/vehicles/{vin}/series", "shape"],
  ["trips", "Trips", tripsPage, "/v1/vehicles/{vin}/trips"],
  ["charging", "Charging", chargingPage, "/v1/vehicles/{vin}/charging-sessions"],
  ["stats", "Statistics", statsPage, "/v1/vehicles/{vin}/stats/monthly"],
  ["battery", "Battery", batteryPage, "/v1/vehicles/{vin}/battery"],
];

let offered;
// [slug, title, page] of the derived views this service offers.
export async function derivedPages() {
  offered ||= fetch("/openapi.json").then((r) => r.json())
    .then((doc) => VIEWS.filter(([, , , path, param]) => path in doc.paths &&
      (!param || (doc.paths[path].get?.parameters || []).some((x) => x.name === param)))
      .map((v) => v.slice(0, 3)))
    .catch(() => []);
  return offered;
}
