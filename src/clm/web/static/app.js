// The CLM dashboard: plain DOM over the management API.
"use strict";

const KEY = "clm.key";
const $ = (id) => document.getElementById(id);
const fmt = new Intl.NumberFormat();

// How every request authenticates -- the one place to change. A signed-in person: the
// HttpOnly session cookie (scripts never see it) and, for changes, the CSRF token the server
// set in the readable clm_csrf cookie. An operator's pasted key: a bearer header, kept in
// sessionStorage (this tab only), never localStorage.
function authHeaders(method) {
  const key = sessionStorage.getItem(KEY);
  if (key) return { Authorization: `Bearer ${key}` };
  if (method === "GET" || method === "HEAD") return {};
  const csrf = document.cookie.split("; ").find((c) => c.startsWith("clm_csrf="));
  return csrf ? { "X-CSRF-Token": decodeURIComponent(csrf.slice("clm_csrf=".length)) } : {};
}

async function api(path, { method = "GET", body } = {}) {
  const headers = authHeaders(method);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(answer.message || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return answer;
}

function text(tag, value, className) {
  const node = document.createElement(tag);
  node.textContent = value;
  if (className) node.className = className;
  return node;
}

function bars(container, entries) {
  container.replaceChildren();
  const max = Math.max(1, ...entries.map(([, n]) => n));
  for (const [label, n] of entries) {
    const row = text("div", "", "bar");
    const fill = text("div", "", "fill");
    fill.style.width = `${(100 * n) / max}%`;
    const track = document.createElement("div");
    track.append(fill);
    row.append(text("span", label), track, text("span", fmt.format(n), "n"));
    container.append(row);
  }
}

// "now" for a state computed at the present moment, else "as of <date>": a stage or health
// state shown for another moment always says which.
function asOf(at) {
  const when = Date.parse(at || "");
  if (Number.isNaN(when) || Math.abs(Date.now() - when) < 5 * 60 * 1000) return "now";
  return `as of ${new Date(when).toISOString().slice(0, 10)}`;
}

async function showOverview() {
  const [workspace, stats] = await Promise.all([api("/workspace"), api("/workspace/stats")]);
  $("workspace-name").textContent = `${workspace.name} (${workspace.slug})`;
  $("stat-customers").textContent = fmt.format(stats.customers);
  $("stat-identified").textContent = fmt.format(stats.identified_customers);
  $("stat-events").textContent = fmt.format(stats.events);
  $("stat-purchases").textContent = fmt.format(stats.purchases);
  $("stat-revenue").textContent = fmt.format(Math.round(stats.revenue));
  bars($("channels"), Object.entries(stats.events_by_channel));
  try {
    // Stages now, as on every customer's page: the overview and a customer's pill agree. (The
    // demo's log is shifted to end yesterday, so "now" is its present too.)
    const counts = await api("/lifecycle/counts");
    const stages = Object.entries(counts.stages || {});
    if (stages.length) {
      bars($("stages"), stages);
      $("stages-at").textContent = asOf(counts.at);
    }
  } catch (error) {
    // No stage model applied yet: the panel keeps its hint.
  }
  $("login").hidden = true;
  $("overview").hidden = false;
  $("sign-out").hidden = false;
}

async function findCustomer(kind, value) {
  $("search-error").textContent = "";
  try {
    const params = new URLSearchParams({ kind, value });
    const customer = await api(`/customers/lookup?${params}`);
    const timeline = await api(`/customers/${customer.id}/timeline?limit=25`);
    $("customer-title").textContent = `Customer ${customer.id}` + (customer.user_id ? ` · ${customer.user_id}` : "");
    $("customer-summary").textContent =
      `${customer.email || "no email"} · ${fmt.format(customer.event_count)} events · ` +
      `first seen ${(customer.first_seen_at || "").slice(0, 10)} · last seen ${(customer.last_seen_at || "").slice(0, 10)}`;
    $("customer-identities").replaceChildren(
      ...customer.identities.map((i) => text("li", `${i.kind}: ${i.value}`)),
    );
    $("customer-timeline").replaceChildren(
      ...timeline.map((e) => {
        const row = document.createElement("tr");
        for (const cell of [e.timestamp.slice(0, 16).replace("T", " "), e.type, e.name, e.channel, e.campaign, e.revenue]) {
          row.append(text("td", cell ?? ""));
        }
        return row;
      }),
    );
    const lifecycle = $("customer-lifecycle");
    lifecycle.replaceChildren();
    try {
      const state = await api(`/customers/${customer.id}/lifecycle`);
      const when = asOf(state.at);
      const suffix = when === "now" ? "" : ` (${when})`;
      const stage = state.stage && (state.stage.stage || state.stage);
      if (typeof stage === "string") lifecycle.append(text("span", `stage: ${stage}${suffix}`, "pill"));
      const health = state.health && (state.health.state_label || state.health.state);
      if (health) lifecycle.append(text("span", `health: ${health}${suffix}`, "pill"));
    } catch (error) {
      // Lifecycle not computed for this workspace yet.
    }
    $("customer").hidden = false;
  } catch (error) {
    $("customer").hidden = true;
    $("search-error").textContent = error.status === 404 ? "No such customer." : error.message;
  }
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  sessionStorage.removeItem(KEY);
  try {
    await api("/auth/login", {
      method: "POST",
      body: { email: $("email").value.trim(), password: $("password").value },
    });
    $("password").value = "";
    $("signin-error").textContent = "";
    await showOverview();
  } catch (error) {
    $("signin-error").textContent = error.status === 401 ? "Wrong email or password."
      : error.status === 429 ? "Too many failed attempts; try again later."
      : error.status === 403 ? "Your role does not open this workspace." : error.message;
  }
});

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("key").value.trim());
  try {
    await showOverview();
    $("login-error").textContent = "";
  } catch (error) {
    sessionStorage.removeItem(KEY);
    $("login-error").textContent = error.status === 401 || error.status === 403
      ? "That key does not open a workspace." : error.message;
  }
});

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  findCustomer($("search-kind").value, $("search-value").value.trim());
});

$("sign-out").addEventListener("click", async () => {
  if (sessionStorage.getItem(KEY)) {
    sessionStorage.removeItem(KEY);
  } else {
    await api("/auth/logout", { method: "POST" }).catch(() => {});
  }
  location.reload();
});

// A key for this tab, else a live session cookie, else the sign-in form.
showOverview().catch(() => {
  sessionStorage.removeItem(KEY);
  $("login").hidden = false;
});
