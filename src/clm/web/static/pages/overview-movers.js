// This week's biggest movers: whose health fell most, and who moved up or down a stage; each
// customer links to their 360.
import { html } from "../lib/html.js";
import { useReading, status } from "../lib/hooks.js";
import { query } from "../lib/api.js";
import { day, label, score, scoreChange, thousands } from "../lib/format.js";

const name = (c) => c.name || c.email || c.user_id || `#${c.customer_id}`;
const ARROW = { up: "↑", down: "↓", new: "+" };

function HealthFalls({ rows }) {
  if (rows.length === 0) return html`<p class="muted">No customer's health fell this week.</p>`;
  return html`<div class="table-wrap"><table id="movers-health">
    <thead><tr><th>customer, state now, what moved it</th><th class="num">score</th></tr></thead>
    <tbody>${rows.map((m) => html`<tr>
      <td class="who"><a href=${`/customers/${m.customer_id}`}>${name(m)}</a><br />
        <span class=${m.state_now === m.state_before ? "muted" : "bad"}>${m.state_now === m.state_before ? m.state_now : `${m.state_before} → ${m.state_now}`}</span>
        ${m.moved_by?.length ? html`<br /><span class="muted movers-why">${m.moved_by.join("; ")}</span>` : null}</td>
      <td class="num"><span class="bad">${scoreChange(m.change)}</span><br /><span class="muted">${score(m.score_before)} → ${score(m.score_now)}</span></td>
    </tr>`)}</tbody></table></div>`;
}

function StageMoves({ rows }) {
  if (rows.length === 0) return html`<p class="muted">Nobody moved up or down a stage this week.</p>`;
  return html`<div class="table-wrap"><table id="movers-stages">
    <thead><tr><th>customer, when</th><th>move</th></tr></thead>
    <tbody>${rows.map((m) => html`<tr>
      <td class="who"><a href=${`/customers/${m.customer_id}`}>${name(m)}</a><br /><span class="muted">${day(m.at)}</span></td>
      <td class=${m.direction === "down" ? "bad" : "good"}>${ARROW[m.direction]} ${label(m.from_stage)} → ${label(m.to_stage)}</td>
    </tr>`)}</tbody></table></div>`;
}

// The customer list of the movers' own window: the counts here and the list's total agree.
const within = (m, filter) => `/customers${query({ ...filter, moved_since: m.since, moved_until: m.until })}`;

export function Movers() {
  // An older reading shown while it is re-read is asked for again until the new one lands.
  const found = useReading("/overview/movers?days=7&limit=8", { follow: true });
  const m = found.data;
  return html`<div id="movers" class="panel">
    <h2>This week's biggest movers <span class="muted">(last 7 days)</span></h2>
    ${status(found)}
    ${m && html`<p id="movers-summary">
      ${"Health fell for "}<a id="movers-fell" href=${within(m, { health_fell: "true" })}><strong>${thousands(m.health_fell)}</strong></a>${` and rose for ${thousands(m.health_rose)} customers; `}
      <a id="movers-up" href=${within(m, { moved: "up" })}><strong>${thousands(m.stage_movers.up)}</strong></a>${" moved up a stage, "}
      <a id="movers-down" href=${within(m, { moved: "down" })}><strong>${thousands(m.stage_movers.down)}</strong></a>${" down, and "}
      <a id="movers-new" href=${within(m, { moved: "new" })}>${thousands(m.stage_movers.new)}</a>${" entered their first stage."}
      ${m.current ? "" : html` <span id="movers-refreshing" class="muted">(refreshing)</span>`}</p>
    <div class="panels">
      <div><h3>Health fell most</h3><${HealthFalls} rows=${m.health} /></div>
      <div><h3>Latest stage moves</h3><${StageMoves} rows=${m.stages} /></div>
    </div>`}
  </div>`;
}
