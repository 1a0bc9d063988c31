// The CLM dashboard: plain DOM over the management API; the key lives in localStorage.
"use strict";

const KEY = "clm.secretKey";
const $ = (id) => document.getElementById(id);
const fmt = new Intl.NumberFormat();

async function api(path) {
  const response = await fetch(`/api/v1${path}`, {
    headers: { Authorization: `Bearer ${localStorage.getItem(KEY)}` },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.message || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
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

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  localStorage.setItem(KEY, $("key").value.trim());
  try {
    await showOverview();
    $("login-error").textContent = "";
  } catch (error) {
    localStorage.removeItem(KEY);
    $("login-error").textContent = error.status === 401 || error.status === 403
      ? "That key does not open a workspace." : error.message;
  }
});

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  findCustomer($("search-kind").value, $("search-value").value.trim());
});

$("sign-out").addEventListener("click", () => {
  localStorage.removeItem(KEY);
  location.reload();
});

if (localStorage.getItem(KEY)) {
  showOverview().catch(() => { $("login").hidden = false; });
} else {
  $("login").hidden = false;
}
