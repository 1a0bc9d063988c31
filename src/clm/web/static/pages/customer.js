// Customer 360: who they are (identities and merges), where they stand (stage, health with its
// reasons, predictions), what happened (timeline, CLM's own events told in words), notes.
import { useMemo, useState } from "preact/hooks";
import { html } from "../lib/html.js";
import { api, usingKey } from "../lib/api.js";
import { Chart } from "../lib/chart.js";
import { useApi, status } from "../lib/hooks.js";
import { asOf, byKey, day, label, minute, money, number, pAlive, pct, score, thousands } from "../lib/format.js";
import { EngagementPanels } from "./customer_engagement.js";
import { can, lacks } from "../lib/access.js";

const STATE = { happy: "happy and stable", at_risk: "happy but at risk", unhappy: "unhappy" };

const second = (iso) => Math.floor(Date.parse(iso) / 1000);

// The stored health changes by the second they happened: a health_state_changed event is
// told with the score it moved from and the factors that moved it.
export function changesBySecond(history) {
  return new Map((history || []).map((h) => [second(h.at), h]));
}

function healthSentence(p, change) {
  const before = change?.from_state_label || STATE[p.from_state] || p.from_state;
  const from = p.from_state ? `${before} → ` : "";
  const to = change?.state_label || STATE[p.to_state] || p.to_state;
  const scores = change && change.from_score !== null && change.from_score !== undefined
    ? `Health ${score(change.from_score)} → ${score(change.score)}`
    : `Health${p.score !== undefined && p.score !== null ? ` ${score(p.score)}` : ""}`;
  const why = change?.drivers?.length ? `: ${change.drivers.join("; ")}` : "";
  return `${scores} (${from}${to})${why}`;
}

