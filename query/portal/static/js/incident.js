// The incident view: speed, pedals, brake pressure, acceleration and ABS/ESC on one time
// axis for the minutes around a moment or a detected episode, and the incident report
// (zip) with its digests checked in the browser.
import { allPages, api, filenameOf, request, saveLink, session } from "./api.js";
import { drawnPoints, drawPanels, align } from "./chart.js";
import { append, clear, fmtNum, fmtTime, fromInput, h, iso, live, notice, table, toInput } from "./dom.js";
import { readZip, sha256hex } from "./zip.js";
import { errorNotice } from "./app.js";

const PANELS = [
  { id: "speed", title: "Speed", unit: "km/h", series: [{ signal: "Vehicle.Speed", label: "Speed" }] },
  { id: "pedals", title: "Pedals", unit: "%", series: [
    { signal: "Vehicle.Chassis.Brake.PedalPosition", label: "Brake pedal" },
    { signal: "Vehicle.Chassis.Accelerator.PedalPosition", label: "Accelerator pedal" }] },
  { id: "pressure", title: "Brake pressure", unit: "kPa",
    series: [{ signal: "Vehicle.Chassis.Brake.MasterCylinderPressure", label: "Brake pressure" }] },
  { id: "accel", title: "Longitudinal acceleration", unit: "m/s²",
    series: [{ signal: "Vehicle.Acceleration.Longitudinal", label: "Acceleration" }] },
  { id: "flags", title: "ABS / ESC engaged", unit: "", flag: true, series: [
    { signal: "Vehicle.ADAS.ABS.IsEngaged", label: "ABS" },
    { signal: "Vehicle.ADAS.ESC.IsEngaged", label: "ESC" }] },
];
export const INCIDENT_SIGNALS = PANELS.flatMap((p) => p.series.map((s) => s.signal));
const EPISODES = new Set(["hard_braking", "abs", "esc", "emergency_brake"]);
const DAY = 86400e3;

async function recentEvents(vin) {
  const cov = await api(`/v1/vehicles/${vin}/coverage`);
  if (!cov.categories.length) return { events: [], last: null };
  const last = Math.max(...cov.categories.map((c) => Date.parse(c.last))) + 1000;
  const first = Math.min(...cov.categories.map((c) => Date.parse(c.first)));
  const from = Math.max(first, last - 91 * DAY);
  const { items } = await allPages(`/v1/vehicles/${vin}/events`, { from: iso(from), to: iso(last), page_size: 1000 }, "events", 5);
  return { events: items.reverse(), last }; // newest first
}

function eventLabel(e) {
  const peak = e.peak === null ? "" : `, peak ${fmtNum(e.peak, 1)}`;
  return `${e.kind.replace("_", " ")} at ${fmtTime(e.time)}${peak}`;
}

