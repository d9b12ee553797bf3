// A route on a plain canvas: no map tiles (nothing from another host), the path scaled to
// fit, start and end marked, a scale bar. Coarse positions (a grid of ~1 km) are drawn as
// the cells they are, not as a precise line.
const LAT = "Vehicle.CurrentLocation.Latitude";
const LON = "Vehicle.CurrentLocation.Longitude";
const NICE = [50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000];

// series rows (both signals) -> [{t, lat, lon}] in time order, one per moment with both
export function positions(rows) {
  const at = new Map();
  for (const r of rows) {
    if (r.signal !== LAT && r.signal !== LON) continue;
    const p = at.get(r.time) || { t: Date.parse(r.time) };
    p[r.signal === LAT ? "lat" : "lon"] = r.value;
    at.set(r.time, p);
  }
  return [...at.values()].filter((p) => p.lat != null && p.lon != null).sort((a, b) => a.t - b.t);
}

export const ROUTE_SIGNALS = [LAT, LON];

// Drawn whenever the canvas gets its size (also when first placed on the page, and at a
// change of screen width), so the caller may draw before the canvas is shown.
export function drawRoute(canvas, points, options = {}) {
  new ResizeObserver(() => paint(canvas, points, options)).observe(canvas);
}

function paint(canvas, points, { coarse = false } = {}) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (!width || !height) return;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  if (!points.length) return;
  // Equirectangular around the route's middle: fine at a city's scale.
  const mid = points.reduce((s, p) => s + p.lat, 0) / points.length;
  const kx = Math.cos((mid * Math.PI) / 180);
  const xs = points.map((p) => p.lon * kx), ys = points.map((p) => p.lat);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const pad = 28;
  const span = Math.max(x1 - x0, y1 - y0, 0.002);
  const scale = Math.min((width - 2 * pad) / span, (height - 2 * pad) / span);
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  const px = (p) => [width / 2 + (p.lon * kx - cx) * scale, height / 2 - (p.lat - cy) * scale];
  ctx.lineJoin = ctx.lineCap = "round";
  ctx.strokeStyle = "#0b5cad";
  ctx.lineWidth = 3;
  if (coarse) ctx.setLineDash([6, 6]);
  ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(...px(p)) : ctx.moveTo(...px(p))));
  ctx.stroke();
  ctx.setLineDash([]);
  if (coarse) {
    ctx.fillStyle = "rgba(11, 92, 173, 0.18)";
    const cell = 0.01 * scale;
    for (const key of new Set(points.map((p) => `${p.lat},${p.lon}`))) {
      const [lat, lon] = key.split(",").map(Number);
      const [x, y] = px({ lat, lon });
      ctx.fillRect(x - (cell * kx) / 2, y - cell / 2, cell * kx, cell);
    }
  }
  marker(ctx, px(points[0]), "#1b7f3b", "A");
  marker(ctx, px(points.at(-1)), "#a4161a", "B");
  scaleBar(ctx, scale, height);
}

function marker(ctx, [x, y], color, label) {
  ctx.fillStyle = color;
  ctx.beginPath();
  ctx.arc(x, y, 9, 0, 2 * Math.PI);
  ctx.fill();
  ctx.fillStyle = "#fff";
  ctx.font = "bold 11px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(label, x, y + 0.5);
}

function scaleBar(ctx, scale, height) {
  const metresPerPixel = 111_320 / scale;
  const metres = NICE.filter((m) => m / metresPerPixel <= 140).at(-1) || NICE[0];
  const length = metres / metresPerPixel;
  ctx.strokeStyle = ctx.fillStyle = "#1b1f24";
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(12, height - 14);
  ctx.lineTo(12 + length, height - 14);
  ctx.stroke();
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "left";
  ctx.textBaseline = "bottom";
  ctx.fillText(metres >= 1000 ? `${metres / 1000} km` : `${metres} m`, 12, height - 17);
}
