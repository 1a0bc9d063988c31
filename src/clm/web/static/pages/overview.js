// Overview: the workspace at a glance; every count links to the customers behind it.
import { html } from "../lib/html.js";
import { useApi, status } from "../lib/hooks.js";
import { query } from "../lib/api.js";
import { asOf, label, number, pct, thousands } from "../lib/format.js";
import { AT_RISK } from "./customers.js";

// Horizontal bars; each count is a link when `href(name)` gives one.
// The API counts health by its label; the customer list filters by the state's name.
const HEALTH_STATE = { "happy and stable": "happy", "happy but at risk": "at_risk", unhappy: "unhappy" };

export function Bars({ id, entries, href }) {
  const max = Math.max(1, ...entries.map(([, n]) => n));
  return html`<div id=${id} class="bars">
    ${entries.map(([name, n]) => html`<div class="bar">
      <span class="name">${label(name)}</span>
      <div class="track"><div class="fill" style=${{ width: `${(100 * n) / max}%` }}></div></div>
      ${href ? html`<a class="n" href=${href(name)}>${thousands(n)}</a>` : html`<span class="n">${thousands(n)}</span>`}
    </div>`)}
  </div>`;
}

function Card({ id, title, value, href }) {
  return html`<div class="card"><div class="label">${title}</div>
    ${href ? html`<a id=${id} class="value" href=${href}>${value}</a>` : html`<div id=${id} class="value">${value}</div>`}
  </div>`;
}

// The stage funnel (the funnel report): how many entered each step, how many went on, and
// the median days it took. (Its counts are of entries over time, not of customers standing in
// a stage now, so they do not link to the list; the stage counts above do.)
function Funnel() {
  const report = useApi("/reports/funnel");
  const steps = report.data?.steps || [];
  return html`<div class="panel"><h2>Stage funnel</h2>
    ${status(report, { empty: "No stage history yet." })}
    ${report.data && html`<div class="table-wrap"><table id="funnel">
      <thead><tr><th>step</th><th class="num">entered</th><th class="num">went on</th><th class="num">conversion</th><th class="num">median days</th></tr></thead>
      <tbody>${steps.map((s) => html`<tr>
        <td>${label(s.from_stage)} → ${label(s.to_stage)}</td>
        <td class="num">${thousands(s.entered)}</td>
        <td class="num">${thousands(s.converted)}</td>
        <td class="num">${pct(s.conversion_rate)}</td>
        <td class="num">${number(s.median_days)}</td>
      </tr>`)}</tbody></table></div>`}
  </div>`;
}

export function Overview() {
  const stats = useApi("/workspace/stats");
  const counts = useApi("/lifecycle/counts");
  const s = stats.data;
  const stages = Object.entries(counts.data?.stages || {});
  const health = Object.entries(counts.data?.health || {});
  const atRisk = (counts.data?.health?.["happy but at risk"] || 0) + (counts.data?.health?.unhappy || 0);
  return html`<section id="overview" class="page">
    <h1>Overview</h1>
    ${status(stats)}
    ${s && html`<div class="cards">
      <${Card} id="stat-customers" title="Customers" value=${thousands(s.customers)} href="/customers" />
      <${Card} id="stat-identified" title="Identified" value=${thousands(s.identified_customers)} />
      <${Card} id="stat-events" title="Touchpoints" value=${thousands(s.events)} />
      <${Card} id="stat-purchases" title="Purchases" value=${thousands(s.purchases)} />
      <${Card} id="stat-revenue" title="Revenue" value=${thousands(Math.round(s.revenue))} />
      <${Card} id="stat-at-risk" title="At risk or unhappy" value=${thousands(atRisk)} href=${AT_RISK} />
    </div>`}
    <div class="panels">
      <div class="panel">
        <h2>Lifecycle stages <span id="stages-at" class="muted">${counts.data && stages.length ? asOf(counts.data.at) : ""}</span></h2>
        ${status(counts, { empty: "No stage history yet: run clm lifecycle run." })}
        ${counts.data && (stages.length
          ? html`<${Bars} id="stages" entries=${stages} href=${(stage) => `/customers${query({ stage })}`} />`
          : html`<p id="stages" class="muted">No stage history yet: run <code>clm lifecycle run</code>.</p>`)}
      </div>
      <div class="panel">
        <h2>Health</h2>
        ${counts.data && html`<${Bars} id="health" entries=${health} href=${(state) => `/customers${query({ health_state: HEALTH_STATE[state] || state })}`} />`}
      </div>
      <div class="panel">
        <h2>Touchpoints by channel</h2>
        ${s && html`<${Bars} id="channels" entries=${Object.entries(s.events_by_channel)} />`}
      </div>
    </div>
    <${Funnel} />
  </section>`;
}