export async function incidentPage(body, vin, params, config) {
  body.append(h("h1", {}, "What happened around a moment"));
  const { events, last } = await recentEvents(vin);
  const episodes = events.filter((e) => EPISODES.has(e.kind));
  const at = params.get("at") ? new Date(params.get("at"))
    : episodes.length ? new Date(episodes[0].time) : last ? new Date(last - 60e3) : new Date();
  const form = h("form", { class: "row", id: "moment" },
    h("label", {}, "Moment (UTC)", h("input", { type: "datetime-local", step: "1", name: "at", value: toInput(at), required: true })),
    h("label", {}, "Minutes before", h("input", { type: "number", name: "before", min: "0", max: String(config.max_report_minutes), value: params.get("before") || "2" })),
    h("label", {}, "Minutes after", h("input", { type: "number", name: "after", min: "0", max: String(config.max_report_minutes), value: params.get("after") || "1" })),
    h("button", { type: "submit" }, "Show"));
  const eventList = h("div", { class: "events", role: "group", "aria-label": "Detected events" },
    episodes.slice(0, 30).map((e) => h("button", { type: "button", "data-time": e.time, "data-kind": e.kind,
      "aria-pressed": "false", onclick: () => { form.at.value = toInput(e.time); show(new Date(e.time)); } }, eventLabel(e))));
  const result = h("div", { id: "incident-result" });
  body.append(
    h("section", {}, h("h2", {}, "Detected hard braking, ABS and ESC"),
      episodes.length ? eventList : !session.has("driving")
        ? notice("warn", "Episodes are driving data, and driving is not in your sign-in's scope.")
        : notice("info", "No hard-braking, ABS or ESC episode in your data of the last 91 days. Pick a moment instead.")),
    h("section", {}, h("h2", {}, "Pick a moment"), form),
    result);

  // exact: an episode's own time (to the millisecond; the input holds whole seconds)
  async function show(exact) {
    const moment = exact || fromInput(form.at.value);
    const before = Number(form.before.value), after = Number(form.after.value);
    for (const b of eventList.querySelectorAll("button")) {
      b.setAttribute("aria-pressed", String(Date.parse(b.dataset.time) === moment.getTime()));
    }
    history.replaceState(null, "", `#/car/${vin}/incident?at=${iso(moment)}&before=${before}&after=${after}`);
    clear(result).append(h("p", { class: "muted" }, "Loading…"));
    try {
      await drawIncident(result, vin, moment, before, after, events);
    } catch (error) {
      clear(result).append(errorNotice(error));
    }
  }
  form.addEventListener("submit", (event) => { event.preventDefault(); show(); });
  await show(params.get("at") ? at : episodes.length ? new Date(episodes[0].time) : null);
}

async function drawIncident(result, vin, moment, before, after, events) {
  const from = new Date(moment.getTime() - before * 60e3), to = new Date(moment.getTime() + after * 60e3);
  const { items: rows, complete } = await allPages(`/v1/vehicles/${vin}/series`,
    { from: iso(from), to: iso(to), signal: INCIDENT_SIGNALS, page_size: 5000 }, "rows");
  clear(result);
  result.append(h("h2", {}, `${fmtTime(from)} → ${fmtTime(to)}`));
  if (!rows.length) {
    result.append(notice("warn", `No driving data between ${fmtTime(from)} and ${fmtTime(to)}: ` +
      "the car sent none then, it was not yours then, or it was deleted. Pick another moment."));
  } else {
    const inWindow = events.filter((e) => Date.parse(e.end) >= from && Date.parse(e.time) <= to);
    const marks = [{ at: moment.getTime() / 1000 },
      ...inWindow.map((e) => ({ at: Date.parse(e.time) / 1000, end: Date.parse(e.end) / 1000 + 0.5 }))];
    const charts = h("div", { class: "charts", id: "incident-chart", role: "img",
      "aria-label": `Speed, pedals, brake pressure, acceleration and ABS/ESC from ${fmtTime(from)} to ${fmtTime(to)}; the data table below has every point` });
    result.append(charts);
    const aligned = align(rows, INCIDENT_SIGNALS);
    const plots = drawPanels(charts, aligned, PANELS, {
      range: [from.getTime() / 1000, to.getTime() / 1000], marks, syncKey: "incident" });
    window.portal.charts.incident = { from: iso(from), to: iso(to), plots, points: drawnPoints(plots) };
    append(result, [
      h("p", { class: "small muted", id: "incident-summary" },
        `${rows.length} points from the owner API (${complete ? "all of them" : "the first pages"}); `,
        "the dashed line is the moment picked, shaded bands are detected episodes."),
      inWindow.length ? table([
        { title: "Episode", value: (e) => e.kind },
        { title: "From", value: (e) => fmtTime(e.time) },
        { title: "To", value: (e) => fmtTime(e.end) },
        { title: "Peak", num: true, value: (e) => fmtNum(e.peak, 2) },
        { title: "Detail", value: (e) => e.detail },
      ], inWindow) : null,
      dataTable(aligned)]);
  }
  result.append(reportSection(vin, moment, before, after));
}

