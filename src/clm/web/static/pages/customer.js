// Customer 360: who they are (identities and merges), where they stand (stage, health with its
// reasons, predictions), what happened (timeline, CLM's own events told in words), notes.
import { useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { api } from "../lib/api.js";
import { useApi, status } from "../lib/hooks.js";
import { asOf, day, label, minute, money, number, pct, thousands } from "../lib/format.js";

const STATE = { happy: "happy and stable", at_risk: "happy but at risk", unhappy: "unhappy" };

// What an event CLM wrote itself means, in a sentence; null for a customer's own event.
export function describe(event) {
  if (event.channel !== "system") return null;
  const p = event.properties || {};
  switch (event.name) {
    case "lifecycle_stage_changed":
      return p.from_stage
        ? `Moved from ${label(p.from_stage)} to ${label(p.to_stage)} by rule ${p.rule}`
        : `Entered ${label(p.to_stage)} by rule ${p.rule}`;
    case "health_state_changed":
      return `Health ${p.from_state ? `${STATE[p.from_state] || p.from_state} → ` : ""}${STATE[p.to_state] || p.to_state}` +
        (p.score !== undefined && p.score !== null ? ` (score ${number(p.score)})` : "");
    case "Prediction Scored":
      return `Scored: P(alive) ${pct(p.p_alive)}, ${number(p.expected_purchases_90d)} purchases expected in 90 days` +
        (p.clv_12m !== undefined && p.clv_12m !== null ? `, CLV ${money(p.clv_12m)}` : "");
    case "Frontline Note":
      return `Note by ${p.author || "staff"}${p.rating ? ` (rating ${p.rating}/5)` : ""}: ${p.text || ""}`;
    case "Message Blocked":
      return `Message ${p.category ? `(${p.category}) ` : ""}blocked on ${p.channel || "a channel"}: ${p.reason || "no reason given"}`;
    default: {
      const detail = Object.entries(p).filter(([k]) => !["customer_id", "definition_id"].includes(k)).slice(0, 4)
        .map(([k, v]) => `${label(k)} ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
      return `${event.name || event.type}${detail ? `: ${detail}` : ""}`;
    }
  }
}

function Health({ health }) {
  if (!health) return html`<p class="muted">No health score yet.</p>`;
  // Each factor can earn up to its weight in points; the bar shows how much of it it earns.
  const max = Math.max(1, ...health.factors.map((f) => f.weight));
  return html`<div id="health-detail">
    <p><span class=${`pill ${health.state}`}>${health.state_label}</span> score <strong>${number(health.score)}</strong> <span class="muted">${asOf(health.at)}</span></p>
    ${health.reasons.length > 0 && html`<h3>Why</h3><ul id="health-reasons">${health.reasons.map((r) => html`<li>${r}</li>`)}</ul>`}
    ${health.next_action && html`<p><strong>Suggested action:</strong> ${health.next_action}</p>`}
    <h3>Factors</h3>
    <div class="bars">${health.factors.map((f) => html`<div class="bar" title=${`${f.label}: ${f.value ?? "no data"}`}>
      <span class="name">${f.label}</span>
      <div class="track" style=${{ width: `${(100 * f.weight) / max}%` }}><div class="fill" style=${{ width: `${f.weight ? (100 * f.points) / f.weight : 0}%`, background: f.points < f.weight / 2 ? "var(--bad)" : "var(--good)" }}></div></div>
      <span class="n">${f.missing ? "no data" : `${number(f.points)} of ${number(f.weight)}`}</span>
    </div>`)}</div>
  </div>`;
}

function Timeline({ id }) {
  const [channel, setChannel] = useState("");
  const [kind, setKind] = useState("");
  const events = useApi(`/customers/${id}/timeline?limit=200`);
  const all = events.data || [];
  const channels = [...new Set(all.map((e) => e.channel || "(none)"))].sort();
  const kinds = [...new Set(all.map((e) => e.name || e.type))].sort();
  const shown = all.filter((e) => (!channel || (e.channel || "(none)") === channel) && (!kind || (e.name || e.type) === kind));
  return html`<div class="panel"><h2>Timeline</h2>
    <div class="toolbar">
      <label>Channel <select id="timeline-channel" value=${channel} onChange=${(e) => setChannel(e.currentTarget.value)}>
        <option value="">all</option>${channels.map((c) => html`<option value=${c}>${c}</option>`)}</select></label>
      <label>Type <select id="timeline-type" value=${kind} onChange=${(e) => setKind(e.currentTarget.value)}>
        <option value="">all</option>${kinds.map((k) => html`<option value=${k}>${k}</option>`)}</select></label>
      <span class="muted">${thousands(shown.length)} of the latest ${thousands(all.length)}</span>
    </div>
    ${status(events)}
    <div class="table-wrap"><table><thead><tr><th>time</th><th>what</th><th>channel</th><th>campaign</th><th class="num">revenue</th></tr></thead>
      <tbody id="customer-timeline">${shown.map((e) => {
        const own = describe(e);
        return html`<tr class=${own ? "own" : ""}><td>${minute(e.timestamp)}</td>
          <td class="wrap">${own || html`<strong>${e.name || e.type}</strong> <span class="muted">${e.type}</span>`}</td>
          <td>${e.channel || ""}</td><td>${e.campaign || ""}</td><td class="num">${e.revenue === null ? "" : money(e.revenue, e.currency || "USD")}</td></tr>`;
      })}</tbody></table></div>
  </div>`;
}

function Notes({ id }) {
  const notes = useApi(`/customers/${id}/notes`);
  const [error, setError] = useState("");
  async function add(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const rating = form.rating.value ? Number(form.rating.value) : null;
    try {
      await api(`/customers/${id}/notes`, {
        method: "POST",
        body: { text: form.text.value.trim(), rating, author: form.author.value.trim() },
      });
      form.text.value = "";
      setError("");
      notes.reload();
    } catch (failure) {
      setError(failure.errors.length ? failure.errors.map((e) => `${(e.loc || e.field || []).slice(-1)}: ${e.message || e.msg}`).join("; ") : failure.message);
    }
  }
  return html`<div class="panel"><h2>Frontline notes</h2>
    <form id="note-form" class="toolbar" onSubmit=${add}>
      <label>Note <textarea name="text" rows="2" cols="30" required></textarea></label>
      <label>Rating <select name="rating"><option value="">none</option>${[5, 4, 3, 2, 1].map((n) => html`<option value=${n}>${n}</option>`)}</select></label>
      <label>Author <input name="author" required value="me" /></label>
      <button type="submit">Add note</button>
    </form>
    <p class="error" role="alert">${error}</p>
    ${status(notes)}
    <ul id="notes" class="plain">${(notes.data || []).map((n) => html`<li><span class="muted">${minute(n.at)} · ${n.author}${n.rating ? ` · ${n.rating}/5` : ""}</span><br />${n.text}</li>`)}</ul>
  </div>`;
}

export function Customer({ id }) {
  const customer = useApi(`/customers/${id}`);
  const lifecycle = useApi(`/customers/${id}/lifecycle`);
  const predictions = useApi(`/customers/${id}/predictions`);
  const c = customer.data;
  const l = lifecycle.data;
  const p = predictions.data?.latest;
  if (!c) return html`<section class="page"><h1>Customer ${id}</h1>${status(customer)}</section>`;
  const when = l ? asOf(l.at) : "now";
  const suffix = when === "now" ? "" : ` (${when})`;
  return html`<section id="customer" class="page">
    <p><a href="/customers">← Customers</a></p>
    <h1 id="customer-title">Customer ${c.id}${c.user_id ? ` · ${c.user_id}` : ""}</h1>
    <p id="customer-summary" class="muted">${c.email || "no email"} · ${thousands(c.event_count)} events · first seen ${day(c.first_seen_at)} · last seen ${day(c.last_seen_at)}</p>
    <div id="customer-lifecycle">
      ${l?.stage && html`<span class="pill">stage: ${l.stage.stage}${suffix}</span>`}
      ${l?.health && html`<span class=${`pill ${l.health.state}`}>health: ${l.health.state_label}${suffix}</span>`}
    </div>
    <div class="panels">
      <div class="panel"><h2>Health</h2>${status(lifecycle, { empty: "No lifecycle computed yet." })}${l && html`<${Health} health=${l.health} />`}</div>
      <div class="panel"><h2>Predictions</h2>
        ${status(predictions, { empty: "No predictions yet." })}
        ${predictions.data && (p ? html`<dl class="facts">
          <dt>P(alive)</dt><dd>${pct(p.p_alive)}</dd>
          <dt>Expected purchases (90 days)</dt><dd>${number(p.expected_purchases_90d)}</dd>
          <dt>CLV (12 months)</dt><dd>${money(p.clv_12m)}</dd>
          <dt>Model</dt><dd>${p.model} ${p.model_version}, fitted ${day(p.fitted_at)}</dd></dl>` : html`<p class="muted">Not scored yet.</p>`)}
      </div>
      <div class="panel"><h2>Stage history</h2>
        ${l && (l.stage_history.length ? html`<ul id="stage-history" class="plain">${l.stage_history.map((t) => html`<li>${day(t.at)}: ${t.from_stage ? `${label(t.from_stage)} → ` : ""}<strong>${label(t.to_stage)}</strong> <span class="muted">by rule ${t.rule} (${t.cause})</span></li>`)}</ul>` : html`<p class="muted">No stage changes.</p>`)}
      </div>
      <div class="panel"><h2>Identities</h2>
        <ul id="customer-identities" class="plain">${c.identities.map((i) => html`<li>${i.kind}: ${i.value} <span class="muted">since ${day(i.first_seen_at)}</span></li>`)}</ul>
        ${c.merged_ids.length > 0 && html`<p class="muted">Merged from customers ${c.merged_ids.join(", ")}.</p>`}
        ${c.resolution.length > 0 && html`<h3>How they were resolved</h3><ul class="plain">${c.resolution.map((r) => html`<li>${r.kind} ${r.value}: ${r.outcome} <span class="muted">${r.reason}</span></li>`)}</ul>`}
        ${Object.keys(c.traits || {}).length > 0 && html`<h3>Traits</h3><dl class="facts">${Object.entries(c.traits).map(([k, v]) => html`<dt>${k}</dt><dd>${typeof v === "object" ? JSON.stringify(v) : String(v)}</dd>`)}</dl>`}
      </div>
    </div>
    <${Notes} id=${id} />
    <${Timeline} id=${id} />
  </section>`;
}