// What an event CLM wrote itself means, in a sentence; null for a customer's own event.
export function describe(event, changes) {
  if (event.channel !== "system") return null;
  const p = event.properties || {};
  switch (event.name) {
    case "lifecycle_stage_changed":
      return p.from_stage
        ? `Moved from ${label(p.from_stage)} to ${label(p.to_stage)} by rule ${p.rule}`
        : `Entered ${label(p.to_stage)} by rule ${p.rule}`;
    case "health_state_changed":
      return healthSentence(p, changes?.get(second(event.timestamp)));
    case "Email Sent":
    case "SMS Sent":
    case "Webhook Delivered":
      return `${event.name}${p.category ? ` (${label(p.category)})` : ""}`;
    case "Prediction Scored":
      return `Scored: P(alive) ${pAlive(p.p_alive)}, ${number(p.expected_purchases_90d)} purchases expected in 90 days` +
        (p.clv_12m !== undefined && p.clv_12m !== null ? `, CLV ${money(p.clv_12m)}` : "");
    case "Frontline Note":
      return `Note by ${p.author || "staff"}${p.rating ? ` (rating ${p.rating}/5)` : ""}: ${p.text || ""}`;
    case "Message Blocked":
      return `Message ${p.category ? `(${label(p.category)}) ` : ""}blocked on ${p.message_channel || "a channel"}: ${p.reason || "no reason given"}`;
    default: {
      const detail = byKey(p).filter(([k]) => !["customer_id", "definition_id"].includes(k)).slice(0, 4)
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
    <p><span class=${`pill ${health.state}`}>${health.state_label}</span> score <strong id="health-score">${score(health.score)}</strong> of 100 <span class="muted">${asOf(health.at)}</span></p>
    ${!health.sentiment_known && html`<p id="health-no-feedback" class="muted">No survey answer, rating or ticket yet: the state says how likely they are to stay, not whether they are happy.</p>`}
    ${health.reasons.length > 0 && html`<h3>Why</h3><ul id="health-reasons">${health.reasons.map((r) => html`<li>${r}</li>`)}</ul>`}
    ${health.next_action && html`<p><strong>Suggested action:</strong> ${health.next_action}</p>`}
    <h3>Factors</h3>
    <div class="bars">${health.factors.map((f) => html`<div class="bar" title=${`${f.label}: ${f.value ?? "no data"}`}>
      <span class="name">${f.label}</span>
      <div class="track" style=${{ width: `${(100 * f.weight) / max}%` }}><div class="fill" style=${{ width: `${f.weight ? (100 * f.points) / f.weight : 0}%`, background: f.points < f.weight / 2 ? "var(--bad)" : "var(--good)" }}></div></div>
      <span class="n">${f.missing ? "no data" : `${thousands(f.points)} of ${thousands(f.weight)}`}</span>
    </div>`)}</div>
  </div>`;
}

// The score over time: each stored change (a step holds until the next), then the present.
function HealthTrend({ history, health }) {
  const option = useMemo(() => {
    const points = history.map((h) => [h.at, Math.round(h.score * 10) / 10]);
    if (health) points.push([health.at, Math.round(health.score * 10) / 10]);
    return {
      grid: { left: 36, right: 12, top: 12, bottom: 28 },
      tooltip: { trigger: "axis", valueFormatter: (v) => number(v) },
      xAxis: { type: "time", axisLabel: { hideOverlap: true } },
      yAxis: { type: "value", min: 0, max: 100, interval: 25 },
      series: [{ type: "line", step: "end", name: "health", data: points, symbolSize: 5, areaStyle: { opacity: 0.08 } }],
    };
  }, [history, health]);
  if (history.length === 0) return html`<p class="muted">No stored history yet.</p>`;
  return html`<${Chart} id="health-trend" option=${option} height=${160} />`;
}

// A change worth a line: its score moved by a whole point as shown, or its state or reasons
// changed. The API keeps every stored change (the chart draws them all); "16 → 16" with no
// reason says nothing to a person.
const worthShowing = (h) => h.from_score !== null
  && (score(h.score) !== score(h.from_score) || h.state !== h.from_state || h.drivers.length > 0);

function HealthChanges({ history }) {
  const moved = history.filter(worthShowing).slice(-5).reverse();
  if (!moved.length) return null;
  return html`<ul id="health-changes" class="plain">${moved.map((h) => html`<li><span class="muted">${day(h.at)}</span>${" "}
    ${score(h.from_score)} → <strong>${score(h.score)}</strong>${" "}${h.state !== h.from_state ? html`<span class=${`pill ${h.state}`}>${h.state_label}</span>` : ""}
    ${h.drivers.length ? html`<br /><span class="muted">${h.drivers.join("; ")}</span>` : ""}</li>`)}</ul>`;
}

function Predictions({ predictions }) {
  const data = predictions.data;
  const p = data?.latest;
  if (!data) return status(predictions, { empty: "No predictions yet." });
  if (!p) return html`<p class="muted">Not scored yet.</p>`;
  const informative = data.p_alive_informative !== false;
  return html`<dl id="predictions" class="facts">
    <dt>P(alive)</dt><dd id="p-alive">${informative ? pct(p.p_alive) : html`<span class="muted">not informative</span>`}</dd>
    <dt>Purchase days</dt><dd>${thousands(data.purchase_days)}${data.last_purchase_at ? `, last ${day(data.last_purchase_at)}` : ""}</dd>
    <dt>Expected purchases (90 days)</dt><dd>${number(p.expected_purchases_90d)}</dd>
    <dt>CLV (12 months)</dt><dd>${money(p.clv_12m)}</dd>
    <dt>Model</dt><dd>${p.model} ${p.model_version}, fitted ${day(p.fitted_at)}</dd>
  </dl>
  ${!informative && html`<p id="p-alive-note"><strong>P(alive):</strong> ${data.p_alive_note}</p>`}
  ${data.uncertainty && html`<p class="muted" id="predictions-uncertainty">${data.uncertainty}</p>`}`;
}

const HIDDEN = new Set(["customer_id", "revenue", "currency", "response_id", "revision", "message_id"]);

// A customer's own event: its first few properties by name, short ("comment Delivery was…, score 3").
function details(event) {
  const shown = byKey(event.properties).filter(([k, v]) => !HIDDEN.has(k) && v !== null && typeof v !== "object").slice(0, 4)
    .map(([k, v]) => `${label(k)} ${String(v).length > 60 ? `${String(v).slice(0, 57)}…` : v}`);
  return shown.length ? html`<br /><span class="muted">${shown.join(", ")}</span>` : "";
}

function Timeline({ id, changes }) {
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
    <div class="table-wrap"><table id="timeline-table" class="stack"><thead><tr><th>time</th><th>what</th><th>channel</th><th>campaign</th><th class="num">revenue</th></tr></thead>
      <tbody id="customer-timeline">${shown.map((e) => {
        const own = describe(e, changes);
        return html`<tr class=${own ? "own" : ""}><td>${minute(e.timestamp)}</td>
          <td class="wrap">${own || html`<strong>${e.name || e.type}</strong> <span class="muted">${e.type}</span>${details(e)}`}</td>
          <td data-label=${e.channel ? "channel" : undefined}>${e.channel || null}</td>
          <td data-label=${e.campaign ? "campaign" : undefined}>${e.campaign || null}</td>
          <td data-label=${e.revenue === null ? undefined : "revenue"} class="num">${e.revenue === null ? null : money(e.revenue, e.currency || "USD")}</td></tr>`;
      })}</tbody></table></div>
  </div>`;
}

function Notes({ id }) {
  const notes = useApi(`/customers/${id}/notes`);
  // A signed-in person writes as themselves; a key holder says who they are.
  const me = useApi(usingKey() ? null : "/auth/session").data;
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
    ${can("note.add") ? html`<form id="note-form" class="toolbar" onSubmit=${add}>
      <label>Note <textarea name="text" rows="2" cols="30" required></textarea></label>
      <label>Rating <select name="rating"><option value="">none</option>${[5, 4, 3, 2, 1].map((n) => html`<option value=${n}>${n}</option>`)}</select></label>
      <label>Author <input name="author" required key=${me?.email || ""} defaultValue=${me?.email || "me"} /></label>
      <button type="submit">Add note</button>
    </form>` : html`<p class="muted small" id="note-denied">${lacks("note.add")}</p>`}
    <p class="error" role="alert">${error}</p>
    ${status(notes)}
    <ul id="notes" class="plain">${(notes.data || []).map((n) => html`<li><span class="muted">${minute(n.at)} · ${n.author}${n.rating ? ` · ${n.rating}/5` : ""}</span><br />${n.text}</li>`)}</ul>
  </div>`;
}

export function Customer({ id }) {
  const customer = useApi(`/customers/${id}`);
  const lifecycle = useApi(`/customers/${id}/lifecycle`);
  const predictions = useApi(`/customers/${id}/predictions`);
  const engagement = useApi(`/customers/${id}/engagement`);
  const c = customer.data;
  const l = lifecycle.data;
  const changes = useMemo(() => changesBySecond(l?.health_history), [l]);
  if (!c) return html`<section class="page"><h1>Customer ${id}</h1>${status(customer)}</section>`;
  const when = l ? asOf(l.at) : "now";
  const suffix = when === "now" ? "" : ` (${when})`;
  const name = c.traits?.name;
  return html`<section id="customer" class="page">
    <p><a href="/customers">← Customers</a></p>
    <h1 id="customer-title">${name ? `${name} · ` : ""}Customer ${c.id}${c.user_id ? ` · ${c.user_id}` : ""}</h1>
    <p id="customer-summary" class="muted">${c.email || "no email"} · ${thousands(c.event_count)} events · first seen ${day(c.first_seen_at)} · last seen ${day(c.last_seen_at)}</p>
    <div id="customer-lifecycle">
      ${l?.stage && html`<span class="pill">stage: ${label(l.stage.stage)}${suffix}</span>`}
      ${l?.health && html`<span class=${`pill ${l.health.state}`}>health: ${l.health.state_label}${suffix}</span>`}
    </div>
    <div class="panels">
      <div class="panel"><h2>Health</h2>${status(lifecycle, { empty: "No lifecycle computed yet." })}${l && html`<${Health} health=${l.health} />`}</div>
      <div class="panel"><h2>Health over time</h2>${l && html`<${HealthTrend} history=${l.health_history} health=${l.health} /><${HealthChanges} history=${l.health_history} />`}</div>
      <div class="panel"><h2>Predictions</h2><${Predictions} predictions=${predictions} /></div>
      <div class="panel"><h2>Stage history</h2>
        ${l && (l.stage_history.length ? html`<ul id="stage-history" class="plain">${l.stage_history.map((t) => html`<li>${day(t.at)}: ${t.from_stage ? `${label(t.from_stage)} → ` : ""}<strong>${label(t.to_stage)}</strong> <span class="muted">by rule ${t.rule} (${t.cause})</span></li>`)}</ul>` : html`<p class="muted">No stage changes.</p>`)}
      </div>
      <div class="panel"><h2>Identities</h2>
        <ul id="customer-identities" class="plain">${c.identities.map((i) => html`<li>${i.kind}: ${i.value} <span class="muted">since ${day(i.first_seen_at)}</span></li>`)}</ul>
        ${c.merged_ids.length > 0 && html`<p class="muted">Merged from customers ${c.merged_ids.join(", ")}.</p>`}
        ${c.resolution.length > 0 && html`<h3>How they were resolved</h3><ul class="plain">${c.resolution.map((r) => html`<li>${r.kind} ${r.value}: ${r.outcome} <span class="muted">${r.reason}</span></li>`)}</ul>`}
        ${Object.keys(c.traits || {}).length > 0 && html`<h3>Traits</h3><dl id="customer-traits" class="facts">${byKey(c.traits).map(([k, v]) => html`<dt>${k}</dt><dd>${typeof v === "object" ? JSON.stringify(v) : String(v)}</dd>`)}</dl>`}
      </div>
      ${engagement.data ? html`<${EngagementPanels} engagement=${engagement.data} />` : html`<div class="panel"><h2>Engagement</h2>${status(engagement)}</div>`}
    </div>
    <${Notes} id=${id} />
    <${Timeline} id=${id} changes=${changes} />
  </section>`;
}
