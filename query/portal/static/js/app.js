// The portal's shell: hash routes, the header (who is signed in, until when), errors.
import { ApiError, forgetCaches, portalConfig, session } from "./api.js";
import { append, clear, h, notice } from "./dom.js";
import { signInPage } from "./signin.js";
import { carsPage, overviewPage } from "./overview.js";
import { incidentPage } from "./incident.js";
import { consentPage, deletionPage } from "./rights.js";
import { exportPage } from "./exports.js";
import { accessLogPage } from "./accesslog.js";
import { derivedPages } from "./derived.js";
import { drawnPoints } from "./chart.js";

// Pages of one car, in the order of its tabs; the derived views (trips, charging, …) those
// the service offers (derived.js).
async function carTabList() {
  return [
    ["", "Overview", overviewPage],
    ["incident", "Incident", incidentPage],
    ...(await derivedPages()),
    ["consent", "Consent", consentPage],
    ["deletion", "Deletion", deletionPage],
    ["export", "Export", exportPage],
  ];
}

// What the charts hold, for scripts and the browser tests (they compare it with the API).
window.portal = { charts: {}, drawnPoints };

const main = document.getElementById("main");
const banner = document.getElementById("banner");

export function showBanner(text, kind = "warn") {
  banner.className = `banner ${kind}`;
  banner.textContent = text;
  banner.hidden = !text;
}

function parseHash() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query) };
}

export function go(path) {
  location.hash = `#/${path}`;
}

function header() {
  const nav = clear(document.getElementById("nav"));
  const who = clear(document.getElementById("who"));
  if (!session.token) return;
  nav.append(h("a", { href: "#/cars" }, "My vehicles"), h("a", { href: "#/access-log" }, "Access log"));
  const until = session.expires;
  append(who, [
    h("span", {}, "Signed in as ", h("strong", { class: "mono" }, session.owner)),
    until ? h("span", { class: "small" }, `token valid until ${until.toISOString().slice(11, 19)} UTC`) : null,
    h("button", { class: "secondary", type: "button", onclick: signOut }, "Sign out"),
  ]);
}

function signOut() {
  session.clear();
  forgetCaches();
  showBanner("");
  go("signin");
}

function carTabs(tabs, vin, current) {
  return h("nav", { class: "tabs", "aria-label": "This vehicle" },
    tabs.map(([slug, title]) => h("a", {
      href: `#/car/${encodeURIComponent(vin)}${slug ? `/${slug}` : ""}`,
      "aria-current": slug === current ? "page" : null,
    }, title)));
}

// Errors as the owner should read them: what happened and what to do.
export function errorNotice(error) {
  if (error instanceof ApiError) {
    const advice = {
      401: "Sign in again.",
      403: "Your sign-in does not allow this. Sign in with a token whose scope includes it.",
      404: "This vehicle is not among yours, or nothing of yours lies in that range.",
    }[error.status];
    return notice("error", h("strong", {}, `${error.title} (${error.status}): `), error.detail,
      advice ? h("div", {}, advice) : null);
  }
  return notice("error", h("strong", {}, "Something went wrong: "), String(error.message || error));
}

let rendering = 0;

async function render() {
  const mine = ++rendering;
  const { parts, params } = parseHash();
  header();
  clear(main);
  const config = await portalConfig();
  if (config.missing_assets.length) {
    showBanner(`This server lacks the portal's assets ${config.missing_assets.join(", ")}: ` +
      "charts and /docs will not work until deploy/setup.sh has fetched them.", "error");
  }
  if (!session.token || parts[0] === "signin") {
    await signInPage(main, config, params);
    return focusHeading(mine);
  }
  try {
    if (parts[0] === "car" && parts[1]) {
      const vin = parts[1];
      const slug = parts[2] || "";
      const tabs = await carTabList();
      const tab = tabs.find(([s]) => s === slug) || tabs[0];
      main.append(carTabs(tabs, vin, tab[0]));
      const body = h("div");
      main.append(body);
      await tab[2](body, vin, params, config);
    } else if (parts[0] === "access-log") {
      await accessLogPage(main, params);
    } else {
      await carsPage(main);
    }
  } catch (error) {
    if (mine === rendering) main.append(errorNotice(error));
  }
  focusHeading(mine);
}

function focusHeading(mine) {
  if (mine !== rendering) return;
  // A new page: keyboard and screen-reader users start at its heading.
  main.querySelector("h1")?.setAttribute("tabindex", "-1");
  main.querySelector("h1")?.focus({ preventScroll: false });
}

window.addEventListener("vdp-unauthorized", (event) => {
  const detail = event.detail?.detail || "";
  const expired = /expired/i.test(detail);
  session.clear();
  forgetCaches();
  showBanner(expired
    ? "Your sign-in has expired. Sign in again to continue."
    : `Your sign-in is not valid any more (${detail}). Sign in again.`, "error");
  go("signin");
});

window.addEventListener("hashchange", render);
render();