function dataTable(aligned) {
  const columns = [{ title: "Time (UTC)", value: (i) => new Date(aligned.x[i] * 1000).toISOString().slice(11, 23) },
    ...PANELS.flatMap((p) => p.series.map((s) => ({ title: `${s.label}${p.unit ? ` (${p.unit})` : ""}`, num: true,
      value: (i) => { const v = aligned.bySignal[s.signal][i]; return v === null ? "" : p.flag ? (v ? "on" : "off") : String(v); } })))];
  const shown = aligned.x.slice(0, 2000).map((_, i) => i);
  return h("details", {}, h("summary", {}, `The data as a table (${aligned.x.length} moments)`),
    table(columns, shown, shown.length < aligned.x.length ? `first ${shown.length} moments` : null));
}

function reportSection(vin, moment, before, after) {
  const status = live();
  const out = h("div", { id: "report-result" });
  const button = h("button", { type: "button", id: "download-report", onclick: async () => {
    button.disabled = true;
    status.textContent = "Building the report…";
    clear(out);
    try {
      await downloadReport(vin, moment, before, after, out);
      status.textContent = "";
    } catch (error) {
      status.textContent = "";
      out.append(errorNotice(error));
    } finally {
      button.disabled = false;
    }
  } }, "Download the incident report (zip)");
  return h("section", { id: "report" }, h("h2", {}, "Incident report"),
    h("p", {}, "Everything your sign-in allows for these minutes, one CSV per category, with a manifest of " +
      "SHA-256 digests so you can show it was not altered."),
    session.has("driving") ? null : notice("warn", "Your sign-in lacks the driving category: the report will say it is left out."),
    button, status, out);
}

async function downloadReport(vin, moment, before, after, out) {
  const res = await request(`/v1/vehicles/${vin}/incident-report`,
    { params: { at: iso(moment), before_minutes: before, after_minutes: after } });
  const blob = await res.blob();
  const name = filenameOf(res.headers, `incident_${vin}.zip`);
  const announced = res.headers.get("X-Manifest-SHA256");
  const entries = readZip(await blob.arrayBuffer());
  const manifestBytes = await entries.get("manifest.json")();
  const manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  const manifestOk = (await sha256hex(manifestBytes)) === announced;
  const files = [];
  for (const f of manifest.files) {
    const got = entries.has(f.name) ? await sha256hex(await entries.get(f.name)()) : "missing";
    files.push({ ...f, ok: got === f.sha256 });
  }
  const link = saveLink(blob, name, `Save ${name} again`);
  append(out, [
    manifest.complete ? notice("ok", "Complete report: asked again, it is the same file byte for byte.")
      : notice("warn", `Partial report: the pipeline may still be storing these minutes (complete from ${fmtTime(manifest.complete_from)}).`),
    h("p", {}, "Manifest SHA-256 (also sent as X-Manifest-SHA256): ",
      h("span", { class: "mono", id: "manifest-digest" }, announced), " ",
      manifestOk ? h("span", { class: "ok-mark" }, "✓ matches the manifest") : h("span", { class: "bad-mark" }, "✗ does not match")),
    manifest.not_allowed?.length ? notice("warn", `Left out (not in your sign-in): ${manifest.not_allowed.join(", ")}`) : null,
    table([
      { title: "File", value: (f) => f.name },
      { title: "Rows", num: true, value: (f) => fmtNum(f.rows, 0) },
      { title: "Bytes", num: true, value: (f) => fmtNum(f.bytes, 0) },
      { title: "SHA-256", value: (f) => h("span", { class: "mono" }, f.sha256) },
      { title: "Checked here", value: (f) => (f.ok ? h("span", { class: "ok-mark" }, "✓") : h("span", { class: "bad-mark" }, "✗")) },
    ], files),
    h("p", {}, link)]);
  link.click();
}
