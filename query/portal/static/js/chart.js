// Time-series panels with uPlot (npm uplot, served by the platform): one panel per unit,
// all on the same time range with one synced cursor, so they read as one time axis.
import { h } from "./dom.js";

const COLORS = ["#0b5cad", "#c2410c", "#15803d", "#7e22ce", "#a4161a", "#0e7490"];

export function chartLibrary() {
  if (!window.uPlot) {
    throw new Error("the chart library (uPlot) did not load: this server has not fetched its " +
      "assets (deploy/setup.sh)");
  }
  return window.uPlot;
}

// rows: [{time, signal, value}] -> {x: seconds[], bySignal: {signal: (number|null)[]}}
export function align(rows, signals) {
  const times = [...new Set(rows.map((r) => Date.parse(r.time)))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const bySignal = Object.fromEntries(signals.map((s) => [s, new Array(times.length).fill(null)]));
  for (const r of rows) {
    if (r.signal in bySignal && r.value !== null) bySignal[r.signal][index.get(Date.parse(r.time))] = r.value;
  }
  return { x: times.map((t) => t / 1000), bySignal };
}

// Ticks of a span of days or months read as dates, of minutes as times of day.
function tickLabel(seconds, span) {
  const text = new Date(seconds * 1000).toISOString();
  return span > 2 * 86400 ? text.slice(0, 10) : text.slice(11, 19);
}

// panels: [{id, title, unit, flag?, series: [{signal, label}]}]; marks: [{at, end?, label}]
// in seconds. Returns the uPlot instances (their `data` is exactly what is drawn).
// ticks: where the time axis is labelled (default: uPlot's choice), label(seconds) how.
export function drawPanels(container, aligned, panels, { range, marks = [], syncKey, ticks, label }) {
  const name = label || ((v) => tickLabel(v, range[1] - range[0]));
  const uPlot = chartLibrary();
  const plots = [];
  const width = () => Math.max(280, container.clientWidth - 12);
  panels.forEach((panel, n) => {
    const last = n === panels.length - 1;
    const box = h("div", { class: "chart-panel", "data-panel": panel.id },
      h("h3", {}, panel.title));
    container.append(box);
    const series = [
      { label: label ? "When" : "Time (UTC)", value: (u, v) => (v === null ? "—" : name(v)) },
      ...panel.series.map((s, i) => ({
        label: s.label,
        stroke: COLORS[(n + i) % COLORS.length],
        width: 1.6,
        spanGaps: true,
        points: { show: panel.bars ? false : aligned.x.length < width() / 5 }, // dots where they fit
        fill: panel.bars ? `${COLORS[(n + i) % COLORS.length]}99` : undefined,
        paths: panel.flag ? uPlot.paths.stepped({ align: 1 })
          : panel.bars ? uPlot.paths.bars({ size: [0.6, 48] }) : undefined,
        value: (u, v) => (v === null ? "—" : panel.flag ? (v ? "on" : "off") : `${v} ${panel.unit}`),
      })),
    ];
    const opts = {
      width: width(),
      height: panel.flag ? 110 : panel.height || 150,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      scales: {
        x: { time: true, range: () => range },
        y: panel.flag ? { range: [-0.15, 1.15] }
          : panel.bars ? { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.1 : 1] } : { auto: true },
      },
      axes: [
        // Time labels in UTC on the bottom panel only: the panels share one time axis.
        { size: last ? 34 : 10, space: 70, splits: ticks ? () => ticks : undefined,
          values: (u, splits) => splits.map((v) => (last ? name(v) : "")) },
        { size: 56, label: panel.unit, labelSize: 16,
          values: panel.flag ? (u, splits) => splits.map((v) => (v === 1 ? "on" : v === 0 ? "off" : "")) : undefined,
          splits: panel.flag ? () => [0, 1] : undefined },
      ],
      series,
      cursor: { sync: { key: syncKey }, drag: { x: false, y: false } },
      legend: { live: true },
      hooks: { draw: [(u) => drawMarks(u, marks)] },
    };
    const data = [aligned.x, ...panel.series.map((s) => aligned.bySignal[s.signal])];
    const plot = new uPlot(opts, data, box);
    plot.signals = [null, ...panel.series.map((s) => s.signal)];
    plots.push(plot);
  });
  new ResizeObserver(() => plots.forEach((p) => p.setSize({ width: width(), height: p.height })))
    .observe(container);
  return plots;
}

// The moment asked about (a line) and detected episodes (a band) on every panel.
function drawMarks(u, marks) {
  const { ctx, bbox } = u;
  ctx.save();
  for (const m of marks) {
    const x0 = u.valToPos(m.at, "x", true);
    const x1 = m.end && m.end > m.at ? u.valToPos(m.end, "x", true) : null;
    if (x1 !== null) {
      ctx.fillStyle = "rgba(164, 22, 26, 0.12)";
      ctx.fillRect(x0, bbox.top, Math.max(2, x1 - x0), bbox.height);
    } else {
      ctx.strokeStyle = "#a4161a";
      ctx.setLineDash([5, 4]);
      ctx.lineWidth = 1.5 * devicePixelRatio;
      ctx.beginPath();
      ctx.moveTo(x0, bbox.top);
      ctx.lineTo(x0, bbox.top + bbox.height);
      ctx.stroke();
    }
  }
  ctx.restore();
}

// The panels' points as (signal, time ms, value): what the tests compare with the API.
export function drawnPoints(plots) {
  const points = [];
  for (const p of plots) {
    for (let i = 1; i < p.data.length; i += 1) {
      p.data[i].forEach((v, j) => {
        if (v !== null) points.push([p.signals[i], Math.round(p.data[0][j] * 1000), v]);
      });
    }
  }
  return points;
}
