// Sign-in: paste a token the owner app issued, or (only while the service runs with the
// published development secret) pick one of the demo owners and get a token for them.
import { api, forgetCaches, session } from "./api.js";
import { append, h, live, notice } from "./dom.js";
import { go, showBanner } from "./app.js";

async function useToken(token, status) {
  session.set(token.trim());
  forgetCaches();
  try {
    await api("/v1/vehicles"); // the service checks the token, not the page
  } catch (error) {
    session.clear();
    status.textContent = `Not signed in: ${error.detail || error.message}`;
    status.className = "notice error";
    return;
  }
  showBanner("");
  go("cars");
}

function pasteForm() {
  const status = live();
  const area = h("textarea", { id: "token", name: "token", required: true, spellcheck: "false",
    autocomplete: "off", placeholder: "eyJhbGciOi…" });
  const form = h("form", {
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        await useToken(area.value, status);
      } catch (error) {
        status.textContent = `Not signed in: ${error.message}`;
        status.className = "notice error";
      }
    },
  },
  h("label", { for: "token" }, "Owner token (JWT), as the owner app issues it"), area,
  h("p", {}, h("button", { type: "submit" }, "Sign in")), status);
  return h("section", { class: "card", "aria-labelledby": "paste-h" },
    h("h2", { id: "paste-h" }, "Sign in with a token"), form);
}

async function devSection(config) {
  if (!config.development_sign_in) return null;
  const status = live();
  const { owners } = await (await fetch("/portal/dev/owners")).json();
  const scopeBoxes = h("fieldset", {}, h("legend", {}, "Scope of the token"),
    ...config.demo_scopes.map((s) => h("label", { class: "inline" },
      h("input", { type: "checkbox", name: "scope", value: s, checked: true }), s)));
  const pick = async (owner) => {
    const scopes = [...scopeBoxes.querySelectorAll("input:checked")].map((i) => i.value);
    const res = await fetch("/portal/dev/token", { method: "POST",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ owner_id: owner, scopes }) });
    const body = await res.json();
    if (!res.ok) {
      status.textContent = body.detail;
      return;
    }
    await useToken(body.token, status);
  };
  const list = owners.length
    ? h("ul", { class: "owners" }, owners.map((o) => h("li", {},
      h("button", { type: "button", class: "secondary", onclick: () => pick(o.owner_id) },
        `Sign in as ${o.owner_id}`),
      h("span", { class: "small muted" },
        ` ${o.vins.length} car${o.vins.length === 1 ? "" : "s"}`,
        o.incidents ? `, ${o.incidents} braking/ABS/ESC episode${o.incidents === 1 ? "" : "s"}` : ""))))
    : notice("warn", "No owners in the data yet: start the fleet (vdp demo) and reload.");
  return h("section", { class: "card dev", "aria-labelledby": "dev-h" },
    h("h2", { id: "dev-h" }, "Development sign-in: demo owners"),
    notice("warn", h("strong", {}, "Development only. "),
      "This service signs tokens with the published development secret, so anyone can sign in " +
      "as anyone. In production the owner app's own login issues the token and this list is not offered."),
    scopeBoxes, list, status);
}

export async function signInPage(main, config) {
  append(main, [h("h1", {}, "Sign in"),
    h("p", {}, "See, chart, control and download what your car recorded: only your cars, only " +
      "for the time you owned them, only the data categories your sign-in allows."),
    pasteForm(), await devSection(config)]);
}
